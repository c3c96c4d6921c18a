"""Structured JSON logs: one object per line, with the fields a decision needs (uid, kind, object, decision)."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

from .times import format_rfc3339

# Like json.dumps(default=str): datetimes and dataclasses go through str(), keys may be other than strings.
_ORJSON_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


_last_second: list[Any] = [None, ""]  # (the second, its RFC 3339 text without the fraction): a line per request


def _timestamp(created: float) -> str:
    """format_rfc3339(..., 3) of `created`, formatting the date and time once per second."""
    t = datetime.fromtimestamp(created, UTC)
    second = (t.toordinal(), t.hour, t.minute, t.second)
    if _last_second[0] != second:
        _last_second[:] = [second, format_rfc3339(t)[:-1]]
    return f"{_last_second[1]}.{t.microsecond // 1000:03d}Z"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": _timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _RESERVED and not k.startswith("_")})
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info).splitlines()[-1]
        try:  # orjson: a line per admission request, so the writer's speed shows in the webhook's throughput
            return orjson.dumps(entry, default=str, option=_ORJSON_OPTIONS).decode()
        except TypeError:  # what orjson refuses (a lone surrogate from a request) json escapes
            return json.dumps(entry, default=str)


def setup(level: str = "info", fmt: str = "json") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
