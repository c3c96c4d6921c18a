"""`psmdb-backup inject`: offline injection of the backup-agent sidecar for GitOps, in the manner of
`istioctl kube-inject`. Pods and StatefulSets get exactly the patch the mutating webhook would return
(`sidecar.plan`), applied with jsonpatch; the PerconaServerMongoDB comes from the same input or --cluster-file."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import jsonpatch
import yaml

from . import sidecar
from .policy import kinds
from .policy.common import mapping


@dataclass(frozen=True)
class Injected:
    obj: dict[str, Any]
    reason: str  # one sentence: what was done, or why nothing was


def _clusters(docs: Iterable[Any]) -> dict[tuple[str, str], Mapping[str, Any]]:
    out: dict[tuple[str, str], Mapping[str, Any]] = {}
    for d in docs:
        if isinstance(d, dict) and d.get("kind") == kinds.CLUSTER and isinstance(d.get("metadata"), dict):
            out[(d["metadata"].get("namespace") or "default", d["metadata"].get("name", ""))] = d
    return out


def inject_pod(
    pod: dict[str, Any], cluster: Mapping[str, Any] | None, *, ssl_secret_keys=None, known_volumes: Iterable[str] = ()
) -> tuple[dict[str, Any], str]:
    patch, reason = sidecar.plan(
        pod, cluster, ssl_secret_keys=ssl_secret_keys, config_loader=yaml.safe_load, known_volumes=tuple(known_volumes)
    )
    return (jsonpatch.apply_patch(pod, patch) if patch else pod), reason


def inject(
    obj: dict[str, Any], clusters: Mapping[tuple[str, str], Mapping[str, Any]], *, ssl_secret_keys=None
) -> Injected:
    """One object with the sidecar added where the operator would add it; everything else unchanged."""
    kind = obj.get("kind") if isinstance(obj, dict) else None
    if kind not in ("Pod", "StatefulSet"):
        return Injected(obj, f"{kind or 'document'}: not a Pod or StatefulSet")
    meta = mapping(obj.get("metadata"))
    namespace = meta.get("namespace") or "default"
    if kind == "Pod":
        pod = obj
        known: tuple[str, ...] = ()
    else:
        spec = mapping(obj.get("spec"))
        template = mapping(spec.get("template"))
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": template.get("metadata") or {},
            "spec": template.get("spec") or {},
        }
        known = tuple(
            t.get("metadata", {}).get("name", "") for t in spec.get("volumeClaimTemplates") or [] if isinstance(t, dict)
        )
    identity = sidecar.identify(pod)
    cluster = clusters.get((namespace, identity.cluster)) if identity else None
    patched, reason = inject_pod(copy.deepcopy(pod), cluster, ssl_secret_keys=ssl_secret_keys, known_volumes=known)
    if kind == "Pod":
        return Injected(patched, f"Pod {namespace}/{meta.get('name')}: {reason}")
    out = copy.deepcopy(obj)
    out["spec"]["template"]["metadata"], out["spec"]["template"]["spec"] = patched["metadata"], patched["spec"]
    return Injected(out, f"StatefulSet {namespace}/{meta.get('name')}: {reason}")


def inject_documents(docs: list[Any], cluster_docs: Iterable[Any] = (), *, ssl_secret_keys=None) -> list[Injected]:
    clusters = _clusters([*docs, *cluster_docs])
    return [
        inject(d, clusters, ssl_secret_keys=ssl_secret_keys) if isinstance(d, dict) else Injected(d, "not an object")
        for d in docs
    ]
