"""Flower's SuperNode as a provider's keeper runs it for one federated run: it runs only the app
the consumer ordered, records each reply it delivers to the aggregator, and ends once it has
served the rounds ordered.

    python -m insitu_flower.supernode --rounds-log FILE [--fab-sha256 HEX] [--rounds N]
        -- [flower-supernode arguments]

runs `flower-supernode` with those arguments, and:

- with `--fab-sha256`, refuses any app (FAB) whose SHA-256 is another: the SuperNode then exits
  with status 3 before the app runs, and the log's last line says why;
- with `--rounds N`, exits (status 0) once it has delivered N training updates and the
  evaluation that follows the last one, or 60 seconds after the last update when no evaluation
  comes;
- with `--admission-wait SECONDS`, starts the SuperNode again (every 2 seconds, for that long)
  while the SuperLink refuses it before it has delivered anything: its key is registered by the
  consumer once the keeper shows it, which may come after the SuperNode's first attempt;
- each time a reply has been accepted by the SuperLink, appends one JSON line to FILE:

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
import hashlib
import json
import os
import subprocess
import sys
import threading
import time

import flwr.supernode.fleet_http_connection as fleet
import flwr.supernode.start_client_internal as supernode
from flwr.app import ArrayRecord, Message
from flwr.supercore.inflatable.inflatable_object import iterate_object_tree
from flwr.supercore.inflatable.inflatable_utils import inflate_object_from_contents

# How long to wait for a reply's objects to be in the SuperNode's store.
CONTENT_WAIT_SECONDS = 30

# How long to wait for the evaluation after the last training update before ending.
EVALUATION_WAIT_SECONDS = 60

# Exit status when the aggregator sends an app other than the one ordered.
WRONG_APP = 3

# Flower's exit code when the SuperNode cannot connect to, or is refused by, the SuperLink (305),
# as a parent process sees it: an exit status keeps only the low 8 bits.
CONNECTION_ERROR = 305 & 0xFF

# Time between two attempts to be admitted.
ADMISSION_RETRY_SECONDS = 2

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
    return entry


def _number(entry):
    """Gives a delivered reply its round: training updates delivered in its run so far."""
    run = entry.get("run")
    if entry.get("kind") == "train":
        _trained[run] = _trained.get(run, 0) + 1
    entry["round"] = _trained.get(run, 0)


def _append(log_path, entry):
    with open(log_path, "a", encoding="utf-8") as log:
        log.write(json.dumps(entry) + "\n")
        log.flush()
        os.fsync(log.fileno())


def _finished(rounds):
    """Whether the rounds ordered are served: the last update delivered, and its evaluation."""
    if rounds is None or not _trained or max(_trained.values()) < rounds:
        return False
    return _last.get("kind") == "evaluate" and _last.get("round") == rounds


# The last reply logged, and when the last training update of the rounds ordered went.
_last = {}
_served_at = []


def _end_after_silence():
    """Ends the SuperNode once the rounds are served and no evaluation came for a while."""
    while True:
        time.sleep(1)
        with _lock:
            if _served_at and time.monotonic() - _served_at[0] > EVALUATION_WAIT_SECONDS:
                os._exit(0)


def install(log_path, fab_sha256=None, rounds=None):
    """Wraps the SuperNode: each reply the SuperLink accepted is logged to `log_path`; an app
    whose SHA-256 is not `fab_sha256` (when given) is refused; after `rounds` (when given) the
    SuperNode ends."""
    original = supernode._push_messages
    original_pull = supernode._pull_and_store_message

    def pull_and_store_message(*args, **kwargs):
        get_fab = kwargs.get("get_fab")
        if fab_sha256 is not None and get_fab is not None:

            def checked_fab(fab_hash, run_id):
                fab = get_fab(fab_hash, run_id)
                actual = hashlib.sha256(fab.content).hexdigest()
                if actual != fab_sha256:
                    with _lock:
                        _append(
                            log_path,
                            {
                                "run": run_id,
                                "error": f"the aggregator sent app {actual}, "
                                f"not the app ordered ({fab_sha256})",
                            },
                        )
                    print(
                        f"insitu: refused app {actual}: the app ordered is {fab_sha256}",
                        file=sys.stderr,
                        flush=True,
                    )
                    os._exit(WRONG_APP)
                return fab

            kwargs["get_fab"] = checked_fab
        return original_pull(*args, **kwargs)

    # A reply is delivered once its header was accepted (send) and its contents, the weights
    # among them, pushed after it: it is recorded only then. The SuperNode sends its replies
    # one at a time, each send followed by its push.
    sent = []

    def push_messages(state, object_store, send, push_object):
        def send_and_note(message, object_tree, runtime):
            answer = send(message, object_tree, runtime)
            entry = {"message": message.metadata.message_id}
            try:
                entry = _record(message, object_tree, object_store)
            except Exception as error:  # recorded as a reply that could not be read
                entry["error"] = str(error)
            sent.append(entry)
            return answer

        original(state, object_store, send_and_note, push_object)
        # The replies' contents are pushed by now: the rounds served may end the SuperNode.
        with _lock:
            if _finished(rounds):
                os._exit(0)

    original_push_contents = supernode.push_object_contents_from_iterable

    def push_contents_and_record(*args, **kwargs):
        try:
            answer = original_push_contents(*args, **kwargs)
        except BaseException:
            sent.clear()  # not delivered: not recorded
            raise
        if sent:
            entry = sent.pop()
            with _lock:
                if "error" not in entry:
                    _number(entry)
                _append(log_path, entry)
                _last.clear()
                _last.update(entry)
                if (
                    rounds is not None
                    and entry.get("kind") == "train"
                    and entry.get("round") == rounds
                ):
                    _served_at.append(time.monotonic())
        return answer

    supernode._push_messages = push_messages
    supernode._pull_and_store_message = pull_and_store_message
    supernode.push_object_contents_from_iterable = push_contents_and_record

    # Flower ends a SuperNode the SuperLink refuses with sys.exit, which leaves the process
    # running on its other threads: end it for good, so that the parent can start it again.
    def refused(code, message=None, *args, **kwargs):
        print(f"Exit Code: {code}\n{message or ''}", file=sys.stderr, flush=True)
        os._exit(code & 0xFF)

    fleet.flwr_exit = refused
    if rounds is not None:
        threading.Thread(target=_end_after_silence, daemon=True).start()


def _delivered(log_path):
    """Whether anything was logged (a reply delivered, or a refusal recorded)."""
    try:
        return os.path.getsize(log_path) > 0
    except OSError:
        return False


def _admitted(arguments, log_path, wait):
    """Runs the SuperNode in a child process (this same module, without `--admission-wait`),
    again while the SuperLink refuses it before anything was delivered, for up to `wait`
    seconds. Returns the last child's exit status."""
    deadline = time.monotonic() + wait
    while True:
        status = subprocess.call([sys.executable, "-m", "insitu_flower.supernode", *arguments])
        if (
            status != CONNECTION_ERROR
            or _delivered(log_path)
            or time.monotonic() + ADMISSION_RETRY_SECONDS > deadline
        ):
            return status
        print(
            "insitu: the SuperLink did not admit this SuperNode yet; trying again",
            file=sys.stderr,
            flush=True,
        )
        time.sleep(ADMISSION_RETRY_SECONDS)


