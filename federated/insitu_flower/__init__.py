"""What a provider's keeper runs in its sandbox for a federated run: Flower's SuperNode, with a
record of every update it delivered to the aggregator."""
