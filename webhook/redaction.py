"""Keeping request-derived text and credentials out of logs, findings, responses and metrics.

Anything a client sends may be huge or hold a password: log lines clip it, findings never echo a value under a
credential-like key and strip `user:password@` from URLs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

LOG_CLIP = 200  # characters of one request-derived string in a log line
SENSITIVE_KEY = re.compile(r"(?i)(key|secret|password|passwd|token|credential|auth)")
# scheme://user[:password]@host -> scheme://***@host; the scheme is optional (mongodb+srv, s3, bare host:port)
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)?[^\s/@:\"']+(:[^\s/@\"']*)?@(?=[\w\[.-])")


def clip(value: Any, limit: int = LOG_CLIP) -> str:
    """`value` as text of at most `limit` characters, marked when cut."""
    text = value if isinstance(value, str) else str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def strip_userinfo(text: str) -> str:
    """Every `user:password@` in URLs replaced by `***@`."""
    return _USERINFO.sub(lambda m: (m.group(1) or "") + "***@", text)


def sensitive_path(path: Iterable[Any]) -> bool:
    """True when any key on the path names something that may hold a credential."""
    return any(isinstance(p, str) and SENSITIVE_KEY.search(p) for p in path)


def scrub(text: str, limit: int = LOG_CLIP) -> str:
    """Request-derived text safe for a log line or a message: userinfo removed, clipped."""
    return clip(strip_userinfo(text), limit)
