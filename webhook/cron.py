"""The cron dialect of `spec.backup.tasks[].schedule`: robfig/cron v3.0.1's standard parser and its Next().

Why it exists: no Python cron library accepts robfig's dialect or finds its next times (shared/reference/cron-*).

It follows robfig's parser.go, spec.go and constantdelay.go; the vectors the operator's own parser produced are its
tests (tests/unit/test_cron.py), and croniter is the reference there only where the two dialects overlap (UTC, plain
fields), since it differs on DST, on robfig-only syntax and on what it rejects.

Grammar: an optional `CRON_TZ=<zone> ` / `TZ=<zone> ` prefix, then a lower-case descriptor (`@daily`, `@every <Go
duration>`, ...) or exactly 5 fields split on Unicode whitespace; a field is a comma list (empty elements dropped) of
`*`/`?`/`N`/`N-M`, each with an optional `/step`. Error texts are robfig's, Go quoting included, because the operator
shows them to users. Schedules without a zone prefix run in UTC (the operator image's local zone).
"""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo

__all__ = ["CronError", "Schedule", "first_common_minute", "parse"]


class CronError(ValueError):
    """A schedule robfig rejects; str() is robfig's error text (or `panic: ...` where robfig v3.0.1 panics)."""


# --- Go string helpers (strings.Fields/TrimSpace, strconv.Quote, time's quote) --------------------------------------

# unicode.IsSpace: Go's set, not Python's (str.split also splits on U+001C..U+001F).
_GO_SPACE = "\t\n\v\f\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_FIELDS_RE = re.compile(f"[^{_GO_SPACE}]+")
_TRIM_RE = re.compile(rf"\A[{_GO_SPACE}]+|[{_GO_SPACE}]+\Z")
_SURROGATES = re.compile("[\ud800-\udfff]")
_C_ESCAPES = {"\a": r"\a", "\b": r"\b", "\f": r"\f", "\n": r"\n", "\r": r"\r", "\t": r"\t", "\v": r"\v"}


def _go_fields(s: str) -> list[str]:
    return _FIELDS_RE.findall(s)


def _go_trim_space(s: str) -> str:
    return _TRIM_RE.sub("", s)


def _strconv_quote(s: str) -> str:
    """strconv.Quote: Python's isprintable() is Go's unicode.IsPrint (L, M, N, P, S and ASCII space)."""
    out = ['"']
    for ch in s:
        code = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch.isprintable():
            out.append(ch)
        elif ch in _C_ESCAPES:
            out.append(_C_ESCAPES[ch])
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    return "".join(out) + '"'


def _time_quote(s: bytes) -> str:
    """The time package's own quote(): every byte of a control or non-ASCII character becomes \\xNN."""
    return (
        '"'
        + "".join(f"\\x{b:02x}" if b < 0x20 or b >= 0x80 else ("\\" + chr(b) if b in b'"\\' else chr(b)) for b in s)
        + '"'
    )


# --- strconv.Atoi and time.ParseDuration -----------------------------------------------------------------------------

_MAX_UINT64 = (1 << 64) - 1


def _atoi(s: str) -> int:
    """strconv.Atoi on a 64-bit platform: [+-]ASCII digits; the first non-digit or uint64 overflow decides the error."""
    num_error = f"strconv.Atoi: parsing {_strconv_quote(s)}: "
    digits = s[1:] if s[:1] in ("+", "-") else s
    if not digits:
        raise CronError(f"failed to parse int from {s}: {num_error}invalid syntax")
    n = 0
    for ch in digits:
        if not "0" <= ch <= "9":
            raise CronError(f"failed to parse int from {s}: {num_error}invalid syntax")
        n = n * 10 + ord(ch) - 48
        if n > _MAX_UINT64:
            break
    negative = s[0] == "-"
    if n > _MAX_UINT64 or (n > 1 << 63 if negative else n >= 1 << 63):
        raise CronError(f"failed to parse int from {s}: {num_error}value out of range")
    return -n if negative else n


_NS_PER_SECOND = 10**9
_DURATION_UNITS = {
    b"ns": 1,
    b"us": 10**3,
    "µs".encode(): 10**3,
    "μs".encode(): 10**3,
    b"ms": 10**6,
    b"s": 10**9,
    b"m": 60 * 10**9,
    b"h": 3600 * 10**9,
}


