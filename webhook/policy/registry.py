"""The rule registry: `@rule(...)` registers a check with its metadata; `run_rules` runs them (engine.check runs the
schema validation first, then these)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from ..findings import Finding, Path, Severity
from ..versions import Version
from . import kinds
from .common import text
from .lookup import Found, Lookup, LookupResult

# No v1.23.0 tag was available to read: main at b15af500 is the newest code, and the later PR #2411 (K8SPSMDB-1705, PBM
# 2.15.0, released in 1.23.0) was diffed against it and changes no code a rule or the sidecar depends on.
OPERATOR_MAIN = "operator main b15af500 (2026-07-02, before 1.23.0; PR #2411 for 1.23.0 changes none of it)"
RELEASE_1_23 = "operator 1.23.0 release (docs, RN1.23.0), PBM 2.15.0"

DISABLE_ANNOTATION = "psmdb-backup-webhook.io/disable-rules"
"""Comma-separated rule codes that are not checked on the annotated object."""


@dataclass(frozen=True)
class Violation:
    """What a rule yields; the engine turns it into a `Finding` with the rule's code and defaults."""

    path: Path
    message: str
    severity: Severity | None = None
    hint: str | None = None


@dataclass(frozen=True)
class Example:
    """A manifest for the tests and the docs. `yaml` is merged onto the kind's base object (see examples.py);
    `others` are full objects the Lookup can see (the cluster a Backup names, ...)."""

    yaml: str
    others: tuple[str, ...] = ()
    old: str | None = None  # for rules about UPDATEs: the object before the change (merged like `yaml`)


@dataclass(frozen=True)
class Context:
    obj: Mapping[str, Any]
    lookup: Lookup
    cr_version: Version
    old: Mapping[str, Any] | None = None
    spec: Mapping[str, Any] = field(init=False)  # obj["spec"], or {} when absent or malformed

    def __post_init__(self) -> None:
        spec = self.obj.get("spec")
        object.__setattr__(self, "spec", spec if isinstance(spec, dict) else {})

    # Cached: asked once per rule and per lookup (the rules do not modify obj).
    @cached_property
    def kind(self) -> str:
        return text(self.obj.get("kind"))

    @cached_property
    def namespace(self) -> str:
        meta = self.obj.get("metadata")
        ns = meta.get("namespace") if isinstance(meta, dict) else None
        return ns if isinstance(ns, str) and ns else "default"

    @cached_property
    def storages(self) -> dict[str, Mapping[str, Any]]:
        """spec.backup.storages of this cluster (asked for by most storage rules, so computed once)."""
        from .common import storages

        return storages(self.spec)

    @cached_property
    def tasks(self) -> tuple[tuple[int, Mapping[str, Any]], ...]:
        """(index, task) of spec.backup.tasks that are mappings (a dozen rules walk them, so computed once)."""
        from .common import tasks

        return tuple(tasks(self.spec))

    @cached_property
    def storages_by_type(self) -> dict[str, list[tuple[str, Mapping[str, Any]]]]:
        """(name, block) of the storages that have the block of their type, by type: one walk of the storages for
        all the per-type rules, which then return at once when their type is absent."""
        from .common import storage_block

        out: dict[str, list[tuple[str, Mapping[str, Any]]]] = {}
        for name, st in self.storages.items():
            kind, block = st.get("type"), storage_block(st)
            if isinstance(kind, str) and block is not None:
                out.setdefault(kind, []).append((name, block))
        return out

    def get(self, kind: str, name: object) -> LookupResult | None:
        """Look up an object of this namespace; None when `name` is not a usable name."""
        if not isinstance(name, str) or not name:
            return None
        return self.lookup.get(kind, self.namespace, name)

    def cluster(self) -> Mapping[str, Any] | None:
        """The PerconaServerMongoDB a Backup or Restore names, when the lookup knows it."""
        found = self.get(kinds.CLUSTER, self.spec.get("clusterName"))
        return found.obj if isinstance(found, Found) else None


CheckFn = Callable[[Context], Iterable[Violation]]


