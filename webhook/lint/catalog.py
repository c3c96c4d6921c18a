"""Every code the linter can report: the rule registry plus the linter's own file-level code."""

from __future__ import annotations

from ..findings import Severity
from ..policy import RULES, Rule
from ..policy.failures import RULE_ERROR, RULE_ERROR_CODE
from ..policy.registry import Example
from .loader import SYNTAX_CODE
from .refs import OTHER_NAMESPACE_CODE, OTHER_NAMESPACE_HINT


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
    other_namespace = Rule(
        code=OTHER_NAMESPACE_CODE,
        title="Restore names a Backup that is only in another namespace",
        severity=Severity.WARNING,
        kinds=(),
        source="OP v1.23.0@b15af500 pkg/controller/perconaservermongodbrestore/psmdb_restore_controller.go:139-192 "
        "(the Backup is read from the Restore's namespace)",
        hint=OTHER_NAMESPACE_HINT,
        bad=(Example("kind: PerconaServerMongoDBRestore\nmetadata: {name: r, namespace: a}\nspec: {backupName: b1}"),),
        good=(Example("kind: PerconaServerMongoDBRestore\nmetadata: {name: r, namespace: b}\nspec: {backupName: b1}"),),
        check=lambda ctx: (),
        description="Reported by `lint` when the files linted hold no Backup of that name in the Restore's "
        "namespace but hold one in another namespace (in the bad example, a Backup b1 of namespace b): a namespace "
        "mix-up. A warning: the run is not the cluster.",
    )
    return {
        SYNTAX_CODE: syntax,
        OTHER_NAMESPACE_CODE: other_namespace,
        RULE_ERROR_CODE: RULE_ERROR,
        **dict(sorted(RULES.items())),
    }
