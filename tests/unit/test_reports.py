"""webhook/reports.py: findings -> policy report objects (the API round trips are tests/e2e/test_reports_e2e.py)."""

from __future__ import annotations

import asyncio

import pytest
from kubernetes_asyncio.client.exceptions import ApiException

from webhook.cli import main
from webhook.findings import Finding, Severity
from webhook.reporting import ReportsError, ReportWriter
from webhook.reports import (
    APIS,
    build_report,
    keep_timestamps,
    replace_subject,
    result_of,
    results_of,
    same_results,
)
from webhook.scan import Scanned

BACKUP = {
    "apiVersion": "psmdb.percona.com/v1",
    "kind": "PerconaServerMongoDBBackup",
    "metadata": {"name": "nightly", "namespace": "db", "uid": "1234"},
}
CLUSTER = {"apiVersion": "psmdb.percona.com/v1", "kind": "PerconaServerMongoDB", "metadata": {"name": "c1"}}
ERROR = Finding("PSB404", Severity.ERROR, ("spec", "storageName"), 'storage "gcs" is not defined', "define it")
WARNING = Finding("PSB101", Severity.WARNING, (), "no schedule", "add a task")
INFO = Finding("PSB900", Severity.INFO, ("spec",), "a note", "nothing to do")


@pytest.mark.parametrize(
    ("finding", "result", "severity"),
    [(ERROR, "fail", "high"), (WARNING, "warn", "medium"), (INFO, "pass", "info")],
)
def test_severity_maps_to_result_and_report_severity(finding: Finding, result: str, severity: str) -> None:
    r = result_of(BACKUP, finding, 1700000000.7)
    assert (r["result"], r["severity"]) == (result, severity)
    assert (r["policy"], r["source"], r["rule"]) == ("psmdb-backup-webhook", "psmdb-backup-webhook", finding.code)
    assert r["timestamp"] == {"seconds": 1700000000, "nanos": 0}


def test_a_result_names_the_object_and_carries_message_path_and_hint() -> None:
    r = result_of(BACKUP, ERROR, 0)
    assert r["resources"] == [
        {
            "apiVersion": "psmdb.percona.com/v1",
            "kind": "PerconaServerMongoDBBackup",
            "name": "nightly",
            "namespace": "db",
            "uid": "1234",
        }
    ]
    assert r["message"] == 'spec.storageName: storage "gcs" is not defined (fix: define it)'
    assert r["properties"] == {"path": "spec.storageName", "hint": "define it"}
    assert "uid" not in result_of(CLUSTER, WARNING, 0)["resources"][0]  # no uid yet: none invented
    assert "path" not in result_of(CLUSTER, WARNING, 0)["properties"]


def test_credentials_in_a_message_are_stripped() -> None:
    leaky = Finding("PSB1", Severity.ERROR, (), "cannot reach s3://AKIA:secret@minio:9000", "see s3://u:p@h")
    r = result_of(BACKUP, leaky, 0)
    assert "secret" not in r["message"] and ":p@" not in r["properties"]["hint"]
    assert "s3://***@minio:9000" in r["message"]


@pytest.mark.parametrize("api", sorted(APIS))
def test_the_report_of_a_namespace_counts_its_results(api: str) -> None:
    results = results_of(BACKUP, [ERROR, WARNING, INFO], 0) + results_of(CLUSTER, [ERROR], 0)
    report = build_report(APIS[api], "db", results)
    assert (
        report["apiVersion"]
        == {"wgpolicyk8s": "wgpolicyk8s.io/v1alpha2", "openreports": "openreports.io/v1alpha1"}[api]
    )
    assert report["kind"] == {"wgpolicyk8s": "PolicyReport", "openreports": "Report"}[api]
    assert report["metadata"] == {
        "name": "psmdb-backup-webhook",
        "namespace": "db",
        "labels": {"app.kubernetes.io/managed-by": "psmdb-backup-webhook"},
    }
    assert report["summary"] == {"pass": 1, "fail": 2, "warn": 1, "error": 0, "skip": 0}
    assert [r["resources"][0]["kind"] for r in report["results"]] == ["PerconaServerMongoDB"] + 3 * [
        "PerconaServerMongoDBBackup"
    ]
    assert ("source" in report) == (api == "openreports")


def test_an_empty_report_counts_zero() -> None:
    assert build_report(APIS["wgpolicyk8s"], "db", [])["summary"] == dict.fromkeys(
        ("pass", "fail", "warn", "error", "skip"), 0
    )


