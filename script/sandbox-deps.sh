#!/usr/bin/env bash
# Installs what the compute sandbox needs from Debian: bubblewrap (namespaces) and Python 3 (the
# runtime of the sample algorithms and of the sandbox's tests, with venv for the Flower
# environment of federated runs), and busybox (the tools of the
# Kubernetes backend's helper image, for its tests). Idempotent: installs only what is
# missing. Needs root, or sudo without a password.
set -euo pipefail

missing=()
command -v bwrap >/dev/null 2>&1 || missing+=(bubblewrap)
[[ -x /usr/bin/python3 ]] || missing+=(python3)
# Federated runs' Flower environment is a virtual environment of the system's Python.
/usr/bin/python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
# The Kubernetes backend's tests run its collector's and probes' scripts with busybox's tools,
# as its helper image has them.
[[ -x /usr/bin/busybox ]] || missing+=(busybox)
if (( ${#missing[@]} == 0 )); then
  exit 0
fi

sudo=()
if [[ "$(id -u)" != 0 ]]; then
  sudo=(sudo -n)
fi
echo "sandbox-deps: installing ${missing[*]} (Debian)" >&2
export DEBIAN_FRONTEND=noninteractive
if ! "${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null; then
  "${sudo[@]}" apt-get update >/dev/null
  "${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null
fi
