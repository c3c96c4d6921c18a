"""Cross-object references in a lint run. A Backup or Restore names its cluster (and a Restore its Backup) by name
only; in a directory of unrelated examples several objects may share that name. The nearest one counts: the same
file first, then the same directory, then the rest of the run. When several are equally near, a finding stands
only if the check gives it against every one of them; each finding that used another object names its file.

The run is streamed: each document is checked against the objects read so far, and the run keeps of every named
object only a `Fact` (its name, file and what lookups answer with), never its document text or node tree. What a
check asked the index is recorded, so the end of the run can tell which checks a later object could change."""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import orjson

from ..findings import Finding, Severity
from ..policy import kinds
from ..policy.engine import RulePass, rule_pass, structure_findings
from ..policy.lookup import UNKNOWN, Found, LookupResult, Ref
from .loader import Document

OTHER_NAMESPACE_CODE = "PSB008"
OTHER_NAMESPACE_HINT = "create the Restore in the Backup's namespace, or name a Backup of the Restore's namespace"
MAX_COMBINATIONS = 16  # equally near candidates checked one by one; beyond that, the first ones
KEYS_ONLY = frozenset({"Secret", "ConfigMap"})  # rules read which keys these hold, never the values
_LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def _ref_of(obj: Mapping[str, Any]) -> Ref | None:
    meta = obj.get("metadata")
    if not isinstance(meta, dict) or not isinstance(obj.get("kind"), str):
        return None
    name, ns = meta.get("name"), meta.get("namespace") or "default"
    return (obj["kind"], ns, name) if isinstance(name, str) and isinstance(ns, str) else None


def _answer(obj: dict[str, Any]) -> dict[str, Any]:
    """What a lookup of `obj` answers with: the object less what no rule reads of another object (a Secret's and a
    ConfigMap's values, server-side bookkeeping and kubectl's copy of the whole object in an annotation)."""
    out = dict(obj)
    meta = out.get("metadata")
    if isinstance(meta, dict):
        meta = {k: v for k, v in meta.items() if k != "managedFields"}
        if isinstance(meta.get("annotations"), dict):
            meta["annotations"] = {k: v for k, v in meta["annotations"].items() if k != _LAST_APPLIED}
        out["metadata"] = meta
    if obj.get("kind") in KEYS_ONLY:
        for part in ("data", "stringData", "binaryData"):
            if isinstance(out.get(part), dict):
                out[part] = dict.fromkeys(out[part], "")
    return out


@dataclass(frozen=True, slots=True)
class Fact:
    """What the run keeps of a named object for the references of others."""

    seq: int  # the document's number in the run
    ref: Ref
    file: str
    directory: str
    blob: bytes | dict[str, Any]  # the lookup answer as compact JSON (the object itself if JSON cannot carry it)

    @property
    def obj(self) -> dict[str, Any]:
        return expand(self.blob)

    @staticmethod
    def of(seq: int, doc: Document) -> Fact | None:
        ref = _ref_of(doc.data) if isinstance(doc.data, dict) else None
        if ref is None:
            return None
        answer = compact(_answer(doc.data))
        if not isinstance(answer, bytes):
            answer = json.loads(json.dumps(answer))  # a copy: the document's values are not kept
        return Fact(seq, ref, doc.file, os.path.dirname(doc.file), answer)


Query = tuple[Any, ...]


class Checked(Protocol):
    """What a check reads of a document: its values and its file (a `Document`, or its values kept for later)."""

    @property
    def file(self) -> str: ...

    @property
    def data(self) -> Any: ...


def compact(value: Any) -> bytes | Any:
    """`value` as compact JSON bytes (the value itself when JSON cannot carry it: integers beyond 64 bits)."""
    try:
        # orjson's bytes keep the capacity it grew to (measured: 4x the length); a copy keeps just the length
        return bytes(memoryview(orjson.dumps(value)))
    except TypeError:
        return value


def expand(blob: bytes | Any) -> Any:
    return orjson.loads(blob) if isinstance(blob, bytes) else blob


class RunIndex:
    """The facts of every named object read so far."""

    def __init__(self) -> None:
        self._by_ref: dict[Ref, list[Fact]] = {}
        self._by_kind_name: dict[tuple[str, str], list[Fact]] = {}

    def add(self, fact: Fact) -> None:
        self._by_ref.setdefault(fact.ref, []).append(fact)
        self._by_kind_name.setdefault((fact.ref[0], fact.ref[2]), []).append(fact)

    def elsewhere(self, kind: str, name: str, namespace: str) -> list[Fact]:
        """Objects of that kind and name in other namespaces."""
        return [f for f in self._by_kind_name.get((kind, name), ()) if f.ref[1] != namespace]

    def nearest(self, ref: Ref, seq: int, file: str) -> list[Fact]:
        """The candidates for `ref` in the nearest scope that has any, for document `seq` of `file` (never itself)."""
        found = [f for f in self._by_ref.get(ref, ()) if f.seq != seq]
        if len(found) <= 1:
            return found
        same_file = [f for f in found if f.file == file]
        if same_file:
            return same_file
        here = os.path.dirname(file)
        return [f for f in found if f.directory == here] or found

    def answer(self, query: Query, seq: int, file: str) -> tuple[int, ...]:
        found = self.nearest(query[1], seq, file) if query[0] == "nearest" else self.elsewhere(*query[1:])
        return tuple(f.seq for f in found)


