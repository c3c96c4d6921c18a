"""webhook/controller/slo.py (samples) and slo_metrics.py (their exposition)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from webhook.controller import slo, slo_metrics
from webhook.controller import watchdog as wd

NOW = datetime(2026, 12, 3, 12, 0, 0, tzinfo=UTC)
NS = "psmdb"


def ts(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def at(h: int, m: int = 0, day: int = 3) -> datetime:
    return datetime(2026, 12, day, h, m, tzinfo=UTC)


def cluster(name: str = "c1", tasks: list[dict] | None = None, pitr: dict | None = None, enabled: bool = True) -> dict:
    backup: dict[str, Any] = {"enabled": enabled, "tasks": tasks or []}
    if pitr is not None:
        backup["pitr"] = pitr
    return {
        "metadata": {"name": name, "namespace": NS, "creationTimestamp": "2026-11-01T00:00:00Z"},
        "spec": {"backup": backup},
    }


def backup(
    name: str, created: datetime, state: str = "ready", ancestor: str = "daily", storage: str = "s3", **status: Any
) -> dict:
    st = {
        "state": state,
        "storageName": storage,
        **{k: ts(v) if isinstance(v, datetime) else v for k, v in status.items()},
    }
    return {
        "metadata": {
            "name": name,
            "namespace": NS,
            "creationTimestamp": ts(created),
            "labels": {wd.ANCESTOR_LABEL: ancestor} if ancestor else {},
        },
        "spec": {"clusterName": "c1", "storageName": storage},
        "status": st,
    }


def values(samples: list[slo.Sample], metric: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {tuple(sorted(s.labels.items())): s.value for s in samples if s.metric == metric}


def lab(**kw: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted({"namespace": NS, "cluster": "c1", **kw}.items()))


DAILY = {"name": "daily", "enabled": True, "schedule": "0 2 * * *", "storageName": "s3"}


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("1.00GB", 1024**3),
        ("512B", 512),
        ("512.00B", 512),
        ("1.50MB", 1.5 * 1024**2),
        ("3.00KB", 3 * 1024),
        ("2.00TB", 2 * 1024**4),
        ("1.00 GiB", 1024**3),
        ("", None),
        (None, None),
        ("12", None),
        ("1.0XB", None),
    ],
)
def test_size_bytes(text: Any, want: float | None) -> None:
    assert slo.size_bytes(text) == want


def test_last_success_duration_and_size_per_storage_and_ancestor() -> None:
    backups = [
        backup("d1", at(2, day=2), start=at(2, 1, day=2), completed=at(2, 31, day=2), size="1.00GB"),
        backup("d2", at(2), start=at(2, 1), completed=at(2, 21), size="2.00GB"),
        backup("d3", at(3), state="running", start=at(3, 1)),  # not a success
        backup("g1", at(4), storage="gcs", completed=at(4, 10)),  # no start, no size: only the timestamp
        backup("m1", at(5), ancestor="", completed=at(5, 5), start=at(5, 1), size="10.00MB"),  # on-demand
    ]
    got = slo.samples([cluster(tasks=[DAILY])], backups, [], {}, NOW)
    assert values(got, "psmdb_backup_last_success_timestamp_seconds") == {
        lab(storage="s3", ancestor="daily"): at(2, 21).timestamp(),
        lab(storage="gcs", ancestor="daily"): at(4, 10).timestamp(),
        lab(storage="s3", ancestor=""): at(5, 5).timestamp(),
    }
    assert values(got, "psmdb_backup_last_duration_seconds") == {
        lab(storage="s3", ancestor="daily"): 20 * 60,
        lab(storage="s3", ancestor=""): 4 * 60,
    }
    assert values(got, "psmdb_backup_last_size_bytes") == {
        lab(storage="s3", ancestor="daily"): 2 * 1024**3,
        lab(storage="s3", ancestor=""): 10 * 1024**2,
    }


def test_failures_since_the_last_success() -> None:
    backups = [
        backup("e0", at(1, day=1), state="error", ancestor="daily"),  # before the success: forgiven
        backup("d1", at(2, day=2), completed=at(2, 20, day=2)),
        backup("e1", at(2), state="error"),
        backup("e2", at(3), state="error"),
        backup("h1", at(4), state="error", ancestor="hourly"),  # never succeeded
        backup("m1", at(5), state="error", ancestor=""),  # on-demand: ancestor ""
    ]
    got = slo.samples([cluster(tasks=[DAILY])], backups, [], {}, NOW)
    assert values(got, "psmdb_backup_failed_backups") == {
        lab(ancestor="daily"): 2,
        lab(ancestor="hourly"): 1,
        lab(ancestor=""): 1,
    }


def test_an_expected_ancestor_without_backups_reports_zero_failures_and_misses() -> None:
    got = slo.samples([cluster(tasks=[DAILY])], [], [], {}, NOW)
    assert values(got, "psmdb_backup_failed_backups") == {lab(ancestor="daily"): 0}
    assert values(got, "psmdb_backup_missed_slots") == {lab(ancestor="daily"): 0}


def test_periods_of_tasks_and_schedules() -> None:
    tasks = [
        DAILY,
        {**DAILY, "name": "off", "enabled": False},
        {**DAILY, "name": "bad", "schedule": "61 * * * *"},
        {**DAILY, "name": "twice", "schedule": "0 1,23 * * *"},
    ]
    sched = {
        "metadata": {"name": "every", "namespace": NS, "creationTimestamp": "2026-11-01T00:00:00Z"},
        "spec": {"clusterName": "c1", "schedule": "@every 90m"},
    }
    other = {**sched, "spec": {"clusterName": "c2", "schedule": "@every 1m"}}
    got = slo.samples([cluster(tasks=tasks)], [], [sched, other], {}, NOW)
    assert values(got, "psmdb_backup_schedule_period_seconds") == {
        lab(ancestor="daily", source="task"): 86400,
        lab(ancestor="twice", source="task"): 22 * 3600,
        lab(ancestor="every", source="schedule"): 5400,
    }


def test_counts_from_the_watchdogs_findings() -> None:
    c = cluster(tasks=[{**DAILY, "name": "hourly", "schedule": "0 * * * *"}])
    backups = [
        backup("stuck", NOW - timedelta(hours=1), state="", ancestor=""),
        backup("ok", at(8, 0), ancestor="hourly", completed=at(8, 10)),
        backup("failed", at(11, 0), state="error", ancestor="hourly"),
    ]
    snap = wd.Snapshot(c, backups, seen_since={"hourly": at(8, 30)})
    findings = wd.detect(snap, NOW)
    got = slo.samples([c, cluster("c2")], backups, [], {}, NOW, findings)
    assert values(got, "psmdb_backup_missed_slots") == {lab(ancestor="hourly"): 2}  # 09:00, 10:00
    assert values(got, "psmdb_backup_stuck_operations") == {
        lab(kind="backup"): 1,
        lab(kind="restore"): 0,
        (("cluster", "c2"), ("kind", "backup"), ("namespace", NS)): 0,
        (("cluster", "c2"), ("kind", "restore"), ("namespace", NS)): 0,
    }
    assert values(got, "psmdb_backup_watchdog_findings") == {
        lab(reason="MissedSlots", severity="warning"): 1,
        lab(reason="BackupFailed", severity="error"): 1,
        lab(reason="BackupStuck", severity="warning"): 1,
    }


@pytest.mark.parametrize(
    ("pbm", "restorable", "want"),
    [
        (None, [], None),
        (None, [at(11, 50), at(10)], at(11, 50)),
        (wd.PbmView(pitr_latest=at(11, 58)), [at(11, 50)], at(11, 58)),
        (wd.PbmView(), [at(11, 50)], at(11, 50)),  # PBM read without a PITR answer: the operator's value
    ],
)
def test_pitr_latest_restorable_time(pbm: wd.PbmView | None, restorable: list[datetime], want: datetime | None) -> None:
    backups = [backup(f"b{i}", at(1), latestRestorableTime=t) for i, t in enumerate(restorable)]
    got = slo.samples([cluster()], backups, [], {(NS, "c1"): pbm} if pbm else {}, NOW)
    assert values(got, "psmdb_backup_pitr_latest_restorable_timestamp_seconds") == (
        {lab(): want.timestamp()} if want else {}
    )


@pytest.mark.parametrize(
    ("pitr", "enabled", "want"),
    [
        ({"enabled": True, "oplogSpanMin": 15}, True, 900),
        ({"enabled": True, "oplogSpanMin": "2.5"}, True, 150),
        ({"enabled": True}, True, 600),
        ({"enabled": True, "oplogSpanMin": "x"}, True, 600),
        ({"enabled": False, "oplogSpanMin": 15}, True, None),
        ({"enabled": True}, False, None),
        (None, True, None),
    ],
)
def test_pitr_oplog_span(pitr: dict | None, enabled: bool, want: float | None) -> None:
    got = slo.samples([cluster(pitr=pitr, enabled=enabled)], [], [], {}, NOW)
    assert values(got, "psmdb_backup_pitr_oplog_span_seconds") == ({lab(): want} if want else {})


def test_every_sample_carries_exactly_its_metrics_labels() -> None:
    c = cluster(tasks=[DAILY], pitr={"enabled": True})
    backups = [backup("d", at(2), start=at(2), completed=at(2, 5), size="1.00MB", latestRestorableTime=at(11))]
    got = slo.samples([c], backups, [], {}, NOW, wd.detect(wd.Snapshot(c, backups), NOW))
    assert {s.metric for s in got} == set(slo.METRICS) - {"psmdb_backup_watchdog_findings"}
    for s in got:
        assert set(s.labels) == set(slo.METRICS[s.metric][1]), s


# --------------------------------------------------------------------------------------------------- exposition


def scrape(m: slo_metrics.SloMetrics) -> dict[str, list[tuple[dict[str, str], float]]]:
    text = generate_latest(m.registry).decode()
    return {f.name: [(s.labels, s.value) for s in f.samples] for f in text_string_to_metric_families(text)}


def test_metrics_are_declared_before_the_first_pass_and_replaced_by_each_pass() -> None:
    m = slo_metrics.SloMetrics()
    text = generate_latest(m.registry).decode()
    for name, (doc, _) in slo.METRICS.items():
        assert f"# TYPE {name} gauge" in text and f"# HELP {name} {doc}" in text
    m.update([slo.Sample("psmdb_backup_missed_slots", {"namespace": NS, "cluster": "c1", "ancestor": "a"}, 3)])
    assert scrape(m)["psmdb_backup_missed_slots"] == [({"namespace": NS, "cluster": "c1", "ancestor": "a"}, 3.0)]
    m.update([slo.Sample("psmdb_backup_missed_slots", {"namespace": NS, "cluster": "c2", "ancestor": "b"}, 1)])
    assert scrape(m)["psmdb_backup_missed_slots"] == [({"namespace": NS, "cluster": "c2", "ancestor": "b"}, 1.0)]


def test_an_undeclared_metric_is_refused_and_keeps_the_previous_pass() -> None:
    m = slo_metrics.SloMetrics()
    m.update([slo.Sample("psmdb_backup_missed_slots", {"namespace": NS, "cluster": "c1", "ancestor": "a"}, 3)])
    with pytest.raises(ValueError, match="psmdb_backup_nope"):
        m.update([slo.Sample("psmdb_backup_nope", {}, 1)])
    assert scrape(m)["psmdb_backup_missed_slots"][0][1] == 3.0


def test_incomplete_objects_give_samples_or_nothing_never_an_exception() -> None:
    broken_backups = [
        {"metadata": {"namespace": NS}, "spec": {"clusterName": "c1"}, "status": {"state": "ready"}},
        {"metadata": {"namespace": NS, "creationTimestamp": "bad"}, "spec": {"clusterName": "c1"}, "status": None},
        backup("e", at(1), state="error", size=5, start="x"),
    ]
    scheds = [{"metadata": {"namespace": NS, "name": "s"}, "spec": {"clusterName": "c1", "schedule": 5}}]
    got = slo.samples([{}, cluster(pitr={"enabled": True, "oplogSpanMin": None})], broken_backups, scheds, {}, NOW)
    assert values(got, "psmdb_backup_failed_backups") == {lab(ancestor="daily"): 1, lab(ancestor="s"): 0}
