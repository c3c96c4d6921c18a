#!/usr/bin/env bash
# Builds tools/yamlscalars (kubectl's YAML-to-JSON step, sigs.k8s.io/yaml) into the cache outside the repository,
# keyed by a hash of its sources, for tests/unit/test_yaml_scalars.py. Prints the binary's path on its last line.
set -euo pipefail
src=$(cd "$(dirname "$0")/yamlscalars" && pwd)
cache=${PSMDB_BACKUP_CACHE:-$HOME/.cache/psmdb-backup-webhook}
key=$(cat "$src/main.go" "$src/go.mod" "$src/go.sum" | cksum | cut -d' ' -f1)
bin="$cache/yamlscalars/yamlscalars-$key"
if [ ! -x "$bin" ]; then
  mkdir -p "$cache/yamlscalars"
  (cd "$src" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -o "$bin.tmp" . && mv "$bin.tmp" "$bin")
fi
echo "$bin"
