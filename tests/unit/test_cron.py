"""webhook.cron against the vectors generated with the operator's real parser (robfig/cron v3.0.1).

The vectors are the arbiter (tests/data/cron/README.md says where they come from): every verdict, error text and next time must match.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from croniter import croniter
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from webhook import cron

VECTORS_PATH = Path(__file__).resolve().parents[1] / "data/cron/cron-vectors.jsonl"


def _load_vectors() -> list[dict]:
    if not VECTORS_PATH.is_file():
        return []  # test_vectors_file_is_present fails loudly
    lines = [json.loads(line) for line in VECTORS_PATH.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [v for v in lines if "_about" not in v]


VECTORS = _load_vectors()


def _id(expr: str) -> str:
    return expr if len(expr) <= 80 else f"{expr[:60]}...({len(expr)} chars)"


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_vectors_file_is_present() -> None:
    assert VECTORS_PATH.is_file(), f"cron vectors missing: {VECTORS_PATH} (they decide the dialect; do not skip)"
    assert len(VECTORS) == 357


@pytest.mark.parametrize("vector", VECTORS, ids=[_id(v["expr"]) for v in VECTORS])
def test_vector(vector: dict) -> None:
    expr = vector["expr"]
    if vector["valid"]:
        schedule = cron.parse(expr)
        got = [t.strftime("%Y-%m-%dT%H:%M:%SZ") for t in schedule.next_n(_utc(vector["ref"]), 3)]
        assert got == vector["next_utc"]
        assert all(t.tzinfo == UTC for t in schedule.next_n(_utc(vector["ref"]), 3))
    else:
        with pytest.raises(cron.CronError) as caught:
            cron.parse(expr)
        if not vector["error"].startswith("panic: "):
            assert str(caught.value) == vector["error"]
        else:  # robfig panics: must be an error, reported as such
            assert str(caught.value).startswith("panic: ")


def test_public_api() -> None:
    schedule = cron.parse("@every 1h30m")
    assert schedule == cron.Schedule("@every 1h30m") and schedule.expr == "@every 1h30m"
    assert schedule.every_seconds == 5400
    assert cron.parse("@every 500ms").every_seconds == 1
    assert cron.parse("0 0 * * *").every_seconds is None
    assert issubclass(cron.CronError, ValueError)
    # sub-second parts of `after` are dropped first, as robfig does
    after = datetime(2026, 1, 1, 0, 0, 0, 999_999, tzinfo=UTC)
    assert schedule.next(after) == datetime(2026, 1, 1, 1, 30, tzinfo=UTC)
    # any aware datetime works; results are UTC
    berlin = after.astimezone(timezone(timedelta(hours=1)))
    assert cron.parse("0 2 * * *").next(berlin) == datetime(2026, 1, 1, 2, 0, tzinfo=UTC)
    assert cron.parse("0 0 30 2 *").next(after) is None and cron.parse("0 0 30 2 *").next_n(after, 3) == []
    with pytest.raises(ValueError):
        schedule.next(datetime(2026, 1, 1))


# --- properties -----------------------------------------------------------------------------------------------------

_TOKENS = [
    "*",
    "?",
    "-",
    "/",
    ",",
    " ",
    "  ",
    "\t",
    "\u3000",
    "\x1c",
    "0",
    "1",
    "5",
    "7",
    "12",
    "23",
    "31",
    "59",
    "60",
    "+1",
    "-0",
    "007",
    "99999999999999999999",
    "MON",
    "jan",
    "FRİ",
    "L",
    "#",
    "@",
    "@daily",
    "@every ",
    "@every",
    "1h",
    "30m",
    "1.5h",
    ".5",
    "µs",
    "ms",
    "d",
    "TZ=",
    "CRON_TZ=",
    "UTC",
    "Europe/Berlin",
    "Europe",
    "zone.tab",
    "..",
    "Local",
    "\x00",
    "\ud800",
    "\ufffd",
]
_cronish = st.lists(st.sampled_from(_TOKENS), max_size=16).map("".join)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(max_size=40), _cronish))
def test_parse_raises_only_cron_error(text: str) -> None:
    try:
        schedule = cron.parse(text)
    except cron.CronError as err:
        assert str(err)
    else:  # whatever robfig accepts has a next time or none, never an exception
        nxt = schedule.next(datetime(2026, 3, 28, 23, 30, tzinfo=UTC))
        assert nxt is None or nxt.tzinfo == UTC


def _field(lo: int, hi: int) -> st.SearchStrategy[str]:
    value = st.integers(lo, hi).map(str)
    span = st.tuples(st.integers(lo, hi), st.integers(lo, hi)).map(lambda p: f"{min(p)}-{max(p)}")
    stepped = st.tuples(st.sampled_from(["*", "?"]) | span | value, st.integers(1, hi + 2)).map(
        lambda p: f"{p[0]}/{p[1]}"
    )
    element = st.sampled_from(["*", "?"]) | value | span | stepped
    return st.lists(element, min_size=1, max_size=3).map(",".join)


_ZONES = [
    "",
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "America/Sao_Paulo",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
    "Asia/Tokyo",
]
_valid = st.builds(
    lambda zone, fields: (f"CRON_TZ={zone} " if zone is not None else "") + " ".join(fields),
    st.none() | st.sampled_from(_ZONES),
    st.tuples(_field(0, 59), _field(0, 23), _field(1, 31), _field(1, 12), _field(0, 6)),
) | st.sampled_from(
    ["@yearly", "@monthly", "@weekly", "@daily", "@hourly", "@every 90s", "@every 1h30m", "TZ=Europe/Berlin @daily"]
)
_instants = st.datetimes(datetime(1990, 1, 1), datetime(2080, 1, 1), timezones=st.just(UTC))


@settings(max_examples=150, deadline=None)
@given(_valid, _instants)
def test_next_is_strictly_increasing(expr: str, after: datetime) -> None:
    schedule = cron.parse(expr)
    times = schedule.next_n(after, 4)
    assert all(t.tzinfo == UTC for t in times)
    assert all(a < b for a, b in zip([after] + times, times))
    # robfig searches at most 5 years ahead
    assert not times or times[0] - after <= timedelta(days=6 * 366)


def _plain(lo: int, hi: int) -> st.SearchStrategy[str]:
    # croniter mishandles N-N ranges (cron-dialect.md); robfig and croniter otherwise share this subset
    span = (
        st.tuples(st.integers(lo, hi), st.integers(lo, hi))
        .filter(lambda p: p[0] != p[1])
        .map(lambda p: f"{min(p)}-{max(p)}")
    )
    return (
        st.integers(lo, hi).map(str)
        | span
        | st.lists(st.integers(lo, hi), min_size=1, max_size=3, unique=True).map(
            lambda v: ",".join(map(str, sorted(v)))
        )
    )


@settings(max_examples=150, deadline=None)
@given(
    _plain(0, 59) | st.just("*") | st.integers(2, 30).map("*/{}".format),
    _plain(0, 23) | st.just("*"),
    st.booleans(),
    _plain(1, 28),
    _plain(1, 12) | st.just("*"),
    _plain(0, 6),
    _instants,
)
def test_agrees_with_croniter_where_dialects_overlap(
    minute: str, hour: str, by_dom: bool, dom: str, month: str, dow: str, after: datetime
) -> None:
    """UTC, no robfig-only syntax, one of day-of-month/day-of-week left `*`: a maintained library says the same."""
    expr = " ".join([minute, hour, dom if by_dom else "*", month, "*" if by_dom else dow])
    it = croniter(expr, after)
    assert cron.parse(expr).next_n(after, 3) == [it.get_next(datetime) for _ in range(3)]
