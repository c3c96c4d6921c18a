"""Every rule's bad examples produce its code and its good examples do not: the examples are the rules' tests."""

from __future__ import annotations

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
