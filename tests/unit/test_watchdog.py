"""webhook/controller/watchdog.py: every detection as a table of (objects, now) -> findings, and the repairs."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from webhook import cron
from webhook.controller import watchdog as wd
from webhook.findings import Severity

NOW = datetime(2026, 12, 3, 12, 0, 0, tzinfo=UTC)
NS = "psmdb"
DEC_1 = datetime(2026, 12, 1, tzinfo=UTC)
UID = "0b5e4a5c-1d2e-4f60-8a9b-0c1d2e3f4a5b"


def ts(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def at(h: int, m: int = 0, s: int = 0, day: int = 3) -> datetime:
    return datetime(2026, 12, day, h, m, s, tzinfo=UTC)


def cluster(tasks: list[dict[str, Any]] | None = None, enabled: bool = True, **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": "psmdb.percona.com/v1",
        "kind": "PerconaServerMongoDB",
        "metadata": {"name": "c1", "namespace": NS, "creationTimestamp": "2026-11-01T00:00:00Z", **meta},
        "spec": {"backup": {"enabled": enabled, "tasks": tasks or []}},
    }


def task(name: str = "hourly", schedule: str = "0 * * * *", enabled: bool = True) -> dict[str, Any]:
    return {"name": name, "enabled": enabled, "schedule": schedule, "storageName": "s3"}


def backup(
    name: str,
    created: datetime,
    state: str = "ready",
    ancestor: str | None = "hourly",
    cluster_name: str = "c1",
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    **status: Any,
) -> dict[str, Any]:
    lab = dict(labels if labels is not None else ({wd.ANCESTOR_LABEL: ancestor} if ancestor else {}))
    st = {"state": state, **{k: ts(v) if isinstance(v, datetime) else v for k, v in status.items()}}
    if state == "ready":
        st.setdefault("completed", ts(created + timedelta(minutes=3)))
    return {
        "kind": "PerconaServerMongoDBBackup",
        "metadata": {
            "name": name,
            "namespace": NS,
            "uid": f"uid-{name}",
            "resourceVersion": f"rv-{name}",
            "creationTimestamp": ts(created),
            "labels": lab,
            "annotations": dict(annotations or {}),
        },
        "spec": {"clusterName": cluster_name, "storageName": "s3"},
        "status": st if state or status else {},
    }


def restore(name: str, created: datetime, state: str = "", **status: Any) -> dict[str, Any]:
    return {
        "kind": "PerconaServerMongoDBRestore",
        "metadata": {"name": name, "namespace": NS, "uid": f"uid-{name}", "creationTimestamp": ts(created)},
        "spec": {"clusterName": "c1", "backupName": "b"},
        "status": {"state": state, **{k: ts(v) for k, v in status.items()}},
    }


def lease(holder: str, acquired: datetime) -> dict[str, Any]:
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "psmdb-c1-backup-lock", "namespace": NS, "resourceVersion": "77"},
        "spec": {"holderIdentity": holder, "acquireTime": acquired.strftime("%Y-%m-%dT%H:%M:%S.%fZ")},
    }


def schedule(
    name: str = "nightly",
    expr: str = "0 * * * *",
    created: datetime = DEC_1,
    **spec: Any,
) -> dict[str, Any]:
    return {
        "apiVersion": "psmdb-backup-webhook.io/v1alpha1",
        "kind": "PerconaServerMongoDBBackupSchedule",
        "metadata": {"name": name, "namespace": NS, "creationTimestamp": ts(created)},
        "spec": {"clusterName": "c1", "schedule": expr, "storageName": "s3", **spec},
    }


def hourly_backups(hours: range, ancestor: str = "hourly", delay: timedelta = timedelta(seconds=2)) -> list[dict]:
    """Ready Backups for today's slots at the given hours, created `delay` after each slot."""
    return [backup(f"cron-c1-{h:02d}", at(h) + delay, ancestor=ancestor) for h in hours]


def codes(found: list[wd.WatchdogFinding]) -> list[str]:
    return [f.code for f in found]


def run(snapshot: wd.Snapshot, now: datetime = NOW, **th: Any) -> list[wd.WatchdogFinding]:
    return wd.detect(snapshot, now, wd.Thresholds(**th))


# --------------------------------------------------------------------------------------------------- slots

