"""Checks traced to what the operator and PBM do at run time (issue 12 item 7): inMemory replsets and file-copy
backups (PSB213, PSB408), GCS without credentials before Workload Identity (PSB124), tasks firing in the same minute
(PSB214, and cron.first_common_minute under it), and VolumeSnapshotClasses that do not exist (PSB215, PSB409)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from webhook import cron
from webhook.findings import Finding, Severity
from webhook.kube import resource_path
from webhook.policy import check
from webhook.policy.examples import CLUSTER, example_object, lookup_for, with_backup

from .test_admission import DictReader, namespace, post, review, run

S3 = "storages: {s3-main: {type: s3, s3: {bucket: b}}}"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _findings(kind: str, yaml_text: str, others: tuple[str, ...] = ()) -> list[Finding]:
    return check(example_object((kind,), yaml_text), lookup=lookup_for(others))


def _only(findings: list[Finding], code: str) -> list[Finding]:
    return [f for f in findings if f.code == code]


# --- cron.first_common_minute ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "a,b,expected",
    [
        ("0 0 * * *", "0 0 * * *", datetime(2026, 1, 2, tzinfo=UTC)),  # T0 itself is not "after" T0
        ("0 0 * * *", "0 12 * * *", None),
        ("*/5 * * * *", "0 3 * * 0", datetime(2026, 1, 4, 3, tzinfo=UTC)),  # 2026-01-04 is a Sunday
        ("0 0 30 * *", "0 0 * 2 *", None),  # day 30 never in February
        ("0 0 * * 1", "0 0 1 * *", datetime(2026, 6, 1, tzinfo=UTC)),  # robfig: restricted dom and dow are ORed
        ("0 0 1 * 1", "0 0 2 * *", datetime(2026, 2, 2, tzinfo=UTC)),  # "the 1st or a Monday" meets "the 2nd"
        ("@daily", "0 0 * * 6", datetime(2026, 1, 3, tzinfo=UTC)),
        ("@every 1h", "0 0 * * *", None),  # relative to when the operator added it: unknowable
        ("CRON_TZ=Europe/Berlin 0 0 * * *", "0 0 * * *", None),  # different zones are not compared
        (
            "CRON_TZ=Europe/Berlin 30 1 * * *",
            "CRON_TZ=Europe/Berlin 30 1 * * 0",
            datetime(2026, 1, 4, 0, 30, tzinfo=UTC),
        ),
    ],
)
def test_first_common_minute(a: str, b: str, expected: datetime | None) -> None:
    got = cron.first_common_minute(cron.Schedule(a), cron.Schedule(b), T0)
    assert got == expected
    if got is not None:  # both really fire then, by robfig's own Next()
        before = got - timedelta(seconds=1)
        assert cron.Schedule(a).next(before) == got == cron.Schedule(b).next(before)


def test_first_common_minute_skips_a_dst_gap() -> None:
    """Both name 02:30 on Sunday 2026-03-29, which does not exist in Berlin (DST starts): robfig fires neither then,
    and the next Sunday the 29th of March is beyond its 5-year horizon."""
    a = cron.Schedule("CRON_TZ=Europe/Berlin 30 2 29 3 *")
    b = cron.Schedule("CRON_TZ=Europe/Berlin 30 2 * 3 0")
    assert cron.first_common_minute(a, b, T0) is None


# --- PSB214 ---------------------------------------------------------------------------------------------------------


def test_same_minute_tasks_are_an_info_naming_the_other_task() -> None:
    obj = with_backup(
        f"{S3}, tasks: [{{name: daily, enabled: true, schedule: '0 0 * * *', storageName: s3-main}}, "
        "{name: off, enabled: false, schedule: '0 0 * * *', storageName: s3-main}, "
        "{name: weekly, enabled: true, schedule: '0 0 * * 0', storageName: s3-main}]"
    )
    found = _only(_findings("PerconaServerMongoDB", obj), "PSB214")
    assert [(f.path, f.severity) for f in found] == [(("spec", "backup", "tasks", 2, "schedule"), Severity.INFO)]
    assert "same minute as task daily (first 2026-01-04 00:00 UTC)" in found[0].message


# --- PSB213 / PSB408 ------------------------------------------------------------------------------------------------

IN_MEMORY_SHARDED = CLUSTER.replace(
    "  replsets: [{name: rs0, size: 3}]",
    "  replsets: [{name: rs0, size: 3}]\n  sharding: {enabled: true, configsvrReplSet: {size: 3, "
    "storage: {engine: inMemory}}}",
)


@pytest.mark.parametrize("kind,fires", [("physical", True), ("incremental-base", True), ("logical", False)])
def test_file_copy_backup_of_an_in_memory_config_server(kind: str, fires: bool) -> None:
    found = _only(
        _findings(
            "PerconaServerMongoDBBackup",
            f"spec: {{clusterName: my-cluster, storageName: s3-main, type: {kind}}}",
            (IN_MEMORY_SHARDED,),
        ),
        "PSB408",
    )
    assert bool(found) is fires
    if fires:
        assert "replset cfg uses the inMemory storage engine" in found[0].message


def test_in_memory_task_is_a_warning_while_backups_are_disabled() -> None:
    obj = with_backup(
        f"{S3}, tasks: [{{name: d, enabled: true, schedule: '0 0 * * *', storageName: s3-main, type: incremental}}]",
        enabled=False,
    ).replace("replsets: [{name: rs0, size: 3}]", "replsets: [{name: rs0, size: 3, storage: {engine: inMemory}}]")
    found = _only(_findings("PerconaServerMongoDB", obj), "PSB213")
    assert [f.severity for f in found] == [Severity.WARNING]


# --- PSB124 ---------------------------------------------------------------------------------------------------------

GCS = "storages: {g: {type: gcs, gcs: {bucket: b}}}"


@pytest.mark.parametrize(
    "cr_version,pbm,severity",
    [
        ("1.23.0", "2.15.0", None),  # operator 1.23 asks for Workload Identity, PBM 2.15 knows it
        ("1.23.0", "2.12.0", Severity.ERROR),  # PBM before 2.13 requires a key whatever the operator says
        ("1.22.0", "2.15.0", Severity.WARNING),  # an operator before 1.23 passes no credentials at all
        ("1.22.0", "2.12.0", Severity.ERROR),
    ],
)
def test_gcs_without_credentials(cr_version: str, pbm: str, severity: Severity | None) -> None:
    obj = with_backup(GCS, cr_version=cr_version).replace("mongodb:2.15.0", f"mongodb:{pbm}")
    found = _only(_findings("PerconaServerMongoDB", obj), "PSB124")
    assert [f.severity for f in found] == ([severity] if severity else [])


def test_gcs_with_an_unknown_pbm_image_on_1_23_says_nothing() -> None:
    obj = with_backup(GCS).replace("percona/percona-backup-mongodb:2.15.0", "registry.local/pbm:custom")
    assert not _only(_findings("PerconaServerMongoDB", obj), "PSB124")


# --- PSB215 / PSB409 through the admission webhook -------------------------------------------------------------------

SNAP_CLASS = {
    "apiVersion": "snapshot.storage.k8s.io/v1",
    "kind": "VolumeSnapshotClass",
    "metadata": {"name": "csi-snapclass"},
    "driver": "ebs.csi.aws.com",
    "deletionPolicy": "Delete",
}


def _snapshot_backup() -> dict:
    return {
        "apiVersion": "psmdb.percona.com/v1",
        "kind": "PerconaServerMongoDBBackup",
        "metadata": {"name": "snap", "namespace": "psmdb"},
        "spec": {"clusterName": "my-cluster", "type": "external", "volumeSnapshotClass": "csi-snapclass"},
    }


def _cluster_with_snapshot_task() -> dict:
    from .test_admission import CLUSTER as GOOD_CLUSTER

    cluster = {**GOOD_CLUSTER, "spec": {**GOOD_CLUSTER["spec"], "backup": dict(GOOD_CLUSTER["spec"]["backup"])}}
    cluster["spec"]["backup"]["tasks"] = [
        {
            "name": "snap",
            "enabled": True,
            "schedule": "0 3 * * *",
            "type": "external",
            "volumeSnapshotClass": "csi-snapclass",
        }
    ]
    return cluster


def test_backup_naming_a_missing_snapshot_class_is_denied_live() -> None:
    from .test_admission import CLUSTER as GOOD_CLUSTER

    resp = run(post(DictReader([GOOD_CLUSTER, namespace("psmdb")]), "/validate", review(_snapshot_backup())))[1]
    assert resp["response"]["allowed"] is False
    assert (
        'PSB409 spec.volumeSnapshotClass: VolumeSnapshotClass "csi-snapclass" does not exist'
        in (resp["response"]["status"]["message"])
    )
    ok = run(post(DictReader([GOOD_CLUSTER, namespace("psmdb"), SNAP_CLASS]), "/validate", review(_snapshot_backup())))
    assert ok[1]["response"]["allowed"] is True


def test_task_naming_a_missing_snapshot_class_is_a_warning_at_admission() -> None:
    """The class may come in the same GitOps batch; backups scheduled after it exists work."""
    cluster = _cluster_with_snapshot_task()
    resp = run(post(DictReader([namespace("psmdb")]), "/validate", review(cluster)))[1]["response"]
    assert resp["allowed"] is True
    assert any(w.startswith("PSB215 spec.backup.tasks[0].volumeSnapshotClass") for w in resp["warnings"])


def test_snapshot_class_is_read_cluster_scoped() -> None:
    assert (
        resource_path("VolumeSnapshotClass", "", "csi") == "/apis/snapshot.storage.k8s.io/v1/volumesnapshotclasses/csi"
    )


def test_snapshot_class_is_unknown_in_file_lint() -> None:
    obj = with_backup(
        f"{S3}, tasks: [{{name: s, enabled: true, schedule: '0 0 * * *', type: external, volumeSnapshotClass: x}}]"
    )
    assert not _only(_findings("PerconaServerMongoDB", obj), "PSB215")
