"""`psmdb-backup lint --cluster` audits objects already stored, with live lookups."""

import json
import subprocess
import sys

import pytest

from .conftest import Cluster
from .test_admission_e2e import backup, good_world, schedule

pytestmark = pytest.mark.e2e


def lint(cluster: Cluster, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "webhook.cli", "lint", "--cluster", "--kubeconfig", str(cluster.cp.kubeconfig), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_lint_cluster_finds_what_predates_the_webhook(cluster: Cluster) -> None:
    ns = cluster.namespace({"psmdb-backup-webhook.io/enforcement": "audit"})  # let a bad object in
    good_world(cluster, ns)
    assert cluster.apply(backup(ns, name="stored-bad", storageName="gcs")).returncode == 0
    result = lint(cluster, "-n", ns, "-f", "json")
    assert result.returncode == 1, result.stderr
    findings = json.loads(result.stdout)["findings"]
    hit = next(f for f in findings if f["rule"] == "PSB404")
    assert hit["file"] == f"{ns}/PerconaServerMongoDBBackup/stored-bad" and hit["path"] == "spec.storageName"
    assert json.loads(result.stdout)["summary"]["checked"] == 2  # the cluster and the backup
    everywhere = lint(cluster, "-A", "-f", "json")
    assert any(f["file"] == hit["file"] for f in json.loads(everywhere.stdout)["findings"])
    text = lint(cluster, "-n", ns, "--color", "never")
    assert f"{ns}/PerconaServerMongoDBBackup/stored-bad error PSB404 spec.storageName" in text.stdout


def test_lint_cluster_checks_stored_schedules(cluster: Cluster) -> None:
    ns = cluster.namespace({"psmdb-backup-webhook.io/enforcement": "audit"})
    good_world(cluster, ns)
    assert cluster.apply(schedule(ns, name="stored-sunday", schedule="0 2 * * 7")).returncode == 0
    result = lint(cluster, "-n", ns, "-f", "json")
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    hit = next(f for f in report["findings"] if f["rule"] == "PSB601")
    assert hit["file"] == f"{ns}/PerconaServerMongoDBBackupSchedule/stored-sunday" and hit["path"] == "spec.schedule"
    assert report["summary"]["checked"] == 2  # the cluster and the schedule


def test_lint_cluster_without_credentials_is_a_usage_error(tmp_path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "webhook.cli", "lint", "--cluster", "--kubeconfig", str(tmp_path / "none")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "lint --cluster" in result.stderr