YESTERDAY_EVERY_HOUR = [backup(f"y-{h:02d}", at(h, day=2) + timedelta(seconds=2)) for h in range(12, 24)]


@pytest.mark.parametrize(
    ("case", "backups", "seen", "want_slots"),
    [
        ("every slot ran", YESTERDAY_EVERY_HOUR + hourly_backups(range(12)), {}, []),
        ("two slots lost", YESTERDAY_EVERY_HOUR + hourly_backups([*range(10), 12]), {}, [at(10), at(11)]),
        ("retention kept the last three", hourly_backups(range(9, 12)), {}, []),
        ("a gap before the last three", hourly_backups([6, 7, 11]), {}, [at(8), at(9), at(10)]),
        ("nothing ever, seen half an hour ago", [], {"hourly": at(10, 30)}, [at(11)]),
        ("created 4 minutes late: still that slot", [backup("late", at(11, 4))], {"hourly": at(10, 30)}, []),
        (
            "created 6 minutes late: not that slot",
            [backup("b10", at(10, 0, 2)), backup("late", at(11, 6))],
            {"hourly": at(9, 30)},
            [at(11)],
        ),
        ("the oldest Backup bounds the window (retention)", [backup("late", at(11, 6))], {"hourly": at(9, 30)}, []),
        ("clock skew, 20 s early", [backup("early", at(10, 59, 40))], {"hourly": at(10, 30)}, []),
        ("45 s early is a manual backup", [backup("m", at(10, 59, 15))], {"hourly": at(10, 30)}, [at(11)]),
        ("the current slot is not judged yet", hourly_backups(range(9, 11)), {}, [at(11)]),
        (
            "other ancestor does not count",
            hourly_backups(range(9, 12), "other"),
            {"hourly": at(9, 30)},
            [at(10), at(11)],
        ),
        (
            "legacy ancestor label (crVersion < 1.17)",
            [backup("old", at(11, 0, 1), labels={"ancestor": "hourly"})],
            {"hourly": at(10, 30)},
            [],
        ),
        (
            "a Backup of another cluster does not count",
            [backup("x", at(11, 0, 1), cluster_name="c2")],
            {"hourly": at(10, 30)},
            [at(11)],
        ),
    ],
)
def test_missed_slots_of_an_operator_task(
    case: str, backups: list[dict], seen: dict[str, datetime], want_slots: list[datetime]
) -> None:
    found = run(wd.Snapshot(cluster([task()]), backups, seen_since=seen), now=at(12, 0, 10))
    missed = [f for f in found if f.code == "WD001"]
    if not want_slots:
        assert missed == [], case
        return
    (f,) = missed
    assert f.slots == tuple(want_slots) and f.count == len(want_slots), case
    assert f.reason == "MissedSlots" and f.severity is Severity.WARNING and f.ancestor == "hourly"
    assert f.ref == wd.Ref("PerconaServerMongoDB", NS, "c1")
    assert f"missed {len(want_slots)} slot(s)" in f.message and "operator restarts" in f.message
    assert "psmdb-backup backup c1 -n psmdb" in f.message


def test_no_backups_and_never_seen_checks_the_whole_lookback_window() -> None:
    (f,) = run(wd.Snapshot(cluster([task()])))
    # (now - 24h, now - 5 min]: 13:00 yesterday .. 11:00 today
    assert f.count == 23 and f.slots[0] == at(13, day=2) and f.slots[-1] == at(11)
    (f,) = run(wd.Snapshot(cluster([task()])), lookback=timedelta(hours=3))
    assert f.slots == (at(10), at(11))


def test_the_cluster_creation_bounds_the_window() -> None:
    (f,) = run(wd.Snapshot(cluster([task()], creationTimestamp=ts(at(9, 30)))))
    assert f.slots == (at(10), at(11))


@pytest.mark.parametrize(
    ("spec", "enabled"),
    [({"enabled": False}, True), ({}, False)],
    ids=["task disabled", "backups disabled"],
)
def test_disabled_tasks_and_clusters_expect_nothing(spec: dict, enabled: bool) -> None:
    assert run(wd.Snapshot(cluster([{**task(), **spec}], enabled=enabled))) == []