def _parse_go_duration(text: str) -> int:
    """time.ParseDuration in nanoseconds, on the UTF-8 bytes like Go; raises ValueError(Go's message)."""
    orig = text.encode()
    invalid = ValueError(f"time: invalid duration {_time_quote(orig)}")
    s, negative = orig, False
    if s[:1] in (b"-", b"+"):
        negative, s = s[:1] == b"-", s[1:]
    if s == b"0":
        return 0
    if not s:
        raise invalid
    total = 0
    while s:
        if not (s[:1] == b"." or s[:1].isdigit()):
            raise invalid
        i = 0
        whole = 0
        while i < len(s) and s[i : i + 1].isdigit():
            whole = whole * 10 + s[i] - 48
            if whole > 1 << 63:  # leadingInt overflow
                raise invalid
            i += 1
        pre, s = i > 0, s[i:]
        frac, scale, post = 0, 1.0, False
        if s[:1] == b".":
            s = s[1:]
            i, overflow = 0, False
            while i < len(s) and s[i : i + 1].isdigit():
                # leadingFraction: digits past int64 precision are consumed and ignored
                if not overflow and frac <= ((1 << 63) - 1) // 10 and frac * 10 + s[i] - 48 <= 1 << 63:
                    frac, scale = frac * 10 + s[i] - 48, scale * 10
                else:
                    overflow = True
                i += 1
            post, s = i > 0, s[i:]
        if not pre and not post:
            raise invalid
        i = 0
        while i < len(s) and not (s[i : i + 1] == b"." or s[i : i + 1].isdigit()):
            i += 1
        if i == 0:
            raise ValueError(f"time: missing unit in duration {_time_quote(orig)}")
        unit_name, s = s[:i], s[i:]
        unit = _DURATION_UNITS.get(unit_name)
        if unit is None:
            raise ValueError(f"time: unknown unit {_time_quote(unit_name)} in duration {_time_quote(orig)}")
        if whole > (1 << 63) // unit:
            raise invalid
        value = whole * unit
        if frac > 0:
            value += int(float(frac) * (float(unit) / scale))  # Go does this in float64 too
            if value > 1 << 63:
                raise invalid
        total = (total + value) & _MAX_UINT64  # Go's uint64 sum wraps around
        if total > 1 << 63:
            raise invalid
    if negative:
        return -total
    if total > (1 << 63) - 1:
        raise invalid
    return total


# --- time.LoadLocation ------------------------------------------------------------------------------------------------

# Where Go looks on Linux (zoneinfo_unix.go), in order; only used to reproduce Go's error text or Go's tolerance of
# unnormalised names such as "Europe//Berlin" that ZoneInfo() refuses.
_GO_ZONE_DIRS = ("/usr/share/zoneinfo/", "/usr/share/lib/zoneinfo/", "/usr/lib/locale/TZ/", "/etc/zoneinfo/")


@lru_cache(maxsize=256)
def _load_location(name: str) -> tzinfo:
    """time.LoadLocation as the operator sees it: "", "UTC" and "Local" are UTC (the image sets no TZ)."""
    if name in ("", "UTC", "Local"):
        return UTC
    if ".." in name or name[0] in "/\\":
        raise CronError(f"provided bad location {name}: time: invalid location name")
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError, OSError):  # ZoneInfoNotFoundError is a KeyError
        pass
    return _load_location_like_go(name)


def _load_location_like_go(name: str) -> tzinfo:
    """Go opens <dir>/<name> in each zone directory; the first error other than ENOENT is the one it reports."""
    if "\x00" in name:
        raise CronError(f"provided bad location {name}: invalid argument")
    for directory in _GO_ZONE_DIRS:
        try:
            with open(directory + name, "rb") as tzif:
                try:
                    return ZoneInfo.from_file(tzif, key=name)
                except ValueError:
                    raise CronError(f"provided bad location {name}: malformed time zone information") from None
        except OSError as err:
            if err.errno == errno.ENOENT:
                continue
            text = os.strerror(err.errno or errno.EIO)  # Go's syscall texts are glibc's, lower-cased
            raise CronError(f"provided bad location {name}: {text[:1].lower()}{text[1:]}") from None
    raise CronError(f"provided bad location {name}: unknown time zone {name}")


# --- the parsed forms -----------------------------------------------------------------------------------------------

_STAR = 1 << 63  # robfig's starBit: the field had a `*` or `?` without a step above 1 (day-of-month/week rule)


@dataclass(frozen=True)
class _Bounds:
    low: int
    high: int
    names: tuple[str, ...] = ()  # names[i] has the value low + i


