"""Live evaluation, shared by the admission webhook, `lint --cluster` and the controller: run the rules with
cross-object lookups answered by an asynchronous source (the API server, an informer cache), then decide on the
findings under an enforcement mode and a lookup-failure policy. Pure apart from awaiting the lookup source."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..findings import Finding, Severity
from ..redaction import strip_userinfo
from .engine import check, rule_pass, structure_findings
from .failures import RuleError
from .lookup import LookupResult, RecordingLookup, Ref
from .registry import RULES

MAX_LOOKUP_ROUNDS = 3  # a rule may only learn what else to read after the first answers (e.g. the crVersion)


class AsyncLookup(Protocol):
    """Where live lookups are answered: every asked reference gets a result (Unknown when it cannot be read)."""

    async def fetch(self, refs: Iterable[Ref]) -> Mapping[Ref, LookupResult]: ...

    # Optional: `def cached(self, ref: Ref) -> LookupResult | None`, what fetch() would answer at once (its cache).


class Enforcement(str, enum.Enum):
    ENFORCE = "enforce"  # errors deny
    WARN = "warn"  # everything is allowed; errors are returned as warnings
    AUDIT = "audit"  # everything is allowed silently; findings are logged and counted


class LookupFailure(str, enum.Enum):
    DENY = "deny"  # an object we could not read might make the request invalid: refuse, say why
    WARN = "warn"  # allow, and warn that cross-object rules could not run


@dataclass(frozen=True)
class Decision:
    allowed: bool
    message: str = ""
    warnings: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    lookup_errors: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Checked:
    findings: list[Finding]
    old_findings: list[Finding]
    lookup_errors: list[str]
    rule_errors: tuple[RuleError, ...] = ()  # rules that raised on the object (front-ends count them)


async def evaluate(obj: Mapping[str, Any], old: Mapping[str, Any] | None, lookup: AsyncLookup) -> Checked:
    """Run the rules, fetching whatever objects they ask for (rounds until they ask for nothing new). What the
    lookup already holds (its cache) is answered at once, so with a warm cache one run of the rules is enough.
    The old object of an update is checked only when the new one has errors: only errors can be excused as
    pre-existing (decide()), so `old_findings` is empty otherwise."""
    cached = getattr(lookup, "cached", None)
    known: dict[Ref, LookupResult] = {}
    rec = RecordingLookup(known=known, cached=cached)
    rules = rule_pass(obj, lookup=rec, old=old)
    for _ in range(MAX_LOOKUP_ROUNDS):
        wanted = [r for r in rec.asked if r not in known]
        if not wanted:
            break
        known.update(await lookup.fetch(wanted))
        rec = RecordingLookup(known=dict(known), cached=cached)
        rules = rule_pass(obj, lookup=rec, old=old, previous=rules)
        known = rec.known
    findings = structure_findings(obj) + rules.findings
    old_findings: list[Finding] = []
    if old and any(f.severity == Severity.ERROR for f in findings):
        old_findings = check(old, lookup=RecordingLookup(known=dict(known)))
    return Checked(findings, old_findings, rec.failures(), rules.errors)


def _line(f: Finding) -> str:
    return strip_userinfo(f"{f.code} {f.headline()}")  # a rule may quote a URL; its password stays out


def _retried(f: Finding) -> bool:
    rule = RULES.get(f.code)
    return rule is not None and rule.retried_by_operator


def decide(checked: Checked, *, what: str, mode: Enforcement, on_lookup_failure: LookupFailure) -> Decision:
    """Pure: findings + policy -> allowed or denied, message, warnings."""
    preexisting = {(f.code, f.path) for f in checked.old_findings if f.severity == Severity.ERROR}
    errors: list[Finding] = []
    warnings: list[str] = []
    for f in checked.findings:
        if f.severity == Severity.ERROR and (f.code, f.path) in preexisting:
            warnings.append(f"{_line(f)} (already present before this update, so not blocking it)")
        elif f.severity == Severity.ERROR and _retried(f):
            warnings.append(_line(f))  # the operator retries until the object exists (a GitOps batch applies it next)
        elif f.severity == Severity.ERROR:
            errors.append(f)
        elif f.severity == Severity.WARNING:
            warnings.append(_line(f))
    failures = checked.lookup_errors
    if mode == Enforcement.AUDIT:
        return Decision(True, findings=checked.findings, lookup_errors=failures)
    if mode == Enforcement.WARN:
        warnings = [f"{_line(f)} (not enforced: warn mode)" for f in errors] + warnings
        errors = []
    if failures and on_lookup_failure == LookupFailure.WARN:
        warnings += [f"cross-object rules skipped: {e}" for e in failures]
    if errors or (failures and on_lookup_failure == LookupFailure.DENY and mode == Enforcement.ENFORCE):
        lines = [f"- {_line(f)} (fix: {strip_userinfo(f.hint)})" for f in errors]
        lines += [
            f"- cannot check references: {e}; retry, or ask the cluster admin (lookup failure policy: deny)"
            for e in (failures if on_lookup_failure == LookupFailure.DENY else [])
        ]
        count = f"{len(errors)} error{'s' if len(errors) != 1 else ''}" if errors else "lookup failed"
        return Decision(
            False,
            f"{what} is rejected by psmdb-backup-webhook ({count}):\n" + "\n".join(lines),
            warnings,
            checked.findings,
            failures,
        )
    return Decision(True, warnings=warnings, findings=checked.findings, lookup_errors=failures)
