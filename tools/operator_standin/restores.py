"""The Restore state machine (OP v1.23.0@b15af500 pkg/controller/perconaservermongodbrestore/:
psmdb_restore_controller.go:100-302, logical.go, physical.go:45-332): by `backupName`, by `backupSource` (destination
plus a storage block or a `storageName`), point in time (`pitr.type: date|latest`), selective (`selective.namespaces`,
`withUsersAndRoles`), namespace cloning (`nsFrom`/`nsTo`) and replica-set remapping.

    ""/waiting --valid, backup ready, lock, PITR off--> requested --PBM running--> running --PBM done--> ready
                                                                    \\____________ PBM error ____________> error

It shares the per-cluster lock with backups, so a backup requested during a restore waits. PITR is switched off in
PBM before the restore and back on afterwards when the cluster wants it. Physical and incremental restores run
through PBM as well and end with the `percona.com/resync-pbm` annotation on the cluster (the operator then
re-creates the database pods); snapshot (external) restores are not supported by this engine.

Crash safety is the same as for backups: `requested` is written before `pbm restore`, and a `requested` Restore
without a PBM name adopts the PBM restore started since then.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from webhook.controller.kubeapi import KubeError, psmdb_path
from webhook.controller.leases import Held, holder_of, lock_name
from webhook.controller.pbmread import PBMBusy, PBMError, PBMNotFound, PBMTimeout, PBMTransportError
from webhook.times import parse_rfc3339

from . import clusters, pbmconfig
from .backups import FINALIZER_LOCK
from .runtime import StateMachine, cluster_ref, credential_secrets, rfc3339

log = logging.getLogger(__name__)

KIND = "PerconaServerMongoDBRestore"
SOURCE_STORAGES = ("azure", "s3", "minio", "gcs", "filesystem", "oss")  # the operator's order of preference
EXTERNAL_UNSUPPORTED = "restoring a snapshot (type: external) backup is not supported by the operator stand-in"


class Source:
    """What a restore restores from: the PBM backup name, its type, and which PBM storage knows it."""

    def __init__(
        self, pbm_name: str, type: str, profile: str | None = None, extra_profile: Mapping[str, Any] | None = None
    ) -> None:
        self.pbm_name, self.type, self.profile, self.extra_profile = pbm_name, type, profile, extra_profile


class RestoreReconciler(StateMachine):
    noun = "restore"
    logger = log

    def transitions(self) -> Any:
        return self.ctx.metrics.restore_transitions

    async def _fail(self, obj: dict[str, Any], message: str, cluster: Mapping[str, Any] | None) -> None:
        await self._finish(obj, cluster, "error", "RestoreFailed", message, warning=True, error=message)

    async def _finish(
        self,
        obj: dict[str, Any],
        cluster: Mapping[str, Any] | None,
        state: str,
        event: str,
        message: str,
        **status: Any,
    ) -> None:
        """PITR back on (if this restore turned it off) before the terminal state is written, so that `ready`
        means done; then the cluster's lock is released."""
        started = (obj.get("status") or {}).get("state") in ("requested", "running")
        if cluster is not None and started:
            await self._pitr(cluster, on=True)
        await self._set(obj, state, event, message, **status)
        if cluster is not None:
            meta = obj["metadata"]
            await self.ctx.leases.release(meta["namespace"], lock_name(cluster["metadata"]["name"]), holder_of(obj))

    async def _pitr(self, cluster: Mapping[str, Any], *, on: bool) -> None:
        """Off before a restore; back on afterwards only if the cluster has it enabled."""
        pitr = (clusters.backup_spec(cluster).get("pitr") or {}).get("enabled") is True
        if on and not pitr:
            return
        try:
            await self.ctx.driver.set_config_value(cluster_ref(cluster), "pitr.enabled", "true" if on else "false")
        except PBMError as e:
            if not on:
                raise
            log.warning(
                "could not re-enable PITR on %s/%s: %s",
                cluster["metadata"]["namespace"],
                cluster["metadata"]["name"],
                e.message,
            )

    # ------------------------------------------------------------------ new / waiting

    async def _source(self, obj: dict[str, Any], cluster: dict[str, Any]) -> Source | str | None:
        """The backup to restore; a str is a failure message; None means wait (the Backup is not ready yet)."""
        spec, ns = obj.get("spec") or {}, obj["metadata"]["namespace"]
        main = pbmconfig.main_storage(cluster)
        if spec.get("backupName"):
            bcp = self.ctx.backups.get((ns, spec["backupName"]))
            if bcp is None:
                return f'perconaservermongodbbackups.psmdb.percona.com "{spec["backupName"]}" not found'
            st = bcp.get("status") or {}
            if st.get("state") == "error":
                return "backup is in error state"
            if st.get("state") != "ready" or not st.get("pbmName"):
                return None
            storage = st.get("storageName") or ""
            return Source(st["pbmName"], st.get("type") or "logical", None if storage == main else storage)
        src = spec.get("backupSource") or {}
        pbm_name = str(src.get("destination") or "").rsplit("/", 1)[-1]
        if not pbm_name:
            return "backupSource destination has no backup name (it ends with '/')"
        if spec.get("storageName"):
            if spec["storageName"] not in pbmconfig.storages(cluster):
                return f"unable to get storage '{spec['storageName']}'"
            return Source(
                pbm_name, src.get("type") or "logical", None if spec["storageName"] == main else spec["storageName"]
            )
        kind = next((k for k in SOURCE_STORAGES if isinstance(src.get(k), Mapping)), None)
        if kind is None:
            return (
                "one of storageName, backupSource.minio, backupSource.s3, backupSource.gcs, backupSource.azure, "
                "backupSource.oss or backupSource.filesystem is required"
            )
        storage = {"type": kind, kind: src[kind]}
        get = await self.ctx.secrets_for(ns, credential_secrets(storage))
        try:
            conf = pbmconfig.storage_config(storage, get)
        except pbmconfig.ConfigError as e:
            return f"get pbm config: get storage config: {e}"
        profile = f"{obj['metadata']['name']}-backup-source"
        return Source(pbm_name, src.get("type") or "logical", profile, {profile: {"storage": conf}})

    async def _new(self, obj: dict[str, Any], cluster: dict[str, Any] | None, state: str) -> float | None:
        ctx, spec, meta = self.ctx, obj.get("spec") or {}, obj["metadata"]
        problem = await ctx.validation_error(obj)
        if problem:
            await self._fail(obj, problem, None)
            return None
        if cluster is None:
            await self._fail(
                obj, f'perconaservermongodbs.psmdb.percona.com "{spec.get("clusterName")}" not found', None
            )
            return None
        if (cluster.get("spec") or {}).get("unmanaged"):
            await self._fail(obj, "can't run restore in an unmanaged cluster", None)
            return None
        try:
            source = await self._source(obj, cluster)
        except pbmconfig.ConfigError as e:
            await self._fail(obj, str(e), None)
            return None
        if isinstance(source, str):
            await self._fail(obj, source, None)
            return None
        if source is None:
            self._log(
                obj,
                logging.INFO,
                "restore %s/%s waits: backup %s is not ready",
                meta["namespace"],
                meta["name"],
                spec.get("backupName"),
            )
            return ctx.settings.poll_interval
        if source.type == "external":
            await self._fail(obj, EXTERNAL_UNSUPPORTED, None)
            return None
        if source.type != "logical" and spec.get("selective"):
            await self._fail(obj, "`.spec.selective` field is supported only for logical backups", None)
            return None
        held = await ctx.leases.acquire(
            meta["namespace"],
            lock_name(cluster["metadata"]["name"]),
            holder_of(obj),
            ctx.settings.lock_duration,
            ctx.may_steal,
        )
        if isinstance(held, Held):
            if state != "waiting":
                await self._set(obj, "waiting", "RestoreWaiting", f"the cluster is busy ({held.holder})")
            return ctx.settings.poll_interval
        obj = await ctx.add_finalizer(obj, FINALIZER_LOCK)
        try:
            await clusters.ensure_config(ctx, cluster, source.extra_profile)
            target = await self._pitr_time(obj, cluster)  # before PITR stops: `latest` is where the oplog ends now
            await self._pitr(cluster, on=False)
        except pbmconfig.ConfigError as e:
            await self._fail(obj, str(e), cluster)
            return None
        except PBMError as e:
            if state != "waiting":
                await self._set(obj, "waiting", "RestoreWaiting", f"PBM is not ready for the restore: {e.message}")
            return ctx.settings.poll_interval
        obj = await self._set(
            obj,
            "requested",
            "RestoreRequested",
            f"restoring PBM backup {source.pbm_name}" + (f" to {target:%Y-%m-%d %H:%M:%S} UTC" if target else ""),
            error=None,
            pbmName=None,
            pitrTarget=target.strftime("%Y-%m-%dT%H:%M:%S") if target else None,
        )
        return await self._start(obj, cluster, source)

    async def _pitr_time(self, obj: dict[str, Any], cluster: dict[str, Any]) -> datetime | None:
        pitr = (obj.get("spec") or {}).get("pitr") or {}
        if not pitr:
            return None
        if pitr.get("type") == "date":
            return datetime.strptime(pitr["date"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
        latest = await self.ctx.driver.pitr_latest(cluster_ref(cluster))
        if latest is None:
            raise pbmconfig.ConfigError(
                "no point-in-time range to restore to: PITR must be enabled and have oplog after a base backup"
            )
        return latest

    async def _start(self, obj: dict[str, Any], cluster: dict[str, Any], source: Source | None = None) -> float | None:
        ctx, spec, status, meta = self.ctx, obj.get("spec") or {}, obj.get("status") or {}, obj["metadata"]
        ref = cluster_ref(cluster)
        since = parse_rfc3339(status.get("lastTransition")) or ctx.clock()
        try:
            name = await ctx.driver.find_restore_since(ref, since)
            if name:
                self._log(
                    obj,
                    logging.WARNING,
                    "adopting PBM restore %s started for %s/%s before a restart",
                    name,
                    meta["namespace"],
                    meta["name"],
                )
            else:
                if source is None:
                    found = await self._source(obj, cluster)
                    if not isinstance(found, Source):
                        await self._fail(obj, found or "the backup is no longer ready", cluster)
                        return None
                    source = found
                target = status.get("pitrTarget") or None
                sel = spec.get("selective") or {}
                name = await ctx.driver.start_restore(
                    ref,
                    source.pbm_name,
                    time=target,
                    namespaces=sel.get("namespaces") or (),
                    ns_from=sel.get("nsFrom"),
                    ns_to=sel.get("nsTo"),
                    replset_remapping=spec.get("replsetRemapping") or None,
                    with_users_and_roles=bool(sel.get("withUsersAndRoles")),
                )
            ctx.metrics.pbm_commands.labels("restore", "ok").inc()
        except (PBMBusy, PBMTransportError, PBMTimeout) as e:
            ctx.metrics.pbm_commands.labels("restore", "retry").inc()
            deadline = clusters.starting_deadline(cluster, ctx.settings.default_starting_deadline)
            if (ctx.clock() - since).total_seconds() >= deadline:
                await self._fail(obj, f"restore did not start within {deadline}s: {e.message}", cluster)
                return None
            return ctx.settings.poll_interval
        except PBMError as e:
            ctx.metrics.pbm_commands.labels("restore", "error").inc()
            await self._fail(obj, e.message, cluster)
            return None
        await self._set(obj, "requested", "RestoreStarted", f"PBM restore {name} started", always=True, pbmName=name)
        return ctx.settings.poll_interval

    # ------------------------------------------------------------------ requested / running

    async def _active(self, obj: dict[str, Any], cluster: dict[str, Any] | None) -> float | None:
        ctx, status, meta = self.ctx, obj.get("status") or {}, obj["metadata"]
        if cluster is None:
            await self._fail(
                obj,
                f'perconaservermongodbs.psmdb.percona.com "{(obj.get("spec") or {}).get("clusterName")}" not found',
                None,
            )
            return None
        await ctx.leases.acquire(
            meta["namespace"],
            lock_name(cluster["metadata"]["name"]),
            holder_of(obj),
            ctx.settings.lock_duration,
            ctx.may_steal,
        )
        if not status.get("pbmName"):
            return await self._start(obj, cluster)
        try:
            info = await ctx.driver.restore_status(cluster_ref(cluster), status["pbmName"])
        except PBMNotFound:
            info = None
        except PBMError as e:
            self._log(obj, logging.WARNING, "cannot read PBM restore %s: %s", status["pbmName"], e.message)
            return ctx.settings.poll_interval
        if info is None:
            return ctx.settings.poll_interval
        if info.status == "error" or info.status == "canceled":
            await self._fail(obj, info.error or f"PBM restore {info.name} {info.status}", cluster)
            return None
        if info.status == "done":
            if info.type in ("physical", "incremental"):
                await self._annotate_resync(cluster)
            await self._finish(
                obj,
                cluster,
                "ready",
                "RestoreReady",
                f"PBM restore {info.name} is done",
                completed=rfc3339(info.finish_time or info.last_transition_time or ctx.clock()),
            )
            return None
        if status.get("state") != "running" and info.status != "starting":
            await self._set(obj, "running", "RestoreRunning", f"PBM restore {info.name} is {info.status}")
        return ctx.settings.poll_interval

    async def _annotate_resync(self, cluster: Mapping[str, Any]) -> None:
        meta = cluster["metadata"]
        await self.ctx.kube.patch(
            psmdb_path("PerconaServerMongoDB", meta["namespace"], meta["name"]),
            {"metadata": {"annotations": {clusters.RESYNC_ANNOTATION: "true"}}},
        )

    async def _finalize(self, obj: dict[str, Any]) -> float | None:
        meta = obj["metadata"]
        finalizers = list(meta.get("finalizers") or [])
        if FINALIZER_LOCK not in finalizers:
            return None
        cluster = self.ctx.cluster_of(obj)
        if cluster is not None:
            await self.ctx.leases.release(meta["namespace"], lock_name(cluster["metadata"]["name"]), holder_of(obj))
        try:
            await self.ctx.kube.patch(
                psmdb_path(KIND, meta["namespace"], meta["name"]),
                {
                    "metadata": {
                        "finalizers": [f for f in finalizers if f != FINALIZER_LOCK] or None,
                        "resourceVersion": meta["resourceVersion"],
                    }
                },
            )
        except KubeError as e:
            if e.conflict:
                return 1.0
            if not e.not_found:
                raise
        return None
