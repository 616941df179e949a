"""The model: logistic regression on numeric columns, fitted by gradient descent with numpy.

A provider's data set is a CSV file with a header, numeric feature columns and a last column
`label` (0 or 1). Its rows are split, the same way every time, into rows to train on and
held-out rows to evaluate on.
"""

import glob
import os

import numpy as np

# One row in five is held out for evaluation.
HOLDOUT_EVERY = 5


def load(path):
    """Features and labels of the CSV file at `path`."""
    table = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
    if table.shape[1] < 2:
        raise ValueError(f"{path}: needs feature columns and a label column")
    return table[:, :-1], table[:, -1]


def find_data(folder="/data"):
    """The first CSV file beneath `folder` (a provider's asset, mounted read-only)."""
    files = sorted(glob.glob(os.path.join(folder, "**", "*.csv"), recursive=True))
    if not files:
        raise FileNotFoundError(f"no CSV file beneath {folder}")
    return files[0]


def split(x, y):
    """(training rows, held-out rows), each as (features, labels)."""
    held = np.arange(len(y)) % HOLDOUT_EVERY == 0
    return (x[~held], y[~held]), (x[held], y[held])


def initial(features):
    """A model of zeros: one weight per feature, then the intercept."""
    return np.zeros(features + 1)


def predict(weights, x):
    """Probability of label 1 for each row."""
    return 1.0 / (1.0 + np.exp(-(x @ weights[:-1] + weights[-1])))


def train(weights, x, y, epochs, rate):
    """`weights` after `epochs` passes of gradient descent on the log loss."""
    weights = np.array(weights, dtype=float)
    for _ in range(epochs):
        error = predict(weights, x) - y
        weights[:-1] -= rate * (x.T @ error) / len(y)
        weights[-1] -= rate * error.mean()
    return weights


def accuracy(weights, x, y):
    """Share of rows whose label the model predicts."""
    if len(y) == 0:
        return 0.0
    return float(((predict(weights, x) >= 0.5) == (y >= 0.5)).mean())
