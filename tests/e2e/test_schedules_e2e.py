"""PerconaServerMongoDBBackupSchedule objects run by the companion (`psmdb-backup controller`, two replicas) against
a real kube-apiserver, with the operator stand-in running the Backups through the PBM simulator into moto S3
(tools/ctlcluster.py). Schedules use `@every 5s` so that slots come quickly.

Every slot of a schedule's grid either got exactly one Backup (named after its slot) or is counted in
status.missedSlots: `grid_accounted` checks that after each disturbance. The tests run in file order on one cluster.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tools import ctlcluster
from tools.ctlcluster import CtlCluster
from webhook.controller.schedule import parse_slot, schedule_backup_name

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]

BACKUP, SCHEDULE = "PerconaServerMongoDBBackup", "PerconaServerMongoDBBackupSchedule"
PERIOD = timedelta(seconds=5)
SLOW = {"PBM_SIM_BACKUP_SECONDS": "14"}  # a Backup outlives two slots


@pytest.fixture(scope="module")
def ctl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CtlCluster]:
    c = ctlcluster.start(
        tmp_path_factory.mktemp("schedules"),
        ["once", "keep", "forbid", "allow", "imp"],
        azurite=False,
        cluster_sim_env={"forbid": SLOW, "allow": SLOW},
    )
    try:
        c.standin("--poll-interval", "0.5")
        c.controller("a", "--lease-duration", "4")
        c.controller("b", "--lease-duration", "4")
        yield c
    finally:
        for proc in [*c.standins, *c.controllers]:
            print(f"--- {proc.name}\n{proc.log_tail(40)}")
        ctlcluster.stop(c)


def schedule(ctl: CtlCluster, name: str, cluster: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "psmdb-backup-webhook.io/v1alpha1",
        "kind": SCHEDULE,
        "metadata": {"name": name, "namespace": ctl.namespace},
        "spec": {"clusterName": cluster, "schedule": "@every 5s", **spec},
    }


def backups_of(ctl: CtlCluster, name: str) -> list[dict[str, Any]]:
    items = ctl.list(BACKUP, f"psmdb-backup-webhook.io/schedule={name}")
    return sorted(items, key=lambda b: b["metadata"]["annotations"]["psmdb-backup-webhook.io/slot"])


def slots(items: list[dict[str, Any]]) -> list[datetime]:
    out = [parse_slot(b["metadata"]["annotations"]["psmdb-backup-webhook.io/slot"]) for b in items]
    assert None not in out
    return out  # type: ignore[return-value]


def status(ctl: CtlCluster, name: str) -> dict[str, Any]:
    return (ctl.get(SCHEDULE, name) or {}).get("status") or {}


def events(ctl: CtlCluster, name: str) -> list[dict[str, Any]]:
    selector = f"involvedObject.name={name},involvedObject.kind={SCHEDULE}"
    out = ctl.kubectl("get", "events", "-n", ctl.namespace, "--field-selector", selector, "-o", "json").stdout
    return sorted(json.loads(out)["items"], key=lambda e: e["metadata"]["creationTimestamp"])


def leader(ctl: CtlCluster) -> str:
    return (ctl.get("lease", "psmdb-backup-controller") or {}).get("spec", {}).get("holderIdentity") or ""


def grid_accounted(ctl: CtlCluster, name: str) -> list[datetime]:
    """One Backup per slot, named after it; every other slot of the grid up to status.lastScheduleTime (the last
    slot handled) is counted in status.missedSlots. The status is read first: a slot's Backup precedes its status."""
    st = status(ctl, name)
    handled = parse_slot(st["lastScheduleTime"])
    assert handled is not None
    items = [b for b in backups_of(ctl, name) if slots([b])[0] <= handled]
    got = slots(items)
    assert len(set(got)) == len(got), f"two Backups for one slot: {got}"
    for b, slot in zip(items, got, strict=True):
        assert b["metadata"]["name"] == schedule_backup_name(ctl.namespace, name, slot)
    skipped = 0
    for a, b in zip(got, [*got[1:], handled + PERIOD], strict=True):
        steps, rest = divmod(b - a, PERIOD)
        assert rest == timedelta(0) and steps >= 1, f"slots off the 5s grid: {a} -> {b}"
        skipped += steps - 1
    assert st.get("missedSlots", 0) == skipped, (got, st)
    return got


