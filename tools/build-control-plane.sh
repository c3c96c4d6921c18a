#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, etcd and kwok from their Go modules into
# a cache outside the repository, keyed by version. Skips every binary that is already there.
# Prints the binary directory on its last line.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
K8S_VERSION=v1.34.3 ETCD_VERSION=v3.6.5 KWOK_VERSION=v0.7.0
cache=${PSMDB_BACKUP_CACHE:-$HOME/.cache/psmdb-backup-webhook}
bin="$cache/control-plane/k8s-$K8S_VERSION-etcd-$ETCD_VERSION-kwok-$KWOK_VERSION"
mkdir -p "$bin"
export CGO_ENABLED=0 GOFLAGS=-mod=mod
start=$(date +%s)

have() { for b in "$@"; do [ -x "$bin/$b" ] || return 1; done; }

if ! have kube-apiserver kube-controller-manager kube-scheduler kubectl; then
  echo "building kubernetes $K8S_VERSION (cold: about 6 minutes on 2 cores)" >&2
  minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
  x() { for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do printf -- '-X %s.%s=%s ' "$p" "$1" "$2"; done; }
  ldf="-s -w $(x gitVersion "$K8S_VERSION")$(x gitMajor 1)$(x gitMinor "$minor")$(x gitTreeState clean)$(x buildDate "$(date -u +%Y-%m-%dT%H:%M:%SZ)")"
  (cd "$here/k8s" && go build -trimpath -tags selinux,notest -ldflags "$ldf" -o "$bin/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl)
fi
if ! have etcd; then
  echo "building etcd $ETCD_VERSION" >&2
  (cd "$here/etcd" && go build -trimpath -ldflags "-s -w" -o "$bin/etcd" go.etcd.io/etcd/server/v3)
fi
if ! have kwok; then
  echo "building kwok $KWOK_VERSION" >&2
  (cd "$here/kwok" && go build -trimpath -ldflags "-s -w" -o "$bin/kwok" sigs.k8s.io/kwok/cmd/kwok)
fi
echo "control plane binaries ready in $(( $(date +%s) - start ))s" >&2
echo "$bin"
