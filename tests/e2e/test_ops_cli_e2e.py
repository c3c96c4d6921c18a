"""`psmdb-backup status`, `backup` and `restore` against a real kube-apiserver, with the operator stand-in playing the
Percona operator over the PBM simulator and moto S3 (tools/ctlcluster.py). The commands run as a user would run them:
the console entry point in a subprocess with a kubeconfig.

The tests run in file order on one cluster.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tools import ctlcluster
from tools.ctlcluster import CtlCluster
from webhook import cron

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

ROOT = Path(__file__).resolve().parents[2]
BACKUP, RESTORE = "PerconaServerMongoDBBackup", "PerconaServerMongoDBRestore"
SCHEDULE = "PerconaServerMongoDBBackupSchedule"
CLUSTER = "ops"


@pytest.fixture(scope="module")
def ctl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CtlCluster]:
    c = ctlcluster.start(tmp_path_factory.mktemp("ops-cli"), [CLUSTER], azurite=False, with_controllers=False)
    try:
        c.standin("--poll-interval", "0.5")
        task = {"name": "nightly", "enabled": True, "schedule": "0 3 * * *", "storageName": "s3"}
        c.add_cluster(CLUSTER, tasks=[task])
        c.apply(
            {
                "apiVersion": "psmdb-backup-webhook.io/v1alpha1",
                "kind": SCHEDULE,
                "metadata": {"name": "ops-hourly", "namespace": c.namespace},
                "spec": {
                    "clusterName": CLUSTER,
                    "schedule": "0 * * * *",
                    "storageName": "s3",
                    "retention": {"count": 3},
                },
            }
        )
        yield c
    finally:
        for proc in c.standins:
            print(f"--- {proc.name}\n{proc.log_tail(40)}")
        ctlcluster.stop(c)


def cli(ctl: CtlCluster, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    return subprocess.run(
        [sys.executable, "-m", "webhook.cli", *args, "--kubeconfig", str(ctl.cp.kubeconfig)],
        cwd=ROOT,
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def status_json(ctl: CtlCluster, cluster: str = CLUSTER) -> dict[str, Any]:
    r = cli(ctl, "status", cluster, "-n", ctl.namespace, "-o", "json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert [c["name"] for c in doc["clusters"]] == [cluster]
    return doc["clusters"][0]


def backups_of(ctl: CtlCluster) -> list[str]:
    return sorted(b["metadata"]["name"] for b in ctl.list(BACKUP) if b["spec"]["clusterName"] == CLUSTER)


def test_status_json_lists_storages_the_schedule_and_the_task_with_next_runs(ctl: CtlCluster) -> None:
    before = datetime.now(UTC)
    c = status_json(ctl)
    assert c["namespace"] == ctl.namespace and c["state"] == "ready" and c["backupEnabled"] is True
    assert c["storages"] == [{"name": "s3", "type": "s3", "main": True, "location": f"s3://{ctl.bucket}/{CLUSTER}"}]
    rows = {(s["source"], s["name"]): s for s in c["schedules"]}
    assert set(rows) == {("schedule", "ops-hourly"), ("task", "nightly")}
    for row, expr in ((rows[("schedule", "ops-hourly")], "0 * * * *"), (rows[("task", "nightly")], "0 3 * * *")):
        assert row["schedule"] == expr and row["active"] is True and row["storage"] == "s3"
        assert row["lastRun"] is None and row["lastSuccess"] is None and row["problem"] == ""
        # the next slot in the operator's cron dialect, after the moment the command ran
        expected = cron.parse(expr).next(before)
        assert row["nextRun"] == expected.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert c["running"] == [] and c["lock"] is None and c["backups"] == [] and c["findings"] == []
    assert c["pitr"] == {"enabled": False, "from": None, "to": None}


def test_backup_wait_exits_0_when_ready_and_the_files_are_in_s3(ctl: CtlCluster) -> None:
    r = cli(ctl, "backup", CLUSTER, "-n", ctl.namespace, "--wait", "--timeout", "60")
    assert r.returncode == 0, r.stdout + r.stderr
    made = [b for b in ctl.list(BACKUP) if b["spec"]["clusterName"] == CLUSTER]
    assert len(made) == 1
    b = made[0]
    name, pbm = b["metadata"]["name"], b["status"]["pbmName"]
    assert name.startswith(f"{CLUSTER}-backup-") and b["spec"]["storageName"] == "s3"  # the main storage
    assert b["status"]["state"] == "ready" and "percona.com/delete-backup" in b["metadata"]["finalizers"]
    assert f"{CLUSTER}/{pbm}.pbm.json" in ctl.s3_keys(f"{CLUSTER}/{pbm}")
    # not a terminal: plain lines per state, then the summary
    assert f"Backup {ctl.namespace}/{name} created (storage s3" in r.stdout
    assert f"Backup {ctl.namespace}/{name}: ready" in r.stdout
    assert f"Backup {ctl.namespace}/{name} is ready (storage s3, type logical, size " in r.stdout
    assert "\r" not in r.stdout and "\x1b[" not in r.stdout
    # status now shows it, newest first, as the last success of nobody's schedule
    c = status_json(ctl)
    assert [(x["name"], x["state"], x["storage"], x["ancestor"]) for x in c["backups"]] == [(name, "ready", "s3", "")]
    assert c["backups"][0]["size"] == b["status"]["size"] and c["backups"][0]["completed"]


def test_text_status_is_aligned_and_has_no_colour_off_a_terminal(ctl: CtlCluster) -> None:
    r = cli(ctl, "status", "-n", ctl.namespace)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "\x1b[" not in out
    assert f"Cluster {ctl.namespace}/{CLUSTER}  (ready, backups enabled)" in out
    lines = out.splitlines()
    header = next(line for line in lines if line.strip().startswith("NAME") and "LOCATION" in line)
    s3 = next(line for line in lines if line.strip().startswith("s3 ") and "s3://" in line)
    assert header.index("LOCATION") == s3.index("s3://")  # columns line up
    head = next(line for line in lines if "LAST SUCCESS" in line)
    hourly = next(line for line in lines if line.strip().startswith("ops-hourly"))
    assert hourly.index("schedule") == head.index("SOURCE")
    assert "Lock: free" in out and "PITR: off" in out and "Findings: none" in out


def test_a_failing_backup_exits_1_with_the_operators_message(ctl: CtlCluster) -> None:
    state = ctl.sim_state / ctl.namespace / CLUSTER
    (state / "fail").write_text("backup\n")
    (state / "fail-message").write_text("simulated: storage quota exceeded")
    try:
        r = cli(ctl, "backup", CLUSTER, "-n", ctl.namespace, "--wait", "--timeout", "60")
    finally:
        (state / "fail").unlink()
        (state / "fail-message").unlink()
    assert r.returncode == 1, r.stdout + r.stderr
    assert "failed: " in r.stderr and "simulated: storage quota exceeded" in r.stderr
    failed = [b for b in ctl.list(BACKUP) if b["spec"]["clusterName"] == CLUSTER and b["status"]["state"] == "error"]
    assert len(failed) == 1
    # the watchdog's verdict on it shows in status (a failed on-demand Backup is no slot, so no WD002 here) and the
    # Backup is listed with its error
    c = status_json(ctl)
    row = next(x for x in c["backups"] if x["name"] == failed[0]["metadata"]["name"])
    assert row["state"] == "error" and "storage quota exceeded" in row["error"]


def test_restore_from_a_backup_waits_and_exits_0(ctl: CtlCluster) -> None:
    ready = next(b for b in ctl.list(BACKUP) if b["spec"]["clusterName"] == CLUSTER and b["status"]["state"] == "ready")
    name = ready["metadata"]["name"]
    r = cli(ctl, "restore", CLUSTER, "-n", ctl.namespace, "--backup", name, "--wait", "--timeout", "90")
    assert r.returncode == 0, r.stdout + r.stderr
    restores = [x for x in ctl.list(RESTORE) if x["spec"]["clusterName"] == CLUSTER]
    assert len(restores) == 1 and restores[0]["status"]["state"] == "ready"
    assert restores[0]["spec"] == {"clusterName": CLUSTER, "backupName": name}
    assert f"is ready (from backup {name})" in r.stdout


def test_a_bad_request_is_rejected_before_anything_is_created(ctl: CtlCluster) -> None:
    before = backups_of(ctl)
    r = cli(ctl, "backup", CLUSTER, "-n", ctl.namespace, "--storage", "nowhere", "--wait")
    assert r.returncode == 1, r.stdout + r.stderr
    # the admission webhook's own wording: what is rejected, the rule, and the fix
    assert f"{BACKUP} {ctl.namespace}/{CLUSTER}-backup- is rejected by psmdb-backup-webhook" in r.stderr
    assert 'PSB404 spec.storageName: storage "nowhere"' in r.stderr and "(fix: " in r.stderr
    assert "nothing was created" in r.stderr
    assert backups_of(ctl) == before


def test_usage_errors_exit_2_and_missing_clusters_exit_1(ctl: CtlCluster) -> None:
    r = cli(ctl, "restore", CLUSTER, "-n", ctl.namespace, "--pitr", "yesterday")
    assert r.returncode == 2 and "expected 'YYYY-MM-DD HH:MM:SS' (UTC) or latest" in r.stderr
    r = cli(ctl, "restore", CLUSTER, "-n", ctl.namespace)
    assert r.returncode == 2 and "--backup" in r.stderr
    r = cli(ctl, "status", "ghost", "-n", ctl.namespace)
    assert r.returncode == 1 and f"cluster ghost not found in namespace {ctl.namespace}" in r.stderr
    r = cli(ctl, "backup", "ghost", "-n", ctl.namespace)
    assert r.returncode == 1 and f"cluster ghost not found in namespace {ctl.namespace}" in r.stderr


def test_status_shows_a_stale_lock_and_its_watchdog_finding(ctl: CtlCluster) -> None:
    """A Lease left by a Backup that is gone (the stand-in's fault, set by hand here on a cluster with no pods)."""
    ctl.apply(ctl.cluster_manifest("idle"))
    acquired = (datetime.now(UTC) - timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    holder = "gone-backup-0f8fad5b-d9cb-469f-a165-70867728950e"
    ctl.apply(
        {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": "psmdb-idle-backup-lock", "namespace": ctl.namespace},
            "spec": {"holderIdentity": holder, "acquireTime": acquired, "renewTime": acquired},
        }
    )
    c = status_json(ctl, "idle")
    assert c["lock"] == {
        "lease": "psmdb-idle-backup-lock",
        "holder": holder,
        "heldBy": None,
        "since": acquired[:19] + "Z",
    }
    assert [(f["code"], f["reason"], f["severity"], f["object"]) for f in c["findings"]] == [
        ("WD006", "StaleLock", "error", {"kind": "Lease", "name": "psmdb-idle-backup-lock"})
    ]
    every = cli(ctl, "status", "-A", "-o", "json")
    assert every.returncode == 0, every.stderr
    found = {(c["namespace"], c["name"]) for c in json.loads(every.stdout)["clusters"]}
    assert {(ctl.namespace, CLUSTER), (ctl.namespace, "idle")} <= found
    text = cli(ctl, "status", "idle", "-n", ctl.namespace).stdout
    assert "Lock: psmdb-idle-backup-lock held by gone-backup-" in text and "(no such object)" in text
    assert "ERROR   WD006 StaleLock: Lease" in text


def test_ctrl_c_while_waiting_leaves_the_backup_and_says_so(ctl: CtlCluster) -> None:
    before = backups_of(ctl)
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "webhook.cli", "backup", CLUSTER, "-n", ctl.namespace, "--wait"]
        + ["--kubeconfig", str(ctl.cp.kubeconfig)],
        cwd=ROOT,
        env={**env, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    created = proc.stdout.readline()
    assert " created (storage s3" in created, created + proc.communicate(timeout=30)[1]
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, out + err
    name = created.split()[1].split("/")[1]
    assert f"stopped waiting; Backup {ctl.namespace}/{name} is left to the operator" in err
    assert f"kubectl delete perconaservermongodbbackups {name} -n {ctl.namespace}" in err
    assert backups_of(ctl) == sorted([*before, name])
    ctl.wait_state(BACKUP, name, ["ready"])  # the operator finished it anyway
