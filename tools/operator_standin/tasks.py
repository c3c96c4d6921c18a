"""The operator's in-memory backup cron (OP v1.23.0@b15af500 pkg/controller/perconaservermongodb/backup.go:33-282), as
the stock operator runs it:

* on every reconcile of a cluster with `backup.enabled`, each enabled task gets a cron entry, keyed by
  (namespace, cluster, task); an entry whose schedule and storageName are unchanged is kept as it is, with the task
  and cluster it captured (so a change of type, compression or deleteFromStorage alone is not picked up); entries of
  tasks that are gone or disabled are dropped; a schedule that does not parse drops the entry and is a cluster error;
* a cluster whose `backup.enabled` turns false is not looked at, so its entries keep firing (the operator's quirk);
* an entry fires at each slot while this process runs and creates a Backup named by `generateName: cron-<cluster[:16]>-<YYYYMMDDhhmmss>-` (the API server adds
  5 random characters), with the operator's labels and the delete finalizer unless `deleteFromStorage: false`;
* after a restart the operator's cron has lost the slots that passed while it was down; the stand-in runs the latest
  of them once when it first sees the task (an entry with Backups of its own), unless `--fault lose-slots-on-restart`
  makes it lose them as the operator does (faults.py);
* retention, on every cluster reconcile: per task, the oldest `ready` Backups labelled with the task as ancestor go
  until `count` ready ones are left; `incremental` tasks and a count <= 0 delete nothing.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from webhook import cron
from webhook.controller.kubeapi import API_VERSION, KubeError, psmdb_path
from webhook.times import parse_rfc3339
from webhook.versions import Version

from . import clusters
from .backups import FINALIZER_DELETE
from .backups import KIND as BACKUP_KIND
from .faults import LOSE_SLOTS
from .runtime import Ctx, rfc3339

log = logging.getLogger(__name__)

JobKey = tuple[str, str, str]  # namespace, cluster, task


@dataclass
class Job:
    key: JobKey
    schedule_text: str
    storage_name: str
    schedule: cron.Schedule
    task: Mapping[str, Any]  # captured when the entry was added, as the operator's closure does
    cluster: Mapping[str, Any]
    next: datetime | None


def retention_count(cluster: Mapping[str, Any], task: Mapping[str, Any]) -> tuple[int, bool]:
    """(count, deleteFromStorage) as `GetRetention` (OP v1.23.0@b15af500 pkg/apis/psmdb/v1/psmdb_types.go:1242-1251):
    `retention` from crVersion 1.21, else `keep`."""
    ret = task.get("retention")
    if isinstance(ret, Mapping) and clusters.cr_version(cluster) >= Version(1, 21):
        if ret.get("type", "count") != "count":
            return 0, ret.get("deleteFromStorage") is not False
        return int(ret.get("count") or 0), ret.get("deleteFromStorage") is not False
    return int(task.get("keep") or 0), True


def backup_labels(cluster: Mapping[str, Any], task: str) -> dict[str, str]:
    name = cluster["metadata"]["name"]
    if clusters.cr_version(cluster) < Version(1, 17):
        return {"ancestor": task, "cluster": name, "type": "cron"}
    return {
        "app.kubernetes.io/name": "percona-server-mongodb",
        "app.kubernetes.io/managed-by": "percona-server-mongodb-operator",
        "app.kubernetes.io/part-of": "percona-server-mongodb",
        "app.kubernetes.io/instance": name,
        "percona.com/backup-ancestor": task,
        "percona.com/cluster": name,
        "percona.com/backup-type": "cron",
    }


def backup_from_task(cluster: Mapping[str, Any], task: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """`BackupFromTask` (OP v1.23.0@b15af500 pkg/psmdb/backup/job.go:87-123): the Backup a firing entry creates."""
    name = cluster["metadata"]["name"]
    _, delete_from_storage = retention_count(cluster, task)
    return {
        "apiVersion": API_VERSION,
        "kind": BACKUP_KIND,
        "metadata": {
            "generateName": f"cron-{name[:16]}-{now.astimezone(UTC):%Y%m%d%H%M%S}-",
            "namespace": cluster["metadata"]["namespace"],
            "labels": backup_labels(cluster, str(task["name"])),
            **({"finalizers": [FINALIZER_DELETE]} if delete_from_storage else {}),
        },
        "spec": {
            "clusterName": name,
            "type": task.get("type") or "logical",
            **{
                k: task[k]
                for k in ("storageName", "compressionType", "compressionLevel", "volumeSnapshotClass")
                if task.get(k) not in (None, "")
            },
        },
    }


def retention_victims(backups: Sequence[Mapping[str, Any]], *, count: int, task_type: str) -> list[Mapping[str, Any]]:
    """`oldScheduledBackups` (OP v1.23.0@b15af500 pkg/controller/perconaservermongodb/backup.go:219-282): the oldest
    ready Backups beyond `count` ready ones."""
    if task_type == "incremental" or count <= 0 or len(backups) <= count:
        return []
    ready = [b for b in backups if (b.get("status") or {}).get("state") == "ready"]
    if len(ready) <= count:
        return []
    ready.sort(key=lambda b: str((b.get("metadata") or {}).get("creationTimestamp") or ""))
    return ready[: len(ready) - count]


def ancestor_of(backup: Mapping[str, Any]) -> str:
    labels = (backup.get("metadata") or {}).get("labels") or {}
    return str(labels.get("percona.com/backup-ancestor") or labels.get("ancestor") or "")


def _created(backup: Mapping[str, Any]) -> datetime | None:
    return parse_rfc3339((backup.get("metadata") or {}).get("creationTimestamp"))


class TaskCron:
    def __init__(self, ctx: Ctx) -> None:
        self.ctx = ctx
        self.jobs: dict[JobKey, Job] = {}
        self.started: set[JobKey] = set()  # entries this process has added at least once
        self._wake = asyncio.Event()
        # Backup names by (namespace, percona.com/cluster, percona.com/backup-ancestor): the operator's label query
        self.by_ancestor: dict[JobKey, set[str]] = {}

    def backup_changed(self, backup: Mapping[str, Any], deleted: bool) -> None:
        meta = backup["metadata"]
        labels = meta.get("labels") or {}
        if "percona.com/cluster" not in labels or "percona.com/backup-ancestor" not in labels:
            return
        key = (meta.get("namespace", ""), labels["percona.com/cluster"], labels["percona.com/backup-ancestor"])
        names = self.by_ancestor.setdefault(key, set())
        if deleted:
            names.discard(meta["name"])
        else:
            names.add(meta["name"])

    def cluster_changed(self, cluster: Mapping[str, Any]) -> tuple[list[Mapping[str, Any]], str | None]:
        """`reconcileBackupTasks`: update the entries of a cluster with backups enabled. Returns the tasks whose
        retention applies now, and the cluster error, if any (the remaining tasks are then not processed)."""
        if clusters.backup_spec(cluster).get("enabled") is not True:
            return [], None
        ns, name = cluster["metadata"]["namespace"], cluster["metadata"]["name"]
        storages = clusters.backup_spec(cluster).get("storages") or {}
        current: list[Mapping[str, Any]] = []
        for task in clusters.backup_spec(cluster).get("tasks") or []:
            if not isinstance(task, Mapping) or task.get("enabled") is not True:
                continue
            task_name, storage = str(task.get("name") or ""), str(task.get("storageName") or "")
            if task.get("type") != "external" and storage not in storages:
                return current, f"there is no storage {storage} in cluster {name} for {task_name} task"
            key, text = (ns, name, task_name), str(task.get("schedule") or "")
            job = self.jobs.get(key)
            if job is None or (job.schedule_text, job.storage_name) != (text, storage):
                self.jobs.pop(key, None)
                try:
                    schedule = cron.parse(text)
                except cron.CronError as e:
                    return current, f"can't parse cronjob schedule for backup {task_name} with schedule {text}: {e}"
                now = self.ctx.clock()
                first = key not in self.started
                self.started.add(key)
                missed = self.latest_missed(key, schedule, now) if first else None
                self.jobs[key] = Job(
                    key, text, storage, schedule, copy.deepcopy(task), cluster, missed or schedule.next(now)
                )
                self._wake.set()
            current.append(task)
        names = {str(t.get("name")) for t in current}
        for key in [k for k in self.jobs if k[:2] == (ns, name) and k[2] not in names]:
            log.info("deleting outdated backup job %s of %s/%s", key[2], ns, name)
            del self.jobs[key]
        return current, None

    def latest_missed(self, key: JobKey, schedule: cron.Schedule, now: datetime) -> datetime | None:
        """The latest slot after the task's newest Backup that has passed (None: none, or the operator's fault)."""
        if LOSE_SLOTS in self.ctx.settings.faults:
            return None
        ns, cluster, task = key
        created = [
            t
            for (bns, _), b in self.ctx.backups.items()
            if bns == ns
            and (b.get("spec") or {}).get("clusterName") == cluster
            and ancestor_of(b) == task
            and (t := _created(b)) is not None
        ]
        if not created:
            return None
        latest, t = None, schedule.next(max(created))
        for _ in range(100_000):  # bounded: `@every 1s` over a long downtime
            if t is None or t > now:
                break
            latest, t = t, schedule.next(t)
        return latest

    async def retention(self, cluster: Mapping[str, Any], tasks: list[Mapping[str, Any]]) -> None:
        ns, name = cluster["metadata"]["namespace"], cluster["metadata"]["name"]
        for task in tasks:
            count, _ = retention_count(cluster, task)
            names = self.by_ancestor.get((ns, name, str(task["name"]))) or set()
            labelled = [found for n in names if (found := self.ctx.backups.get((ns, n))) is not None]
            for b in retention_victims(labelled, count=count, task_type=str(task.get("type") or "logical")):
                try:
                    await self.ctx.kube.delete(psmdb_path(BACKUP_KIND, ns, b["metadata"]["name"]))
                except KubeError as e:
                    log.error(
                        "retention of task %s: deleting backup %s/%s: %s", task["name"], ns, b["metadata"]["name"], e
                    )
                    break
                log.info(
                    "retention of task %s (count %d): deleted backup %s/%s",
                    task["name"],
                    count,
                    ns,
                    b["metadata"]["name"],
                )

    async def run(self) -> None:
        while True:
            self._wake.clear()
            now = self.ctx.clock()
            for job in [j for j in self.jobs.values() if j.next is not None and j.next <= now]:
                await self._fire(job, now)
            upcoming = [j.next for j in self.jobs.values() if j.next is not None]
            delay = (min(upcoming) - self.ctx.clock()).total_seconds() if upcoming else 3600.0
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=max(0.0, min(delay, 3600.0)))
            except TimeoutError:
                pass

    async def _fire(self, job: Job, now: datetime) -> None:
        """`createBackupTask`: errors are only logged; a cluster that is gone unschedules the entry."""
        ns, cluster_name, task_name = job.key
        slot, job.next = job.next, job.schedule.next(now)
        if (ns, cluster_name) not in self.ctx.clusters:
            log.info("cluster %s/%s is gone: unscheduling backup job %s", ns, cluster_name, task_name)
            self.jobs.pop(job.key, None)
            return
        try:
            created = await self.ctx.kube.create(
                psmdb_path(BACKUP_KIND, ns), backup_from_task(job.cluster, job.task, now)
            )
        except (TimeoutError, KubeError, OSError) as e:
            log.error("failed to create backup for task %s of %s/%s: %s", task_name, ns, cluster_name, e)
            return
        self.ctx.remember(created, BACKUP_KIND)
        lag = (self.ctx.clock() - slot).total_seconds() if slot else 0.0
        log.info(
            "task %s of %s/%s: created backup %s at %s",
            task_name,
            ns,
            cluster_name,
            created["metadata"]["name"],
            rfc3339(now),
            extra={"namespace": ns, "cluster": cluster_name, "task": task_name, "lag_s": lag},
        )
