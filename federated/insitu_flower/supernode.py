"""Flower's SuperNode, recording each reply it delivers to the aggregator.

    python -m insitu_flower.supernode --rounds-log FILE -- [flower-supernode arguments]

runs `flower-supernode` with those arguments; each time a reply has been accepted by the
SuperLink, one JSON line is appended to FILE:

    {"run": 7, "round": 2, "kind": "train", "message": "<sha256>", "update": "<sha256>",
     "samples": 480}

- `round` counts the training updates this SuperNode delivered in the run (an evaluation belongs
  to the round of the training update before it, 0 before any);
- `message` is the reply's Flower object id (the SHA-256 of its content, children included),
  which the aggregator stores it under;
- `update` is the object id of the model weights it carries (its `ArrayRecord`), or null for a
  reply without weights (an evaluation);
- `samples` is the `num-examples` it reports, or null.

The keeper reads the file when the run ends and signs what it holds as its round log.
Written for the Flower version pinned in script/requirements-flower.txt: the hook wraps the
function through which the SuperNode sends its replies, and its test (the keeper's federated
tests) fails if that function changes.
"""

import argparse
import json
import os
import sys
import threading
import time

import flwr.supernode.start_client_internal as supernode
from flwr.app import ArrayRecord, Message
from flwr.supercore.inflatable.inflatable_object import iterate_object_tree
from flwr.supercore.inflatable.inflatable_utils import inflate_object_from_contents

# How long to wait for a reply's objects to be in the SuperNode's store.
CONTENT_WAIT_SECONDS = 30

_lock = threading.Lock()

# Training updates delivered so far, per run.
_trained = {}


def _contents(object_store, object_tree):
    """The content of every object of the tree, once the store has them all."""
    deadline = time.monotonic() + CONTENT_WAIT_SECONDS
    contents = {}
    for tree in iterate_object_tree(object_tree):
        while not (content := object_store.get(tree.object_id)):
            if time.monotonic() > deadline:
                raise TimeoutError(f"object {tree.object_id} never came")
            time.sleep(0.1)
        contents[tree.object_id] = bytes(content)
    return contents


def _record(message, object_tree, object_store):
    """The log line for a reply the SuperLink accepted."""
    entry = {
        "run": message.metadata.run_id,
        "round": None,
        "kind": message.metadata.message_type,
        "message": message.metadata.message_id,
        "update": None,
        "samples": None,
    }
    contents = _contents(object_store, object_tree)
    inflated = inflate_object_from_contents(
        message.metadata.message_id, contents, keep_object_contents=True
    )
    if isinstance(inflated, Message) and inflated.has_content():
        for record in inflated.content.values():
            if isinstance(record, ArrayRecord) and entry["update"] is None:
                entry["update"] = record.object_id
        metrics = inflated.content.metric_records
        for record in metrics.values():
            samples = record.get("num-examples")
            if isinstance(samples, int) and samples >= 0:
                entry["samples"] = samples
                break
    run = message.metadata.run_id
    if message.metadata.message_type == "train":
        _trained[run] = _trained.get(run, 0) + 1
    entry["round"] = _trained.get(run, 0)
    return entry


def install(log_path):
    """Wraps the SuperNode's reply sending so that each accepted reply is logged to `log_path`."""
    original = supernode._push_messages

    def push_messages(state, object_store, send, push_object):
        def send_and_record(message, object_tree, runtime):
            answer = send(message, object_tree, runtime)
            with _lock:
                try:
                    line = json.dumps(_record(message, object_tree, object_store))
                except Exception as error:  # the reply went; say why it is not logged
                    line = json.dumps(
                        {"message": message.metadata.message_id, "error": str(error)}
                    )
                with open(log_path, "a", encoding="utf-8") as log:
                    log.write(line + "\n")
                    log.flush()
                    os.fsync(log.fileno())
            return answer

        return original(state, object_store, send_and_record, push_object)

    supernode._push_messages = push_messages


def main():
    parser = argparse.ArgumentParser(description="Flower's SuperNode, logging each reply sent")
    parser.add_argument("--rounds-log", required=True, help="file the replies are logged to")
    parser.add_argument("supernode", nargs=argparse.REMAINDER, help="flower-supernode's arguments")
    args = parser.parse_args()
    arguments = args.supernode[1:] if args.supernode[:1] == ["--"] else args.supernode
    install(args.rounds_log)
    from flwr.supernode.cli.flower_supernode import flower_supernode

    sys.argv = ["flower-supernode", *arguments]
    flower_supernode()


if __name__ == "__main__":
    main()
