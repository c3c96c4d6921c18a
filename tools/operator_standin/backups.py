"""The Backup state machine (OP v1.23.0@b15af500
pkg/controller/perconaservermongodbbackup/psmdb_backup_controller.go:109-316, backup.go), one PBM backup per Backup
object.

    ""/waiting --validate, cluster can back up, lock--> requested --PBM running--> running --PBM done--> ready
         |                                                  \\___________________ PBM error/canceled ___> error
         +-- invalid spec / no cluster / starting deadline / external type ------------------------------> error

Crash safety: `requested` is written (with `lastTransition`) *before* `pbm backup` runs. A controller that finds a
`requested` Backup without a PBM name asks PBM for a backup started since then and adopts it, and starts one only if
there is none; the per-cluster lock guarantees that such a backup is ours.

This is the operator stand-in's (tools/operator_standin): where the operator has known faults
(tools/operator_standin/faults.py, design.md "Controller conventions"), this one does not have them unless asked
(`--fault`, faults.py): a running backup never goes back to `waiting` and never gets a second PBM backup
(RESTORE_RESETS); PBM `canceled` is an error (CANCELED_RUNNING); a deleted Backup releases its lock (LEAVE_LEASE). The
release-lock finalizer keeps other finalizers.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from webhook.controller.kubeapi import KubeError, psmdb_path
from webhook.controller.leases import Held, holder_of, lock_name
from webhook.controller.pbmread import BackupInfo, PBMBusy, PBMError, PBMNotFound, PBMTimeout, PBMTransportError
from webhook.policy.common import storage_block, text
from webhook.times import parse_rfc3339

from . import clusters, pbmconfig
from .faults import CANCELED_RUNNING, LEAVE_LEASE, RESTORE_RESETS
from .runtime import StateMachine, cluster_ref, rfc3339

log = logging.getLogger(__name__)

KIND = "PerconaServerMongoDBBackup"
FINALIZER_DELETE = "percona.com/delete-backup"
FINALIZER_DELETE_LEGACY = "delete-backup"
FINALIZER_LOCK = "internal.percona.com/release-lock"
EXTERNAL_UNSUPPORTED = (
    "snapshot (type: external) backups are not supported by the operator stand-in: it does not create VolumeSnapshots"
)


def pretty_size(n: int) -> str:
    """PBM's size formatting as the operator shows it (`1.00GB`)."""
    size = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{size:.2f}{unit}" if unit != "B" else f"{int(size)}B"
        size /= 1024
    return f"{n}B"


