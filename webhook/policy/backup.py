"""Rules on PerconaServerMongoDBBackup (OP v1.23.0@b15af500 pkg/apis/psmdb/v1/perconaservermongodbbackup_types.go:125-141
CheckFields; OP v1.23.0@b15af500 pkg/controller/perconaservermongodbbackup/psmdb_backup_controller.go:109-316)."""

from __future__ import annotations

from collections.abc import Iterable

from ..findings import Severity
from . import kinds
from .common import backup_spec, mapping, quoted, storages, text
from .examples import CLUSTER
from .lookup import Missing
from .registry import Context, Example, Violation, backup_enabled, rule

SPEC = ("spec",)


def _type(ctx: Context) -> str:
    return text(ctx.spec.get("type")) or "logical"


# Shared with the schedule rules (schedule.py), which check the Backups a schedule will create.
def missing_cluster(ctx: Context) -> str | None:
    """What is wrong when spec.clusterName names a cluster the live API says is absent, else None."""
    if isinstance(ctx.get(kinds.CLUSTER, ctx.spec.get("clusterName")), Missing):
        return f'PerconaServerMongoDB "{ctx.spec["clusterName"]}" does not exist in namespace {ctx.namespace}'
    return None


def undefined_storage(ctx: Context, name: str) -> str | None:
    """What is wrong when `name` is not a storage of the cluster spec.clusterName names (known clusters only)."""
    cluster = ctx.cluster()
    if cluster is None:
        return None
    defined = storages(mapping(cluster.get("spec")))
    if name in defined:
        return None
    return f'storage "{name}" is not defined in cluster {ctx.spec["clusterName"]} (defined: {quoted(defined)})'


def backups_disabled(ctx: Context) -> bool:
    """The named cluster is known, has a spec.backup section, and backups are not enabled in it."""
    cluster = ctx.cluster()
    return (
        cluster is not None
        and isinstance(backup_spec(mapping(cluster.get("spec"))), dict)
        and not backup_enabled(cluster)
    )


@rule(
    "PSB401",
    title="Backup without a cluster name",
    severity=Severity.ERROR,
    kind=kinds.BACKUP,
    source="OP v1.23.0@b15af500 pkg/apis/psmdb/v1/perconaservermongodbbackup_types.go:125-141 (spec clusterName is empty)",
    hint="set spec.clusterName to the PerconaServerMongoDB in the same namespace",
    bad=["spec: {storageName: s3-main}"],
    good=["spec: {clusterName: my-cluster, storageName: s3-main}"],
)
def backup_cluster_name(ctx: Context) -> Iterable[Violation]:
    if not text(ctx.spec.get("clusterName")):
        yield Violation(
            SPEC + ("clusterName",), 'clusterName is empty: the backup fails with "spec clusterName is empty"'
        )


@rule(
    "PSB402",
    title="Backup names a cluster that does not exist",
    severity=Severity.ERROR,
    kind=kinds.BACKUP,
    source="OP v1.23.0@b15af500 pkg/controller/perconaservermongodbbackup/psmdb_backup_controller.go:180-183,260 (cluster not found)",
    hint="use the name of a PerconaServerMongoDB in the backup's namespace",
    bad=[
        Example(
            "spec: {clusterName: my-cluster, storageName: s3-main}", others=("MISSING PerconaServerMongoDB my-cluster",)
        )
    ],
    good=[Example("spec: {clusterName: my-cluster, storageName: s3-main}", others=(CLUSTER,))],
    description="Only reported when the cluster is authoritatively absent (live API); a lint run without the "
    "cluster stays silent.",
)
def backup_cluster_exists(ctx: Context) -> Iterable[Violation]:
    problem = missing_cluster(ctx)
    if problem:
        yield Violation(SPEC + ("clusterName",), f'{problem}: the backup fails with "cluster not found"')


@rule(
    "PSB403",
    title="Backup without a storage name",
    severity=Severity.ERROR,
    kind=kinds.BACKUP,
    source="OP v1.23.0@b15af500 pkg/apis/psmdb/v1/perconaservermongodbbackup_types.go:125-141 (spec storageName field is empty)",
    hint="set spec.storageName to one of the cluster's spec.backup.storages",
    bad=["spec: {clusterName: my-cluster}"],
    good=["spec: {clusterName: my-cluster, storageName: s3-main}"],
)
def backup_storage_name(ctx: Context) -> Iterable[Violation]:
    if _type(ctx) != "external" and not text(ctx.spec.get("storageName")):
        yield Violation(
            SPEC + ("storageName",), 'storageName is empty: the backup fails with "spec storageName field is empty"'
        )


