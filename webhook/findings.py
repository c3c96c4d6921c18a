"""Findings: what every rule produces and every front-end (lint, admission, controller) consumes."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

PathSegment = str | int
Path = tuple[PathSegment, ...]


class Severity(enum.IntEnum):
    """Ordered so that `severity >= threshold` works; the names are the user-facing spelling."""

    INFO = 0
    WARNING = 1
    ERROR = 2

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Severity:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            raise ValueError(f"unknown severity {text!r}: use one of info, warning, error") from None


def format_path(path: Path) -> str:
    """`("spec", "backup", "tasks", 1, "storageName")` -> `spec.backup.tasks[1].storageName`."""
    out: list[str] = []
    for seg in path:
        if isinstance(seg, int):
            out.append(f"[{seg}]")
        else:
            out.append(("." if out else "") + seg)
    return "".join(out)


@dataclass(frozen=True)
class Finding:
    code: str
    severity: Severity
    path: Path
    message: str
    hint: str

    @property
    def path_str(self) -> str:
        return format_path(self.path)

    def headline(self) -> str:
        """One line: `spec.backup.tasks[1].storageName: storage "s3-eu" is not defined ...`."""
        return f"{self.path_str}: {self.message}" if self.path else self.message


def worst(findings: Iterable[Finding]) -> Severity | None:
    return max((f.severity for f in findings), default=None)


def exit_code(findings: Iterable[Finding], fail_on: Severity) -> int:
    """0 when nothing reaches the threshold, 1 otherwise (2 is reserved for usage and input errors)."""
    w = worst(findings)
    return 1 if w is not None and w >= fail_on else 0
