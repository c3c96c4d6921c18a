#!/usr/bin/env bash
# Builds helm from its Go module (helm.sh/helm/v4) into a cache outside the repository, keyed by version.
# Skips the build when the binary is already there. Prints the binary's path on its last line.
set -euo pipefail
HELM_VERSION=v4.3.2
cache=${PSMDB_BACKUP_CACHE:-$HOME/.cache/psmdb-backup-webhook}
bin="$cache/helm-$HELM_VERSION"
if [ ! -x "$bin/helm" ]; then
  echo "building helm $HELM_VERSION (cold: a few minutes on 2 cores)" >&2
  mkdir -p "$bin"
  CGO_ENABLED=0 GOFLAGS=-mod=mod GOBIN="$bin" go install -trimpath -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=$HELM_VERSION" "helm.sh/helm/v4/cmd/helm@$HELM_VERSION"
fi
echo "$bin/helm"
