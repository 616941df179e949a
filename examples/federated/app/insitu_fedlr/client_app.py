"""The part each provider runs next to its data: trains on its rows, evaluates on its held-out
rows, and sends back only model weights and counts."""

from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from insitu_fedlr import model

app = ClientApp()


def _rows(context):
    path = context.node_config.get("data-path") or model.find_data()
    return model.split(*model.load(path))


@app.train()
def train(message: Message, context: Context) -> Message:
    (x, y), _ = _rows(context)
    weights = message.content["arrays"].to_numpy_ndarrays()[0]
    config = context.run_config
    weights = model.train(
        weights, x, y, int(config["local-epochs"]), float(config["learning-rate"])
    )
    metrics = MetricRecord(
        {"num-examples": len(y), "train-accuracy": model.accuracy(weights, x, y)}
    )
    content = RecordDict({"arrays": ArrayRecord([weights]), "metrics": metrics})
    return Message(content=content, reply_to=message)


@app.evaluate()
def evaluate(message: Message, context: Context) -> Message:
    _, (x, y) = _rows(context)
    weights = message.content["arrays"].to_numpy_ndarrays()[0]
    metrics = MetricRecord(
        {"num-examples": len(y), "accuracy": model.accuracy(weights, x, y)}
    )
    return Message(content=RecordDict({"metrics": metrics}), reply_to=message)
