"""webhook/times.py: RFC 3339 as Kubernetes and PBM write it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from webhook.times import format_rfc3339, format_rfc3339_epoch, format_rfc3339_nano, parse_rfc3339

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("2026-12-03T12:00:00Z", NOW),  # metav1.Time
        ("2026-12-03t12:00:00z", NOW),  # RFC 3339 allows either case
        ("2026-12-03T12:00:00.123456Z", NOW + timedelta(microseconds=123456)),  # MicroTime (Lease times)
        ("2026-12-03T12:00:00.5Z", NOW + timedelta(microseconds=500000)),
        ("2026-12-03T12:00:00.123456789Z", NOW + timedelta(microseconds=123456)),  # RFC3339Nano: truncated
        ("2026-12-03T13:30:00+01:30", NOW),
        ("2026-12-03T07:00:00-05:00", NOW),
        ("2026-12-03T12:00:00+00:00", NOW),
    ],
)
def test_parses_what_kubernetes_and_pbm_write(text: str, want: datetime) -> None:
    got = parse_rfc3339(text)
    assert got == want and got is not None and got.tzinfo is UTC


@pytest.mark.parametrize(
    "text",
    [
        "2026-12-03T12:00:00",  # no zone: rejected, never guessed as UTC
        "2026-12-03 12:00:00Z",  # the PITR layout is not RFC 3339
        "2026-12-03",
        "2026-12-03T12:00Z",
        "2026-12-03T12:00:00.Z",
        "2026-12-03T12:00:00.1234567890Z",  # more than nanoseconds
        "2026-02-30T12:00:00Z",
        "2026-12-03T24:00:00Z",
        "2026-12-31T23:59:60Z",  # Go rejects leap seconds too
        "2026-12-03T12:00:00+24:00",
        "2026-12-03T12:00:00+0100",
        " 2026-12-03T12:00:00Z",
        "2026-12-03T12:00:00Z\n",
        "٢٠٢٦-12-03T12:00:00Z",  # non-ASCII digits
        "",
        None,
        1764763200,
    ],
)
def test_rejects_everything_else(text: object) -> None:
    assert parse_rfc3339(text) is None


def test_formats() -> None:
    t = NOW + timedelta(microseconds=123456)
    assert format_rfc3339(t) == "2026-12-03T12:00:00Z"
    assert format_rfc3339(t, 3) == "2026-12-03T12:00:00.123Z"
    assert format_rfc3339(t, 6) == "2026-12-03T12:00:00.123456Z"
    assert format_rfc3339(t.astimezone(timezone(timedelta(hours=-5)))) == "2026-12-03T12:00:00Z"  # written in UTC
    assert format_rfc3339_epoch(NOW.timestamp() + 0.9) == "2026-12-03T12:00:00Z"
    assert format_rfc3339_nano(int(NOW.timestamp()) * 10**9 + 120_000_000) == "2026-12-03T12:00:00.12Z"
    assert format_rfc3339_nano(int(NOW.timestamp()) * 10**9) == "2026-12-03T12:00:00Z"
    with pytest.raises(ValueError, match="without a zone"):
        format_rfc3339(datetime(2026, 12, 3))
    with pytest.raises(ValueError, match="digits must be 0, 3 or 6"):
        format_rfc3339(NOW, 9)


@given(st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)))
def test_round_trip(t: datetime) -> None:
    assert parse_rfc3339(format_rfc3339(t, 6)) == t
    assert parse_rfc3339(format_rfc3339(t)) == t.replace(microsecond=0)
