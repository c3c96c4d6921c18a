"""The output formats of `psmdb-backup lint`: every format is parsed back, not string-compared.

tests/data/sarif-schema-2.1.0.json is the official OASIS SARIF 2.1.0 JSON schema (errata 01, OASIS Standard;
`id` https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json), copied
byte for byte from github.com/oasis-tcs/sarif-spec, path sarif-2.1/schema/sarif-schema-2.1.0.json at commit
e0583813964ec43cea53b6b531b402866095ed1f (sha256 c3b4bb2d6093897483348925aaa73af03b3e3f4bd4ca38cef26dcb4212a2682e).
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest

import webhook
from webhook.findings import Finding, Severity
from webhook.lint.formats import FORMATS, render
from webhook.lint.formats import github as gh
from webhook.lint.formats import sarif as sarif_mod
from webhook.lint.report import LintReport, LocatedFinding
from webhook.policy.registry import Example, Rule

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "data" / "sarif-schema-2.1.0.json"
ANSI = re.compile(r"\x1b\[[0-9;]*m")
XML_ILLEGAL = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _never(ctx):  # pragma: no cover - the formats never run rules
    return iter(())


def make_rule(code: str, title: str, severity: Severity, kinds=("PerconaServerMongoDB",), **kw) -> Rule:
    return Rule(
        code=code,
        title=title,
        severity=severity,
        kinds=tuple(kinds),
        source=kw.pop("source", "operator: pkg/apis/psmdb/v1/psmdb_defaults.go"),
        hint=kw.pop("hint", f"default hint of {code}"),
        bad=(Example("spec: {}"),),
        good=(Example("spec: {}"),),
        check=_never,
        **kw,
    )


RULES = {
    r.code: r
    for r in (
        make_rule(
            "PSB012",
            "Backup task storage must be defined",
            Severity.ERROR,
            description="Every spec.backup.tasks[].storageName must name a key of spec.backup.storages.",
        ),
        make_rule(
            "PSB020",
            "PITR needs a storage",
            Severity.WARNING,
            kinds=("PerconaServerMongoDB", "PerconaServerMongoDBBackup"),
        ),
        make_rule(
            "PSB030", "Backup has no explicit type", Severity.INFO, kinds=("PerconaServerMongoDBBackup",), hint=""
        ),
    )
}

STORAGE_MSG = 'storage "s3-eu" is not defined in spec.backup.storages (defined: s3-us-west, azure-blob)'
STORAGE_HINT = "add it under spec.backup.storages or use one of the defined names"


def lf(code, severity, path, message, file="deploy/cr.yaml", line=42, column=9, hint="", object_ref=""):
    return LocatedFinding(Finding(code, severity, tuple(path), message, hint), file, line, column, object_ref)


@pytest.fixture
def report() -> LintReport:
    return LintReport(
        findings=[
            lf(
                "PSB012",
                Severity.ERROR,
                ("spec", "backup", "tasks", 1, "storageName"),
                STORAGE_MSG,
                hint=STORAGE_HINT,
                object_ref="PerconaServerMongoDB default/my-cluster",
            ),
            lf(
                "PSB020",
                Severity.WARNING,
                ("spec", "backup", "pitr", "enabled"),
                "PITR is on but ...",
                line=50,
                column=7,
                hint="set spec.backup.pitr.enabled: false",
            ),
            lf(
                "PSB030",
                Severity.INFO,
                ("spec",),
                "no type: logical is assumed",
                file="deploy/backup.yaml",
                line=3,
                column=1,
                object_ref="PerconaServerMongoDBBackup default/nightly",
            ),
            # A file-level finding with a code the rule table does not know, position unknown.
            lf(
                "PSB000",
                Severity.ERROR,
                (),
                "YAML syntax error: mapping values are not allowed here",
                file="broken.yaml",
                line=0,
                column=0,
            ),
        ],
        files=3,
        documents=4,
        checked=3,
        skipped=1,
    )


WEIRD_MESSAGE = 'a\nb\r\nc, d: e % f %0A %25 "q" <x> & ]]> ü ✓ 🚀 \x00\x07\x1b[31mred\x1b[0m \x7f \ufffe end'
WEIRD_HINT = "line one\nline two, with: 100% more"
WEIRD_FILE = "deploy dir/my cr,v1:final %20.yaml"


@pytest.fixture
def weird() -> LintReport:
    return LintReport(
        findings=[
            lf(
                "PSB012",
                Severity.ERROR,
                ("metadata", "annotations", "a,b:c"),
                WEIRD_MESSAGE,
                file=WEIRD_FILE,
                line=7,
                column=0,
                hint=WEIRD_HINT,
                object_ref="PerconaServerMongoDB ns/na\nme",
            ),
            lf("PSB020", Severity.WARNING, ("spec",), "from stdin", file="<stdin>", line=2, column=3),
            lf("PSB030", Severity.INFO, (), "windows path", file=".\\deploy\\win.yaml", line=1, column=1),
            lf("X:Y,1", Severity.ERROR, (), "odd code", file="./rel/x.yaml", line=0, column=5),
            lf("PSB012", Severity.ERROR, (), "undecodable name", file="bad-\udcff.yaml", line=1, column=1),
        ],
        files=5,
        documents=5,
        checked=5,
        skipped=0,
    )


EMPTY = LintReport(files=2, documents=3, checked=1, skipped=2)


# --- dispatch --------------------------------------------------------------------------------------------------


def test_formats_registered():
    assert set(FORMATS) == {"text", "json", "sarif", "junit", "github", "gitlab"}


def test_render_dispatches(report):
    for name, fn in FORMATS.items():
        assert render(name, report, RULES) == fn(report, RULES, color=False)


def test_render_unknown_format(report):
    with pytest.raises(ValueError, match="unknown output format 'yaml'"):
        render("yaml", report, RULES)


@pytest.mark.parametrize("name", sorted(FORMATS))
@pytest.mark.parametrize("which", ["report", "weird", "empty"])
def test_every_format_renders_utf8_text(name, which, request):
    rep = EMPTY if which == "empty" else request.getfixturevalue(which)
    out = render(name, rep, RULES)
    out.encode("utf-8")  # no lone surrogates left in the output
    assert out == "" or out.endswith("\n")
    # Non-text formats ignore colour.
    if name != "text":
        assert render(name, rep, RULES, color=True) == out


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_every_format_renders_without_rules(name, report):
    """The rule table is only metadata: an empty one must not break any format."""
    render(name, report, {})


# --- text ------------------------------------------------------------------------------------------------------


def test_text_lines(report):
    out = render("text", report, RULES)
    lines = out.splitlines()
    assert lines[0] == (
        'deploy/cr.yaml:42:9 error PSB012 spec.backup.tasks[1].storageName: storage "s3-eu" is not defined '
        "in spec.backup.storages (defined: s3-us-west, azure-blob)"
    )
    assert lines[1] == "  object: PerconaServerMongoDB default/my-cluster"
    assert lines[2] == f"  hint: {STORAGE_HINT}"
    assert lines[3] == "deploy/cr.yaml:50:7 warning PSB020 spec.backup.pitr.enabled: PITR is on but ..."
    assert lines[4] == "  hint: set spec.backup.pitr.enabled: false"
    assert lines[5] == "deploy/backup.yaml:3:1 info PSB030 spec: no type: logical is assumed"
    assert lines[6] == "  object: PerconaServerMongoDBBackup default/nightly"
    assert lines[7] == "broken.yaml error PSB000 YAML syntax error: mapping values are not allowed here"
    assert lines[8] == "2 errors, 1 warning, 1 info in 3 files (4 documents, 3 checked, 1 skipped)"
    assert len(lines) == 9
    assert "\x1b" not in out


def test_text_color(report):
    plain = render("text", report, RULES, color=False)
    colored = render("text", report, RULES, color=True)
    assert "\x1b[" in colored
    assert "\x1b[1;31merror\x1b[0m" in colored
    assert "\x1b[1;33mwarning\x1b[0m" in colored
    assert ANSI.sub("", colored) == plain


def test_text_empty_report():
    expected = "0 errors, 0 warnings, 0 infos in 2 files (3 documents, 1 checked, 2 skipped)\n"
    assert render("text", EMPTY, RULES) == expected


def test_text_weird_inputs(weird):
    out = render("text", weird, RULES)
    assert "\x1b" not in out and "\x00" not in out and "\x07" not in out and "\r" not in out
    assert "\\x1b[31mred\\x1b[0m" in out  # escape sequences from manifests are shown, not interpreted
    lines = out.splitlines()
    # Each finding starts at column 0; continuation lines of a multi-line message or hint are indented.
    starts = [ln for ln in lines if not ln.startswith(" ")]
    assert starts[0].startswith(f"{WEIRD_FILE}:7 error PSB012 metadata.annotations.a,b:c: a")
    assert "    b" in lines and "    line two, with: 100% more" in lines
    assert any(ln.startswith("<stdin>:2:3 warning PSB020 ") for ln in starts)
    assert any(ln.startswith("deploy/win.yaml:1:1 info PSB030 ") for ln in starts)
    assert any(ln.startswith("rel/x.yaml error X:Y,1 odd code") for ln in starts)
    assert any(ln.startswith("bad-\\udcff.yaml:1:1 error PSB012") for ln in starts)
    assert starts[-1] == "3 errors, 1 warning, 1 info in 5 files (5 documents, 5 checked, 0 skipped)"
    assert len(starts) == 6
    out.encode("utf-8")


def test_text_newline_in_file_name_stays_on_one_line():
    rep = LintReport(findings=[lf("PSB\n1", Severity.ERROR, (), "m", file="new\nline\t.yaml", line=1, column=2)])
    lines = render("text", rep, RULES).splitlines()
    assert lines[0] == "new\\nline\t.yaml:1:2 error PSB\\n1 m"
    assert len(lines) == 2


# --- json ------------------------------------------------------------------------------------------------------


def test_json(report):
    out = render("json", report, RULES)
    doc = json.loads(out)
    assert list(doc) == ["findings", "summary"]
    assert doc["summary"] == report.summary()
    assert list(doc["summary"]) == list(report.summary())
    first = doc["findings"][0]
    assert list(first) == ["file", "line", "column", "rule", "severity", "path", "message", "hint", "object"]
    assert first == {
        "file": "deploy/cr.yaml",
        "line": 42,
        "column": 9,
        "rule": "PSB012",
        "severity": "error",
        "path": "spec.backup.tasks[1].storageName",
        "message": STORAGE_MSG,
        "hint": STORAGE_HINT,
        "object": "PerconaServerMongoDB default/my-cluster",
    }
    assert [f["severity"] for f in doc["findings"]] == ["error", "warning", "info", "error"]
    assert doc["findings"][3]["path"] == "" and doc["findings"][3]["line"] == 0
    assert out.startswith('{\n  "findings": [\n    {\n      "file"')  # indent 2
    assert render("json", report, RULES) == out  # deterministic


def test_json_weird_round_trip(weird):
    out = render("json", weird, RULES)
    out.encode("ascii")
    doc = json.loads(out)
    assert [f["file"] for f in doc["findings"]] == [x.file for x in weird.findings]
    assert doc["findings"][0]["message"] == WEIRD_MESSAGE
    assert doc["findings"][0]["hint"] == WEIRD_HINT
    assert doc["findings"][0]["path"] == "metadata.annotations.a,b:c"


@pytest.mark.parametrize("which", ["report", "weird", "empty"])
def test_json_bytes_are_the_json_modules(which, report, weird):
    """The fast writer (orjson) must not change one byte of what json.dumps(indent=2, ensure_ascii=True) wrote."""
    from webhook.lint.formats.jsonfmt import finding_dict

    rep = {"report": report, "weird": weird, "empty": EMPTY}[which]
    doc = {"findings": [finding_dict(lf) for lf in rep.findings], "summary": rep.summary()}
    assert render("json", rep, RULES) == json.dumps(doc, indent=2, ensure_ascii=True) + "\n"


def test_json_empty():
    assert json.loads(render("json", EMPTY, RULES)) == {"findings": [], "summary": EMPTY.summary()}


# --- sarif -----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sarif_validator():
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


# RFC 3986 URI-reference characters (unreserved, reserved, percent escapes).
URI_REF = re.compile(r"^(?:[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=]|%[0-9A-Fa-f]{2})*$")


def sarif_of(rep, rules, validator):
    doc = json.loads(render("sarif", rep, rules))
    errors = sorted(validator.iter_errors(doc), key=str)
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)
    return doc


def test_sarif_valid_and_complete(report, sarif_validator):
    doc = sarif_of(report, RULES, sarif_validator)
    assert doc["$schema"] == "https://json.schemastore.org/sarif-2.1.0.json"
    assert doc["version"] == "2.1.0"
    assert len(doc["runs"]) == 1
    run = doc["runs"][0]
    driver = run["tool"]["driver"]
    assert driver["name"] == "psmdb-backup"
    assert driver["version"] == webhook.__version__
    assert driver["informationUri"].startswith("https://")
    rules = driver["rules"]
    assert [r["id"] for r in rules] == ["PSB000", "PSB012", "PSB020", "PSB030"]
    by_id = {r["id"]: r for r in rules}
    r12 = by_id["PSB012"]
    assert r12["name"] == "BackupTaskStorageMustBeDefined"
    assert r12["shortDescription"]["text"] == "Backup task storage must be defined"
    assert r12["fullDescription"]["text"].startswith("Every spec.backup.tasks[].storageName")
    assert "default hint of PSB012" in r12["help"]["text"]
    assert r12["helpUri"].endswith("docs/rules.md#psb012")
    assert r12["defaultConfiguration"]["level"] == "error"
    assert "PerconaServerMongoDB" in r12["properties"]["tags"]
    assert by_id["PSB020"]["defaultConfiguration"]["level"] == "warning"
    assert by_id["PSB030"]["defaultConfiguration"]["level"] == "note"
    assert by_id["PSB030"]["help"]["text"] == "Backup has no explicit type"  # no hint: no "Hint:" line
    # The unknown, file-level code gets a minimal entry.
    assert by_id["PSB000"]["shortDescription"]["text"] == "PSB000"
    assert by_id["PSB000"]["defaultConfiguration"]["level"] == "error"

    results = run["results"]
    assert len(results) == 4
    for res, src in zip(results, report.findings):
        assert rules[res["ruleIndex"]]["id"] == res["ruleId"] == src.code
    assert [r["level"] for r in results] == ["error", "warning", "note", "error"]
    first = results[0]
    assert first["message"]["text"] == (f"spec.backup.tasks[1].storageName: {STORAGE_MSG}\nHint: {STORAGE_HINT}")
    phys = first["locations"][0]["physicalLocation"]
    assert phys["artifactLocation"]["uri"] == "deploy/cr.yaml"
    assert phys["region"] == {"startLine": 42, "startColumn": 9}
    assert first["locations"][0]["logicalLocations"][0]["fullyQualifiedName"] == (
        "PerconaServerMongoDB default/my-cluster"
    )
    last = results[3]["locations"][0]["physicalLocation"]
    assert last == {"artifactLocation": {"uri": "broken.yaml"}}  # line 0: no region


def test_sarif_weird_inputs(weird, sarif_validator):
    doc = sarif_of(weird, RULES, sarif_validator)
    run = doc["runs"][0]
    uris = [r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in run["results"]]
    assert uris == [
        "deploy%20dir/my%20cr%2Cv1%3Afinal%20%2520.yaml",
        "stdin",
        "deploy/win.yaml",
        "rel/x.yaml",
        "bad-%FF.yaml",
    ]
    assert all(URI_REF.match(u) for u in uris)
    regions = [r["locations"][0]["physicalLocation"].get("region") for r in run["results"]]
    assert regions == [
        {"startLine": 7},
        {"startLine": 2, "startColumn": 3},
        {"startLine": 1, "startColumn": 1},
        None,
        {"startLine": 1, "startColumn": 1},
    ]
    assert run["results"][0]["message"]["text"] == f"metadata.annotations.a,b:c: {WEIRD_MESSAGE}\nHint: {WEIRD_HINT}"
    assert {r["id"] for r in run["tool"]["driver"]["rules"]} == {"PSB012", "PSB020", "PSB030", "X:Y,1"}


def test_sarif_empty_and_without_rules(report, sarif_validator):
    doc = sarif_of(EMPTY, RULES, sarif_validator)
    assert doc["runs"][0]["results"] == [] and doc["runs"][0]["tool"]["driver"]["rules"] == []
    doc = sarif_of(report, {}, sarif_validator)
    assert len(doc["runs"][0]["tool"]["driver"]["rules"]) == 4


def test_sarif_rejects_what_the_schema_forbids(sarif_validator):
    """The schema copy really checks: a result with a bad level or a region starting at line 0 is refused."""
    bad = {
        "version": "2.1.0",
        "runs": [
            {
                "tool": {"driver": {"name": "x"}},
                "results": [
                    {
                        "message": {"text": "m"},
                        "level": "info",
                        "locations": [
                            {"physicalLocation": {"artifactLocation": {"uri": "a"}, "region": {"startLine": 0}}}
                        ],
                    }
                ],
            }
        ],
    }
    assert len(list(sarif_validator.iter_errors(bad))) == 2


@pytest.mark.parametrize(
    ("file", "uri"),
    [
        ("/abs/dir/cr.yaml", "file:///abs/dir/cr.yaml"),
        ("C:\\work\\cr 1.yaml", "file:///C:/work/cr%201.yaml"),
        ("../up/cr.yaml", "../up/cr.yaml"),
        ("a:b.yaml", "a%3Ab.yaml"),
        ("-", "stdin"),
        ("<stdin>", "stdin"),
        ("dir/ü.yaml", "dir/%C3%BC.yaml"),
    ],
)
def test_sarif_artifact_uri(file, uri):
    assert sarif_mod.artifact_uri(file) == uri
    assert URI_REF.match(uri)


# --- junit -----------------------------------------------------------------------------------------------------


def junit_of(rep, rules=RULES) -> ET.Element:
    out = render("junit", rep, rules)
    assert out.startswith('<?xml version="1.0" encoding="UTF-8"?>\n')
    return ET.fromstring(out.encode("utf-8"))


def test_junit(report):
    root = junit_of(report)
    assert root.tag == "testsuites"
    assert root.get("tests") == "4" and root.get("failures") == "3"
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == ["deploy/cr.yaml", "deploy/backup.yaml", "broken.yaml"]
    assert [(s.get("tests"), s.get("failures")) for s in suites] == [("2", "2"), ("1", "0"), ("1", "1")]
    for s in suites:
        assert int(s.get("failures")) == len(s.findall("testcase/failure"))
        assert int(s.get("tests")) == len(s.findall("testcase"))
    case = suites[0].find("testcase")
    assert case.get("name") == "PSB012 spec.backup.tasks[1].storageName"
    assert case.get("classname") == "PerconaServerMongoDB default/my-cluster"
    assert case.get("file") == "deploy/cr.yaml" and case.get("line") == "42"
    failure = case.find("failure")
    assert failure.get("type") == "error"
    assert failure.get("message") == f"spec.backup.tasks[1].storageName: {STORAGE_MSG}"
    assert "deploy/cr.yaml:42:9 error PSB012 (Backup task storage must be defined)" in failure.text
    assert f"hint: {STORAGE_HINT}" in failure.text
    info_case = suites[1].find("testcase")
    assert info_case.find("failure") is None
    assert "no type: logical is assumed" in info_case.find("system-out").text
    broken = suites[2].find("testcase")
    assert broken.get("line") is None and broken.get("classname") == "broken.yaml"


def test_junit_empty_report_has_a_passing_case():
    root = junit_of(EMPTY)
    cases = root.findall("testsuite/testcase")
    assert len(cases) == 1 and cases[0].find("failure") is None
    assert root.get("failures") == "0" and root.get("tests") == "1"


def test_junit_weird_inputs(weird):
    root = junit_of(weird)
    assert root.get("failures") == "4"
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == [WEIRD_FILE, "<stdin>", "deploy/win.yaml", "rel/x.yaml", "bad-.yaml"]
    failure = suites[0].find("testcase/failure")
    expected = XML_ILLEGAL.sub("", f"metadata.annotations.a,b:c: {WEIRD_MESSAGE}").replace("\r\n", "\n")
    assert failure.get("message") == expected  # newlines, quotes, <, &, ]]> survive in an attribute
    assert "\x1b" not in failure.text and "\x00" not in failure.text and "\ufffe" not in failure.text
    assert "🚀" in failure.text and "]]>" in failure.text
    assert suites[0].find("testcase").get("classname") == "PerconaServerMongoDB ns/na\nme"


# --- github ----------------------------------------------------------------------------------------------------

COMMAND = re.compile(r"^::(error|warning|notice) ([^:]*)::(.*)$")


def parse_commands(out: str) -> list[tuple[str, dict[str, str], str]]:
    parsed = []
    for line in out.splitlines():
        m = COMMAND.match(line)
        assert m, line
        props = {}
        for item in m.group(2).split(","):
            key, _, value = item.partition("=")
            props[key] = gh.unescape_property(value)
        parsed.append((m.group(1), props, gh.unescape_data(m.group(3))))
    return parsed


def test_github(report):
    out = render("github", report, RULES)
    lines = out.splitlines()
    assert len(lines) == 4
    assert lines[0] == (
        "::error file=deploy/cr.yaml,line=42,col=9,title=PSB012 Backup task storage must be defined::"
        f"spec.backup.tasks[1].storageName: {STORAGE_MSG}%0Aobject: PerconaServerMongoDB default/my-cluster"
        f"%0Ahint: {STORAGE_HINT}"
    )
    cmds = parse_commands(out)
    assert [c[0] for c in cmds] == ["error", "warning", "notice", "error"]
    assert cmds[1][1] == {"file": "deploy/cr.yaml", "line": "50", "col": "7", "title": "PSB020 PITR needs a storage"}
    assert cmds[3][1] == {"file": "broken.yaml", "title": "PSB000"}  # no position, unknown rule: code only


def test_github_weird_round_trip(weird):
    out = render("github", weird, RULES)
    assert len(out.splitlines()) == len(weird.findings)  # no newline escapes the encoding
    cmds = parse_commands(out)
    kind, props, message = cmds[0]
    assert props == {"file": WEIRD_FILE, "line": "7", "title": "PSB012 Backup task storage must be defined"}
    assert message == (
        f"metadata.annotations.a,b:c: {WEIRD_MESSAGE}\nobject: PerconaServerMongoDB ns/na\nme\nhint: {WEIRD_HINT}"
    )
    assert cmds[1][1] == {"title": "PSB020 PITR needs a storage"}  # stdin: no file
    assert cmds[2][1]["file"] == "deploy/win.yaml"
    assert cmds[3][1] == {"file": "rel/x.yaml", "title": "X:Y,1"}
    assert cmds[4][1]["file"] == "bad-\ufffd.yaml"


@pytest.mark.parametrize("text", ["", "%", "%0A", "%250A", "a\r\nb", "x:y,z", "100%25,%3A%2C", "ü✓🚀", "::e::"])
def test_github_escaping_round_trip(text):
    assert gh.unescape_data(gh.escape_data(text)) == text
    assert gh.unescape_property(gh.escape_property(text)) == text
    assert not set("\r\n") & set(gh.escape_data(text))
    assert not set("\r\n:,") & set(gh.escape_property(text))


def test_github_newline_in_file_name():
    rep = LintReport(findings=[lf("PSB012", Severity.ERROR, (), "m", file="new\nline.yaml", line=1, column=2)])
    out = render("github", rep, RULES)
    assert out.count("\n") == 1
    assert parse_commands(out)[0][1]["file"] == "new\nline.yaml"


def test_github_empty():
    assert render("github", EMPTY, RULES) == ""


# --- gitlab ----------------------------------------------------------------------------------------------------

GITLAB_SEVERITIES = {"info", "minor", "major", "critical", "blocker"}


def gitlab_of(rep, rules=RULES) -> list[dict]:
    """Parse the report and check every issue has exactly the fields GitLab's Code Quality report requires."""
    issues = json.loads(render("gitlab", rep, rules))
    assert isinstance(issues, list)
    for issue in issues:
        assert set(issue) == {"description", "check_name", "fingerprint", "severity", "location"}
        assert all(isinstance(issue[k], str) and issue[k] for k in ("description", "check_name", "fingerprint"))
        assert issue["severity"] in GITLAB_SEVERITIES
        assert set(issue["location"]) == {"path", "lines"} and set(issue["location"]["lines"]) == {"begin"}
        begin = issue["location"]["lines"]["begin"]
        assert isinstance(begin, int) and begin >= 1
    assert len({i["fingerprint"] for i in issues}) == len(issues)  # unique within a report
    return issues


