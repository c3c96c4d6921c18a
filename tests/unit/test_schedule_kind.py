"""The PerconaServerMongoDBBackupSchedule kind in the rule engine: recognised in its own group, linted from files
(with the cluster of the same run) and from the API server, and the helpers its rules share (maxAge, main storage).
The rules' own cases are their bad/good examples (tests/unit/test_rule_examples.py)."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings

from webhook.cli import main
from webhook.kube import KubeError
from webhook.lint import cluster_scan as lint_cluster_module
from webhook.policy import check, kinds
from webhook.policy.common import main_storage
from webhook.policy.schedule import parse_max_age

from .test_robustness import VALUES

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CLUSTER = (EXAMPLES / "good" / "cluster.yaml").read_text()
SCHEDULE = yaml.safe_load((EXAMPLES / "good" / "schedule.yaml").read_text())


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("7d", timedelta(days=7)),
        ("36h", timedelta(hours=36)),
        ("1w3d", timedelta(days=10)),
        ("90m", timedelta(minutes=90)),
        ("1d12h", timedelta(hours=36)),
        ("0d", timedelta()),
        ("7", None),  # a unit is required
        ("7 d", None),
        ("7D", None),
        ("1y", None),  # no years: their length varies
        ("1.5d", None),
        ("", None),
        ("-1d", None),
    ],
)
def test_max_age_grammar(text: str, want: timedelta | None) -> None:
    assert parse_max_age(text) == want


def test_max_age_grammar_is_the_schemas_pattern() -> None:
    schema = json.loads(
        (Path(__file__).resolve().parents[2] / "schemas" / "perconaservermongodbbackupschedule.json").read_text()
    )
    max_age = schema["properties"]["spec"]["properties"]["retention"]["properties"]["maxAge"]
    obj = {**SCHEDULE, "spec": {**SCHEDULE["spec"], "retention": {"count": 3, "maxAge": "7 d"}}}
    [finding] = [f for f in check(obj) if f.code == "PSB001"]
    assert finding.path == ("spec", "retention", "maxAge") and "7d, 36h or 1w3d" in finding.message
    assert max_age["pattern"] == "^([0-9]+[wdhm])+$"


@pytest.mark.parametrize(
    ("storages", "want"),
    [
        ({"a": {"type": "s3"}}, ("a", "")),  # the only storage is main whatever its flag says
        ({"a": {"type": "s3"}, "b": {"type": "s3", "main": True}}, ("b", "")),
        ({}, (None, "it defines no storage")),
        ({"a": {"type": "s3"}, "b": {"type": "s3"}}, (None, "none of its 2 storages (a, b) has main: true")),
        (
            {"a": {"type": "s3", "main": True}, "b": {"type": "s3", "main": True}},
            (None, "several of its storages have main: true (a, b)"),
        ),
    ],
)
def test_main_storage_is_the_operators(storages: dict[str, Any], want: tuple[str | None, str]) -> None:
    assert main_storage({"backup": {"storages": storages}}) == want


def test_the_kind_counts_only_in_its_own_group() -> None:
    assert kinds.is_psmdb_object(SCHEDULE)
    assert not kinds.is_psmdb_object({**SCHEDULE, "apiVersion": "psmdb.percona.com/v1"})
    assert not kinds.is_psmdb_object({**SCHEDULE, "kind": "PerconaServerMongoDBBackupSchedules"})
    assert kinds.api_version(kinds.SCHEDULE) == "psmdb-backup-webhook.io/v1alpha1"


def test_lint_checks_a_schedule_against_the_cluster_of_the_run(tmp_path: Path, capsys) -> None:
    schedule = {**SCHEDULE, "metadata": {**SCHEDULE["metadata"], "name": "daily-s3"}}  # an enabled task's name
    schedule["spec"] = {**SCHEDULE["spec"], "storageName": "s3-eu"}
    (tmp_path / "cluster.yaml").write_text(CLUSTER)
    (tmp_path / "schedule.yaml").write_text(yaml.safe_dump(schedule))
    assert main(["lint", "-f", "json", str(tmp_path)]) == 1
    findings = json.loads(capsys.readouterr().out)["findings"]
    found = {(f["rule"], f["severity"]) for f in findings if f["file"].endswith("schedule.yaml")}
    assert found == {("PSB604", "error"), ("PSB606", "error")}


class FakeReader:
    """KubeReader's list() over a dict; kinds in `absent` answer 404 like a CRD that is not installed."""

    objects: dict[str, list[dict[str, Any]]] = {}
    absent: frozenset[str] = frozenset()

    def __init__(self, api: Any, timeout: float) -> None:
        self.timeout = timeout

    async def list(self, kind: str, namespace: str | None) -> list[dict[str, Any]]:
        if kind in self.absent:
            raise KubeError(404, "Not Found", "")
        return self.objects.get(kind, [])

    async def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return next((o for o in self.objects.get(kind, []) if o["metadata"]["name"] == name), None)