@dataclass(frozen=True)
class Rule:
    code: str
    title: str
    severity: Severity
    kinds: tuple[str, ...]
    source: str
    hint: str
    bad: tuple[Example, ...]
    good: tuple[Example, ...]
    check: CheckFn = field(repr=False)
    since: Version | None = None
    until: Version | None = None  # exclusive
    needs_backup_enabled: bool = False
    description: str = ""
    retried_by_operator: bool = False
    checked_against: str = OPERATOR_MAIN

    def applies_to(self, version: Version) -> bool:
        return (self.since is None or version >= self.since) and (self.until is None or version < self.until)

    @property
    def versions(self) -> str:
        lo = f">= {self.since}" if self.since else ""
        hi = f"< {self.until}" if self.until else ""
        return ", ".join(p for p in (lo, hi) if p) or "all"


RULES: dict[str, Rule] = {}


def rule(
    code: str,
    *,
    title: str,
    severity: Severity,
    kind: str | tuple[str, ...],
    source: str,
    hint: str,
    bad: Iterable[Example | str],
    good: Iterable[Example | str],
    since: Version | None = None,
    until: Version | None = None,
    needs_backup_enabled: bool = False,
    description: str = "",
    retried_by_operator: bool = False,
    checked_against: str = OPERATOR_MAIN,
) -> Callable[[CheckFn], CheckFn]:
    """Register a rule. `needs_backup_enabled`: the operator only enforces it while spec.backup.enabled is true,
    so with backups disabled an error becomes a warning (OP v1.23.0@b15af500 pkg/apis/psmdb/v1/psmdb_defaults.go:569,623-638). `retried_by_operator`: the rule is about
    a referenced object the operator keeps retrying until it appears (a Secret applied after the cluster, as GitOps
    tools do), so admission warns instead of denying. `checked_against`: the operator source the rule was traced to."""

    def as_examples(items: Iterable[Example | str]) -> tuple[Example, ...]:
        return tuple(i if isinstance(i, Example) else Example(i) for i in items)

    def register(fn: CheckFn) -> CheckFn:
        if code in RULES:
            raise ValueError(f"rule code {code} registered twice")
        RULES[code] = Rule(
            code=code,
            title=title,
            severity=severity,
            kinds=(kind,) if isinstance(kind, str) else tuple(kind),
            source=source,
            hint=hint,
            bad=as_examples(bad),
            good=as_examples(good),
            check=fn,
            since=since,
            until=until,
            needs_backup_enabled=needs_backup_enabled,
            description=description or (fn.__doc__ or "").strip(),
            retried_by_operator=retried_by_operator,
            checked_against=checked_against,
        )
        return fn

    return register


def disabled_by_annotation(obj: Mapping[str, Any]) -> frozenset[str]:
    meta = obj.get("metadata")
    notes = meta.get("annotations") if isinstance(meta, dict) else None
    raw = notes.get(DISABLE_ANNOTATION) if isinstance(notes, dict) else None
    if not isinstance(raw, str):
        return frozenset()
    return frozenset(c.strip().upper() for c in raw.split(",") if c.strip())


def backup_enabled(obj: Mapping[str, Any]) -> bool:
    spec = obj.get("spec")
    backup = spec.get("backup") if isinstance(spec, dict) else None
    return isinstance(backup, dict) and backup.get("enabled") is True


def run_rules(
    ctx: Context,
    rules: Iterable[Rule],
    used_lookup: set[str] | None = None,
    errors: list[tuple[Rule, Exception]] | None = None,
) -> Iterator[Finding]:
    """Findings of `rules` on ctx. With `used_lookup`, the codes of rules that consulted ctx.lookup are added to it
    (the lookup must count its calls, as RecordingLookup does). A rule that raises is skipped and, with `errors`,
    reported there (the engine decides what to make of it); without `errors` the exception propagates."""
    gate_open = ctx.kind != kinds.CLUSTER or backup_enabled(ctx.obj)
    lookup, counting = ctx.lookup, used_lookup is not None  # hoisted: this loop runs every rule on every object
    for r in rules:
        before = getattr(lookup, "calls", 0) if counting else 0
        try:
            violations = list(r.check(ctx))
        except Exception as exc:
            if errors is None:
                raise
            errors.append((r, exc))
            continue
        finally:
            if used_lookup is not None and getattr(lookup, "calls", 0) != before:
                used_lookup.add(r.code)
        for v in violations:
            severity = v.severity if v.severity is not None else r.severity
            message = v.message
            if r.needs_backup_enabled and not gate_open and severity == Severity.ERROR:
                severity = Severity.WARNING
                message += " (accepted while spec.backup.enabled is false; fails once backups are enabled)"
            yield Finding(r.code, severity, v.path, message, v.hint or r.hint)
