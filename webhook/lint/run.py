"""One lint run: read the documents one by one, check each PSMDB one as it is read against the objects read so far
(webhook/lint/refs.py), place its findings and drop it; at the end, check again the few whose references a later
object changed. Findings are reported in the order of the inputs, file-level ones (syntax, skipped files) first."""

from __future__ import annotations

import gc
import itertools
from collections.abc import Iterable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from ..findings import Finding, Severity
from ..findings import Path as JsonPath
from ..policy import kinds
from ..policy.common import mapping
from ..policy.kinds import is_psmdb_object
from ..policy.nulls import prune_object
from .kustomize import patch_of
from .loader import (
    STDIN,
    SYNTAX_CODE,
    Document,
    LoadError,
    Source,
    as_text,
    discover,
    list_items,
    parse,
    position,
    read_source,
)
from .refs import Asked, Checked, Fact, RunIndex, check_in_run, compact, expand
from .report import LintReport, LocatedFinding


def object_ref(obj: Mapping[str, Any]) -> str:
    meta = mapping(obj.get("metadata"))
    name = meta.get("name") or meta.get("generateName") or "<unnamed>"
    return f"{obj.get('kind')} {meta.get('namespace') or 'default'}/{name}"


KUSTOMIZE_HINT = "lint the output of `kubectl kustomize DIR` to check the patched objects"
HELM_HINT = "this looks like a Helm template ({{ ... }}): lint the output of `helm template` instead"


def _with_helm_hint(err: LoadError) -> LoadError:
    return replace(err, message=f"{err.message}; {HELM_HINT}")


def _error_finding(err: LoadError) -> LocatedFinding:
    finding = Finding(
        SYNTAX_CODE,
        Severity.ERROR,
        (),
        err.message,
        "fix the file so it is valid YAML or JSON (kubectl would refuse it too)",
    )
    return LocatedFinding(finding, err.file, err.line, err.column)