class FakeApi:
    async def close(self) -> None:
        pass


def _lint_cluster(monkeypatch: pytest.MonkeyPatch, objects: dict, absent: frozenset[str]):
    async def api(kubeconfig: str | None, context: str | None) -> FakeApi:
        return FakeApi()

    reader = type("Reader", (FakeReader,), {"objects": objects, "absent": absent})
    monkeypatch.setattr(lint_cluster_module, "new_api_client", api)
    monkeypatch.setattr(lint_cluster_module, "KubeReader", reader)
    return asyncio.run(lint_cluster_module.lint_cluster("kubeconfig", None, None))


def test_lint_cluster_lists_schedules(monkeypatch: pytest.MonkeyPatch) -> None:
    bad = yaml.safe_load((EXAMPLES / "bad" / "schedule.yaml").read_text())
    report = _lint_cluster(monkeypatch, {kinds.CLUSTER: [yaml.safe_load(CLUSTER)], kinds.SCHEDULE: [bad]}, frozenset())
    assert report.checked == 2
    where = "psmdb/PerconaServerMongoDBBackupSchedule/weekly-sunday"
    assert [f.finding.code for f in report.findings if f.file == where] == ["PSB601"]


def test_lint_cluster_without_the_schedule_crd_checks_the_rest(monkeypatch: pytest.MonkeyPatch) -> None:
    report = _lint_cluster(monkeypatch, {kinds.CLUSTER: [yaml.safe_load(CLUSTER)]}, frozenset({kinds.SCHEDULE}))
    assert report.checked == 1
    with pytest.raises(KubeError):  # a missing Percona CRD is still an error
        _lint_cluster(monkeypatch, {}, frozenset({kinds.CLUSTER}))


def test_imported_schedules_pass_the_rules_once_the_tasks_are_disabled() -> None:
    """`schedules import` output meets the schedule kind's schema and rules; before its patch disables the tasks,
    every schedule collides with its task (PSB606), which is why the two go in one change."""
    import jsonpatch

    from webhook.controller.taskimport import import_tasks
    from webhook.policy import DocumentsLookup

    cluster = yaml.safe_load(CLUSTER)
    result = import_tasks(cluster)
    assert result.objects and not result.errors
    patched = jsonpatch.apply_patch(cluster, result.patch)
    for schedule in result.objects:
        schedule["metadata"].setdefault("namespace", "psmdb")
        before = check(schedule, lookup=DocumentsLookup([cluster]))
        assert [f.code for f in before if f.severity.label == "error"] == ["PSB606"], before
        after = check(schedule, lookup=DocumentsLookup([patched]))
        assert [f for f in after if f.severity.label == "error"] == [], after


@settings(max_examples=300, deadline=None)
@given(spec=VALUES, retention=VALUES, name=VALUES)
def test_schedule_rules_never_fail_internally(spec: object, retention: object, name: object) -> None:
    """Whatever a schedule holds, every rule answers (the engine would turn a crash into PSB009)."""
    from webhook.policy.examples import CLUSTER as EXAMPLE_CLUSTER
    from webhook.policy.examples import lookup_for

    body = dict(spec) if isinstance(spec, dict) else {"x": spec}
    body.update(clusterName="my-cluster", retention=retention, schedule=name)
    obj = {**SCHEDULE, "metadata": {"name": name, "namespace": "default"}, "spec": body}
    findings = check(obj, lookup=lookup_for((EXAMPLE_CLUSTER,)))
    assert "PSB009" not in [f.code for f in findings], findings
