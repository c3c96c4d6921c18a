"""A full scan of the PSMDB, Backup, Restore and BackupSchedule objects stored in a cluster, with the admission
webhook's rules and live lookups: what `lint --cluster` prints and what the policy reports (webhook/reporting.py) are
rewritten from. The schedule kind is optional: without its CRD (the operator alone) there are no schedules."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .findings import Finding
from .kube import KubeError, KubeReader, LiveLookup
from .policy import kinds
from .policy.live import evaluate


@dataclass(frozen=True)
class Scanned:
    obj: dict[str, Any]
    findings: list[Finding]


async def scan(reader: KubeReader, namespace: str | None, disabled: frozenset[str] = frozenset()) -> list[Scanned]:
    """Every stored object of the checked kinds in `namespace` (None: all), with its findings (`disabled` left out)."""
    lookup = LiveLookup(reader, ttl=60)  # one scan reads the same clusters and Secrets again and again
    out: list[Scanned] = []
    for kind in kinds.CHECKED_KINDS:
        try:
            objs = await reader.list(kind, namespace)
        except KubeError as exc:
            if exc.not_found and kind == kinds.SCHEDULE:  # its CRD is not installed
                continue
            raise
        for obj in objs:
            checked = await evaluate(obj, None, lookup)
            out.append(Scanned(obj, [f for f in checked.findings if f.code not in disabled]))
    return out
