#!/usr/bin/env bash
# Static analysis of the contracts with slither (PyPI), in a virtual environment under target/
# holding exactly the versions pinned in script/requirements-slither.txt (re-created when that file
# changes). Settings: slither.config.json (mocks and tests are left out; informational and
# optimization findings are not reported). Exits non-zero on any medium or high finding, so such a
# finding is either fixed or justified in the code with a `slither-disable-next-line` comment and
# its reason. Low findings are printed for review (reentrancy-benign/events after calls to the
# store, timestamp comparisons, calls in the threshold condition's loop).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash script/npm-deps.sh
venv=target/slither-venv
requirements=script/requirements-slither.txt
stamp="$venv/requirements.sha256"
want="$(sha256sum "$requirements" | cut -d' ' -f1)"
if [[ ! -x "$venv/bin/slither" || "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
  echo "static-analysis: installing slither into $venv (pinned in $requirements)"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps -r "$requirements"
  echo "$want" > "$stamp"
fi
# slither drives forge, which must be on PATH. It cleans and rebuilds forge's `out/` folder.
PATH="$PWD/node_modules/@foundry-rs/forge-linux-amd64/bin:$PATH" \
  "$venv/bin/slither" . --fail-medium
