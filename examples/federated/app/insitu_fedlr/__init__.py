"""Logistic regression trained across data providers with Flower."""
