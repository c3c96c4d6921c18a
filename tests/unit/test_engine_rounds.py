"""Re-running only the rules that consulted the lookup gives exactly the findings of a full run."""

import pytest

from webhook.policy import RULES, RecordingLookup, check
from webhook.policy.engine import rule_pass, structure_findings
from webhook.policy.examples import build, example_object, lookup_for

CASES = [(r.code, ex) for r in RULES.values() for ex in (*r.bad, *r.good) if ex.others]


@pytest.mark.parametrize("code,example", CASES, ids=[f"{c}-{i}" for i, (c, _) in enumerate(CASES)])
def test_incremental_rounds_equal_a_full_run(code, example) -> None:
    rule = RULES[code]
    obj = example_object(rule.kinds, example.yaml)
    old = build(obj["kind"], example.old) if example.old else None
    full = lookup_for(example.others)
    expected = sorted(check(obj, lookup=full, old=old), key=repr)
    known: dict = {}
    rec = RecordingLookup(known=known)
    result = rule_pass(obj, lookup=rec, old=old)
    for _ in range(3):  # as the admission server does: learn what is asked, answer it, re-run
        wanted = [r for r in rec.asked if r not in known]
        if not wanted:
            break
        known.update({r: full.known[r] for r in wanted if r in full.known})
        known.update({r: rec.get(*r) for r in wanted if r not in full.known})
        rec = RecordingLookup(known=dict(known))
        result = rule_pass(obj, lookup=rec, old=old, previous=result)
    assert sorted(structure_findings(obj) + result.findings, key=repr) == expected
