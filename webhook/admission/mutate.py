"""Mutation of PSMDB database pods: add the backup-agent sidecar exactly as the operator renders it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from .. import sidecar
from ..kube import DeadlineLookup, LiveLookup
from ..policy import kinds
from ..policy.lookup import Found, Missing

DEFAULT_BACKUP_IMAGE = "percona/percona-backup-mongodb:2.15.0"  # what operator 1.23.0 deploys


@dataclass(frozen=True)
class Mutation:
    patch: list[dict]
    reason: str
    warnings: list[str]


def defaults_cluster(identity: sidecar.PodIdentity, namespace: str, image: str) -> dict[str, Any]:
    """The cluster as the latest crVersion's defaults describe it, for when the real one cannot be read."""
    spec: dict[str, Any] = {"crVersion": sidecar.LATEST_CR_VERSION, "backup": {"enabled": True, "image": image}}
    if identity.component == sidecar.CFG:
        spec["sharding"] = {"enabled": True, "configsvrReplSet": {"size": 3}}
    if identity.replset and identity.component != sidecar.CFG:
        spec["replsets"] = [{"name": identity.replset, "size": 3}]
    return {
        "apiVersion": f"{kinds.GROUP}/v1",
        "kind": kinds.CLUSTER,
        "metadata": {"name": identity.cluster, "namespace": namespace},
        "spec": spec,
    }


async def mutate_pod(
    pod: Mapping[str, Any], namespace: str, lookup: LiveLookup | DeadlineLookup, *, default_image: str
) -> Mutation:
    identity = sidecar.identify(pod)
    if identity is None or not sidecar.wants_sidecar(identity):
        patch, reason = sidecar.plan(pod, None)
        return Mutation(patch, reason, [])
    cluster_ref = (kinds.CLUSTER, namespace, identity.cluster)
    found = (await lookup.fetch([cluster_ref]))[cluster_ref]
    warnings: list[str] = []
    if isinstance(found, Found):
        cluster = dict(found.obj)
    elif isinstance(found, Missing):
        return Mutation([], f"PerconaServerMongoDB {namespace}/{identity.cluster} does not exist", [])
    else:
        cluster = defaults_cluster(identity, namespace, default_image)
        warnings.append(
            f"psmdb-backup-webhook could not read PerconaServerMongoDB {identity.cluster} ({found.error}); "
            f"backup-agent rendered with crVersion {sidecar.LATEST_CR_VERSION} defaults and image "
            f"{default_image}"
        )
    spec = cluster.get("spec") or {}
    ssl_name = (spec.get("secrets") or {}).get("ssl") or f"{identity.cluster}-ssl"
    ssl_ref = ("Secret", namespace, ssl_name)
    ssl = (await lookup.fetch([ssl_ref]))[ssl_ref]
    keys = set(ssl.obj.get("data") or {}) | set(ssl.obj.get("stringData") or {}) if isinstance(ssl, Found) else None
    pbm_version = (cluster.get("status") or {}).get("backupVersion")
    patch, reason = sidecar.plan(
        pod, cluster, ssl_secret_keys=keys, pbm_version=pbm_version, config_loader=yaml.safe_load
    )
    return Mutation(patch, reason, warnings if patch else [])