_MINUTES = _Bounds(0, 59)
_HOURS = _Bounds(0, 23)
_DOM = _Bounds(1, 31)
_MONTHS = _Bounds(1, 12, ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"))
_DOW = _Bounds(0, 6, ("sun", "mon", "tue", "wed", "thu", "fri", "sat"))


def _all(b: _Bounds) -> int:
    return _bits(b.low, b.high, 1) | _STAR


def _bits(low: int, high: int, step: int) -> int:
    return sum(1 << v for v in range(low, high + 1, step))


@dataclass(frozen=True)
class _Spec:
    """robfig's SpecSchedule for the standard parser (the seconds field is always 0)."""

    minute: int
    hour: int
    dom: int
    month: int
    dow: int
    zone: tzinfo


@dataclass(frozen=True)
class _Every:
    """robfig's ConstantDelaySchedule."""

    seconds: int


_DESCRIPTORS: dict[str, tuple[int, int, int, int, int]] = {  # minute, hour, dom, month, dow
    "@yearly": (1, 1, 1 << 1, 1 << 1, _all(_DOW)),
    "@annually": (1, 1, 1 << 1, 1 << 1, _all(_DOW)),
    "@monthly": (1, 1, 1 << 1, _all(_MONTHS), _all(_DOW)),
    "@weekly": (1, 1, _all(_DOM), _all(_MONTHS), 1),
    "@daily": (1, 1, _all(_DOM), _all(_MONTHS), _all(_DOW)),
    "@midnight": (1, 1, _all(_DOM), _all(_MONTHS), _all(_DOW)),
    "@hourly": (1, _all(_HOURS), _all(_DOM), _all(_MONTHS), _all(_DOW)),
}


def _parse(spec: str) -> _Spec | _Every:
    """Parser.Parse of robfig's standard parser, step by step, with its error texts."""
    if not spec:
        raise CronError("empty spec string")
    spec = _SURROGATES.sub("\ufffd", spec)  # the API server's JSON decoding does this before the operator sees it
    zone: tzinfo = UTC
    if spec.startswith(("TZ=", "CRON_TZ=")):
        space = spec.find(" ")  # an ASCII space only; none makes robfig slice spec[eq+1:-1] and panic
        if space < 0:
            raise CronError("panic: runtime error: slice bounds out of range [:-1]")
        zone = _load_location(spec[spec.index("=") + 1 : space])
        spec = _go_trim_space(spec[space:])
    if spec.startswith("@"):
        return _parse_descriptor(spec, zone)
    fields = _go_fields(spec)
    if len(fields) != 5:
        raise CronError(f"expected exactly 5 fields, found {len(fields)}: [{' '.join(fields)}]")
    minute, hour, dom, month, dow = (_field(f, b) for f, b in zip(fields, (_MINUTES, _HOURS, _DOM, _MONTHS, _DOW)))
    return _Spec(minute, hour, dom, month, dow, zone)


def _parse_descriptor(spec: str, zone: tzinfo) -> _Spec | _Every:
    if spec in _DESCRIPTORS:
        return _Spec(*_DESCRIPTORS[spec], zone=zone)
    if spec.startswith("@every "):
        try:
            nanos = _parse_go_duration(spec[len("@every ") :])
        except ValueError as err:
            raise CronError(f"failed to parse duration {spec}: {err}") from None
        return _Every(max(nanos, _NS_PER_SECOND) // _NS_PER_SECOND)  # Every(): at least 1s, whole seconds
    raise CronError(f"unrecognized descriptor: {spec}")


def _field(text: str, bounds: _Bounds) -> int:
    bits = 0
    for part in text.split(","):
        if part:  # strings.FieldsFunc drops empty elements: "1,,2" and "MON," are fine, "," matches nothing
            bits |= _range(part, bounds)
    return bits


def _range(expr: str, bounds: _Bounds) -> int:
    """getRange: `*`/`?` or N or N-M, then an optional /step; checks run in robfig's order."""
    range_and_step = expr.split("/")
    low_high = range_and_step[0].split("-")
    star = 0
    if low_high[0] in ("*", "?"):  # anything after "*-" is ignored: "*-5" is "*"
        start, end, star = bounds.low, bounds.high, _STAR
    else:
        start = _int_or_name(low_high[0], bounds)
        if len(low_high) == 1:
            end = start
        elif len(low_high) == 2:
            end = _int_or_name(low_high[1], bounds)
        else:
            raise CronError(f"too many hyphens: {expr}")
    step = 1
    if len(range_and_step) == 2:
        step = _uint(range_and_step[1])
        if len(low_high) == 1:  # "N/step" means "N-max/step"
            end = bounds.high
        if step > 1:
            star = 0
    elif len(range_and_step) > 2:
        raise CronError(f"too many slashes: {expr}")
    if start < bounds.low:
        raise CronError(f"beginning of range ({start}) below minimum ({bounds.low}): {expr}")
    if end > bounds.high:
        raise CronError(f"end of range ({end}) above maximum ({bounds.high}): {expr}")
    if start > end:
        raise CronError(f"beginning of range ({start}) beyond end of range ({end}): {expr}")
    if step == 0:
        raise CronError(f"step of range should be a positive number: {expr}")
    return _bits(start, end, step) | star


def _int_or_name(text: str, bounds: _Bounds) -> int:
    lowered = text.replace("\u0130", "i").lower()  # Go's ToLower maps U+0130 to a plain "i"
    if lowered in bounds.names:
        return bounds.low + bounds.names.index(lowered)
    return _uint(text)


def _uint(text: str) -> int:
    value = _atoi(text)
    if value < 0:
        raise CronError(f"negative number ({value}) not allowed: {text}")
    return value


# --- Next(): robfig's spec.go search, on Go's clock ----------------------------------------------------------------

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_ORDINAL = _EPOCH.toordinal()


class _Search:
    """SpecSchedule.Next's state: a Unix second `u` read in `zone`, and robfig's `added` flag."""

    def __init__(self, spec: _Spec, u: int) -> None:
        self.spec, self.zone, self.u, self.added = spec, spec.zone, u, False

    def local(self) -> datetime:
        return datetime.fromtimestamp(self.u, self.zone)

    def _offset(self, u: int) -> int:
        offset = datetime.fromtimestamp(u, self.zone).utcoffset()
        assert offset is not None  # an aware datetime always has one
        return int(offset.total_seconds())

    def go_date(self, year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> int:
        """time.Date: normalises overflowing fields; a wall time in a DST gap or overlap gets Go's offset choice
        (the offset in force at `wall - offset(wall)`), which is not Python's fold=0."""
        year, month = year + (month - 1) // 12, (month - 1) % 12 + 1
        days = date(year, month, 1).toordinal() - _EPOCH_ORDINAL + day - 1
        wall = days * 86400 + hour * 3600 + minute * 60 + second
        return wall - self._offset(wall - self._offset(wall))

    def seek(
        self,
        matches: Callable[[datetime], bool],
        reset: Callable[[datetime], int],
        advance: Callable[[datetime], int],
        wrapped: Callable[[datetime], bool],
    ) -> bool:
        """One field loop of Next(): step until the field matches; True means `goto WRAP`."""
        t = self.local()
        while not matches(t):
            if not self.added:
                self.added = True
                self.u = reset(t)
                t = self.local()
            self.u = advance(t)
            t = self.local()
            if wrapped(t):
                return True
        return False

    def next_day(self, t: datetime) -> int:
        u = self.go_date(t.year, t.month, t.day + 1, t.hour, t.minute, t.second)
        hour = datetime.fromtimestamp(u, self.zone).hour
        if hour:  # robfig: midnight moved by DST; go forward to the next day or back to this one's 00:00
            u += (24 - hour) * 3600 if hour > 12 else -hour * 3600
        return u

    def day_matches(self, t: datetime) -> bool:
        dom = self.spec.dom >> t.day & 1
        dow = self.spec.dow >> t.isoweekday() % 7 & 1
        if (self.spec.dom | self.spec.dow) & _STAR:
            return bool(dom and dow)
        return bool(dom or dow)

    def run(self) -> int | None:
        s = self.spec
        year_limit = self.local().year + 5
        while True:  # robfig's WRAP label
            if self.local().year > year_limit:
                return None
            if (
                self.seek(
                    lambda t: bool(s.month >> t.month & 1),
                    lambda t: self.go_date(t.year, t.month, 1),
                    lambda t: self.go_date(t.year, t.month + 1, t.day, t.hour, t.minute, t.second),
                    lambda t: t.month == 1,
                )
                or self.seek(
                    self.day_matches,
                    lambda t: self.go_date(t.year, t.month, t.day),
                    self.next_day,
                    lambda t: t.day == 1,
                )
                or self.seek(
                    lambda t: bool(s.hour >> t.hour & 1),
                    lambda t: self.go_date(t.year, t.month, t.day, t.hour),
                    lambda t: self.u + 3600,
                    lambda t: t.hour == 0,
                )
                or self.seek(
                    lambda t: bool(s.minute >> t.minute & 1),
                    lambda t: self.u - self.u % 60,
                    lambda t: self.u + 60,
                    lambda t: t.minute == 0,
                )
                or self.seek(lambda t: t.second == 0, lambda t: self.u, lambda t: self.u + 1, lambda t: t.second == 0)
            ):
                continue
            return self.u


def _never_fires(spec: _Spec) -> bool:
    """An empty field (e.g. ","): robfig would scan all 5 years minute by minute to return the zero time."""
    dom, dow = spec.dom & ~_STAR, spec.dow & ~_STAR
    days = (dom and dow) if (spec.dom | spec.dow) & _STAR else (dom or dow)
    return not (spec.minute and spec.hour and spec.month and days)


# --- public API -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Schedule:
    """A schedule robfig accepts; constructing one parses `expr` and raises CronError like the operator would."""

    expr: str
    _parsed: _Spec | _Every = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.expr, str):
            raise CronError(f"schedule must be a string, not {type(self.expr).__name__}")
        object.__setattr__(self, "_parsed", _parse(self.expr))

    @property
    def every_seconds(self) -> int | None:
        """The constant delay of an `@every` schedule (whole seconds, at least 1), else None."""
        return self._parsed.seconds if isinstance(self._parsed, _Every) else None

    def next(self, after: datetime) -> datetime | None:
        """The first activation strictly after `after` (tz-aware), in UTC; None if robfig's Next returns the zero
        time (nothing within 5 years) or the answer is outside Python's datetime range."""
        if after.tzinfo is None or after.utcoffset() is None:
            raise ValueError("after must be a timezone-aware datetime")
        seconds = (after - _EPOCH) // timedelta(seconds=1)  # robfig drops sub-second parts first
        try:
            if isinstance(self._parsed, _Every):
                found: int | None = seconds + self._parsed.seconds
            elif _never_fires(self._parsed):
                found = None
            else:
                found = _Search(self._parsed, seconds + 1).run()
            return None if found is None else datetime.fromtimestamp(found, UTC)
        except (OverflowError, ValueError, OSError):  # beyond year 1..9999: Go's clock goes further than ours
            return None

    def next_n(self, after: datetime, n: int) -> list[datetime]:
        """Up to n activations after `after`, each found from the previous one as the operator's loop does."""
        out: list[datetime] = []
        while len(out) < n:
            nxt = self.next(out[-1] if out else after)
            if nxt is None:
                break
            out.append(nxt)
        return out


def parse(expr: str) -> Schedule:
    """Parse a `spec.backup.tasks[].schedule` the way the operator's robfig/cron does; raises CronError."""
    return Schedule(expr)


_COMMON_SEARCH_DAYS = 5 * 366 + 1  # robfig's own horizon: Next gives up after 5 years


def first_common_minute(a: Schedule, b: Schedule, after: datetime) -> datetime | None:
    """The first minute after `after` in which both schedules fire, in UTC, or None: no such minute within 5 years,
    or it cannot be told (an `@every` schedule runs relative to when the operator added it; schedules in different
    zones are not compared). Each candidate is confirmed with Next(), so DST gaps cannot produce a false answer."""
    x, y = a._parsed, b._parsed
    if not isinstance(x, _Spec) or not isinstance(y, _Spec) or x.zone != y.zone or _never_fires(x) or _never_fires(y):
        return None
    hours, minutes = x.hour & y.hour & ~_STAR, x.minute & y.minute & ~_STAR
    if not hours or not minutes:
        return None
    minute = (minutes & -minutes).bit_length() - 1  # the lowest common minute: the first in any common hour
    day = after.astimezone(x.zone).date()
    for _ in range(_COMMON_SEARCH_DAYS):
        t = datetime(day.year, day.month, day.day, tzinfo=x.zone)
        if all(s.month >> day.month & 1 and _Search(s, 0).day_matches(t) for s in (x, y)):
            for hour in (h for h in range(24) if hours >> h & 1):
                when = datetime(day.year, day.month, day.day, hour, minute, tzinfo=x.zone).astimezone(UTC)
                before = when - timedelta(seconds=1)
                if when > after and a.next(before) == when and b.next(before) == when:  # a DST gap fails here
                    return when
        day += timedelta(days=1)
    return None
