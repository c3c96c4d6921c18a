"""The user docs cannot drift from the code: every flag and `PSMDB_BACKUP_*` variable of every subcommand is in
docs/configuration.md, every alert's runbook anchor is a heading of docs/troubleshooting.md, and the relative links
of the docs this test owns point at files that exist."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest
import yaml

from webhook.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
CONFIGURATION = DOCS / "configuration.md"
TROUBLESHOOTING = DOCS / "troubleshooting.md"
OBSERVABILITY = ROOT / "manifests" / "observability"
ENV_RE = re.compile(r"\bPSMDB_BACKUP_[A-Z0-9_]+\b")
SUBCOMMANDS = {
    "lint",
    "serve",
    "certs",
    "inject",
    "completion",
    "controller",
    "schemas",
    "probe",
    "status",
    "backup",
    "restore",
    "schedules",
}


def subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    return dict(parser._subparsers._group_actions[0].choices)


def texts(parser: argparse.ArgumentParser) -> list[str]:
    out = [parser.description or ""]
    out += [a.help or "" for a in parser._actions]
    return out


def github_slug(heading: str) -> str:
    """GitHub's heading anchor: lower case, punctuation other than - and _ dropped, spaces become hyphens."""
    text = re.sub(r"`|\*\*|\*", "", heading.strip().lower())
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)  # [text](link) -> text
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def heading_slugs(path: Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", path.read_text(encoding="utf-8"), flags=re.M | re.S)  # no code blocks
    slugs = {github_slug(h) for h in re.findall(r"^#{1,6}\s+(.+?)\s*#*\s*$", text, re.M)}
    return slugs | set(re.findall(r'<a (?:id|name)="([^"]+)"', text))


def test_every_subcommand_is_known() -> None:
    assert set(subparsers()) == SUBCOMMANDS, "a new subcommand needs a section in docs/configuration.md"


@pytest.mark.parametrize("name", sorted(SUBCOMMANDS))
def test_every_option_of_the_subcommand_is_documented(name: str) -> None:
    doc = CONFIGURATION.read_text(encoding="utf-8")
    assert f"## `psmdb-backup {name}`" in doc, f"docs/configuration.md has no section for {name}"
    section = doc.split(f"## `psmdb-backup {name}`", 1)[1].split("\n## ", 1)[0]
    parser = subparsers()[name]
    nested = [  # `schemas export`: the options of a sub-subcommand belong to the same section
        sub for a in parser._actions if isinstance(a, argparse._SubParsersAction) for sub in a.choices.values()
    ]
    missing = [
        opt
        for action in [a for p in (parser, *nested) for a in p._actions]
        for opt in action.option_strings
        if opt.startswith("--") and opt != "--help" and not re.search(f"`{re.escape(opt)}[ `=]", section)
    ]
    assert not missing, f"psmdb-backup {name}: options missing from its section of docs/configuration.md: {missing}"


@pytest.mark.parametrize("name", sorted(SUBCOMMANDS))
def test_every_environment_variable_in_the_help_is_documented(name: str) -> None:
    doc = CONFIGURATION.read_text(encoding="utf-8")
    section = doc.split(f"## `psmdb-backup {name}`", 1)[1].split("\n## ", 1)[0]
    mentioned = {v for t in texts(subparsers()[name]) for v in ENV_RE.findall(t)}
    missing = sorted(v for v in mentioned if v not in section)
    assert not missing, f"psmdb-backup {name}: variables from --help missing in docs/configuration.md: {missing}"


def test_every_environment_variable_the_code_reads_is_documented() -> None:
    """Also the ones whose help text does not name them (`_env("NAME")` in the CLI modules)."""
    doc = CONFIGURATION.read_text(encoding="utf-8")
    read = set()
    for path in (ROOT / "webhook").rglob("*.py"):
        read |= {f"PSMDB_BACKUP_{n}" for n in re.findall(r'\b_env\(\s*"([A-Z0-9_]+)"', path.read_text("utf-8"))}
    assert read, "no _env(...) calls found: has the env-var convention moved?"
    assert not sorted(read - set(ENV_RE.findall(doc))), sorted(read - set(ENV_RE.findall(doc)))


def test_documented_variables_exist() -> None:
    """No stale variable in the reference: each one is read by the code (help texts or _env calls)."""
    known = {v for p in subparsers().values() for t in texts(p) for v in ENV_RE.findall(t)}
    for path in (ROOT / "webhook").rglob("*.py"):
        known |= {f"PSMDB_BACKUP_{n}" for n in re.findall(r'\b_env\(\s*"([A-Z0-9_]+)"', path.read_text("utf-8"))}
    known.add("PSMDB_BACKUP_CACHE")  # Makefile and tools/, documented as development-only
    stale = sorted(set(ENV_RE.findall(CONFIGURATION.read_text(encoding="utf-8"))) - known)
    assert not stale, f"docs/configuration.md names variables nothing reads: {stale}"


def _values(node: object, key: str) -> list[str]:
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == key and isinstance(v, str)] + [
            x for v in node.values() for x in _values(v, key)
        ]
    if isinstance(node, list):
        return [x for v in node for x in _values(v, key)]
    return []


def runbook_anchors() -> dict[str, str]:
    """runbook_url anchors from every manifest under manifests/observability (whatever exists)."""
    anchors: dict[str, str] = {}
    for path in sorted(OBSERVABILITY.glob("*.yaml")) if OBSERVABILITY.is_dir() else []:
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            for url in _values(doc, "runbook_url"):
                page, _, anchor = url.partition("#")
                assert page.endswith("docs/troubleshooting.md"), f"{path.name}: runbook_url {url} is not the guide"
                assert anchor, f"{path.name}: runbook_url {url} has no anchor"
                anchors[anchor] = path.name
    return anchors


def test_runbook_anchors_resolve_to_troubleshooting_headings() -> None:
    slugs = heading_slugs(TROUBLESHOOTING)
    missing = {a: f for a, f in runbook_anchors().items() if a not in slugs}
    assert not missing, f"runbook anchors without a heading in docs/troubleshooting.md: {missing}"


def test_github_slug_matches_githubs_rules() -> None:
    assert github_slug("PSMDBBackupOverdue") == "psmdbbackupoverdue"
    assert (
        github_slug("The controller replaces the operator's backup handling")
        == "the-controller-replaces-the-operators-backup-handling"
    )
    assert github_slug("`psmdb-backup serve`") == "psmdb-backup-serve"
    assert github_slug("Events the controller records") == "events-the-controller-records"


OWNED = [
    "install.md",
    "configuration.md",
    "operations.md",
    "troubleshooting.md",
    "architecture.md",
    "benchmarks.md",
    "lint.md",
    "schedules.md",
]


@pytest.mark.parametrize("page", ["README.md", *(f"docs/{p}" for p in OWNED)])
def test_relative_links_resolve(page: str) -> None:
    path = ROOT / page
    if not path.exists():
        pytest.skip(f"{page} does not exist")
    text = re.sub(r"^```.*?^```", "", path.read_text(encoding="utf-8"), flags=re.M | re.S)
    bad = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue
        file, _, anchor = target.partition("#")
        dest = (path.parent / file).resolve() if file else path
        if (
            not dest.exists()
            or anchor
            and dest.suffix == ".md"
            and dest.name != "rules.md"
            and anchor not in heading_slugs(dest)
        ):
            bad.append(target)
    assert not bad, f"{page}: broken links {bad}"