def wait_count(ctl: CtlCluster, name: str, n: int, timeout: float = 40) -> list[dict[str, Any]]:
    return ctl.wait(
        f"{n} Backups of {name}", lambda: (lambda i: i if len(i) >= n else None)(backups_of(ctl, name)), timeout
    )


# --------------------------------------------------------------------------------------------------- exactly once


def test_exactly_one_backup_per_slot_across_a_leader_killed_mid_slot(ctl: CtlCluster) -> None:
    for c in ("once", "keep", "forbid", "allow"):
        ctl.add_cluster(c)
    ctl.apply(
        [
            schedule(ctl, "once", "once", concurrencyPolicy="Allow"),
            schedule(ctl, "keep", "keep", concurrencyPolicy="Allow", retention={"count": 2}),
        ]
    )
    first = wait_count(ctl, "once", 2)
    b = first[0]
    assert {k: b["spec"].get(k) for k in ("clusterName", "type", "storageName")} == {
        "clusterName": "once",
        "type": "logical",
        "storageName": "s3",  # the main storage
    }
    assert b["metadata"]["labels"]["percona.com/backup-ancestor"] == "once"
    assert "percona.com/delete-backup" in b["metadata"]["finalizers"]
    assert ctl.wait_state(BACKUP, b["metadata"]["name"], ["ready", "error"])["status"]["state"] == "ready"
    # kill the leader the moment it created a slot's Backup (before its status write, most likely)
    old = leader(ctl)
    wait_count(ctl, "once", len(backups_of(ctl, "once")) + 1)
    next(c for c in ctl.controllers if c.name == old).kill()
    killed = datetime.now(UTC)
    ctl.wait("the standby leads", lambda: leader(ctl) not in ("", old), timeout=20)
    after = ctl.wait(
        "3 slots after the takeover",
        lambda: (lambda i: i if sum(s > killed + PERIOD for s in slots(i)) >= 3 else None)(backups_of(ctl, "once")),
        timeout=40,
    )
    assert after
    grid_accounted(ctl, "once")
    st = status(ctl, "once")
    assert st["lastScheduleTime"] and st["nextScheduleTime"] > st["lastScheduleTime"]
    assert {c["type"]: c["status"] for c in st["conditions"]} == {
        "Ready": "True",
        "ScheduleValid": "True",
        "ClusterFound": "True",
    }
    assert "BackupCreated" in [e["reason"] for e in events(ctl, "once")]
    ctl.controllers[[c.name for c in ctl.controllers].index(old)].start()  # back as the standby


# --------------------------------------------------------------------------------------------------- concurrency


def test_forbid_skips_slots_while_the_previous_backup_runs_and_allow_does_not(ctl: CtlCluster) -> None:
    ctl.apply([schedule(ctl, "forbid", "forbid"), schedule(ctl, "allow", "allow", concurrencyPolicy="Allow")])
    allow = ctl.wait(
        "Allow: 2 Backups unfinished at once",
        lambda: (lambda st: st if len(st.get("active") or []) >= 2 else None)(status(ctl, "allow")),
        timeout=40,
    )
    assert allow["missedSlots"] == 0
    st = ctl.wait(
        "Forbid: a slot skipped", lambda: (lambda st: st if st.get("missedSlots") else None)(status(ctl, "forbid"))
    )
    forbid = backups_of(ctl, "forbid")
    assert len(forbid) == 1 and st["missedSlots"] >= 1 and st["active"] == [forbid[0]["metadata"]["name"]]
    missed = [e for e in events(ctl, "forbid") if e["reason"] == "MissedSlots"]
    assert missed and "concurrencyPolicy Forbid" in missed[0]["message"] and missed[0]["type"] == "Warning"
    grid_accounted(ctl, "forbid")
    grid_accounted(ctl, "allow")
    ctl.kubectl("delete", SCHEDULE, "forbid", "allow", "-n", ctl.namespace)  # slow clusters: no more load


