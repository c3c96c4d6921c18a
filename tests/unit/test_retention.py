"""Retention of a schedule's Backups (webhook/controller/retention.py): which go, which never go, and why."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from webhook.controller.retention import FAILED_KEPT, Policy, parse_max_age, victims

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)  # a Tuesday
D, H = timedelta(days=1), timedelta(hours=1)


def rfc(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def bk(
    name: str,
    age: timedelta | None,
    state: str = "ready",
    kind: str | None = None,
    *,
    slot: timedelta | None = None,
    start: timedelta | None = None,
    deleting: bool = False,
) -> dict[str, Any]:
    """A Backup created `age` before NOW (None: no creationTimestamp)."""
    meta: dict[str, Any] = {"name": name}
    if age is not None:
        meta["creationTimestamp"] = rfc(NOW - age)
    if slot is not None:
        meta["annotations"] = {"psmdb-backup-webhook.io/slot": rfc(NOW - slot)}
    if deleting:
        meta["deletionTimestamp"] = rfc(NOW)
    status: dict[str, Any] = {"state": state} if state else {}
    if kind:
        status["type"] = kind
    if start is not None:
        status["start"] = rfc(NOW - start)
    return {"metadata": meta, "spec": {"clusterName": "c"}, "status": status}


def names(items: list[tuple[dict[str, Any], str]]) -> list[str]:
    return [b["metadata"]["name"] for b, _ in items]


def daily(n: int, state: str = "ready", kind: str | None = None, prefix: str = "d") -> list[dict[str, Any]]:
    """n Backups, one a day, `<prefix><k>` made k days ago (k = 1..n)."""
    return [bk(f"{prefix}{k}", k * D, state, kind) for k in range(1, n + 1)]


INC, BASE = "incremental", "incremental-base"

CASES: list[tuple[str, list[dict[str, Any]], Policy, list[str]]] = [
    ("empty", [], Policy(count=1), []),
    ("no rule set: nothing goes", daily(9), Policy(), []),
    ("count keeps the newest", daily(4), Policy(count=2), ["d4", "d3"]),
    ("count above the number of backups", daily(3), Policy(count=5), []),
    (
        "unfinished never go and do not count",
        [*daily(3), bk("new", 0 * D, ""), bk("w", H, "waiting"), bk("req", H, "requested"), bk("run", H, "running")],
        Policy(count=1),
        ["d3", "d2"],
    ),
    ("unknown state is not finished", [*daily(2), bk("odd", 9 * D, "paused")], Policy(count=1), ["d2"]),
    ("being deleted: not listed again", [*daily(2), bk("gone", 9 * D, deleting=True)], Policy(count=1), ["d2"]),
    (
        "all failed: only beyond the newest failed ones",
        daily(FAILED_KEPT + 2, "error"),
        Policy(count=1),
        [f"d{FAILED_KEPT + 2}", f"d{FAILED_KEPT + 1}"],
    ),
    ("all failed, few", daily(FAILED_KEPT, "error"), Policy(count=1), []),
    (
        "failed beside ready",
        [*daily(3), *daily(FAILED_KEPT + 1, "error", prefix="e")],
        Policy(count=2),
        [f"e{FAILED_KEPT + 1}", "d3"],
    ),
    ("failed are kept without a rule", daily(FAILED_KEPT + 3, "error"), Policy(), []),
    ("maxAge alone", [bk("a", 3 * D), bk("b", 2 * D), bk("c", 12 * H), bk("d", H)], Policy(max_age=D), ["a", "b"]),
    ("maxAge: the newest ready stays even if too old", [bk("a", 9 * D), bk("b", 8 * D)], Policy(max_age=D), ["a"]),
    ("maxAge bounds count", daily(5), Policy(count=4, max_age=2 * D + H), ["d5", "d4", "d3"]),
    ("count bounds maxAge", [bk(f"h{k}", k * H) for k in range(1, 6)], Policy(count=2, max_age=D), ["h5", "h4", "h3"]),
    ("a clock-skewed future backup is young", [bk("f", -H), bk("a", 3 * D)], Policy(max_age=D), ["a"]),
    (
        "keepDaily: the newest of each of the last days",
        [bk("t1", 2 * H), bk("t2", 3 * H), bk("y1", D), bk("y2", D + H), bk("o1", 2 * D), bk("o2", 3 * D)],
        Policy(keep_daily=2),
        ["o2", "o1", "y2", "t2"],
    ),
    (
        "keepDaily: days without a backup do not count",
        [bk("a", H), bk("b", 5 * D), bk("c", 9 * D), bk("d", 9 * D + H)],
        Policy(keep_daily=3),
        ["d"],
    ),
    (
        "keepDaily counts UTC days, not 24-hour spans",
        [bk("mon-late", 12 * H + 30 * timedelta(minutes=1)), bk("tue-early", 11 * H)],
        Policy(keep_daily=1),
        ["mon-late"],
    ),
    (
        # NOW is Tuesday 2026-11-24: Monday 23rd starts ISO week 48; Sunday 22nd ends week 47
        "keepWeekly follows ISO weeks (Monday starts one)",
        [bk("mon", D), bk("sun", 2 * D), bk("sat", 3 * D), bk("prev-sun", 9 * D), bk("old", 20 * D)],
        Policy(keep_weekly=2),
        ["old", "prev-sun", "sat"],
    ),
    (
        "keepMonthly",
        [bk("nov", 2 * D), bk("nov-old", 20 * D), bk("oct", 30 * D), bk("sep", 70 * D)],
        Policy(keep_monthly=2),
        ["sep", "nov-old"],
    ),
    (
        "GFS: a backup kept by any rule stays",
        [bk(f"d{k}", k * D) for k in range(1, 16)],
        Policy(keep_daily=3, keep_weekly=2),
        # kept: d1 d2 d3 (days), d1 (week 48), d2 (Sun 22nd, week 47): the rest go
        [f"d{k}" for k in range(15, 3, -1)],
    ),
    (
        "GFS with maxAge: old period winners still go",
        [bk(f"d{k}", k * D) for k in range(1, 6)],
        Policy(keep_daily=5, max_age=3 * D),
        ["d5", "d4"],
    ),
    (
        "ties in time: the name decides, never the input order",
        [bk("b", D), bk("a", D), bk("c", D)],
        Policy(count=1),
        ["a", "b"],
    ),
    (
        "the newest is the last name among equal times",
        [bk("z", D), bk("y", D)],
        Policy(max_age=H),
        ["y"],
    ),
    (
        "no timestamps: never deleted, never the newest",
        [bk("undated", None), bk("old", 5 * D), bk("new", D)],
        Policy(count=1),
        ["old"],
    ),
    ("undated failed ones stay", [*daily(FAILED_KEPT + 1, "error"), bk("u", None, "error")], Policy(count=1), ["d6"]),
    (
        "the slot annotation dates a backup before its creation time",
        [bk("late", H, slot=3 * D), bk("other", 2 * D)],
        Policy(count=1),
        ["late"],
    ),
    (
        "a bad slot annotation falls back to creationTimestamp",
        [
            {
                **bk("x", 3 * D),
                "metadata": {**bk("x", 3 * D)["metadata"], "annotations": {"psmdb-backup-webhook.io/slot": "soon"}},
            },
            bk("y", D),
        ],
        Policy(count=1),
        ["x"],
    ),
    # --- incremental chains: a schedule of incrementals whose base comes from another schedule (see OTHERS)
    (
        "a kept incremental keeps every earlier member of its chain",
        [bk(f"i{k}", k * D, kind=INC) for k in (4, 5, 6)],  # chain of base `b7` (others)
        Policy(count=1),
        [],
    ),
    (
        "chain in the middle of the window: the older chain goes, the kept chain stays",
        [bk(f"i{k}", k * D, kind=INC) for k in (1, 2, 4, 5, 6)],  # base `b3` (others) started chain 2 three days ago
        Policy(count=2),
        ["i6", "i5", "i4"],
    ),
    (
        "maxAge does not break a kept chain",
        [bk(f"i{k}", k * D, kind=INC) for k in (1, 2)],
        Policy(count=1, max_age=H),
        [],
    ),
    (
        "a failed incremental is not a chain member",
        [bk("i1", D, kind=INC), bk("i2", 2 * D, "error", INC), bk("i4", 4 * D, kind=INC)],
        Policy(count=1),
        ["i4"],
    ),
]

# the cluster's other Backups for the chain cases: bases made by a weekly schedule
OTHERS = [bk("b3", 3 * D, kind=BASE, start=3 * D + H), bk("b7", 7 * D, kind=BASE, start=7 * D + H)]


@pytest.mark.parametrize(("case", "backups", "policy", "expected"), CASES, ids=[c[0] for c in CASES])
def test_victims(case: str, backups: list[dict[str, Any]], policy: Policy, expected: list[str]) -> None:
    assert names(victims(backups, policy, NOW, others=OTHERS)) == expected
    assert names(victims(list(reversed(backups)), policy, NOW, others=OTHERS)) == expected  # order-independent


def test_bases_needed_by_another_schedules_incrementals_stay() -> None:
    bases = [bk(f"b{k}", k * D, kind=BASE) for k in (6, 13, 20)]
    incs = [bk("i19", 19 * D, kind=INC), bk("i12", 12 * D, kind=INC), bk("i5", 5 * D, kind=INC)]
    assert victims(bases, Policy(count=1), NOW, others=incs) == []
    # once the other schedule's retention dropped chain 1's increments, its base may go
    assert names(victims(bases, Policy(count=1), NOW, others=incs[1:])) == ["b20"]
    # an increment being deleted no longer needs its base
    gone = bk("i19", 19 * D, kind=INC, deleting=True)
    assert names(victims(bases, Policy(count=1), NOW, others=[gone, *incs[1:]])) == ["b20"]


def test_a_base_is_not_needed_by_increments_of_a_later_chain() -> None:
    bases = [bk("b1", D, kind=BASE), bk("b9", 9 * D, kind=BASE)]
    assert names(victims(bases, Policy(count=1), NOW, others=[bk("i0", H, kind=INC)])) == ["b9"]


def test_chain_order_is_pbm_start_not_creation() -> None:
    # created in the other order than PBM started them: i2 started before base b (a retried Backup), so it is in
    # the older chain of b9, which therefore stays
    bases = [bk("b", 3 * D, kind=BASE, start=3 * D), bk("b9", 9 * D, kind=BASE, start=9 * D)]
    inc = bk("i2", 2 * D, kind=INC, start=4 * D)
    assert victims(bases, Policy(count=1), NOW, others=[inc]) == []
    inc_pbm_name = bk("i2", 2 * D, kind=INC)
    inc_pbm_name["status"]["pbmName"] = rfc(NOW - 4 * D)  # no status.start: the PBM name is its start time
    assert victims(bases, Policy(count=1), NOW, others=[inc_pbm_name]) == []
    assert names(victims(bases, Policy(count=1), NOW, others=[bk("i2", 2 * D, kind=INC)])) == ["b9"]


def test_an_unfinished_incremental_keeps_the_newest_chain() -> None:
    # the schedule was incremental, now logical; an on-demand incremental is about to build on i2
    ours = [
        bk("i3", 3 * D, kind=INC),
        bk("i2", 2 * D, kind=INC),
        bk("l1", D, kind="logical"),
        bk("l0", H, kind="logical"),
    ]
    base = bk("b4", 4 * D, kind=BASE)
    assert names(victims(ours, Policy(count=2), NOW, others=[base])) == ["i3", "i2"]
    assert victims(ours, Policy(count=2), NOW, others=[base, bk("od", 0 * D, "waiting", INC)]) == []
    assert names(victims(ours, Policy(count=2), NOW, others=[base, bk("od", 0 * D, "error", INC)])) == ["i3", "i2"]


def test_spec_type_when_status_has_none() -> None:
    inc = bk("i3", 3 * D)  # not started yet by the operator's status writer: only spec.type says incremental
    inc["spec"]["type"] = INC
    bases = [bk("b5", 5 * D, kind=BASE), bk("b1", D, kind=BASE)]
    assert victims(bases, Policy(count=1), NOW, others=[inc]) == []
    assert names(victims(bases, Policy(count=1), NOW, others=[bk("l3", 3 * D)])) == ["b5"]


@pytest.mark.parametrize(
    ("backups", "policy", "reason"),
    [
        (daily(2), Policy(count=1), "kept by none of count 1"),
        (
            daily(2),
            Policy(count=1, keep_daily=1, keep_weekly=0, keep_monthly=0),
            "kept by none of count 1, keepDaily 1",
        ),
        (daily(9), Policy(keep_weekly=1, keep_monthly=1), "kept by none of keepWeekly 1, keepMonthly 1"),
        (daily(2), Policy(max_age=H), "older than maxAge 1:00:00"),
        (
            daily(FAILED_KEPT + 1, "error"),
            Policy(count=1),
            f"failed, and not one of the newest {FAILED_KEPT} failed backups",
        ),
    ],
)
def test_reasons(backups: list[dict[str, Any]], policy: Policy, reason: str) -> None:
    got = victims(backups, policy, NOW)
    assert got and got[-1][1] == reason


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("7d", 7 * D),
        ("36h", 36 * H),
        ("1w3d", 10 * D),
        ("90m", timedelta(minutes=90)),
        ("1d1d", 2 * D),
        ("0m", timedelta()),
    ],
)
def test_max_age(text: str, expected: timedelta) -> None:
    assert parse_max_age(text) == expected


@pytest.mark.parametrize("text", ["", "7", "7s", "d7", "1.5h", "7d ", "-1d", "7D"])
def test_bad_max_age(text: str) -> None:
    with pytest.raises(ValueError, match="maxAge must be one or more <number><unit> with units w, d, h, m"):
        parse_max_age(text)


def test_policy_from_spec() -> None:
    assert Policy.from_spec(None) == Policy() and not Policy().active
    spec = {"count": 3, "maxAge": "2w", "keepDaily": 7, "keepWeekly": 4, "keepMonthly": 6, "deleteFromStorage": False}
    assert Policy.from_spec(spec) == Policy(3, 14 * D, 7, 4, 6)
    assert Policy.from_spec({"maxAge": "1d"}).active and not Policy.from_spec({"maxAge": "1d"}).keeps
    assert not Policy.from_spec({"count": 0, "deleteFromStorage": True}).active


STATES = st.sampled_from(["ready", "ready", "ready", "error", "", "waiting", "running"])


@settings(max_examples=200, deadline=None)
@given(
    items=st.lists(
        st.tuples(st.one_of(st.none(), st.integers(-2, 2000)), STATES, st.sampled_from([None, INC, BASE])), max_size=25
    ),
    count=st.integers(0, 5),
    daily_=st.integers(0, 4),
    max_age_h=st.one_of(st.none(), st.integers(0, 500)),
)
def test_invariants(
    items: list[tuple[int | None, str, str | None]], count: int, daily_: int, max_age_h: int | None
) -> None:
    backups = [bk(f"b{i:02}", None if h is None else h * H, s, k) for i, (h, s, k) in enumerate(items)]
    policy = Policy(count=count, keep_daily=daily_, max_age=None if max_age_h is None else max_age_h * H)
    got = victims(backups, policy, NOW)
    gone = {b["metadata"]["name"] for b, _ in got}
    assert len(gone) == len(got)
    ready = [(NOW - h * H, f"b{i:02}") for i, (h, s, _) in enumerate(items) if s == "ready" and h is not None]
    for i, (h, state, _) in enumerate(items):
        if f"b{i:02}" in gone:
            assert state in ("ready", "error") and h is not None
    if ready:
        assert max(ready)[1] not in gone
    if not policy.active:
        assert got == []
    assert names(victims(list(reversed(backups)), policy, NOW)) == names(got)
