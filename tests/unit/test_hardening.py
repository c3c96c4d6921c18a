"""The webhook against hostile or unlucky input: label cardinality, log clipping, one lookup budget per request
against a hanging API server, and credentials never echoed."""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import logging
import random
import re
import string
import time
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from kubernetes_asyncio import client as kclient

from tests.unit.test_admission import BACKUP, CLUSTER, DictReader, namespace, post, review, run, secret, world
from webhook.admission.server import AdmissionApp, Settings
from webhook.kube import LAST_APPLIED, KubeError, KubeReader, LiveLookup, redact
from webhook.policy.live import LookupFailure
from webhook.policy.schema import schema_findings

MARKER = "PLANTEDMARKERPW77"


def _rss_bytes() -> int:
    with open("/proc/self/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+) kB", f.read()).group(1)) * 1024


def _random_text(rng: random.Random, n: int) -> str:
    return "".join(rng.choices(string.ascii_letters + string.digits, k=n))


def _series(metrics: str, name: str) -> list[str]:
    return [line for line in metrics.splitlines() if line.startswith(name + "{")]


def test_random_kinds_and_operations_do_not_grow_metrics_or_logs(caplog) -> None:
    caplog.set_level(logging.INFO, logger="psmdb_backup.admission")
    rng = random.Random(15)

    async def go() -> tuple[str, int]:
        app = AdmissionApp(Settings(), LiveLookup(world(), ttl=0.0)).build()
        async with TestClient(TestServer(app, host="127.0.0.1")) as c:
            rss_before = 0
            for i in range(1000):
                if i == 100:  # after warm-up: the first requests import and compile the rules
                    rss_before = _rss_bytes()
                kind = _random_text(rng, rng.randint(1, 20_000)) if i % 4 else BACKUP["kind"]
                body = review(copy.deepcopy(BACKUP), kind=kind, operation=_random_text(rng, rng.randint(1, 5_000)))
                body["request"]["name"] = _random_text(rng, 3_000)
                body["request"]["namespace"] = _random_text(rng, rng.randint(1, 3_000))
                resp = await c.post("/validate" if i % 2 else "/mutate", json=body)
                assert resp.status == 200, await resp.text()
            text = await (await c.get("/metrics")).text()
            return text, _rss_bytes() - rss_before

    metrics, rss_growth = run(go())
    assert len(metrics.encode()) < 20_000, f"/metrics grew to {len(metrics)} bytes"
    requests = _series(metrics, "psmdb_backup_webhook_requests_total")
    assert requests and len(requests) <= 2 * 5 * 5 * 4  # webhooks x kinds x operations x decisions
    assert re.findall(r'kind="([^"]*)"', "\n".join(requests)) and all(
        k in {"PerconaServerMongoDBBackup", "other"} for k in re.findall(r'kind="([^"]*)"', "\n".join(requests))
    )
    assert set(re.findall(r'operation="([^"]*)"', "\n".join(requests))) == {"other"}
    assert rss_growth < 32 * 1024 * 1024, f"RSS grew {rss_growth / 2**20:.1f} MiB over 900 requests"
    records = [r for r in caplog.records if r.name == "psmdb_backup.admission"]
    assert len(records) >= 1000
    longest = max(len(r.getMessage()) + sum(len(str(v)) for v in vars(r).values()) for r in records)
    assert longest < 4_000, f"a log record carries {longest} characters of request data"


class HangingApi:
    """An API server on 127.0.0.1 that accepts every request and never answers."""

    def __init__(self) -> None:
        self.requests = 0

    async def handler(self, request: web.Request) -> web.Response:
        self.requests += 1
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    async def __aenter__(self) -> str:
        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", self.handler)
        self.runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        return f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"

    async def __aexit__(self, *exc: Any) -> None:
        await self.runner.cleanup()


class ForbiddingReader(DictReader):
    """Secrets answer 403, as outside the namespaces given Secret access."""

    async def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        if kind == "Secret":
            raise KubeError(403, "Forbidden", "secrets is forbidden")
        return await super().get(kind, namespace, name)


def test_a_forbidden_secret_read_names_the_rbac_and_the_fix() -> None:
    reader = ForbiddingReader([CLUSTER, namespace("psmdb")])
    resp = run(post(reader, "/validate", review(CLUSTER)))[1]["response"]
    assert resp["allowed"] is False
    message = resp["status"]["message"]
    assert "could not read Secret psmdb/" in message and "HTTP 403 Forbidden (the webhook's RBAC" in message, message
    assert "docs/install.md#secret-access" in message


