"""The webhooks as the real kube-apiserver calls them, driven with the real kubectl."""

from __future__ import annotations

import copy
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from .conftest import Cluster

pytestmark = pytest.mark.e2e

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load(path: str, ns: str) -> list[dict]:
    docs = [d for d in yaml.safe_load_all((EXAMPLES / path).read_text()) if d]
    for d in docs:
        d["metadata"]["namespace"] = ns
    return docs


def good_world(cluster: Cluster, ns: str) -> dict:
    """The bundled good cluster and its Secrets, created in `ns`; returns the cluster object."""
    cluster.apply(load("good/secrets.yaml", ns), check=True)
    psmdb = load("good/cluster.yaml", ns)[0]
    cluster.apply(psmdb, check=True)
    return psmdb


def backup(ns: str, name: str = "b1", **spec) -> dict:
    return {
        "apiVersion": "psmdb.percona.com/v1",
        "kind": "PerconaServerMongoDBBackup",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"clusterName": "my-cluster", "storageName": "s3-us-west", **spec},
    }


def restore(ns: str, name: str = "r1", **spec) -> dict:
    return {
        "apiVersion": "psmdb.percona.com/v1",
        "kind": "PerconaServerMongoDBRestore",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"clusterName": "my-cluster", **spec},
    }


def schedule(ns: str, name: str = "s1", **spec) -> dict:
    return {
        "apiVersion": "psmdb-backup-webhook.io/v1alpha1",
        "kind": "PerconaServerMongoDBBackupSchedule",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"clusterName": "my-cluster", "schedule": "0 1 * * *", "storageName": "s3-us-west", **spec},
    }


def denied(result, *needles: str) -> None:
    assert result.returncode != 0, f"expected a denial, got: {result.stdout}"
    assert 'admission webhook "validate.psmdb-backup-webhook.io" denied the request' in result.stderr, result.stderr
    for needle in needles:
        assert needle in result.stderr, result.stderr


def test_good_examples_are_accepted(cluster: Cluster) -> None:
    ns = cluster.namespace()
    good_world(cluster, ns)
    for path in ("good/backup.yaml", "good/restore.yaml", "good/schedule.yaml"):
        result = cluster.apply(load(path, ns))
        assert result.returncode == 0, result.stderr
    assert cluster.get("psmdb-backup", "before-upgrade", ns) is not None
    assert cluster.get("psmdb-schedule", "six-hourly-minio", ns) is not None


def cluster_with(ns: str, mutate) -> dict:
    psmdb = load("good/cluster.yaml", ns)[0]
    mutate(psmdb["spec"]["backup"])
    return psmdb


