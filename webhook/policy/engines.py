"""Physical and incremental backups need the WiredTiger storage engine: PBM copies the data files that mongod's
`$backupCursor` lists, and a replset on the `inMemory` engine has neither files nor a backup cursor."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..findings import Severity
from . import kinds
from .common import is_sharded, mapping, text
from .examples import CLUSTER, with_backup
from .registry import RELEASE_1_23, Context, Example, Violation, rule

FILE_COPY_TYPES = ("physical", "incremental", "incremental-base")
SOURCE = (
    "PBM v2.15.0@9641a911 pbm/backup/physical.go:94,131-134 (physical and incremental backups open $backupCursor "
    "on every replset: create backupCursor fails on inMemory); PBM docs details/versions.md (physical and "
    "incremental backups need WiredTiger); OP v1.23.0@b15af500 pkg/apis/psmdb/v1/psmdb_types.go:1177-1178 "
    "(replsets[].storage.engine)"
)
IN_MEMORY = "replsets: [{name: rs0, size: 3, storage: {engine: inMemory}}]"
S3 = "storages: {s3-main: {type: s3, s3: {bucket: b}}}"


def in_memory_replsets(spec: Mapping[str, Any]) -> list[str]:
    """Names of the replsets PBM backs up whose storage engine is inMemory (the config server replset too when
    the cluster is sharded)."""
    items = spec.get("replsets")
    sets = [rs for rs in (items if isinstance(items, list) else ()) if isinstance(rs, dict)]
    cfg = mapping(spec.get("sharding")).get("configsvrReplSet")
    if is_sharded(spec) and isinstance(cfg, dict):
        sets.append({"name": "cfg", **cfg})
    return [text(rs.get("name")) or "?" for rs in sets if mapping(rs.get("storage")).get("engine") == "inMemory"]


def _message(kind: str, names: list[str]) -> str:
    return (
        f"{kind} backups copy WiredTiger data files through $backupCursor, and replset {', '.join(names)} uses the "
        'inMemory storage engine: PBM fails with "create backupCursor" and the backup ends in error'
    )


@rule(
    "PSB213",
    title="Physical or incremental task on an inMemory replset",
    severity=Severity.ERROR,
    kind=kinds.CLUSTER,
    needs_backup_enabled=True,
    checked_against=RELEASE_1_23,
    source=SOURCE,
    hint="use type: logical for this cluster, or the wiredTiger storage engine",
    bad=[
        with_backup(
            f"{S3}, tasks: [{{name: daily, enabled: true, schedule: '0 0 * * *', storageName: s3-main, "
            "type: physical}]"
        ).replace("replsets: [{name: rs0, size: 3}]", IN_MEMORY)
    ],
    good=[
        with_backup(
            f"{S3}, tasks: [{{name: daily, enabled: true, schedule: '0 0 * * *', storageName: s3-main, type: logical}}]"
        ).replace("replsets: [{name: rs0, size: 3}]", IN_MEMORY)
    ],
)
def in_memory_tasks(ctx: Context) -> Iterable[Violation]:
    names = in_memory_replsets(ctx.spec)
    if not names:
        return
    for i, task in ctx.tasks:
        kind = text(task.get("type"))
        if task.get("enabled") is True and kind in FILE_COPY_TYPES:
            yield Violation(("spec", "backup", "tasks", i, "type"), _message(kind, names))


@rule(
    "PSB408",
    title="Physical or incremental backup of an inMemory replset",
    severity=Severity.ERROR,
    kind=(kinds.BACKUP, kinds.SCHEDULE),
    checked_against=RELEASE_1_23,
    source=SOURCE,
    hint="take a logical backup of this cluster",
    bad=[
        Example(
            "spec: {clusterName: my-cluster, storageName: s3-main, type: physical}",
            others=(CLUSTER.replace("replsets: [{name: rs0, size: 3}]", IN_MEMORY),),
        ),
        Example(  # the Backups a schedule creates
            f"{{apiVersion: {kinds.api_version(kinds.SCHEDULE)}, kind: {kinds.SCHEDULE}, metadata: {{name: nightly}}, "
            "spec: {clusterName: my-cluster, schedule: '0 1 * * *', storageName: s3-main, type: incremental-base}}",
            others=(CLUSTER.replace("replsets: [{name: rs0, size: 3}]", IN_MEMORY),),
        ),
    ],
    good=[
        Example(
            "spec: {clusterName: my-cluster, storageName: s3-main, type: logical}",
            others=(CLUSTER.replace("replsets: [{name: rs0, size: 3}]", IN_MEMORY),),
        ),
        Example("spec: {clusterName: my-cluster, storageName: s3-main, type: physical}", others=(CLUSTER,)),
    ],
    description="Needs the cluster (in the same lint run, or live). A schedule is checked for the Backups it creates.",
)
def in_memory_backup(ctx: Context) -> Iterable[Violation]:
    kind = text(ctx.spec.get("type"))
    cluster = ctx.cluster() if kind in FILE_COPY_TYPES else None
    names = in_memory_replsets(mapping(cluster.get("spec"))) if cluster is not None else []
    if names:
        yield Violation(("spec", "type"), _message(kind, names))
