#!/usr/bin/env bash
# Runs all tests: installs the npm toolchain, the S3 test server, bubblewrap, the Flower
# environment, Chromium and PostgreSQL if needed, runs the Rust workspace tests (which compile
# the contracts through the bindings' build script), builds the contracts with forge, then runs
# the static analysis (slither, pinned, in a venv; fails on any medium or high finding).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash script/npm-deps.sh
# moto, the S3-compatible server of the keeper's storage tests (pinned, in a venv under target/).
bash script/s3-deps.sh >/dev/null
# bubblewrap, for the compute sandbox's tests (Debian, installed when missing).
bash script/sandbox-deps.sh
# Flower and numpy (pinned by hash, in a venv under target/), for the federated runs' tests.
bash script/flower-deps.sh >/dev/null
# Chromium, for the catalog's browser test, and PostgreSQL, for its tests on PostgreSQL (Debian,
# installed when missing).
bash script/browser-deps.sh >/dev/null
bash script/postgres-deps.sh

log="$(mktemp)"
trap 'rm -f "$log"' EXIT

cargo test --workspace --locked --no-fail-fast 2>&1 | tee "$log"

echo
echo "forge build (same sources and settings, see foundry.toml)"
node_modules/@foundry-rs/forge-linux-amd64/bin/forge build

echo
echo "static analysis (script/static-analysis.sh)"
bash script/static-analysis.sh

# One closing line for the whole run, summed over every test binary of the workspace.
awk '/^test result: / { passed += $4; failed += $6 }
     END { printf "tests: %d passed, %d failed\n", passed, failed }' "$log"
