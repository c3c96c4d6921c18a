"""Snapshot (external) backups name a VolumeSnapshotClass; the operator creates one VolumeSnapshot per replset with
it. A class that does not exist gives the VolumeSnapshot an error status (external-snapshotter), and the operator
ends the Backup in error with it. Only a live lookup can tell: in file lint the class is Unknown and nothing is said."""

from __future__ import annotations

from collections.abc import Iterable

from ..findings import Severity
from . import kinds
from .common import text
from .examples import CLUSTER, with_backup
from .lookup import Missing
from .registry import RELEASE_1_23, Context, Example, Violation, rule

SOURCE = (
    "OP v1.23.0@b15af500 pkg/controller/perconaservermongodbbackup/snapshot.go:104 (VolumeSnapshotClassName), "
    "snapshot.go:158-160 (snapshot error: <VolumeSnapshot status.error>), pkg/psmdb/backup/job.go:116 (a task's "
    "class is copied to its Backups)"
)
CLASS = """\
apiVersion: snapshot.storage.k8s.io/v1
kind: VolumeSnapshotClass
metadata: {name: csi-snapclass}
driver: ebs.csi.aws.com
deletionPolicy: Delete
"""
TASK = "storages: {s3-main: {type: s3, s3: {bucket: b}}}, tasks: [{name: snap, enabled: true, schedule: '0 0 * * *', type: external, volumeSnapshotClass: csi-snapclass}]"


def _missing(ctx: Context, name: object) -> bool:
    return isinstance(name, str) and bool(name) and isinstance(ctx.lookup.get(kinds.SNAPSHOT_CLASS, "", name), Missing)


def _message(name: str, what: str) -> str:
    return (
        f'VolumeSnapshotClass "{name}" does not exist (or the snapshot.storage.k8s.io API is not installed): the '
        f'VolumeSnapshots of {what} get an error status and the backup ends with "snapshot error: ..."'
    )


@rule(
    "PSB215",
    title="Snapshot task names a VolumeSnapshotClass that does not exist",
    severity=Severity.ERROR,
    kind=kinds.CLUSTER,
    needs_backup_enabled=True,
    retried_by_operator=True,
    checked_against=RELEASE_1_23,
    source=SOURCE,
    hint="create the VolumeSnapshotClass (kubectl get volumesnapshotclass lists them), or fix the name",
    bad=[Example(with_backup(TASK), others=("MISSING VolumeSnapshotClass csi-snapclass",))],
    good=[Example(with_backup(TASK), others=(CLASS,)), Example(with_backup(TASK))],
    description="Live lookups only (admission, `lint --cluster`). A warning at admission: the class may be "
    "applied after the cluster, and backups scheduled once it exists work.",
)
def task_snapshot_class(ctx: Context) -> Iterable[Violation]:
    for i, task in ctx.tasks:
        name = task.get("volumeSnapshotClass")
        if task.get("enabled") is True and task.get("type") == "external" and _missing(ctx, name):
            yield Violation(
                ("spec", "backup", "tasks", i, "volumeSnapshotClass"),
                _message(text(name), f"every backup of task {text(task.get('name'))}"),
            )


@rule(
    "PSB409",
    title="Snapshot backup names a VolumeSnapshotClass that does not exist",
    severity=Severity.ERROR,
    kind=kinds.BACKUP,
    checked_against=RELEASE_1_23,
    source=SOURCE,
    hint="create the VolumeSnapshotClass first (kubectl get volumesnapshotclass lists them), or fix the name",
    bad=[
        Example(
            "spec: {clusterName: my-cluster, type: external, volumeSnapshotClass: csi-snapclass}",
            others=(CLUSTER, "MISSING VolumeSnapshotClass csi-snapclass"),
        )
    ],
    good=[
        Example(
            "spec: {clusterName: my-cluster, type: external, volumeSnapshotClass: csi-snapclass}",
            others=(CLUSTER, CLASS),
        )
    ],
    description="Live lookups only (admission, `lint --cluster`): a lasting failure, so admission denies.",
)
def backup_snapshot_class_exists(ctx: Context) -> Iterable[Violation]:
    name = ctx.spec.get("volumeSnapshotClass")
    if ctx.spec.get("type") == "external" and _missing(ctx, name):
        yield Violation(("spec", "volumeSnapshotClass"), _message(text(name), "this backup"))