@dataclass
class Asked:
    """The index queries of one document's check and their answers (fact numbers)."""

    seq: int
    file: str
    answers: dict[Query, tuple[int, ...]] = field(default_factory=dict)

    def still_hold(self, index: RunIndex) -> bool:
        return all(index.answer(q, self.seq, self.file) == a for q, a in self.answers.items())


@dataclass
class _Probe:
    """The index as one document's check sees it: every query recorded with its answer."""

    index: RunIndex
    asked: Asked

    def nearest(self, ref: Ref) -> list[Fact]:
        found = self.index.nearest(ref, self.asked.seq, self.asked.file)
        self.asked.answers[("nearest", ref)] = tuple(f.seq for f in found)
        return found

    def elsewhere(self, kind: str, name: str, namespace: str) -> list[Fact]:
        found = self.index.elsewhere(kind, name, namespace)
        self.asked.answers[("elsewhere", kind, name, namespace)] = tuple(f.seq for f in found)
        return found


@dataclass
class _ChoiceLookup:
    """Answers each reference with the chosen candidate (the nearest by default) and remembers what it answered."""

    probe: _Probe
    chosen: dict[Ref, Fact]
    answered: dict[Ref, Fact]
    nearest: dict[Ref, list[Fact]]  # shared by the passes over one document
    objects: dict[int, dict[str, Any]]  # decoded answers, shared too
    calls: int = 0  # the engine tells from this which rules consulted the lookup

    def candidates(self, ref: Ref) -> list[Fact]:
        found = self.nearest.get(ref)
        if found is None:
            found = self.nearest[ref] = self.probe.nearest(ref)
        return found

    def get(self, kind: str, namespace: str, name: str) -> LookupResult:
        self.calls += 1
        ref = (kind, namespace, name)
        fact = self.chosen.get(ref) or next(iter(self.candidates(ref)), None)
        if fact is None:
            return UNKNOWN
        self.answered[ref] = fact
        obj = self.objects.get(fact.seq)
        if obj is None:
            obj = self.objects[fact.seq] = fact.obj
        return Found(obj)


def _run(
    doc: Checked,
    probe: _Probe,
    chosen: dict[Ref, Fact],
    disabled: frozenset[str],
    shared: _ChoiceLookup | None = None,
    previous: RulePass | None = None,
) -> tuple[RulePass, dict[Ref, Fact], _ChoiceLookup]:
    nearest, objects = (shared.nearest, shared.objects) if shared else ({}, {})
    lookup = _ChoiceLookup(probe, chosen, {}, nearest, objects)
    rp = rule_pass(doc.data, lookup=lookup, disabled=disabled, previous=previous)
    return rp, lookup.answered, lookup


def _key(f: Finding) -> tuple:
    return (f.code, f.path, f.severity)


def check_in_run(doc: Checked, seq: int, index: RunIndex, disabled: frozenset[str]) -> tuple[list[Finding], Asked]:
    """structure + rule findings of `doc` (document `seq` of the run), references resolved as the module docstring
    says against the objects indexed so far, and what the check asked the index."""
    probe = _Probe(index, Asked(seq, doc.file))
    first, answered, lookup = _run(doc, probe, {}, disabled)
    candidates = {ref: lookup.nearest[ref] for ref in answered}
    combos = [
        dict(zip(candidates, pick, strict=True))
        for pick in itertools.islice(itertools.product(*candidates.values()), MAX_COMBINATIONS)
    ]
    # Each choice re-runs only the rules that consulted the lookup (rule_pass keeps the others' findings).
    runs = (
        [(first, answered)]
        if len(combos) <= 1
        else [_run(doc, probe, c, disabled, lookup, previous=first)[:2] for c in combos]
    )
    common = set.intersection(*({_key(f) for f in rp.findings} for rp, _ in runs))
    rp0 = runs[0][0]
    used_files = sorted({d.file for _, ans in runs for d in ans.values() if d.file != doc.file})
    note = f" (checked against {', '.join(used_files)})" if used_files else ""
    kept = [
        replace(f, message=f.message + note) if note and f.code in rp0.used_lookup else f
        for f in rp0.findings
        if _key(f) in common
    ]
    findings = structure_findings(doc.data, disabled) + kept + _other_namespace(doc, probe, disabled)
    return findings, probe.asked


def _other_namespace(doc: Checked, probe: _Probe, disabled: frozenset[str]) -> list[Finding]:
    """A Restore whose Backup is in the run only under another namespace: the operator reads the Backup from the
    Restore's own namespace, so this is a namespace mix-up."""
    ref = _ref_of(doc.data)
    spec = doc.data.get("spec")
    name = spec.get("backupName") if isinstance(spec, dict) else None
    if OTHER_NAMESPACE_CODE in disabled or ref is None or ref[0] != kinds.RESTORE or not isinstance(name, str):
        return []
    if probe.nearest((kinds.BACKUP, ref[1], name)):
        return []
    others = probe.elsewhere(kinds.BACKUP, name, ref[1])
    if not others:
        return []
    where = ", ".join(sorted({f"namespace {f.ref[1]} ({f.file})" for f in others}))
    message = (
        f"Backup {name} is not in namespace {ref[1]} but in {where}: a Restore only uses Backups of its own namespace"
    )
    return [Finding(OTHER_NAMESPACE_CODE, Severity.WARNING, ("spec", "backupName"), message, OTHER_NAMESPACE_HINT)]