def test_gitlab(report):
    issues = gitlab_of(report)
    assert [i["check_name"] for i in issues] == ["PSB012", "PSB020", "PSB030", "PSB000"]
    assert [i["severity"] for i in issues] == ["critical", "major", "info", "critical"]
    assert issues[0]["description"] == (
        f"PSB012 spec.backup.tasks[1].storageName: {STORAGE_MSG} (PerconaServerMongoDB default/my-cluster)"
    )
    assert issues[0]["location"] == {"path": "deploy/cr.yaml", "lines": {"begin": 42}}
    assert issues[3]["location"] == {"path": "broken.yaml", "lines": {"begin": 1}}  # line unknown: 1
    assert render("gitlab", report, RULES) == render("gitlab", report, {})  # no rule metadata used


def test_gitlab_fingerprint_survives_moved_lines(report):
    """GitLab compares fingerprints across branches: lines moving must not turn a finding into a new one."""
    before = gitlab_of(report)
    moved = LintReport(
        findings=[
            LocatedFinding(x.finding, x.file, x.line + 10 if x.finding.path else x.line, x.column + 2, x.object_ref)
            for x in report.findings
        ]
    )
    assert [i["fingerprint"] for i in gitlab_of(moved)] == [i["fingerprint"] for i in before]
    # What identifies a finding does change it: another file, object, rule or message.
    first = report.findings[0]
    for changed in (
        lf("PSB012", Severity.ERROR, first.finding.path, STORAGE_MSG, file="deploy/other.yaml"),
        lf("PSB012", Severity.ERROR, first.finding.path, STORAGE_MSG, object_ref="PerconaServerMongoDB x/y"),
        lf("PSB013", Severity.ERROR, first.finding.path, STORAGE_MSG, object_ref=first.object_ref),
        lf("PSB012", Severity.ERROR, first.finding.path, "other", object_ref=first.object_ref),
    ):
        assert gitlab_of(LintReport(findings=[changed]))[0]["fingerprint"] != before[0]["fingerprint"]


