#!/usr/bin/env bash
# The main job. For now: installs the npm toolchain if needed and runs the contract test suite on
# the in-memory EVM. The end-to-end demo (provider, consumer and keeper on a local anvil, with a
# gas table) will be added here together with the keeper.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash script/npm-deps.sh

cargo test -p insitu-tests --locked

echo
echo "demo: the contract suite passed on the in-memory EVM."
echo "demo: the end-to-end run (provider, consumer and keeper on a local anvil) comes with the keeper."
