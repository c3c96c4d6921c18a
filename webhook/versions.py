"""Versions (crVersion, PBM), compared as the operator does: hashicorp/go-version, numeric segments, a pre-release
(`1.22.0-rc1`) before its release, build metadata (`+...`) ignored. The one parser for the policy engine and the
sidecar renderer."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache, total_ordering

_VERSION = re.compile(r"^v?(\d+(?:\.\d+)*)(?:-([0-9A-Za-z.~-]+))?(?:\+[0-9A-Za-z.~-]+)?$")


@total_ordering
@dataclass(frozen=True)
class Version:
    major: int
    minor: int = 0
    patch: int = 0
    pre: str = ""  # pre-release, e.g. "rc1"
    rest: tuple[int, ...] = field(default=(), compare=False)  # segments after the third (go-version keeps them)

    @classmethod
    def parse(cls, text: object) -> Version | None:
        """None for anything go-version's NewVersion refuses (and for non-strings: a YAML crVersion may be any value)."""
        return _parse(text.strip()) if isinstance(text, str) else None

    def key(self) -> tuple[tuple[int, ...], int, str]:
        segments = (self.major, self.minor, self.patch, *self.rest)
        while len(segments) > 3 and segments[-1] == 0:
            segments = segments[:-1]
        return segments, 0 if self.pre else 1, self.pre

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Version) and self.key() == other.key()

    def __hash__(self) -> int:
        return hash(self.key())

    def __lt__(self, other: Version) -> bool:
        return self.key() < other.key()

    def __str__(self) -> str:
        text = ".".join(str(s) for s in (self.major, self.minor, self.patch, *self.rest))
        return f"{text}-{self.pre}" if self.pre else text


@lru_cache(maxsize=256)  # rules and the sidecar compare the same few strings many times
def _parse(text: str) -> Version | None:
    m = _VERSION.match(text)
    if not m:
        return None
    parts = [int(p) for p in m.group(1).split(".")]
    parts += [0] * (3 - len(parts))
    return Version(parts[0], parts[1], parts[2], m.group(2) or "", tuple(parts[3:]))


V1_20 = Version(1, 20)
V1_21 = Version(1, 21)
V1_22 = Version(1, 22)
V1_23 = Version(1, 23)

# The operator patches an empty spec.crVersion to its own version; we model operator 1.23.0.
LATEST = V1_23
OLDEST_MODELLED = V1_20
