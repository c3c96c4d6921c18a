"""Scheduled backups: one timer for every enabled task of every managed cluster with `backup.enabled`, and retention.

Exactly once per slot: a slot's Backup has a deterministic name (schedule.slot_backup_name), so a second replica,
a restart or a retried create meets 409 AlreadyExists instead of making a duplicate. After downtime only the latest
missed slot runs, and only within the cluster's `startingDeadlineSeconds` (default 120 s); the others are counted,
logged and evented as missed. Where a task starts counting from: its newest slot Backup (the slot time is kept in an
annotation), else the moment this process first saw the task.

A task change takes effect at once. A schedule that stops parsing keeps the last good one running and says so
(event, metric), instead of silently dropping the task as the operator does.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from .. import cron
from ..versions import Version
from . import clusters
from .backups import FINALIZER_DELETE, parse_time
from .backups import KIND as BACKUP_KIND
from .kubeapi import API_VERSION, KubeError, psmdb_path
from .runtime import Ctx, rfc3339
from .schedule import due, retention_victims, slot_backup_name

log = logging.getLogger(__name__)

SLOT_ANNOTATION = "psmdb-backup-webhook.io/slot"
TaskKey = tuple[str, str, str]  # namespace, cluster, task


@dataclass
class Task:
    key: TaskKey
    spec: Mapping[str, Any]
    schedule: cron.Schedule
    schedule_text: str
    since: datetime
    next: datetime | None = None
    generation: int = 0  # bumps on every change, so stale heap entries are skipped
    changed: datetime | None = None  # when this process saw the schedule change (None: as first seen)


def retention_count(cluster: Mapping[str, Any], task: Mapping[str, Any]) -> tuple[int, bool]:
    """(count, deleteFromStorage) as `GetRetention` (facts §4.1): `retention` from crVersion 1.21, else `keep`."""
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


def task_backups(ctx: Ctx, namespace: str, cluster: str, task: str) -> list[dict[str, Any]]:
    out = []
    for (ns, _), b in ctx.backups.items():
        labels = b["metadata"].get("labels") or {}
        if (
            ns == namespace
            and labels.get("percona.com/cluster", labels.get("cluster")) == cluster
            and labels.get("percona.com/backup-ancestor", labels.get("ancestor")) == task
        ):
            out.append(b)
    return out


class Scheduler:
    def __init__(self, ctx: Ctx) -> None:
        self.ctx = ctx
        self.tasks: dict[TaskKey, Task] = {}
        self._heap: list[tuple[datetime, int, TaskKey]] = []
        self._wake = asyncio.Event()
        self._bad: dict[TaskKey, str] = {}  # schedules reported as invalid (event once per text)
        self._generations = itertools.count()

    # ------------------------------------------------------------------ task table

    def cluster_changed(self, cluster: dict[str, Any], deleted: bool = False) -> list[tuple[dict[str, Any], str]]:
        """Update the task table from a cluster; returns the (cluster, message) warnings to event."""
        ns, name = cluster["metadata"]["namespace"], cluster["metadata"]["name"]
        backup = clusters.backup_spec(cluster)
        wanted: dict[str, Mapping[str, Any]] = {}
        if not deleted and backup.get("enabled") is not False:
            for t in backup.get("tasks") or []:
                if isinstance(t, Mapping) and t.get("enabled") is True and t.get("name"):
                    wanted[str(t["name"])] = t
        warnings = []
        for key in [k for k in self.tasks if k[:2] == (ns, name) and k[2] not in wanted]:
            self._drop(key)
        for task_name, spec in wanted.items():
            key = (ns, name, task_name)
            text = str(spec.get("schedule") or "")
            current = self.tasks.get(key)
            try:
                schedule = cron.parse(text)
            except cron.CronError as e:
                self.ctx.metrics.schedule_errors.labels(*key).set(1)
                if self._bad.get(key) != text:
                    self._bad[key] = text
                    keeps = f"; the last good schedule {current.schedule_text!r} keeps running" if current else ""
                    warnings.append((cluster, f"task {task_name}: can't parse cronjob schedule {text!r}: {e}{keeps}"))
                if current:
                    current.spec = {**spec, "schedule": current.schedule_text}
                continue
            self._bad.pop(key, None)
            self.ctx.metrics.schedule_errors.labels(*key).set(0)
            if current and current.schedule_text == text:
                current.spec = spec  # type, storage, compression, retention: read at each slot
                continue
            # a changed schedule counts from now; a task seen for the first time from its newest slot Backup
            since = (None if current else self._newest_slot(key)) or self.ctx.clock()
            task = Task(
                key,
                spec,
                schedule,
                text,
                since,
                generation=next(self._generations),
                changed=self.ctx.clock() if current else None,
            )
            self.tasks[key] = task
            self._push(task)
        return warnings

    def refresh(self) -> None:
        """Before acting (start-up or taking over as leader), with every cache filled: count every task from its
        newest slot Backup (the clusters may have been seen before their Backups, and a previous leader may have
        made newer ones), or from a schedule change this process saw after it."""
        for task in self.tasks.values():
            newest = self._newest_slot(task.key)
            if newest is None:
                continue
            since = max(newest, task.changed) if task.changed else newest
            if since != task.since:
                task.since = since
                task.generation = next(self._generations)
                self._push(task)

    def _newest_slot(self, key: TaskKey) -> datetime | None:
        found = (
            parse_time((b["metadata"].get("annotations") or {}).get(SLOT_ANNOTATION))
            for b in task_backups(self.ctx, *key)
        )
        slots = [s for s in found if s is not None]
        return max(slots) if slots else None

    def _drop(self, key: TaskKey) -> None:
        self.tasks.pop(key, None)
        self._bad.pop(key, None)
        for g in (self.ctx.metrics.task_next_slot, self.ctx.metrics.task_interval, self.ctx.metrics.schedule_errors):
            try:
                g.remove(*key)
            except KeyError:
                pass

    def _push(self, task: Task) -> None:
        nxt = task.schedule.next(max(task.since, self.ctx.clock() - timedelta(days=366)))
        task.next = nxt
        if nxt is None:
            return
        after = task.schedule.next(nxt)
        self.ctx.metrics.task_next_slot.labels(*task.key).set(nxt.timestamp())
        if after is not None:
            self.ctx.metrics.task_interval.labels(*task.key).set((after - nxt).total_seconds())
        heapq.heappush(self._heap, (nxt, task.generation, task.key))
        self._wake.set()

    # ------------------------------------------------------------------ timer

    async def run(self) -> None:
        while True:
            self._wake.clear()
            now = self.ctx.clock()
            fired = []
            while self._heap and self._heap[0][0] <= now:
                _, gen, key = heapq.heappop(self._heap)
                task = self.tasks.get(key)
                if task is not None and task.generation == gen and task.next is not None and task.next <= now:
                    fired.append(task)
            if fired:
                await asyncio.gather(*(self._fire(t, now) for t in fired))
                continue
            delay = (self._heap[0][0] - now).total_seconds() if self._heap else 3600.0
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=max(0.0, min(delay, 3600.0)))
            except TimeoutError:
                pass

    async def _fire(self, task: Task, now: datetime) -> None:
        ns, cluster_name, task_name = task.key
        cluster = self.ctx.clusters.get((ns, cluster_name))
        deadline = timedelta(seconds=clusters.starting_deadline(cluster, self.ctx.settings.default_starting_deadline))
        d = due(task.schedule, since=task.since, now=now, starting_deadline=deadline)
        if d.missed:
            self.ctx.metrics.missed_slots.labels(*task.key).inc(len(d.missed))
        if d.missed and cluster is not None:
            shown = ", ".join(rfc3339(s) for s in d.missed[-3:])
            log.warning(
                "task %s of %s/%s missed %d slot(s) (latest: %s): not run",
                task_name,
                ns,
                cluster_name,
                len(d.missed),
                shown,
                extra={"namespace": ns, "cluster": cluster_name, "task": task_name},
            )
            await self.ctx.events.emit(
                cluster,
                "BackupSlotMissed",
                f"task {task_name}: {len(d.missed)} slot(s) "
                f"missed and not run (latest {shown}); only a slot within "
                f"{int(deadline.total_seconds())}s of its time is run",
                warning=True,
            )
        if d.run is not None and cluster is not None:
            try:
                await self._create(cluster, task, d.run)
            except (TimeoutError, KubeError, OSError) as e:
                log.error(
                    "task %s of %s/%s: could not create the backup for slot %s: %s",
                    task_name,
                    ns,
                    cluster_name,
                    rfc3339(d.run),
                    e,
                )
                self.ctx.metrics.reconcile_errors.labels("schedule").inc()
                task.next = now + timedelta(seconds=2)  # retry this slot shortly (while it is still in deadline)
                heapq.heappush(self._heap, (task.next, task.generation, task.key))
                return
        latest = d.run or (d.missed[-1] if d.missed else None)
        if latest is not None:
            task.since = latest
        self._push(task)

    async def _create(self, cluster: Mapping[str, Any], task: Task, slot: datetime) -> None:
        ns, cluster_name, task_name = task.key
        spec = task.spec
        _, delete_from_storage = retention_count(cluster, spec)
        name = slot_backup_name(ns, cluster_name, task_name, slot)
        body: dict[str, Any] = {
            "apiVersion": API_VERSION,
            "kind": BACKUP_KIND,
            "metadata": {
                "name": name,
                "namespace": ns,
                "labels": backup_labels(cluster, task_name),
                "annotations": {SLOT_ANNOTATION: rfc3339(slot)},
                **({"finalizers": [FINALIZER_DELETE]} if delete_from_storage else {}),
            },
            "spec": {
                "clusterName": cluster_name,
                "type": spec.get("type") or "logical",
                **{
                    k: spec[k]
                    for k in ("storageName", "compressionType", "compressionLevel", "volumeSnapshotClass")
                    if spec.get(k) not in (None, "")
                },
            },
        }
        try:
            created = await self.ctx.kube.create(psmdb_path(BACKUP_KIND, ns), body)
        except KubeError as e:
            if e.conflict:
                log.info("backup %s/%s for slot %s already exists", ns, name, rfc3339(slot))
                return
            raise
        self.ctx.remember(created, BACKUP_KIND)
        lag = (self.ctx.clock() - slot).total_seconds()
        self.ctx.metrics.slot_lag.observe(max(0.0, lag))
        self.ctx.metrics.scheduled.labels(*task.key).inc()
        log.info(
            "task %s of %s/%s: created backup %s for slot %s (%.3fs after the slot)",
            task_name,
            ns,
            cluster_name,
            name,
            rfc3339(slot),
            lag,
            extra={"namespace": ns, "cluster": cluster_name, "task": task_name, "backup": name, "lag_s": lag},
        )

    # ------------------------------------------------------------------ retention

    async def retention(self, cluster: Mapping[str, Any]) -> None:
        """Trim every scheduled task of the cluster to its retention count (facts §4.4)."""
        backup = clusters.backup_spec(cluster)
        if backup.get("enabled") is False:
            return
        ns, name = cluster["metadata"]["namespace"], cluster["metadata"]["name"]
        for t in backup.get("tasks") or []:
            if not (isinstance(t, Mapping) and t.get("enabled") is True and t.get("name")):
                continue
            keep, _ = retention_count(cluster, t)
            victims = retention_victims(
                task_backups(self.ctx, ns, name, t["name"]), keep=keep, task_type=str(t.get("type") or "logical")
            )
            for b in victims:
                meta = b["metadata"]
                try:
                    await self.ctx.kube.delete(psmdb_path(BACKUP_KIND, ns, meta["name"]))
                except KubeError as e:
                    log.error("retention of task %s: could not delete backup %s/%s: %s", t["name"], ns, meta["name"], e)
                    break
                self.ctx.metrics.retention_deletions.labels(ns, name, t["name"]).inc()
                message = f"retention of task {t['name']} (keep {keep}): deleted backup {meta['name']}"
                log.info(message, extra={"namespace": ns, "cluster": name, "task": t["name"], "backup": meta["name"]})
                await self.ctx.events.emit(cluster, "BackupRetentionDeleted", message)

    def last_success(self, backup: Mapping[str, Any]) -> None:
        labels = backup["metadata"].get("labels") or {}
        task = labels.get("percona.com/backup-ancestor", labels.get("ancestor"))
        completed = parse_time((backup.get("status") or {}).get("completed"))
        if task and completed and (backup.get("status") or {}).get("state") == "ready":
            g = self.ctx.metrics.last_success.labels(
                backup["metadata"]["namespace"], (backup.get("spec") or {}).get("clusterName", ""), task
            )
            g.set(max(g._value.get(), completed.timestamp()))
