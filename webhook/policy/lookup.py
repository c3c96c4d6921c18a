"""How rules see other objects (the cluster a backup names, the backup a restore names, Secrets).

Rules stay pure and synchronous: they ask a `Lookup` and get one of three answers. `Unknown` is never an error
by itself; only a front-end that knows the lookup was authoritative turns `Missing` into a denial.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

Ref = tuple[str, str, str]  # (kind, namespace, name)


@dataclass(frozen=True)
class Found:
    obj: Mapping[str, Any]


@dataclass(frozen=True)
class Missing:
    """The object authoritatively does not exist (the live API said 404)."""


@dataclass(frozen=True)
class Unknown:
    """Nobody can tell: not in this lint run, no cluster connection, or the lookup failed (`error` set)."""

    error: str | None = None


LookupResult = Found | Missing | Unknown
MISSING = Missing()
UNKNOWN = Unknown()


class Lookup(Protocol):
    def get(self, kind: str, namespace: str, name: str) -> LookupResult: ...


class EmptyLookup:
    """No other objects are known (single-object checks, `serve` without a cluster)."""

    def get(self, kind: str, namespace: str, name: str) -> LookupResult:
        return UNKNOWN


class DocumentsLookup:
    """The other documents of one lint run. Absent means Unknown, never Missing: the run is not the cluster."""

    def __init__(self, docs: Iterable[Mapping[str, Any]], default_namespace: str = "default") -> None:
        self._index: dict[Ref, Mapping[str, Any]] = {}
        for doc in docs:
            meta = doc.get("metadata") if isinstance(doc, dict) else None
            if not isinstance(meta, dict) or not isinstance(doc.get("kind"), str):
                continue
            name, ns = meta.get("name"), meta.get("namespace") or default_namespace
            if isinstance(name, str) and isinstance(ns, str):
                self._index.setdefault((doc["kind"], ns, name), doc)

    def get(self, kind: str, namespace: str, name: str) -> LookupResult:
        doc = self._index.get((kind, namespace, name))
        return Found(doc) if doc is not None else UNKNOWN


@dataclass
class RecordingLookup:
    """Answers from `known`, Unknown otherwise, and remembers every reference asked for.

    The admission server runs the rules once with this to learn which objects to fetch from the API server, then
    again with the fetched answers: the rules are the only place that knows what they reference. `cached` answers
    at once what is already at hand (a fetch would return the same, without a second run of the rules); what it
    answers goes into `known`.
    """

    known: dict[Ref, LookupResult] = field(default_factory=dict)
    asked: list[Ref] = field(default_factory=list)
    calls: int = 0  # lets the engine tell which rules consulted the lookup
    cached: Callable[[Ref], LookupResult | None] | None = None

    def get(self, kind: str, namespace: str, name: str) -> LookupResult:
        self.calls += 1
        ref = (kind, namespace, name)
        if ref not in self.known and self.cached is not None and (hit := self.cached(ref)) is not None:
            self.known[ref] = hit
        if ref not in self.known and ref not in self.asked:
            self.asked.append(ref)
        return self.known.get(ref, UNKNOWN)

    def failures(self) -> list[str]:
        return [r.error for r in self.known.values() if isinstance(r, Unknown) and r.error]
