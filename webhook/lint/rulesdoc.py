"""docs/rules.md, generated from the rule registry (`make docs`; a test fails when the file is out of date)."""

from __future__ import annotations

import sys
from collections.abc import Mapping

from ..policy.registry import Rule

HEADER = """\
# Rules

Generated from the rule registry by `make docs` (`python -m webhook.lint.rulesdoc > docs/rules.md`); do not edit by
hand. Every rule has a stable code, a severity, the operator versions (`spec.crVersion`) it applies to and the
operator or PBM source file and line it is traced to: `OP v1.23.0@b15af500` is percona/percona-server-mongodb-operator
at commit b15af500 (its version.txt says 1.23.0), `PBM v2.15.0@6f9fc3bf` is percona/percona-backup-mongodb 2.15.0 at
commit 6f9fc3bf, `DOCS@db1fbb18` is percona/k8spsmdb-docs at commit db1fbb18.

- **error**: the API server or the operator rejects the object, or the backup or restore fails.
- **warning**: accepted, but the result is surely not what was meant.
- **info**: worth knowing; never fails a run unless `--fail-on info`.

Rules marked *retried by the operator* are about an object the operator keeps looking up until it exists (a
credentials Secret applied after the cluster, as GitOps tools do): the admission webhook reports their errors as
warnings instead of denying. Each rule says which operator source it was checked against.

Rules marked *needs backup.enabled* are enforced by the operator only while `spec.backup.enabled` is true; with
backups disabled their errors are reported as warnings.

Disable a rule for one run with `psmdb-backup lint --disable CODE`, or for one object with the annotation
`psmdb-backup-webhook.io/disable-rules: "CODE,CODE"`. Examples are merged onto a minimal object of the rule's kind.

| Code | Severity | Title | Applies to |
|---|---|---|---|
"""


def _fence(text: str) -> str:
    return "```yaml\n" + text.rstrip() + "\n```"


def render(rules: Mapping[str, Rule]) -> str:
    out = [HEADER]
    for r in rules.values():
        out.append(
            f"| [{r.code}](#{r.code.lower()}) | {r.severity.label} | {r.title} | {', '.join(r.kinds) or 'files'} |\n"
        )
    for r in rules.values():
        out.append(f'\n<a id="{r.code.lower()}"></a>\n\n## {r.code}: {r.title}\n\n')
        out.append(f"{r.description or r.title}\n\n")
        out.append(
            f"- severity: **{r.severity.label}**"
            + (" (*needs backup.enabled*)" if r.needs_backup_enabled else "")
            + (" (*retried by the operator*: a warning at admission)" if r.retried_by_operator else "")
            + "\n"
        )
        out.append(f"- applies to: {', '.join(r.kinds) or 'files'}; crVersion {r.versions}\n")
        out.append(f"- source: {r.source}\n- checked against: {r.checked_against}\n- fix: {r.hint}\n")
        for label, examples in (("Bad", r.bad), ("Good", r.good)):
            for ex in examples:
                out.append(f"\n{label}:\n\n{_fence(ex.yaml)}\n")
                if ex.old:
                    out.append(f"\nbefore the update:\n\n{_fence(ex.old)}\n")
                for other in ex.others:
                    out.append(f"\nwith, in the same namespace:\n\n{_fence(other)}\n")
    return "".join(out)


if __name__ == "__main__":
    from .catalog import all_rules

    sys.stdout.write(render(all_rules()))