# One bad object per error rule family; each must be denied on `kubectl apply` with a message naming the field.
FAMILIES = {
    "storages: main storage": (
        lambda ns: cluster_with(ns, lambda b: b["storages"]["s3-us-west"].pop("main")),
        ["PSB104 spec.backup.storages:", "none has main: true"],
    ),
    "storages: encryption": (
        lambda ns: cluster_with(
            ns,
            lambda b: b["storages"]["s3-us-west"]["s3"]["serverSideEncryption"].update(
                sseCustomerAlgorithm="AES256", sseCustomerKey="a2V5"
            ),
        ),
        ["PSB107 spec.backup.storages.s3-us-west.s3.serverSideEncryption:"],
    ),
    "storages: minio": (
        lambda ns: cluster_with(ns, lambda b: b["storages"]["minio-dr"]["minio"].pop("endpointUrl")),
        ["PSB113 spec.backup.storages.minio-dr.minio.endpointUrl: endpointUrl is empty"],
    ),
    "tasks: storage": (
        lambda ns: cluster_with(ns, lambda b: b["tasks"][0].update(storageName="s3-eu")),
        ['PSB203 spec.backup.tasks[0].storageName: storage "s3-eu" is not defined'],
    ),
    "tasks: schedule": (
        lambda ns: cluster_with(ns, lambda b: b["tasks"][1].update(schedule="0 0 * * 7")),
        ["PSB206 spec.backup.tasks[1].schedule: can't parse cronjob schedule"],
    ),
    "pitr: compression": (
        lambda ns: cluster_with(ns, lambda b: b["pitr"].update(compressionType="zip")),
        ['PSB210 spec.backup.pitr.compressionType: compression "zip"'],
    ),
    "backup: storage of the live cluster": (
        lambda ns: backup(ns, storageName="gcs"),
        ['PSB404 spec.storageName: storage "gcs" is not defined in cluster my-cluster'],
    ),
    "backup: snapshot class": (
        lambda ns: backup(ns, type="external", storageName=None),
        ["PSB405 spec.volumeSnapshotClass"],
    ),
    "schedule: cron": (
        lambda ns: load("bad/schedule.yaml", ns)[0],
        ['PSB601 spec.schedule: schedule "0 2 * * 7" does not parse (end of range (7) above maximum (6): 7)'],
    ),
    "schedule: storage of the live cluster": (
        lambda ns: schedule(ns, storageName="gcs"),
        ['PSB604 spec.storageName: storage "gcs" is not defined in cluster my-cluster'],
    ),
    "schedule: named like an enabled task": (
        lambda ns: schedule(ns, name="daily-s3"),
        ['PSB606 metadata.name: cluster my-cluster has an enabled task "daily-s3"'],
    ),
    "restore: reference": (lambda ns: restore(ns), ["PSB506 spec: neither backupName nor backupSource"]),
    "restore: missing backup": (
        lambda ns: restore(ns, backupName="nope"),
        ['PSB513 spec.backupName: the restore fails with "perconaservermongodbbackups'],
    ),
    "restore: selective": (
        lambda ns: restore(
            ns,
            backupSource={"type": "physical", "destination": "s3://b/2026-11-01T00:00:00Z", "s3": {"bucket": "b"}},
            selective={"nsFrom": "a.b", "nsTo": "a.c"},
        ),
        ["PSB510 spec.selective.nsFrom: the backup is physical"],
    ),
    "restore: backupSource": (
        lambda ns: restore(ns, backupSource={"destination": "gs://b/2026-11-01T00:00:00Z/", "s3": {"bucket": "b"}}),
        ["PSB507 spec.backupSource.destination", "PSB508 spec.backupSource.destination"],
    ),
    "restore: pitr date": (
        lambda ns: restore(ns, backupName="before-upgrade", pitr={"type": "date", "date": "2026-02-30 10:00:00"}),
        ['PSB501 spec.pitr.date: "2026-02-30 10:00:00" is not a real date'],
    ),
}


@pytest.fixture(scope="module")
def world_ns(cluster: Cluster) -> str:
    ns = cluster.namespace()
    good_world(cluster, ns)
    cluster.apply(load("good/backup.yaml", ns), check=True)
    return ns


@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_error_rule_family_is_denied_on_apply(cluster: Cluster, world_ns: str, family: str) -> None:
    make, needles = FAMILIES[family]
    obj = make(world_ns)
    if obj["kind"] == "PerconaServerMongoDB":
        obj["metadata"]["name"] = "my-cluster"  # an update of the live cluster
    obj["spec"] = {k: v for k, v in obj["spec"].items() if v is not None}
    denied(cluster.apply(obj), *needles)
    denied(cluster.apply(obj, "--dry-run=server"), *needles)


def test_server_side_dry_run_has_no_side_effects(cluster: Cluster, world_ns: str) -> None:
    good = backup(world_ns, name="dry-run-only")
    result = cluster.apply(good, "--dry-run=server")
    assert result.returncode == 0 and "(server dry run)" in result.stdout
    assert cluster.get("psmdb-backup", "dry-run-only", world_ns) is None
    denied(cluster.apply(backup(world_ns, name="dry-bad", storageName="gcs"), "--dry-run=server"), "PSB404")
    assert cluster.get("psmdb-backup", "dry-bad", world_ns) is None
    logged = [line for line in cluster.webhook.log_lines() if line.get("object") == "dry-run-only"]
    assert logged and logged[-1]["dry_run"] is True


def test_warnings_are_shown_by_kubectl(cluster: Cluster) -> None:
    ns = cluster.namespace()
    good_world(cluster, ns)
    psmdb = load("good/cluster.yaml", ns)[0]
    psmdb["spec"]["backup"]["serviceAccountName"] = "legacy-backup-sa"
    result = cluster.apply(psmdb)
    assert result.returncode == 0, result.stderr
    assert "Warning: PSB131 spec.backup.serviceAccountName: backup.serviceAccountName has no effect" in result.stderr