class BackupReconciler(StateMachine):
    noun = "backup"
    logger = log

    def transitions(self) -> Any:
        return self.ctx.metrics.backup_transitions

    async def _fail(self, obj: dict[str, Any], message: str, cluster: Mapping[str, Any] | None) -> None:
        updated = await self._set(obj, "error", "BackupFailed", message, warning=True, error=message)
        await self._finished(updated, cluster, "error")

    async def _finished(self, obj: dict[str, Any], cluster: Mapping[str, Any] | None, outcome: str) -> None:
        ctx, meta = self.ctx, obj["metadata"]
        status = obj.get("status") or {}
        started = parse_rfc3339(status.get("start"))
        if started is not None:
            ctx.metrics.backup_duration.labels(
                meta["namespace"],
                obj["spec"].get("clusterName", ""),
                status.get("type") or obj["spec"].get("type") or "logical",
                outcome,
            ).observe(max(0.0, (ctx.clock() - started).total_seconds()))
        if cluster is not None:
            await ctx.leases.release(meta["namespace"], lock_name(cluster["metadata"]["name"]), holder_of(obj))

    async def _new(self, obj: dict[str, Any], cluster: dict[str, Any] | None, state: str) -> float | None:
        ctx, spec, meta = self.ctx, obj.get("spec") or {}, obj["metadata"]
        now = ctx.clock()
        if state == "":
            deadline = spec.get("startingDeadlineSeconds") or clusters.backup_spec(cluster or {}).get(
                "startingDeadlineSeconds"
            )
            created = parse_rfc3339(meta.get("creationTimestamp"))
            if isinstance(deadline, int) and deadline > 0 and created and (now - created).total_seconds() >= deadline:
                await self._fail(obj, "starting deadline seconds exceeded", cluster)
                return None
        problem = await ctx.validation_error(obj)
        if problem:
            await self._fail(obj, problem, cluster)
            return None
        if cluster is None:
            await self._fail(obj, "cluster not found", None)
            return None
        if spec.get("type") == "external":
            await self._fail(obj, EXTERNAL_UNSUPPORTED, cluster)
            return None
        why = clusters.cannot_backup(cluster)
        if why:  # a change of the cluster (its status) re-queues this backup at once; the timer is for the deadline
            self._log(obj, logging.INFO, "backup %s/%s waits: %s", meta["namespace"], meta["name"], why)
            return max(ctx.settings.poll_interval, 30.0)
        if self._restore_running(cluster):
            await self._wait(obj, state, "a restore of the cluster is running")
            return ctx.settings.poll_interval
        held = await ctx.leases.acquire(
            meta["namespace"],
            lock_name(cluster["metadata"]["name"]),
            holder_of(obj),
            ctx.settings.lock_duration,
            ctx.may_steal,
        )
        if isinstance(held, Held):
            await self._wait(obj, state, f"another backup or restore holds the cluster's lock ({held.holder})")
            return ctx.settings.poll_interval
        if LEAVE_LEASE not in ctx.settings.faults:
            obj = await ctx.add_finalizer(obj, FINALIZER_LOCK)
        storage_name = spec.get("storageName") or ""
        storage = pbmconfig.storages(cluster).get(storage_name)
        if storage is None:
            await self._fail(obj, f"unable to get storage '{storage_name}'", cluster)
            return None
        try:
            await clusters.ensure_config(ctx, cluster)
        except pbmconfig.ConfigError as e:
            await self._fail(obj, str(e), cluster)
            return None
        except PBMError as e:
            await self._wait(obj, state, f"PBM configuration not applied yet: {e.message}")
            return ctx.settings.poll_interval
        body = storage_block(storage)
        block: dict[str, Any] = {text(storage.get("type")): body} if body is not None else {}
        obj = await self._set(
            obj,
            "requested",
            "BackupRequested",
            f"starting a {spec.get('type') or 'logical'} backup to storage {storage_name}",
            storageName=storage_name,
            type=spec.get("type") or "logical",
            start=rfc3339(now),
            error=None,
            pbmName=None,
            replsetNames=clusters.replset_names(cluster),
            **block,
        )
        return await self._start(obj, cluster, storage)

    async def _wait(self, obj: dict[str, Any], state: str, why: str) -> None:
        if state != "waiting":
            await self._set(obj, "waiting", "BackupWaiting", why)

    def _restore_running(self, cluster: Mapping[str, Any]) -> bool:
        """A Restore of the cluster runs. With RESTORE_RESETS as the operator's HasActiveJobs: any Restore not ready,
        error or waiting, a new one included."""
        ns, name = cluster["metadata"]["namespace"], cluster["metadata"]["name"]
        active = (
            ("", "requested", "running") if RESTORE_RESETS in self.ctx.settings.faults else ("requested", "running")
        )
        return any(
            r["metadata"]["namespace"] == ns
            and (r.get("spec") or {}).get("clusterName") == name
            and (r.get("status") or {}).get("state", "") in active
            for r in self.ctx.restores.values()
        )

    async def _start(self, obj: dict[str, Any], cluster: dict[str, Any], storage: Mapping[str, Any]) -> float | None:
        """Start (or adopt) the PBM backup of a `requested` Backup that has no PBM name yet."""
        ctx, spec, status, meta = self.ctx, obj["spec"], obj.get("status") or {}, obj["metadata"]
        ref = cluster_ref(cluster)
        since = parse_rfc3339(status.get("lastTransition")) or ctx.clock()
        main = pbmconfig.main_storage(cluster)
        try:
            pbm_name = await ctx.driver.find_backup_since(ref, since)
            if pbm_name:
                self._log(
                    obj,
                    logging.WARNING,
                    "adopting PBM backup %s started for %s/%s before a restart",
                    pbm_name,
                    meta["namespace"],
                    meta["name"],
                )
            else:
                out = await ctx.driver.start_backup(
                    ref,
                    meta["name"],
                    spec.get("type") or "logical",
                    compression=spec.get("compressionType") or "gzip",
                    level=spec.get("compressionLevel"),
                    profile=None if spec.get("storageName") == main else spec.get("storageName"),
                )
                pbm_name = out["name"]
            ctx.metrics.pbm_commands.labels("backup", "ok").inc()
        except (PBMBusy, PBMTransportError, PBMTimeout) as e:
            ctx.metrics.pbm_commands.labels("backup", "retry").inc()
            deadline = clusters.starting_deadline(cluster, ctx.settings.default_starting_deadline)
            if (ctx.clock() - since).total_seconds() >= deadline:
                await self._fail(obj, f"backup did not start within {deadline}s: {e.message}", cluster)
                return None
            self._log(
                obj,
                logging.INFO,
                "PBM backup for %s/%s not started yet: %s",
                meta["namespace"],
                meta["name"],
                e.message,
            )
            return ctx.settings.poll_interval
        except PBMError as e:
            ctx.metrics.pbm_commands.labels("backup", "error").inc()
            await self._fail(obj, e.message, cluster)
            return None
        await self._set(
            obj,
            "requested",
            "BackupStarted",
            f"PBM backup {pbm_name} started",
            always=True,
            pbmName=pbm_name,
            destination=pbmconfig.destination(storage, pbm_name),
        )
        return ctx.settings.poll_interval

    async def _active(self, obj: dict[str, Any], cluster: dict[str, Any] | None) -> float | None:
        ctx, status, meta = self.ctx, obj.get("status") or {}, obj["metadata"]
        if cluster is None:
            await self._fail(obj, "cluster not found", None)
            return None
        if RESTORE_RESETS in ctx.settings.faults and self._restore_running(cluster):
            await self._set(obj, "waiting", "BackupWaiting", "a restore of the cluster is active")
            return ctx.settings.poll_interval
        held = await ctx.leases.acquire(
            meta["namespace"],
            lock_name(cluster["metadata"]["name"]),
            holder_of(obj),
            ctx.settings.lock_duration,
            ctx.may_steal,
        )
        if isinstance(held, Held):  # someone took our expired lock: this backup's PBM operation may still run
            self._log(
                obj,
                logging.WARNING,
                "lock of %s held by %s while backup %s runs",
                cluster["metadata"]["name"],
                held.holder,
                meta["name"],
            )
        storage = pbmconfig.storages(cluster).get(status.get("storageName") or "") or {}
        if not status.get("pbmName"):
            return await self._start(obj, cluster, storage)
        try:
            info = await ctx.driver.backup_status(cluster_ref(cluster), status["pbmName"])
        except PBMNotFound:
            info = None
        except PBMError as e:
            self._log(obj, logging.WARNING, "cannot read PBM backup %s: %s", status["pbmName"], e.message)
            return ctx.settings.poll_interval
        if info is None:
            return ctx.settings.poll_interval  # "Waiting for backup metadata"
        return await self._apply_info(obj, cluster, info)

    async def _apply_info(self, obj: dict[str, Any], cluster: dict[str, Any], info: BackupInfo) -> float | None:
        ctx, spec, status = self.ctx, obj["spec"], obj.get("status") or {}
        pods = {r.name: r.node for r in info.replsets if r.node}
        extra: dict[str, Any] = {"pbmPods": pods} if pods else {}
        if info.status == "error":
            message = info.error or "PBM reported the backup as failed"
            if spec.get("type") == "incremental" and "define source backup: not found" in message:
                message = "incremental base backup not found"
            await self._fail(obj, message, cluster)
            return None
        if info.status == "canceled" and CANCELED_RUNNING not in ctx.settings.faults:
            await self._fail(obj, "the backup was canceled in PBM", cluster)
            return None
        if info.status == "done":
            updated = await self._set(
                obj,
                "ready",
                "BackupReady",
                f"backup {info.name} is ready ({pretty_size(info.size)})",
                size=pretty_size(info.size),
                **extra,
                completed=rfc3339(info.last_transition_time or ctx.clock()),
                lastWriteAt=rfc3339(info.last_write_time) if info.last_write_time else None,
            )
            await self._finished(updated, cluster, "ready")
            return None
        if info.status == "starting":
            started = parse_rfc3339(status.get("start"))
            deadline = clusters.starting_deadline(cluster, ctx.settings.default_starting_deadline)
            if started and (ctx.clock() - started).total_seconds() >= deadline:
                await self._fail(
                    obj, "backup did not progress from 'starting' state within the allowed timeout", cluster
                )
                return None
            return ctx.settings.poll_interval
        if status.get("state") != "running":
            await self._set(obj, "running", "BackupRunning", f"PBM backup {info.name} is {info.status}", **extra)
        return ctx.settings.poll_interval

    # ------------------------------------------------------------------ deletion

    async def _finalize(self, obj: dict[str, Any]) -> float | None:
        ctx, meta, spec, status = self.ctx, obj["metadata"], obj.get("spec") or {}, obj.get("status") or {}
        finalizers = list(meta.get("finalizers") or [])
        ours = [f for f in finalizers if f in (FINALIZER_DELETE, FINALIZER_DELETE_LEGACY, FINALIZER_LOCK)]
        if not ours:
            return None
        cluster = ctx.cluster_of(obj)
        keep: list[str] = []
        if FINALIZER_DELETE in ours or FINALIZER_DELETE_LEGACY in ours:
            if status.get("state") in ("requested", "running") and cluster is not None:
                return ctx.settings.poll_interval  # PBM cannot delete a running backup: wait for it to end
            if status.get("state") == "ready" and status.get("pbmName") and spec.get("type") != "incremental":
                if cluster is None:
                    await ctx.events.emit(
                        obj,
                        "BackupFilesKept",
                        f"the cluster is gone, so PBM cannot delete "
                        f"{status.get('destination') or status['pbmName']}: delete it from the "
                        "storage yourself",
                        warning=True,
                    )
                else:
                    try:
                        deleted = await ctx.driver.delete_backup(cluster_ref(cluster), status["pbmName"])
                        ctx.metrics.pbm_commands.labels("delete-backup", "ok").inc()
                    except PBMError as e:
                        ctx.metrics.pbm_commands.labels("delete-backup", "error").inc()
                        await ctx.events.emit(
                            obj,
                            "BackupDeleteFailed",
                            f"deleting {status['pbmName']} from the storage failed (will retry): {e.message}",
                            warning=True,
                        )
                        keep += [f for f in ours if f != FINALIZER_LOCK]
                    else:
                        await ctx.events.emit(
                            obj,
                            "BackupDeleted",
                            f"deleted {status.get('destination') or ''} (PBM backup {status['pbmName']})"
                            if deleted
                            else f"PBM backup {status['pbmName']} was already gone",
                        )
        if FINALIZER_LOCK in ours and cluster is not None:
            await ctx.leases.release(meta["namespace"], lock_name(cluster["metadata"]["name"]), holder_of(obj))
        remaining = [f for f in finalizers if f not in ours or f in keep]
        try:
            await ctx.kube.patch(
                psmdb_path(KIND, meta["namespace"], meta["name"]),
                {"metadata": {"finalizers": remaining or None, "resourceVersion": meta["resourceVersion"]}},
            )
        except KubeError as e:
            if not (e.not_found or e.conflict):
                raise
            return 1.0 if e.conflict else None
        return ctx.settings.poll_interval * 2 if keep else None
