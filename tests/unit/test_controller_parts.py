"""The controller's pure parts: PBM config from a cluster spec, destinations, lease expiry, the informer's handling
of watch events (410 Gone, bookmarks), the work queue, retention counts and the task table's bad-schedule policy."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from webhook.controller import clusters, pbmconfig
from webhook.controller.informer import Informer
from webhook.controller.leases import expired
from webhook.controller.manager import WorkQueue
from webhook.controller.metrics import Metrics
from webhook.controller.runtime import Ctx
from webhook.controller.scheduler import Scheduler, backup_labels, retention_count

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


def test_lease_expiry() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    lease = {"spec": {"holderIdentity": "a", "leaseDurationSeconds": 10, "renewTime": "2026-01-01T00:00:00.000000Z"}}
    assert not expired(lease, now + timedelta(seconds=9))
    assert expired(lease, now + timedelta(seconds=11))
    assert expired({"spec": {}}, now)
    assert not expired({"spec": {"holderIdentity": "op-lock"}}, now + timedelta(days=9))  # the operator's: no expiry


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


def test_informer_relists_after_410_and_follows_bookmarks() -> None:
    seen: list[tuple[str, bool]] = []
    restarts: list[str] = []
    inf = Informer(
        None,
        "K",
        "/x",
        lambda k, o, d: seen.append((o["metadata"]["name"], d)),  # type: ignore[arg-type]
        on_restart=restarts.append,
    )
    obj = {"metadata": {"namespace": "n", "name": "a", "resourceVersion": "5"}}
    assert inf._apply({"type": "ADDED", "object": obj})
    assert inf._apply({"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "9"}}})
    assert inf.resource_version == "9" and seen == [("a", False)]
    assert not inf._apply({"type": "ERROR", "object": {"code": 410, "message": "too old resource version"}})
    assert inf.resource_version == "" and restarts == ["expired"]
    assert inf._apply({"type": "DELETED", "object": obj}) and ("a", True) in seen and not inf.store


def test_work_queue_runs_a_key_once_at_a_time_and_again_when_added_meanwhile() -> None:
    async def scenario() -> list[str]:
        calls: list[str] = []
        gate = asyncio.Event()

        async def handler(key: Any) -> None:
            calls.append(key[2])
            if len(calls) == 1:
                await gate.wait()

        q = WorkQueue(handler, lambda key: None)
        workers = [asyncio.create_task(q.worker()) for _ in range(3)]
        q.add(("K", "n", "a"))
        await asyncio.sleep(0.01)
        q.add(("K", "n", "a"))  # while in flight: once more afterwards, not concurrently
        q.add(("K", "n", "a"))
        await asyncio.sleep(0.01)
        assert calls == ["a"]
        gate.set()
        await asyncio.sleep(0.05)
        for w in workers:
            w.cancel()
        return calls

    assert asyncio.run(scenario()) == ["a", "a"]


def test_bad_schedule_keeps_the_last_good_one_and_reports_once() -> None:
    ctx = Ctx(kube=None, driver=None, lookup=None, metrics=Metrics())  # type: ignore[arg-type]
    sched = Scheduler(ctx)
    c = cluster({"s3": S3}, tasks=[{"name": "t", "enabled": True, "schedule": "0 * * * *", "storageName": "s3"}])
    assert sched.cluster_changed(c) == []
    c["spec"]["backup"]["tasks"][0]["schedule"] = "61 * * * *"
    warnings = sched.cluster_changed(c)
    assert len(warnings) == 1 and "keeps running" in warnings[0][1] and "'0 * * * *'" in warnings[0][1]
    assert sched.cluster_changed(c) == []  # reported once per bad text
    assert sched.tasks[("ns", "c1", "t")].schedule_text == "0 * * * *"
    c["spec"]["backup"]["tasks"][0]["enabled"] = False
    sched.cluster_changed(c)
    assert sched.tasks == {}


def test_refresh_counts_from_the_newest_slot_backup_even_when_the_cluster_was_seen_first() -> None:
    ctx = Ctx(kube=None, driver=None, lookup=None, metrics=Metrics())  # type: ignore[arg-type]
    sched = Scheduler(ctx)
    c = cluster({"s3": S3}, tasks=[{"name": "t", "enabled": True, "schedule": "@every 5s", "storageName": "s3"}])
    sched.cluster_changed(c)  # at start-up the cluster arrives before its Backups
    slot = "2026-01-01T00:00:00Z"
    ctx.backups[("ns", "b")] = {
        "metadata": {
            "namespace": "ns",
            "name": "b",
            "annotations": {"psmdb-backup-webhook.io/slot": slot},
            "labels": {"percona.com/cluster": "c1", "percona.com/backup-ancestor": "t"},
        }
    }
    sched.refresh()
    assert sched.tasks[("ns", "c1", "t")].since == datetime(2026, 1, 1, tzinfo=UTC)
