"""Rules on spec.backup.tasks[] of a PerconaServerMongoDB (OP v1.23.0@b15af500 pkg/apis/psmdb/v1/psmdb_types.go:1221-1270
BackupTaskSpec; OP v1.23.0@b15af500 pkg/controller/perconaservermongodb/backup.go:33-208 reconcileBackupTasks)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from .. import cron
from ..findings import Severity
from ..versions import V1_21, V1_23
from . import kinds
from .common import mapping, quoted, storages, tasks, text
from .examples import with_backup
from .registry import Context, Example, Violation, rule

ROOT = ("spec", "backup", "tasks")
S3 = "storages: {s3-main: {type: s3, s3: {bucket: b}}}"


def _task(extra: str, *, storages_yaml: str = S3, **kw: Any) -> str:
    return with_backup(
        f"{storages_yaml}, tasks: [{{name: daily, enabled: true, schedule: '0 0 * * *', {extra}}}]", **kw
    )


def _enabled(task: Mapping[str, Any]) -> bool:
    return task.get("enabled") is True


def _type(task: Mapping[str, Any]) -> str:
    return text(task.get("type")) or "logical"


@rule(
    "PSB201",
    title="Task without a name",
    severity=Severity.ERROR,
    kind=kinds.CLUSTER,
    needs_backup_enabled=True,
    source="OP v1.23.0@b15af500 pkg/apis/psmdb/v1/psmdb_defaults.go:570-575 (backup task <i> should have a name)",
    hint="give every task a unique, non-empty name",
    bad=[with_backup(f"{S3}, tasks: [{{name: '', enabled: true, schedule: '0 0 * * *', storageName: s3-main}}]")],
    good=[_task("storageName: s3-main")],
)
def task_name(ctx: Context) -> Iterable[Violation]:
    for i, task in ctx.tasks:
        if "name" in task and not text(task.get("name")).strip():
            yield Violation(
                ROOT + (i, "name"),
                f'task name is empty: the cluster goes to error with "backup task {i} should have a name"',
            )


@rule(
    "PSB202",
    title="Duplicate task name",
    severity=Severity.WARNING,
    kind=kinds.CLUSTER,
    source="OP v1.23.0@b15af500 pkg/controller/perconaservermongodb/backup.go:103-133 (one cron entry per <cluster>-backup-<task>)",
    hint="rename one of the tasks",
    bad=[
        with_backup(
            f"{S3}, tasks: [{{name: daily, enabled: true, schedule: '0 0 * * *', storageName: s3-main}}, "
            "{name: daily, enabled: true, schedule: '0 12 * * *', storageName: s3-main}]"
        )
    ],
    good=[
        with_backup(
            f"{S3}, tasks: [{{name: daily, enabled: true, schedule: '0 0 * * *', storageName: s3-main}}, "
            "{name: noon, enabled: true, schedule: '0 12 * * *', storageName: s3-main}]"
        )
    ],
)
def duplicate_task_names(ctx: Context) -> Iterable[Violation]:
    """Tasks with the same name overwrite each other's schedule and share retention: only one of them runs."""
    counts = Counter(text(t.get("name")) for _, t in ctx.tasks)
    seen: set[str] = set()
    for i, task in ctx.tasks:
        name = text(task.get("name"))
        if name and counts[name] > 1:
            if name in seen:
                yield Violation(
                    ROOT + (i, "name"),
                    f'task name "{name}" is used {counts[name]} times: only one of '
                    "these tasks is scheduled and they share retention",
                )
            seen.add(name)


@rule(
    "PSB203",
    title="Task names an undefined storage",
    severity=Severity.ERROR,
    kind=kinds.CLUSTER,
    needs_backup_enabled=True,
    source="OP v1.23.0@b15af500 pkg/controller/perconaservermongodb/backup.go:74-101 (there is no storage <s> in cluster <c> for <t> task)",
    hint="use one of the storages defined in spec.backup.storages",
    bad=[_task("storageName: s3-eu")],
    good=[_task("storageName: s3-main")],
)
def task_storage(ctx: Context) -> Iterable[Violation]:
    defined = ctx.storages
    for i, task in ctx.tasks:
        if _enabled(task) and _type(task) != "external":
            name = text(task.get("storageName"))
            if name not in defined:
                shown = f'storage "{name}"' if name else "storageName is empty:"
                yield Violation(
                    ROOT + (i, "storageName"),
                    f"{shown} is not defined in spec.backup.storages (defined: "
                    f'{quoted(defined)}): the cluster goes to error with "there is no storage {name} in '
                    f'cluster {_cluster_name(ctx)} for {text(task.get("name"))} task"',
                )


def _cluster_name(ctx: Context) -> str:
    return text(mapping(ctx.obj.get("metadata")).get("name"))