@pytest.mark.parametrize(
    ("created", "missed"),
    [(at(2, 0, 1), []), (at(3, 0, 1), [at(2)])],
    ids=["03:00 Berlin is 02:00Z in winter", "03:00Z is not the slot"],
)
def test_cron_tz_is_the_operators_dialect(created: datetime, missed: list[datetime]) -> None:
    snap = wd.Snapshot(
        cluster([task("daily", "CRON_TZ=Europe/Berlin 0 3 * * *")]),
        [backup("d0", at(2, 0, 1, day=2), ancestor="daily"), backup("d", created, ancestor="daily")],
        seen_since={"daily": at(0, day=1)},
    )
    assert [f.slots for f in run(snap) if f.code == "WD001"] == ([tuple(missed)] if missed else [])


def test_every_schedules_are_anchored_on_their_backups() -> None:
    # @every 2h started by the operator at an arbitrary time: 01:17:05, 03:17:06 (drift), 05:17:08, then nothing.
    backups = [backup(f"e{i}", t, ancestor="e") for i, t in enumerate([at(1, 17, 5), at(3, 17, 6), at(5, 17, 8)])]
    (f,) = [f for f in run(wd.Snapshot(cluster([task("e", "@every 2h")]), backups)) if f.code == "WD001"]
    assert f.slots == (at(7, 17, 8), at(9, 17, 8), at(11, 17, 8))


def test_a_schedule_that_does_not_parse() -> None:
    (f,) = run(wd.Snapshot(cluster([task(schedule="0 25 * * *")])))
    assert (f.code, f.reason, f.severity) == ("WD009", "ScheduleInvalid", Severity.ERROR)
    assert "'0 25 * * *'" in f.message and "end of range (25) above maximum (23): 25" in f.message
    assert "operator drops" in f.message


def test_failed_backups_of_a_task_in_the_window() -> None:
    backups = [
        *hourly_backups(range(9, 11)),
        backup("cron-c1-11", at(11, 0, 2), state="error", error="unable to get storage 's3'"),
        backup("cron-c1-old", at(10, day=1), state="error", error="old"),
        backup("manual", at(11, 30), state="error", ancestor=None, error="not a task's"),
    ]
    found = run(wd.Snapshot(cluster([task()]), backups, seen_since={"hourly": at(8, 30)}))
    (f,) = [f for f in found if f.code == "WD002"]
    assert (f.ref.name, f.severity, f.ancestor, f.state) == ("cron-c1-11", Severity.ERROR, "hourly", "error")
    assert "failed: unable to get storage 's3'" in f.message and f.resource_version == "rv-cron-c1-11"
    assert "WD001" not in codes(found)  # the failed Backup ran its slot


@pytest.mark.parametrize(
    ("created", "state", "want"),
    [
        (at(10, 0, 2), "running", ["WD003"]),  # 2 h after its slot, the period is 1 h
        (at(11, 0, 2), "running", []),  # exactly one period: not yet
        (at(10, 0, 2), "ready", []),
        (at(10, 0, 2), "error", ["WD002"]),
    ],
)
def test_a_slots_backup_unfinished_after_one_period(created: datetime, state: str, want: list[str]) -> None:
    b = backup("cron-c1-x", created, state=state, lastTransition=at(11, 50))
    found = run(wd.Snapshot(cluster([task()]), [b], seen_since={"hourly": created - timedelta(minutes=30)}))
    assert [c for c in codes(found) if c != "WD001"] == want
    if want == ["WD003"]:
        (f,) = [f for f in found if f.code == "WD003"]
        assert f.slots == (at(10),) and "still 'running' after 2h" in f.message and f.ref.name == "cron-c1-x"


def test_a_stuck_slot_backup_is_reported_once() -> None:
    b = backup("cron-c1-10", at(10, 0, 2), state="running", lastTransition=at(3))
    found = run(
        wd.Snapshot(cluster([task()]), [b], seen_since={"hourly": at(9, 30)}),
        backup_stuck={"running": timedelta(hours=1)},
    )
    assert [c for c in codes(found) if c != "WD001"] == ["WD004"]


# --------------------------------------------------------------------------------------------------- our schedules


