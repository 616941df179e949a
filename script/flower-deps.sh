#!/usr/bin/env bash
# Installs Flower and numpy into a virtual environment under target/ holding exactly the packages
# pinned (by version and sha256) in script/requirements-flower.txt, re-created when that file
# changes. Federated runs use it read-only, inside the sandbox, so it is made with the system's
# own Python (/usr/bin/python3, which the sandbox mounts), never a user's. Idempotent; prints the
# environment's folder.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

python=/usr/bin/python3
script/sandbox-deps.sh
version="$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
if [[ "$version" != "3.11" ]]; then
  echo "flower-deps: $python is Python $version; the pinned wheels are for 3.11" >&2
  exit 1
fi

venv=target/flower-venv
requirements=script/requirements-flower.txt
stamp="$venv/requirements.sha256"
want="$(sha256sum "$requirements" | cut -d' ' -f1)"
if [[ ! -x "$venv/bin/flower-supernode" || "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
  echo "flower-deps: installing Flower into $venv (pinned in $requirements)" >&2
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps --require-hashes \
    --only-binary :all: -r "$requirements"
  # Readable by every account: the jobs' account runs it inside the sandbox.
  chmod -R a+rX "$venv"
  echo "$want" > "$stamp"
fi
echo "$PWD/$venv"