# --------------------------------------------------------------------------------------------------- retention


def test_retention_trims_exactly_the_older_ready_backups(ctl: CtlCluster) -> None:
    def trimmed() -> list[dict[str, Any]] | None:
        deleted = [e for e in events(ctl, "keep") if e["reason"] == "RetentionDeleted"]
        return deleted if len(deleted) >= 2 else None

    deleted = ctl.wait("retention deleted 2 Backups", trimmed, timeout=60)
    names = [e["message"].split()[2].rstrip(":") for e in deleted]
    assert all("kept by none of count 2" in e["message"] for e in deleted)
    ctl.wait(
        "the deleted Backups are gone",
        lambda: not {b["metadata"]["name"] for b in backups_of(ctl, "keep")} & set(names),
    )
    left = backups_of(ctl, "keep")
    ready = [b for b in left if (b.get("status") or {}).get("state") == "ready"]
    assert 2 <= len(ready) <= 3  # count 2; a third may have become ready since the last pass
    stamp = lambda n: n.split("-")[1]  # noqa: E731  keep-<YYYYMMDDhhmmss>-<hash>
    # the Backups that went are older than the two newest ready ones (the operator may run waiting ones out of
    # order, so an older Backup still unfinished at the time stays)
    assert max(map(stamp, names)) < min(sorted(stamp(b["metadata"]["name"]) for b in ready)[-2:])

    def data_only_of_live_backups() -> bool:  # the operator's finalizer deleted the data of the deleted ones
        live = {(b.get("status") or {}).get("pbmName") for b in backups_of(ctl, "keep")}
        files = {
            k.removeprefix("keep/").removesuffix(".pbm.json") for k in ctl.s3_keys("keep/") if k.endswith(".pbm.json")
        }
        return bool(files) and files <= live

    ctl.wait("only the kept Backups' data in S3", data_only_of_live_backups)
    ctl.kubectl("delete", SCHEDULE, "keep", "-n", ctl.namespace)


# --------------------------------------------------------------------------------------------------- downtime


def test_after_downtime_only_the_latest_slot_runs_and_older_ones_are_counted(ctl: CtlCluster) -> None:
    for c in ctl.controllers:
        c.stop()
    last = max(slots(backups_of(ctl, "once")))
    missed_before = status(ctl, "once")["missedSlots"]
    time.sleep(12)  # at least two slots pass
    restarted = datetime.now(UTC)
    ctl.controllers[0].start()
    items = ctl.wait(
        "the catch-up Backup",
        lambda: (lambda i: i if max(slots(i)) > last else None)(backups_of(ctl, "once")),
        timeout=30,
    )
    catch_up = min(s for s in slots(items) if s > last)
    assert catch_up >= restarted - PERIOD, f"{catch_up} is not the latest slot before {restarted}"
    skipped = (catch_up - last) // PERIOD - 1
    assert skipped >= 1
    ctl.wait("missedSlots counted", lambda: status(ctl, "once")["missedSlots"] >= missed_before + skipped)
    assert status(ctl, "once")["missedSlots"] == missed_before + skipped
    assert any(e["reason"] == "MissedSlots" and "only the latest" in e["message"] for e in events(ctl, "once"))
    grid_accounted(ctl, "once")


# --------------------------------------------------------------------------------------------------- suspend


def patch_spec(ctl: CtlCluster, name: str, **spec: Any) -> None:
    ctl.kubectl("patch", SCHEDULE, name, "-n", ctl.namespace, "--type=merge", "-p", json.dumps({"spec": spec}))


