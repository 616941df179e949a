"""The consumer's part: federated averaging over the providers' updates, round after round; writes
the final model (`model.npy`) and the accuracy per round (`rounds.json`) to `output-dir`."""

import json
import os

import numpy as np
from flwr.app import ArrayRecord, Context
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg

from insitu_fedlr import model

app = ServerApp()

# Feature columns of the example data set (make_partitions.py, beside this app).
FEATURES = 4


@app.main()
def main(grid: Grid, context: Context) -> None:
    config = context.run_config
    nodes = int(config["min-nodes"])
    strategy = FedAvg(
        min_train_nodes=nodes, min_evaluate_nodes=nodes, min_available_nodes=nodes
    )
    # A provider that drops out costs each round at most this wait; the others go on.
    result = strategy.start(
        grid=grid,
        initial_arrays=ArrayRecord([model.initial(FEATURES)]),
        num_rounds=int(config["num-server-rounds"]),
        timeout=float(config["round-timeout"]),
    )
    weights = result.arrays.to_numpy_ndarrays()[0]
    folder = str(config["output-dir"])
    os.makedirs(folder, exist_ok=True)
    np.save(os.path.join(folder, "model.npy"), weights)
    rounds = [
        {"round": int(number), "accuracy": float(metrics["accuracy"])}
        for number, metrics in sorted(result.evaluate_metrics_clientapp.items())
    ]
    with open(os.path.join(folder, "rounds.json"), "w", encoding="utf-8") as out:
        json.dump({"rounds": rounds, "weights": weights.tolist()}, out)
