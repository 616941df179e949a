#!/usr/bin/env bash
# Installs the npm toolchain (solcjs, OpenZeppelin, anvil, forge) at the versions locked in
# package-lock.json, but only when node_modules/ is missing or package-lock.json changed since the
# last install: the sha256 of the lockfile is kept in node_modules/.insitu-lock.sha256.
#
# This uses `npm install --no-save` rather than `npm ci`: registry mirrors may lack some of
# the other-platform binaries that @foundry-rs/anvil and @foundry-rs/forge list as optional
# dependencies, so they are absent from the lockfile, and `npm ci` refuses such a lockfile as out
# of sync. `npm install` installs the same locked versions and leaves the lockfile untouched.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

stamp=node_modules/.insitu-lock.sha256
want="$(sha256sum package-lock.json | cut -d' ' -f1)"

if [[ -d node_modules && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  exit 0
fi

if ! command -v npm >/dev/null 2>&1; then
  echo "npm-deps: npm is not installed; install Node.js (20 or later) with npm" >&2
  exit 1
fi

echo "npm-deps: installing the npm toolchain (npm install, versions from package-lock.json)"
npm install --no-save --no-audit --no-fund </dev/null
echo "$want" >"$stamp"
