"""Scheduling decisions of the controller: one backup per slot, missed slots after downtime, retention."""

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from webhook import cron
from webhook.controller.schedule import due, retention_victims, slot_backup_name

UTC = UTC
T0 = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


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
