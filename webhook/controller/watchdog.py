"""Pure detections over ONE cluster's backup objects: what the stock operator (or our schedules) should have done and
did not. No clock and no API: the caller passes a Snapshot and `now`, and applies the Repairs it gets back only when
the user opted in (`--repair`).

What is found (codes are stable; `reason` is the Event reason and the metrics label):

- WD001 MissedSlots     a slot of an enabled operator task (or of a schedule) with no Backup of that ancestor
- WD002 BackupFailed    a Backup of a task/schedule in state `error`
- WD003 SlotUnfinished  a slot's Backup still not finished one schedule period after its slot
- WD004 BackupStuck     a Backup in a non-final state without progress past its state's threshold
- WD005 RestoreStuck    the same for a Restore
- WD006 StaleLock       the lock Lease `psmdb-<cluster>-backup-lock` names a Backup/Restore that is finished or gone
- WD007 WaitingBehindStaleLock  an operation in `""`/`waiting` behind that Lease
- WD008 PBMDisagrees    a Backup `requested`/`running` while PBM says the backup is canceled, error or done
- WD009 ScheduleInvalid the schedule of an enabled task or schedule does not parse (no slots can be checked)
- WD010 BackupRestarted a Backup back in `""`/`waiting` after PBM had started it (OP v1.23.0@b15af500
  pkg/controller/perconaservermongodbbackup/psmdb_backup_controller.go:263-277,302-305: a Restore sends a
                        running Backup back to `waiting`, and the operator then starts a second PBM backup)

Slot matching. The operator's cron (robfig v3, webhook/cron.py) creates a Backup labelled
`percona.com/backup-ancestor=<task>` at each slot; ours carry the slot in an annotation. A slot counts as run when a
Backup of its ancestor has that slot annotation, or was created in [slot - early, slot + tolerance) (and before the
next slot): `early` (30 s, capped at a quarter period) absorbs clock skew between the operator and the API server,
`tolerance` (5 min) a busy operator or API server. A slot is judged only once `tolerance` (for a schedule: also its startingDeadlineSeconds) has passed. Slots are
checked from the latest of: now - lookback, the cluster's (or schedule's) creation, when the caller first saw the
ancestor with its current schedule (`Snapshot.seen_since`) and the oldest Backup of the ancestor still present
(retention deletes older ones, so their slots cannot be judged). `@every` schedules run relative to when the operator
added them, so their slots are anchored on each matched Backup.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from .. import cron
from ..findings import Severity
from ..redaction import strip_userinfo
from ..times import format_rfc3339, parse_rfc3339

BACKUP_KIND = "PerconaServerMongoDBBackup"
RESTORE_KIND = "PerconaServerMongoDBRestore"
CLUSTER_KIND = "PerconaServerMongoDB"
SCHEDULE_KIND = "PerconaServerMongoDBBackupSchedule"
LEASE_KIND = "Lease"
API_VERSIONS = {
    BACKUP_KIND: "psmdb.percona.com/v1",
    RESTORE_KIND: "psmdb.percona.com/v1",
    CLUSTER_KIND: "psmdb.percona.com/v1",
    SCHEDULE_KIND: "psmdb-backup-webhook.io/v1alpha1",
    LEASE_KIND: "coordination.k8s.io/v1",
}
ANCESTOR_LABEL = "percona.com/backup-ancestor"
LEGACY_ANCESTOR_LABEL = "ancestor"  # crVersion < 1.17 (OP v1.23.0@b15af500 pkg/naming/labels.go:104-117)
SLOT_ANNOTATION = "psmdb-backup-webhook.io/slot"
REPAIR_ANNOTATION = "psmdb-backup-webhook.io/watchdog-repair"  # "true" on a cluster opts it in to repairs

FINAL_STATES = ("ready", "error")
PBM_FINISHED = ("canceled", "error", "done")
_UUID = re.compile(r"-([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$")


# --------------------------------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class Thresholds:
    lookback: timedelta = timedelta(hours=24)
    tolerance: timedelta = timedelta(minutes=5)
    early: timedelta = timedelta(seconds=30)
    # No progress for this long in a state makes a Backup/Restore stuck. `""`: the operator moves a new Backup to
    # error after startingDeadlineSeconds (120 s), so one still new after 10 minutes is not being reconciled.
    backup_stuck: Mapping[str, timedelta] = field(
        default_factory=lambda: {
            "": timedelta(minutes=10),
            "waiting": timedelta(hours=2),
            "requested": timedelta(minutes=15),
            "running": timedelta(hours=6),
        }
    )
    restore_stuck: Mapping[str, timedelta] = field(
        default_factory=lambda: {
            "": timedelta(minutes=10),
            "waiting": timedelta(hours=2),
            "requested": timedelta(minutes=15),
            "running": timedelta(hours=12),
        }
    )
    unfinished_periods: float = 1.0  # a slot's Backup should be done before the next slot
    lock_grace: timedelta = timedelta(minutes=2)  # the operator releases the Lease right after the holder finishes
    pbm_grace: timedelta = timedelta(minutes=2)  # the operator polls PBM every 5 s
    max_slots: int = 2000  # per ancestor and pass: bounds the work for `@every 1s`


@dataclass(frozen=True)
class PbmBackup:
    name: str
    status: str
    error: str = ""


@dataclass(frozen=True)
class PbmView:
    """What read-only PBM commands said about one cluster (filled by the caller's PBM reader)."""

    backups: Mapping[str, PbmBackup] = field(default_factory=dict)
    pitr_latest: datetime | None = None

    @classmethod
    def from_status(cls, status: Mapping[str, Any], pitr_latest: datetime | None = None) -> PbmView:
        """From `pbm status -o json` (PBM v2.15.0@6f9fc3bf cmd/pbm/status.go): `backups.snapshot[]` and the `running`
        operation."""
        found: dict[str, PbmBackup] = {}
        for s in (status.get("backups") or {}).get("snapshot") or []:
            if isinstance(s, Mapping) and s.get("name"):
                found[str(s["name"])] = PbmBackup(
                    str(s["name"]), str(s.get("status") or ""), strip_userinfo(str(s.get("error") or ""))
                )
        running = status.get("running") or {}
        if running.get("type") == "backup" and running.get("name"):
            found[str(running["name"])] = PbmBackup(str(running["name"]), "running")
        return cls(found, pitr_latest)


@dataclass(frozen=True)
class Snapshot:
    """One cluster as the informers see it. Backups and Restores of other clusters are ignored."""

    cluster: Mapping[str, Any]
    backups: Sequence[Mapping[str, Any]] = ()
    restores: Sequence[Mapping[str, Any]] = ()
    lease: Mapping[str, Any] | None = None
    schedules: Sequence[Mapping[str, Any]] = ()
    pbm: PbmView | None = None
    # ancestor -> when the caller first saw it with its current schedule text: a task added (or rescheduled) an hour
    # ago has no missed slots from yesterday.
    seen_since: Mapping[str, datetime] = field(default_factory=dict)


def snapshot_of(
    cluster: Mapping[str, Any],
    backups: Iterable[Mapping[str, Any]],
    restores: Iterable[Mapping[str, Any]],
    schedules: Iterable[Mapping[str, Any]],
    lease: Mapping[str, Any] | None,
) -> Snapshot:
    """One cluster's Snapshot out of namespace-wide (or cluster-wide) lists of objects (what `psmdb-backup status`
    reads; the watchdog pass filters its informer caches the same way). `lease`: the cluster's lock Lease, if any."""
    ref = ref_of(CLUSTER_KIND, cluster)

    def mine(objs: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        return [o for o in objs if _meta(o).get("namespace") == ref.namespace and belongs(o, ref.namespace, ref.name)]

    return Snapshot(cluster, mine(backups), mine(restores), lease, mine(schedules))


# --------------------------------------------------------------------------------------------------- outputs


@dataclass(frozen=True)
class Ref:
    kind: str
    namespace: str
    name: str
    uid: str = ""

    @property
    def api_version(self) -> str:
        return API_VERSIONS[self.kind]

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"


@dataclass(frozen=True)
class WatchdogFinding:
    code: str
    reason: str  # Event reason and metrics label, e.g. "MissedSlots"
    severity: Severity
    ref: Ref  # the object the Event goes to
    cluster: str
    message: str  # what is wrong and how to fix it
    ancestor: str = ""  # task or schedule name, when the finding is about one
    count: int = 1  # WD001: slots missed
    slots: tuple[datetime, ...] = ()
    resource_version: str = ""  # of `ref`, the precondition of a repair
    waiting: tuple[Ref, ...] = ()  # WD006: the operations behind the Lease
    state: str = ""  # the Backup/Restore state the finding saw
    pbm_status: str = ""
    pbm_error: str = ""


@dataclass(frozen=True)
class Repair:
    """An API write the caller makes only with --repair: `release-lease` deletes the Lease with a precondition on its
    resourceVersion; `mark-backup-error` sets the Backup's status.state=error and status.error=message, with a
    precondition on the Backup's resourceVersion."""

    action: str
    ref: Ref
    resource_version: str
    message: str
    code: str


# --------------------------------------------------------------------------------------------------- helpers


parse_time = parse_rfc3339  # a Kubernetes Time/MicroTime; None when absent, malformed or without a zone


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def _status(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("status") or {}


def state_of(obj: Mapping[str, Any]) -> str:
    return str(_status(obj).get("state") or "")


def created(obj: Mapping[str, Any]) -> datetime | None:
    return parse_time(_meta(obj).get("creationTimestamp"))


def ancestor_of(backup: Mapping[str, Any]) -> str:
    labels = _meta(backup).get("labels") or {}
    return str(labels.get(ANCESTOR_LABEL) or labels.get(LEGACY_ANCESTOR_LABEL) or "")


def ref_of(kind: str, obj: Mapping[str, Any]) -> Ref:
    m = _meta(obj)
    return Ref(kind, str(m.get("namespace") or ""), str(m.get("name") or ""), str(m.get("uid") or ""))


def holder_name(holder: str) -> str:
    """The object name in a lock holder identity `<name>-<uid>` (OP v1.23.0@b15af500 pkg/naming/backup.go:16-22)."""
    m = _UUID.search(holder)
    return holder[: m.start()] if m else holder


def human(d: timedelta) -> str:
    """`2h30m`, `45s`, `3d4h`: short durations for messages."""
    s = int(d.total_seconds())
    if s < 60:
        return f"{s}s"
    days, s = divmod(s, 86400)
    hours, s = divmod(s, 3600)
    minutes = s // 60
    parts = [f"{days}d" if days else "", f"{hours}h" if hours else "", f"{minutes}m" if minutes and not days else ""]
    return "".join(parts) or "0m"


_stamp = format_rfc3339


def last_progress(obj: Mapping[str, Any]) -> datetime | None:
    """The newest time the operator wrote for the object: status.lastTransition (set on every state change, from
    PBM's last transition while it runs), status.start, else the object's creation
    (OP v1.23.0@b15af500 pkg/apis/psmdb/v1/perconaservermongodbbackup_types.go:33-71,
    perconaservermongodbrestore_types.go:65-96)."""
    st = _status(obj)
    times = [parse_time(st.get("lastTransition")), parse_time(st.get("start")), created(obj)]
    found = [t for t in times if t is not None]
    return max(found) if found else None


def finished_at(obj: Mapping[str, Any]) -> datetime | None:
    st = _status(obj)
    return parse_time(st.get("completed")) or parse_time(st.get("lastTransition"))


# Memoised: webhook/cron.py follows robfig step by step (about a millisecond per next()), and one pass meets the same
# few expressions on many clusters at the same `now`. Schedules hash and compare by their expression.


@lru_cache(maxsize=4096)
def schedule_of(expr: str) -> cron.Schedule:
    """cron.parse (raises cron.CronError)."""
    return cron.parse(expr)


@lru_cache(maxsize=4096)
def period(schedule: cron.Schedule, now: datetime, slots: int = 10) -> timedelta | None:
    """The longest gap between the next `slots` slots: what "one period" means for an irregular schedule (`0 1,23 *
    * *`) or a monthly one. None for a schedule that never fires."""
    if schedule.every_seconds is not None:
        return timedelta(seconds=schedule.every_seconds)
    times = schedule.next_n(now, slots)
    gaps = [b - a for a, b in zip(times, times[1:])]
    return max(gaps) if gaps else None


def belongs(obj: Mapping[str, Any], namespace: str, cluster: str) -> bool:
    ns = _meta(obj).get("namespace")
    return (ns is None or ns == namespace) and (obj.get("spec") or {}).get("clusterName") == cluster


def repair_enabled(cluster: Mapping[str, Any], everywhere: bool) -> bool:
    """--repair for all clusters, or this cluster's opt-in annotation."""
    return everywhere or str((_meta(cluster).get("annotations") or {}).get(REPAIR_ANNOTATION, "")).lower() == "true"


# --------------------------------------------------------------------------------------------------- slots


@dataclass(frozen=True)
class Expected:
    """One thing that should produce a Backup per slot: an operator task or one of our schedules."""

    ancestor: str
    source: str  # "task" or "schedule"
    expr: str
    ref: Ref
    not_before: datetime | None  # the schedule object's creation (tasks: the cluster's)
    forbid: bool = False  # a schedule with concurrencyPolicy Forbid skips slots while its previous Backup runs
    deadline: timedelta = timedelta(0)  # our scheduler may create a slot's Backup up to startingDeadlineSeconds late


def expected(snapshot: Snapshot) -> list[Expected]:
    """Enabled tasks of a cluster with backups enabled, and unsuspended schedules of the cluster."""
    cl = snapshot.cluster
    cref = ref_of(CLUSTER_KIND, cl)
    out: list[Expected] = []
    backup = (cl.get("spec") or {}).get("backup") or {}
    if backup.get("enabled") is True:
        for task in backup.get("tasks") or []:
            if isinstance(task, Mapping) and task.get("enabled") is True and task.get("name"):
                out.append(Expected(str(task["name"]), "task", str(task.get("schedule") or ""), cref, created(cl)))
    for s in snapshot.schedules:
        spec = s.get("spec") or {}
        if spec.get("clusterName") != cref.name or spec.get("suspend") is True:
            continue
        out.append(
            Expected(
                str(_meta(s).get("name") or ""),
                "schedule",
                str(spec.get("schedule") or ""),
                ref_of(SCHEDULE_KIND, s),
                created(s),
                forbid=spec.get("concurrencyPolicy", "Forbid") == "Forbid",
                deadline=timedelta(seconds=_seconds(spec.get("startingDeadlineSeconds"))),
            )
        )
    return out


def _seconds(v: Any) -> int:
    """An integer field the schema guards; anything else counts as unset."""
    return v if isinstance(v, int) and not isinstance(v, bool) and v > 0 else 0


def _key_time(b: Mapping[str, Any]) -> datetime | None:
    return parse_time((_meta(b).get("annotations") or {}).get(SLOT_ANNOTATION)) or created(b)


def _busy_at(backups: Sequence[tuple[datetime, Mapping[str, Any]]], slot: datetime) -> bool:
    """Some Backup of the ancestor was created before `slot` and not finished at it (Forbid skips such a slot)."""
    for t, b in backups:
        if t >= slot:
            break
        if state_of(b) not in FINAL_STATES:
            return True
        done = finished_at(b)
        if done is not None and done > slot:
            return True
    return False


@lru_cache(maxsize=4096)
def _grid(schedule: cron.Schedule, after: datetime, until: datetime, limit: int) -> tuple[datetime, ...]:
    """The slots of a cron schedule in (after, until], then the first one after `until` (it bounds the last slot's
    matching window)."""
    out: list[datetime] = []
    t = after
    for _ in range(limit + 1):
        n = schedule.next(t)
        if n is None:
            break
        out.append(n)
        if n > until:
            break
        t = n
    return tuple(out)


def match_slots(
    schedule: cron.Schedule,
    backups: Sequence[tuple[datetime, Mapping[str, Any]]],
    start: datetime,
    until: datetime,
    th: Thresholds,
    floor: datetime | None = None,
) -> list[tuple[datetime, Mapping[str, Any] | None]]:
    """Slots in (start, until], each with the Backup that ran it or None. `backups`: (key time, Backup) sorted.
    `floor` (<= start): the pass-wide window start, so that clusters sharing an expression share its slots."""
    out: list[tuple[datetime, Mapping[str, Any] | None]] = []
    i = 0

    def take(slot: datetime, nxt: datetime | None) -> tuple[datetime, Mapping[str, Any]] | None:
        nonlocal i
        gap = (nxt - slot) if nxt else th.tolerance * 4
        early = min(th.early, gap / 4)
        hi = slot + min(th.tolerance, gap - early)
        while i < len(backups) and backups[i][0] < slot - early:
            i += 1  # created between slots: a manual or duplicate Backup, not this slot's
        if i < len(backups) and backups[i][0] < hi:
            i += 1
            return backups[i - 1]
        return None

    if schedule.every_seconds is None:
        grid = _grid(schedule, floor if floor is not None and floor <= start else start, until, th.max_slots)
        for slot, nxt in zip(grid, (*grid[1:], None)):
            if slot > until:
                break
            if slot > start:
                m = take(slot, nxt)
                out.append((slot, m[1] if m else None))
        return out
    t = start  # @every: robfig counts from the previous run, so each matched Backup re-anchors the next slot
    for _ in range(th.max_slots):
        fire = schedule.next(t)
        if fire is None or fire > until:
            break
        m = take(fire, schedule.next(fire))
        out.append((fire, m[1] if m else None))
        t = m[0] if m else fire
    return out


# --------------------------------------------------------------------------------------------------- detections


def _slot_findings(
    snapshot: Snapshot, exp: Expected, backups: list[Mapping[str, Any]], now: datetime, th: Thresholds
) -> list[WatchdogFinding]:
    cname = str(_meta(snapshot.cluster).get("name") or "")
    what = f"task {exp.ancestor!r} of cluster {exp.ref.namespace}/{cname}" if exp.source == "task" else str(exp.ref)
    try:
        schedule = schedule_of(exp.expr)
    except cron.CronError as e:
        fix = (
            "The operator drops a task whose schedule does not parse; fix spec.backup.tasks[].schedule (psmdb-backup "
            "lint names the problem)"
            if exp.source == "task"
            else "Fix spec.schedule; no slot runs until it parses"
        )
        return [
            WatchdogFinding(
                "WD009",
                "ScheduleInvalid",
                Severity.ERROR,
                exp.ref,
                cname,
                f"{what}: schedule {exp.expr!r} does not parse ({e}). {fix}.",
                ancestor=exp.ancestor,
            )
        ]
    keyed = sorted(((t, b) for b in backups if (t := _key_time(b)) is not None), key=lambda x: x[0])
    every = schedule.every_seconds is not None
    bounds = [now - th.lookback, exp.not_before, snapshot.seen_since.get(exp.ancestor)]
    if keyed:  # retention removed the Backups of older slots: those cannot be judged
        bounds.append(keyed[0][0] if every else keyed[0][0] - th.early)
    start = max(b for b in bounds if b is not None)
    judge_until = now - max(th.tolerance, exp.deadline)
    matched = match_slots(schedule, keyed, start, now, th, floor=now - th.lookback)
    span = period(schedule, now) or th.lookback
    out: list[WatchdogFinding] = []
    missed = [s for s, b in matched if b is None and s < judge_until and not (exp.forbid and _busy_at(keyed, s))]
    if missed:
        cause = (
            "The operator's task cron lives in memory: slots are lost while the operator restarts or is down. Check "
            "the operator's restarts and log"
            if exp.source == "task"
            else "The companion controller was down, not leading, or past startingDeadlineSeconds at those slots. "
            "Check its log and the schedule's status"
        )
        out.append(
            WatchdogFinding(
                "WD001",
                "MissedSlots",
                Severity.WARNING,
                exp.ref,
                cname,
                f"{what} ({exp.expr}) missed {len(missed)} slot(s) since {_stamp(start)}: no Backup with "
                f"{ANCESTOR_LABEL}={exp.ancestor} for {_stamp(missed[0])}"
                + (f" .. {_stamp(missed[-1])}" if len(missed) > 1 else "")
                + f". {cause}; run `psmdb-backup backup {cname} -n {exp.ref.namespace}` if the gap matters.",
                ancestor=exp.ancestor,
                count=len(missed),
                slots=tuple(missed),
            )
        )
    for slot, b in matched:
        if b is None or state_of(b) in FINAL_STATES or now - slot <= span * th.unfinished_periods:
            continue
        out.append(
            WatchdogFinding(
                "WD003",
                "SlotUnfinished",
                Severity.WARNING,
                ref_of(BACKUP_KIND, b),
                cname,
                f"Backup {_meta(b).get('name')} of {what} for slot {_stamp(slot)} is still "
                f"{state_of(b) or 'new'!r} after {human(now - slot)}, longer than the schedule's period "
                f"({human(span)}): the next slot's Backup waits behind it. Check its status and the backup-agent "
                "logs (pbm logs), or delete it to let the next one run.",
                ancestor=exp.ancestor,
                slots=(slot,),
                resource_version=str(_meta(b).get("resourceVersion") or ""),
                state=state_of(b),
            )
        )
    window = now - th.lookback
    for t, b in keyed:
        if state_of(b) != "error" or t < window:
            continue
        err = strip_userinfo(str(_status(b).get("error") or "no message"))  # the operator copies PBM's URI
        out.append(
            WatchdogFinding(
                "WD002",
                "BackupFailed",
                Severity.ERROR,
                ref_of(BACKUP_KIND, b),
                cname,
                f"Backup {_meta(b).get('name')} of {what} failed: {err}. Fix the cause (storage, credentials, "
                "cluster health); the next slot runs as scheduled, or start one now with `psmdb-backup backup "
                f"{cname} -n {exp.ref.namespace}`.",
                ancestor=exp.ancestor,
                resource_version=str(_meta(b).get("resourceVersion") or ""),
                state="error",
            )
        )
    return out


def _stuck(
    kind: str, objs: Iterable[Mapping[str, Any]], limits: Mapping[str, timedelta], cname: str, now: datetime
) -> list[WatchdogFinding]:
    out = []
    noun = "Backup" if kind == BACKUP_KIND else "Restore"
    code, reason = ("WD004", "BackupStuck") if kind == BACKUP_KIND else ("WD005", "RestoreStuck")
    for o in objs:
        state = state_of(o)
        limit = limits.get(state)
        since = last_progress(o)
        if limit is None or since is None or now - since < limit:
            continue
        hint = {
            "": "the operator has not picked it up: is the operator running and watching this namespace?",
            "waiting": "it waits for the lock Lease, a running restore or a PBM lock: see what holds them "
            "(psmdb-backup status)",
            "requested": "PBM has not reported the operation: check the backup-agent containers (pbm status, pbm logs)",
            "running": "PBM has reported no change: check pbm status and the backup-agent logs",
        }[state]
        out.append(
            WatchdogFinding(
                code,
                reason,
                Severity.WARNING,
                ref_of(kind, o),
                cname,
                f"{noun} {_meta(o).get('name')} has been {state or 'new'!r} with no progress for {human(now - since)} "
                f"(threshold {human(limit)}): {hint}."
                + (" With --repair the watchdog marks it error." if kind == BACKUP_KIND else ""),
                ancestor=ancestor_of(o) if kind == BACKUP_KIND else "",
                resource_version=str(_meta(o).get("resourceVersion") or ""),
                state=state,
            )
        )
    return out


def _stale_lock(
    snapshot: Snapshot,
    backups: list[Mapping[str, Any]],
    restores: list[Mapping[str, Any]],
    cname: str,
    now: datetime,
    th: Thresholds,
) -> list[WatchdogFinding]:
    lease = snapshot.lease
    if not lease:
        return []
    holder = str((lease.get("spec") or {}).get("holderIdentity") or "")
    if not holder:
        return []
    owners = {
        f"{_meta(o).get('name', '')}-{_meta(o).get('uid', '')}": (k, o)
        for k, objs in ((BACKUP_KIND, backups), (RESTORE_KIND, restores))
        for o in objs
    }
    found = owners.get(holder)
    lref = ref_of(LEASE_KIND, lease)
    if found is None:
        acquired = parse_time((lease.get("spec") or {}).get("acquireTime")) or created(lease)
        if acquired is not None and now - acquired < th.lock_grace:
            return []  # the holder may be newer than our informer cache
        why = f"names {holder_name(holder)} (holder {holder}), which no longer exists"
    else:
        kind, obj = found
        state = state_of(obj)
        done = finished_at(obj) or last_progress(obj)
        if state not in FINAL_STATES or (done is not None and now - done < th.lock_grace):
            return []
        why = f"is held by {kind.removeprefix('PerconaServerMongoDB')} {_meta(obj).get('name')}, which is {state}"
    waiting = [
        (k, o)
        for k, objs in ((BACKUP_KIND, backups), (RESTORE_KIND, restores))
        for o in objs
        if state_of(o) in ("", "waiting")
    ]
    wrefs = tuple(ref_of(k, o) for k, o in waiting)
    names = ", ".join(f"{r.kind.removeprefix('PerconaServerMongoDB')} {r.name}" for r in wrefs) or "none yet"
    out = [
        WatchdogFinding(
            "WD006",
            "StaleLock",
            Severity.ERROR,
            lref,
            cname,
            f"Lease {lref.namespace}/{lref.name} {why}: the operator never steals it, so no backup or restore of the "
            f"cluster can start. Waiting: {names}. Run the watchdog with --repair (or annotate the cluster "
            f"{REPAIR_ANNOTATION}=true) to delete it, or `kubectl -n {lref.namespace} delete lease {lref.name}`.",
            resource_version=str(_meta(lease).get("resourceVersion") or ""),
            waiting=wrefs,
        )
    ]
    for (k, o), r in zip(waiting, wrefs):
        out.append(
            WatchdogFinding(
                "WD007",
                "WaitingBehindStaleLock",
                Severity.WARNING,
                r,
                cname,
                f"{k.removeprefix('PerconaServerMongoDB')} {r.name} cannot start: Lease {lref.name} {why}. Releasing "
                "the Lease lets it run (see the StaleLock finding on the Lease).",
                ancestor=ancestor_of(o) if k == BACKUP_KIND else "",
                state=state_of(o),
            )
        )
    return out


def _pbm_findings(
    view: PbmView, backups: list[Mapping[str, Any]], cname: str, now: datetime, th: Thresholds
) -> list[WatchdogFinding]:
    out = []
    for b in backups:
        state = state_of(b)
        pbm = view.backups.get(str(_status(b).get("pbmName") or ""))
        since = last_progress(b)
        if state not in ("requested", "running") or pbm is None or pbm.status not in PBM_FINISHED:
            continue
        if since is not None and now - since < th.pbm_grace:
            continue
        fix = (
            "the operator maps a canceled PBM backup to running forever (OP v1.23.0@b15af500 "
            "pkg/controller/perconaservermongodbbackup/backup.go:271-272); with --repair the "
            "watchdog marks it error so the lock is released"
            if pbm.status == "canceled"
            else "the operator has not caught up with PBM: check that it is running; with --repair the watchdog "
            "marks it error"
            if pbm.status == "error"
            else "the operator has not caught up with PBM: check that it is running and can reach PBM"
        )
        out.append(
            WatchdogFinding(
                "WD008",
                "PBMDisagrees",
                Severity.ERROR,
                ref_of(BACKUP_KIND, b),
                cname,
                f"Backup {_meta(b).get('name')} is {state!r} but PBM reports backup {pbm.name} {pbm.status}"
                + (f" ({pbm.error})" if pbm.error else "")
                + f": {fix}.",
                ancestor=ancestor_of(b),
                resource_version=str(_meta(b).get("resourceVersion") or ""),
                state=state,
                pbm_status=pbm.status,
                pbm_error=pbm.error,
            )
        )
    return out


def _restarted(backups: list[Mapping[str, Any]], cname: str) -> list[WatchdogFinding]:
    out = []
    for b in backups:
        pbm_name = _status(b).get("pbmName")
        if state_of(b) not in ("", "waiting") or not pbm_name:
            continue
        out.append(
            WatchdogFinding(
                "WD010",
                "BackupRestarted",
                Severity.WARNING,
                ref_of(BACKUP_KIND, b),
                cname,
                f"Backup {_meta(b).get('name')} is back in {state_of(b) or 'new'!r} after PBM started it as "
                f"{pbm_name}: a Restore of the cluster sends a running Backup back to waiting, and the operator then "
                "starts a second PBM backup. Check `pbm status` for the first one, and delete this Backup if the "
                "restore makes it pointless.",
                ancestor=ancestor_of(b),
                resource_version=str(_meta(b).get("resourceVersion") or ""),
                state=state_of(b),
            )
        )
    return out


def detect(snapshot: Snapshot, now: datetime, thresholds: Thresholds | None = None) -> list[WatchdogFinding]:
    """Every finding for one cluster, in a stable order (by code, then object name)."""
    th = thresholds or Thresholds()
    cref = ref_of(CLUSTER_KIND, snapshot.cluster)
    backups = [b for b in snapshot.backups if belongs(b, cref.namespace, cref.name)]
    restores = [r for r in snapshot.restores if belongs(r, cref.namespace, cref.name)]
    by_ancestor: dict[str, list[Mapping[str, Any]]] = {}
    for b in backups:
        by_ancestor.setdefault(ancestor_of(b), []).append(b)
    found: list[WatchdogFinding] = []
    for exp in expected(snapshot):
        found += _slot_findings(snapshot, exp, by_ancestor.get(exp.ancestor, []), now, th)
    stuck = _stuck(BACKUP_KIND, backups, th.backup_stuck, cref.name, now)
    stuck_names = {f.ref.name for f in stuck}
    found = [f for f in found if not (f.code == "WD003" and f.ref.name in stuck_names)]  # one report per Backup
    found += stuck + _stuck(RESTORE_KIND, restores, th.restore_stuck, cref.name, now)
    found += _stale_lock(snapshot, backups, restores, cref.name, now, th)
    if snapshot.pbm is not None:
        found += _pbm_findings(snapshot.pbm, backups, cref.name, now, th)
    found += _restarted(backups, cref.name)
    return sorted(found, key=lambda f: (f.code, f.ref.name, f.ancestor, f.slots))


def repairs(findings: Iterable[WatchdogFinding]) -> list[Repair]:
    """The writes --repair makes: release a stale Lease; mark a stuck Backup, or one PBM says is canceled or failed,
    `error`. A Backup marked error keeps the Lease (the operator releases it only on its own transitions): the next
    pass finds that Lease stale and releases it."""
    out: dict[Ref, Repair] = {}
    for f in findings:
        if f.code == "WD006":
            out.setdefault(f.ref, Repair("release-lease", f.ref, f.resource_version, f.message, f.code))
        elif f.code == "WD004" or (f.code == "WD008" and f.pbm_status in ("canceled", "error")):
            why = (
                f"PBM reports the backup {f.pbm_status}" + (f": {f.pbm_error}" if f.pbm_error else "")
                if f.code == "WD008"
                else f"no progress in state {f.state or 'new'!r} past the watchdog's threshold"
            )
            out.setdefault(
                f.ref,
                Repair(
                    "mark-backup-error",
                    f.ref,
                    f.resource_version,
                    f"marked error by the psmdb-backup watchdog: {why}",
                    f.code,
                ),
            )
    return list(out.values())
