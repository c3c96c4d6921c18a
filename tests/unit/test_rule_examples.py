"""Every rule's bad examples produce its code and its good examples do not: the examples are the rules' tests."""

from __future__ import annotations

import re

import pytest

from webhook.findings import Severity
from webhook.policy import RULES, check
from webhook.policy.examples import build, example_object, lookup_for
from webhook.policy.registry import Example, Rule

CASES = [
    (r, label, i, ex)
    for r in RULES.values()
    for label, exs in (("bad", r.bad), ("good", r.good))
    for i, ex in enumerate(exs)
]


def _run(rule: Rule, ex: Example):
    obj = example_object(rule.kinds, ex.yaml)
    old = build(obj["kind"], ex.old) if ex.old else None
    return check(obj, lookup=lookup_for(ex.others), old=old)


@pytest.mark.parametrize("rule,label,index,example", CASES, ids=[f"{r.code}-{l}{i}" for r, l, i, _ in CASES])
def test_rule_example(rule: Rule, label: str, index: int, example: Example) -> None:
    codes = [f.code for f in _run(rule, example)]
    if label == "bad":
        assert rule.code in codes, f"{rule.code} bad example #{index} did not fire; findings: {codes}"
    else:
        assert rule.code not in codes, f"{rule.code} good example #{index} fired: {_run(rule, example)}"


@pytest.mark.parametrize("rule", list(RULES.values()), ids=list(RULES))
def test_rule_is_documented(rule: Rule) -> None:
    assert rule.bad and rule.good, "every rule needs at least one bad and one good example"
    assert rule.title and rule.hint and rule.source, "title, hint and source are part of every rule"
    assert rule.code.startswith("PSB") and len(rule.code) == 6


def test_good_examples_have_no_errors_of_their_own() -> None:
    """A good example is a manifest the operator accepts: no rule may call it an error."""
    offenders = []
    for rule in RULES.values():
        for ex in rule.good:
            errors = [f for f in _run(rule, ex) if f.severity == Severity.ERROR]
            if errors:
                offenders.append((rule.code, [f"{f.code} {f.headline()}" for f in errors]))
    assert not offenders, offenders


# "OP v1.23.0@b15af500 pkg/apis/psmdb/v1/psmdb_types.go:1751-1778": repository, release, commit, file and line.
CITATION = re.compile(r"\b(?:OP|PBM) v\d+\.\d+\.\d+@[0-9a-f]{8} [\w./-]+\.\w+:\d+")


@pytest.mark.parametrize("rule", list(RULES.values()), ids=list(RULES))
def test_rule_source_cites_a_file_line_at_a_release(rule: Rule) -> None:
    """Users can open the source a rule cites: no private reference documents, always a release and a line."""
    assert CITATION.search(rule.source), f"{rule.code}: source cites no OP/PBM file:line at a release: {rule.source}"
    assert "facts" not in rule.source.lower(), f"{rule.code}: cites the private facts reference: {rule.source}"


@pytest.mark.parametrize(
    "source,ok",
    [
        ("OP v1.23.0@b15af500 pkg/psmdb/backup/pbm.go:541-547 (x)", True),
        ("PBM v2.15.0@6f9fc3bf pbm/storage/fs/fs.go:74", True),
        ("OP:pkg/psmdb/backup/pbm.go:541-547", False),  # no release
        ("OP v1.23.0@b15af500 pkg/psmdb/backup/pbm.go (x)", False),  # no line
        ("DOCS@db1fbb18 docs/operator.md:12", False),  # neither operator nor PBM code
    ],
)
def test_citation_pattern(source: str, ok: bool) -> None:
    assert bool(CITATION.search(source)) is ok
