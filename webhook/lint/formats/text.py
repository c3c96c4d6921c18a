"""The default, human-readable format.

    deploy/cr.yaml:42:9 error PSB012 spec.backup.tasks[1].storageName: storage "s3-eu" is not defined ...
      object: PerconaServerMongoDB default/my-cluster
      hint: add the storage under spec.backup.storages or fix the name
    1 error, 0 warnings, 0 infos in 1 file (3 documents, 2 checked, 1 skipped)

The first line of a finding is grep-able (`file:line:col severity CODE path: message`); a message that spans
several lines continues on lines indented by four spaces. Colour (ANSI SGR) only when `color` is true.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from ...findings import Severity
from ...policy.registry import Rule
from ..report import LintReport, LocatedFinding
from ._common import location, plural, printable

RESET = "\x1b[0m"
BOLD = "\x1b[1m"
DIM = "\x1b[2m"
SEVERITY_STYLE = {
    Severity.ERROR: "\x1b[1;31m",  # bold red
    Severity.WARNING: "\x1b[1;33m",  # bold yellow
    Severity.INFO: "\x1b[1;36m",  # bold cyan
}


_NEWLINE = re.compile(r"\r\n|\r|\n")


def _paint(text: str, style: str, color: bool) -> str:
    return f"{style}{text}{RESET}" if color and style and text else text


def _continued(text: str, indent: str) -> str:
    """Multi-line text: every line after the first indented, so a finding never looks like two."""
    return f"\n{indent}".join(printable(line) for line in _NEWLINE.split(text))


def _one_line(text: str) -> str:
    return printable(text).replace("\n", "\\n")


def format_finding(lf: LocatedFinding, *, color: bool = False) -> str:
    f = lf.finding
    head = " ".join(
        (
            _paint(_one_line(location(lf)), BOLD, color),
            _paint(f.severity.label, SEVERITY_STYLE[f.severity], color),
            _paint(_one_line(f.code), DIM, color),
            _continued(f.headline(), "    "),
        )
    )
    lines = [head]
    if lf.object_ref:
        lines.append(_paint(f"  object: {_continued(lf.object_ref, '    ')}", DIM, color))
    if f.hint:
        lines.append(f"  {_paint('hint:', DIM, color)} {_continued(f.hint, '    ')}")
    return "\n".join(lines)


def summary_line(report: LintReport, *, color: bool = False) -> str:
    s = report.summary()
    counts = [
        _paint(plural(s["errors"], "error"), SEVERITY_STYLE[Severity.ERROR] if s["errors"] else "", color),
        _paint(plural(s["warnings"], "warning"), SEVERITY_STYLE[Severity.WARNING] if s["warnings"] else "", color),
        _paint(plural(s["infos"], "info"), SEVERITY_STYLE[Severity.INFO] if s["infos"] else "", color),
    ]
    return (
        f"{', '.join(counts)} in {plural(s['files'], 'file')} "
        f"({plural(s['documents'], 'document')}, {s['checked']} checked, {s['skipped']} skipped)"
    )


def render(report: LintReport, rules: Mapping[str, Rule], *, color: bool = False) -> str:
    del rules  # the finding carries everything this format shows
    out = [format_finding(lf, color=color) for lf in report.findings]
    out.append(summary_line(report, color=color))
    return "\n".join(out) + "\n"
