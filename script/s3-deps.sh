#!/usr/bin/env bash
# Installs moto, an S3-compatible server the keeper's storage tests start, into a virtual
# environment under target/ holding exactly the versions pinned in script/requirements-s3.txt
# (re-created when that file changes). Idempotent; prints the server's path.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

venv=target/moto-venv
requirements=script/requirements-s3.txt
stamp="$venv/requirements.sha256"
want="$(sha256sum "$requirements" | cut -d' ' -f1)"
if [[ ! -x "$venv/bin/moto_server" || "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
  echo "s3-deps: installing moto into $venv (pinned in $requirements)" >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps -r "$requirements"
  echo "$want" > "$stamp"
fi
echo "$PWD/$venv/bin/moto_server"