def test_gitlab_identical_findings_get_distinct_stable_fingerprints():
    twice = lf("PSB012", Severity.ERROR, ("spec",), "same", line=3)
    file_level = [lf("PSB000", Severity.ERROR, (), "syntax", line=n) for n in (2, 9)]
    rep = LintReport(findings=[twice, twice, *file_level])
    issues = gitlab_of(rep)
    assert [i["fingerprint"] for i in gitlab_of(rep)] == [i["fingerprint"] for i in issues]
    assert gitlab_of(LintReport(findings=[twice]))[0]["fingerprint"] == issues[0]["fingerprint"]


def test_gitlab_weird_inputs(weird):
    issues = gitlab_of(weird)
    paths = [i["location"]["path"] for i in issues]
    assert paths == [WEIRD_FILE, "<stdin>", "deploy/win.yaml", "rel/x.yaml", "bad-\ufffd.yaml"]
    assert issues[0]["description"] == (
        f"PSB012 metadata.annotations.a,b:c: {WEIRD_MESSAGE} (PerconaServerMongoDB ns/na\nme)"
    )
    assert issues[3]["check_name"] == "X:Y,1" and issues[3]["location"]["lines"]["begin"] == 1


def test_gitlab_empty():
    assert render("gitlab", EMPTY, RULES) == "[]\n"
