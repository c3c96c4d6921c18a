"""Pure retention of one PerconaServerMongoDBBackupSchedule: which of its Backups to delete. No clock, no API.

Rules (the schedule kind's `spec.retention`; a rule left out or 0 is not set; nothing set: nothing is deleted):
- A `ready` Backup stays when `count` or a `keep*` rule keeps it (every ready one does when none of them is set)
  and it is not older than `maxAge`.
  - `count`: the newest `count` ready Backups.
  - `keepDaily`/`keepWeekly`/`keepMonthly` (grandfather-father-son): the newest ready Backup of each of the last N
    UTC days / ISO weeks / months *that have one* (as borg and restic count them: a period without a backup does
    not use up a slot, so a schedule that stopped does not lose its history to the calendar).
- Always kept, whatever the rules say:
  - a Backup that is not finished (state other than `ready`/`error`) or already being deleted;
  - a Backup we cannot date (no valid slot annotation and no creationTimestamp);
  - the newest ready Backup;
  - every member of an incremental chain that a kept or running incremental needs (see below).
- `error` Backups hold no restorable data (the operator's delete-backup finalizer only deletes data of `ready`
  Backups, OP v1.23.0@b15af500 pkg/controller/perconaservermongodbbackup/psmdb_backup_controller.go:612-800), so
  dropping one loses only the record of the failure: the newest FAILED_KEPT of them stay (the watchdog and `status` show
  them), older ones go. Without this bound a schedule that keeps failing would pile up Backup objects forever, as the
  operator's retention (which never deletes them) does.

A Backup's time is its slot (annotation psmdb-backup-webhook.io/slot), else metadata.creationTimestamp (the
operator's own retention order, OP v1.23.0@b15af500 pkg/controller/perconaservermongodb/backup.go:219-282; Backups the
operator made for an imported task have no slot). Ties are broken by name, so the result never depends on the input
order.

Incremental chains (PBM): an `incremental` backup's source is the newest *done* incremental backup (base or not)
by start time, cluster-wide (PBM:pbm/backup/query.go `LastIncrementalBackup` -> `getRecentBackup`: status done,
type incremental, sort start_ts desc; PBM:pbm/backup/physical.go `doPhysical` records it with `SetSrcBackup` and
fails an increment whose source is on another storage). So a chain is an `incremental-base` followed by the ready `incremental`
Backups started after it, until the next base; the Backup status carries the type verbatim (`status.type`,
OP v1.23.0@b15af500 pkg/controller/perconaservermongodbbackup/backup.go) and the start (`status.start`, else `status.pbmName`, an RFC 3339
UTC time, OP v1.23.0@b15af500 pkg/controller/perconaservermongodbbackup/backup.go:90). Deleting a base makes PBM delete
the whole chain (OP v1.23.0@b15af500 pkg/controller/perconaservermongodbbackup/psmdb_backup_controller.go:612-800), so
every earlier member of the chain of a kept incremental stays, and so does the newest chain while an incremental is
unfinished (one backup runs at a time per cluster, OP v1.23.0@b15af500 pkg/k8s/lease.go, so it builds, or will build, on
the newest done one). Incrementals of other schedules or made on demand (`others`) are all treated as kept: their
retention is not ours to know.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ..policy.schedule import parse_max_age as max_age_of
from .schedule import SLOT_ANNOTATION, parse_slot

FINISHED = ("ready", "error")
FAILED_KEPT = 5
INCREMENTAL_TYPES = ("incremental", "incremental-base")


def parse_max_age(text: str) -> timedelta:
    """`maxAge`: one or more <number><unit>, units w (7 days), d (24 hours), h, m, e.g. `7d`, `36h`, `1w3d` (the
    grammar lives with the schedule kind's rules, webhook/policy/schedule.py, which also check it at admission)."""
    age = max_age_of(text) if isinstance(text, str) else None
    if age is None:
        raise ValueError(f"maxAge must be one or more <number><unit> with units w, d, h, m (such as 7d), not {text!r}")
    return age


@dataclass(frozen=True)
class Policy:
    count: int = 0
    max_age: timedelta | None = None
    keep_daily: int = 0
    keep_weekly: int = 0
    keep_monthly: int = 0

    @classmethod
    def from_spec(cls, retention: Mapping[str, Any] | None) -> Policy:
        """From a schedule's `spec.retention` (deleteFromStorage is the finalizer's business, not ours)."""
        r = retention or {}
        max_age = r.get("maxAge")
        return cls(
            count=int(r.get("count") or 0),
            max_age=parse_max_age(max_age) if max_age else None,
            keep_daily=int(r.get("keepDaily") or 0),
            keep_weekly=int(r.get("keepWeekly") or 0),
            keep_monthly=int(r.get("keepMonthly") or 0),
        )

    @property
    def keeps(self) -> bool:
        """True when count or a keep* rule is set (else every ready Backup passes them)."""
        return any(n > 0 for n in (self.count, self.keep_daily, self.keep_weekly, self.keep_monthly))

    @property
    def active(self) -> bool:
        return self.keeps or self.max_age is not None


@dataclass
class _Entry:
    obj: Mapping[str, Any]
    name: str
    state: str
    kind: str  # status.type, else spec.type, else logical
    time: datetime | None  # slot, else creationTimestamp
    start: datetime | None  # PBM start: status.start, else status.pbmName, else `time`
    deleting: bool

    @property
    def key(self) -> tuple[datetime, str]:
        assert self.time is not None
        return (self.time, self.name)


def _entry(obj: Mapping[str, Any]) -> _Entry:
    meta, status, spec = obj.get("metadata") or {}, obj.get("status") or {}, obj.get("spec") or {}
    time = parse_slot((meta.get("annotations") or {}).get(SLOT_ANNOTATION)) or parse_slot(meta.get("creationTimestamp"))
    start = parse_slot(status.get("start")) or parse_slot(status.get("pbmName")) or time
    return _Entry(
        obj,
        str(meta.get("name") or ""),
        str(status.get("state") or ""),
        str(status.get("type") or spec.get("type") or "logical"),
        time,
        start,
        bool(meta.get("deletionTimestamp")),
    )


def _newest_per_period(ready: list[_Entry], n: int, period: Callable[[datetime], Hashable]) -> set[int]:
    """Indexes (into newest-first `ready`) of the newest Backup of each of the last n periods that have one."""
    kept: dict[Hashable, int] = {}
    for i, e in enumerate(ready):
        assert e.time is not None
        p = period(e.time)
        if p not in kept:
            if len(kept) == n:
                break
            kept[p] = i
    return set(kept.values())


def _chain_needs(ours: list[_Entry], others: list[_Entry], kept: set[int]) -> set[int]:
    """ids of our ready chain members that a kept incremental (ours kept, every one of `others`) or an unfinished
    one builds on."""
    members = sorted(
        (e for e in ours + others if e.state == "ready" and not e.deleting and e.kind in INCREMENTAL_TYPES and e.start),
        key=lambda e: (e.start, e.name),
    )
    chain_of: dict[int, list[_Entry]] = {}  # id(member) -> its chain so far (up to and including itself)
    chain: list[_Entry] = []
    for e in members:
        chain = [e] if e.kind == "incremental-base" else [*chain, e]
        chain_of[id(e)] = chain
    ours_ids = {id(e) for e in ours}
    needed: list[_Entry] = []
    for e in members:
        if e.kind == "incremental" and (id(e) not in ours_ids or id(e) in kept):
            needed += chain_of[id(e)]
    pending = any(e.kind == "incremental" and e.state not in FINISHED and not e.deleting for e in ours + others)
    if pending and members:
        needed += chain_of[id(members[-1])]
    return {id(e) for e in needed} & ours_ids


def victims(
    backups: Iterable[Mapping[str, Any]],
    policy: Policy,
    now: datetime,
    *,
    others: Iterable[Mapping[str, Any]] = (),
) -> list[tuple[Mapping[str, Any], str]]:
    """The Backups of one schedule that retention deletes, oldest first, each with the reason why (an Event text).
    `others`: the cluster's other Backups (other schedules, on-demand), read only to keep incremental chains whole."""
    if not policy.active:
        return []
    ours, rest = [_entry(b) for b in backups], [_entry(b) for b in others]
    ready = sorted(
        (e for e in ours if e.state == "ready" and not e.deleting and e.time is not None),
        key=lambda e: e.key,
        reverse=True,
    )
    by_rules: set[int] = set(range(len(ready))) if not policy.keeps else set(range(min(policy.count, len(ready))))
    for n, period in (
        (policy.keep_daily, lambda t: t.date()),
        (policy.keep_weekly, lambda t: t.isocalendar()[:2]),
        (policy.keep_monthly, lambda t: (t.year, t.month)),
    ):
        if n > 0:
            by_rules |= _newest_per_period(ready, n, period)
    kept = {i for i in by_rules if policy.max_age is None or now - _time(ready[i]) <= policy.max_age}
    if ready:
        kept.add(0)  # the newest ready one, even past maxAge
    chain = _chain_needs(ours, rest, {id(ready[i]) for i in kept})
    out = [(e, _why(policy, e, now)) for i, e in enumerate(ready) if i not in kept and id(e) not in chain]
    failed = sorted(
        (e for e in ours if e.state == "error" and not e.deleting and e.time is not None),
        key=lambda e: e.key,
        reverse=True,
    )
    out += [(e, f"failed, and not one of the newest {FAILED_KEPT} failed backups") for e in failed[FAILED_KEPT:]]
    return [(e.obj, why) for e, why in sorted(out, key=lambda x: x[0].key)]


def _time(e: _Entry) -> datetime:
    assert e.time is not None
    return e.time


def _why(policy: Policy, e: _Entry, now: datetime) -> str:
    if policy.max_age is not None and now - _time(e) > policy.max_age:
        return f"older than maxAge {policy.max_age}"
    rules = [
        f"{label} {n}"
        for label, n in (
            ("count", policy.count),
            ("keepDaily", policy.keep_daily),
            ("keepWeekly", policy.keep_weekly),
            ("keepMonthly", policy.keep_monthly),
        )
        if n > 0
    ]
    return "kept by none of " + ", ".join(rules)
