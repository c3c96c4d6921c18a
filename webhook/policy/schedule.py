"""Rules on PerconaServerMongoDBBackupSchedule, this project's schedule of the operator's Backups (issue 17).

A schedule's problems show up late: each slot creates a PerconaServerMongoDBBackup that the operator then runs or
fails. So these rules check the Backups a schedule will create, with the Backup rules' helpers (backup.py), and
what only a schedule has: its cron expression, its retention, and its place beside the operator's own tasks.
Compression is checked by PSB210 (compression.py), the same rule as for a Backup.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any

from ..findings import Severity
from . import kinds
from .backup import backups_disabled, missing_cluster, undefined_storage
from .common import main_storage, mapping, tasks, text
from .examples import CLUSTER
from .registry import Context, Example, Violation, rule
from .tasks import never_fires, parse_schedule

SPEC = ("spec",)
BASE = "spec: {clusterName: my-cluster, schedule: '0 1 * * *', storageName: s3-main"
CRON_HINT = (
    'use 5 fields "minute hour day-of-month month day-of-week", a descriptor such as @daily or "@every 6h", '
    'optionally prefixed with "CRON_TZ=Europe/Berlin "'
)

# retention.maxAge: one or more <number><unit>; the same grammar is the schema's pattern.
MAX_AGE_UNITS = {"w": timedelta(weeks=1), "d": timedelta(days=1), "h": timedelta(hours=1), "m": timedelta(minutes=1)}
_MAX_AGE = re.compile(r"^([0-9]+[wdhm])+$")
_MAX_AGE_PART = re.compile(r"([0-9]+)([wdhm])")


def parse_max_age(value: str) -> timedelta | None:
    """`7d`, `36h`, `1w3d`, `90m` as a timedelta; None when `value` is not in the grammar."""
    if not _MAX_AGE.match(value):
        return None
    return sum((int(n) * MAX_AGE_UNITS[u] for n, u in _MAX_AGE_PART.findall(value)), timedelta())


def _with(cluster_yaml: str, **replace: str) -> str:
    for old, new in replace.items():
        cluster_yaml = cluster_yaml.replace(old, new)
    return cluster_yaml


def _name(ctx: Context) -> str:
    return text(mapping(ctx.obj.get("metadata")).get("name"))


@rule(
    "PSB601",
    title="Schedule does not parse",
    severity=Severity.ERROR,
    kind=kinds.SCHEDULE,
    source="OP v1.23.0@b15af500 pkg/controller/perconaservermongodb/backup.go:118-120 (robfig/cron v3.0.1 standard parser)",
    hint=CRON_HINT,
    bad=[BASE.replace("0 1 * * *", "0 1 * * 7") + "}", BASE.replace("0 1 * * *", "CRON_TZ=UTC") + "}"],
    good=[
        BASE.replace("0 1 * * *", "CRON_TZ=Europe/Berlin 30 1 * * SUN") + "}",
        BASE.replace("0 1 * * *", "@every 6h") + "}",
    ],
    description="The schedule is parsed as the Percona operator parses its task schedules (webhook/cron.py), so a "
    "schedule imported from a task keeps its meaning.",
)
def schedule_parses(ctx: Context) -> Iterable[Violation]:
    expr = ctx.spec.get("schedule")
    if not isinstance(expr, str):
        return  # absent or not a string: the schema reports it
    _, err = parse_schedule(expr)
    if err is not None:
        yield Violation(
            SPEC + ("schedule",),
            f'schedule "{expr}" does not parse ({err}): no slot is ever computed, so no Backup is made',
        )


@rule(
    "PSB602",
    title="Schedule never fires",
    severity=Severity.WARNING,
    kind=kinds.SCHEDULE,
    source="OP v1.23.0@b15af500 pkg/controller/perconaservermongodb/backup.go:118-120 (robfig/cron v3.0.1 spec.go Next: "
    "zero time when nothing matches within 5 years)",
    hint="check day-of-month against the month (February has no 30th, April no 31st)",
    bad=[BASE.replace("0 1 * * *", "0 0 30 2 *") + "}"],
    good=[BASE.replace("0 1 * * *", "0 0 28 2 *") + "}"],
)
def schedule_fires(ctx: Context) -> Iterable[Violation]:
    expr = text(ctx.spec.get("schedule"))
    if never_fires(expr):
        yield Violation(SPEC + ("schedule",), f'schedule "{expr}" is valid but never fires: no Backup is ever made')


@rule(
    "PSB603",
    title="Schedule names a cluster that does not exist",
    severity=Severity.ERROR,
    kind=kinds.SCHEDULE,
    source="OP v1.23.0@b15af500 pkg/apis/psmdb/v1/perconaservermongodbbackup_types.go:125-141 (spec clusterName is empty); "
    "OP v1.23.0@b15af500 pkg/controller/perconaservermongodbbackup/psmdb_backup_controller.go:180-183,260 (cluster not found)",
    hint="use the name of a PerconaServerMongoDB in the schedule's namespace",
    bad=[
        "spec: {clusterName: '', schedule: '0 1 * * *', storageName: s3-main}",
        Example(BASE + "}", others=("MISSING PerconaServerMongoDB my-cluster",)),
    ],
    good=[Example(BASE + "}", others=(CLUSTER,))],
    description="A missing cluster is only reported when it is authoritatively absent (live API); a lint run "
    "without the cluster stays silent.",
)
def schedule_cluster_exists(ctx: Context) -> Iterable[Violation]:
    if isinstance(ctx.spec.get("clusterName"), str) and not ctx.spec["clusterName"]:
        yield Violation(
            SPEC + ("clusterName",), 'clusterName is empty: every Backup fails with "spec clusterName is empty"'
        )
        return
    problem = missing_cluster(ctx)
    if problem:
        yield Violation(
            SPEC + ("clusterName",), f'{problem}: every Backup of this schedule fails with "cluster not found"'
        )


@rule(
    "PSB604",
    title="Schedule names a storage the cluster does not define",
    severity=Severity.ERROR,
    kind=kinds.SCHEDULE,
    source="OP v1.23.0@b15af500 pkg/controller/perconaservermongodbbackup/backup.go:80 (unable to get storage '<name>')",
    hint="use one of the storages in the cluster's spec.backup.storages, or leave storageName out for the main one",
    bad=[Example(BASE.replace("s3-main", "s3-eu") + "}", others=(CLUSTER,))],
    good=[Example(BASE.replace("s3-main", "azure-blob") + "}", others=(CLUSTER,))],
)
def schedule_storage_defined(ctx: Context) -> Iterable[Violation]:
    name = text(ctx.spec.get("storageName"))
    problem = undefined_storage(ctx, name) if "storageName" in ctx.spec else None
    if problem:
        yield Violation(
            SPEC + ("storageName",),
            f"{problem}: every Backup of this schedule fails with \"unable to get storage '{name}'\"",
        )


@rule(
    "PSB605",
    title="Schedule without a storage on a cluster without a main storage",
    severity=Severity.ERROR,
    kind=kinds.SCHEDULE,
    source="OP v1.23.0@b15af500 pkg/apis/psmdb/v1/psmdb_types.go:1495-1513 (MainStorage); "
    "OP v1.23.0@b15af500 pkg/apis/psmdb/v1/perconaservermongodbbackup_types.go:125-141 (spec storageName field is empty)",
    hint="set spec.storageName, or mark one of the cluster's storages main: true",
    bad=[
        Example(
            "spec: {clusterName: my-cluster, schedule: '0 1 * * *'}",
            others=(_with(CLUSTER, **{"main: true, ": ""}),),
        )
    ],
    good=[Example("spec: {clusterName: my-cluster, schedule: '0 1 * * *'}", others=(CLUSTER,))],
    description="Without storageName a schedule backs up to the cluster's main storage, picked as the operator picks "
    "it: the only storage, else the one with main: true. An operator Backup needs a storage name, so without one "
    "no Backup can be made.",
)
def schedule_default_storage(ctx: Context) -> Iterable[Violation]:
    cluster = ctx.cluster()
    if cluster is None or "storageName" in ctx.spec:
        return
    name, why = main_storage(mapping(cluster.get("spec")))
    if name is None:
        yield Violation(
            SPEC,
            f"storageName is not set, so the schedule backs up to the main storage of cluster "
            f"{ctx.spec['clusterName']}, but {why}: no Backup can be made",
        )


@rule(
    "PSB606",
    title="Schedule named like an enabled task of its cluster",
    severity=Severity.ERROR,
    kind=kinds.SCHEDULE,
    source="OP v1.23.0@b15af500 pkg/controller/perconaservermongodb/backup.go:150-183,219-282 (task retention lists "
    "Backups by percona.com/cluster and percona.com/backup-ancestor=<task>)",
    hint="run `psmdb-backup schedules import CLUSTER` (it disables the task in the same change), or rename the schedule",
    bad=[
        Example(
            BASE + "}",
            others=(
                CLUSTER.replace(
                    "  backup:\n",
                    "  backup:\n    tasks: [{name: nightly, enabled: true, schedule: '0 1 * * *', storageName: s3-main}]\n",
                ),
            ),
        )
    ],
    good=[
        Example(
            BASE + "}",
            others=(
                CLUSTER.replace(
                    "  backup:\n",
                    "  backup:\n    tasks: [{name: nightly, enabled: false, schedule: '0 1 * * *', storageName: s3-main}]\n",
                ),
            ),
        ),
        Example(
            BASE + ", suspend: true}",
            others=(
                CLUSTER.replace(
                    "  backup:\n",
                    "  backup:\n    tasks: [{name: nightly, enabled: true, schedule: '0 1 * * *', storageName: s3-main}]\n",
                ),
            ),
        ),
    ],
    description="The schedule's Backups carry percona.com/backup-ancestor=<schedule name>, as the operator's do with "
    "the task name: the task's retention would count and delete the schedule's Backups as its own, and both would "
    "fire. A suspended schedule makes no Backup, so it may wait under the task's name: `schedules import` creates "
    "the schedules suspended, disables the tasks, then resumes the schedules.",
)
def schedule_name_is_not_a_task(ctx: Context) -> Iterable[Violation]:
    cluster = ctx.cluster()
    name = _name(ctx)
    if cluster is None or not name or ctx.spec.get("suspend") is True:
        return
    for i, task in tasks(mapping(cluster.get("spec"))):
        if text(task.get("name")) == name and task.get("enabled") is True:
            yield Violation(
                ("metadata", "name"),
                f'cluster {ctx.spec["clusterName"]} has an enabled task "{name}" (spec.backup.tasks[{i}]): the '
                "operator's retention for that task would claim this schedule's Backups by their "
                "percona.com/backup-ancestor label, and both would back up",
            )
            return


@rule(
    "PSB607",
    title="Schedule of a cluster with backups disabled",
    severity=Severity.WARNING,
    kind=kinds.SCHEDULE,
    source="OP v1.23.0@b15af500 pkg/controller/perconaservermongodbbackup/psmdb_backup_controller.go:109-316 (no "
    "spec.backup.enabled check; requested stays while PBM has no metadata); OP v1.23.0@b15af500 "
    "pkg/psmdb/statefulset.go:399-424 (no backup-agent without spec.backup.enabled)",
    hint="set spec.backup.enabled: true on the cluster, or suspend the schedule",
    bad=[Example(BASE + "}", others=(CLUSTER.replace("enabled: true", "enabled: false"),))],
    good=[
        Example(BASE + "}", others=(CLUSTER,)),
        Example(BASE + ", suspend: true}", others=(CLUSTER.replace("enabled: true", "enabled: false"),)),
    ],
)
def schedule_cluster_backups_enabled(ctx: Context) -> Iterable[Violation]:
    """The operator's Backup controller runs every Backup whatever spec.backup.enabled says; without the
    backup-agent nothing executes PBM's command."""
    if ctx.spec.get("suspend") is not True and backups_disabled(ctx):
        yield Violation(
            SPEC + ("clusterName",),
            f"cluster {ctx.spec['clusterName']} has spec.backup.enabled false, so its pods run no backup-agent; "
            "the operator still takes each Backup of this schedule (its Backup controller does not check "
            "backup.enabled), sends PBM the command and leaves the Backup requested for good, holding the "
            "cluster's backup lock: later Backups wait behind it (with concurrencyPolicy Forbid this schedule "
            "skips its slots)",
        )


