"""Rules on PerconaServerMongoDBRestore (OP v1.23.0@b15af500 pkg/apis/psmdb/v1/perconaservermongodbrestore_types.go:144-198
CheckFields; OP v1.23.0@b15af500 pkg/controller/perconaservermongodbrestore/psmdb_restore_controller.go:100-302 and validate.go)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from ..findings import Severity
from ..times import parse_rfc3339
from . import kinds
from .common import STORAGE_TYPES, is_sharded, mapping, mongo_replset_names, quoted, storages, text
from .examples import CLUSTER, PHYSICAL_BACKUP, READY_BACKUP, SHARDED_CLUSTER
from .lookup import Found, Missing
from .registry import Context, Example, Violation, rule

SPEC = ("spec",)
SOURCE = SPEC + ("backupSource",)
PITR_LAYOUT = "%Y-%m-%d %H:%M:%S"  # Go layout 2006-01-02 15:04:05, UTC
# The order in which the operator picks a storage block when several are given
# (OP v1.23.0@b15af500 pkg/apis/psmdb/v1/perconaservermongodbrestore_types.go:16-34,239-252).
SOURCE_BLOCK_ORDER = ("azure", "s3", "minio", "gcs", "filesystem", "oss", "oci")  # oci: 1.23.0, order unverified
RESTORE_TYPES = ("logical", "physical", "incremental", "incremental-base", "external")

FROM_NAME = "spec: {clusterName: my-cluster, backupName: backup1"
FROM_SOURCE = (
    "spec: {clusterName: my-cluster, backupSource: {type: logical, "
    "destination: 's3://backups/2026-11-01T10:00:00Z', s3: {bucket: backups, credentialsSecret: s3-creds}}"
)


def _backup(ctx: Context) -> Mapping[str, Any] | None:
    found = ctx.get(kinds.BACKUP, ctx.spec.get("backupName"))
    return found.obj if isinstance(found, Found) else None


def backup_type(ctx: Context) -> str | None:
    """The type of the backup being restored, as the operator decides it; None when unknown."""
    if text(ctx.spec.get("backupName")):
        bcp = _backup(ctx)
        if bcp is None:
            return None
        kind = text(mapping(bcp.get("status")).get("type")) or text(mapping(bcp.get("spec")).get("type"))
        return kind or "logical"
    if isinstance(ctx.spec.get("backupSource"), dict):
        return text(ctx.spec["backupSource"].get("type")) or "logical"
    return None


@rule(
    "PSB501",
    title="PITR restore by date without a valid date",
    severity=Severity.ERROR,
    kind=kinds.RESTORE,
    source="OP v1.23.0@b15af500 config/crd/bases/psmdb.percona.com_perconaservermongodbrestores.yaml:293-299 (CEL on spec.pitr); "
    "OP v1.23.0@b15af500 pkg/apis/psmdb/v1/perconaservermongodbrestore_types.go:181-193",
    hint='set pitr.date as "YYYY-MM-DD HH:MM:SS" (UTC)',
    bad=[FROM_NAME + ", pitr: {type: date}}", FROM_NAME + ", pitr: {type: date, date: '2026-02-31 10:00:00'}}"],
    good=[FROM_NAME + ", pitr: {type: date, date: '2026-11-01 12:00:00'}}"],
)
def pitr_date(ctx: Context) -> Iterable[Violation]:
    pitr = mapping(ctx.spec.get("pitr"))
    if pitr.get("type") != "date":
        return
    date = text(pitr.get("date"))
    if not date:
        yield Violation(
            SPEC + ("pitr",),
            "Time should be in format YYYY-MM-DD HH:MM:SS with valid ranges (MM: 01-12, "
            "DD: 01-31, HH: 00-23, MM/SS: 00-59): pitr.type is date but there is no date",
        )
        return
    try:
        datetime.strptime(date, PITR_LAYOUT)
    except ValueError:
        if re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", date):  # shape is right (the CRD accepts it): no such day
            yield Violation(
                SPEC + ("pitr", "date"),
                f'"{date}" is not a real date: the operator cannot decode the restore and it never runs',
            )


@rule(
    "PSB502",
    title="PITR restore to latest with a date",
    severity=Severity.ERROR,
    kind=kinds.RESTORE,
    source="OP v1.23.0@b15af500 config/crd/bases/psmdb.percona.com_perconaservermongodbrestores.yaml:293-299 (CEL on spec.pitr)",
    hint="remove pitr.date, or use type: date",
    bad=[FROM_NAME + ", pitr: {type: latest, date: '2026-11-01 12:00:00'}}"],
    good=[FROM_NAME + ", pitr: {type: latest}}"],
)
def pitr_latest_with_date(ctx: Context) -> Iterable[Violation]:
    pitr = mapping(ctx.spec.get("pitr"))
    if pitr.get("type") == "latest" and "date" in pitr:
        yield Violation(SPEC + ("pitr", "date"), "Date should not be used when 'latest' type is used")


@rule(
    "PSB503",
    title="Unknown PITR restore type",
    severity=Severity.ERROR,
    kind=kinds.RESTORE,
    source="OP v1.23.0@b15af500 pkg/apis/psmdb/v1/perconaservermongodbrestore_types.go:181-193 (undefined pitr restore type)",
    hint="use pitr.type: date (with pitr.date) or pitr.type: latest",
    bad=[FROM_NAME + ", pitr: {type: Date, date: '2026-11-01 12:00:00'}}", FROM_NAME + ", pitr: {}}"],
    good=[FROM_NAME + ", pitr: {type: latest}}"],
)
def pitr_type(ctx: Context) -> Iterable[Violation]:
    if not isinstance(ctx.spec.get("pitr"), dict):
        return
    kind = ctx.spec["pitr"].get("type")
    if kind not in ("date", "latest"):
        yield Violation(
            SPEC + ("pitr", "type"),
            f"undefined pitr restore type: {kind if isinstance(kind, str) else ''} (the restore fails)",
        )


@rule(
    "PSB504",
    title="nsFrom and nsTo not paired",
    severity=Severity.ERROR,
    kind=kinds.RESTORE,
    source="OP v1.23.0@b15af500 config/crd/bases/psmdb.percona.com_perconaservermongodbrestores.yaml:317-322 (CEL on spec.selective)",
    hint="set both selective.nsFrom and selective.nsTo, to different namespaces",
    bad=[
        FROM_NAME + ", selective: {nsFrom: app.users}}",
        FROM_NAME + ", selective: {nsFrom: app.users, nsTo: app.users}}",
    ],
    good=[FROM_NAME + ", selective: {nsFrom: app.users, nsTo: app.users_restored}}"],
)
def ns_pairing(ctx: Context) -> Iterable[Violation]:
    sel = mapping(ctx.spec.get("selective"))
    has_from, has_to = "nsFrom" in sel, "nsTo" in sel
    if has_from != has_to:
        yield Violation(
            SPEC + ("selective", "nsTo" if has_from else "nsFrom"), "nsFrom and nsTo need to be set together"
        )
    elif has_from and sel.get("nsFrom") == sel.get("nsTo"):
        yield Violation(SPEC + ("selective", "nsTo"), "nsFrom and nsTo can't be the same")


@rule(
    "PSB505",
    title="Restore without a cluster name",
    severity=Severity.ERROR,
    kind=kinds.RESTORE,
    source="OP v1.23.0@b15af500 pkg/apis/psmdb/v1/perconaservermongodbrestore_types.go:144-198 (spec clusterName field is empty)",
    hint="set spec.clusterName to the PerconaServerMongoDB to restore into",
    bad=["spec: {backupName: backup1}"],
    good=[FROM_NAME + "}"],
)
def restore_cluster_name(ctx: Context) -> Iterable[Violation]:
    if not text(ctx.spec.get("clusterName")):
        yield Violation(
            SPEC + ("clusterName",), 'clusterName is empty: the restore fails with "spec clusterName field is empty"'
        )


@rule(
    "PSB506",
    title="Restore needs exactly one of backupName and backupSource",
    severity=Severity.ERROR,
    kind=kinds.RESTORE,
    source="OP v1.23.0@b15af500 pkg/controller/perconaservermongodbrestore/psmdb_restore_controller.go:414-453",
    hint="set backupName (a Backup in this namespace) or backupSource (destination + storage), not both",
    bad=["spec: {clusterName: my-cluster}", FROM_SOURCE + ", backupName: backup1}"],
    good=[FROM_NAME + "}", FROM_SOURCE + "}"],
)
def backup_reference(ctx: Context) -> Iterable[Violation]:
    has_name, has_source = bool(text(ctx.spec.get("backupName"))), isinstance(ctx.spec.get("backupSource"), dict)
    if not has_name and not has_source:
        yield Violation(
            SPEC,
            "neither backupName nor backupSource is set: the restore fails with "
            '"perconaservermongodbbackups.psmdb.percona.com \\"\\" not found"',
        )
    elif has_name and has_source:
        yield Violation(
            SOURCE,
            "both backupName and backupSource are set: backupSource is ignored (but still validated)",
            severity=Severity.WARNING,
        )


@rule(
    "PSB507",
    title="Incomplete backupSource",
    severity=Severity.ERROR,
    kind=kinds.RESTORE,
    source="OP v1.23.0@b15af500 pkg/apis/psmdb/v1/perconaservermongodbrestore_types.go:157-180 (CheckFields)",
    hint="give backupSource a destination (<scheme>://bucket[/prefix]/<backup name>) and a storage block or storageName",
    bad=[
        "spec: {clusterName: my-cluster, backupSource: {type: logical, s3: {bucket: backups}}}",
        "spec: {clusterName: my-cluster, backupSource: {destination: 'gs://backups/2026-11-01T10:00:00Z', "
        "s3: {bucket: backups}}}",
        "spec: {clusterName: my-cluster, backupSource: {destination: 's3://backups/2026-11-01T10:00:00Z'}}",
    ],
    good=[
        FROM_SOURCE + "}",
        Example(
            "spec: {clusterName: my-cluster, storageName: s3-main, backupSource: "
            "{destination: 's3://backups/2026-11-01T10:00:00Z'}}",
            others=(CLUSTER,),
        ),
    ],
)
def backup_source_fields(ctx: Context) -> Iterable[Violation]:
    """Checked whenever backupSource is present, even next to backupName (the operator validates it anyway)."""
    source = ctx.spec.get("backupSource")
    if not isinstance(source, dict):
        return
    kind, dest = text(source.get("type")) or "logical", text(source.get("destination"))
    if kind != "external" and not dest:
        yield Violation(
            SOURCE + ("destination",),
            'destination is empty: the restore fails with "backupSource destination is required"',
        )
    for block, scheme in (("s3", "s3://"), ("oss", "oss://")):
        if isinstance(source.get(block), dict) and dest and not dest.startswith(scheme):
            yield Violation(
                SOURCE + ("destination",),
                f'destination "{dest}" does not start with {scheme} although '
                f'backupSource.{block} is set: the restore fails with "backupSource destination should use '
                f'{block} protocol format"',
            )
    blocks = [b for b in STORAGE_TYPES if isinstance(source.get(b), dict)]
    if kind != "external" and not blocks and not text(ctx.spec.get("storageName")):
        yield Violation(
            SOURCE,
            f"backupSource has no storage block ({', '.join(STORAGE_TYPES)}) and "
            "spec.storageName is empty: the restore fails",
        )
    if len(blocks) > 1:
        used = next(b for b in SOURCE_BLOCK_ORDER if b in blocks)
        yield Violation(
            SOURCE,
            f"backupSource has several storage blocks ({', '.join(blocks)}): only {used} is used",
            severity=Severity.WARNING,
        )


_PBM_NAME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


@rule(
    "PSB508",
    title="backupSource destination does not end in a backup name",
    severity=Severity.ERROR,
    kind=kinds.RESTORE,
    source="OP v1.23.0@b15af500 pkg/controller/perconaservermongodbrestore/psmdb_restore_controller.go:415-418",
    hint="end the destination with the PBM backup name, e.g. s3://bucket/prefix/2026-11-01T10:00:00Z",
    bad=["spec: {clusterName: my-cluster, backupSource: {destination: 's3://backups/prefix/', s3: {bucket: backups}}}"],
    good=[FROM_SOURCE + "}"],
)
def destination_name(ctx: Context) -> Iterable[Violation]:
    dest = text(mapping(ctx.spec.get("backupSource")).get("destination"))
    if not dest:
        return
    name = dest.rsplit("/", 1)[-1]
    if not name:
        yield Violation(
            SOURCE + ("destination",),
            f'destination "{dest}" ends with "/": the backup name (the last '
            "path segment) is empty and PBM finds no backup",
        )
    elif not _PBM_NAME.match(name):
        yield Violation(
            SOURCE + ("destination",),
            f'the last segment "{name}" does not look like a PBM backup name (UTC time such as 2026-11-01T10:00:00Z)',
            severity=Severity.WARNING,
        )


@rule(
    "PSB509",
    title="Unknown backupSource type",
    severity=Severity.ERROR,
    kind=kinds.RESTORE,
    source="OP v1.23.0@b15af500 pkg/controller/perconaservermongodbrestore/psmdb_restore_controller.go:281-298 (dispatch by backup type)",
    hint="use logical, physical, incremental or external",
    bad=[FROM_SOURCE.replace("type: logical", "type: full") + "}"],
    good=[FROM_SOURCE + "}"],
)
def backup_source_type(ctx: Context) -> Iterable[Violation]:
    kind = mapping(ctx.spec.get("backupSource")).get("type")
    if isinstance(kind, str) and kind and kind not in RESTORE_TYPES:
        yield Violation(
            SOURCE + ("type",),
            f'backupSource.type "{kind}" is not a backup type: use one of {", ".join(RESTORE_TYPES)}',
        )


@rule(
    "PSB510",
    title="Selective restore from a non-logical backup",
    severity=Severity.ERROR,
    kind=kinds.RESTORE,
    source="OP v1.23.0@b15af500 pkg/controller/perconaservermongodbrestore/validate.go:32-41; "
    "OP v1.23.0@b15af500 pkg/apis/psmdb/v1/perconaservermongodbrestore_types.go:144-198",
    hint="restore from a logical backup, or remove spec.selective",
    bad=[
        Example(FROM_NAME + ", selective: {namespaces: [app.users]}}", others=(PHYSICAL_BACKUP,)),
        FROM_SOURCE.replace("type: logical", "type: physical") + ", selective: {nsFrom: a.b, nsTo: a.c}}",
    ],
    good=[Example(FROM_NAME + ", selective: {namespaces: [app.users]}}", others=(READY_BACKUP,))],
)
def selective_needs_logical(ctx: Context) -> Iterable[Violation]:
    sel = ctx.spec.get("selective")
    kind = backup_type(ctx)
    if not isinstance(sel, dict) or kind in (None, "logical"):
        return
    if "nsFrom" in sel:
        yield Violation(
            SPEC + ("selective", "nsFrom"),
            f'the backup is {kind}: the restore fails with "nsFrom and nsTo are only available for logical backups"',
        )
    elif kind == "external":
        yield Violation(
            SPEC + ("selective",),
            "selective settings are ignored for snapshot (external) backups: the whole backup is restored",
            severity=Severity.WARNING,
        )
    else:
        yield Violation(
            SPEC + ("selective",),
            f'the backup is {kind}: the restore fails with "`.spec.selective` '
            'field is supported only for logical backups"',
        )


@rule(
    "PSB511",
    title="Restore into a cluster that cannot take it",
    severity=Severity.ERROR,
    kind=kinds.RESTORE,
    source="OP v1.23.0@b15af500 pkg/apis/psmdb/v1/psmdb_types.go:1780 (CanRestore); OP v1.23.0@b15af500 pkg/controller/perconaservermongodbrestore/psmdb_restore_controller.go:165",
    hint="restore into a managed cluster that exists in this namespace; namespace cloning needs an unsharded cluster",
    bad=[
        Example(
            FROM_NAME + ", selective: {nsFrom: app.users, nsTo: app.users2}}", others=(SHARDED_CLUSTER, READY_BACKUP)
        ),
        Example(FROM_NAME + "}", others=("MISSING PerconaServerMongoDB my-cluster", READY_BACKUP)),
    ],
    good=[Example(FROM_NAME + ", selective: {nsFrom: app.users, nsTo: app.users2}}", others=(CLUSTER, READY_BACKUP))],
)
def target_cluster(ctx: Context) -> Iterable[Violation]:
    name = ctx.spec.get("clusterName")
    found = ctx.get(kinds.CLUSTER, name)
    path = SPEC + ("clusterName",)
    if isinstance(found, Missing):
        yield Violation(
            path, f'PerconaServerMongoDB "{name}" does not exist in namespace {ctx.namespace}: the restore fails'
        )
        return
    if not isinstance(found, Found):
        return
    spec = mapping(found.obj.get("spec"))
    if spec.get("unmanaged") is True:
        yield Violation(
            path, f'cluster {name} is unmanaged: the restore fails with "can\'t run restore in an unmanaged cluster"'
        )
    elif is_sharded(spec) and "nsFrom" in mapping(ctx.spec.get("selective")):
        yield Violation(
            SPEC + ("selective", "nsFrom"),
            f"cluster {name} is sharded: the restore fails with "
            '"namespace cloning is not supported in sharded clusters"',
        )


@rule(
    "PSB512",
    title="Restore names a storage the cluster does not define",
    severity=Severity.ERROR,
    kind=kinds.RESTORE,
    source="OP v1.23.0@b15af500 pkg/controller/perconaservermongodbrestore/validate.go:45 and psmdb_restore_controller.go:370 (get storage: unable to get storage)",
    hint="use one of the storages in the cluster's spec.backup.storages",
    bad=[
        Example(
            "spec: {clusterName: my-cluster, storageName: gcs, backupSource: "
            "{destination: 's3://backups/2026-11-01T10:00:00Z'}}",
            others=(CLUSTER,),
        )
    ],
    good=[
        Example(
            "spec: {clusterName: my-cluster, storageName: s3-main, backupSource: "
            "{destination: 's3://backups/2026-11-01T10:00:00Z'}}",
            others=(CLUSTER,),
        )
    ],
)
def restore_storage(ctx: Context) -> Iterable[Violation]:
    name, cluster = text(ctx.spec.get("storageName")), ctx.cluster()
    if name and cluster is not None and name not in (defined := storages(mapping(cluster.get("spec")))):
        yield Violation(
            SPEC + ("storageName",),
            f'storage "{name}" is not defined in cluster {ctx.spec["clusterName"]} '
            f'(defined: {quoted(defined)}): the restore fails with "get storage: unable to get storage '
            f"'{name}'\"",
        )


@rule(
    "PSB513",
    title="Restore names a backup that cannot be restored",
    severity=Severity.ERROR,
    kind=kinds.RESTORE,
    source="OP v1.23.0@b15af500 pkg/controller/perconaservermongodbrestore/psmdb_restore_controller.go:139-192 (get backup, "
    "backup is in error state, backup is not ready)",
    hint="name a Backup of this namespace in state ready",
    bad=[
        Example(FROM_NAME + "}", others=("MISSING PerconaServerMongoDBBackup backup1",)),
        Example(FROM_NAME + "}", others=(READY_BACKUP.replace("state: ready", "state: error"),)),
    ],
    good=[Example(FROM_NAME + "}", others=(READY_BACKUP,))],
)
def referenced_backup(ctx: Context) -> Iterable[Violation]:
    name = ctx.spec.get("backupName")
    found = ctx.get(kinds.BACKUP, name)
    path = SPEC + ("backupName",)
    if isinstance(found, Missing):
        yield Violation(
            path,
            f'the restore fails with "perconaservermongodbbackups.psmdb.percona.com \\"{name}\\" not '
            f'found" (no such Backup in namespace {ctx.namespace})',
        )
    elif isinstance(found, Found) and isinstance(found.obj.get("status"), dict):  # a manifest has no status yet
        state = found.obj["status"].get("state")
        if state == "error":
            yield Violation(path, f'Backup {name} is in state error: the restore fails with "backup is in error state"')
        elif state != "ready":
            yield Violation(
                path,
                f'Backup {name} is in state "{state or "new"}": the restore waits until it is ready',
                severity=Severity.INFO,
            )


def _parse_time(value: Any) -> datetime | None:
    """An RFC 3339 time (a Backup's lastWriteAt) or a PITR date (UTC, the operator's layout)."""
    if not isinstance(value, str):
        return None
    try:
        return parse_rfc3339(value) or datetime.strptime(value, PITR_LAYOUT).replace(tzinfo=UTC)
    except ValueError:
        return None


@rule(
    "PSB514",
    title="PITR target not after the backup",
    severity=Severity.ERROR,
    kind=kinds.RESTORE,
    source="OP v1.23.0@b15af500 pkg/controller/perconaservermongodbrestore/validate.go:88-100 (backup's last write is later than / "
    "equal to target time)",
    hint="pick a pitr.date after the backup's status.lastWriteAt (UTC)",
    bad=[Example(FROM_NAME + ", pitr: {type: date, date: '2026-11-01 10:00:00'}}", others=(READY_BACKUP,))],
    good=[Example(FROM_NAME + ", pitr: {type: date, date: '2026-11-01 12:00:00'}}", others=(READY_BACKUP,))],
)
def pitr_after_backup(ctx: Context) -> Iterable[Violation]:
    pitr, bcp = mapping(ctx.spec.get("pitr")), _backup(ctx)
    target = _parse_time(pitr.get("date")) if pitr.get("type") == "date" else None
    last = _parse_time(mapping(bcp.get("status")).get("lastWriteAt")) if bcp else None
    if target and last and target <= last:
        relation = "equal to" if target == last else "later than"
        yield Violation(
            SPEC + ("pitr", "date"),
            f"the backup's last write ({last:%Y-%m-%d %H:%M:%S} UTC) is {relation} "
            f'the target time: the restore fails with "backup\'s last write is {relation} target time"',
        )


@rule(
    "PSB515",
    title="Option ignored for snapshot restores",
    severity=Severity.WARNING,
    kind=kinds.RESTORE,
    source="OP v1.23.0@b15af500 pkg/controller/perconaservermongodbrestore/snapshots.go:99-105",
    hint="remove pitr and replsetRemapping: snapshot (external) restores do not support them",
    bad=[
        "spec: {clusterName: my-cluster, backupSource: {type: external, snapshots: [{replsetName: rs0, "
        "snapshotName: snap-rs0}]}, pitr: {type: latest}}"
    ],
    good=[
        "spec: {clusterName: my-cluster, backupSource: {type: external, snapshots: [{replsetName: rs0, "
        "snapshotName: snap-rs0}]}}"
    ],
)
def external_ignored_options(ctx: Context) -> Iterable[Violation]:
    if backup_type(ctx) != "external":
        return
    for field in ("pitr", "replsetRemapping"):
        if ctx.spec.get(field):
            yield Violation(SPEC + (field,), f"{field} is silently ignored when restoring a snapshot (external) backup")


@rule(
    "PSB516",
    title="Invalid replset remapping",
    severity=Severity.ERROR,
    kind=kinds.RESTORE,
    source="PBM v2.15.0@6f9fc3bf cmd/pbm/ns.go:9-40 (target ... is duplicated)",
    hint="map each source replset (key) to a different replset of the target cluster (value)",
    bad=[
        FROM_NAME + ", replsetRemapping: {rs0: rsA, rs1: rsA}}",
        Example(FROM_NAME + ", replsetRemapping: {rs0: rsX}}", others=(CLUSTER, READY_BACKUP)),
    ],
    good=[Example(FROM_NAME + ", replsetRemapping: {rsA: rs0}}", others=(CLUSTER, READY_BACKUP))],
)
def replset_remapping(ctx: Context) -> Iterable[Violation]:
    remap = mapping(ctx.spec.get("replsetRemapping"))
    if not remap:
        return  # nothing to check: skip the cluster lookup and its replset-name scan
    seen: dict[Any, str] = {}
    for source, target in remap.items():
        if target in seen:
            yield Violation(
                SPEC + ("replsetRemapping", str(source)),
                f'target replset "{target}" is used for both '
                f'"{seen[target]}" and "{source}": PBM refuses the restore ("target {target} is duplicated")',
            )
        seen[target] = str(source)
    cluster = ctx.cluster()
    names = mongo_replset_names(mapping(cluster.get("spec"))) if cluster else set()
    for source, target in remap.items():
        if names and target not in names:
            yield Violation(
                SPEC + ("replsetRemapping", str(source)),
                f'"{target}" is not a replset of cluster {ctx.spec.get("clusterName")} (replsets: {quoted(names)})',
                severity=Severity.WARNING,
            )
