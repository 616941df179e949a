#!/usr/bin/env bash
# The main job: the end-to-end demo on a local chain.
#
# 1. installs the npm toolchain if needed (solc, OpenZeppelin, anvil, forge);
# 2. prints the gas benchmark of the contract suite (in-memory EVM, steady state);
# 3. starts a local anvil node, deploys the suite with the deploy script's plan, and runs one
#    access agreement: the provider publishes an asset, its keeper signs an offer, the consumer
#    buys on it and pays into escrow in one transaction, the keeper grants access and releases the
#    payment, the network collects its fee.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash script/npm-deps.sh

echo "== gas benchmark (cargo run --release -p insitu-tests --bin gas-report) =="
cargo run --quiet --release --locked -p insitu-tests --bin gas-report
echo
echo "== end-to-end demo on a local anvil node (cargo run --release -p insitu-cli -- demo) =="
cargo run --quiet --release --locked -p insitu-cli -- demo