@pytest.mark.parametrize("policy", [LookupFailure.WARN, LookupFailure.DENY])
def test_all_lookups_of_a_request_share_one_budget_against_a_hanging_api_server(policy, caplog) -> None:
    """Each read alone may take --lookup-timeout (2 s); the Namespace and the cluster read together would take 4 s
    without the shared budget. The answer must come within the budget plus a little, and say what failed."""
    caplog.set_level(logging.INFO)
    budget = 2.5

    async def go() -> tuple[float, dict, int]:
        hanging = HangingApi()
        async with hanging as url:
            cfg = kclient.Configuration(host=url)
            async with kclient.ApiClient(configuration=cfg) as api:
                settings = Settings(lookup_timeout=2.0, lookup_budget=budget, on_lookup_failure=policy)
                app = AdmissionApp(settings, LiveLookup(KubeReader(api, 2.0), ttl=0.0)).build()
                async with TestClient(TestServer(app, host="127.0.0.1")) as c:
                    started = time.monotonic()
                    resp = await c.post("/validate", json=review(copy.deepcopy(BACKUP)))
                    elapsed = time.monotonic() - started
                    return elapsed, await resp.json(), hanging.requests

    elapsed, body, calls = run(go())
    assert calls >= 2  # the Namespace, then the cluster the Backup names
    assert elapsed < budget + 0.8, f"answered after {elapsed:.2f}s, budget {budget}s"
    answer = body["response"]
    ns_warnings = [w for w in answer.get("warnings", []) if "Namespace /psmdb" in w]
    assert ns_warnings and "enforcement label could not be read" in ns_warnings[0]
    assert any("Namespace /psmdb" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)
    if policy == LookupFailure.DENY:
        assert answer["allowed"] is False and "PerconaServerMongoDB psmdb/my-cluster" in answer["status"]["message"]
    else:
        assert answer["allowed"] is True


def test_a_readable_namespace_gives_no_namespace_warning() -> None:
    status, body = run(post(world(), "/validate", review(copy.deepcopy(BACKUP))))
    assert status == 200 and not any("Namespace" in w for w in body["response"].get("warnings", []))


def test_secrets_are_reduced_to_key_names_including_annotations() -> None:
    s = secret("creds", {"AWS_SECRET_ACCESS_KEY": MARKER})
    s["stringData"] = {"password": MARKER}
    s["metadata"]["annotations"] = {
        LAST_APPLIED: json.dumps({"data": {"AWS_SECRET_ACCESS_KEY": MARKER}}),
        "example.com/note": f"the password is {MARKER}",
    }
    reduced = redact(s)
    raw = json.dumps(reduced)
    assert MARKER not in raw and base64.b64encode(MARKER.encode()).decode() not in raw
    assert reduced["data"] == {"AWS_SECRET_ACCESS_KEY": ""} and reduced["stringData"] == {"password": ""}
    assert reduced["metadata"]["annotations"] == {"example.com/note": ""}
    assert redact(namespace("x")) == namespace("x")  # other kinds are untouched


def _credential_objects() -> list[dict]:
    url = f"mongodb://admin:{MARKER}@db.example.com:27017"
    backup = copy.deepcopy(BACKUP)
    backup["spec"].update(type=url, compressionLevel=f"s3://AKIA:{MARKER}@bucket", startingDeadlineSeconds=url)
    backup["spec"]["credentials"] = {"password": 7, "token": MARKER}  # under credential-like keys
    restore = {
        "apiVersion": "psmdb.percona.com/v1",
        "kind": "PerconaServerMongoDBRestore",
        "metadata": {"name": "r", "namespace": "psmdb"},
        "spec": {
            "clusterName": "my-cluster",
            "pitr": {"type": "date", "date": f"https://u:{MARKER}@x"},
            "backupSource": {
                "type": "logical",
                "destination": f"s3://u:{MARKER}@bucket/prefix",
                "s3": {"bucket": "b", "uploadPartSize": url, "endpointUrl": f"https://k:{MARKER}@minio:9000"},
            },
        },
    }
    cluster = copy.deepcopy(CLUSTER)
    s3 = cluster["spec"]["backup"]["storages"]["s3-us-west"]["s3"]
    s3["endpointUrl"] = f"https://key:{MARKER}@minio.example.com:9000"
    s3["secretAccessKey"] = MARKER
    cluster["spec"]["backup"]["tasks"][0]["type"] = url
    return [backup, restore, cluster]


def test_findings_never_echo_credentials() -> None:
    for obj in _credential_objects():
        findings = schema_findings(obj)
        assert findings, f"{obj['kind']}: the planted values should be findings"
        text = json.dumps([(f.message, f.hint) for f in findings])
        assert MARKER not in text, text


def test_planted_credentials_appear_in_no_response_and_no_log(caplog) -> None:
    caplog.set_level(logging.DEBUG)
    s = secret("my-cluster-backup-s3", {"AWS_ACCESS_KEY_ID": MARKER, "AWS_SECRET_ACCESS_KEY": MARKER})
    s["metadata"]["annotations"] = {LAST_APPLIED: json.dumps({"stringData": {"k": MARKER}}), "note": MARKER}
    reader = DictReader([*world(s).objects.values()])
    bodies = []
    for obj in _credential_objects():
        for op in ("CREATE", "UPDATE"):
            old = copy.deepcopy(obj) if op == "UPDATE" else None
            status, body = run(post(reader, "/validate", review(copy.deepcopy(obj), operation=op, old=old)))
            assert status == 200
            bodies.append(body)
    assert any(b["response"]["allowed"] is False for b in bodies)  # real decisions were made
    raw = json.dumps(bodies)
    assert MARKER not in raw and "***@" in raw
    assert MARKER not in caplog.text and caplog.records
