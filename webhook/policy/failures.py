"""Rules that raise: never silent. The engine logs them at WARNING, reports them in `RulePass.errors` (the front-ends
count them in `psmdb_backup_rule_errors_total{rule}`) and adds an info finding naming the rule. With
PSMDB_STRICT_RULES=1 (the test suite, the fuzz run) it raises instead, so a rule bug fails CI."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..cliutil import parse_bool
from ..findings import Finding, Severity
from .registry import Rule

log = logging.getLogger(__name__)

RULE_ERROR_CODE = "PSB009"
STRICT_ENV = "PSMDB_STRICT_RULES"
RULE_ERRORS_METRIC = "psmdb_backup_rule_errors_total"  # the same name in the server and the controller
RULE_ERRORS_HELP = "Rules that raised instead of checking an object (a bug in the rule), by rule code"
_CLIP = 80

# Not in RULES (no manifest can make it fire); listed by `--list-rules`, `--explain` and docs/rules.md.
RULE_ERROR = Rule(
    code=RULE_ERROR_CODE,
    title="A rule failed internally",
    severity=Severity.INFO,
    kinds=(),
    source="psmdb-backup-webhook itself (a bug in one of its rules)",
    hint="report the rule named in the message as a bug; until it is fixed, check what it covers by hand",
    bad=(),
    good=(),
    check=lambda ctx: (),
    description="A rule raised an exception on this object, so its check did not run. The object is neither "
    "accepted nor rejected because of that rule. The server and the controller log it at WARNING and count it in "
    "`psmdb_backup_rule_errors_total{rule}`.",
)


class RuleFailed(RuntimeError):
    """Raised in strict mode instead of reporting a rule's exception."""


@dataclass(frozen=True)
class RuleError:
    rule: str  # the failing rule's code
    error: str  # exception type and message, clipped

    def finding(self) -> Finding:
        return Finding(
            RULE_ERROR_CODE,
            Severity.INFO,
            (),
            f"rule {self.rule} failed internally ({self.error}); it was not checked on this object",
            RULE_ERROR.hint,
        )


def strict() -> bool:
    return parse_bool(os.environ.get(STRICT_ENV, "")) is True


def clip(value: object) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= _CLIP else text[: _CLIP - 3] + "..."


def describe(obj: Mapping[str, Any]) -> str:
    """kind namespace/name, each clipped: the object may be any shape and any size."""
    meta = obj.get("metadata")
    meta = meta if isinstance(meta, dict) else {}
    return f"{clip(obj.get('kind', '?'))} {clip(meta.get('namespace', '-'))}/{clip(meta.get('name', '?'))}"


def report(rule: Rule, exc: Exception, obj: Mapping[str, Any], schema_rejected: bool) -> RuleError | None:
    """What one raising rule becomes: None when the schema already rejected the object (the rule may have tripped
    over the very field the schema finding names), else a logged RuleError; raises in strict mode."""
    if schema_rejected:
        log.debug("rule %s skipped on an object the schema rejects: %r", rule.code, exc)
        return None
    if strict():
        raise RuleFailed(f"rule {rule.code} raised on {describe(obj)}: {exc!r} ({STRICT_ENV}=1)") from exc
    log.warning("rule %s failed internally on %s: %r", rule.code, describe(obj), exc, exc_info=exc)
    return RuleError(rule.code, clip(f"{type(exc).__name__}: {exc}"))
