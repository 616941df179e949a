"""Writes the example data set: a binary classification table split among providers, each of
which sees a different slice of the population: along the feature it is named after, its rows
vary widely, along the others (but the last) hardly at all. A model trained on one provider's
rows alone learns little of the features that vary elsewhere, and does worse on the others'
rows than one trained on all of them.

    python make_partitions.py OUTPUT_FOLDER [--providers 3] [--rows 600] [--seed 7]

writes OUTPUT_FOLDER/provider-<k>/data.csv.
"""

import argparse
import os

import numpy as np

# The true model: weights of the four features, then the intercept.
TRUE_WEIGHTS = np.array([1.5, -2.0, 1.8, 0.5])
TRUE_INTERCEPT = -0.3


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output")
    parser.add_argument("--providers", type=int, default=3)
    parser.add_argument("--rows", type=int, default=600)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    generator = np.random.default_rng(args.seed)
    for provider in range(args.providers):
        spread = np.full(TRUE_WEIGHTS.size, 0.1)
        spread[provider % (TRUE_WEIGHTS.size - 1)] = 2.0
        spread[-1] = 1.0
        x = generator.normal(size=(args.rows, TRUE_WEIGHTS.size)) * spread
        chance = 1 / (1 + np.exp(-(x @ TRUE_WEIGHTS + TRUE_INTERCEPT)))
        y = (generator.random(args.rows) < chance).astype(int)
        folder = os.path.join(args.output, f"provider-{provider}")
        os.makedirs(folder, exist_ok=True)
        header = ",".join([f"x{i}" for i in range(TRUE_WEIGHTS.size)] + ["label"])
        rows = np.column_stack([x, y])
        np.savetxt(
            os.path.join(folder, "data.csv"),
            rows,
            delimiter=",",
            header=header,
            comments="",
            fmt=["%.6f"] * TRUE_WEIGHTS.size + ["%d"],
        )


if __name__ == "__main__":
    main()