def main():
    parser = argparse.ArgumentParser(description="Flower's SuperNode, logging each reply sent")
    parser.add_argument("--rounds-log", required=True, help="file the replies are logged to")
    parser.add_argument(
        "--admission-wait",
        type=int,
        default=0,
        help="seconds to keep starting the SuperNode while the SuperLink refuses it",
    )
    parser.add_argument("--fab-sha256", help="SHA-256 of the only app (FAB) that may run")
    parser.add_argument("--rounds", type=int, help="rounds to serve before ending")
    parser.add_argument("supernode", nargs=argparse.REMAINDER, help="flower-supernode's arguments")
    args = parser.parse_args()
    arguments = args.supernode[1:] if args.supernode[:1] == ["--"] else args.supernode
    if args.fab_sha256 is not None and (
        len(args.fab_sha256) != 64 or any(c not in "0123456789abcdef" for c in args.fab_sha256)
    ):
        parser.error("--fab-sha256 takes 64 lowercase hexadecimal digits")
    if args.rounds is not None and args.rounds < 1:
        parser.error("--rounds takes a number of rounds, at least 1")
    if args.admission_wait < 0:
        parser.error("--admission-wait takes a number of seconds")
    if args.admission_wait > 0:
        child, skip = [], False
        for argument in sys.argv[1:]:
            if skip:
                skip = False
            elif argument == "--admission-wait":
                skip = True
            elif not argument.startswith("--admission-wait="):
                child.append(argument)
        sys.exit(_admitted(child, args.rounds_log, args.admission_wait))
    install(args.rounds_log, args.fab_sha256, args.rounds)
    from flwr.supernode.cli.flower_supernode import flower_supernode

    sys.argv = ["flower-supernode", *arguments]
    flower_supernode()


if __name__ == "__main__":
    main()
