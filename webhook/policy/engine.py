"""`check()`: the one entry point every front-end calls."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from ..findings import Finding, Severity
from ..versions import LATEST, Version
from . import kinds
from .failures import RULE_ERROR_CODE, RuleError, report
from .lookup import EmptyLookup, Lookup
from .registry import RULES, Context, Rule, Violation, disabled_by_annotation, rule, run_rules
from .schema import SCHEMA_CODE, UNKNOWN_FIELD_CODE, schema_findings

_EMPTY = EmptyLookup()


def cr_version_of(obj: Mapping[str, Any], lookup: Lookup) -> Version:
    """The crVersion that governs `obj`: its own for a cluster, its cluster's for a Backup or Restore."""
    cluster: Mapping[str, Any] | None = obj
    if obj.get("kind") != kinds.CLUSTER:
        cluster = Context(obj, lookup, LATEST).cluster()
    spec = cluster.get("spec") if isinstance(cluster, dict) else None
    raw = spec.get("crVersion") if isinstance(spec, dict) else None
    return Version.parse(raw) or LATEST


def check(
    obj: Mapping[str, Any],
    *,
    lookup: Lookup = _EMPTY,
    old: Mapping[str, Any] | None = None,
    disabled: Iterable[str] = (),
) -> list[Finding]:
    """All findings for one object: schema first, then every rule of its kind that applies to its crVersion."""
    return structure_findings(obj, disabled) + rule_findings(obj, lookup=lookup, old=old, disabled=disabled)


def _off(obj: Mapping[str, Any], disabled: Iterable[str]) -> frozenset[str]:
    return frozenset(c.upper() for c in disabled) | disabled_by_annotation(obj)


def structure_findings(obj: Mapping[str, Any], disabled: Iterable[str] = ()) -> list[Finding]:
    """The schema part of `check()`: it never depends on other objects, so callers that re-run the rules with more
    lookup answers (the admission server) compute it once."""
    if not kinds.is_psmdb_object(obj):
        return []
    off = _off(obj, disabled)
    return [f for f in schema_findings(obj) if f.code not in off]


def rule_findings(
    obj: Mapping[str, Any],
    *,
    lookup: Lookup = _EMPTY,
    old: Mapping[str, Any] | None = None,
    disabled: Iterable[str] = (),
) -> list[Finding]:
    """The rules part of `check()`."""
    return rule_pass(obj, lookup=lookup, old=old, disabled=disabled).findings


@dataclass(frozen=True)
class RulePass:
    findings: list[Finding]
    version: Version  # the crVersion the rules ran for
    used_lookup: frozenset[str]  # codes of the rules that consulted the lookup
    errors: tuple[RuleError, ...] = ()  # rules that raised (their info findings are in `findings`)


def rule_pass(
    obj: Mapping[str, Any],
    *,
    lookup: Lookup = _EMPTY,
    old: Mapping[str, Any] | None = None,
    disabled: Iterable[str] = (),
    previous: RulePass | None = None,
) -> RulePass:
    """Run the rules; given the `previous` pass with a lookup that now knows more, re-run only the rules that
    consulted the lookup (the others cannot change) unless the crVersion, and so the set of rules, changed."""
    if not kinds.is_psmdb_object(obj):
        return RulePass([], LATEST, frozenset())
    version = cr_version_of(obj, lookup)
    off = _off(obj, disabled)
    rules = _rules_for(obj["kind"], version, off)
    kept: list[Finding] = []
    errors: list[RuleError] = []
    if previous is not None and previous.version == version:
        kept = [f for f in previous.findings if f.code not in previous.used_lookup and f.code != RULE_ERROR_CODE]
        errors = [e for e in previous.errors if e.rule not in previous.used_lookup]
        rules = tuple(r for r in rules if r.code in previous.used_lookup)
    used: set[str] = set()
    raised: list[tuple[Rule, Exception]] = []
    fresh = list(run_rules(Context(obj, lookup, version, old), rules, used, raised))
    if raised:
        rejected = any(f.code == SCHEMA_CODE and f.severity == Severity.ERROR for f in schema_findings(obj))
        errors += [e for r, exc in raised if (e := report(r, exc, obj, rejected)) is not None]
    notes = [] if RULE_ERROR_CODE in off else [e.finding() for e in errors]
    return RulePass(kept + fresh + notes, version, frozenset(used), tuple(errors))


@lru_cache(maxsize=256)
def _rules_for(kind: str, version: Version, off: frozenset[str]) -> tuple[Rule, ...]:
    """The rules that run on one kind at one crVersion (the registry is complete once the package is imported)."""
    return tuple(r for r in RULES.values() if kind in r.kinds and r.code not in off and r.applies_to(version))


# The schema codes live in the registry too, so --list-rules, --explain and docs/rules.md cover them.
@rule(
    SCHEMA_CODE,
    title="Object does not match the CRD schema",
    severity=Severity.ERROR,
    kind=kinds.CLUSTER,
    source="OP v1.23.0@b15af500 config/crd/bases/psmdb.percona.com_perconaservermongodbs.yaml:31 (openAPIV3Schema; backups.yaml:54, restores.yaml:34)",
    hint="fix the field to match the CRD schema",
    description="Types, enums, required fields, minimums and integer ranges from schemas/. The API server rejects "
    "these objects (or, for a few fields, the operator fails on them at run time).",
    bad=[
        "spec: {backup: {enabled: true, image: percona/pbm:2.15.0, tasks: [{name: daily, enabled: true, type: daily}]}}"
    ],
    good=[
        "spec: {backup: {enabled: true, image: percona/pbm:2.15.0, tasks: [{name: daily, enabled: false, type: logical}]}}"
    ],
)
def _schema_placeholder(ctx: Context) -> Iterable[Violation]:
    return ()  # reported by schema_findings()


@rule(
    UNKNOWN_FIELD_CODE,
    title="Unknown field in a modelled part of the spec",
    severity=Severity.WARNING,
    kind=kinds.CLUSTER,
    source="OP v1.23.0@b15af500 config/crd/bases/psmdb.percona.com_perconaservermongodbs.yaml:31 (structural schemas prune unknown fields)",
    hint="check the spelling against the CRD",
    description="The API server silently prunes fields the CRD does not know, so a typo such as `storagename` means "
    "the setting is lost.",
    bad=["spec: {backup: {enabled: true, image: percona/pbm:2.15.0, startingDeadlineSecond: 300}}"],
    good=["spec: {backup: {enabled: true, image: percona/pbm:2.15.0, startingDeadlineSeconds: 300}}"],
)
def _unknown_field_placeholder(ctx: Context) -> Iterable[Violation]:
    return ()
