"""The operator stand-in and `psmdb-backup controller` (the companion) against a real kube-apiserver: kwok runs the
database pods, and `pbm` exec'd in their `backup-agent` container is the PBM simulator writing real objects to moto S3
and Azurite (tools/ctlcluster.py). The stand-in plays the stock operator: Backups and Restores applied here reach
`ready` through it, and its task cron makes the scheduled Backups. The companion watches, elects a leader and
exports metrics; it runs no PBM command.

The tests run in file order on one cluster; the last ones kill and restart processes.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from tools import ctlcluster
from tools.ctlcluster import CtlCluster

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

BACKUP, RESTORE = "PerconaServerMongoDBBackup", "PerconaServerMongoDBRestore"
CLUSTERS = ["od", "sched", "rst", "busy", "ha"]


@pytest.fixture(scope="module")
def ctl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CtlCluster]:
    c = ctlcluster.start(tmp_path_factory.mktemp("controller"), CLUSTERS, sim_env={"PBM_SIM_RESTORE_SECONDS": "4"})
    try:
        c.standin("--poll-interval", "0.5")
        c.controller("a", "--lease-duration", "4")
        yield c
    finally:
        for proc in [*c.standins, *c.controllers]:
            print(f"--- controller {proc.name}\n{proc.log_tail(40)}")
        ctlcluster.stop(c)


def backup(ctl: CtlCluster, name: str, cluster: str, storage: str = "s3", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "psmdb.percona.com/v1",
        "kind": BACKUP,
        "metadata": {"name": name, "namespace": ctl.namespace, "finalizers": ["percona.com/delete-backup"]},
        "spec": {"clusterName": cluster, "storageName": storage, **spec},
    }


def restore(ctl: CtlCluster, name: str, cluster: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "psmdb.percona.com/v1",
        "kind": RESTORE,
        "metadata": {"name": name, "namespace": ctl.namespace},
        "spec": {"clusterName": cluster, **spec},
    }


def events(ctl: CtlCluster, name: str) -> list[str]:
    items = json.loads(
        ctl.kubectl(
            "get", "events", "-n", ctl.namespace, "--field-selector", f"involvedObject.name={name}", "-o", "json"
        ).stdout
    )["items"]
    return [e["reason"] for e in sorted(items, key=lambda e: e["metadata"]["creationTimestamp"])]


def pbm_commands(ctl: CtlCluster, cluster: str, command: str) -> list[dict[str, Any]]:
    return [c for c in ctl.sim_calls(cluster) if c["argv"][:1] == [command] and c.get("exit") == 0]


# --------------------------------------------------------------------------------------------------- backups


def test_on_demand_backups_to_s3_and_azure_reach_ready_with_files_in_both(ctl: CtlCluster) -> None:
    ctl.add_cluster("od")
    ctl.apply([backup(ctl, "od-s3", "od", "s3"), backup(ctl, "od-az", "od", "azure", compressionType="gzip")])
    s3 = ctl.wait_state(BACKUP, "od-s3", ["ready", "error"])
    az = ctl.wait_state(BACKUP, "od-az", ["ready", "error"])
    for b, storage in ((s3, "s3"), (az, "azure")):
        st = b["status"]
        assert st["state"] == "ready", st
        assert st["storageName"] == storage and st["type"] == "logical"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", st["pbmName"])
        assert st["start"] and st["completed"] and st["lastTransition"] and st["size"].endswith("B")
        assert storage in st  # the storage spec copy, used for deletion and as a restore source
        assert events(ctl, b["metadata"]["name"])[-1] == "BackupReady"
    assert s3["status"]["destination"] == f"s3://{ctl.bucket}/od/{s3['status']['pbmName']}"
    assert az["status"]["destination"] == f"{ctl.azurite.endpoint}/{ctl.container}/od/{az['status']['pbmName']}"
    s3_keys = ctl.s3_keys(f"od/{s3['status']['pbmName']}")
    az_keys = ctl.azure_keys(f"od/{az['status']['pbmName']}")
    assert f"od/{s3['status']['pbmName']}.pbm.json" in s3_keys and any(k.endswith("metadata.json") for k in s3_keys)
    assert f"od/{az['status']['pbmName']}.pbm.json" in az_keys and any(k.endswith(".gz") for k in az_keys)
    # one PBM backup per Backup object; the non-main storage went through its PBM profile
    starts = pbm_commands(ctl, "od", "backup")
    assert len(starts) == 2 and sum("--profile" in c["argv"] for c in starts) == 1


def test_deleting_a_backup_removes_its_files_from_storage(ctl: CtlCluster) -> None:
    pbm_name = ctl.get(BACKUP, "od-s3")["status"]["pbmName"]
    assert ctl.s3_keys(f"od/{pbm_name}")
    ctl.kubectl("delete", BACKUP, "od-s3", "-n", ctl.namespace, "--timeout=60s")
    assert ctl.s3_keys(f"od/{pbm_name}") == []


def test_invalid_backup_fails_with_the_webhook_message(ctl: CtlCluster) -> None:
    ctl.apply(backup(ctl, "od-bad", "od", "nowhere"))
    b = ctl.wait_state(BACKUP, "od-bad", ["error"])
    assert "PSB4" in b["status"]["error"] and "nowhere" in b["status"]["error"]
    assert b["status"]["error"].startswith(f"{BACKUP} {ctl.namespace}/od-bad is rejected by psmdb-backup-webhook")
    assert "BackupFailed" in events(ctl, "od-bad")


def test_the_message_is_the_one_the_real_webhook_gives(ctl: CtlCluster, cluster: Any) -> None:
    """The same cluster, Secrets and Backup sent to the API server that runs the webhook (the session fixture)."""
    if cluster.get("namespace", ctl.namespace, ctl.namespace) is None:
        cluster.cp.create_namespace(ctl.namespace)
    secrets = [ctl.get("secret", n) for n in (ctlcluster.S3_SECRET, ctlcluster.AZURE_SECRET)]
    for s in secrets:
        s["metadata"] = {"name": s["metadata"]["name"], "namespace": ctl.namespace}
    cluster.apply(secrets, check=True)
    cluster.apply(ctl.cluster_manifest("od"), check=True)
    denied = cluster.apply(backup(ctl, "od-bad", "od", "nowhere"), "--dry-run=server")
    assert denied.returncode != 0
    webhook_message = denied.stderr.split("denied the request: ", 1)[1].strip()
    assert ctl.get(BACKUP, "od-bad")["status"]["error"].strip() == webhook_message


def test_backup_of_a_missing_cluster_fails(ctl: CtlCluster) -> None:
    ctl.apply(backup(ctl, "ghost-b", "ghost"))
    b = ctl.wait_state(BACKUP, "ghost-b", ["error"])
    assert b["status"]["error"]  # the rule engine's message names the missing cluster
    assert "ghost" in b["status"]["error"]


# --------------------------------------------------------------------------------------------------- schedules


def test_the_operators_task_cron_makes_backups_and_retention_keeps_two(ctl: CtlCluster) -> None:
    task = {
        "name": "every6s",
        "enabled": True,
        "schedule": "@every 6s",
        "storageName": "s3",
        "retention": {"type": "count", "count": 2, "deleteFromStorage": True},
    }
    ctl.add_cluster("sched", tasks=[task])
    selector = "percona.com/cluster=sched,percona.com/backup-ancestor=every6s"

    def ready_and_trimmed() -> list[dict[str, Any]] | None:
        items = ctl.list(BACKUP, selector)
        done = [b for b in items if (b.get("status") or {}).get("state") == "ready"]
        return items if len(done) == 2 and len(pbm_commands(ctl, "sched", "delete-backup")) >= 2 else None

    items = ctl.wait("4 slots run and retention down to 2", ready_and_trimmed, timeout=120)
    for b in items:
        labels = b["metadata"]["labels"]
        assert labels["percona.com/backup-type"] == "cron" and labels["app.kubernetes.io/instance"] == "sched"
        assert b["metadata"]["finalizers"][0] == "percona.com/delete-backup"
        # the operator's generateName: cron-<cluster[:16]>-<YYYYMMDDhhmmss>- and 5 characters from the API server
        assert re.fullmatch(r"cron-sched-\d{14}-[a-z0-9]{5}", b["metadata"]["name"]), b["metadata"]["name"]
    starts = pbm_commands(ctl, "sched", "backup")
    deletes = pbm_commands(ctl, "sched", "delete-backup")
    assert len(starts) >= 4
    remaining = {b["status"]["pbmName"] for b in items if (b.get("status") or {}).get("pbmName")}
    for d in deletes:  # the deleted backups' files are gone from S3, the kept ones are there
        assert d["argv"][1] not in remaining and ctl.s3_keys(f"sched/{d['argv'][1]}") == []
    for name in remaining:
        assert ctl.s3_keys(f"sched/{name}.pbm.json")


def test_disabling_the_task_stops_it(ctl: CtlCluster) -> None:
    ctl.kubectl(
        "patch",
        "psmdb",
        "sched",
        "-n",
        ctl.namespace,
        "--type=json",
        "-p",
        json.dumps([{"op": "replace", "path": "/spec/backup/tasks/0/enabled", "value": False}]),
    )
    time.sleep(1)
    count = len(ctl.list(BACKUP, "percona.com/cluster=sched"))
    time.sleep(8)
    assert len(ctl.list(BACKUP, "percona.com/cluster=sched")) == count


# --------------------------------------------------------------------------------------------------- restores


@pytest.fixture(scope="module")
def rst_backup(ctl: CtlCluster) -> dict[str, Any]:
    ctl.add_cluster("rst", pitr=True)
    ctl.apply(backup(ctl, "rst-base", "rst"))
    return ctl.wait_state(BACKUP, "rst-base", ["ready"])


def test_restore_by_backup_name(ctl: CtlCluster, rst_backup: dict[str, Any]) -> None:
    ctl.apply(restore(ctl, "r-name", "rst", backupName="rst-base"))
    r = ctl.wait_state(RESTORE, "r-name", ["ready", "error"])
    assert r["status"]["state"] == "ready", r["status"]
    assert r["status"]["pbmName"] and r["status"]["completed"]
    calls = pbm_commands(ctl, "rst", "restore")
    assert calls[-1]["argv"][1] == rst_backup["status"]["pbmName"]
    # PITR was switched off for the restore and back on afterwards (the cluster has it enabled)
    sets = [c["argv"] for c in pbm_commands(ctl, "rst", "config") if "--set" in c["argv"]]
    assert sets[-2:] == [["config", "--set", "pitr.enabled=false"], ["config", "--set", "pitr.enabled=true"]]


def test_restore_from_backup_source(ctl: CtlCluster, rst_backup: dict[str, Any]) -> None:
    st = rst_backup["status"]
    ctl.apply(
        restore(ctl, "r-src", "rst", backupSource={"type": "logical", "destination": st["destination"], "s3": st["s3"]})
    )
    r = ctl.wait_state(RESTORE, "r-src", ["ready", "error"])
    assert r["status"]["state"] == "ready", r["status"]
    assert pbm_commands(ctl, "rst", "restore")[-1]["argv"][1] == st["pbmName"]


def test_point_in_time_restores_latest_and_date(ctl: CtlCluster, rst_backup: dict[str, Any]) -> None:
    # the earlier restores switched PITR off and on, which breaks the timeline (as in PBM): a new base backup first
    ctl.apply(backup(ctl, "rst-base2", "rst"))
    rst_backup = ctl.wait_state(BACKUP, "rst-base2", ["ready"])
    time.sleep(2)  # the simulated oplog timeline grows after the base backup
    ctl.apply(restore(ctl, "r-latest", "rst", backupName="rst-base2", pitr={"type": "latest"}))
    r = ctl.wait_state(RESTORE, "r-latest", ["ready", "error"])
    assert r["status"]["state"] == "ready", r["status"]
    argv = pbm_commands(ctl, "rst", "restore")[-1]["argv"]
    assert "--time" in argv and argv[argv.index("--base-snapshot") + 1] == rst_backup["status"]["pbmName"]
    ctl.apply(backup(ctl, "rst-base3", "rst"))  # the `latest` restore broke the timeline again
    rst_backup = ctl.wait_state(BACKUP, "rst-base3", ["ready"])
    last_write = datetime.fromisoformat(rst_backup["status"]["lastWriteAt"].replace("Z", "+00:00"))
    target = (last_write + timedelta(seconds=1)).strftime("%Y-%m-%d %H:%M:%S")
    time.sleep(3)
    ctl.apply(restore(ctl, "r-date", "rst", backupName="rst-base3", pitr={"type": "date", "date": target}))
    r = ctl.wait_state(RESTORE, "r-date", ["ready", "error"])
    assert r["status"]["state"] == "ready", r["status"]
    argv = pbm_commands(ctl, "rst", "restore")[-1]["argv"]
    assert argv[argv.index("--time") + 1] == target.replace(" ", "T")


def test_selective_and_namespace_cloning_restores(ctl: CtlCluster, rst_backup: dict[str, Any]) -> None:
    ctl.apply(
        [
            restore(
                ctl,
                "r-sel",
                "rst",
                backupName="rst-base",
                selective={"namespaces": ["app.items"], "withUsersAndRoles": True},
            ),
            restore(
                ctl,
                "r-clone",
                "rst",
                backupName="rst-base",
                selective={"nsFrom": "app.items", "nsTo": "app.items_copy"},
            ),
        ]
    )
    for name in ("r-sel", "r-clone"):
        r = ctl.wait_state(RESTORE, name, ["ready", "error"])
        assert r["status"]["state"] == "ready", r["status"]
    argvs = [c["argv"] for c in pbm_commands(ctl, "rst", "restore")[-2:]]
    assert any("--ns" in a and "app.items" in a and "--with-users-and-roles" in a for a in argvs)
    assert any("--ns-from" in a and "app.items_copy" in a for a in argvs)


def test_backup_requested_during_a_restore_waits_for_it(ctl: CtlCluster) -> None:
    ctl.add_cluster("busy")
    ctl.apply(backup(ctl, "busy-base", "busy"))
    ctl.wait_state(BACKUP, "busy-base", ["ready"])
    ctl.apply(restore(ctl, "busy-r", "busy", backupName="busy-base"))
    ctl.wait_state(RESTORE, "busy-r", ["requested", "running"])
    ctl.apply(backup(ctl, "busy-b", "busy"))
    ctl.wait_state(BACKUP, "busy-b", ["waiting"], timeout=10)
    r = ctl.wait_state(RESTORE, "busy-r", ["ready"])
    b = ctl.wait_state(BACKUP, "busy-b", ["ready"])
    assert b["status"]["start"] >= r["status"]["completed"]


def test_restore_of_an_unknown_backup_fails(ctl: CtlCluster) -> None:
    ctl.apply(restore(ctl, "r-missing", "busy", backupName="no-such-backup"))
    r = ctl.wait_state(RESTORE, "r-missing", ["error"])
    assert "no-such-backup" in r["status"]["error"]


# --------------------------------------------------------------------------------------------------- restarts


def test_a_restarted_stand_in_adopts_the_running_pbm_backup(ctl: CtlCluster) -> None:
    ctl.add_cluster("ha")
    ctl.apply(backup(ctl, "ha-b", "ha"))
    ctl.wait_state(BACKUP, "ha-b", ["requested", "running"])
    ctl.standins[0].kill()  # mid-backup, without releasing anything
    ctl.standin("--poll-interval", "0.5")
    done = ctl.wait_state(BACKUP, "ha-b", ["ready", "error"])
    assert done["status"]["state"] == "ready", done["status"]
    assert len(pbm_commands(ctl, "ha", "backup")) == 1  # one PBM backup for the Backup, not a second one
    assert ctl.get("lease", "psmdb-ha-backup-lock") is None  # released when the backup ended


# --------------------------------------------------------------------------------------------------- companion


def test_companion_metrics_expose_backups_by_state_and_leadership(ctl: CtlCluster) -> None:
    text = ctl.controllers[0].http("/metrics")
    assert re.search(r'psmdb_backup_controller_backups\{cluster="od",namespace="ctl",state="ready"\} [1-9]', text)
    assert "psmdb_backup_controller_leader 1.0" in text
    assert ctl.controllers[0].http("/readyz") == "ok"


def test_second_companion_stands_by_and_takes_over_a_killed_leader(ctl: CtlCluster) -> None:
    a = ctl.controllers[0]
    b = ctl.controller("b", "--lease-duration", "4")
    assert ctl.get("lease", "psmdb-backup-controller")["spec"]["holderIdentity"] == "a"
    assert "psmdb_backup_controller_leader 0.0" in b.http("/metrics")
    a.kill()  # without releasing the lease
    killed_at = time.monotonic()
    ctl.wait(
        "b leads", lambda: ctl.get("lease", "psmdb-backup-controller")["spec"]["holderIdentity"] == "b", timeout=20
    )
    assert time.monotonic() - killed_at < 4 + 6  # within the lease duration plus a renewal period
    ctl.wait("b acts", lambda: "psmdb_backup_controller_leader 1.0" in b.http("/metrics"), timeout=10)
    b.stop()  # a clean shutdown releases the leader lease
    assert ctl.get("lease", "psmdb-backup-controller") is None  # released (deleted), not left to expire
