#!/usr/bin/env bash
# Static analysis of the contracts with slither (PyPI), in a virtual environment under target/.
# Settings: slither.config.json (mocks and tests are left out; informational and optimization
# findings are not reported). Exits non-zero on any medium or high finding, so such a finding is
# either fixed or justified in the code with a `slither-disable-next-line` comment. Low findings
# are printed for review (reentrancy-benign after calls to the store, timestamp comparisons).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash script/npm-deps.sh
venv=target/slither-venv
if [[ ! -x "$venv/bin/slither" ]]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet "slither-analyzer==0.11.3"
fi
# slither drives forge, which must be on PATH.
PATH="$PWD/node_modules/@foundry-rs/forge-linux-amd64/bin:$PATH" \
  "$venv/bin/slither" . --fail-medium
