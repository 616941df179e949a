#!/usr/bin/env bash
# Debian's PostgreSQL server, for the catalog's tests on PostgreSQL (each test binary starts a
# private cluster of its own in a temporary folder), when it is missing.
set -euo pipefail

if command -v pg_config >/dev/null 2>&1 && [[ -x "$(pg_config --bindir)/initdb" ]]; then
  exit 0
fi
if compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
  exit 0
fi

sudo=()
if [[ "$(id -u)" != 0 ]]; then
  sudo=(sudo -n)
fi
echo "postgres-deps: installing postgresql (Debian)" >&2
export DEBIAN_FRONTEND=noninteractive
if ! "${sudo[@]}" apt-get install -y --no-install-recommends postgresql >/dev/null; then
  "${sudo[@]}" apt-get update >/dev/null
  "${sudo[@]}" apt-get install -y --no-install-recommends postgresql >/dev/null
fi
