"""`psmdb-backup`: the one console script (lint, and the server-side subcommands as they land)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Mapping, Sequence

from . import __version__
from .findings import Severity, exit_code
from .policy import RULES, Rule
from .policy.registry import Example

EXIT_USAGE = 2


def all_rules() -> dict[str, Rule]:
    """The registry plus the linter's own file-level code, for listings, docs and output formats."""
    from .lint.loader import SYNTAX_CODE

    syntax = Rule(
        code=SYNTAX_CODE, title="File is not valid YAML or JSON", severity=Severity.ERROR, kinds=(),
        source="kubectl refuses files it cannot parse", hint="fix the syntax at the given position",
        bad=(Example("spec: {backup: [enabled: true"),), good=(Example("spec: {backup: {enabled: true}}"),),
        check=lambda ctx: (), description="Reported by `lint` for a file or document it cannot read or parse; the "
        "run goes on with the other files.",
    )
    return {SYNTAX_CODE: syntax, **dict(sorted(RULES.items()))}


def _codes(values: Sequence[str]) -> frozenset[str]:
    return frozenset(c.strip().upper() for v in values for c in v.split(",") if c.strip())


def _use_color(choice: str, stream: object) -> bool:
    if choice != "auto":
        return choice == "always"
    return not os.environ.get("NO_COLOR") and hasattr(stream, "isatty") and stream.isatty()  # type: ignore[attr-defined]


def explain(rule: Rule) -> str:
    kinds = ", ".join(rule.kinds) or "files"
    lines = [f"{rule.code} ({rule.severity.label}): {rule.title}", "",
             rule.description or rule.title, "",
             f"applies to: {kinds}; crVersion {rule.versions}",
             f"source:     {rule.source}",
             f"fix:        {rule.hint}"]
    if rule.needs_backup_enabled:
        lines.append("note:       enforced by the operator only while spec.backup.enabled is true; otherwise a warning")
    for label, examples in (("bad", rule.bad), ("good", rule.good)):
        for ex in examples:
            lines += ["", f"{label} example:", *("  " + line for line in ex.yaml.splitlines())]
    return "\n".join(lines) + "\n"


def cmd_lint(args: argparse.Namespace) -> int:
    from .lint.formats import render
    from .lint.run import LintRun

    rules = all_rules()
    if args.list_rules:
        for r in rules.values():
            print(f"{r.code}  {r.severity.label:<7}  {r.title}")
        return 0
    if args.explain:
        rule = rules.get(args.explain.strip().upper())
        if rule is None:
            print(f"psmdb-backup lint: unknown rule code {args.explain!r}; see --list-rules", file=sys.stderr)
            return EXIT_USAGE
        sys.stdout.write(explain(rule))
        return 0
    disabled = _codes(args.disable)
    unknown = sorted(disabled - set(rules))
    if unknown:
        print(f"psmdb-backup lint: unknown rule code(s) in --disable: {', '.join(unknown)}", file=sys.stderr)
        return EXIT_USAGE
    run = LintRun(disabled=disabled)
    report = run.lint_paths(args.paths or ["."])
    out = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout
    try:
        out.write(render(args.format, report, rules, color=_use_color(args.color, out)))
    finally:
        if out is not sys.stdout:
            out.close()
    if run.unreadable:
        return EXIT_USAGE
    return exit_code((f.finding for f in report.findings), Severity.parse(args.fail_on))


def build_parser() -> argparse.ArgumentParser:
    from .lint.formats import DEFAULT_FORMAT, FORMATS

    parser = argparse.ArgumentParser(prog="psmdb-backup", description="Safe backups for Percona Server for MongoDB "
                                     "on Kubernetes: linter, admission webhooks and backup controller.")
    parser.add_argument("--version", action="version", version=f"psmdb-backup {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    lint = sub.add_parser("lint", help="check PSMDB, Backup and Restore manifests",
                          description="Check PerconaServerMongoDB, PerconaServerMongoDBBackup and "
                          "PerconaServerMongoDBRestore manifests. Exit 0: nothing at or above --fail-on; 1: findings; "
                          "2: usage error or unreadable input.")
    lint.add_argument("paths", nargs="*", metavar="PATH", help="files or directories (recursive: .yaml .yml .json); "
                      "- for stdin; default: the current directory")
    lint.add_argument("-f", "--format", choices=list(FORMATS), default=DEFAULT_FORMAT, help="output format")
    lint.add_argument("-o", "--output", metavar="FILE", help="write the report to FILE instead of stdout")
    lint.add_argument("--fail-on", choices=["error", "warning", "info"], default="error",
                      help="lowest severity that makes the exit code 1 (default: error)")
    lint.add_argument("--disable", action="append", default=[], metavar="CODE[,CODE]",
                      help="skip these rules (repeatable); per object: annotation "
                      "psmdb-backup-webhook.io/disable-rules")
    lint.add_argument("--color", choices=["auto", "always", "never"], default="auto",
                      help="colour the text format (auto: only on a terminal, and not with NO_COLOR)")
    lint.add_argument("--list-rules", action="store_true", help="list every rule and exit")
    lint.add_argument("--explain", metavar="CODE", help="describe one rule, with examples, and exit")
    lint.set_defaults(func=cmd_lint)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `psmdb-backup lint ... | head`
        return 0


if __name__ == "__main__":
    sys.exit(main())
