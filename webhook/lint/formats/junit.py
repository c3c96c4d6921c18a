"""JUnit XML for CI systems that show test reports (GitLab, Jenkins, Azure Pipelines, ...).

    <testsuites name="psmdb-backup lint" tests=".." failures="..">
      <testsuite name="deploy/cr.yaml" ...>          one per file with findings
        <testcase classname="deploy/cr.yaml" name="PSB012 spec.backup.tasks[1].storageName" file=".." line="..">
          <failure type="error" message="...">...</failure>      error and warning findings
        </testcase>                                              info findings pass, text in <system-out>

A report without findings has one passing test case, so CI systems that reject empty reports stay quiet.
Text is escaped by xml.etree; characters XML 1.0 cannot carry at all (most C0 controls, lone surrogates,
U+FFFE/U+FFFF) are removed.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping

from ...findings import Severity
from ...policy.registry import Rule
from ..report import LintReport, LocatedFinding
from ._common import display_file, location, plural, rule_title

SUITES_NAME = "psmdb-backup lint"
FAILING = (Severity.ERROR, Severity.WARNING)

_XML_ILLEGAL = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(text: str) -> str:
    return _XML_ILLEGAL.sub("", text).replace("\r\n", "\n")


def _details(lf: LocatedFinding, rules: Mapping[str, Rule]) -> str:
    f = lf.finding
    title = rule_title(f.code, rules)
    lines = [f"{location(lf)} {f.severity.label} {f.code}" + (f" ({title})" if title else ""), f.headline()]
    if lf.object_ref:
        lines.append(f"object: {lf.object_ref}")
    if f.hint:
        lines.append(f"hint: {f.hint}")
    return xml_text("\n".join(lines))


def _testcase(parent: ET.Element, lf: LocatedFinding, rules: Mapping[str, Rule]) -> None:
    f = lf.finding
    name = f"{f.code} {f.path_str}" if f.path else f.code
    attrs = {
        "classname": xml_text(lf.object_ref or display_file(lf.file)),
        "name": xml_text(name),
        "file": xml_text(display_file(lf.file)),
    }
    if lf.line > 0:
        attrs["line"] = str(lf.line)
    case = ET.SubElement(parent, "testcase", attrs)
    if f.severity in FAILING:
        failure = ET.SubElement(case, "failure", {"type": f.severity.label, "message": xml_text(f.headline())})
        failure.text = _details(lf, rules)
    else:
        ET.SubElement(case, "system-out").text = _details(lf, rules)


def junit_tree(report: LintReport, rules: Mapping[str, Rule]) -> ET.Element:
    by_file: dict[str, list[LocatedFinding]] = {}
    for lf in report.findings:
        by_file.setdefault(lf.file, []).append(lf)
    failures_total = sum(1 for lf in report.findings if lf.severity in FAILING)
    root = ET.Element(
        "testsuites",
        {
            "name": SUITES_NAME,
            "tests": str(max(len(report.findings), 1)),
            "failures": str(failures_total),
            "errors": "0",
        },
    )
    for file, findings in by_file.items():
        failures = sum(1 for lf in findings if lf.severity in FAILING)
        suite = ET.SubElement(
            root,
            "testsuite",
            {
                "name": xml_text(display_file(file)),
                "tests": str(len(findings)),
                "failures": str(failures),
                "errors": "0",
                "skipped": "0",
            },
        )
        for lf in findings:
            _testcase(suite, lf, rules)
    if not report.findings:
        s = report.summary()
        suite = ET.SubElement(
            root, "testsuite", {"name": SUITES_NAME, "tests": "1", "failures": "0", "errors": "0", "skipped": "0"}
        )
        case = ET.SubElement(suite, "testcase", {"classname": SUITES_NAME, "name": "no findings"})
        ET.SubElement(case, "system-out").text = (
            f"{plural(s['files'], 'file')}, {plural(s['documents'], 'document')}: "
            f"{s['checked']} checked, {s['skipped']} skipped"
        )
    return root


def render(report: LintReport, rules: Mapping[str, Rule], *, color: bool = False) -> str:
    del color
    root = junit_tree(report, rules)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