@rule(
    "PSB404",
    title="Backup names a storage the cluster does not define",
    severity=Severity.ERROR,
    kind=kinds.BACKUP,
    source="OP v1.23.0@b15af500 pkg/controller/perconaservermongodbbackup/backup.go:80 (unable to get storage '<name>')",
    hint="use one of the storages in the cluster's spec.backup.storages",
    bad=[Example("spec: {clusterName: my-cluster, storageName: s3-eu}", others=(CLUSTER,))],
    good=[Example("spec: {clusterName: my-cluster, storageName: azure-blob}", others=(CLUSTER,))],
)
def backup_storage_defined(ctx: Context) -> Iterable[Violation]:
    name = text(ctx.spec.get("storageName"))
    problem = undefined_storage(ctx, name) if name and _type(ctx) != "external" else None
    if problem:
        yield Violation(SPEC + ("storageName",), f"{problem}: the backup fails with \"unable to get storage '{name}'\"")


@rule(
    "PSB405",
    title="Snapshot backup without a VolumeSnapshotClass",
    severity=Severity.ERROR,
    kind=kinds.BACKUP,
    source="OP v1.23.0@b15af500 pkg/apis/psmdb/v1/perconaservermongodbbackup_types.go:125-141 (spec volumeSnapshotClass field is empty)",
    hint="set spec.volumeSnapshotClass",
    bad=["spec: {clusterName: my-cluster, type: external}"],
    good=["spec: {clusterName: my-cluster, type: external, volumeSnapshotClass: csi-snapclass}"],
)
def backup_snapshot_class(ctx: Context) -> Iterable[Violation]:
    if _type(ctx) == "external" and not text(ctx.spec.get("volumeSnapshotClass")):
        yield Violation(
            SPEC + ("volumeSnapshotClass",),
            "type is external but volumeSnapshotClass is empty: the backup "
            'fails with "spec volumeSnapshotClass field is empty"',
        )


@rule(
    "PSB406",
    title="Backup of a cluster with backups disabled",
    severity=Severity.ERROR,
    kind=kinds.BACKUP,
    source="OP v1.23.0@b15af500 pkg/psmdb/statefulset.go:399-424 (no backup-agent without spec.backup.enabled)",
    hint="set spec.backup.enabled: true on the cluster first",
    bad=[
        Example(
            "spec: {clusterName: my-cluster, storageName: s3-main}",
            others=(CLUSTER.replace("enabled: true", "enabled: false"),),
        )
    ],
    good=[Example("spec: {clusterName: my-cluster, storageName: s3-main}", others=(CLUSTER,))],
)
def backup_cluster_backups_enabled(ctx: Context) -> Iterable[Violation]:
    if backups_disabled(ctx):
        yield Violation(
            SPEC + ("clusterName",),
            f"cluster {ctx.spec['clusterName']} has spec.backup.enabled false: no "
            "backup-agent runs, so this backup never starts",
        )


@rule(
    "PSB407",
    title="Backup of a cluster that is not ready",
    severity=Severity.WARNING,
    kind=kinds.BACKUP,
    source="OP v1.23.0@b15af500 pkg/apis/psmdb/v1/psmdb_types.go:1751-1778 (CanBackup)",
    hint="wait until the cluster is ready, or set spec.unsafeFlags.backupIfUnhealthy: true on the cluster",
    bad=[
        Example(
            "spec: {clusterName: my-cluster, storageName: s3-main}",
            others=(CLUSTER.replace("state: ready", "state: initializing"),),
        )
    ],
    good=[Example("spec: {clusterName: my-cluster, storageName: s3-main}", others=(CLUSTER,))],
)
def backup_cluster_not_ready(ctx: Context) -> Iterable[Violation]:
    cluster = ctx.cluster()
    if cluster is None:
        return
    state = mapping(cluster.get("status")).get("state")
    spec = mapping(cluster.get("spec"))
    unsafe = (
        mapping(spec.get("unsafeFlags")).get("backupIfUnhealthy") is True
        or spec.get("allowUnsafeConfigurations") is True
    )
    if isinstance(state, str) and state and state != "ready" and not unsafe:
        yield Violation(
            SPEC + ("clusterName",),
            f'cluster {ctx.spec["clusterName"]} is in state "{state}": the backup '
            'waits and fails with "starting deadline seconds exceeded" unless the cluster becomes ready',
        )