_KEEPS = ("count", "keepDaily", "keepWeekly", "keepMonthly")


def _positive(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


@rule(
    "PSB608",
    title="Retention that deletes nothing or everything",
    severity=Severity.WARNING,
    kind=kinds.SCHEDULE,
    source="OP v1.23.0@b15af500 pkg/controller/perconaservermongodb/backup.go:150-183 (a task's retention with count <= 0 "
    "deletes nothing; the schedule's retention keeps that meaning and adds keep*/maxAge)",
    hint="set count (>= 1), keepDaily, keepWeekly or keepMonthly, and/or a positive maxAge such as 30d",
    bad=[BASE + ", retention: {count: 0}}", BASE + ", retention: {count: 7, maxAge: 0d}}"],
    good=[BASE + ", retention: {count: 7}}", BASE + ", retention: {keepDaily: 7, keepWeekly: 4, maxAge: 90d}}"],
    description="A retention without count, keep* or maxAge keeps every Backup (leave retention out to say so); "
    "a zero maxAge deletes every ready Backup but the newest as soon as it is finished.",
)
def retention_sane(ctx: Context) -> Iterable[Violation]:
    retention = ctx.spec.get("retention")
    if not isinstance(retention, Mapping):
        return
    path = SPEC + ("retention",)
    max_age = retention.get("maxAge")
    age = parse_max_age(max_age) if isinstance(max_age, str) else None
    if age == timedelta():
        yield Violation(
            path + ("maxAge",),
            f'maxAge "{max_age}" is zero: every ready Backup but the newest is deleted as soon as it is finished',
            severity=Severity.ERROR,
        )
    if age is None and not any(_positive(retention.get(k)) for k in _KEEPS):
        yield Violation(
            path,
            "retention sets none of count, keepDaily, keepWeekly, keepMonthly (above 0) or maxAge: it deletes "
            "nothing and this schedule's Backups accumulate",
        )


@rule(
    "PSB609",
    title="Retention of incremental Backups keeps their data",
    severity=Severity.WARNING,
    kind=kinds.SCHEDULE,
    source="OP v1.23.0@b15af500 pkg/controller/perconaservermongodbbackup/psmdb_backup_controller.go:612-800 "
    "(percona.com/delete-backup skipped for spec.type incremental)",
    hint="set retention on the incremental-base schedule: deleting a base makes PBM delete its increments",
    bad=[BASE + ", type: incremental, retention: {count: 3}}"],
    good=[BASE + ", type: incremental-base, retention: {count: 3}}", BASE + ", type: incremental}"],
)
def incremental_retention(ctx: Context) -> Iterable[Violation]:
    if ctx.spec.get("type") == "incremental" and isinstance(ctx.spec.get("retention"), Mapping):
        yield Violation(
            SPEC + ("retention",),
            "retention deletes only the Backup objects of type: incremental: the operator's delete-backup "
            "finalizer skips incremental backups, so their data stays until the incremental base is deleted",
        )