def test_admission_replaces_only_the_results_of_its_object() -> None:
    old = results_of(BACKUP, [ERROR, WARNING], 0) + results_of(CLUSTER, [ERROR], 0)
    fixed = replace_subject(old, BACKUP, [])
    assert [r["resources"][0]["name"] for r in fixed] == ["c1"]
    changed = replace_subject(old, BACKUP, results_of(BACKUP, [INFO], 5))
    assert sorted(r["rule"] for r in changed) == ["PSB404", "PSB900"]


def test_a_finding_seen_before_keeps_its_timestamp_and_unchanged_results_are_the_same() -> None:
    old = results_of(BACKUP, [ERROR], 100)
    new = keep_timestamps(results_of(BACKUP, [ERROR, WARNING], 200), old)
    assert {r["rule"]: r["timestamp"]["seconds"] for r in new} == {"PSB404": 100, "PSB101": 200}
    assert same_results(results_of(BACKUP, [ERROR], 300), old)
    assert not same_results(results_of(BACKUP, [WARNING], 100), old)
    assert not same_results([], old)


def test_lint_report_needs_cluster(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lint", "--report", "examples"]) == 2
    assert "--report writes the policy reports of a cluster scan: use it with --cluster" in capsys.readouterr().err


class FakeApi:
    """The few API calls ReportWriter makes, on one in-memory report store; `conflicts` PUTs answer 409 first (another
    replica wrote in between)."""

    def __init__(self, conflicts: int = 0, served: bool = True) -> None:
        self.reports: dict[str, dict] = {}
        self.conflicts, self.served, self.writes, self.version = conflicts, served, 0, 0

    async def call_api(self, path: str, method: str, query_params=(), body=None, **_: object) -> dict:
        api = APIS["wgpolicyk8s"]
        if path == f"/apis/{api.api_version}":
            return {"resources": [{"name": api.plural}] if self.served else []}
        ns = path.split("/namespaces/")[1].split("/")[0] if "/namespaces/" in path else None
        if method == "GET" and path.endswith("/psmdb-backup-webhook"):
            if ns not in self.reports:
                raise ApiException(status=404, reason="Not Found")
            return self.reports[ns]
        if method == "GET":
            return {"items": [r for n, r in self.reports.items() if ns in (None, n)]}
        if method == "PUT" and self.conflicts:
            self.conflicts -= 1
            self.version += 1  # someone else's write
            self.reports[ns]["metadata"]["resourceVersion"] = str(self.version)
            raise ApiException(status=409, reason="Conflict")
        if method == "PUT":
            assert body["metadata"]["resourceVersion"] == self.reports[ns]["metadata"]["resourceVersion"]
        self.version += 1
        self.writes += 1
        self.reports[ns] = {**body, "metadata": {**body["metadata"], "resourceVersion": str(self.version)}}
        return self.reports[ns]


def _scanned(obj: dict, *findings: Finding):
    return Scanned(obj, list(findings))


def _run(coro):
    return asyncio.run(coro)


def test_rewrite_writes_once_and_skips_unchanged_results() -> None:
    api = FakeApi()
    writer = ReportWriter(api, APIS["wgpolicyk8s"], clock=lambda: 100.0)  # type: ignore[arg-type]
    assert _run(
        writer.rewrite(
            [_scanned(BACKUP, ERROR), _scanned({**CLUSTER, "metadata": {"name": "c", "namespace": "x"}})], None
        )
    ) == ["db"]
    assert _run(writer.rewrite([_scanned(BACKUP, ERROR)], None)) == []  # same findings: no write
    assert api.writes == 1
    assert _run(writer.rewrite([_scanned(BACKUP)], None)) == ["db"]  # fixed: the report is emptied, not left
    assert api.reports["db"]["results"] == [] and api.reports["db"]["summary"]["fail"] == 0


def test_a_conflicting_write_is_read_again_and_retried() -> None:
    api = FakeApi()
    writer = ReportWriter(api, APIS["wgpolicyk8s"], clock=lambda: 100.0)  # type: ignore[arg-type]
    _run(writer.record(BACKUP, "db", [ERROR]))
    api.conflicts = 2
    assert _run(writer.record(CLUSTER, "db", [WARNING]))
    assert sorted(r["rule"] for r in api.reports["db"]["results"]) == ["PSB101", "PSB404"]


def test_a_cluster_without_the_report_crd_gets_a_clear_error() -> None:
    writer = ReportWriter(FakeApi(served=False), APIS["wgpolicyk8s"])  # type: ignore[arg-type]
    with pytest.raises(ReportsError, match=r"does not serve PolicyReport \(wgpolicyk8s.io/v1alpha2\): install its CRD"):
        _run(writer.rewrite([], None))
