"""`schedules import|export` transforms (webhook/controller/taskimport.py): tasks <-> schedules, and the patches."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonpatch
import pytest
import yaml

from webhook.controller.taskimport import export_schedules, import_tasks, schedule_name

EXAMPLE = Path(__file__).parents[2] / "examples" / "good" / "cluster.yaml"


def cluster(tasks: list[dict[str, Any]], cr_version: str | None = "1.23.0", **backup: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"backup": {"enabled": True, "storages": {"s3": {"type": "s3"}}, "tasks": tasks, **backup}}
    if cr_version:
        spec["crVersion"] = cr_version
    return {
        "apiVersion": "psmdb.percona.com/v1",
        "kind": "PerconaServerMongoDB",
        "metadata": {"name": "c1", "namespace": "db"},
        "spec": spec,
    }


def task(name: str = "daily", enabled: bool = True, **kw: Any) -> dict[str, Any]:
    return {"name": name, "enabled": enabled, "schedule": "0 0 * * *", "storageName": "s3", **kw}


def apply(obj: dict[str, Any], patch: list[dict[str, Any]]) -> dict[str, Any]:
    return jsonpatch.apply_patch(obj, patch)  # raises JsonPatchTestFailed as the API server answers 422


def test_import_makes_a_schedule_per_enabled_task_and_disables_exactly_those() -> None:
    c = cluster(
        [
            task(
                "daily",
                compressionType="zstd",
                compressionLevel=3,
                retention={"type": "count", "count": 7, "deleteFromStorage": True},
            ),
            task("off", enabled=False),
            task("weekly", type="physical", schedule="CRON_TZ=Europe/Berlin 30 2 * * SUN"),
        ],
        startingDeadlineSeconds=120,
    )
    r = import_tasks(c)
    assert r.errors == [] and r.warnings == []
    assert r.objects == [
        {
            "apiVersion": "psmdb-backup-webhook.io/v1alpha1",
            "kind": "PerconaServerMongoDBBackupSchedule",
            "metadata": {"name": "daily", "namespace": "db"},
            "spec": {
                "clusterName": "c1",
                "schedule": "0 0 * * *",
                "storageName": "s3",
                "compressionType": "zstd",
                "compressionLevel": 3,
                "startingDeadlineSeconds": 120,
                "retention": {"count": 7, "deleteFromStorage": True},
            },
        },
        {
            "apiVersion": "psmdb-backup-webhook.io/v1alpha1",
            "kind": "PerconaServerMongoDBBackupSchedule",
            "metadata": {"name": "weekly", "namespace": "db"},
            "spec": {
                "clusterName": "c1",
                "schedule": "CRON_TZ=Europe/Berlin 30 2 * * SUN",
                "storageName": "s3",
                "type": "physical",
                "startingDeadlineSeconds": 120,
            },
        },
    ]
    after = apply(c, r.patch)
    assert [t["enabled"] for t in after["spec"]["backup"]["tasks"]] == [False, False, False]
    assert [{**t, "enabled": True} for t in after["spec"]["backup"]["tasks"]][::2] == [
        {**t, "enabled": True} for t in c["spec"]["backup"]["tasks"]
    ][::2]


def test_the_patch_refuses_a_concurrent_change() -> None:
    c = cluster([task("a"), task("b")])
    r = import_tasks(c)
    for change in (
        lambda x: x["spec"]["backup"]["tasks"].insert(0, task("new")),  # indexes moved
        lambda x: x["spec"]["backup"]["tasks"][1].update(schedule="0 12 * * *"),  # the task we import changed
        lambda x: x["spec"]["backup"]["tasks"][0].update(enabled=False),  # someone disabled it already
    ):
        changed = copy.deepcopy(c)
        change(changed)
        with pytest.raises(jsonpatch.JsonPatchTestFailed):
            apply(changed, r.patch)


@pytest.mark.parametrize(
    ("t", "cr_version", "retention", "warning"),
    [
        (task(keep=5), "1.20.0", {"count": 5}, None),
        (task(keep=5), "1.23.0", {"count": 5}, None),  # no retention block: keep still counts
        (task(keep=5), None, {"count": 5}, None),
        (task(keep=0), "1.20.0", None, None),
        (task(), "1.23.0", None, None),
        (
            task(retention={"type": "count", "count": 3, "deleteFromStorage": False}),
            "1.21.0",
            {"count": 3, "deleteFromStorage": False},
            None,
        ),
        (
            task(retention={"type": "count", "count": 3, "deleteFromStorage": False}),
            None,
            {"count": 3, "deleteFromStorage": False},
            None,
        ),
        (
            task(keep=9, retention={"type": "count", "count": 3, "deleteFromStorage": True}),
            "1.22.0",
            {"count": 3, "deleteFromStorage": True},
            "keep 9 is ignored because retention is set (as the operator does)",
        ),
        (
            task(keep=9, retention={"type": "count", "count": 3, "deleteFromStorage": False}),
            "1.21.0-rc1",  # a pre-release sorts before 1.21.0, as in go-version
            {"count": 9},
            "retention needs crVersion 1.21; keep is used instead (as the operator does)",
        ),
        (
            task(retention={"type": "age", "count": 3, "deleteFromStorage": True}),
            "1.23.0",
            {"deleteFromStorage": True},
            "retention type 'age' is not count: the operator deletes nothing",
        ),
    ],
)
def test_import_retention_follows_get_retention(
    t: dict[str, Any], cr_version: str | None, retention: dict[str, Any] | None, warning: str | None
) -> None:
    r = import_tasks(cluster([t], cr_version))
    assert r.objects[0]["spec"].get("retention") == retention
    assert [w.split(": ", 1)[1] for w in r.warnings] == ([warning] if warning else [])


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("daily", "daily"),
        ("Daily", "daily"),
        ("daily_s3", "daily-s3"),
        ("nightly backup!", "nightly-backup"),
        ("-x-", "x"),
        ("a" * 70, "a" * 63),
        ("a" * 62 + "_b", "a" * 62),
        ("", None),
        ("___", None),
        (None, None),
        (7, None),
    ],
)
def test_schedule_name(name: object, expected: str | None) -> None:
    assert schedule_name(name) == expected


def test_a_renamed_task_is_imported_with_a_warning() -> None:
    r = import_tasks(cluster([task("Daily_S3")]))
    assert [s["metadata"]["name"] for s in r.objects] == ["daily-s3"] and r.errors == []
    assert r.warnings == [
        "task 'Daily_S3' (spec.backup.tasks[0]): becomes schedule 'daily-s3'; the task's older Backups keep the "
        "ancestor label 'Daily_S3' and are not under the schedule's retention"
    ]


@pytest.mark.parametrize(
    ("tasks", "existing", "error"),
    [
        (
            [task("daily"), task("daily", schedule="0 12 * * *")],
            (),
            "task 'daily' (spec.backup.tasks[0]): becomes schedule 'daily' like task 'daily'; left enabled, rename one",
        ),
        (
            [task("Daily"), task("daily")],
            (),
            "task 'Daily' (spec.backup.tasks[0]): becomes schedule 'daily' like task 'daily'; left enabled, rename one",
        ),
        (
            [task("daily")],
            ("daily",),
            "task 'daily' (spec.backup.tasks[0]): a schedule named 'daily' already exists; left enabled",
        ),
        ([task("__")], (), "task '__' (spec.backup.tasks[0]): no schedule name can be made of its name; left enabled"),
        (
            [task("snap", type="external", volumeSnapshotClass="csi", storageName=None)],
            (),
            "task 'snap' (spec.backup.tasks[0]): snapshot (external) backups cannot be scheduled by a schedule; left enabled",
        ),
        (
            [task("bad", schedule="61 * * * *")],
            (),
            "task 'bad' (spec.backup.tasks[0]): schedule '61 * * * *' does not parse (",
        ),
    ],
)
def test_tasks_that_cannot_be_imported_stay_enabled(
    tasks: list[dict[str, Any]], existing: tuple[str, ...], error: str
) -> None:
    c = cluster([*tasks, task("other")])
    r = import_tasks(c, existing=existing)
    assert r.errors[0].startswith(error)
    assert [s["metadata"]["name"] for s in r.objects] == ["other"]  # the rest is still imported
    after = apply(c, r.patch)["spec"]["backup"]["tasks"]
    assert [t["enabled"] for t in after] == [True] * len(tasks) + [False]


def test_a_disabled_duplicate_does_not_collide() -> None:
    r = import_tasks(cluster([task("daily", enabled=False), task("daily")]))
    assert r.errors == [] and [s["metadata"]["name"] for s in r.objects] == ["daily"]
    assert r.patch[1] == {"op": "replace", "path": "/spec/backup/tasks/1/enabled", "value": False}


def test_task_fields_without_a_schedule_equivalent_are_reported() -> None:
    r = import_tasks(cluster([task(volumeSnapshotClass="csi")]))
    assert r.warnings == [
        "task 'daily' (spec.backup.tasks[0]): volumeSnapshotClass has no schedule equivalent and is not imported"
    ]


def test_nothing_to_import() -> None:
    for c in (cluster([]), cluster([task(enabled=False)]), {"metadata": {"name": "c"}, "spec": {}}):
        r = import_tasks(c)
        assert r.objects == r.patch == r.errors == r.warnings == []


# --- export ---------------------------------------------------------------------------------------------------------


def schedule(name: str = "daily", cluster_name: str = "c1", **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "db"},
        "spec": {
            "clusterName": cluster_name,
            "schedule": "0 0 * * *",
            "storageName": "s3",
            "concurrencyPolicy": "Allow",
            **spec,
        },
    }


@pytest.mark.parametrize(
    ("tasks", "cr_version"),
    [
        (yaml.safe_load(EXAMPLE.read_text())["spec"]["backup"]["tasks"], "1.23.0"),
        (
            [
                task("a", keep=3),
                task("b", type="incremental-base", schedule="@weekly"),
                task("c", type="incremental", keep=0),
            ],
            "1.20.0",
        ),
        (
            [
                task("a", retention={"type": "count", "count": 0, "deleteFromStorage": False}),
                task("b", compressionLevel=1),
            ],
            "1.21.0",
        ),
    ],
    ids=["examples/good/cluster.yaml", "keep below 1.21", "retention from 1.21"],
)
def test_round_trip(tasks: list[dict[str, Any]], cr_version: str) -> None:
    """import then export gives the original tasks back (enabled again), in the cluster the import patched."""
    tasks = [{k: v for k, v in t.items() if not (k == "keep" and v == 0)} for t in tasks]  # keep 0: no retention
    c = cluster(tasks, cr_version, startingDeadlineSeconds=120)
    imported = import_tasks(c)
    assert imported.errors == [] and len(imported.objects) == len(tasks)
    disabled = apply(c, imported.patch)
    exported = export_schedules(
        [{**s, "spec": {**s["spec"], "concurrencyPolicy": "Allow"}} for s in imported.objects], disabled
    )
    assert exported.errors == [] and exported.warnings == []
    assert sorted(exported.objects, key=lambda t: t["name"]) == sorted(tasks, key=lambda t: t["name"])
    assert apply(disabled, exported.patch) == c


def test_export_reports_what_the_operator_cannot_do() -> None:
    s = schedule(
        suspend=True,
        concurrencyPolicy="Forbid",
        startingDeadlineSeconds=600,
        retention={"count": 5, "maxAge": "30d", "keepDaily": 7, "keepWeekly": 4, "keepMonthly": 0},
    )
    r = export_schedules([s], cluster([], startingDeadlineSeconds=120))
    assert r.objects == [
        {
            "name": "daily",
            "enabled": False,
            "schedule": "0 0 * * *",
            "storageName": "s3",
            "retention": {"type": "count", "count": 5},
        }
    ]
    assert r.warnings == [
        "schedule 'daily': the operator has no maxAge 30d, keepDaily 7, keepWeekly 4: only the count retention is exported",
        "schedule 'daily': the operator has no concurrencyPolicy Forbid: its task creates every slot's Backup, which "
        "waits for the previous one",
        "schedule 'daily': startingDeadlineSeconds 600 has no task equivalent (the operator does not catch up slots)",
    ]


def test_export_default_policy_is_forbid_and_keep_below_1_21() -> None:
    s = schedule(retention={"count": 2, "deleteFromStorage": False})
    del s["spec"]["concurrencyPolicy"]
    r = export_schedules([s], cluster([], "1.19.1"))
    assert r.objects[0]["keep"] == 2 and "retention" not in r.objects[0]
    assert [w.split(": ", 1)[1].split(":")[0] for w in r.warnings] == [
        "deleteFromStorage false needs crVersion 1.21",
        "the operator has no concurrencyPolicy Forbid",
    ]


def test_export_patch_appends_replaces_and_creates_the_list() -> None:
    c = cluster([task("daily", enabled=False, schedule="0 1 * * *"), task("keepme")])
    r = export_schedules([schedule("daily"), schedule("new"), schedule("elsewhere", cluster_name="c2")], c)
    after = apply(c, r.patch)["spec"]["backup"]["tasks"]
    assert [(t["name"], t["enabled"], t["schedule"]) for t in after] == [
        ("daily", True, "0 0 * * *"),
        ("keepme", True, "0 0 * * *"),
        ("new", True, "0 0 * * *"),
    ]
    changed = copy.deepcopy(c)
    changed["spec"]["backup"]["tasks"][0]["schedule"] = "0 2 * * *"
    with pytest.raises(jsonpatch.JsonPatchTestFailed):
        apply(changed, r.patch)
    for no_list in ({"enabled": True}, {"enabled": True, "tasks": None}):
        c2 = {"metadata": {"name": "c1"}, "spec": {"backup": no_list}}
        assert apply(c2, export_schedules([schedule()], c2).patch)["spec"]["backup"]["tasks"][0]["name"] == "daily"


def test_export_without_backup_section_or_schedules() -> None:
    assert export_schedules([schedule()], {"metadata": {"name": "c1"}, "spec": {}}).errors == [
        "cluster 'c1' has no spec.backup to hold tasks"
    ]
    r = export_schedules([schedule(cluster_name="c2")], cluster([]))
    assert r.objects == r.patch == r.errors == r.warnings == []
