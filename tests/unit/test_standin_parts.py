"""The operator stand-in's parts (tools/operator_standin): PBM config from a cluster spec, destinations, CanBackup,
and the operator's task cron: retention counts, labels, the Backup a task makes, entries and retention."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tools.operator_standin import clusters, pbmconfig
from tools.operator_standin.runtime import Ctx
from tools.operator_standin.tasks import TaskCron, backup_from_task, backup_labels, retention_count, retention_victims

SECRETS = {
    "s3-creds": {"AWS_ACCESS_KEY_ID": "AKIA", "AWS_SECRET_ACCESS_KEY": "sekret"},
    "az-creds": {"AZURE_STORAGE_ACCOUNT_NAME": "acct", "AZURE_STORAGE_ACCOUNT_KEY": "azkey"},
    "minio-creds": {"AWS_ACCESS_KEY_ID": "m", "AWS_SECRET_ACCESS_KEY": "n"},
    "gcs-hmac": {"AWS_ACCESS_KEY_ID": "h", "AWS_SECRET_ACCESS_KEY": "s"},
    "sse": {"SSE_CUSTOMER_KEY": "c3NlLWtleQ=="},
}


def cluster(storages: dict[str, Any], **backup: Any) -> dict[str, Any]:
    return {
        "apiVersion": "psmdb.percona.com/v1",
        "kind": "PerconaServerMongoDB",
        "metadata": {"name": "c1", "namespace": "ns"},
        "spec": {"crVersion": "1.21.0", "backup": {"enabled": True, "storages": storages, **backup}},
    }


S3 = {
    "type": "s3",
    "main": True,
    "s3": {"bucket": "b", "prefix": "p", "credentialsSecret": "s3-creds", "endpointUrl": "http://minio:9000"},
}
AZ = {"type": "azure", "azure": {"container": "c", "prefix": "x", "credentialsSecret": "az-creds"}}


def test_desired_config_has_main_storage_pitr_and_one_profile_per_other_storage() -> None:
    main, profiles = pbmconfig.desired(
        cluster({"s3": S3, "azure": AZ}, pitr={"enabled": True, "compressionType": "zstd"}), SECRETS.get
    )
    assert main["storage"] == {
        "type": "s3",
        "s3": {
            "region": "us-east-1",
            "endpointUrl": "http://minio:9000",
            "bucket": "b",
            "prefix": "p",
            "credentials": {"access-key-id": "AKIA", "secret-access-key": "sekret"},
        },
    }
    assert main["pitr"] == {"enabled": True, "compression": "zstd"}
    assert profiles == {
        "azure": {
            "storage": {
                "type": "azure",
                "azure": {"container": "c", "prefix": "x", "account": "acct", "credentials": {"key": "azkey"}},
            }
        }
    }


@pytest.mark.parametrize(
    ("storage", "expected"),
    [
        ({"type": "gcs", "gcs": {"bucket": "g"}}, {"bucket": "g", "credentials": {"workloadIdentity": True}}),
        (
            {"type": "gcs", "gcs": {"bucket": "g", "credentialsSecret": "gcs-hmac"}},
            {"bucket": "g", "credentials": {"hmacAccessKey": "h", "hmacSecret": "s"}},
        ),
        (
            {
                "type": "minio",
                "minio": {"bucket": "m", "endpointUrl": "minio:9000", "credentialsSecret": "minio-creds"},
            },
            {"endpoint": "minio:9000", "bucket": "m", "credentials": {"access-key-id": "m", "secret-access-key": "n"}},
        ),
        ({"type": "filesystem", "filesystem": {"path": "/mnt/nfs"}}, {"path": "/mnt/nfs"}),
    ],
)
def test_storage_types(storage: dict[str, Any], expected: dict[str, Any]) -> None:
    assert pbmconfig.storage_config(storage, SECRETS.get)[storage["type"]] == expected


@pytest.mark.parametrize(
    ("storages", "message"),
    [
        ({"a": {**S3, "main": False}, "b": {**AZ}}, "main backup storage is not specified"),
        ({"a": S3, "b": {**AZ, "main": True}}, "multiple main backup storages are specified"),
        (
            {"a": {**S3, "s3": {**S3["s3"], "credentialsSecret": "absent"}}},
            'get s3 credentials secret: secrets "absent" not found',
        ),
        ({"a": {"type": "azure", "azure": {"container": "c"}}}, "no credentials specified for the secret name"),
        (
            {"a": {"type": "minio", "minio": {"bucket": "m", "credentialsSecret": "minio-creds"}}},
            "endpointURL is required",
        ),
        ({"a": {"type": "oci", "oci": {}}}, "unsupported backup storage type"),
        (
            {"a": {**S3, "s3": {**S3["s3"], "serverSideEncryption": {"sseAlgorithm": "aws:kms"}}}},
            "no KmsKeyID specified",
        ),
    ],
)
def test_config_errors_use_the_operator_texts(storages: dict[str, Any], message: str) -> None:
    with pytest.raises(pbmconfig.ConfigError, match=message):
        pbmconfig.desired(cluster(storages), SECRETS.get)


def test_sse_customer_key_falls_back_to_the_sse_secret() -> None:
    c = cluster({"a": {**S3, "s3": {**S3["s3"], "serverSideEncryption": {"sseCustomerAlgorithm": "AES256"}}}})
    c["spec"]["secrets"] = {"sse": "sse"}
    main, _ = pbmconfig.desired(c, SECRETS.get)
    assert main["storage"]["s3"]["serverSideEncryption"]["sseCustomerKey"] == "c3NlLWtleQ=="


def test_config_hash_changes_with_credentials_but_never_contains_them() -> None:
    c = cluster({"s3": S3})
    a = pbmconfig.config_hash(*pbmconfig.desired(c, SECRETS.get))
    rotated = {**SECRETS, "s3-creds": {**SECRETS["s3-creds"], "AWS_SECRET_ACCESS_KEY": "new"}}
    b = pbmconfig.config_hash(*pbmconfig.desired(c, rotated.get))
    assert a != b and "sekret" not in a


@pytest.mark.parametrize(
    ("storage", "dest"),
    [
        (S3, "s3://b/p/2026-01-02T03:04:05Z"),
        ({"type": "s3", "s3": {"bucket": "s3://b"}}, "s3://b/2026-01-02T03:04:05Z"),
        ({"type": "minio", "minio": {"bucket": "m", "prefix": "/q/"}}, "s3://m/q/2026-01-02T03:04:05Z"),
        ({"type": "gcs", "gcs": {"bucket": "g"}}, "gs://g/2026-01-02T03:04:05Z"),
        (AZ, "azure://c/x/2026-01-02T03:04:05Z"),
        (
            {"type": "azure", "azure": {"container": "c", "endpointUrl": "https://e.example/"}},
            "https://e.example/c/2026-01-02T03:04:05Z",
        ),
        ({"type": "oss", "oss": {"bucket": "o"}}, "oss://o/2026-01-02T03:04:05Z"),
        ({"type": "filesystem", "filesystem": {"path": "/mnt/b/"}}, "/mnt/b/2026-01-02T03:04:05Z"),
    ],
)
def test_destination_format(storage: dict[str, Any], dest: str) -> None:
    assert pbmconfig.destination(storage, "2026-01-02T03:04:05Z") == dest


def test_can_backup_follows_the_operator() -> None:
    c = cluster({"s3": S3})
    assert (
        clusters.cannot_backup(c)
        == "spec.unsafeFlags.backupIfUnhealthy must be true to run backup on cluster with status "
    )
    c["status"] = {"state": "ready"}
    assert clusters.cannot_backup(c) is None
    c["status"] = {"state": "initializing", "conditions": [{"type": "pendingSmartUpdate", "status": "True"}]}
    assert clusters.cannot_backup(c) is None
    c["status"] = {"state": "error", "replsets": {"rs0": {"ready": 0}}}
    c["spec"]["unsafeFlags"] = {"backupIfUnhealthy": True}
    assert clusters.cannot_backup(c) == "rs0 has no ready nodes"


def test_retention_count_and_labels_follow_cr_version() -> None:
    c = cluster({"s3": S3})
    assert retention_count(c, {"keep": 5, "retention": {"type": "count", "count": 2, "deleteFromStorage": False}}) == (
        2,
        False,
    )
    c["spec"]["crVersion"] = "1.20.0"
    assert retention_count(c, {"keep": 5, "retention": {"type": "count", "count": 2}}) == (5, True)
    c["spec"]["crVersion"] = "1.16.0"
    assert backup_labels(c, "t") == {"ancestor": "t", "cluster": "c1", "type": "cron"}


NOW = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)


def task(**kw: Any) -> dict[str, Any]:
    return {"name": "daily", "enabled": True, "schedule": "0 3 * * *", "storageName": "s3", **kw}


def test_a_task_backup_has_the_operators_generate_name_labels_and_finalizer() -> None:
    c = cluster({"s3": S3})
    c["metadata"]["name"] = "a-very-long-cluster-name"
    b = backup_from_task(c, task(compressionType="gzip", type="physical"), NOW)
    assert b["metadata"]["generateName"] == "cron-a-very-long-clus-20260304050607-"
    assert "name" not in b["metadata"] and "annotations" not in b["metadata"]
    assert b["metadata"]["labels"]["percona.com/backup-ancestor"] == "daily"
    assert b["metadata"]["labels"]["percona.com/backup-type"] == "cron"
    assert b["metadata"]["finalizers"] == ["percona.com/delete-backup"]
    assert b["spec"] == {
        "clusterName": "a-very-long-cluster-name",
        "type": "physical",
        "storageName": "s3",
        "compressionType": "gzip",
    }
    kept = backup_from_task(c, task(retention={"type": "count", "count": 1, "deleteFromStorage": False}), NOW)
    assert "finalizers" not in kept["metadata"] and kept["spec"]["type"] == "logical"


def _backup(name: str, state: str, created: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "creationTimestamp": created}, "status": {"state": state}}


def test_retention_deletes_the_oldest_ready_backups_only() -> None:
    items = [
        _backup("b1", "ready", "2026-01-01T00:00:01Z"),
        _backup("b2", "error", "2026-01-01T00:00:02Z"),
        _backup("b3", "ready", "2026-01-01T00:00:03Z"),
        _backup("b4", "running", "2026-01-01T00:00:04Z"),
        _backup("b5", "ready", "2026-01-01T00:00:05Z"),
    ]
    victims = retention_victims(items, count=2, task_type="logical")
    assert [b["metadata"]["name"] for b in victims] == ["b1"]
    assert retention_victims(items, count=1, task_type="incremental") == []  # skipped for incremental tasks
    assert [b["metadata"]["name"] for b in retention_victims(items, count=1, task_type="incremental-base")] == [
        "b1",
        "b3",
    ]
    assert retention_victims(items, count=0, task_type="logical") == []


def cron_ctx() -> Ctx:
    return Ctx(kube=None, driver=None, lookup=None, clock=lambda: NOW)  # type: ignore[arg-type]


def test_task_entries_follow_the_operator_including_its_stale_captures() -> None:
    cron = TaskCron(cron_ctx())
    c = cluster({"s3": S3}, tasks=[task(type="logical"), task(name="off", enabled=False)])
    tasks, error = cron.cluster_changed(c)
    assert error is None and [t["name"] for t in tasks] == ["daily"]
    job = cron.jobs[("ns", "c1", "daily")]
    assert job.next == datetime(2026, 3, 5, 3, 0, tzinfo=UTC) and list(cron.jobs) == [("ns", "c1", "daily")]
    # a change of type alone keeps the entry and what it captured (OP
    # pkg/controller/perconaservermongodb/backup.go:103-133)
    c["spec"]["backup"]["tasks"][0]["type"] = "physical"
    cron.cluster_changed(c)
    assert cron.jobs[("ns", "c1", "daily")] is job and job.task["type"] == "logical"
    # a schedule change replaces it; a schedule that does not parse drops it and is a cluster error
    c["spec"]["backup"]["tasks"][0]["schedule"] = "61 * * * *"
    _, error = cron.cluster_changed(c)
    assert error and error.startswith("can't parse cronjob schedule for backup daily with schedule 61 * * * *")
    assert cron.jobs == {}
    c["spec"]["backup"]["tasks"][0]["schedule"] = "@every 10s"
    cron.cluster_changed(c)
    assert cron.jobs[("ns", "c1", "daily")].next == NOW + timedelta(seconds=10)
    # backups disabled: the cluster is not looked at, its entries keep firing (OP
    # pkg/controller/perconaservermongodb/backup.go:38-40)
    c["spec"]["backup"]["enabled"] = False
    assert cron.cluster_changed(c) == ([], None) and ("ns", "c1", "daily") in cron.jobs
    c["spec"]["backup"]["enabled"] = True
    c["spec"]["backup"]["tasks"][0]["enabled"] = False
    cron.cluster_changed(c)
    assert cron.jobs == {}
    c["spec"]["backup"]["tasks"] = [task(storageName="nowhere")]
    _, error = cron.cluster_changed(c)
    assert error == "there is no storage nowhere in cluster c1 for daily task"


def test_a_firing_entry_creates_the_backup_and_unschedules_itself_when_the_cluster_is_gone() -> None:
    created: list[dict[str, Any]] = []

    class Kube:
        async def create(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
            created.append(body)
            meta = {**body["metadata"], "name": body["metadata"]["generateName"] + "abcde"}
            return {**body, "metadata": meta}

    ctx = Ctx(kube=Kube(), driver=None, lookup=None, clock=lambda: NOW)  # type: ignore[arg-type]
    cron = TaskCron(ctx)
    c = cluster({"s3": S3}, tasks=[task(schedule="@every 5s")])
    ctx.clusters[("ns", "c1")] = c
    cron.cluster_changed(c)
    job = cron.jobs[("ns", "c1", "daily")]
    asyncio.run(cron._fire(job, NOW + timedelta(seconds=5)))
    assert len(created) == 1 and ("ns", "cron-c1-20260304050612-abcde") in ctx.backups
    assert job.next == NOW + timedelta(seconds=10)
    del ctx.clusters[("ns", "c1")]
    asyncio.run(cron._fire(job, NOW + timedelta(seconds=10)))
    assert len(created) == 1 and cron.jobs == {}


def test_retention_finds_a_tasks_backups_by_the_ancestor_label_and_deletes_the_oldest_ready() -> None:
    deleted: list[str] = []

    class Kube:
        async def delete(self, path: str) -> bool:
            deleted.append(path.rsplit("/", 1)[1])
            return True

    ctx = Ctx(kube=Kube(), driver=None, lookup=None, clock=lambda: NOW)  # type: ignore[arg-type]
    cron = TaskCron(ctx)
    c = cluster({"s3": S3}, tasks=[task(retention={"type": "count", "count": 1, "deleteFromStorage": True})])

    def add(name: str, created: str, ancestor: str, cluster_label: str = "c1") -> None:
        b = _backup(name, "ready", created)
        b["metadata"].update(
            namespace="ns", labels={"percona.com/cluster": cluster_label, "percona.com/backup-ancestor": ancestor}
        )
        ctx.backups[("ns", name)] = b
        cron.backup_changed(b, False)

    add("old", "2026-01-01T00:00:01Z", "daily")
    add("new", "2026-01-01T00:00:02Z", "daily")
    add("other-task", "2026-01-01T00:00:00Z", "weekly")
    add("other-cluster", "2026-01-01T00:00:00Z", "daily", "c2")
    gone = ctx.backups.pop(("ns", "new"))
    cron.backup_changed(gone, True)  # a deleted Backup is no longer counted
    asyncio.run(cron.retention(c, c["spec"]["backup"]["tasks"]))
    assert deleted == []
    add("newest", "2026-01-01T00:00:03Z", "daily")
    asyncio.run(cron.retention(c, c["spec"]["backup"]["tasks"]))
    assert deleted == ["old"]


def test_on_start_the_cron_runs_the_latest_missed_slot_once_unless_it_loses_slots_like_the_operator() -> None:
    from tools.operator_standin.faults import LOSE_SLOTS
    from tools.operator_standin.runtime import Settings

    c = cluster({"s3": S3}, tasks=[task(schedule="0 * * * *")])
    last = {
        "metadata": {
            "namespace": "ns",
            "name": "cron-c1-old",
            "creationTimestamp": (NOW - timedelta(hours=3, minutes=6)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "labels": backup_labels(c, "daily"),
        },
        "spec": {"clusterName": "c1"},
    }
    fixed = TaskCron(cron_ctx())
    fixed.ctx.backups[("ns", "cron-c1-old")] = last
    fixed.cluster_changed(c)
    # NOW is 05:06:07: the slots 03:00, 04:00 and 05:00 passed while it was down; only 05:00 runs, once
    assert fixed.jobs[("ns", "c1", "daily")].next == NOW.replace(minute=0, second=0)
    faulty_ctx = cron_ctx()
    faulty_ctx.settings = Settings(faults=frozenset({LOSE_SLOTS}))
    faulty = TaskCron(faulty_ctx)
    faulty.ctx.backups[("ns", "cron-c1-old")] = last
    faulty.cluster_changed(c)
    assert faulty.jobs[("ns", "c1", "daily")].next == NOW.replace(hour=6, minute=0, second=0)
    # a task without Backups has no slot to catch up; a schedule change later is not a restart
    fresh = TaskCron(cron_ctx())
    fresh.cluster_changed(c)
    assert fresh.jobs[("ns", "c1", "daily")].next == NOW.replace(hour=6, minute=0, second=0)