def test_update_of_an_object_that_predates_the_webhook_is_not_blocked(cluster: Cluster) -> None:
    ns = cluster.namespace({"psmdb-backup-webhook.io/enforcement": "audit"})
    good_world(cluster, ns)
    assert cluster.apply(backup(ns, name="old-bad", storageName="gcs")).returncode == 0  # audit: allowed
    cluster.kubectl("label", "namespace", ns, "psmdb-backup-webhook.io/enforcement-", check=True)  # now enforced
    time.sleep(5.5)  # the webhook caches the Namespace for 5 s
    updated = backup(ns, name="old-bad", storageName="gcs")
    updated["metadata"]["labels"] = {"team": "db"}
    result = cluster.apply(updated)
    assert result.returncode == 0, result.stderr
    assert "already present before this update" in result.stderr
    worse = backup(ns, name="old-bad", storageName="gcs", type="external")
    denied(cluster.apply(worse), "PSB405")


def test_cross_object_rules_see_live_objects(cluster: Cluster) -> None:
    ns = cluster.namespace()
    denied(cluster.apply(backup(ns)), 'PSB402 spec.clusterName: PerconaServerMongoDB "my-cluster" does not exist')
    denied(cluster.apply(schedule(ns)), 'PSB603 spec.clusterName: PerconaServerMongoDB "my-cluster" does not exist')
    good_world(cluster, ns)
    time.sleep(5.5)  # the negative answer is cached for 5 s
    assert cluster.apply(backup(ns)).returncode == 0
    assert cluster.apply(schedule(ns)).returncode == 0
    minio_missing = load("good/cluster.yaml", ns)[0]
    minio_missing["spec"]["backup"]["storages"]["minio-dr"]["minio"]["credentialsSecret"] = "no-such-secret"
    result = cluster.apply(minio_missing)  # the operator retries a missing Secret: admitted, with a warning
    assert result.returncode == 0, result.stderr
    assert "PSB121" in result.stderr and 'Secret "no-such-secret" does not exist' in result.stderr


def test_cluster_applied_before_its_secrets_is_admitted_with_a_warning(cluster: Cluster) -> None:
    """As a GitOps tool does: the cluster first, its credentials Secrets right after; both are admitted."""
    ns = cluster.namespace()
    result = cluster.apply(load("good/cluster.yaml", ns)[0])
    assert result.returncode == 0, result.stderr
    assert "PSB121" in result.stderr and "does not exist" in result.stderr
    cluster.apply(load("good/secrets.yaml", ns), check=True)


def pod(ns: str, name: str, component: str = "mongod", containers: list | None = None) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": ns,
            "labels": {
                "app.kubernetes.io/name": "percona-server-mongodb",
                "app.kubernetes.io/instance": "my-cluster",
                "app.kubernetes.io/component": component,
                "app.kubernetes.io/replset": "rs0",
                "app.kubernetes.io/managed-by": "percona-server-mongodb-operator",
                "app.kubernetes.io/part-of": "percona-server-mongodb",
            },
        },
        "spec": {
            "nodeName": "kwok-node-0",
            "containers": containers or [{"name": "mongod", "image": "percona/percona-server-mongodb:8.0.12-4"}],
            "volumes": [{"name": "mongod-data", "emptyDir": {}}],
        },
    }


def containers_of(cluster: Cluster, name: str, ns: str) -> list[dict]:
    return cluster.get("pod", name, ns)["spec"]["containers"]


def test_replset_pod_gets_the_backup_agent_and_arbiter_and_mongos_do_not(cluster: Cluster) -> None:
    ns = cluster.namespace()
    good_world(cluster, ns)
    cluster.apply(
        [
            pod(ns, "my-cluster-rs0-0"),
            pod(ns, "my-cluster-rs0-arbiter-0", "arbiter"),
            pod(ns, "my-cluster-mongos-0", "mongos"),
        ],
        check=True,
    )
    agent = next(c for c in containers_of(cluster, "my-cluster-rs0-0", ns) if c["name"] == "backup-agent")
    assert agent["image"] == "percona/percona-backup-mongodb:2.15.0"
    assert agent["command"] == ["/opt/percona/pbm-entry.sh"] and agent["args"] == ["pbm-agent-entrypoint"]
    env = {e["name"]: e.get("value") for e in agent["env"]}
    assert env["PBM_MONGODB_REPLSET"] == "rs0" and env["PBM_MONGODB_URI"].endswith("@localhost:$(PBM_MONGODB_PORT)")
    assert [m["name"] for m in agent["volumeMounts"]][:3] == ["ssl", "bin", "mongod-data"]
    for other in ("my-cluster-rs0-arbiter-0", "my-cluster-mongos-0"):
        assert [c["name"] for c in containers_of(cluster, other, ns)] == ["mongod"]
    cluster.kubectl("wait", "--for=condition=Ready", "pod/my-cluster-rs0-0", "-n", ns, "--timeout=60s", check=True)


