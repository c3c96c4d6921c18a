"""`psmdb-backup schedules import|export` (webhook/controller/taskimport_run.py) against an in-memory API: the order of
the writes, --dry-run writing nothing, and what a failure in between says. The real API server runs it in
tests/e2e/test_schedules_e2e.py."""

from __future__ import annotations

import asyncio
import copy
import io
import json
from collections.abc import Mapping
from typing import Any

import yaml

from webhook.controller.taskimport_run import Out, run_export, run_import
from webhook.kube import KubeError

NS = "psmdb"
CLUSTER_PATH = f"/apis/psmdb.percona.com/v1/namespaces/{NS}/perconaservermongodbs/c1"
SCHEDULES = f"/apis/psmdb-backup-webhook.io/v1alpha1/namespaces/{NS}/perconaservermongodbbackupschedules"
TASKS = [
    {"name": "daily", "enabled": True, "schedule": "0 1 * * *", "storageName": "s3", "keep": 3},
    {"name": "off", "enabled": False, "schedule": "0 2 * * *", "storageName": "s3"},
    {"name": "hourly", "enabled": True, "schedule": "0 * * * *", "storageName": "s3", "type": "physical"},
]


class FakeKube:
    def __init__(self) -> None:
        self.cluster = {
            "metadata": {"name": "c1", "namespace": NS},
            "spec": {"crVersion": "1.20.0", "backup": {"enabled": True, "tasks": copy.deepcopy(TASKS)}},
        }
        self.schedules: dict[str, dict[str, Any]] = {}
        self.writes: list[str] = []
        self.fail_patch: KubeError | None = None
        self.fail_create: str | None = None
        self.fail_resume: str | None = None

    async def get(self, path: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.cluster) if path == CLUSTER_PATH else None

    async def request(self, method: str, path: str, body: Any = None, **kw: Any) -> dict[str, Any]:
        if method == "GET" and path == SCHEDULES:
            return {"items": list(self.schedules.values())}
        assert method == "PATCH" and path == CLUSTER_PATH and kw["content_type"] == "application/json-patch+json"
        self.writes.append("patch")
        if self.fail_patch:
            raise self.fail_patch
        tasks = self.cluster["spec"]["backup"]["tasks"]
        for op in body:
            parts = op["path"].split("/")[4:]
            if op["op"] == "test":
                assert tasks[int(parts[0])] == op["value"]
            elif op["op"] == "replace" and len(parts) == 2:
                tasks[int(parts[0])][parts[1]] = op["value"]
            elif op["op"] == "replace":
                tasks[int(parts[0])] = op["value"]
            else:
                tasks.append(op["value"])
        return self.cluster

    async def create(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        name = body["metadata"]["name"]
        self.writes.append(f"create {name}")
        # what the webhook does (PSB606): an active schedule named like an enabled task is refused
        task = next((t for t in self.cluster["spec"]["backup"]["tasks"] if t["name"] == name), None)
        if task and task["enabled"] and body["spec"].get("suspend") is not True:
            raise KubeError(422, "Unprocessable Entity", "denied the request: PSB606")
        if name == self.fail_create:
            raise KubeError(403, "Forbidden", "denied by the webhook: PSB606")
        self.schedules[name] = copy.deepcopy(dict(body))
        return copy.deepcopy(dict(body))

    async def patch(self, path: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        """A merge patch of a schedule (the import's resume)."""
        name = path.rsplit("/", 1)[1]
        self.writes.append(f"resume {name}")
        if name == self.fail_resume:
            raise KubeError(500, "Internal Server Error", "etcd is away")
        spec = self.schedules[name]["spec"]
        for k, v in patch["spec"].items():
            if v is None:
                spec.pop(k, None)
            else:
                spec[k] = v
        return copy.deepcopy(self.schedules[name])

    async def delete(self, path: str, **kw: Any) -> bool:
        name = path.rsplit("/", 1)[1]
        self.writes.append(f"delete {name}")
        return self.schedules.pop(name, None) is not None


def run(fn: Any, kube: FakeKube, output: str = "text", dry_run: bool = False) -> tuple[int, str, str]:
    out = Out(io.StringIO(), io.StringIO(), output)
    code = asyncio.run(fn(kube, NS, "c1", dry_run=dry_run, out=out))
    return code, out.stdout.getvalue(), out.stderr.getvalue()  # type: ignore[attr-defined]


def test_import_creates_the_schedules_suspended_disables_the_tasks_resumes_and_export_restores_them() -> None:
    kube = FakeKube()
    code, stdout, stderr = run(run_import, kube)
    assert code == 0, stderr
    assert kube.writes == ["create daily", "create hourly", "patch", "resume daily", "resume hourly"]
    assert [t["enabled"] for t in kube.cluster["spec"]["backup"]["tasks"]] == [False, False, False]
    assert kube.schedules["daily"]["spec"]["retention"] == {"count": 3}
    assert all("suspend" not in s["spec"] for s in kube.schedules.values())
    assert "disabled spec.backup.tasks[2] of cluster c1 (now schedule hourly, resumed)" in stdout
    kube.writes.clear()
    code, stdout, stderr = run(run_export, kube)
    assert code == 0
    assert kube.writes == ["patch", "delete daily", "delete hourly"]  # tasks back first, then the schedules go
    assert kube.cluster["spec"]["backup"]["tasks"] == TASKS and kube.schedules == {}
    assert "concurrencyPolicy Forbid" in stderr  # the warning of a field without equivalent


def test_dry_run_writes_nothing_and_prints_the_schedules_and_the_patch() -> None:
    kube = FakeKube()
    code, stdout, stderr = run(run_import, kube, output="yaml", dry_run=True)
    assert code == 0 and kube.writes == []
    assert [d["metadata"]["name"] for d in yaml.safe_load_all(stdout)] == ["daily", "hourly"]
    assert "would create schedule psmdb/daily and disable spec.backup.tasks[0]" in stderr
    patch = json.loads(stderr.split("cluster patch: ", 1)[1].splitlines()[0])
    assert [op["op"] for op in patch] == ["test", "replace", "test", "replace"]


def test_a_failed_patch_deletes_the_suspended_schedules_again() -> None:
    kube = FakeKube()
    kube.fail_patch = KubeError(422, "Invalid", "test operation failed")
    code, _, stderr = run(run_import, kube)
    assert code == 1 and kube.schedules == {}
    assert kube.writes == ["create daily", "create hourly", "patch", "delete daily", "delete hourly"]
    assert [t["enabled"] for t in kube.cluster["spec"]["backup"]["tasks"]] == [True, False, True]
    assert "the task list changed since it was read" in stderr and "Nothing changed" in stderr


def test_a_resume_refused_by_a_stale_webhook_cache_is_retried(monkeypatch: Any) -> None:
    monkeypatch.setattr("webhook.controller.taskimport_run.RESUME_PAUSE", 0.0)
    kube = FakeKube()
    refusals = {"daily": 2}
    original = kube.patch

    async def patch(path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        name = path.rsplit("/", 1)[1]
        if refusals.get(name):
            refusals[name] -= 1
            kube.writes.append(f"refused {name}")
            raise KubeError(422, "Unprocessable Entity", "denied the request: PSB606 metadata.name: ...")
        return await original(path, body)

    kube.patch = patch  # type: ignore[method-assign]
    code, _, stderr = run(run_import, kube)
    assert code == 0, stderr
    assert kube.writes[3:] == ["refused daily", "refused daily", "resume daily", "resume hourly"]


def test_a_failed_resume_says_how_to_finish() -> None:
    kube = FakeKube()
    kube.fail_resume = "hourly"
    code, _, stderr = run(run_import, kube)
    assert code == 1 and kube.schedules["hourly"]["spec"]["suspend"] is True
    assert "the schedules hourly are still suspended" in stderr
    assert """kubectl -n psmdb patch psmdb-schedule hourly --type=merge -p '{"spec":{"suspend":false}}'""" in stderr


def test_a_refused_create_takes_back_the_schedules_created_before_and_disables_nothing() -> None:
    kube = FakeKube()
    kube.fail_create = "hourly"
    code, _, stderr = run(run_import, kube)
    assert code == 1 and kube.schedules == {}
    assert kube.writes == ["create daily", "create hourly", "delete daily"]
    assert "No task was disabled" in stderr and "PSB606" in stderr and "Nothing changed." in stderr


def test_a_missing_cluster_is_an_error() -> None:
    kube = FakeKube()
    kube.cluster["metadata"]["name"] = "other"
    out = Out(io.StringIO(), io.StringIO(), "text")
    code = asyncio.run(run_export(kube, NS, "nope", dry_run=False, out=out))  # type: ignore[arg-type]
    assert code == 1 and "no PerconaServerMongoDB 'nope' in namespace 'psmdb'" in out.stderr.getvalue()  # type: ignore[attr-defined]
