"""The watchdog's passes (webhook/controller/watchdog_run.py) over the informer caches with a recording API: one Event
per new finding, repairs only when opted in (with preconditions), SLO gauges served only while leading, when a task
is first judged, threshold flags, and PBM reads feeding the detections."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from webhook.controller import watchdog as wd
from webhook.controller.kubeapi import KubeError
from webhook.controller.kubeexec import ExecResult, PodRef
from webhook.controller.manager import Controller, Options
from webhook.controller.runtime import Ctx
from webhook.controller.watchdog_run import LEASE, PbmViews, Settings, Watchdog, thresholds
from webhook.policy import kinds

NOW = datetime(2026, 3, 1, 12, 0, 30, tzinfo=UTC)
NS = "db"
UID = "0b6f3a3e-8d2c-4d7e-9a51-1f2e3d4c5b6a"


def stamp(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


class FakeKube:
    """Records writes; `conflict` makes the next write fail with 409."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, Any]] = []
        self.conflict = False

    def _write(self, method: str, path: str, body: Any) -> dict[str, Any]:
        self.calls.append((method, path, body))
        if self.conflict and "/events" not in path:
            raise KubeError(409, "Conflict", "the object has been modified")
        name = path.removesuffix("/status").rsplit("/", 1)[-1]
        return {**(body or {}), "metadata": {**(body or {}).get("metadata", {}), "namespace": NS, "name": name}}

    async def create(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return self._write("POST", path, dict(body))

    async def patch(self, path: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        return self._write("PATCH", path, dict(patch))

    async def delete(self, path: str, *, resource_version: str | None = None) -> bool:
        self._write("DELETE", path, {"resourceVersion": resource_version})
        return True

    def events(self) -> list[tuple[str, str]]:
        return [(b["involvedObject"]["name"], b["reason"]) for m, p, b in self.calls if p.endswith("/events")]

    def writes(self) -> list[tuple[str, str, Any]]:
        return [c for c in self.calls if not c[1].endswith("/events")]


def cluster(name: str = "c1", *, annotations: dict[str, str] | None = None, tasks: Sequence[Any] = ()) -> dict:
    return {
        "kind": kinds.CLUSTER,
        "metadata": {
            "namespace": NS,
            "name": name,
            "uid": "c-uid",
            "creationTimestamp": stamp(NOW - timedelta(days=3)),
            "annotations": annotations or {},
        },
        "spec": {"backup": {"enabled": True, "tasks": list(tasks)}},
    }


def backup(name: str, state: str, *, created: datetime, rv: str = "7", **status: Any) -> dict:
    return {
        "kind": kinds.BACKUP,
        "metadata": {
            "namespace": NS,
            "name": name,
            "uid": UID,
            "resourceVersion": rv,
            "creationTimestamp": stamp(created),
            "labels": {wd.ANCESTOR_LABEL: status.pop("ancestor", "")},
        },
        "spec": {"clusterName": "c1", "storageName": "s3"},
        "status": {"state": state, **status},
    }


def stale_lease(holder: str = f"gone-{UID}") -> dict:
    return {
        "kind": "Lease",
        "metadata": {"namespace": NS, "name": "psmdb-c1-backup-lock", "resourceVersion": "42"},
        "spec": {"holderIdentity": holder, "acquireTime": stamp(NOW - timedelta(hours=1))},
    }


def make(*, repair: bool = False, pbm: PbmViews | None = None, **overrides: float) -> tuple[Watchdog, FakeKube]:
    kube = FakeKube()
    clock = {"now": NOW}
    ctx = Ctx(kube=kube, clock=lambda: clock["now"])  # type: ignore[arg-type]
    controller = Controller(Options(), ctx)
    dog = Watchdog(controller, Settings(interval=1, repair=repair, thresholds=thresholds(overrides)), pbm)
    dog.clock = clock  # type: ignore[attr-defined]
    return dog, kube


def put(dog: Watchdog, *objs: dict) -> None:
    for o in objs:
        dog.ctx.store_for(LEASE if o["kind"] == "Lease" else o["kind"])[(NS, o["metadata"]["name"])] = o


def test_a_finding_is_evented_and_logged_once_and_again_only_after_it_went_away(caplog) -> None:
    dog, kube = make()
    put(dog, cluster(), stale_lease())
    asyncio.run(dog.run_pass())
    asyncio.run(dog.run_pass())
    assert kube.events() == [("psmdb-c1-backup-lock", "StaleLock")]
    assert sum("WD006" in r.getMessage() for r in caplog.records) == 1
    del dog.ctx.store_for(LEASE)[(NS, "psmdb-c1-backup-lock")]
    asyncio.run(dog.run_pass())
    put(dog, stale_lease())
    asyncio.run(dog.run_pass())
    assert kube.events() == [("psmdb-c1-backup-lock", "StaleLock")] * 2
    assert kube.writes() == []  # never repaired without --repair or the annotation


def test_repairs_only_when_opted_in_by_annotation_with_a_resource_version_precondition() -> None:
    dog, kube = make()
    put(dog, cluster(annotations={wd.REPAIR_ANNOTATION: "true"}), stale_lease())
    asyncio.run(dog.run_pass())
    assert kube.writes() == [
        ("DELETE", "/apis/coordination.k8s.io/v1/namespaces/db/leases/psmdb-c1-backup-lock", {"resourceVersion": "42"})
    ]
    assert ("c1", "WatchdogRepaired") in kube.events()  # the deleted Lease cannot carry it: its cluster does
    assert dog.ctx.metrics.watchdog_repairs.labels("release-lease", "done")._value.get() == 1


def test_repair_flag_marks_a_stuck_backup_error_saying_why_and_a_conflict_changes_nothing() -> None:
    dog, kube = make(repair=True)
    put(
        dog,
        cluster(),
        backup("b1", "running", created=NOW - timedelta(hours=8), rv="99", pbmName="2026-03-01T04:00:00Z"),
    )
    kube.conflict = True
    asyncio.run(dog.run_pass())
    assert dog.ctx.backups[(NS, "b1")]["status"]["state"] == "running"
    assert dog.ctx.metrics.watchdog_repairs.labels("mark-backup-error", "conflict")._value.get() == 1
    kube.conflict = False
    asyncio.run(dog.run_pass())
    method, path, body = kube.writes()[-1]
    assert (method, path) == ("PATCH", "/apis/psmdb.percona.com/v1/namespaces/db/perconaservermongodbbackups/b1/status")
    assert body["metadata"] == {"resourceVersion": "99"}
    assert body["status"]["state"] == "error"
    assert "no progress in state 'running'" in body["status"]["error"]


def test_without_repair_a_stuck_backup_is_only_reported() -> None:
    dog, kube = make()
    put(dog, cluster(), backup("b1", "running", created=NOW - timedelta(hours=8)))
    asyncio.run(dog.run_pass())
    assert kube.writes() == [] and kube.events() == [("b1", "BackupStuck")]


def test_a_task_added_after_the_first_pass_is_judged_from_when_it_was_seen() -> None:
    hourly = {"name": "hourly", "enabled": True, "schedule": "0 * * * *", "storageName": "s3"}
    dog, kube = make()
    put(dog, cluster())
    asyncio.run(dog.run_pass())
    put(dog, cluster(tasks=[hourly]))  # the cluster is 3 days old: yesterday's slots are not this task's
    asyncio.run(dog.run_pass())
    assert kube.events() == []
    dog.clock["now"] = NOW + timedelta(hours=1, minutes=10)  # type: ignore[attr-defined]
    asyncio.run(dog.run_pass())
    assert kube.events() == [("c1", "MissedSlots")]


def test_at_the_first_pass_a_task_with_backups_is_judged_from_its_oldest_backup() -> None:
    hourly = {"name": "hourly", "enabled": True, "schedule": "0 * * * *", "storageName": "s3"}
    dog, kube = make()
    done = {"completed": stamp(NOW - timedelta(hours=3)), "ancestor": "hourly"}
    put(dog, cluster(tasks=[hourly]), backup("b0", "ready", created=NOW - timedelta(hours=3, seconds=-5), **done))
    asyncio.run(dog.run_pass())
    assert [f for f in kube.events() if f[1] == "MissedSlots"] == [("c1", "MissedSlots")]


def test_slo_gauges_are_served_only_while_leading() -> None:
    async def scenario() -> tuple[str, str]:
        dog, _ = make()
        put(dog, cluster(), backup("b0", "ready", created=NOW - timedelta(hours=1), completed=stamp(NOW)))
        await dog.run_pass()
        async with TestClient(TestServer(dog.controller.http_app())) as client:
            standby = await (await client.get("/metrics")).text()
            dog.controller.acting = True
            leading = await (await client.get("/metrics")).text()
        return standby, leading

    standby, leading = asyncio.run(scenario())
    sample = 'psmdb_backup_last_success_timestamp_seconds{ancestor="",cluster="c1",namespace="db",storage="s3"}'
    assert sample in leading and "psmdb_backup_last_success" not in standby
    assert "psmdb_backup_controller_watchdog_last_pass_timestamp_seconds" in standby


def test_threshold_overrides_and_unknown_names() -> None:
    th = thresholds({"lookback": 60, "backup-new": 5, "restore-running": 7})
    assert th.lookback == timedelta(seconds=60)
    assert th.backup_stuck[""] == timedelta(seconds=5) and th.backup_stuck["waiting"] == timedelta(hours=2)
    assert th.restore_stuck["running"] == timedelta(seconds=7)
    with pytest.raises(ValueError, match="unknown watchdog threshold 'backup-ready'"):
        thresholds({"backup-ready": 1})


class FakeExec:
    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers
        self.argv: list[tuple[PodRef, str, tuple[str, ...]]] = []

    async def __call__(self, pod: PodRef, container: str, argv: Sequence[str], stdin: bytes | None = None) -> Any:
        self.argv.append((pod, container, tuple(argv)))
        answer = self.answers.get(argv[1])
        if answer is None:
            return ExecResult(b"", b"Error: get backup meta: not found\n", False, 1, "exit 1")
        return ExecResult(json.dumps(answer).encode(), b"", True, 0)


def test_pbm_reads_feed_a_canceled_backup_left_running_and_run_only_reads() -> None:
    pbm_name = "2026-03-01T11:00:00Z"
    status = {"backups": {"snapshot": [{"name": pbm_name, "status": "canceled"}]}, "running": {}}
    pitr_end = int((NOW - timedelta(minutes=1)).timestamp())
    execer = FakeExec({"status": status, "list": {"pitr": {"ranges": [{"range": {"start": 1, "end": pitr_end}}]}}})
    c = cluster()
    c["spec"]["backup"]["pitr"] = {"enabled": True}
    c["spec"]["replsets"] = [{"name": "cfg0"}]
    views = PbmViews(execer, {})
    dog, kube = make(pbm=views)
    views.clusters = dog.ctx.clusters
    b = backup("b1", "running", created=NOW - timedelta(hours=1), pbmName=pbm_name)
    b["status"]["lastTransition"] = stamp(NOW - timedelta(minutes=30))
    put(dog, c, b)
    asyncio.run(dog.run_pass())
    assert ("b1", "PBMDisagrees") in kube.events()
    assert {a[2][:2] for a in execer.argv} == {("pbm", "status"), ("pbm", "list")}
    assert {(a[0], a[1]) for a in execer.argv} == {(PodRef(NS, "c1-cfg0-0"), "backup-agent")}
    samples = [s for s in dog.slo._collector._samples if s.metric.startswith("psmdb_backup_pitr_latest")]
    assert [s.value for s in samples] == [float(pitr_end)]


def test_pbm_is_read_only_where_it_can_change_a_finding_or_a_gauge() -> None:
    execer = FakeExec({"status": {"backups": {"snapshot": []}, "running": {}}})
    views = PbmViews(execer, {})
    dog, _ = make(pbm=views)
    views.clusters = dog.ctx.clusters
    put(dog, cluster(), backup("b0", "ready", created=NOW - timedelta(hours=1), completed=stamp(NOW)))
    asyncio.run(dog.run_pass())
    assert execer.argv == []  # nothing running, no PITR: no exec
    put(dog, backup("b1", "running", created=NOW - timedelta(minutes=5), pbmName="2026-03-01T11:55:00Z"))
    asyncio.run(dog.run_pass())
    assert [a[2][1] for a in execer.argv] == ["status", "describe-backup"]  # not listed by status: asked by name
