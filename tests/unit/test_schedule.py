"""Scheduling decisions of the controller: one backup per slot, missed slots after downtime, retention."""

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from webhook import cron
from webhook.controller.schedule import (
    CONCURRENCY_FORBID,
    DEADLINE_EXCEEDED,
    SUPERSEDED,
    SUSPENDED,
    backup_for_slot,
    decide,
    due,
    format_slot,
    handled_since,
    parse_slot,
    retention_victims,
    schedule_backup_name,
    slot_backup_name,
)

UTC = UTC
T0 = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
S, M = timedelta(seconds=1), timedelta(minutes=1)


def test_slot_names_are_deterministic_and_distinct_per_task() -> None:
    a = slot_backup_name("psmdb", "my-cluster", "daily", T0)
    assert a == slot_backup_name("psmdb", "my-cluster", "daily", T0)
    assert a.startswith("cron-my-cluster-20261124100000-")
    assert a != slot_backup_name("psmdb", "my-cluster", "weekly", T0)
    assert a != slot_backup_name("psmdb", "my-cluster", "daily", T0 + timedelta(days=1))
    long = slot_backup_name("ns", "a-very-long-cluster-name-indeed", "t", T0)
    assert long.startswith("cron-a-very-long-clus-2026") and len(long) <= 63


def test_on_time_slot_runs() -> None:
    d = due(cron.parse("0 * * * *"), since=T0, now=T0 + timedelta(hours=1, seconds=3), starting_deadline=None)
    assert d.run == T0 + timedelta(hours=1) and d.missed == () and d.next == T0 + timedelta(hours=2)


def test_after_downtime_only_the_latest_slot_runs_within_the_deadline() -> None:
    now = T0 + timedelta(hours=5, seconds=30)
    d = due(cron.parse("0 * * * *"), since=T0, now=now, starting_deadline=timedelta(minutes=2))
    assert d.run == T0 + timedelta(hours=5)
    assert d.missed == tuple(T0 + timedelta(hours=h) for h in range(1, 5))


def test_latest_slot_past_its_deadline_is_missed_not_run() -> None:
    now = T0 + timedelta(hours=5, minutes=10)
    d = due(cron.parse("0 * * * *"), since=T0, now=now, starting_deadline=timedelta(minutes=2))
    assert d.run is None and len(d.missed) == 5


def test_nothing_due_before_the_first_slot() -> None:
    d = due(cron.parse("@daily"), since=T0, now=T0 + timedelta(hours=1), starting_deadline=None)
    assert d.run is None and d.missed == () and d.next == datetime(2026, 11, 25, tzinfo=UTC)


def test_very_long_downtime_is_bounded() -> None:
    d = due(cron.parse("* * * * *"), since=T0 - timedelta(days=400), now=T0, starting_deadline=timedelta(seconds=90))
    assert d.run == T0 and len(d.missed) > 5_000


@settings(max_examples=100, deadline=None)
@given(minutes=st.integers(0, 60 * 24), deadline=st.one_of(st.none(), st.integers(1, 7200)))
def test_at_most_one_run_and_every_slot_accounted(minutes: int, deadline) -> None:
    schedule = cron.parse("*/15 * * * *")
    now = T0 + timedelta(minutes=minutes, seconds=7)
    d = due(schedule, since=T0, now=now, starting_deadline=None if deadline is None else timedelta(seconds=deadline))
    slots = [s for s in schedule.next_n(T0, 100) if s <= now]
    assert sorted(((d.run,) if d.run else ()) + d.missed) == slots
    assert d.run is None or d.run == slots[-1]


def b(name: str, created: str, state: str = "ready") -> dict:
    return {"metadata": {"name": name, "creationTimestamp": created}, "status": {"state": state}}


def test_retention_keeps_the_newest_ready_and_never_touches_others() -> None:
    items = [
        b("b1", "2026-11-01T00:00:00Z"),
        b("b2", "2026-11-02T00:00:00Z", "error"),
        b("b3", "2026-11-03T00:00:00Z"),
        b("b4", "2026-11-04T00:00:00Z"),
        b("b5", "2026-11-05T00:00:00Z", "running"),
    ]
    assert [x["metadata"]["name"] for x in retention_victims(items, keep=2, task_type="logical")] == ["b1"]
    assert retention_victims(items, keep=3, task_type="logical") == []
    assert retention_victims(items, keep=1, task_type="incremental") == []
    assert retention_victims(items, keep=0, task_type="logical") == []
    assert [x["metadata"]["name"] for x in retention_victims(items, keep=1, task_type="incremental-base")] == [
        "b1",
        "b3",
    ]


def test_very_long_downtime_reports_each_slot_once() -> None:
    # 5,000 hourly steps end about 12 hours before now: the catch-up walk must not start again a day before now
    since = T0 - timedelta(hours=5_012)
    d = due(cron.parse("0 * * * *"), since=since, now=T0, starting_deadline=None)
    assert d.run == T0 and len(set(d.missed)) == len(d.missed) == 5_011


