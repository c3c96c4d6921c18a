"""GitLab Code Quality report (a subset of the Code Climate issue format), for `artifacts:reports:codequality`.

A JSON array; each finding becomes {description, check_name, fingerprint, severity, location: {path, lines: {begin}}}.
Severities: error -> critical, warning -> major, info -> info.

GitLab tells new findings from fixed ones by comparing the fingerprints of the merge request's report with the
target branch's. So the fingerprint hashes what identifies a finding but not its line (rule, file, object, JSON path,
message): an edit that only moves a manifest's lines changes nothing. File-level findings have no JSON path and use
their line instead. Identical findings get an occurrence number, so fingerprints are unique within a report.
GitLab requires a line: 1 when it is unknown.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Mapping
from typing import Any

from ...findings import Severity
from ...policy.registry import Rule
from ..report import LintReport, LocatedFinding
from ._common import display_file
from ._common import no_surrogates as _s

SEVERITIES = {Severity.ERROR: "critical", Severity.WARNING: "major", Severity.INFO: "info"}


def identity(lf: LocatedFinding) -> tuple[str, ...]:
    f = lf.finding
    where = f.path_str or f"line {lf.line}"
    return (f.code, display_file(lf.file), lf.object_ref, where, f.message)


def fingerprint(parts: tuple[str, ...], occurrence: int) -> str:
    text = "\0".join((*parts, str(occurrence)))
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


def description(lf: LocatedFinding) -> str:
    text = f"{lf.code} {lf.finding.headline()}"
    return text + (f" ({lf.object_ref})" if lf.object_ref else "")


def issue(lf: LocatedFinding, occurrence: int) -> dict[str, Any]:
    return {
        "description": _s(description(lf)),
        "check_name": _s(lf.code),
        "fingerprint": fingerprint(identity(lf), occurrence),
        "severity": SEVERITIES[lf.severity],
        "location": {"path": _s(display_file(lf.file)), "lines": {"begin": max(lf.line, 1)}},
    }


def render(report: LintReport, rules: Mapping[str, Rule], *, color: bool = False) -> str:
    del rules, color
    seen: Counter[tuple[str, ...]] = Counter()
    issues = []
    for lf in report.findings:
        key = identity(lf)
        issues.append(issue(lf, seen[key]))
        seen[key] += 1
    return json.dumps(issues, indent=2) + "\n"
