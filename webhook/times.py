"""RFC 3339 times as Kubernetes (metav1.Time, MicroTime) and PBM write them: the one parser and formatter.

Parsing accepts `YYYY-MM-DDTHH:MM:SS`, an optional fraction of 1 to 9 digits (Go's RFC3339Nano; digits past
microseconds are truncated, as Python's datetime cannot hold them), then `Z` or `+HH:MM`/`-HH:MM` (`T` and `Z` in either
case, as RFC 3339 allows). The result is an aware datetime in UTC. Anything else is None, and so is a time without a
zone: it is not RFC 3339, Go's time.Parse(time.RFC3339) (what the operator and the API server use) rejects it, and
reading it as UTC would hide a writer's bug behind a silently shifted time.

Not here: the zone-less layouts of PBM's `--time` argument and of a Restore's `pitr.date` (`2006-01-02 15:04:05`,
UTC by those tools' definition); they are grammars of their own and stay with the code that speaks them.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

_RFC3339 = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[Tt](\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?(?:[Zz]|([+-])(\d\d):(\d\d))",
    re.ASCII,
)


def parse_rfc3339(value: object) -> datetime | None:
    """`value` as an aware UTC datetime; None when it is not an RFC 3339 time with a zone (see the module)."""
    if not isinstance(value, str):
        return None
    m = _RFC3339.fullmatch(value)
    if m is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in m.group(1, 2, 3, 4, 5, 6))
    micro = int((m.group(7) or "0").ljust(6, "0")[:6])
    zone = UTC
    if m.group(8):
        hours, minutes = int(m.group(9)), int(m.group(10))
        if hours > 23 or minutes > 59:
            return None
        offset = timedelta(hours=hours, minutes=minutes)
        zone = timezone(offset if m.group(8) == "+" else -offset)
    try:
        return datetime(year, month, day, hour, minute, second, micro, tzinfo=zone).astimezone(UTC)
    except ValueError:  # no such day or time (2026-02-30, 24:00:00, a leap second)
        return None


def format_rfc3339(t: datetime, digits: int = 0) -> str:
    """`t` in UTC with `digits` (0, 3 or 6) fraction digits and `Z`: 0 for metav1.Time, 6 for MicroTime (Lease
    times). A naive `t` is a bug in the caller: ValueError."""
    if t.tzinfo is None:
        raise ValueError(f"a time without a zone cannot be written as RFC 3339: {t!r}")
    if digits not in (0, 3, 6):
        raise ValueError(f"digits must be 0, 3 or 6, not {digits}")
    utc = t.astimezone(UTC)
    fraction = f".{utc.microsecond:06d}"[: digits + 1] if digits else ""
    return f"{utc.year:04d}-{utc:%m-%dT%H:%M:%S}{fraction}Z"  # strftime's %Y does not pad years before 1000


def format_rfc3339_epoch(seconds: float) -> str:
    """Seconds since the epoch as `format_rfc3339` writes them (whole seconds, UTC)."""
    return format_rfc3339(datetime.fromtimestamp(int(seconds), UTC))


def format_rfc3339_nano(ns: int) -> str:
    """Nanoseconds since the epoch as Go's time.RFC3339Nano in UTC writes them: the fraction loses its trailing
    zeros, and the dot too when it is zero."""
    seconds, fraction = divmod(ns, 1_000_000_000)
    digits = f"{fraction:09d}".rstrip("0")
    return format_rfc3339_epoch(seconds)[:-1] + (f".{digits}" if digits else "") + "Z"
