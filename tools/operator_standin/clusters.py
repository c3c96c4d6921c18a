"""Per-cluster facts the backup and restore reconcilers ask for, and the PBM configuration apply
(OP v1.23.0@b15af500 pkg/controller/perconaservermongodb/pbm.go:98-219).

The applied configuration's digest is kept in an annotation on the cluster, so a restarted controller (or the other
replica) does not re-apply an unchanged config; credentials are part of the digest, so a rotated key is applied.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from webhook.controller.kubeapi import psmdb_path
from webhook.controller.pbmread import PBMError
from webhook.versions import Version

from . import pbmconfig
from .runtime import Ctx, cluster_ref, cluster_secrets

log = logging.getLogger(__name__)

CONFIG_HASH_ANNOTATION = "psmdb-backup-webhook.io/pbm-config-hash"
RESYNC_ANNOTATION = "percona.com/resync-pbm"


def backup_spec(cluster: Mapping[str, Any]) -> Mapping[str, Any]:
    b = (cluster.get("spec") or {}).get("backup") or {}
    return b if isinstance(b, Mapping) else {}


def cr_version(cluster: Mapping[str, Any]) -> Version:
    """The cluster's crVersion; an empty one is the operator's own (it patches it in), i.e. current."""
    return Version.parse((cluster.get("spec") or {}).get("crVersion")) or Version(99)


def starting_deadline(cluster: Mapping[str, Any] | None, default: int) -> int:
    """The cluster's `backup.startingDeadlineSeconds` (>0), else the default (OP v1.23.0@b15af500
    pkg/controller/perconaservermongodbbackup/backup.go:257-271)."""
    v = backup_spec(cluster or {}).get("startingDeadlineSeconds")
    return int(v) if isinstance(v, int) and v > 0 else default


def cannot_backup(cluster: Mapping[str, Any]) -> str | None:
    """`CanBackup()` (OP v1.23.0@b15af500 pkg/apis/psmdb/v1/psmdb_types.go:1751-1778): None when a backup may start
    now."""
    status = cluster.get("status") or {}
    state = status.get("state") or ""
    if state == "ready":
        return None
    conditions = status.get("conditions") or []
    if state == "initializing" and any(
        c.get("type") == "pendingSmartUpdate" and c.get("status") == "True"
        for c in conditions
        if isinstance(c, Mapping)
    ):
        return None
    spec = cluster.get("spec") or {}
    if cr_version(cluster) <= Version(1, 15):
        allowed, flag = spec.get("allowUnsafeConfigurations") is True, "allowUnsafeConfigurations"
    else:
        allowed, flag = (
            (spec.get("unsafeFlags") or {}).get("backupIfUnhealthy") is True,
            "spec.unsafeFlags.backupIfUnhealthy",
        )
    if not allowed:
        return f"{flag} must be true to run backup on cluster with status {state}"
    for rs, rs_status in (status.get("replsets") or {}).items():
        if isinstance(rs_status, Mapping) and not rs_status.get("ready"):
            return f"{rs} has no ready nodes"
    return None


def replset_names(cluster: Mapping[str, Any]) -> list[str]:
    """cfg first when sharded, then `spec.replsets` names (OP v1.23.0@b15af500
    pkg/apis/psmdb/v1/perconaservermongodbbackup_types.go:33-71)."""
    spec = cluster.get("spec") or {}
    names = [str(r.get("name")) for r in spec.get("replsets") or [] if isinstance(r, Mapping) and r.get("name")]
    if (spec.get("sharding") or {}).get("enabled"):
        names.insert(0, "cfg")
    return names


async def ensure_config(
    ctx: Ctx, cluster: dict[str, Any], extra_profiles: Mapping[str, Mapping[str, Any]] | None = None
) -> None:
    """Apply the cluster's PBM config when it differs from the last one applied. Raises ConfigError (the spec
    cannot be converted: a permanent error until the spec changes) or PBMError (PBM refused or was unreachable).
    `extra_profiles` (a restore's backup source) are added and never recorded."""
    key = (cluster["metadata"]["namespace"], cluster["metadata"]["name"])
    async with ctx.cluster_lock(key):  # the cluster pass and a backup's pass must not apply the same config twice
        await _ensure_config(ctx, ctx.clusters.get(key, cluster), extra_profiles)


async def _ensure_config(
    ctx: Ctx, cluster: dict[str, Any], extra_profiles: Mapping[str, Mapping[str, Any]] | None
) -> None:
    meta = cluster["metadata"]
    get = await ctx.secrets_for(meta["namespace"], cluster_secrets(cluster))
    main, profiles = pbmconfig.desired(cluster, get)
    digest = pbmconfig.config_hash(main, profiles)
    if not extra_profiles and (meta.get("annotations") or {}).get(CONFIG_HASH_ANNOTATION) == digest:
        return
    outcome = "error"
    try:
        result = await ctx.driver.apply_config(cluster_ref(cluster), main, {**profiles, **(extra_profiles or {})})
        outcome = "ok"
    finally:
        ctx.metrics.pbm_config_applies.labels(meta["namespace"], meta["name"], outcome).inc()
    log.info(
        "applied PBM config to %s/%s: main storage %s, profiles %s",
        meta["namespace"],
        meta["name"],
        pbmconfig.main_storage(cluster),
        sorted(profiles),
        extra={"namespace": meta["namespace"], "cluster": meta["name"]},
    )
    if extra_profiles:
        return
    updated = await ctx.kube.patch(
        psmdb_path("PerconaServerMongoDB", meta["namespace"], meta["name"]),
        {"metadata": {"annotations": {CONFIG_HASH_ANNOTATION: digest}}},
    )
    ctx.clusters[(meta["namespace"], meta["name"])] = {**updated, "kind": cluster.get("kind")}
    removed = result.get("profiles_removed") or []
    await ctx.events.emit(
        cluster,
        "PBMConfigApplied",
        f"PBM configuration applied: main storage "
        f"{pbmconfig.main_storage(cluster)}, profiles {sorted(profiles) or 'none'}"
        + (f", removed profiles {removed}" if removed else ""),
    )


async def reconcile_cluster(ctx: Ctx, cluster: dict[str, Any]) -> float | None:
    """Keep PBM's config in line with the cluster spec while the cluster runs with backups enabled."""
    if backup_spec(cluster).get("enabled") is False or not pbmconfig.storages(cluster):
        return None
    if (cluster.get("status") or {}).get("state") != "ready" or (cluster.get("spec") or {}).get("unmanaged"):
        return None  # the operator has not brought the database up yet: no pod to talk to
    try:
        await ensure_config(ctx, cluster)
    except pbmconfig.ConfigError as e:
        await ctx.events.emit(cluster, "PBMConfigInvalid", f"PBM configuration not applied: {e}", warning=True)
        return ctx.settings.config_retry * 4
    except PBMError as e:
        log.warning(
            "PBM config for %s/%s not applied yet: %s",
            cluster["metadata"]["namespace"],
            cluster["metadata"]["name"],
            e.message,
        )
        return ctx.settings.config_retry
    return None
