"""One lint run: load every document, check the PSMDB ones against each other, place each finding."""

from __future__ import annotations

import gc
from collections.abc import Iterable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from ..findings import Finding, Severity
from ..policy.common import mapping
from ..policy.kinds import is_psmdb_object
from ..policy.nulls import prune_object
from .kustomize import patch_of
from .loader import STDIN, SYNTAX_CODE, Document, LoadError, discover, list_items, parse, position, read_text
from .refs import RunIndex, check_in_run
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
    """A run keeps every document's node tree (for positions) until the end. Those trees are acyclic, so reference
    counting frees them; letting the cyclic collector rescan the growing heap again and again costs more than
    parsing (bench/lint.py measured 5.5 s against 3.3 s for 10,000 documents)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@dataclass
class LintRun:
    disabled: frozenset[str] = frozenset()
    report: LintReport = field(default_factory=LintReport)
    unreadable: bool = False  # some input could not be opened: exit code 2

    def lint_paths(self, paths: Iterable[str]) -> LintReport:
        with _collector_paused():
            return self._lint_paths(paths)

    def _lint_paths(self, paths: Iterable[str]) -> LintReport:
        docs: list[Document] = []
        for item in discover(list(paths)):
            if isinstance(item, LoadError):
                self._fail(item)
                continue
            self.report.files += 1
            kustomization = patch_of(item) if item != STDIN else None
            if kustomization is not None:
                self._note(item, f"skipped: a kustomize patch listed in {kustomization}", KUSTOMIZE_HINT)
                continue
            text = read_text(item)
            if isinstance(text, LoadError):
                self._fail(text)
                continue
            self._read(item, text, docs)
        self.lint_documents(docs)
        return self.report

    def lint_rendered(self, name: str, text: str) -> LintReport:
        """Lint one rendered stream (`kubectl kustomize` output), findings placed in `name`."""
        with _collector_paused():
            docs: list[Document] = []
            self.report.files += 1
            self._read(name, text, docs)
            self.lint_documents(docs)
        return self.report

    def _read(self, item: str, text: str, docs: list[Document]) -> None:
        for doc in parse(item, text):
            if isinstance(doc, LoadError):
                self._fail(_with_helm_hint(doc) if "{{" in text else doc)
            else:
                for one in list_items(doc) or [doc]:
                    prune_object(one.data)  # as the API server does, before any rule or lookup sees it
                    docs.append(one)

    def _note(self, file: str, message: str, hint: str) -> None:
        if SYNTAX_CODE not in self.disabled:
            finding = Finding(SYNTAX_CODE, Severity.INFO, (), message, hint)
            self.report.findings.append(LocatedFinding(finding, file, 0, 0))

    def _fail(self, err: LoadError) -> None:
        self.unreadable |= err.unreadable
        if SYNTAX_CODE not in self.disabled or err.unreadable:
            self.report.findings.append(_error_finding(err))

    def lint_documents(self, docs: list[Document]) -> None:
        index = RunIndex(docs)
        for doc in docs:
            if doc.data is None:
                continue  # an empty document (a stray `---`) is not an object
            self.report.documents += 1
            if not is_psmdb_object(doc.data):
                self.report.skipped += 1
                continue
            self.report.checked += 1
            ref = object_ref(doc.data)
            placed = [
                LocatedFinding(f, doc.file, *position(doc.node, f.path, doc.line_offset), ref)
                for f in check_in_run(doc, index, self.disabled)
            ]
            self.report.findings.extend(sorted(placed, key=lambda f: (f.line, f.column, f.code)))
