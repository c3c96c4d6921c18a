"""crVersion handling, compared as the operator does (hashicorp/go-version: numeric segments)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import total_ordering

_VERSION = re.compile(r"^v?(\d+)(?:\.(\d+))?(?:\.(\d+))?$")


@total_ordering
@dataclass(frozen=True)
class Version:
    major: int
    minor: int = 0
    patch: int = 0

    @classmethod
    def parse(cls, text: object) -> Version | None:
        if not isinstance(text, str):
            return None
        m = _VERSION.match(text.strip())
        if not m:
            return None
        return cls(*(int(g) if g else 0 for g in m.groups()))

    def __lt__(self, other: Version) -> bool:
        return (self.major, self.minor, self.patch) < (other.major, other.minor, other.patch)

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


V1_20 = Version(1, 20)
V1_21 = Version(1, 21)
V1_22 = Version(1, 22)
V1_23 = Version(1, 23)

# The operator patches an empty spec.crVersion to its own version; we model operator 1.23.0.
LATEST = V1_23
OLDEST_MODELLED = V1_20
