"""The companion's watchdog against the operator stand-in's faults, on a real kube-apiserver (tools/ctlcluster.py:
kwok pods whose `backup-agent` runs the PBM simulator, moto S3). The stand-in reproduces all four operator faults
(tools/operator_standin/faults.py); the companion runs with read-only PBM reads (and the pods/exec of
manifests/components/pbm-reads), short thresholds and a 1 s pass, without --repair: only clusters annotated
psmdb-backup-webhook.io/watchdog-repair=true are repaired.

One cluster per fault, all started by the fixture so that they progress meanwhile; the tests run in file order and
the last fault's test restarts the stand-in.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tools import ctlcluster
from tools.ctlcluster import MANIFESTS, CtlCluster
from tools.operator_standin.faults import FAULTS
from webhook.controller.watchdog import REPAIR_ANNOTATION

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

BACKUP, RESTORE = "PerconaServerMongoDBBackup", "PerconaServerMongoDBRestore"
CLUSTERS = ["ms", "lk", "cx", "rr"]
FAULT_ARGS = [a for name in sorted(FAULTS) for a in ("--fault", name)]
TASK = {"name": "every15", "enabled": True, "schedule": "@every 15s", "storageName": "s3", "type": "logical"}
THRESHOLDS = ["tolerance=6", "lock-grace=2", "pbm-grace=2", "backup-running=15"]


@pytest.fixture(scope="module")
def ctl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CtlCluster]:
    c = ctlcluster.start(
        tmp_path_factory.mktemp("watchdog"),
        CLUSTERS,
        namespace="wd",
        azurite=False,
        sim_env={"PBM_SIM_BACKUP_SECONDS": "3"},
        # still running when the test deletes (lk), cancels (cx) or restores (rr) them
        cluster_sim_env={c: {"PBM_SIM_BACKUP_SECONDS": s} for c, s in (("lk", "6"), ("cx", "120"), ("rr", "15"))},
    )
    try:
        c.standin("--poll-interval", "0.5", *FAULT_ARGS)
        args = ["--pbm-reads", "--watchdog-interval", "1"]
        args += [a for t in THRESHOLDS for a in ("--watchdog-threshold", t)]
        c.controller("w", *args, extra_rbac=[MANIFESTS / "components" / "pbm-reads" / "rbac.yaml"])
        c.add_cluster("ms", tasks=[TASK])  # its task cron starts now: the first test needs a Backup of it
        for name in CLUSTERS[1:]:
            c.add_cluster(name)
        c.apply([backup(c, "lk-1", "lk"), backup(c, "cx-1", "cx")])  # each waits for its cluster's PBM config
        yield c
    finally:
        for proc in [*c.standins, *c.controllers]:
            print(f"--- {proc.name}\n{proc.log_tail(40)}")
        ctlcluster.stop(c)


def backup(ctl: CtlCluster, name: str, cluster: str) -> dict[str, Any]:
    """No finalizers: deleting it removes it at once, as with any Backup the operator has not finalized yet."""
    return {
        "apiVersion": "psmdb.percona.com/v1",
        "kind": BACKUP,
        "metadata": {"name": name, "namespace": ctl.namespace},
        "spec": {"clusterName": cluster, "storageName": "s3"},
    }


def events(ctl: CtlCluster, name: str) -> list[dict[str, Any]]:
    items = json.loads(
        ctl.kubectl(
            "get", "events", "-n", ctl.namespace, "--field-selector", f"involvedObject.name={name}", "-o", "json"
        ).stdout
    )["items"]
    return sorted(items, key=lambda e: e["metadata"]["creationTimestamp"])


def wait_event(ctl: CtlCluster, name: str, reason: str, timeout: float = 30.0) -> dict[str, Any]:
    return ctl.wait(
        f"Event {reason} on {name}",
        lambda: next((e for e in events(ctl, name) if e["reason"] == reason), None),
        timeout=timeout,
    )


def opt_in(ctl: CtlCluster, cluster: str) -> None:
    ctl.kubectl("annotate", "psmdb", cluster, "-n", ctl.namespace, f"{REPAIR_ANNOTATION}=true")


def metric(ctl: CtlCluster, name: str, **labels: str) -> float | None:
    text = ctl.controllers[0].http("/metrics")
    for line in text.splitlines():
        m = re.match(rf"{name}\{{(.*)\}} (\S+)$", line)
        if m and all(f'{k}="{v}"' in m.group(1) for k, v in labels.items()):
            return float(m.group(2))
    return None


def pbm_backups(ctl: CtlCluster, cluster: str) -> list[dict[str, Any]]:
    return [c for c in ctl.sim_calls(cluster) if c["argv"][:1] == ["backup"] and c.get("exit") == 0]


# --------------------------------------------------------------------------------------------------- faults


def test_a_lease_left_by_a_deleted_backup_is_released_only_in_the_opted_in_cluster(ctl: CtlCluster) -> None:
    """leave-lease-of-deleted-backup: the operator never steals its lock Lease; the next Backup waits for good."""
    opt_in(ctl, "lk")
    ctl.wait_state(BACKUP, "lk-1", ["requested", "running"])
    lease = ctl.get("lease", "psmdb-lk-backup-lock")
    assert lease and lease["spec"]["holderIdentity"].startswith("lk-1-")
    ctl.kubectl("delete", "psmdb-backup", "lk-1", "-n", ctl.namespace, "--wait=false")
    ctl.apply(backup(ctl, "lk-2", "lk"))
    stale = wait_event(ctl, "psmdb-lk-backup-lock", "StaleLock")
    assert "lk-1" in stale["message"] and "no longer exists" in stale["message"], stale["message"]
    repaired = wait_event(ctl, "lk", "WatchdogRepaired")
    assert "deleted the stale lock Lease" in repaired["message"]
    ctl.wait_state(BACKUP, "lk-2", ["requested", "running", "ready"], timeout=60)  # no longer waiting behind it


def test_a_canceled_backup_left_running_is_found_by_pbm_reads_and_repaired_only_after_opt_in(ctl: CtlCluster) -> None:
    """canceled-left-running: PBM says canceled, the operator keeps the Backup `running` (and its Lease)."""
    ctl.wait_state(BACKUP, "cx-1", ["running"])
    ctl.kubectl("exec", "-n", ctl.namespace, "cx-rs0-0", "-c", "backup-agent", "--", "pbm", "cancel-backup")
    found = wait_event(ctl, "cx-1", "PBMDisagrees")
    assert "PBM reports backup" in found["message"] and "canceled" in found["message"], found["message"]
    wait_event(ctl, "cx-1", "BackupStuck", timeout=30)  # 15 s without progress in `running`
    assert metric(ctl, "psmdb_backup_stuck_operations", cluster="cx", kind="backup") == 1
    assert metric(ctl, "psmdb_backup_watchdog_findings", cluster="cx", reason="PBMDisagrees") == 1
    # not opted in: several passes later nothing has changed
    assert ctl.get(BACKUP, "cx-1")["status"]["state"] == "running"
    assert ctl.get("lease", "psmdb-cx-backup-lock")["spec"]["holderIdentity"].startswith("cx-1-")
    assert [e["reason"] for e in events(ctl, "cx-1")].count("PBMDisagrees") == 1  # evented once
    opt_in(ctl, "cx")
    failed = ctl.wait_state(BACKUP, "cx-1", ["error"], timeout=45)
    assert failed["status"]["error"].startswith("marked error by the psmdb-backup watchdog: "), failed["status"]
    ctl.wait(
        "the Lease of the repaired Backup released",
        lambda: ctl.get("lease", "psmdb-cx-backup-lock") is None,
        timeout=45,
    )


def test_a_restore_sending_a_running_backup_back_to_waiting_is_reported(ctl: CtlCluster) -> None:
    """restore-resets-running-backup: the Backup restarts and PBM runs a second backup for it."""
    ctl.apply(backup(ctl, "rr-1", "rr"))
    ctl.wait("rr-1 started in PBM", lambda: (ctl.get(BACKUP, "rr-1") or {}).get("status", {}).get("pbmName"))
    restore = {
        "apiVersion": "psmdb.percona.com/v1",
        "kind": RESTORE,
        "metadata": {"name": "rr-r", "namespace": ctl.namespace},
        "spec": {"clusterName": "rr", "backupName": "rr-1"},  # stays new while rr-1 is not ready
    }
    ctl.apply(restore)
    found = wait_event(ctl, "rr-1", "BackupRestarted")
    assert "second PBM backup" in found["message"], found["message"]
    assert ctl.get(BACKUP, "rr-1")["status"]["state"] == "waiting"  # reported, not repaired
    ctl.kubectl("delete", "psmdb-restore", "rr-r", "-n", ctl.namespace)
    # the operator's quirk: the same Backup starts a second PBM backup
    ctl.wait("a second PBM backup for rr-1", lambda: len(pbm_backups(ctl, "rr")) == 2, timeout=45)


def test_slots_lost_while_the_stand_in_restarts_are_reported_as_missed(ctl: CtlCluster) -> None:
    """lose-slots-on-restart: the task cron is in memory; a slot that passes while it is down never runs."""
    selector = "percona.com/backup-ancestor=every15"

    def fresh() -> datetime | None:
        """The newest Backup of the task, when its next slot is at least 6 s away (time to kill the stand-in)."""
        stamps = [
            datetime.fromisoformat(b["metadata"]["creationTimestamp"]) for b in ctl.list("psmdb-backup", selector)
        ]
        newest = max(stamps, default=None)
        return newest if newest and datetime.now(UTC) - newest < timedelta(seconds=9) else None

    last = ctl.wait("a recent Backup of task every15", fresh, timeout=45)
    ctl.standins[0].kill()
    time.sleep(max(0.0, (last + timedelta(seconds=17) - datetime.now(UTC)).total_seconds()))  # its next slot passes
    ctl.standin("--poll-interval", "0.5", *FAULT_ARGS)
    event = wait_event(ctl, "ms", "MissedSlots", timeout=30)
    assert event["type"] == "Warning" and "task 'every15'" in event["message"], event["message"]
    assert "WD001" in event["message"] and "restarts" in event["message"]
    missed = ctl.wait(
        "missed-slot gauge", lambda: metric(ctl, "psmdb_backup_missed_slots", cluster="ms", ancestor="every15")
    )
    assert missed >= 1
    assert len([e for e in events(ctl, "ms") if e["reason"] == "MissedSlots"]) <= missed  # not re-evented per pass


# --------------------------------------------------------------------------------------------------- metrics


def test_slo_metrics_are_scraped_from_the_companion(ctl: CtlCluster) -> None:
    last = metric(ctl, "psmdb_backup_last_success_timestamp_seconds", cluster="ms", ancestor="every15", storage="s3")
    assert last is not None and time.time() - 120 < last <= time.time() + 5
    assert metric(ctl, "psmdb_backup_last_duration_seconds", cluster="lk", ancestor="", storage="s3") is not None
    assert metric(ctl, "psmdb_backup_schedule_period_seconds", cluster="ms", ancestor="every15", source="task") == 15
    assert metric(ctl, "psmdb_backup_failed_backups", cluster="cx", ancestor="") == 1
    assert (
        metric(ctl, "psmdb_backup_controller_watchdog_repairs_total", action="release-lease", result="done") or 0
    ) >= 2
    assert metric(ctl, "psmdb_backup_controller_watchdog_findings_total", reason="BackupRestarted") == 1
