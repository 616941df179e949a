#!/usr/bin/env bash
# The main job: the whole system on a local chain.
#
# 1. installs the npm toolchain if needed (solc, OpenZeppelin, anvil, forge);
# 2. prints the gas benchmark of the contract suite (in-memory EVM, steady state);
# 3. runs `insitu demo`: starts anvil (a block a second), deploys the suite, starts the provider's
#    keeper as its own process (compute jobs in its sandbox) and the catalog as another,
#    publishes a sample dataset at the keeper and finds it with a catalog search, buys it on the
#    keeper's signed offer, downloads it (SHA-256 checked; the keeper settles the agreement on
#    chain); publishes a dataset that may only be computed on, finds it too, buys compute with
#    the sample algorithm (examples/algorithms/summary.py), downloads the result
#    (registered on chain as the consumer's asset before the escrow is released), and orders a
#    job that runs out of memory; then makes an access purchase the provider never delivers and
#    refunds the consumer after the time out, as it does the failed job. It prints each
#    transaction's block and gas, the balances and a summary; anvil, the keeper and the catalog
#    are stopped on exit and on Ctrl-C.
#
# `script/demo.sh --federated` runs federated learning instead: anvil, the suite, three keepers
# as processes of their own (each with one partition of the example data set and a Flower
# runtime), the consumer's SuperLink (TLS, SuperNode authentication); the consumer buys from the
# three in four transactions, orders the example app on each agreement, registers the SuperNode
# keys the keepers show and trains the model with `flwr run`; each keeper serves its rounds in
# its sandbox, signs its round log and is paid. It prints the accuracy per round against a model
# trained on one provider alone. With `--json`, its last line holds federated_rounds,
# federated_escrows_released, federated_accuracy, the accuracy per round, the one-provider
# accuracy, the providers' round log hashes, steps and balances.
#
# `script/demo.sh --json` ends with one JSON line (access_delivered, access_escrow_released,
# refund_after_timeout, blocks_lock_to_release_access, compute_result_delivered,
# compute_escrow_released, compute_failed_job_refunded, blocks_lock_to_release_compute,
# catalog_search_found, catalog_indexed_assets, steps, balances, ...).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

federated=false
for argument in "$@"; do
  [[ "$argument" == "--federated" ]] && federated=true
done

bash script/npm-deps.sh
# bubblewrap, for the keeper's compute sandbox (Debian, installed when missing).
bash script/sandbox-deps.sh

if [[ "$federated" == true ]]; then
  # Flower and numpy, pinned by hash, in target/flower-venv.
  bash script/flower-deps.sh >/dev/null
  echo "== federated learning across three providers on a local anvil node (insitu demo --federated) =="
  cargo build --quiet --release --locked -p insitu-cli -p insitu-keeper -p insitu-sandbox
  target/release/insitu demo "$@"
  exit
fi

echo "== gas benchmark (cargo run --release -p insitu-tests --bin gas-report) =="
cargo run --quiet --release --locked -p insitu-tests --bin gas-report
echo
echo "== the whole system on a local anvil node (insitu demo) =="
cargo build --quiet --release --locked -p insitu-cli -p insitu-keeper -p insitu-sandbox -p insitu-catalog
target/release/insitu demo "$@"