def test_a_schedule_is_checked_like_a_task_with_its_slot_annotation() -> None:
    late = backup(
        "s-11", at(11, 9), ancestor="nightly", annotations={wd.SLOT_ANNOTATION: "2026-12-03T11:00:00Z"}
    )  # created 9 minutes late (startingDeadlineSeconds), but it is the 11:00 slot's
    first = backup("s-09", at(9, 0, 1), ancestor="nightly", annotations={wd.SLOT_ANNOTATION: "2026-12-03T09:00:00Z"})
    snap = wd.Snapshot(
        cluster(), [first, late], schedules=[schedule(startingDeadlineSeconds=900)], seen_since={"nightly": at(8, 30)}
    )
    (f,) = run(snap)
    assert f.slots == (at(10),) and f.ref == wd.Ref("PerconaServerMongoDBBackupSchedule", NS, "nightly")
    assert "companion controller" in f.message


def test_a_schedules_deadline_delays_the_judgement() -> None:
    snap = wd.Snapshot(
        cluster(), [], schedules=[schedule(startingDeadlineSeconds=3600)], seen_since={"nightly": at(9, 30)}
    )
    (f,) = run(snap)
    assert f.slots == (at(10),)  # 11:00 may still get its Backup until 12:00


@pytest.mark.parametrize(
    ("policy", "missed"),
    [({}, []), ({"concurrencyPolicy": "Forbid"}, []), ({"concurrencyPolicy": "Allow"}, [at(10), at(11)])],
)
def test_forbid_skips_slots_while_the_previous_backup_runs(policy: dict, missed: list[datetime]) -> None:
    long = backup("s-09", at(9, 0, 1), ancestor="nightly", completed=at(11, 30))
    snap = wd.Snapshot(cluster(), [long], schedules=[schedule(**policy)], seen_since={"nightly": at(8, 30)})
    assert [f.slots for f in run(snap) if f.code == "WD001"] == ([tuple(missed)] if missed else [])


def test_suspended_and_foreign_schedules_expect_nothing() -> None:
    scheds = [schedule(suspend=True), {**schedule("other"), "spec": {"clusterName": "c2", "schedule": "* * * * *"}}]
    assert run(wd.Snapshot(cluster(), [], schedules=scheds)) == []


def test_a_schedules_creation_bounds_its_window() -> None:
    (f,) = run(wd.Snapshot(cluster(), [], schedules=[schedule(created=at(10, 30))]))
    assert f.slots == (at(11),)


# --------------------------------------------------------------------------------------------------- stuck


@pytest.mark.parametrize(
    ("state", "status", "created", "stuck"),
    [
        ("", {}, NOW - timedelta(minutes=11), True),
        ("", {}, NOW - timedelta(minutes=9), False),
        ("waiting", {"lastTransition": NOW - timedelta(hours=3)}, NOW - timedelta(hours=3), True),
        ("waiting", {}, NOW - timedelta(hours=1), False),
        ("requested", {"lastTransition": NOW - timedelta(minutes=20)}, NOW - timedelta(hours=1), True),
        ("requested", {"lastTransition": NOW - timedelta(minutes=5)}, NOW - timedelta(hours=1), False),
        ("running", {"lastTransition": NOW - timedelta(hours=7)}, NOW - timedelta(hours=8), True),
        (
            "running",
            {"lastTransition": NOW - timedelta(hours=7), "start": NOW - timedelta(hours=1)},
            NOW - timedelta(hours=8),
            False,
        ),
        ("ready", {}, NOW - timedelta(days=3), False),
        ("error", {}, NOW - timedelta(days=3), False),
    ],
)
def test_stuck_backups(state: str, status: dict, created: datetime, stuck: bool) -> None:
    b = backup("b1", created, state=state, ancestor=None, **status)
    found = run(wd.Snapshot(cluster(), [b]))
    if not stuck:
        assert found == []
        return
    (f,) = found
    assert (f.code, f.reason, f.ref.name, f.state, f.resource_version) == ("WD004", "BackupStuck", "b1", state, "rv-b1")
    assert f"been {state or 'new'!r} with no progress" in f.message and "--repair" in f.message