# --- PerconaServerMongoDBBackupSchedule ---------------------------------------------------------------------------

H = timedelta(hours=1)
HOURLY = cron.parse("0 * * * *")


@pytest.mark.parametrize(
    ("case", "now", "kw", "create", "skipped", "handled"),
    [
        ("nothing due yet", T0 + 30 * M, {}, None, [], T0),
        ("on time", T0 + H + 3 * S, {}, T0 + H, [], T0 + H),
        ("exactly at the slot", T0 + H, {}, T0 + H, [], T0 + H),
        ("late but within the deadline", T0 + H + 119 * S, {"starting_deadline_seconds": 120}, T0 + H, [], T0 + H),
        ("exactly the deadline", T0 + H + 120 * S, {"starting_deadline_seconds": 120}, T0 + H, [], T0 + H),
        (
            "past the deadline",
            T0 + H + 121 * S,
            {"starting_deadline_seconds": 120},
            None,
            [(T0 + H, DEADLINE_EXCEEDED)],
            T0 + H,
        ),
        (
            "downtime: latest runs, older superseded",
            T0 + 3 * H + 10 * S,
            {"starting_deadline_seconds": 120},
            T0 + 3 * H,
            [(T0 + H, SUPERSEDED), (T0 + 2 * H, SUPERSEDED)],
            T0 + 3 * H,
        ),
        (
            "downtime past the deadline: all missed",
            T0 + 3 * H + 5 * M,
            {"starting_deadline_seconds": 120},
            None,
            [(T0 + H, SUPERSEDED), (T0 + 2 * H, SUPERSEDED), (T0 + 3 * H, DEADLINE_EXCEEDED)],
            T0 + 3 * H,
        ),
        ("no deadline: a late slot still runs", T0 + H + 50 * M, {}, T0 + H, [], T0 + H),
        ("deadline 0 is no limit", T0 + H + 50 * M, {"starting_deadline_seconds": 0}, T0 + H, [], T0 + H),
        (
            "suspended: skipped, not missed",
            T0 + 2 * H + S,
            {"suspend": True},
            None,
            [(T0 + H, SUSPENDED), (T0 + 2 * H, SUSPENDED)],
            T0 + 2 * H,
        ),
        (
            "Forbid with an earlier Backup unfinished",
            T0 + H + S,
            {"unfinished": [T0]},
            None,
            [(T0 + H, CONCURRENCY_FORBID)],
            T0 + H,
        ),
        (
            "Forbid with an unfinished Backup of unknown slot",
            T0 + H + S,
            {"unfinished": [None]},
            None,
            [(T0 + H, CONCURRENCY_FORBID)],
            T0 + H,
        ),
        ("Forbid: this slot's own Backup exists (retry)", T0 + H + S, {"unfinished": [T0 + H]}, T0 + H, [], T0 + H),
        ("Forbid: own Backup exists beside an older one", T0 + H + S, {"unfinished": [T0, T0 + H]}, T0 + H, [], T0 + H),
        (
            "Allow with an earlier Backup unfinished",
            T0 + H + S,
            {"unfinished": [T0], "concurrency_policy": "Allow"},
            T0 + H,
            [],
            T0 + H,
        ),
        ("Forbid and nothing unfinished", T0 + H + S, {"concurrency_policy": "Forbid"}, T0 + H, [], T0 + H),
        (
            "Forbid after downtime: superseded and forbidden",
            T0 + 2 * H + S,
            {"unfinished": [T0]},
            None,
            [(T0 + H, SUPERSEDED), (T0 + 2 * H, CONCURRENCY_FORBID)],
            T0 + 2 * H,
        ),
        ("clock behind the mark", T0 - H, {}, None, [], T0),
    ],
)
def test_decide(case: str, now: datetime, kw: dict, create, skipped: list, handled: datetime) -> None:
    d = decide(HOURLY, namespace="ns", name="nightly", since=T0, now=now, **kw)
    assert d.create == create, case
    assert [(s.slot, s.reason) for s in d.skipped] == skipped, case
    assert d.handled == handled, case
    assert d.backup_name == (None if create is None else schedule_backup_name("ns", "nightly", create)), case
    assert d.missed == tuple(s for s in d.skipped if s.reason != SUSPENDED), case
    assert d.next == HOURLY.next(max(now, T0)), case


def test_decide_every_keeps_its_grid_from_the_last_slot() -> None:
    every = cron.parse("@every 10m")
    d = decide(every, namespace="ns", name="s", since=T0, now=T0 + 10 * M + 40 * S)
    assert d.create == T0 + 10 * M and d.next == T0 + 20 * M  # not now + 10m


