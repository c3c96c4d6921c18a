"""Policy reports on the real API server, with the report CRDs as their projects publish them (tests/data/reports):
`lint --cluster --report` writes one report per namespace and keeps it current (fixed and deleted objects lose their
results), the admission webhook records the objects it admits, the server's background scan rewrites the reports,
and `--report-api openreports` writes openreports.io Reports instead."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tools.devcluster import WebhookProcess

from .conftest import Cluster
from .test_admission_e2e import backup, good_world

pytestmark = pytest.mark.e2e

CRDS = Path(__file__).resolve().parents[1] / "data" / "reports"
REPORT = "psmdb-backup-webhook"
IGNORED = {"psmdb-backup-webhook.io/ignore": "true"}  # the webhook never sees it: only lint writes its report


@pytest.fixture(scope="module", autouse=True)
def report_crds(cluster: Cluster) -> None:
    cluster.kubectl("apply", "-f", str(CRDS))
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd", "--all")


def lint_report(cluster: Cluster, ns: str, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "webhook.cli", "lint", "--cluster", "--report", "-n", ns, *args]
    return subprocess.run(
        [*cmd, "--kubeconfig", str(cluster.cp.kubeconfig)], capture_output=True, text=True, timeout=120
    )


def report(cluster: Cluster, ns: str, kind: str = "policyreports.wgpolicyk8s.io") -> dict[str, Any] | None:
    return cluster.get(kind, REPORT, ns)


def subjects(rep: dict[str, Any] | None) -> list[tuple[str, str, str]]:
    """(kind, name, rule) of every result."""
    return sorted(
        (r["resources"][0]["kind"], r["resources"][0]["name"], r["rule"]) for r in (rep or {}).get("results", [])
    )


BAD = ("PerconaServerMongoDBBackup", "bad", "PSB404")


def wait_for(what: str, check: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def test_lint_report_writes_fixes_and_removes_results(cluster: Cluster) -> None:
    ns = cluster.namespace(IGNORED)
    good_world(cluster, ns)
    cluster.apply(backup(ns, name="bad", storageName="gcs"), check=True)
    done = lint_report(cluster, ns)
    assert done.returncode == 1, done.stderr  # the findings still decide the exit code
    rep = report(cluster, ns)
    assert rep is not None, done.stderr
    assert BAD in subjects(rep)
    [hit] = [r for r in rep["results"] if r["rule"] == "PSB404"]
    uid = cluster.get("perconaservermongodbbackup", "bad", ns)["metadata"]["uid"]
    assert hit["resources"] == [
        {"apiVersion": "psmdb.percona.com/v1", "kind": BAD[0], "name": "bad", "namespace": ns, "uid": uid}
    ]
    assert (hit["result"], hit["severity"], hit["policy"], hit["source"]) == ("fail", "high", REPORT, REPORT)
    assert hit["message"].startswith('spec.storageName: storage "gcs" is not defined') and "(fix: " in hit["message"]
    assert rep["summary"]["fail"] == sum(r["result"] == "fail" for r in rep["results"]) >= 1

    assert lint_report(cluster, ns).returncode == 1  # unchanged: nothing is rewritten
    assert report(cluster, ns)["metadata"]["resourceVersion"] == rep["metadata"]["resourceVersion"]

    cluster.apply(backup(ns, name="bad"), check=True)  # fixed: storageName s3-us-west exists
    assert lint_report(cluster, ns).returncode == 0
    assert BAD not in subjects(report(cluster, ns))

    cluster.apply(backup(ns, name="bad", storageName="gcs"), check=True)  # broken again, then deleted
    lint_report(cluster, ns)
    assert BAD in subjects(report(cluster, ns))
    cluster.kubectl("delete", "perconaservermongodbbackup", "bad", "-n", ns)
    lint_report(cluster, ns)
    assert not [s for s in subjects(report(cluster, ns)) if s[1] == "bad"]


def test_lint_report_openreports_writes_a_report(cluster: Cluster) -> None:
    ns = cluster.namespace(IGNORED)
    good_world(cluster, ns)
    cluster.apply(backup(ns, name="bad", storageName="gcs"), check=True)
    done = lint_report(cluster, ns, "--report-api", "openreports")
    assert done.returncode == 1, done.stderr
    rep = report(cluster, ns, "reports.openreports.io")
    assert rep is not None and rep["apiVersion"] == "openreports.io/v1alpha1" and rep["source"] == REPORT
    assert BAD in subjects(rep)
    assert report(cluster, ns) is None  # no PolicyReport was written


def test_lint_report_without_the_crd_is_a_clear_usage_error(cluster: Cluster) -> None:
    """Without the kind's CRD the run is a usage error (exit 2) whose message names the kind and what to do. (The
    CRDs are installed again for the other tests.)"""
    cluster.kubectl("delete", "crd", "clusterreports.openreports.io", "reports.openreports.io")
    try:
        done = lint_report(cluster, "default", "--report-api", "openreports")
        assert done.returncode == 2
        assert "does not serve Report (openreports.io/v1alpha1): install its CRD" in done.stderr
    finally:
        cluster.kubectl("apply", "-f", str(CRDS))
        cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd", "--all")


def test_admission_records_admitted_objects(cluster: Cluster) -> None:
    ns = cluster.namespace({"psmdb-backup-webhook.io/enforcement": "audit"})  # the bad backup is admitted
    good_world(cluster, ns)
    cluster.apply(backup(ns, name="bad", storageName="gcs"), check=True)
    wait_for("the admitted backup's result", lambda: BAD in subjects(report(cluster, ns)))
    cluster.apply(backup(ns, name="bad"), check=True)  # fixed by an update: its results go
    wait_for("the fixed backup's result to go", lambda: BAD not in subjects(report(cluster, ns)))


def test_the_servers_background_scan_writes_and_rewrites_reports(cluster: Cluster, tmp_path: Path) -> None:
    """A second server (not registered with the API server, same ServiceAccount and RBAC as the install) whose only
    effect is its scan every second."""
    ns = cluster.namespace(IGNORED)
    good_world(cluster, ns)
    cluster.apply(backup(ns, name="bad", storageName="gcs"), check=True)
    scanner = WebhookProcess(
        cluster.webhook.tls_dir,
        cluster.webhook.kubeconfig,
        tmp_path / "scanner.log",
        extra_args=["--report-interval", "1"],
    )
    scanner.start()
    try:
        wait_for("the scan's report", lambda: BAD in subjects(report(cluster, ns)))
        cluster.kubectl("delete", "perconaservermongodbbackup", "bad", "-n", ns)
        wait_for("the deleted backup's result to go", lambda: BAD not in subjects(report(cluster, ns)))
        assert not [line for line in scanner.log_lines() if line.get("level") in ("warning", "error")], (
            scanner.log_tail()
        )
    finally:
        scanner.stop()
