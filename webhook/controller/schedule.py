"""Pure scheduling decisions of the backup controller: which slot is due, what a slot's Backup is called, and
which backups retention removes. No clock, no API: callers pass `now` and the objects.

Exactly once per slot: the Backup for a slot has a name derived from (namespace, schedule, slot time), so a
restart, a leader change or a second replica that decides the same slot creates the same name, and the API server
refuses the duplicate (409 AlreadyExists).

`decide()` is the whole per-schedule decision of the companion's PerconaServerMongoDBBackupSchedule reconciler;
`due()`/`slot_backup_name()` serve the operator-task cron (cluster `spec.backup.tasks`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from .. import cron
from ..times import format_rfc3339, parse_rfc3339

MAX_CATCH_UP_STEPS = 5_000  # about 3.5 days of a minutely schedule; beyond that we jump (see due())


def slot_backup_name(namespace: str, cluster: str, task: str, slot: datetime) -> str:
    """`cron-<cluster[:16]>-<YYYYMMDDhhmmss>-<hash>`: the operator's generateName shape, with a deterministic suffix
    instead of a random one (the hash also separates two tasks that fire in the same second)."""
    stamp = slot.astimezone(UTC).strftime("%Y%m%d%H%M%S")
    digest = hashlib.sha256(f"{namespace}/{cluster}/{task}/{stamp}".encode()).hexdigest()[:6]
    return f"cron-{cluster[:16].rstrip('-.')}-{stamp}-{digest}"


@dataclass(frozen=True)
class Due:
    run: datetime | None  # the slot to back up now, if any
    missed: tuple[datetime, ...]  # slots that passed unrun and are reported, never run
    next: datetime | None  # the next slot after now (for the timer)


def due(schedule: cron.Schedule, *, since: datetime, now: datetime, starting_deadline: timedelta | None) -> Due:
    """Slots in (since, now]: only the latest is run, and only when now - slot <= starting_deadline (no deadline:
    always); every other one is missed. `since` is the last slot already handled (or when the task appeared)."""
    slots: list[datetime] = []
    t = since
    for _ in range(MAX_CATCH_UP_STEPS):
        nxt = schedule.next(t)
        if nxt is None or nxt > now:
            break
        slots.append(nxt)
        t = nxt
    else:  # an absurdly long downtime: report the ones we walked, then restart the walk close to now (never
        # before where the walk stopped, or slots would be reported twice)
        recent = due(schedule, since=max(t, now - timedelta(days=1)), now=now, starting_deadline=starting_deadline)
        return Due(recent.run, tuple(slots) + recent.missed, recent.next)
    latest = slots[-1] if slots else None
    run = latest if latest and (starting_deadline is None or now - latest <= starting_deadline) else None
    missed = tuple(s for s in slots if s != run)
    return Due(run, missed, schedule.next(now))


# --- PerconaServerMongoDBBackupSchedule: names, the Backup object, the per-slot decision -------------------------

SLOT_ANNOTATION = "psmdb-backup-webhook.io/slot"
SCHEDULE_LABEL = "psmdb-backup-webhook.io/schedule"
ANCESTOR_LABEL = "percona.com/backup-ancestor"
CLUSTER_LABEL = "percona.com/cluster"
BACKUP_TYPE_LABEL = "percona.com/backup-type"
FINALIZER_DELETE_BACKUP = "percona.com/delete-backup"
NAME_MAX = 63  # a DNS-1123 label: the name also fits a label value and `<name>-<rs>` VolumeSnapshot names stay short
_STAMP_AND_HASH = len("-YYYYMMDDhhmmss-") + 6


def format_slot(slot: datetime) -> str:
    """RFC 3339 in UTC with second precision, the value of the slot annotation (`2026-11-24T10:00:00Z`)."""
    return format_rfc3339(slot)


def parse_slot(text: object) -> datetime | None:
    """The slot annotation back to a datetime; None for anything that is not an RFC 3339 time with a zone."""
    return parse_rfc3339(text)


def schedule_backup_name(namespace: str, schedule: str, slot: datetime) -> str:
    """`<schedule[:41]>-<YYYYMMDDhhmmss UTC>-<6 hex of sha256(namespace/schedule/stamp)>`, at most 63 characters.

    Deterministic per (namespace, schedule, slot), so every replica and every retry names a slot's Backup the same
    and the API server refuses a second one. The hash keeps two schedules apart whose names share the first 41
    characters. The operator's own cron names end in 5 random characters, ours in 6: the two never collide."""
    stamp = slot.astimezone(UTC).strftime("%Y%m%d%H%M%S")
    digest = hashlib.sha256(f"{namespace}/{schedule}/{stamp}".encode()).hexdigest()[:6]
    prefix = schedule[: NAME_MAX - _STAMP_AND_HASH].rstrip("-.") or "schedule"
    return f"{prefix}-{stamp}-{digest}"


