#!/usr/bin/env bash
# Puts promtool (Prometheus' rule checker and rule unit-test runner) into a cache outside the repository, for
# tests/unit/test_observability.py (`promtool check rules`, `promtool test rules` on manifests/observability).
# It comes from Debian's `prometheus` package (apt-get download: no root needed once the package lists exist; as
# root it runs `apt-get update` first if the package is not found). Only the promtool binary is kept.
# Idempotent: skips the download when the cached binary runs. Prints the binary's path on its last line.
set -euo pipefail
cache=${PSMDB_BACKUP_CACHE:-$HOME/.cache/psmdb-backup-webhook}
dir="$cache/promtool"
bin="$dir/promtool"

if [ -x "$bin" ] && "$bin" --version >/dev/null 2>&1; then
  echo "$bin"
  exit 0
fi

command -v apt-get >/dev/null || { echo "get-promtool: needs apt-get (Debian's prometheus package)" >&2; exit 1; }
mkdir -p "$dir"
work=$(mktemp -d "$dir/.download.XXXXXX")
trap 'rm -rf "$work"' EXIT
download() { (cd "$work" && apt-get download -q prometheus >/dev/null 2>"$work/apt.log"); }
if ! download; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -q >/dev/null 2>&1 || true
    download || { cat "$work/apt.log" >&2; exit 1; }
  else
    cat "$work/apt.log" >&2
    echo "get-promtool: run 'apt-get update' (as root) and retry" >&2
    exit 1
  fi
fi
deb=$(ls "$work"/prometheus_*.deb)
dpkg-deb -x "$deb" "$work/x"
"$work/x/usr/bin/promtool" --version >/dev/null
mv -f "$work/x/usr/bin/promtool" "$bin.tmp" && mv -f "$bin.tmp" "$bin"  # atomic: concurrent runs see old or new
echo "promtool ready: $("$bin" --version 2>&1 | head -n1)" >&2
echo "$bin"
