"""The admission app in-process: validation, mutation, policy, robustness, secrets. (The real API server calls it in
tests/e2e; here a dict-backed reader stands in for the API so every branch can be driven.)"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import logging
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer

from webhook.admission.server import AdmissionApp, Settings
from webhook.kube import LiveLookup
from webhook.policy.live import Enforcement, LookupFailure

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CLUSTER = yaml.safe_load((EXAMPLES / "good" / "cluster.yaml").read_text())
BACKUP = yaml.safe_load((EXAMPLES / "good" / "backup.yaml").read_text())
BAD_BACKUP = yaml.safe_load((EXAMPLES / "bad" / "backup.yaml").read_text())
SECRET_VALUE = "SUPERSECRETVALUE42"


class DictReader:
    """Objects by (kind, namespace, name); names in `broken` raise like an unreachable API server."""

    timeout = 1.0

    def __init__(self, objects: list[dict[str, Any]] = (), broken: set[str] = frozenset()) -> None:
        self.objects = {(o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]): o for o in objects}
        self.broken = broken
        self.calls = 0

    async def get(self, kind: str, namespace: str, name: str):
        self.calls += 1
        if name in self.broken:
            raise TimeoutError()
        return copy.deepcopy(self.objects.get((kind, namespace, name)))


def secret(name: str, keys: dict[str, str]) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": "psmdb"},
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in keys.items()},
    }


def namespace(name: str, labels: dict | None = None) -> dict:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels or {}}}


def review(
    obj: dict | None,
    *,
    kind: str | None = None,
    operation: str = "CREATE",
    old: dict | None = None,
    group: str = "psmdb.percona.com",
    namespace_: str = "psmdb",
    dry_run: bool = False,
) -> dict:
    kind = kind or (obj or {}).get("kind", "")
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": str(uuid.uuid4()),
            "kind": {"group": group, "version": "v1", "kind": kind},
            "resource": {"group": group, "version": "v1", "resource": kind.lower() + "s"},
            "operation": operation,
            "namespace": namespace_,
            "name": (obj or {}).get("metadata", {}).get("name", ""),
            "object": obj,
            "oldObject": old,
            "dryRun": dry_run,
            "userInfo": {"username": "test"},
        },
    }


def run(coro):
    return asyncio.run(coro)


async def _client(reader: DictReader | None, **settings: Any) -> TestClient:
    app = AdmissionApp(Settings(**settings), LiveLookup(reader, ttl=0.0)).build()
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    return client


async def post(reader, path: str, body: Any, **settings: Any) -> tuple[int, Any]:
    client = await _client(reader, **settings)
    try:
        data = body if isinstance(body, (bytes, str)) else json.dumps(body)
        resp = await client.post(path, data=data, headers={"Content-Type": "application/json"})
        text = await resp.text()
        return resp.status, (json.loads(text) if text.startswith("{") else text)
    finally:
        await client.close()


def world(*extra: dict) -> DictReader:
    return DictReader([CLUSTER, namespace("psmdb"), *extra])


def test_backup_naming_an_undefined_storage_is_denied_with_the_field_and_a_hint() -> None:
    req = review(BAD_BACKUP)
    status, body = run(post(world(), "/validate", req))
    resp = body["response"]
    assert status == 200 and resp["uid"] == req["request"]["uid"] and resp["allowed"] is False
    assert resp["status"]["code"] == 422
    msg = resp["status"]["message"]
    assert "PerconaServerMongoDBBackup psmdb/nightly-eu is rejected" in msg
    assert 'PSB404 spec.storageName: storage "s3-eu" is not defined in cluster my-cluster' in msg
    assert "(fix: use one of the storages" in msg


def test_good_backup_is_allowed() -> None:
    status, body = run(post(world(), "/validate", review(BACKUP)))
    assert body["response"]["allowed"] is True and "warnings" not in body["response"]


def test_warnings_are_returned_for_allowed_objects() -> None:
    obj = copy.deepcopy(BACKUP)
    obj["spec"]["storagename"] = "x"
    body = run(post(world(), "/validate", review(obj)))[1]
    assert body["response"]["allowed"] is True
    assert any(w.startswith("PSB002 spec.storagename") for w in body["response"]["warnings"])


def test_update_is_not_blocked_by_errors_the_old_object_already_had() -> None:
    old = copy.deepcopy(BAD_BACKUP)
    new = copy.deepcopy(BAD_BACKUP)
    new["metadata"]["labels"] = {"team": "db"}
    body = run(post(world(), "/validate", review(new, operation="UPDATE", old=old)))[1]["response"]
    assert body["allowed"] is True
    assert any("already present before this update" in w for w in body["warnings"])


def test_update_that_adds_a_new_error_is_denied() -> None:
    new = copy.deepcopy(BACKUP)
    new["spec"]["storageName"] = "nope"
    body = run(post(world(), "/validate", review(new, operation="UPDATE", old=BACKUP)))[1]["response"]
    assert body["allowed"] is False


@pytest.mark.parametrize(
    "mode,allowed,warned", [("enforce", False, False), ("warn", True, True), ("audit", True, False)]
)
def test_enforcement_mode_from_namespace_label(mode, allowed, warned) -> None:
    reader = DictReader([CLUSTER, namespace("psmdb", {"psmdb-backup-webhook.io/enforcement": mode})])
    resp = run(post(reader, "/validate", review(BAD_BACKUP)))[1]["response"]
    assert resp["allowed"] is allowed
    assert bool(resp.get("warnings")) is warned


def test_cluster_wide_warn_mode() -> None:
    resp = run(post(world(), "/validate", review(BAD_BACKUP), enforcement=Enforcement.WARN))[1]["response"]
    assert resp["allowed"] is True and "not enforced: warn mode" in resp["warnings"][0]


def test_lookup_failure_policy_deny_names_the_object() -> None:
    reader = DictReader([namespace("psmdb")], broken={"my-cluster"})
    resp = run(post(reader, "/validate", review(BACKUP)))[1]["response"]
    assert resp["allowed"] is False
    assert "could not read PerconaServerMongoDB psmdb/my-cluster" in resp["status"]["message"]


def test_lookup_failure_policy_warn_allows_with_a_warning() -> None:
    reader = DictReader([namespace("psmdb")], broken={"my-cluster"})
    resp = run(post(reader, "/validate", review(BACKUP), on_lookup_failure=LookupFailure.WARN))[1]["response"]
    assert resp["allowed"] is True and any("cross-object rules skipped" in w for w in resp["warnings"])


SCHEDULE = yaml.safe_load((EXAMPLES / "good" / "schedule.yaml").read_text())
BAD_SCHEDULE = yaml.safe_load((EXAMPLES / "bad" / "schedule.yaml").read_text())
SCHEDULE_GROUP = "psmdb-backup-webhook.io"


def test_schedules_are_checked_in_their_own_group() -> None:
    resp = run(post(world(), "/validate", review(BAD_SCHEDULE, group=SCHEDULE_GROUP)))[1]["response"]
    assert resp["allowed"] is False
    msg = resp["status"]["message"]
    assert "PerconaServerMongoDBBackupSchedule psmdb/weekly-sunday is rejected" in msg
    assert 'PSB601 spec.schedule: schedule "0 2 * * 7" does not parse (end of range (7) above maximum (6)' in msg
    good = run(post(world(), "/validate", review(SCHEDULE, group=SCHEDULE_GROUP)))[1]["response"]
    assert good["allowed"] is True and "warnings" not in good
    # The same kind name in the Percona group is not ours: allowed unchecked.
    other = run(post(world(), "/validate", review(BAD_SCHEDULE)))[1]["response"]
    assert other["allowed"] is True


def test_schedule_of_a_missing_cluster_is_denied() -> None:
    resp = run(post(DictReader([namespace("psmdb")]), "/validate", review(SCHEDULE, group=SCHEDULE_GROUP)))[1]
    assert resp["response"]["allowed"] is False and "PSB603" in resp["response"]["status"]["message"]


def test_without_any_cluster_single_object_rules_still_deny() -> None:
    obj = copy.deepcopy(BACKUP)
    del obj["spec"]["storageName"]
    resp = run(post(None, "/validate", review(obj), on_lookup_failure=LookupFailure.WARN))[1]["response"]
    assert resp["allowed"] is False and "PSB403" in resp["status"]["message"]


def test_missing_cluster_is_denied_when_the_api_says_404() -> None:
    resp = run(post(DictReader([namespace("psmdb")]), "/validate", review(BACKUP)))[1]["response"]
    assert resp["allowed"] is False and "PSB402" in resp["status"]["message"]


def test_missing_credentials_secret_is_a_warning_the_operator_retries_it() -> None:
    """GitOps tools apply the Secret and the cluster in one batch; the operator retries until the Secret exists."""
    reader = world(
        secret(
            "my-cluster-backup-azure", {"AZURE_STORAGE_ACCOUNT_NAME": "a", "AZURE_STORAGE_ACCOUNT_KEY": SECRET_VALUE}
        )
    )
    resp = run(post(reader, "/validate", review(CLUSTER)))[1]["response"]
    assert resp["allowed"] is True
    assert any("PSB121" in w and 'Secret "my-cluster-backup-s3" does not exist' in w for w in resp["warnings"])


def test_secrets_never_appear_in_responses_or_logs(caplog) -> None:
    caplog.set_level(logging.DEBUG)
    cluster = copy.deepcopy(CLUSTER)
    cluster["spec"]["backup"]["storages"]["s3-us-west"]["s3"]["serverSideEncryption"] = {
        "sseCustomerAlgorithm": "AES256",
        "sseCustomerKey": SECRET_VALUE,
    }
    secrets = [
        secret(
            n,
            {
                "AWS_ACCESS_KEY_ID": SECRET_VALUE,
                "AWS_SECRET_ACCESS_KEY": SECRET_VALUE,
                "AZURE_STORAGE_ACCOUNT_NAME": SECRET_VALUE,
                "AZURE_STORAGE_ACCOUNT_KEY": SECRET_VALUE,
            },
        )
        for n in ("my-cluster-backup-s3", "my-cluster-backup-azure", "my-cluster-backup-minio")
    ]
    status, body = run(post(world(*secrets), "/validate", review(cluster)))
    assert status == 200 and "PSB110" in body["response"]["status"]["message"]  # a full decision was made
    assert any(
        getattr(r, "decision", None) == "denied" for r in caplog.records
    )  # and logged  # the decision was logged
    raw = json.dumps(body)
    b64 = base64.b64encode(SECRET_VALUE.encode()).decode()
    assert SECRET_VALUE not in raw and b64 not in raw
    assert SECRET_VALUE not in caplog.text and b64 not in caplog.text


POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {
        "name": "my-cluster-rs0-0",
        "namespace": "psmdb",
        "labels": {
            "app.kubernetes.io/name": "percona-server-mongodb",
            "app.kubernetes.io/instance": "my-cluster",
            "app.kubernetes.io/component": "mongod",
            "app.kubernetes.io/replset": "rs0",
            "app.kubernetes.io/managed-by": "percona-server-mongodb-operator",
            "app.kubernetes.io/part-of": "percona-server-mongodb",
        },
    },
    "spec": {
        "containers": [{"name": "mongod", "image": "percona/percona-server-mongodb:8.0.12-4"}],
        "volumes": [{"name": "mongod-data", "persistentVolumeClaim": {"claimName": "mongod-data-my-cluster-rs0-0"}}],
    },
}


def _patch(resp: dict) -> list[dict]:
    return json.loads(base64.b64decode(resp["patch"])) if "patch" in resp else []


def test_replset_pod_gets_the_backup_agent() -> None:
    resp = run(post(world(), "/mutate", review(POD, group="")))[1]["response"]
    ops = _patch(resp)
    container = next(op["value"] for op in ops if op["path"].startswith("/spec/containers"))
    assert resp["allowed"] is True and resp["patchType"] == "JSONPatch"
    assert container["name"] == "backup-agent" and container["image"] == "percona/percona-backup-mongodb:2.15.0"
    assert [e["name"] for e in container["env"]][:4] == [
        "PBM_AGENT_MONGODB_USERNAME",
        "PBM_AGENT_MONGODB_PASSWORD",
        "PBM_MONGODB_REPLSET",
        "PBM_MONGODB_PORT",
    ]


def test_arbiter_and_already_injected_pods_get_no_patch() -> None:
    arbiter = copy.deepcopy(POD)
    arbiter["metadata"]["labels"]["app.kubernetes.io/component"] = "arbiter"
    assert "patch" not in run(post(world(), "/mutate", review(arbiter, group="")))[1]["response"]
    injected = copy.deepcopy(POD)
    injected["spec"]["containers"].append({"name": "backup-agent", "image": "x"})
    assert "patch" not in run(post(world(), "/mutate", review(injected, group="")))[1]["response"]


def test_pod_of_an_unreadable_cluster_gets_latest_defaults_and_a_warning() -> None:
    resp = run(post(None, "/mutate", review(POD, group="")))[1]["response"]
    container = next(op["value"] for op in _patch(resp) if op["path"].startswith("/spec/containers"))
    assert container["image"] == "percona/percona-backup-mongodb:2.15.0"
    assert "could not read PerconaServerMongoDB my-cluster" in resp["warnings"][0]


def test_non_pod_and_update_requests_are_allowed_untouched() -> None:
    resp = run(post(world(), "/mutate", review(POD, group="", operation="UPDATE", old=POD)))[1]["response"]
    assert resp["allowed"] is True and "patch" not in resp


@pytest.mark.parametrize(
    "body,status",
    [
        (b"not json", 400),
        (b"[]", 400),
        (b'{"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview"}', 400),
        (b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}', 400),
        (b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {"kind": {}}}', 400),
        (b"[" * 100000 + b"]" * 100000, 400),
    ],
)
def test_malformed_requests_get_a_json_400(body: bytes, status: int) -> None:
    got, data = run(post(world(), "/validate", body))
    assert got == status and "error" in data


def test_oversized_body_gets_413() -> None:
    got, data = run(post(world(), "/validate", b"{" + b" " * (4 * 1024 * 1024) + b"}"))
    assert got == 413 and "larger than" in data["error"]


def test_wrong_content_type_is_415() -> None:
    async def go():
        client = await _client(world())
        try:
            resp = await client.post(
                "/validate", data=json.dumps(review(BACKUP)), headers={"Content-Type": "text/plain"}
            )
            assert resp.status == 415 and "application/json" in (await resp.json())["error"]
        finally:
            await client.close()

    run(go())


def test_missing_object_on_create_is_a_denial_not_a_crash() -> None:
    resp = run(post(world(), "/validate", review(None, kind="PerconaServerMongoDBBackup")))[1]["response"]
    assert resp["allowed"] is False and resp["status"]["code"] == 400


def test_every_decision_is_logged_with_uid_kind_object_and_decision(caplog) -> None:
    caplog.set_level(logging.INFO)
    req = review(BAD_BACKUP)
    assert run(post(world(), "/validate", req))[0] == 200
    record = next(r for r in caplog.records if getattr(r, "uid", None) == req["request"]["uid"])
    assert (record.kind, record.namespace, record.object, record.decision) == (
        "PerconaServerMongoDBBackup",
        "psmdb",
        "nightly-eu",
        "denied",
    )
    assert record.findings == ["PSB404 spec.storageName"]


def test_health_ready_and_metrics() -> None:
    async def go():
        client = await _client(world())
        try:
            assert (await client.get("/healthz")).status == 200
            assert (await client.get("/readyz")).status == 503  # not marked ready outside serve()
            await client.post(
                "/validate", data=json.dumps(review(BAD_BACKUP)), headers={"Content-Type": "application/json"}
            )
            text = await (await client.get("/metrics")).text()
            assert (
                'psmdb_backup_webhook_requests_total{decision="denied",kind="PerconaServerMongoDBBackup",'
                'operation="CREATE",webhook="validate"} 1.0'
            ) in text
            assert 'psmdb_backup_webhook_findings_total{rule="PSB404",severity="error"} 1.0' in text
        finally:
            await client.close()

    run(go())


def test_nulls_are_pruned_as_the_api_server_prunes_them() -> None:
    """`storages:` / `tasks:` left empty (older chart versions render that): the API server drops such nulls before
    it validates, so they must mean "absent" here as in lint, not "must be a mapping / a list"."""
    cluster = copy.deepcopy(CLUSTER)
    cluster["spec"]["backup"].update(storages=None, tasks=None, pitr=None)
    resp = run(post(world(), "/validate", review(cluster)))[1]["response"]
    assert resp["allowed"] is True, resp.get("status")
    assert not any(w.startswith("PSB001") for w in resp.get("warnings", []))
    update = run(post(world(), "/validate", review(cluster, operation="UPDATE", old=copy.deepcopy(cluster))))[1]
    assert update["response"]["allowed"] is True


@pytest.mark.parametrize("encoding", ["utf-16", "utf-32-be"])
def test_nulls_are_pruned_in_any_json_encoding(encoding: str) -> None:
    """The JSON is read whatever its encoding (JSON allows UTF-16/32), and the nulls in it are pruned."""
    cluster = copy.deepcopy(CLUSTER)
    cluster["spec"]["backup"].update(storages=None, tasks=None, pitr=None)
    body = json.dumps(review(cluster)).encode(encoding)
    resp = run(post(world(), "/validate", body))[1]["response"]
    assert resp["allowed"] is True, resp.get("status")
    assert not any(w.startswith("PSB001") for w in resp.get("warnings", []))


# --- the JSON fast path (orjson) reads and writes exactly what the standard library did -----------------------------


@pytest.mark.parametrize("value", [2**64, 2**63, -(2**63) - 1, 10**30])
def test_integers_beyond_64_bits_keep_their_value(value: int) -> None:
    """orjson would read them as floats, which pass the int64 check: the body goes to the standard library."""
    obj = copy.deepcopy(CLUSTER)
    obj["spec"]["backup"]["startingDeadlineSeconds"] = value
    resp = run(post(world(), "/validate", review(obj)))[1]["response"]
    assert resp["allowed"] is False
    assert f"PSB001 spec.backup.startingDeadlineSeconds: {value} does not fit in int64" in resp["status"]["message"]


def test_lone_surrogates_in_a_review_are_read_and_answered() -> None:
    """orjson refuses a lone surrogate both ways; the standard library reads and escapes it, as before."""
    obj = copy.deepcopy(BAD_BACKUP)
    obj["metadata"]["name"] = "nightly-\ud800"
    req = review(obj)
    status, body = run(post(world(), "/validate", json.dumps(req)))
    assert status == 200 and body["response"]["uid"] == req["request"]["uid"]
    assert "psmdb/nightly-\ud800 is rejected" in body["response"]["status"]["message"]


def test_json_log_lines_take_any_text() -> None:
    from webhook.logs import JsonFormatter

    record = logging.LogRecord("x", logging.INFO, "", 0, "object %s", ("a\ud800",), None)
    record.object, record.count = "b\udfff", 3
    entry = json.loads(JsonFormatter().format(record))
    assert (entry["msg"], entry["object"], entry["count"]) == ("object a\ud800", "b\udfff", 3)


def test_objects_without_nulls_are_not_walked_for_them(monkeypatch) -> None:
    import webhook.admission.server as server

    walked: list = []
    monkeypatch.setattr(server, "prune_object", lambda obj: walked.append(obj) or obj)
    assert run(post(world(), "/validate", review(CLUSTER)))[1]["response"]["allowed"] is True
    assert walked == []  # the review's own `oldObject: null` does not count
    cluster = copy.deepcopy(CLUSTER)
    cluster["spec"]["backup"]["pitr"] = None
    run(post(world(), "/validate", review(cluster, operation="UPDATE", old=CLUSTER)))
    assert walked == [cluster]


def test_a_body_that_stops_arriving_gets_408() -> None:
    async def go():
        client = await _client(world(), read_timeout=0.3)
        try:
            reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
            writer.write(
                b"POST /validate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
            )
            await writer.drain()
            answer = await asyncio.wait_for(reader.read(4096), 10)
            writer.close()
            return answer
        finally:
            await client.close()

    answer = run(go())
    assert answer.startswith(b"HTTP/1.1 408") and b"request body not received in time" in answer


def test_log_timestamps_are_rfc3339_with_milliseconds_across_seconds() -> None:
    """The formatter formats the date once per second; every line must still carry its own time."""
    from datetime import UTC, datetime

    from webhook.logs import JsonFormatter
    from webhook.times import format_rfc3339

    for created in (1_700_000_000.9994, 1_700_000_000.9996, 1_700_000_001.0, 1_700_000_001.25, 1_600_000_000.5):
        record = logging.LogRecord("x", logging.INFO, "", 0, "m", (), None)
        record.created = created
        ts = json.loads(JsonFormatter().format(record))["ts"]
        assert ts == format_rfc3339(datetime.fromtimestamp(created, UTC), 3)
