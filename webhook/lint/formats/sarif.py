"""SARIF 2.1.0 for code-scanning front-ends (GitHub code scanning, GitLab, VS Code SARIF viewer, ...).

One run; `tool.driver.rules` describes every rule that appears in the findings (sorted by code), including codes
the rule table does not know (file-level codes such as a YAML syntax error), which get a minimal entry.
Artifact URIs are relative references with forward slashes, percent-encoded (a space becomes `%20`); absolute
paths become `file://` URIs; standard input is `stdin`. A finding without a known line has no region.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from ... import __version__
from ...findings import Severity
from ...policy.registry import Rule
from ..report import LintReport, LocatedFinding
from ._common import display_file, is_stdin
from ._common import no_surrogates as _s

SCHEMA_URI = "https://json.schemastore.org/sarif-2.1.0.json"
SARIF_VERSION = "2.1.0"
TOOL_NAME = "psmdb-backup"
# Adjust both when the project's public home is settled.
INFORMATION_URI = "https://github.com/psmdb-backup-webhook/psmdb-backup-webhook"
RULES_DOC_URI = INFORMATION_URI + "/blob/main/docs/rules.md"

LEVELS = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}

_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:/")


def artifact_uri(file: str) -> str:
    if is_stdin(file):
        return "stdin"
    path = display_file(file)
    if path.startswith("/") or _WINDOWS_DRIVE.match(path):
        prefix = "file://" if path.startswith("/") else "file:///"
        return prefix + quote(path, safe="/:", errors="surrogateescape")
    # ":" is encoded too: in a relative reference it would otherwise read as a URI scheme ("c:cr.yaml").
    return quote(path, safe="/", errors="surrogateescape")


def rule_name(title: str, code: str) -> str:
    """`storage must be defined` -> `StorageMustBeDefined`: SARIF's `name` is a human-readable identifier."""
    words = re.findall(r"[A-Za-z0-9]+", title)
    return "".join(w[:1].upper() + w[1:] for w in words) or code


def help_uri(code: str) -> str:
    return f"{RULES_DOC_URI}#{code.lower()}"


def rule_descriptor(code: str, rule: Rule | None, fallback: Severity) -> dict[str, Any]:
    if rule is None:
        return {
            "id": _s(code),
            "name": rule_name("", _s(code)),
            "shortDescription": {"text": _s(code)},
            "defaultConfiguration": {"level": LEVELS[fallback]},
        }
    description = rule.description or rule.title
    help_text = description + (f"\n\nHint: {rule.hint}" if rule.hint else "")
    help_md = f"**{rule.title}**\n\n{description}" + (f"\n\n**Hint:** {rule.hint}" if rule.hint else "")
    kinds = ", ".join(f"`{k}`" for k in rule.kinds)
    help_md += f"\n\nApplies to {kinds}; operator versions: {rule.versions}."
    tags = [t for t in dict.fromkeys(("psmdb-backup", *rule.kinds)) if t]
    return {
        "id": _s(rule.code),
        "name": rule_name(rule.title, rule.code),
        "shortDescription": {"text": _s(rule.title)},
        "fullDescription": {"text": _s(description)},
        "help": {"text": _s(help_text), "markdown": _s(help_md)},
        "helpUri": help_uri(rule.code),
        "defaultConfiguration": {"level": LEVELS[rule.severity]},
        "properties": {
            "tags": [_s(t) for t in tags],
            "kinds": [_s(k) for k in rule.kinds],
            "versions": rule.versions,
            "source": _s(rule.source),
        },
    }


def result_message(lf: LocatedFinding) -> str:
    f = lf.finding
    return f.headline() + (f"\nHint: {f.hint}" if f.hint else "")


def result(lf: LocatedFinding, rule_index: int) -> dict[str, Any]:
    f = lf.finding
    physical: dict[str, Any] = {"artifactLocation": {"uri": artifact_uri(lf.file)}}
    if lf.line > 0:
        region: dict[str, Any] = {"startLine": lf.line}
        if lf.column > 0:
            region["startColumn"] = lf.column
        physical["region"] = region
    loc: dict[str, Any] = {"physicalLocation": physical}
    if lf.object_ref:
        loc["logicalLocations"] = [{"fullyQualifiedName": _s(lf.object_ref), "kind": "resource"}]
    out: dict[str, Any] = {
        "ruleId": _s(f.code),
        "ruleIndex": rule_index,
        "level": LEVELS[f.severity],
        "message": {"text": _s(result_message(lf))},
        "locations": [loc],
    }
    props = {k: _s(v) for k, v in (("path", f.path_str), ("object", lf.object_ref)) if v}
    if props:
        out["properties"] = props
    return out


def sarif_log(report: LintReport, rules: Mapping[str, Rule]) -> dict[str, Any]:
    first_severity: dict[str, Severity] = {}
    for lf in report.findings:
        first_severity.setdefault(lf.code, lf.severity)
    codes = sorted(first_severity)
    index = {code: i for i, code in enumerate(codes)}
    descriptors = [rule_descriptor(c, rules.get(c), first_severity[c]) for c in codes]
    return {
        "$schema": SCHEMA_URI,
        "version": SARIF_VERSION,
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": TOOL_NAME,
                        "informationUri": INFORMATION_URI,
                        "version": __version__,
                        "rules": descriptors,
                    }
                },
                "columnKind": "unicodeCodePoints",
                "results": [result(lf, index[lf.code]) for lf in report.findings],
                "properties": {"summary": report.summary()},
            }
        ],
    }


def render(report: LintReport, rules: Mapping[str, Rule], *, color: bool = False) -> str:
    del color
    return json.dumps(sarif_log(report, rules), indent=2) + "\n"