@pytest.mark.parametrize(
    ("state", "age", "stuck"),
    [
        ("", 11, True),
        ("waiting", 60, False),
        ("waiting", 121, True),
        ("requested", 16, True),
        ("running", 11 * 60, False),
        ("running", 13 * 60, True),
        ("rejected", 10_000, False),
        ("ready", 10_000, False),
    ],
)
def test_stuck_restores(state: str, age: int, stuck: bool) -> None:
    r = restore("r1", NOW - timedelta(minutes=age), state=state)
    found = run(wd.Snapshot(cluster(), restores=[r]))
    assert codes(found) == (["WD005"] if stuck else [])
    if stuck:
        assert (
            found[0].ref == wd.Ref("PerconaServerMongoDBRestore", NS, "r1", "uid-r1")
            and "--repair" not in found[0].message
        )


def test_thresholds_are_per_state() -> None:
    b = backup("b1", NOW - timedelta(minutes=3), state="")
    assert codes(run(wd.Snapshot(cluster(), [b]), backup_stuck={"": timedelta(minutes=2)})) == ["WD004"]


# --------------------------------------------------------------------------------------------------- the lock Lease


def holder(name: str) -> str:
    return f"{name}-uid-{name}"


@pytest.mark.parametrize(
    ("case", "holder_id", "acquired", "objs", "stale"),
    [
        ("holder ready 10 min ago", holder("b1"), at(10), [backup("b1", at(10), completed=at(11, 50))], True),
        ("holder failed", holder("b1"), at(10), [backup("b1", at(10), state="error", lastTransition=at(11))], True),
        ("holder just finished", holder("b1"), at(10), [backup("b1", at(10), completed=at(11, 59))], False),
        (
            "holder running",
            holder("b1"),
            at(10),
            [backup("b1", at(10), state="running", lastTransition=at(11, 50))],
            False,
        ),
        ("holder gone", f"cron-c1-20261203100000-abcde-{UID}", at(10), [], True),
        ("holder gone, lease brand new", f"x-{UID}", at(11, 59, 30), [], False),
        ("no holder", "", at(10), [], False),
    ],
)
def test_stale_lock(case: str, holder_id: str, acquired: datetime, objs: list[dict], stale: bool) -> None:
    waiting = [backup("w1", at(11), state="waiting", ancestor=None), restore("r1", at(11, 55), state="")]
    found = run(wd.Snapshot(cluster(), objs + waiting[:1], restores=waiting[1:], lease=lease(holder_id, acquired)))
    locks = [f for f in found if f.code in ("WD006", "WD007")]
    if not stale:
        assert locks == [], case
        return
    assert codes(locks) == ["WD006", "WD007", "WD007"], case
    f = locks[0]
    assert f.ref == wd.Ref("Lease", NS, "psmdb-c1-backup-lock") and f.resource_version == "77"
    assert f.waiting == (
        wd.Ref("PerconaServerMongoDBBackup", NS, "w1", "uid-w1"),
        wd.Ref("PerconaServerMongoDBRestore", NS, "r1", "uid-r1"),
    )
    assert "Waiting: Backup w1, Restore r1" in f.message and "kubectl -n psmdb delete lease" in f.message
    if not objs:
        assert "names cron-c1-20261203100000-abcde (holder" in f.message and "no longer exists" in f.message
    assert {x.ref.name for x in locks[1:]} == {"w1", "r1"}


def test_no_lease_no_finding() -> None:
    assert run(wd.Snapshot(cluster(), [backup("b1", at(10))], lease=None)) == []


# --------------------------------------------------------------------------------------------------- PBM


PBM_STATUS = {
    "backups": {
        "snapshot": [
            {"name": "2026-12-03T10:00:00Z", "status": "canceled"},
            {"name": "2026-12-03T10:30:00Z", "status": "error", "error": "upload: 403"},
            {"name": "2026-12-03T11:00:00Z", "status": "done"},
            {"name": "2026-12-03T11:30:00Z", "status": "running"},
        ]
    },
    "running": {"type": "backup", "name": "2026-12-03T11:45:00Z", "status": "running"},
}


def test_pbm_view_from_status() -> None:
    view = wd.PbmView.from_status(PBM_STATUS, pitr_latest=at(11, 58))
    assert view.backups["2026-12-03T10:30:00Z"] == wd.PbmBackup("2026-12-03T10:30:00Z", "error", "upload: 403")
    assert view.backups["2026-12-03T11:45:00Z"].status == "running" and len(view.backups) == 5
    assert view.pitr_latest == at(11, 58)
    assert wd.PbmView.from_status({}).backups == {}


