"""Machine-readable JSON: `{"findings": [...], "summary": {...}}`, keys in a fixed order, indent 2.

Each finding: file (as given on the command line, "<stdin>" for standard input), line and column (1-based,
0 when unknown), rule, severity (error/warning/info), path (`spec.backup.tasks[1].storageName`, "" for
file-level findings), message, hint, object (`PerconaServerMongoDBBackup default/nightly`, or "").
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import orjson

from ...policy.registry import Rule
from ..report import LintReport, LocatedFinding


def finding_dict(lf: LocatedFinding) -> dict[str, Any]:
    f = lf.finding
    return {
        "file": lf.file,
        "line": lf.line,
        "column": lf.column,
        "rule": f.code,
        "severity": f.severity.label,
        "path": f.path_str,
        "message": f.message,
        "hint": f.hint,
        "object": lf.object_ref,
    }


def render(report: LintReport, rules: Mapping[str, Rule], *, color: bool = False) -> str:
    del rules, color
    doc = {"findings": [finding_dict(lf) for lf in report.findings], "summary": report.summary()}
    # orjson writes the same bytes as json.dumps(indent=2) about ten times faster; the json module stays for output
    # that is not plain ASCII, which it escapes (ensure_ascii keeps file names with undecodable bytes, lone
    # surrogates, valid UTF-8; orjson refuses those).
    try:
        fast = orjson.dumps(doc, option=orjson.OPT_INDENT_2)
    except TypeError:
        fast = b"\x80"
    if fast.isascii():
        return fast.decode("ascii") + "\n"
    return json.dumps(doc, indent=2, ensure_ascii=True) + "\n"