def backup_for_slot(schedule: Mapping[str, Any], slot: datetime, *, storage_name: str | None = None) -> dict[str, Any]:
    """The operator's PerconaServerMongoDBBackup for one slot of a schedule object: the operator's cron labels (its
    tooling and the watchdog match by them), our schedule label and slot annotation, and the delete-backup finalizer
    unless `retention.deleteFromStorage` is false (the operator's default is true,
    OP v1.23.0@b15af500 pkg/psmdb/backup/job.go:87-123). No ownerReference:
    deleting a schedule must never garbage-collect its Backups (and with them the data).

    `storage_name`: the storage the caller resolved (the cluster's main one) when the schedule names none; the
    operator fails a Backup without storageName (`spec storageName field is empty`,
    OP v1.23.0@b15af500 pkg/apis/psmdb/v1/perconaservermongodbbackup_types.go:125-141)."""
    meta, spec = schedule["metadata"], schedule.get("spec") or {}
    name, namespace, cluster = meta["name"], meta.get("namespace", ""), spec["clusterName"]
    storage = spec.get("storageName") or storage_name
    if not storage:
        raise ValueError(f"schedule {namespace}/{name} names no storageName and no main storage was given")
    retention = spec.get("retention") or {}
    backup_spec: dict[str, Any] = {
        "clusterName": cluster,
        "type": spec.get("type") or "logical",
        "storageName": storage,
    }
    for key in ("compressionType", "compressionLevel"):
        if spec.get(key) is not None:
            backup_spec[key] = spec[key]
    metadata: dict[str, Any] = {
        "name": schedule_backup_name(namespace, name, slot),
        "namespace": namespace,
        "labels": {ANCESTOR_LABEL: name, CLUSTER_LABEL: cluster, BACKUP_TYPE_LABEL: "cron", SCHEDULE_LABEL: name},
        "annotations": {SLOT_ANNOTATION: format_slot(slot)},
    }
    if retention.get("deleteFromStorage", True) is not False:
        metadata["finalizers"] = [FINALIZER_DELETE_BACKUP]
    return {
        "apiVersion": "psmdb.percona.com/v1",
        "kind": "PerconaServerMongoDBBackup",
        "metadata": metadata,
        "spec": backup_spec,
    }


def handled_since(mark: datetime, backups: Iterable[Mapping[str, Any]]) -> datetime:
    """`since` for decide(): the later of the stored mark and the newest slot annotation among the schedule's
    Backups (a Backup created just before a crash that lost the mark still counts as handled)."""
    slots = (parse_slot(((b.get("metadata") or {}).get("annotations") or {}).get(SLOT_ANNOTATION)) for b in backups)
    return max([mark, *(s for s in slots if s is not None)])


# Why a slot was not run. Every reason but SUSPENDED counts in status.missedSlots and gets an Event.
SUPERSEDED = "Superseded"  # an older slot that passed unrun (downtime): only the latest slot may run
DEADLINE_EXCEEDED = "DeadlineExceeded"  # the latest slot is older than startingDeadlineSeconds
CONCURRENCY_FORBID = "ConcurrencyForbid"  # concurrencyPolicy Forbid and an earlier Backup is not finished
SUSPENDED = "Suspended"  # spec.suspend: passed on purpose, not missed
CONCURRENCY_POLICIES = ("Forbid", "Allow")