@pytest.mark.parametrize(
    ("pbm_name", "state", "progress", "want"),
    [
        ("2026-12-03T10:00:00Z", "running", at(11), "canceled"),
        ("2026-12-03T10:30:00Z", "requested", at(11), "error"),
        ("2026-12-03T11:00:00Z", "running", at(11), "done"),
        ("2026-12-03T11:00:00Z", "running", at(11, 59), None),  # the operator polls every 5 s: give it time
        ("2026-12-03T11:30:00Z", "running", at(11), None),
        ("unknown", "running", at(11), None),
        ("2026-12-03T10:00:00Z", "ready", at(11), None),
    ],
)
def test_a_backup_running_while_pbm_has_finished(
    pbm_name: str, state: str, progress: datetime, want: str | None
) -> None:
    b = backup("b1", at(9), state=state, ancestor=None, pbmName=pbm_name, lastTransition=progress)
    snap = wd.Snapshot(cluster(), [b], pbm=wd.PbmView.from_status(PBM_STATUS))
    found = [f for f in run(snap) if f.code == "WD008"]
    assert [f.pbm_status for f in found] == ([want] if want else [])
    if want:
        assert f"PBM reports backup {pbm_name} {want}" in found[0].message
    assert [f for f in run(wd.Snapshot(cluster(), [b])) if f.code == "WD008"] == []  # without PBM reads


@pytest.mark.parametrize(
    ("state", "pbm_name", "want"),
    [("waiting", "2026-12-03T10:00:00Z", True), ("", "x", True), ("waiting", "", False), ("running", "x", False)],
)
def test_a_backup_sent_back_to_waiting(state: str, pbm_name: str, want: bool) -> None:
    b = backup("b1", NOW - timedelta(minutes=1), state=state, ancestor=None, pbmName=pbm_name)
    found = [f for f in run(wd.Snapshot(cluster(), [b])) if f.code == "WD010"]
    assert len(found) == int(want)
    if want:
        assert f"after PBM started it as {pbm_name}" in found[0].message and "second PBM backup" in found[0].message


# --------------------------------------------------------------------------------------------------- repairs


def test_repairs_are_decided_from_findings() -> None:
    stuck = backup(
        "b-stuck", at(1), state="running", ancestor=None, lastTransition=at(1), pbmName="2026-12-03T10:00:00Z"
    )
    fine = backup(
        "b-done", at(11), state="running", ancestor=None, lastTransition=at(11), pbmName="2026-12-03T11:00:00Z"
    )
    gone = lease(f"gone-{UID}", at(9))
    found = run(wd.Snapshot(cluster(), [stuck, fine], lease=gone, pbm=wd.PbmView.from_status(PBM_STATUS)))
    assert codes(found) == ["WD004", "WD006", "WD008", "WD008"]
    reps = wd.repairs(found)
    assert [(r.action, r.ref.name, r.resource_version, r.code) for r in reps] == [
        ("mark-backup-error", "b-stuck", "rv-b-stuck", "WD004"),
        ("release-lease", "psmdb-c1-backup-lock", "77", "WD006"),
    ]  # one repair per object; PBM `done` is not repaired: the backup is good
    assert reps[0].message.startswith("marked error by the psmdb-backup watchdog: no progress in state 'running'")
    canceled_only = [f for f in found if f.code == "WD008" and f.pbm_status == "canceled"]
    (r,) = wd.repairs(canceled_only)
    assert r.message == "marked error by the psmdb-backup watchdog: PBM reports the backup canceled"
    assert wd.repairs([f for f in found if f.code == "WD001"]) == []


@pytest.mark.parametrize(
    ("annotations", "everywhere", "want"),
    [
        ({}, False, False),
        ({}, True, True),
        ({wd.REPAIR_ANNOTATION: "true"}, False, True),
        ({wd.REPAIR_ANNOTATION: "no"}, False, False),
    ],
)
def test_repair_opt_in(annotations: dict, everywhere: bool, want: bool) -> None:
    assert wd.repair_enabled(cluster(annotations=annotations), everywhere) is want


# --------------------------------------------------------------------------------------------------- helpers