@contextmanager
def _collector_paused():
    """A run allocates millions of small acyclic objects (values, nodes) that reference counting frees; letting the
    cyclic collector rescan the heap again and again costs more than parsing."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@dataclass
class _Checked:
    """A checked document whose findings depend on other objects: where its findings are in the report, and how to
    read it again if an object read after it changes what its references resolve to."""

    asked: Asked
    index: int  # the document's number in its file (Document.index)
    item: int | None  # its position in a List's items
    start: int  # its findings in LintRun._findings
    count: int
    data: Any  # its values (compact JSON): checked again without parsing ...
    where: dict[JsonPath, tuple[int, int]]  # ... its findings placed where the first check placed their paths
    fresh: list[LocatedFinding] | None = None  # its findings when checked again


def _positions(doc: Document, found: list[Finding]) -> dict[JsonPath, tuple[int, int]]:
    return {f.path: position(doc.node, f.path, doc.line_offset) for f in found}


# Backups and Restores name other objects that often come later in the run (backup.yaml sorts before cluster.yaml):
# they are checked at the end, once, with their node trees kept (small documents); past MAX_DEFERRED documents they
# are checked as they are read, like the others, so memory stays bounded.
DEFERRED_KINDS = frozenset({kinds.BACKUP, kinds.RESTORE})
MAX_DEFERRED = 5_000


@dataclass(frozen=True)
class _Kept:
    file: str
    data: Any


@dataclass
class LintRun:
    disabled: frozenset[str] = frozenset()
    report: LintReport = field(default_factory=LintReport)
    unreadable: bool = False  # some input could not be opened: exit code 2
    _index: RunIndex = field(default_factory=RunIndex)
    _findings: list[LocatedFinding] = field(default_factory=list)  # of documents; reported after the file-level ones
    _dependent: list[_Checked] = field(default_factory=list)
    _deferred: list[tuple[Document, int, int]] = field(default_factory=list)  # (document, seq, its findings' start)
    _texts: dict[str, Source] = field(default_factory=dict)  # inputs that cannot be read twice (stdin, rendered)
    _seq: int = 0

    def lint_paths(self, paths: Iterable[str]) -> LintReport:
        with _collector_paused():
            return self._lint_paths(paths)

    def _lint_paths(self, paths: Iterable[str]) -> LintReport:
        for item in discover(list(paths)):
            if isinstance(item, LoadError):
                self._fail(item)
                continue
            self.report.files += 1
            kustomization = patch_of(item) if item != STDIN else None
            if kustomization is not None:
                self._note(item, f"skipped: a kustomize patch listed in {kustomization}", KUSTOMIZE_HINT)
                continue
            text = read_source(item)
            if isinstance(text, LoadError):
                self._fail(text)
                continue
            if item == STDIN:
                self._texts[item] = text
            self._read(item, text)
        self._finish()
        return self.report

    def lint_rendered(self, name: str, text: str) -> LintReport:
        """Lint one rendered stream (`kubectl kustomize` output), findings placed in `name`."""
        with _collector_paused():
            self.report.files += 1
            self._texts[name] = text
            self._read(name, text)
            self._finish()
        return self.report

    def _read(self, item: str, text: Source) -> None:
        for doc in parse(item, text):
            if isinstance(doc, LoadError):
                self._fail(_with_helm_hint(doc) if "{{" in as_text(text) else doc)
                continue
            items = list_items(doc)
            for n, one in enumerate(items or [doc]):
                prune_object(one.data)  # as the API server does, before any rule or lookup sees it
                self._lint_one(one, n if items is not None else None)

    def _note(self, file: str, message: str, hint: str) -> None:
        if SYNTAX_CODE not in self.disabled:
            finding = Finding(SYNTAX_CODE, Severity.INFO, (), message, hint)
            self.report.findings.append(LocatedFinding(finding, file, 0, 0))

    def _fail(self, err: LoadError) -> None:
        self.unreadable |= err.unreadable
        if SYNTAX_CODE not in self.disabled or err.unreadable:
            self.report.findings.append(_error_finding(err))

    def _lint_one(self, doc: Document, item: int | None) -> None:
        """Check one document as it is read; its node tree and values are dropped when this returns."""
        seq, self._seq = self._seq, self._seq + 1
        fact = Fact.of(seq, doc)
        if fact is not None:
            self._index.add(fact)
        if doc.data is None:
            return  # an empty document (a stray `---`) is not an object
        self.report.documents += 1
        if not is_psmdb_object(doc.data):
            self.report.skipped += 1
            return
        self.report.checked += 1
        if doc.data.get("kind") in DEFERRED_KINDS and len(self._deferred) < MAX_DEFERRED:
            self._deferred.append((doc, seq, len(self._findings)))
            return
        found, asked = check_in_run(doc, seq, self._index, self.disabled)
        where = _positions(doc, found)
        placed = self._place(doc, found, where)
        if asked.answers:
            checked = _Checked(asked, doc.index, item, len(self._findings), len(placed), compact(doc.data), where)
            self._dependent.append(checked)
        self._findings.extend(placed)

    @staticmethod
    def _place(doc: Checked, found: list[Finding], where: dict[JsonPath, tuple[int, int]]) -> list[LocatedFinding]:
        ref = object_ref(doc.data)
        placed = [LocatedFinding(f, doc.file, *where[f.path], ref) for f in found]
        return sorted(placed, key=lambda f: (f.line, f.column, f.code))

    def _check_again(self, c: _Checked) -> bool:
        """Check a stale document from its kept values; False when a finding's path needs its node tree."""
        doc = _Kept(c.asked.file, expand(c.data))
        found, _ = check_in_run(doc, c.asked.seq, self._index, self.disabled)
        if any(f.path not in c.where for f in found):
            return False
        c.fresh = self._place(doc, found, c.where)
        return True

    def _finish(self) -> None:
        """Check again the documents whose references an object read after them resolves differently (a Backup
        read before its cluster), as if every object had been read first; then report the documents' findings."""
        stale = [c for c in self._dependent if not c.asked.still_hold(self._index)]
        unplaced = [c for c in stale if not self._check_again(c)]
        for file, group in itertools.groupby(unplaced, key=lambda c: c.asked.file):
            wanted = {(c.index, c.item): c for c in group}
            text = self._texts.get(file) or read_source(file)
            if isinstance(text, LoadError):
                continue  # gone since: the first check stands
            for doc in parse(file, text):
                if not isinstance(doc, Document):
                    continue
                items = list_items(doc)
                for n, one in enumerate(items or [doc]):
                    checked = wanted.get((one.index, n if items is not None else None))
                    if checked is not None:
                        prune_object(one.data)
                        found, _ = check_in_run(one, checked.asked.seq, self._index, self.disabled)
                        checked.fresh = self._place(one, found, _positions(one, found))
        splices = [(c.start, c.asked.seq, c.count, c.fresh) for c in stale if c.fresh is not None]
        for doc, seq, start in self._deferred:
            found, _ = check_in_run(doc, seq, self._index, self.disabled)
            splices.append((start, seq, 0, self._place(doc, found, _positions(doc, found))))
        for start, _, count, fresh in sorted(splices, reverse=True):  # from the end: earlier offsets stay valid
            self._findings[start : start + count] = fresh
        self.report.findings.extend(self._findings)
        self._findings, self._dependent, self._deferred = [], [], []