@dataclass(frozen=True)
class Skip:
    slot: datetime
    reason: str

    @property
    def missed(self) -> bool:
        return self.reason != SUSPENDED


@dataclass(frozen=True)
class Decision:
    create: datetime | None  # the slot whose Backup to create now (AlreadyExists means it was created: fine)
    backup_name: str | None  # its deterministic name
    skipped: tuple[Skip, ...]  # every other slot in (since, now], oldest first, with its reason
    handled: datetime  # the caller stores this as the last handled slot (status.lastScheduleTime or its own mark)
    next: datetime | None  # when to decide again (the next slot); None: the schedule never fires again

    @property
    def missed(self) -> tuple[Skip, ...]:
        return tuple(s for s in self.skipped if s.missed)


def decide(
    schedule: cron.Schedule,
    *,
    namespace: str,
    name: str,
    since: datetime,
    now: datetime,
    starting_deadline_seconds: int | None = None,
    suspend: bool = False,
    concurrency_policy: str = "Forbid",
    unfinished: Collection[datetime | None] = (),
) -> Decision:
    """What one schedule does at `now`. `since` is the last handled slot: the later of the caller's stored mark (or
    the schedule's creation) and the newest slot annotation among its Backups, so a slot whose Backup exists is
    never decided again even if the mark was lost. `unfinished` holds the slots (None: unknown) of this schedule's
    Backups that are not `ready`/`error`.
    startingDeadlineSeconds None or 0 means no deadline (the schedule kind's "0: no limit").

    Slots in (since, now]: while suspended all are skipped as SUSPENDED (and resuming never runs one of them);
    otherwise only the latest may run, and only within startingDeadlineSeconds (None: no deadline), the older ones
    are SUPERSEDED. Under Forbid the latest is skipped as CONCURRENCY_FORBID while a Backup of another slot is
    unfinished; one for this very slot means it was created already, so it is "created" again (idempotent).
    Every returned slot is handled: it is never decided again."""
    if concurrency_policy not in CONCURRENCY_POLICIES:
        raise ValueError(
            f"concurrencyPolicy must be one of {', '.join(CONCURRENCY_POLICIES)}, not {concurrency_policy!r}"
        )
    deadline = timedelta(seconds=starting_deadline_seconds) if starting_deadline_seconds else None
    d = due(schedule, since=since, now=now, starting_deadline=deadline)
    slots = sorted(d.missed + ((d.run,) if d.run else ()))
    handled = slots[-1] if slots else since
    nxt = schedule.next(handled)  # from the last slot, not from now: keeps `@every` on its grid
    if suspend:
        return Decision(None, None, tuple(Skip(s, SUSPENDED) for s in slots), handled, nxt)
    skipped = [Skip(s, SUPERSEDED if s != slots[-1] else DEADLINE_EXCEEDED) for s in d.missed]
    run = d.run
    if run is not None and run not in unfinished and concurrency_policy == "Forbid" and unfinished:
        skipped.append(Skip(run, CONCURRENCY_FORBID))
        run = None
    name_ = None if run is None else schedule_backup_name(namespace, name, run)
    return Decision(run, name_, tuple(skipped), handled, nxt)


def _created(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("creationTimestamp") or "")


def retention_victims(backups: Iterable[Mapping[str, Any]], *, keep: int, task_type: str) -> list[Mapping[str, Any]]:
    """The Backups of one task that retention deletes: keep the newest `keep` in state ready, delete older ready
    ones; non-ready Backups are never counted or deleted; `incremental` tasks and keep <= 0 delete nothing
    (OP v1.23.0@b15af500 pkg/controller/perconaservermongodb/backup.go:150-183,219-282)."""
    if task_type == "incremental" or keep <= 0:
        return []
    ready = [b for b in backups if (b.get("status") or {}).get("state") == "ready"]
    if len(ready) <= keep:
        return []
    ready.sort(key=lambda b: (_created(b), (b.get("metadata") or {}).get("name", "")))
    return ready[: len(ready) - keep]
