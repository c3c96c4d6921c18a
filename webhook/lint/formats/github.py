"""GitHub Actions workflow commands: one annotation per finding.

    ::error file=deploy/cr.yaml,line=42,col=9,title=PSB012 Storage must be defined::spec.backup...: storage ...

warning for warnings, notice for infos. Escaping follows @actions/core (toolkit `command.ts`): in the message
`%`, CR and LF become %25, %0D, %0A; in property values `:` and `,` also become %3A and %2C. So a manifest
value cannot end the annotation early or start a workflow command of its own. `file`, `line` and `col` are
left out when unknown (standard input, position 0).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from ...findings import Severity
from ...policy.registry import Rule
from ..report import LintReport, LocatedFinding
from ._common import display_file, is_stdin, no_surrogates, rule_title

COMMANDS = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "notice"}


def escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


_UNESCAPE = {"%25": "%", "%0D": "\r", "%0A": "\n", "%3A": ":", "%2C": ","}
_DATA_TOKEN = re.compile("%25|%0D|%0A")
_PROPERTY_TOKEN = re.compile("%25|%0D|%0A|%3A|%2C")


def unescape_data(text: str) -> str:
    """The inverse of `escape_data` (what the runner does); for tests and tools reading the output."""
    return _DATA_TOKEN.sub(lambda m: _UNESCAPE[m.group()], text)


def unescape_property(text: str) -> str:
    return _PROPERTY_TOKEN.sub(lambda m: _UNESCAPE[m.group()], text)


def message(lf: LocatedFinding) -> str:
    f = lf.finding
    parts = [f.headline()]
    if lf.object_ref:
        parts.append(f"object: {lf.object_ref}")
    if f.hint:
        parts.append(f"hint: {f.hint}")
    return "\n".join(parts)


def command(lf: LocatedFinding, rules: Mapping[str, Rule]) -> str:
    props: list[tuple[str, str]] = []
    if not is_stdin(lf.file):
        props.append(("file", display_file(lf.file)))
        if lf.line > 0:
            props.append(("line", str(lf.line)))
            if lf.column > 0:
                props.append(("col", str(lf.column)))
    title = rule_title(lf.code, rules)
    props.append(("title", f"{lf.code} {title}" if title else lf.code))
    rendered = ",".join(f"{k}={escape_property(no_surrogates(v))}" for k, v in props)
    return f"::{COMMANDS[lf.severity]} {rendered}::{escape_data(no_surrogates(message(lf)))}"


def render(report: LintReport, rules: Mapping[str, Rule], *, color: bool = False) -> str:
    del color
    return "".join(command(lf, rules) + "\n" for lf in report.findings)
