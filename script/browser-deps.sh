#!/usr/bin/env bash
# Debian's Chromium, for the catalog's browser tests (driven by playwright-core from npm), when it
# is missing. Prints the browser's path.
set -euo pipefail

find_chromium() {
  for candidate in chromium chromium-browser; do
    if command -v "$candidate" >/dev/null 2>&1; then
      command -v "$candidate"
      return 0
    fi
  done
  return 1
}

if ! find_chromium >/dev/null; then
  sudo=()
  if [[ "$(id -u)" != 0 ]]; then
    sudo=(sudo -n)
  fi
  echo "browser-deps: installing chromium (Debian)" >&2
  export DEBIAN_FRONTEND=noninteractive
  if ! "${sudo[@]}" apt-get install -y --no-install-recommends chromium fonts-dejavu-core >/dev/null; then
    "${sudo[@]}" apt-get update >/dev/null
    "${sudo[@]}" apt-get install -y --no-install-recommends chromium fonts-dejavu-core >/dev/null
  fi
fi
find_chromium
