#!/usr/bin/env bash
# wrk (Debian's package), the HTTP load generator of bench/admission.py.
# A no-op when it is installed. Like install-container-tools.sh: apt-get as root, through sudo otherwise.
set -euo pipefail
command -v wrk >/dev/null 2>&1 && exit 0
command -v apt-get >/dev/null || { echo "install-wrk: needs apt-get (Debian's wrk package)" >&2; exit 1; }
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq wrk >/dev/null