@pytest.mark.parametrize(
    ("expr", "want"),
    [
        ("0 * * * *", timedelta(hours=1)),
        ("0 1,23 * * *", timedelta(hours=22)),
        ("@every 90m", timedelta(minutes=90)),
        ("0 0 1 * *", timedelta(days=31)),
        ("CRON_TZ=Europe/Berlin 0 3 * * *", timedelta(days=1)),
    ],
)
def test_period(expr: str, want: timedelta) -> None:
    assert wd.period(cron.parse(expr), NOW) == want


@pytest.mark.parametrize(
    ("holder_id", "name"),
    [(f"cron-c1-20261203-abcde-{UID}", "cron-c1-20261203-abcde"), ("no-uid-here", "no-uid-here"), ("", "")],
)
def test_holder_name(holder_id: str, name: str) -> None:
    assert wd.holder_name(holder_id) == name


@pytest.mark.parametrize(
    ("d", "text"),
    [
        (timedelta(seconds=45), "45s"),
        (timedelta(minutes=90), "1h30m"),
        (timedelta(hours=6), "6h"),
        (timedelta(days=3, hours=4, minutes=5), "3d4h"),
    ],
)
def test_human(d: timedelta, text: str) -> None:
    assert wd.human(d) == text


@pytest.mark.parametrize(
    ("v", "want"),
    [
        ("2026-12-03T12:00:00Z", NOW),
        ("2026-12-03T12:00:00.000000Z", NOW),
        ("2026-12-03T12:00:00", None),  # no zone: not RFC 3339 (webhook/times.py)
        ("nonsense", None),
        (None, None),
        (5, None),
    ],
)
def test_parse_time(v: Any, want: datetime | None) -> None:
    assert wd.parse_time(v) == want


def test_findings_are_sorted_and_stable() -> None:
    snap = wd.Snapshot(
        cluster([task()]),
        [
            backup("b2", NOW - timedelta(hours=1), state="", ancestor=None),
            backup("b1", NOW - timedelta(hours=1), state="", ancestor=None),
        ],
        seen_since={"hourly": at(10, 30)},
    )
    found = run(snap)
    assert [(f.code, f.ref.name) for f in found] == [("WD001", "c1"), ("WD004", "b1"), ("WD004", "b2")]
    assert run(snap) == found


@pytest.mark.parametrize("expr", ["0 * * * *", "*/7 * * * *", "CRON_TZ=Asia/Kolkata 30 */3 * * *", "@every 45m"])
def test_a_pass_wide_grid_gives_the_slots_computed_from_the_start(expr: str) -> None:
    """Clusters share one memoised slot grid per expression and pass; it must not change what a cluster sees."""
    sched = cron.parse(expr)
    keyed = [(t, backup(f"b{i}", t)) for i, t in enumerate([at(6, 0, 3), at(7, 0, 5), at(9, 0, 2), at(10, 30)])]
    start, th = at(5, 13, 7), wd.Thresholds()
    shared = wd.match_slots(sched, keyed, start, NOW, th, floor=NOW - timedelta(hours=24))
    own = wd.match_slots(sched, keyed, start, NOW, th)
    assert shared == own and len(own) >= 2 and all(start < s <= NOW for s, _ in own)
    assert any(b is not None for _, b in own)


@pytest.mark.parametrize(
    "snapshot",
    [
        wd.Snapshot({}),
        wd.Snapshot(cluster([{"enabled": True}, "not a task", {**task(), "schedule": None}])),
        wd.Snapshot(cluster([task()]), [{"spec": {"clusterName": "c1"}}, {"metadata": {}, "status": None}]),
        wd.Snapshot(cluster(), [backup("b", NOW, state="running", labels={})], lease={"metadata": {}, "spec": None}),
        wd.Snapshot(cluster(), restores=[{"metadata": {"name": "r"}, "spec": {"clusterName": "c1"}, "status": {}}]),
        wd.Snapshot(
            cluster(),
            schedules=[{"metadata": {"name": "s"}, "spec": {"clusterName": "c1", "startingDeadlineSeconds": "x"}}],
        ),
        wd.Snapshot(
            cluster(), lease=lease(f"x-{UID}", NOW), pbm=wd.PbmView.from_status({"backups": {"snapshot": [None, {}]}})
        ),
    ],
)
def test_incomplete_objects_give_findings_or_nothing_never_an_exception(snapshot: wd.Snapshot) -> None:
    for f in wd.detect(snapshot, NOW):
        assert f.code.startswith("WD") and f.message
