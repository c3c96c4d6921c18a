"""The companion's reconciler of PerconaServerMongoDBBackupSchedule objects: at each slot one operator Backup, with
the schedule's status (like a CronJob's), Events, metrics and retention. The decisions are pure (schedule.py,
retention.py); this module reads the caches, writes the objects and keeps the timer.

Timer: the handler returns the seconds to the schedule's next slot, and the work queue wakes it then (one timer per
schedule; a change of the schedule, its cluster or one of its Backups wakes it earlier, which is harmless).

Exactly once per slot: the slot's Backup has a deterministic name, so a retry, a restart or a new leader that decides
the same slot gets 409 AlreadyExists. The last handled slot is `status.lastScheduleTime` (a Backup created, or a slot
skipped and counted), raised to the newest slot annotation among the schedule's Backups, since a crash may come
between creating the Backup and writing the status.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Protocol

from .. import cron
from ..policy import kinds
from ..policy.common import main_storage
from . import retention
from .informer import OnChange
from .kubeapi import KubeError, psmdb_path
from .runtime import TERMINAL, Ctx, rfc3339
from .schedule import (
    ANCESTOR_LABEL,
    CONCURRENCY_FORBID,
    DEADLINE_EXCEEDED,
    SCHEDULE_LABEL,
    SLOT_ANNOTATION,
    SUPERSEDED,
    Decision,
    backup_for_slot,
    decide,
    format_slot,
    handled_since,
    parse_slot,
)

log = logging.getLogger(__name__)

DEFAULT_STARTING_DEADLINE = 300  # the schema's default, for objects stored before it had one
CREATE_RETRY = 10.0  # seconds: a refused create is tried again (same slot) until startingDeadlineSeconds passes
WAKE_LATE = 0.02  # seconds after the slot, so that the clock has passed it when the timer fires
EVENT_SLOTS = 5  # slots listed in one MissedSlots Event

WHY = {
    SUPERSEDED: "an older slot that passed unrun (only the latest missed slot runs)",
    DEADLINE_EXCEEDED: "noticed after startingDeadlineSeconds",
    CONCURRENCY_FORBID: "concurrencyPolicy Forbid and the previous Backup is not finished",
}

Key = tuple[str, str]


class Controller(Protocol):
    """What this reconciler uses of manager.Controller (which imports this module to register it)."""

    ctx: Ctx

    def handle(self, kind: str, handler: Any) -> None: ...
    def on_change(self, callback: OnChange) -> None: ...
    def enqueue(self, kind: str, namespace: str, name: str, delay: float = 0.0) -> None: ...


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def _labels(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return _meta(obj).get("labels") or {}


def _state(obj: Mapping[str, Any]) -> str:
    return str((obj.get("status") or {}).get("state") or "")


def _slot(obj: Mapping[str, Any]) -> datetime | None:
    return parse_slot((_meta(obj).get("annotations") or {}).get(SLOT_ANNOTATION))


def _deleting(obj: Mapping[str, Any]) -> bool:
    return bool(_meta(obj).get("deletionTimestamp"))


def condition(kind: str, ok: bool, reason: str, message: str) -> dict[str, Any]:
    return {"type": kind, "status": "True" if ok else "False", "reason": reason, "message": message}


def merge_conditions(
    old: Iterable[Mapping[str, Any]], new: Iterable[dict[str, Any]], generation: int, now: datetime
) -> list[dict[str, Any]]:
    """metav1.Conditions: lastTransitionTime moves only when a condition's status changes."""
    before = {c.get("type"): c for c in old if isinstance(c, Mapping)}
    out = []
    for c in new:
        prev = before.get(c["type"])
        changed = prev is None or prev.get("status") != c["status"]
        since = rfc3339(now) if changed or prev is None else prev.get("lastTransitionTime") or rfc3339(now)
        out.append({**c, "observedGeneration": generation, "lastTransitionTime": since})
    return out


def missed_message(decision: Decision) -> str:
    missed = decision.missed
    listed = ", ".join(f"{format_slot(s.slot)} ({WHY.get(s.reason, s.reason)})" for s in missed[:EVENT_SLOTS])
    more = f" and {len(missed) - EVENT_SLOTS} more" if len(missed) > EVENT_SLOTS else ""
    return f"{len(missed)} slot(s) got no Backup: {listed}{more}"