@rule(
    "PSB204",
    title="Snapshot task without a VolumeSnapshotClass",
    severity=Severity.ERROR,
    kind=kinds.CLUSTER,
    needs_backup_enabled=True,
    source="OP v1.23.0@b15af500 pkg/controller/perconaservermongodb/backup.go:74-101 (spec volumeSnapshotClass field is empty for <t> task)",
    hint="set volumeSnapshotClass to a VolumeSnapshotClass of your CSI driver",
    bad=[_task("type: external")],
    good=[_task("type: external, volumeSnapshotClass: csi-snapclass")],
)
def external_task_class(ctx: Context) -> Iterable[Violation]:
    for i, task in ctx.tasks:
        if _enabled(task) and _type(task) == "external" and not text(task.get("volumeSnapshotClass")):
            yield Violation(
                ROOT + (i, "volumeSnapshotClass"),
                "type is external but volumeSnapshotClass is empty: the "
                f'cluster goes to error with "spec volumeSnapshotClass field is empty for '
                f'{text(task.get("name"))} task"',
            )


@rule(
    "PSB205",
    title="Snapshot backups need a storage and crVersion 1.23",
    severity=Severity.ERROR,
    kind=(kinds.CLUSTER, kinds.BACKUP),
    needs_backup_enabled=True,
    source="OP v1.23.0@b15af500 pkg/controller/perconaservermongodb/backup.go:74-101 (task volumeSnapshotClass); OP v1.23.0@b15af500 pkg/apis/psmdb/v1/psmdb_types.go:1233-1236 (PVC snapshot backups, new in 1.23.0; PBM keeps their metadata on the main storage)",
    hint="define a main storage for PBM's metadata, and use crVersion 1.23.0 or newer",
    bad=[
        with_backup(
            "tasks: [{name: snap, enabled: true, schedule: '0 0 * * *', type: external, volumeSnapshotClass: csi}]"
        )
    ],
    good=[_task("type: external, volumeSnapshotClass: csi")],
)
def external_needs_storage(ctx: Context) -> Iterable[Violation]:
    if ctx.kind == kinds.BACKUP:
        cluster = ctx.cluster()
        if cluster is None or ctx.spec.get("type") != "external":
            return
        items: list[tuple[tuple[str | int, ...], Mapping[str, Any]]] = [(("spec", "type"), ctx.spec)]
        spec = mapping(cluster.get("spec"))
    else:
        spec = ctx.spec
        items = [(ROOT + (i, "type"), t) for i, t in tasks(spec) if _enabled(t) and _type(t) == "external"]
    for path, _ in items:
        if not storages(spec):
            yield Violation(
                path,
                "snapshot (external) backups still write PBM metadata to the main storage, and the "
                "cluster defines no storage: PBM cannot start the backup",
            )
        if ctx.cr_version < V1_23:
            yield Violation(
                path,
                f"snapshot (external) backups need crVersion 1.23.0 or newer; it is {ctx.cr_version}",
                severity=Severity.WARNING,
            )


@lru_cache(maxsize=4096)
def parse_schedule(expr: str) -> tuple[cron.Schedule | None, str | None]:
    """(schedule, None) or (None, robfig's error text); memoised because manifests repeat the same few schedules."""
    try:
        return cron.parse(expr), None
    except cron.CronError as err:
        return None, str(err)


@lru_cache(maxsize=4096)
def never_fires(expr: str) -> bool:
    schedule, _ = parse_schedule(expr)
    return schedule is not None and schedule.next(_NEVER_CHECK_FROM) is None


# Fixed so the verdict never depends on when the linter runs; robfig searches 5 years ahead.
_NEVER_CHECK_FROM = datetime(2026, 1, 1, tzinfo=UTC)


@rule(
    "PSB206",
    title="Invalid cron schedule",
    severity=Severity.ERROR,
    kind=kinds.CLUSTER,
    needs_backup_enabled=True,
    source="OP v1.23.0@b15af500 pkg/controller/perconaservermongodb/backup.go:118-120 (robfig/cron v3.0.1 standard parser)",
    hint='use 5 fields "minute hour day-of-month month day-of-week", a descriptor such as @daily or '
    '"@every 6h", optionally prefixed with "CRON_TZ=Europe/Berlin "',
    bad=[
        _task("storageName: s3-main").replace("0 0 * * *", "0 0 * * 7"),
        _task("storageName: s3-main").replace("0 0 * * *", "CRON_TZ=UTC"),
    ],
    good=[_task("storageName: s3-main").replace("0 0 * * *", "CRON_TZ=Europe/Berlin 30 1 * * SUN")],
)
def task_schedule(ctx: Context) -> Iterable[Violation]:
    """Only enabled tasks are parsed; a bad schedule on a disabled task is reported as a warning."""
    for i, task in ctx.tasks:
        expr = task.get("schedule")
        if not isinstance(expr, str) and expr is not None:
            continue
        _, err = parse_schedule(expr or "")
        if err is not None:
            severity = None if _enabled(task) else Severity.WARNING
            when = "" if _enabled(task) else " (the task is disabled; enabling it puts the cluster in error)"
            yield Violation(
                ROOT + (i, "schedule"),
                f"can't parse cronjob schedule for backup {text(task.get('name'))} "
                f'with schedule "{expr or ""}": {err}{when}',
                severity=severity,
            )


