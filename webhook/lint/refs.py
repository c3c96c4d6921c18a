"""Cross-object references in a lint run. A Backup or Restore names its cluster (and a Restore its Backup) by name
only; in a directory of unrelated examples several objects may share that name. The nearest one counts: the same
file first, then the same directory, then the rest of the run. When several are equally near, a finding stands
only if the check gives it against every one of them; each finding that used another object names its file."""

from __future__ import annotations

import itertools
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from ..findings import Finding, Severity
from ..policy import kinds
from ..policy.engine import RulePass, rule_pass, structure_findings
from ..policy.lookup import UNKNOWN, Found, LookupResult, Ref
from .loader import Document

OTHER_NAMESPACE_CODE = "PSB008"
OTHER_NAMESPACE_HINT = "create the Restore in the Backup's namespace, or name a Backup of the Restore's namespace"
MAX_COMBINATIONS = 16  # equally near candidates checked one by one; beyond that, the first ones


def _ref_of(obj: Mapping[str, Any]) -> Ref | None:
    meta = obj.get("metadata")
    if not isinstance(meta, dict) or not isinstance(obj.get("kind"), str):
        return None
    name, ns = meta.get("name"), meta.get("namespace") or "default"
    return (obj["kind"], ns, name) if isinstance(name, str) and isinstance(ns, str) else None


class RunIndex:
    """Every named object of the run, with the document it came from."""

    def __init__(self, docs: list[Document]) -> None:
        self._by_ref: dict[Ref, list[tuple[Document, str]]] = {}  # with each document's directory, computed once
        for doc in docs:
            ref = _ref_of(doc.data) if isinstance(doc.data, dict) else None
            if ref is not None:
                self._by_ref.setdefault(ref, []).append((doc, os.path.dirname(doc.file)))

    def elsewhere(self, kind: str, name: str, namespace: str) -> list[Document]:
        """Objects of that kind and name in other namespaces."""
        return [
            d
            for (k, ns, n), docs in self._by_ref.items()
            if (k, n) == (kind, name) and ns != namespace
            for d, _ in docs
        ]

    def nearest(self, ref: Ref, near: Document) -> list[Document]:
        """The candidates for `ref` in the nearest scope that has any (never `near` itself)."""
        found = [(d, where) for d, where in self._by_ref.get(ref, ()) if d is not near]
        if len(found) <= 1:
            return [d for d, _ in found]
        same_file = [d for d, _ in found if d.file == near.file]
        if same_file:
            return same_file
        here = os.path.dirname(near.file)
        return [d for d, where in found if where == here] or [d for d, _ in found]


@dataclass
class _ChoiceLookup:
    """Answers each reference with the chosen candidate (the nearest by default) and remembers what it answered."""

    index: RunIndex
    near: Document
    chosen: dict[Ref, Document]
    answered: dict[Ref, Document]
    nearest: dict[Ref, list[Document]]  # shared by the passes over one document
    calls: int = 0  # the engine tells from this which rules consulted the lookup

    def candidates(self, ref: Ref) -> list[Document]:
        found = self.nearest.get(ref)
        if found is None:
            found = self.nearest[ref] = self.index.nearest(ref, self.near)
        return found

    def get(self, kind: str, namespace: str, name: str) -> LookupResult:
        self.calls += 1
        ref = (kind, namespace, name)
        doc = self.chosen.get(ref) or next(iter(self.candidates(ref)), None)
        if doc is None:
            return UNKNOWN
        self.answered[ref] = doc
        return Found(doc.data)


def _run(
    doc: Document,
    index: RunIndex,
    chosen: dict[Ref, Document],
    disabled: frozenset[str],
    nearest: dict[Ref, list[Document]],
    previous: RulePass | None = None,
) -> tuple[RulePass, dict[Ref, Document]]:
    lookup = _ChoiceLookup(index, doc, chosen, {}, nearest)
    rp = rule_pass(doc.data, lookup=lookup, disabled=disabled, previous=previous)
    return rp, lookup.answered


def _key(f: Finding) -> tuple:
    return (f.code, f.path, f.severity)


def check_in_run(doc: Document, index: RunIndex, disabled: frozenset[str]) -> list[Finding]:
    """structure + rule findings of `doc`, references resolved as the module docstring says."""
    nearest: dict[Ref, list[Document]] = {}
    first, answered = _run(doc, index, {}, disabled, nearest)
    candidates = {ref: nearest[ref] for ref in answered}
    combos = [
        dict(zip(candidates, pick, strict=True))
        for pick in itertools.islice(itertools.product(*candidates.values()), MAX_COMBINATIONS)
    ]
    # Each choice re-runs only the rules that consulted the lookup (rule_pass keeps the others' findings).
    runs = (
        [(first, answered)]
        if len(combos) <= 1
        else [_run(doc, index, c, disabled, nearest, previous=first) for c in combos]
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
    return structure_findings(doc.data, disabled) + kept + _other_namespace(doc, index, disabled)


def _other_namespace(doc: Document, index: RunIndex, disabled: frozenset[str]) -> list[Finding]:
    """A Restore whose Backup is in the run only under another namespace: the operator reads the Backup from the
    Restore's own namespace, so this is a namespace mix-up."""
    ref = _ref_of(doc.data)
    spec = doc.data.get("spec")
    name = spec.get("backupName") if isinstance(spec, dict) else None
    if OTHER_NAMESPACE_CODE in disabled or ref is None or ref[0] != kinds.RESTORE or not isinstance(name, str):
        return []
    if index.nearest((kinds.BACKUP, ref[1], name), doc):
        return []
    others = index.elsewhere(kinds.BACKUP, name, ref[1])
    if not others:
        return []
    where = ", ".join(
        sorted({f"namespace {d.data['metadata'].get('namespace') or 'default'} ({d.file})" for d in others})
    )
    message = (
        f"Backup {name} is not in namespace {ref[1]} but in {where}: a Restore only uses Backups of its own namespace"
    )
    return [Finding(OTHER_NAMESPACE_CODE, Severity.WARNING, ("spec", "backupName"), message, OTHER_NAMESPACE_HINT)]
