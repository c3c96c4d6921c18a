"""Every code the linter can report: the rule registry plus the linter's own file-level code."""

from __future__ import annotations

from ..findings import Severity
from ..policy import RULES, Rule
from ..policy.failures import RULE_ERROR, RULE_ERROR_CODE
from ..policy.registry import Example
from .loader import SYNTAX_CODE


def all_rules() -> dict[str, Rule]:
    """The registry plus the linter's own file-level code, for listings, docs and output formats."""
    syntax = Rule(
        code=SYNTAX_CODE,
        title="File is not valid YAML or JSON",
        severity=Severity.ERROR,
        kinds=(),
        source="kubectl refuses files it cannot parse",
        hint="fix the syntax at the given position",
        bad=(Example("spec: {backup: [enabled: true"),),
        good=(Example("spec: {backup: {enabled: true}}"),),
        check=lambda ctx: (),
        description="Reported by `lint` for a file or document it cannot read or parse; the "
        "run goes on with the other files.",
    )
    return {SYNTAX_CODE: syntax, RULE_ERROR_CODE: RULE_ERROR, **dict(sorted(RULES.items()))}