@rule(
    "PSB207",
    title="Schedule never fires",
    severity=Severity.WARNING,
    kind=kinds.CLUSTER,
    source="OP v1.23.0@b15af500 pkg/controller/perconaservermongodb/backup.go:118-120 (robfig/cron v3.0.1 spec.go Next: zero time when nothing matches within 5 years)",
    hint="check day-of-month against the month (February has no 30th, April no 31st)",
    bad=[_task("storageName: s3-main").replace("0 0 * * *", "0 0 30 2 *")],
    good=[_task("storageName: s3-main").replace("0 0 * * *", "0 0 28 2 *")],
)
def schedule_never_fires(ctx: Context) -> Iterable[Violation]:
    for i, task in ctx.tasks:
        expr = text(task.get("schedule"))
        if never_fires(expr):
            yield Violation(
                ROOT + (i, "schedule"), f'schedule "{expr}" is valid but never fires: this task never makes a backup'
            )


@rule(
    "PSB208",
    title="Deprecated keep is ignored",
    severity=Severity.WARNING,
    kind=kinds.CLUSTER,
    since=V1_21,
    source="OP v1.23.0@b15af500 pkg/apis/psmdb/v1/psmdb_types.go:1242-1251 (GetRetention prefers retention from 1.21.0)",
    hint="remove keep and set retention.count",
    bad=[_task("storageName: s3-main, keep: 5, retention: {type: count, count: 0}")],
    good=[_task("storageName: s3-main, retention: {type: count, count: 5, deleteFromStorage: true}")],
)
def keep_ignored(ctx: Context) -> Iterable[Violation]:
    for i, task in ctx.tasks:
        keep = task.get("keep")
        if isinstance(keep, int) and keep > 0 and isinstance(task.get("retention"), dict):
            yield Violation(
                ROOT + (i, "keep"),
                f"keep: {keep} is ignored because retention is set (retention.count "
                f"{mapping(task['retention']).get('count', 0)} wins)",
            )


@rule(
    "PSB209",
    title="Retention does not apply to incremental tasks",
    severity=Severity.WARNING,
    kind=kinds.CLUSTER,
    source="OP v1.23.0@b15af500 pkg/controller/perconaservermongodb/backup.go:150-183 (retention skipped for type incremental)",
    hint="set retention on the incremental-base task; deleting a base deletes its increments in PBM",
    bad=[_task("storageName: s3-main, type: incremental, retention: {type: count, count: 3}")],
    good=[_task("storageName: s3-main, type: incremental-base, retention: {type: count, count: 3}")],
)
def incremental_retention(ctx: Context) -> Iterable[Violation]:
    for i, task in ctx.tasks:
        count = mapping(task.get("retention")).get("count", task.get("keep"))
        if _type(task) == "incremental" and isinstance(count, int) and count > 0:
            yield Violation(
                ROOT + (i, "retention"),
                "retention is never applied to type: incremental tasks: their "
                "backups accumulate until the incremental base is deleted",
            )


# What the operator's cron closure captures (OP v1.23.0@b15af500 pkg/controller/perconaservermongodb/backup.go:110-118,186-207):
# edits to these wait for a schedule/storage change.
_CAPTURED = ("type", "compressionType", "compressionLevel", "volumeSnapshotClass")


@rule(
    "PSB211",
    title="Task change the Percona operator applies late",
    severity=Severity.WARNING,
    kind=kinds.CLUSTER,
    source="OP v1.23.0@b15af500 pkg/controller/perconaservermongodb/backup.go:103-133,186-207 (cron entry kept while schedule and "
    "storage are unchanged)",
    hint="change the schedule or storage too, or restart the operator (psmdb-backup controller applies it at once)",
    bad=[Example(_task("storageName: s3-main, compressionType: zstd"), old=_task("storageName: s3-main"))],
    good=[
        Example(
            _task("storageName: s3-main, compressionType: zstd").replace("0 0 * * *", "0 1 * * *"),
            old=_task("storageName: s3-main"),
        )
    ],
    description="Only on UPDATE (admission): the old object is needed.",
)
def late_task_change(ctx: Context) -> Iterable[Violation]:
    if ctx.old is None:
        return
    before = {text(t.get("name")): t for _, t in tasks(mapping(ctx.old.get("spec")))}
    for i, task in ctx.tasks:
        old = before.get(text(task.get("name")))
        if (
            old is None
            or old.get("schedule") != task.get("schedule")
            or old.get("storageName") != task.get("storageName")
        ):
            continue
        changed = [f for f in _CAPTURED if old.get(f) != task.get(f)]
        if mapping(old.get("retention")).get("deleteFromStorage") != mapping(task.get("retention")).get(
            "deleteFromStorage"
        ):
            changed.append("retention.deleteFromStorage")
        if changed:
            yield Violation(
                ROOT + (i,),
                f"{', '.join(changed)} changed but schedule and storageName did not: the Percona "
                "operator keeps using the old values until one of them changes or it restarts",
            )