class ScheduleReconciler:
    def __init__(self, controller: Controller) -> None:
        self.controller, self.ctx = controller, controller.ctx
        self.marks: dict[Key, datetime] = {}  # last handled slot, ahead of the status the cache holds
        # Backup names by (namespace, ancestor label), so a pass reads its family without scanning every Backup
        self.families: dict[Key, dict[str, None]] = {}
        self.ancestors: dict[Key, str] = {}  # Backup key -> its ancestor label, to move it when the label changes
        controller.handle(kinds.SCHEDULE, self.reconcile)
        controller.on_change(self._changed)

    @property
    def schedules(self) -> dict[Key, dict[str, Any]]:
        return self.ctx.store_for(kinds.SCHEDULE)

    def _changed(self, kind: str, obj: dict[str, Any], deleted: bool) -> None:
        """A Backup of a schedule (by ancestor: also the operator's Backups of an imported task) or a schedule's
        cluster changed: reconcile the schedule (status, retention, Forbid lifted)."""
        ns = _meta(obj).get("namespace", "")
        if kind == kinds.SCHEDULE:
            if deleted:
                self.marks.pop((ns, _meta(obj).get("name", "")), None)
            return
        if kind == kinds.BACKUP:
            name = _labels(obj).get(ANCESTOR_LABEL)
            self._index(ns, _meta(obj).get("name", ""), None if deleted else name)
            if name and (ns, name) in self.schedules:
                self.controller.enqueue(kinds.SCHEDULE, ns, name)
        elif kind == kinds.CLUSTER:
            for (sns, sname), s in list(self.schedules.items()):
                if sns == ns and (s.get("spec") or {}).get("clusterName") == _meta(obj).get("name"):
                    self.controller.enqueue(kinds.SCHEDULE, sns, sname)

    def _index(self, ns: str, backup: str, ancestor: str | None) -> None:
        old = self.ancestors.pop((ns, backup), None)
        if old is not None and old != ancestor:
            family = self.families.get((ns, old), {})
            family.pop(backup, None)
            if not family:
                self.families.pop((ns, old), None)
        if ancestor:
            self.ancestors[(ns, backup)] = ancestor
            self.families.setdefault((ns, ancestor), {})[backup] = None

    # ------------------------------------------------------------------ the pass

    async def reconcile(self, sched: dict[str, Any]) -> float | None:
        now = self.ctx.clock()
        meta, spec = sched["metadata"], sched.get("spec") or {}
        ns, name, cluster_name = meta.get("namespace", ""), meta["name"], str(spec.get("clusterName") or "")
        try:
            schedule = cron.parse(str(spec.get("schedule") or ""))
        except cron.CronError as e:
            bad = f"schedule {spec.get('schedule')!r} does not parse: {e}"
            await self._write(sched, now, {}, [condition("ScheduleValid", False, "InvalidSchedule", bad)])
            return None  # a spec change wakes it
        valid = condition("ScheduleValid", True, "Parsed", f"schedule {spec.get('schedule')!r}")
        cluster = self.ctx.cluster_of(sched)
        if cluster is None:
            gone = condition("ClusterFound", False, "ClusterNotFound", f"no cluster {cluster_name} in {ns}")
            await self._write(sched, now, {}, [valid, gone])
            return None  # the cluster appearing wakes it; the latest slot then runs within the deadline
        found = condition("ClusterFound", True, "Found", f"cluster {cluster_name}")
        storage, why = main_storage(cluster.get("spec") or {})
        if not spec.get("storageName") and storage is None:
            nowhere = f"storageName is not set and cluster {cluster_name} has no main storage: {why}"
            await self._write(sched, now, {}, [valid, found], ("NoStorage", nowhere))
            return None
        try:
            policy = retention.Policy.from_spec(spec.get("retention"))
        except ValueError as e:
            await self._write(sched, now, {}, [valid, found], ("InvalidRetention", str(e)))
            return None

        family = self._backups(ns, name, cluster_name)
        ours = [b for b in family if _labels(b).get(SCHEDULE_LABEL) == name]
        status = sched.get("status") or {}
        mark = max(
            parse_slot(status.get("lastScheduleTime")) or parse_slot(meta.get("creationTimestamp")) or now,
            self.marks.get((ns, name)) or datetime.min.replace(tzinfo=now.tzinfo),
        )
        unfinished = [_slot(b) for b in ours if _state(b) not in TERMINAL and not _deleting(b)]
        decision = decide(
            schedule,
            namespace=ns,
            name=name,
            since=handled_since(mark, ours),
            now=now,
            starting_deadline_seconds=spec.get("startingDeadlineSeconds", DEFAULT_STARTING_DEADLINE),
            suspend=bool(spec.get("suspend")),
            concurrency_policy=str(spec.get("concurrencyPolicy") or "Forbid"),
            unfinished=unfinished,
        )
        failure = await self._create(sched, decision, spec.get("storageName") or storage, now)
        if failure is not None:  # not handled: the same slot is decided again until its deadline
            await self._write(sched, now, {}, [valid, found], ("CreateFailed", failure))
            return CREATE_RETRY
        if decision.missed:
            m = self.ctx.metrics.missed_slots.labels(ns, cluster_name, name)
            m.inc(len(decision.missed))
            await self.ctx.events.emit(sched, "MissedSlots", missed_message(decision), warning=True)
        self.marks[(ns, name)] = decision.handled
        await self._retention(sched, policy, family, now)

        fields: dict[str, Any] = {
            "missedSlots": int(status.get("missedSlots") or 0) + len(decision.missed),
            "nextScheduleTime": format_slot(decision.next) if decision.next and not spec.get("suspend") else None,
        }
        if decision.create or decision.skipped:
            fields["lastScheduleTime"] = format_slot(decision.handled)
        now_ours = [b for b in self._backups(ns, name, cluster_name) if _labels(b).get(SCHEDULE_LABEL) == name]
        fields.update(self._from_backups(now_ours))  # with the Backup created and the ones deleted in this pass
        await self._write(sched, now, fields, [valid, found])
        if decision.next is None:
            return None
        return max(0.0, (decision.next - self.ctx.clock()).total_seconds()) + WAKE_LATE

    def _backups(self, ns: str, name: str, cluster: str) -> list[dict[str, Any]]:
        """The schedule's Backups for retention: ancestor label = schedule name, of its cluster (as the operator's
        task retention selects them, so an imported task's older Backups are included)."""
        store = self.ctx.backups
        return [
            b
            for bname in self.families.get((ns, name), ())
            if (b := store.get((ns, bname))) is not None
            and _labels(b).get(ANCESTOR_LABEL) == name
            and (b.get("spec") or {}).get("clusterName") == cluster
        ]

    def _from_backups(self, ours: list[dict[str, Any]]) -> dict[str, Any]:
        live = [b for b in ours if not _deleting(b)]
        out: dict[str, Any] = {
            "active": sorted(_meta(b)["name"] for b in live if _state(b) not in TERMINAL),
        }
        dated = [b for b in ours if _slot(b) is not None]
        if dated:
            out["lastBackupName"] = _meta(max(dated, key=lambda b: (_slot(b), _meta(b)["name"])))["name"]
        done = [t for b in ours if _state(b) == "ready" and (t := parse_slot((b.get("status") or {}).get("completed")))]
        if done:
            out["lastSuccessfulTime"] = format_slot(max(done))
        return out

    # ------------------------------------------------------------------ writes

    async def _create(
        self, sched: dict[str, Any], decision: Decision, storage: str | None, now: datetime
    ) -> str | None:
        """Create the slot's Backup; None when it exists now (created here or before), else why not."""
        if decision.create is None:
            return None
        meta, cluster = sched["metadata"], sched["spec"]["clusterName"]
        body = backup_for_slot(sched, decision.create, storage_name=storage)
        try:
            created = await self.ctx.kube.create(psmdb_path(kinds.BACKUP, meta["namespace"]), body)
        except KubeError as e:
            if e.conflict:  # AlreadyExists: this slot was done by an earlier pass or another leader
                log.info("Backup %s/%s exists already", meta["namespace"], decision.backup_name)
                return None
            msg = f"could not create Backup {decision.backup_name} for slot {format_slot(decision.create)}: {e}"
            log.warning("schedule %s/%s: %s", meta["namespace"], meta["name"], msg)
            await self.ctx.events.emit(sched, "BackupCreateFailed", msg, warning=True)
            return msg
        self.ctx.remember(created, kinds.BACKUP)
        self._index(meta["namespace"], created["metadata"]["name"], _labels(created).get(ANCESTOR_LABEL))
        self.ctx.metrics.scheduled.labels(meta["namespace"], cluster, meta["name"]).inc()
        self.ctx.metrics.slot_lag.observe(max(0.0, (now - decision.create).total_seconds()))
        log.info("schedule %s/%s: created Backup %s", meta["namespace"], meta["name"], decision.backup_name)
        await self.ctx.events.emit(
            sched,
            "BackupCreated",
            f"created Backup {decision.backup_name} for slot {format_slot(decision.create)} "
            f"(storage {body['spec']['storageName']}, type {body['spec']['type']})",
        )
        return None

    async def _retention(
        self, sched: dict[str, Any], policy: retention.Policy, family: list[dict[str, Any]], now: datetime
    ) -> None:
        """Delete the Backup objects retention lets go; the operator's delete-backup finalizer deletes the data."""
        if not policy.active:
            return
        meta, cluster = sched["metadata"], sched["spec"]["clusterName"]
        ns, ids = meta["namespace"], {id(b) for b in family}
        others = [
            b
            for (bns, _), b in self.ctx.backups.items()
            if bns == ns and (b.get("spec") or {}).get("clusterName") == cluster and id(b) not in ids
        ]
        for victim, why in retention.victims(family, policy, now, others=others):
            bmeta = _meta(victim)
            try:  # the resourceVersion precondition: a Backup that changed since we judged it is judged again
                deleted = await self.ctx.kube.delete(
                    psmdb_path(kinds.BACKUP, ns, bmeta["name"]), resource_version=bmeta.get("resourceVersion")
                )
            except KubeError as e:
                if e.conflict:
                    continue
                raise
            if not deleted:
                continue
            cached = self.ctx.backups.get((ns, bmeta["name"]))
            if cached is victim:  # judged as deleting until the watch event brings the real object
                self.ctx.backups[(ns, bmeta["name"])] = {**victim, "metadata": {**bmeta, "deletionTimestamp": "now"}}
            self.ctx.metrics.retention_deletions.labels(ns, cluster, meta["name"]).inc()
            log.info("schedule %s/%s: retention deleted Backup %s: %s", ns, meta["name"], bmeta["name"], why)
            await self.ctx.events.emit(sched, "RetentionDeleted", f"deleted Backup {bmeta['name']}: {why}")

    async def _write(
        self,
        sched: dict[str, Any],
        now: datetime,
        fields: Mapping[str, Any],
        conditions: list[dict[str, Any]],
        not_ready: tuple[str, str] | None = None,
    ) -> None:
        """Patch the status subresource when it changes. Ready is False with the first failed condition's reason,
        or `not_ready`; else True."""
        meta, spec = sched["metadata"], sched.get("spec") or {}
        generation = int(meta.get("generation") or 0)
        failed = next((c for c in conditions if c["status"] == "False"), None)
        if failed is not None:
            ready = condition("Ready", False, failed["reason"], failed["message"])
        elif not_ready is not None:
            ready = condition("Ready", False, *not_ready)
        elif spec.get("suspend"):
            ready = condition("Ready", True, "Suspended", "suspended: slots pass without Backups")
        else:
            ready = condition("Ready", True, "Scheduling", "creating a Backup at each slot")
        old = dict(sched.get("status") or {})
        new = {**old, **fields, "observedGeneration": generation}
        new["conditions"] = merge_conditions(old.get("conditions") or [], [ready, *conditions], generation, now)
        new = {k: v for k, v in new.items() if v is not None}
        if new == old:
            return
        patch = {**new, **{k: None for k in old if k not in new}}
        await self.ctx.patch_status(sched, patch)


def register(controller: Controller) -> None:
    ScheduleReconciler(controller)
