"""Issue 15 item 7, companion side: a marker password planted as URL userinfo in every storage endpointUrl, in a
Backup's status.destination and status.error and in PBM's JSON and stderr never reaches the watchdog's findings, Events,
log records or metrics, `psmdb-backup status` (text and JSON) or the `backup --wait` lines."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from datetime import timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from webhook.controller import ondemand, status
from webhook.controller.kubeexec import ExecResult, PodRef
from webhook.controller.pbmread import ClusterRef, PBMError, PBMReader
from webhook.controller.watchdog_run import PbmViews

from . import test_ops_cli as ops
from . import test_watchdog_run as wr

MARKER = "MARKERPW"
URI = f"s3://keyid:{MARKER}@minio.example:9000/bucket/c1/2026-03-01T11:00:00Z"
ERROR = f"upload to {URI}: access denied"
ENDPOINTS = {
    "s3": {"type": "s3", "main": True, "s3": {"bucket": "b", "endpointUrl": f"https://k:{MARKER}@s3.example"}},
    "minio": {"type": "minio", "minio": {"bucket": "b", "endpointUrl": f"k:{MARKER}@minio:9000"}},
    "az": {"type": "azure", "azure": {"container": "c", "endpointUrl": f"https://k:{MARKER}@az.example"}},
    "oci": {"type": "s3", "s3": {"bucket": "b", "endpointUrl": f"https://k:{MARKER}@ns.compat.objectstorage.oci"}},
}


def planted_cluster(c: dict[str, Any]) -> dict[str, Any]:
    c["spec"]["backup"]["storages"] = json.loads(json.dumps(ENDPOINTS))
    c["spec"]["backup"]["pitr"] = {"enabled": True}
    c["spec"]["replsets"] = [{"name": "rs0"}]
    return c


def test_the_watchdog_never_echoes_userinfo(caplog: pytest.LogCaptureFixture) -> None:
    now, pbm_name = wr.NOW, "2026-03-01T11:00:00Z"
    pbm_status = {
        "backups": {"snapshot": [{"name": pbm_name, "status": "error", "error": ERROR}]},
        "running": {},
    }
    execer = wr.FakeExec({"status": pbm_status, "list": {"pitr": {"ranges": [], "error": ERROR}}})
    views = PbmViews(execer, {})
    dog, kube = wr.make(pbm=views, repair=True)
    views.clusters = dog.ctx.clusters
    failed = wr.backup("b0", "error", created=now - timedelta(hours=2), error=ERROR, destination=URI, ancestor="hourly")
    running = wr.backup("b1", "running", created=now - timedelta(hours=1), pbmName=pbm_name, destination=URI)
    running["status"]["lastTransition"] = wr.stamp(now - timedelta(minutes=30))
    task = {"name": "hourly", "enabled": True, "schedule": "0 * * * *", "storageName": "s3"}
    wr.put(dog, planted_cluster(wr.cluster(tasks=[task])), failed, running)
    caplog.set_level(logging.DEBUG)

    async def scenario() -> str:
        await dog.run_pass()
        dog.controller.acting = True
        async with TestClient(TestServer(dog.controller.http_app())) as client:
            return await (await client.get("/metrics")).text()

    metrics = asyncio.run(scenario())
    reasons = {r for _, r in kube.events()}
    assert {"BackupFailed", "PBMDisagrees"} <= reasons  # the planted values were read and reported
    written = json.dumps(kube.calls)  # Events (messages, annotations) and repairs (status.error)
    assert "access denied" in written and "***@" in written
    logged = "\n".join(r.getMessage() for r in caplog.records)
    for where, text in {"API writes": written, "logs": logged, "metrics": metrics}.items():
        assert MARKER not in text, where


def test_pbm_stderr_is_stripped_before_it_becomes_an_error() -> None:
    async def execer(pod: PodRef, container: str, argv: Any, stdin: bytes | None = None) -> ExecResult:
        return ExecResult(b"", f"Error: {ERROR}\n".encode(), False, 1, "exit 1")

    reader = PBMReader(execer)
    with pytest.raises(PBMError) as e:
        asyncio.run(reader.status(ClusterRef(wr.NS, "c1")))
    assert "access denied" in e.value.message and MARKER not in e.value.message and MARKER not in str(e.value)


def test_status_and_backup_wait_never_echo_userinfo() -> None:
    c = planted_cluster(ops.cluster())
    backups = [
        ops.backup("b0", "error", 60, error=ERROR, destination=URI),
        ops.backup("b1", "ready", 30, destination=URI),
    ]
    doc = status.build(status.Inputs([c], backups=backups), ops.NOW)
    text = status.render_text(doc)
    assert "access denied" in json.dumps(doc) and {s["name"] for s in doc["clusters"][0]["storages"]} == set(ENDPOINTS)
    for where, out in {"json": json.dumps(doc), "text": text}.items():
        assert MARKER not in out, where

    done = ops.obj("ready", "3", destination=URI, size="1MB")
    lines = [ondemand._summary({**done, "kind": "PerconaServerMongoDBBackup"})]
    lines.append(ondemand.failure("Backup db/b1", ops.obj("error", "4", error=ERROR)))
    out = io.StringIO()
    kube = ops.FakeKube([[{"type": "MODIFIED", "object": ops.obj("error", "2", error=ERROR, destination=URI)}]], {})
    ops.follow(kube, out)
    lines.append(out.getvalue())
    assert "minio.example:9000/bucket" in lines[0] and "access denied" in lines[1]
    assert MARKER not in "\n".join(lines)