def test_suspend_stops_new_backups_and_resuming_does_not_catch_up(ctl: CtlCluster) -> None:
    patch_spec(ctl, "once", suspend=True)
    ctl.wait("suspended", lambda: "nextScheduleTime" not in status(ctl, "once"))
    time.sleep(1)
    count, missed = len(backups_of(ctl, "once")), status(ctl, "once")["missedSlots"]
    time.sleep(11)
    assert len(backups_of(ctl, "once")) == count
    st = status(ctl, "once")
    ready = next(c for c in st["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "Suspended" and st["missedSlots"] == missed
    resumed = datetime.now(UTC)
    patch_spec(ctl, "once", suspend=False)
    items = wait_count(ctl, "once", count + 1, timeout=20)
    assert min(slots(items)[count:]) > resumed - timedelta(seconds=1)  # a slot after resuming, none from before
    assert status(ctl, "once")["missedSlots"] == missed
    ctl.kubectl("delete", SCHEDULE, "once", "-n", ctl.namespace)


# --------------------------------------------------------------------------------------------------- import/export


def cli(ctl: CtlCluster, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "webhook.cli", "schedules", *args, "-n", ctl.namespace]
    return subprocess.run([*cmd, "--kubeconfig", str(ctl.cp.kubeconfig)], capture_output=True, text=True, timeout=60)


def cron_backups(ctl: CtlCluster) -> list[str]:
    return [
        b["metadata"]["name"]
        for b in ctl.list(BACKUP, "percona.com/cluster=imp")
        if b["metadata"]["name"].startswith("cron-")
    ]


def test_import_then_export_round_trip_with_the_operators_tasks_disabled_meanwhile(ctl: CtlCluster) -> None:
    task = {
        "name": "every5",
        "enabled": True,
        "schedule": "@every 5s",
        "storageName": "s3",
        "retention": {"type": "count", "count": 5, "deleteFromStorage": True},
    }
    ctl.add_cluster("imp", tasks=[task])
    ctl.wait("the operator's task fires", lambda: cron_backups(ctl), timeout=30)
    original = ctl.get("psmdb", "imp")["spec"]["backup"]["tasks"]
    dry = cli(ctl, "import", "imp", "--dry-run", "-o", "yaml")
    assert dry.returncode == 0, dry.stderr
    assert "would create schedule ctl/every5" in dry.stderr and ctl.get(SCHEDULE, "every5") is None
    done = cli(ctl, "import", "imp")
    assert done.returncode == 0, done.stderr
    assert "created schedule ctl/every5" in done.stdout and "disabled spec.backup.tasks[0]" in done.stdout
    assert ctl.get("psmdb", "imp")["spec"]["backup"]["tasks"][0]["enabled"] is False
    sched = ctl.get(SCHEDULE, "every5")
    assert sched["spec"]["schedule"] == "@every 5s" and sched["spec"]["retention"] == {
        "count": 5,
        "deleteFromStorage": True,
    }
    imported = time.monotonic()
    time.sleep(2)  # a slot the operator's entry fired just before the patch
    fired = cron_backups(ctl)
    wait_count(ctl, "every5", 1, timeout=40)  # the companion runs the slots now ...
    time.sleep(max(0.0, imported + 2.5 * PERIOD.total_seconds() - time.monotonic()))
    assert cron_backups(ctl) == fired  # ... and the operator's cron no more, over two of its slots and more
    out = cli(ctl, "export", "imp")
    assert out.returncode == 0, out.stderr
    assert "deleted schedule ctl/every5" in out.stdout
    # the same task; the schedule kind's default type (logical, as a task's) comes back written out
    assert ctl.get("psmdb", "imp")["spec"]["backup"]["tasks"] == [{**original[0], "type": "logical"}]
    assert ctl.get(SCHEDULE, "every5") is None
    assert backups_of(ctl, "every5")  # the schedule's Backups stay
    ctl.wait("the operator's task fires again", lambda: len(cron_backups(ctl)) > len(fired), timeout=30)