def test_decide_rejects_an_unknown_policy() -> None:
    with pytest.raises(ValueError, match="concurrencyPolicy must be one of Forbid, Allow, not 'Replace'"):
        decide(HOURLY, namespace="ns", name="s", since=T0, now=T0, concurrency_policy="Replace")


def test_decide_each_slot_handled_once_across_calls() -> None:
    """Deciding repeatedly with the returned mark runs every slot at most once and accounts for all of them."""
    since, seen = T0, []
    for minutes in (5, 61, 62, 130, 190, 400, 400, 401):
        d = decide(HOURLY, namespace="ns", name="s", since=since, now=T0 + minutes * M, starting_deadline_seconds=600)
        seen += ([d.create] if d.create else []) + [s.slot for s in d.skipped]
        since = d.handled
    assert seen == [T0 + h * H for h in range(1, 7)]


def test_schedule_backup_names() -> None:
    a = schedule_backup_name("ns", "nightly", T0)
    assert a == "nightly-20261124100000-" + a.rsplit("-", 1)[1] and len(a.rsplit("-", 1)[1]) == 6
    assert a == schedule_backup_name("ns", "nightly", T0.astimezone(timezone(timedelta(hours=5))))
    assert a != schedule_backup_name("other", "nightly", T0)
    assert a != schedule_backup_name("ns", "nightly", T0 + S)
    long_a = schedule_backup_name("ns", "x" * 40 + "-a" + "y" * 200, T0)
    long_b = schedule_backup_name("ns", "x" * 40 + "-b" + "y" * 200, T0)
    assert long_a != long_b and long_a.startswith("x" * 40 + "-20261124100000-")  # trailing '-' of the cut dropped
    for n in (long_a, long_b, schedule_backup_name("ns", "a" * 253, T0), a):
        assert len(n) <= 63 and re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", n), n


def test_slot_annotation_round_trip() -> None:
    assert format_slot(T0) == "2026-11-24T10:00:00Z" and parse_slot("2026-11-24T10:00:00Z") == T0
    assert parse_slot("2026-11-24T11:00:00+01:00") == T0
    for bad in (None, "", "yesterday", "2026-11-24T10:00:00", 17):
        assert parse_slot(bad) is None


def _schedule_obj(**spec) -> dict:
    return {
        "metadata": {"name": "nightly", "namespace": "db"},
        "spec": {"clusterName": "my-cluster", "schedule": "0 * * * *", "storageName": "s3", **spec},
    }


def test_backup_for_slot() -> None:
    got = backup_for_slot(_schedule_obj(compressionType="zstd", compressionLevel=3), T0)
    assert got == {
        "apiVersion": "psmdb.percona.com/v1",
        "kind": "PerconaServerMongoDBBackup",
        "metadata": {
            "name": schedule_backup_name("db", "nightly", T0),
            "namespace": "db",
            "labels": {
                "percona.com/backup-ancestor": "nightly",
                "percona.com/cluster": "my-cluster",
                "percona.com/backup-type": "cron",
                "psmdb-backup-webhook.io/schedule": "nightly",
            },
            "annotations": {"psmdb-backup-webhook.io/slot": "2026-11-24T10:00:00Z"},
            "finalizers": ["percona.com/delete-backup"],
        },
        "spec": {
            "clusterName": "my-cluster",
            "type": "logical",
            "storageName": "s3",
            "compressionType": "zstd",
            "compressionLevel": 3,
        },
    }


def test_backup_for_slot_without_delete_from_storage() -> None:
    got = backup_for_slot(_schedule_obj(retention={"deleteFromStorage": False, "count": 3}), T0)
    assert "finalizers" not in got["metadata"]


def test_backup_for_slot_storage() -> None:
    main = backup_for_slot(_schedule_obj(type="physical", storageName=None), T0, storage_name="main-s3")
    assert main["spec"] == {"clusterName": "my-cluster", "type": "physical", "storageName": "main-s3"}
    named = backup_for_slot(_schedule_obj(), T0, storage_name="main-s3")  # the schedule's own storage wins
    assert named["spec"]["storageName"] == "s3"
    with pytest.raises(ValueError, match="schedule db/nightly names no storageName and no main storage was given"):
        backup_for_slot(_schedule_obj(storageName=None), T0)


def test_handled_since_takes_the_newest_slot_backup() -> None:
    def annotated(slot: object) -> dict:
        return {"metadata": {"name": "x", "annotations": {"psmdb-backup-webhook.io/slot": slot}}}

    backups = [annotated(format_slot(T0 + H)), annotated(format_slot(T0 + 3 * H)), annotated("junk"), {"metadata": {}}]
    assert handled_since(T0, backups) == T0 + 3 * H
    assert handled_since(T0 + 5 * H, backups) == T0 + 5 * H
    assert handled_since(T0, []) == T0