@rule(
    "PSB212",
    title="Incremental task without an incremental base",
    severity=Severity.INFO,
    kind=kinds.CLUSTER,
    source="OP v1.23.0@b15af500 pkg/controller/perconaservermongodbbackup/backup.go:245-246 (incremental base backup not found)",
    hint="add an incremental-base task on the same storage, or take one incremental-base backup first",
    bad=[_task("storageName: s3-main, type: incremental")],
    good=[
        with_backup(
            f"{S3}, tasks: [{{name: base, enabled: true, schedule: '0 0 * * 0', storageName: s3-main, "
            "type: incremental-base}, {name: inc, enabled: true, schedule: '0 * * * *', storageName: s3-main, "
            "type: incremental}]"
        )
    ],
)
def incremental_without_base(ctx: Context) -> Iterable[Violation]:
    bases = {text(t.get("storageName")) for _, t in ctx.tasks if _type(t) == "incremental-base" and _enabled(t)}
    for i, task in ctx.tasks:
        if _enabled(task) and _type(task) == "incremental" and text(task.get("storageName")) not in bases:
            yield Violation(
                ROOT + (i, "type"),
                "no enabled incremental-base task writes to the same storage: these "
                'backups fail with "incremental base backup not found" unless a base backup exists there',
            )


_OVERLAP_FROM = datetime(2026, 1, 1, tzinfo=UTC)  # fixed, like _NEVER_CHECK_FROM: the verdict must not drift


@lru_cache(maxsize=4096)
def _common_minute(a: str, b: str) -> datetime | None:
    x, _ = parse_schedule(a)
    y, _ = parse_schedule(b)
    return None if x is None or y is None else cron.first_common_minute(x, y, _OVERLAP_FROM)


@rule(
    "PSB214",
    title="Two tasks fire in the same minute",
    severity=Severity.INFO,
    kind=kinds.CLUSTER,
    source="OP v1.23.0@b15af500 pkg/psmdb/backup/job.go:107 (each firing creates a Backup named cron-<cluster>-"
    "<time>-<random>); pkg/controller/perconaservermongodbbackup/psmdb_backup_controller.go:287-296 (one Lease "
    "per cluster: the other Backup is waiting); deadline.go:16-18 (startingDeadlineSeconds only in state new)",
    hint="stagger the schedules (e.g. 0 0 * * * and 30 0 * * *) so each backup starts on time",
    bad=[
        with_backup(
            f"{S3}, tasks: [{{name: daily, enabled: true, schedule: '0 0 * * *', storageName: s3-main}}, "
            "{name: weekly, enabled: true, schedule: '0 0 * * 0', storageName: s3-main, type: physical}]"
        )
    ],
    good=[
        with_backup(
            f"{S3}, tasks: [{{name: daily, enabled: true, schedule: '0 0 * * *', storageName: s3-main}}, "
            "{name: weekly, enabled: true, schedule: '30 0 * * 0', storageName: s3-main, type: physical}]"
        )
    ],
    description="Nothing fails: both Backups are created, the second one waits in state `waiting` behind the "
    "cluster's backup Lease and starts when the first finishes (the starting deadline does not apply to a waiting "
    "backup). Schedules in different CRON_TZ zones and `@every` schedules are not compared.",
)
def tasks_same_minute(ctx: Context) -> Iterable[Violation]:
    enabled = [(i, t) for i, t in ctx.tasks if _enabled(t) and isinstance(t.get("schedule"), str)]
    for n, (i, task) in enumerate(enabled):
        for j, other in enabled[:n]:
            when = _common_minute(other["schedule"], task["schedule"])
            if when is not None:
                yield Violation(
                    ROOT + (i, "schedule"),
                    f"fires in the same minute as task {text(other.get('name')) or j} (first {when:%Y-%m-%d %H:%M} "
                    "UTC): the later Backup waits for the cluster's backup lock and starts when the other finishes",
                )
                break
