#!/usr/bin/env bash
# podman, buildah, runc and debootstrap from Debian for the image end-to-end test (tests/e2e/test_image_e2e.py);
# shared/reference/container-images.md. A no-op when they are installed.
set -euo pipefail
missing=()
for tool in podman buildah runc debootstrap; do
  command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/sbin/$tool" ] || missing+=("$tool")
done
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq podman buildah debootstrap runc >/dev/null
