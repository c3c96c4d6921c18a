"""webhook/reports.py: findings -> policy report objects (the API round trips are tests/e2e/test_reports_e2e.py)."""

from __future__ import annotations

import pytest

from webhook.cli import main
from webhook.findings import Finding, Severity
from webhook.reports import (
    APIS,
    build_report,
    keep_timestamps,
    replace_subject,
    result_of,
    results_of,
    same_results,
)

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
