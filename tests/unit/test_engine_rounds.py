"""Re-running only the rules that consulted the lookup gives exactly the findings of a full run; answering from a
warm cache in the first pass does too."""

import asyncio

import pytest

from webhook.findings import Severity
from webhook.policy import RULES, RecordingLookup, check, kinds
from webhook.policy.engine import rule_pass, structure_findings
from webhook.policy.examples import build, example_object, lookup_for
from webhook.policy.live import evaluate
from webhook.policy.lookup import UNKNOWN

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


class _AsyncLookup:
    """An AsyncLookup over a dict; with `warm`, it also answers `cached()` (as the admission server's cache does)."""

    def __init__(self, known: dict, warm: bool) -> None:
        self.known, self.fetched = known, []
        if warm:
            self.cached = lambda ref: self.known.get(ref)

    async def fetch(self, refs):
        self.fetched += list(refs)
        return {r: self.known.get(r, UNKNOWN) for r in refs}


@pytest.mark.parametrize("code,example", CASES, ids=[f"{c}-{i}" for i, (c, _) in enumerate(CASES)])
def test_a_warm_cache_answers_in_one_pass_with_the_same_findings(code, example) -> None:
    rule = RULES[code]
    obj = example_object(rule.kinds, example.yaml)
    known = lookup_for(example.others).known
    cold, warm = _AsyncLookup(known, warm=False), _AsyncLookup(known, warm=True)
    expected = asyncio.run(evaluate(obj, None, cold)).findings
    assert sorted(asyncio.run(evaluate(obj, None, warm)).findings, key=repr) == sorted(expected, key=repr)
    assert cold.fetched and not [r for r in warm.fetched if r in known]  # what the cache holds is never fetched


def test_the_old_object_is_checked_only_when_the_new_one_has_errors(monkeypatch) -> None:
    """Only errors can be excused as pre-existing, so a clean update costs one check, not two."""
    import webhook.policy.live as live

    checked_old: list = []
    real_check = live.check
    monkeypatch.setattr(live, "check", lambda obj, **kw: checked_old.append(obj) or real_check(obj, **kw))
    good = example_object((kinds.BACKUP,), "spec: {clusterName: my-cluster, storageName: s3}")
    bad = example_object((kinds.BACKUP,), "spec: {clusterName: my-cluster, storageName: s3, type: nonsense}")
    lookup = _AsyncLookup({}, warm=False)
    assert asyncio.run(evaluate(good, bad, lookup)).old_findings == [] and checked_old == []
    result = asyncio.run(evaluate(bad, bad, lookup))
    assert checked_old == [bad] and any(f.severity == Severity.ERROR for f in result.old_findings)