def test_a_pod_that_already_has_the_agent_is_not_injected_twice(cluster: Cluster) -> None:
    ns = cluster.namespace()
    good_world(cluster, ns)
    mine = [{"name": "mongod", "image": "m"}, {"name": "backup-agent", "image": "custom/pbm:1"}]
    cluster.apply(pod(ns, "my-cluster-rs0-1", containers=mine), check=True)
    got = containers_of(cluster, "my-cluster-rs0-1", ns)
    assert [c["name"] for c in got] == ["mongod", "backup-agent"] and got[1]["image"] == "custom/pbm:1"


def test_statefulset_pods_get_the_agent(cluster: Cluster) -> None:
    """Through the StatefulSet controller, as the operator creates them (kube-controller-manager + scheduler)."""
    ns = cluster.namespace()
    good_world(cluster, ns)
    template = pod(ns, "x")
    sts = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "my-cluster-rs0", "namespace": ns},
        "spec": {
            "replicas": 1,
            "serviceName": "my-cluster-rs0",
            "selector": {"matchLabels": template["metadata"]["labels"]},
            "template": {
                "metadata": {"labels": template["metadata"]["labels"]},
                "spec": {k: v for k, v in template["spec"].items() if k != "nodeName"},
            },
        },
    }
    cluster.apply(sts, check=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and cluster.get("pod", "my-cluster-rs0-0", ns) is None:
        time.sleep(0.5)
    assert "backup-agent" in [c["name"] for c in containers_of(cluster, "my-cluster-rs0-0", ns)]


def test_webhook_down_follows_the_documented_failure_policies(cluster: Cluster) -> None:
    ns = cluster.namespace()
    good_world(cluster, ns)
    cluster.webhook.stop()
    try:
        result = cluster.apply(backup(ns, name="while-down"))  # validating: failurePolicy Fail
        assert result.returncode != 0 and "failed calling webhook" in result.stderr, result.stderr
        cluster.apply(pod(ns, "my-cluster-rs0-2"), check=True)  # mutating: failurePolicy Ignore
        assert [c["name"] for c in containers_of(cluster, "my-cluster-rs0-2", ns)] == ["mongod"]
    finally:
        cluster.webhook.start()
    assert cluster.apply(backup(ns, name="after-restart")).returncode == 0


def test_certificate_rotation_during_a_stream_of_applies_loses_no_request(cluster: Cluster, world_ns: str) -> None:
    good, bad = backup(world_ns, name="stream-good"), backup(world_ns, name="stream-bad", storageName="gcs")
    stop = threading.Event()
    outcomes: list[str] = []

    def stream(i: int) -> None:
        while not stop.is_set():
            obj = copy.deepcopy(good if i % 2 else bad)
            result = cluster.apply(obj, "--dry-run=server")
            if i % 2:
                outcomes.append("ok" if result.returncode == 0 else f"FAILED: {result.stderr}")
            else:
                outcomes.append("ok" if "PSB404" in result.stderr else f"FAILED: {result.stderr}")

    serials = []
    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(stream, i) for i in range(4)]
        for _ in range(4):
            time.sleep(1.5)
            serials.append(cluster.rotate_certificate())
        time.sleep(1.5)
        stop.set()
        for f in futures:
            f.result()
    failures = [o for o in outcomes if o != "ok"]
    assert len(outcomes) >= 20 and not failures, failures[:3]
    reloads = [l for l in cluster.webhook.log_lines() if "reload" in l.get("msg", "").lower()]
    assert reloads, "the server never reported a certificate reload"
