#!/usr/bin/env bash
# Builds kubeconform (a Kubernetes manifest validator) from its Go module into a cache outside the repository, for
# tests/unit/test_schemas_kubeconform.py, which runs it with the schemas of `psmdb-backup schemas export`.
# Idempotent: skips the build when the cached binary runs. Prints the binary's path on its last line.
set -euo pipefail
version=v0.8.0
cache=${PSMDB_BACKUP_CACHE:-$HOME/.cache/psmdb-backup-webhook}
dir="$cache/kubeconform-$version"
bin="$dir/kubeconform"
if [ -x "$bin" ] && "$bin" -v >/dev/null 2>&1; then
  echo "$bin"
  exit 0
fi
command -v go >/dev/null || { echo "build-kubeconform: needs the go toolchain" >&2; exit 1; }
mkdir -p "$dir"
GOFLAGS=-mod=mod GOBIN="$dir" go install "github.com/yannh/kubeconform/cmd/kubeconform@$version"
"$bin" -v >/dev/null
echo "$bin"
