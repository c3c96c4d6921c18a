"""`psmdb-backup`: the one console script; each subcommand's parser and handler live with its front-end."""

from __future__ import annotations

import argparse
import functools
import os
import sys
from collections.abc import Callable, Sequence

from . import __version__
from .cliutil import env as _env
from .cliutil import env_bool
from .cliutil import listen as _listen
from .findings import Severity, exit_code
from .policy import Rule

EXIT_USAGE = 2

PROG = "psmdb-backup"


def prog_name(argv0: str) -> str:
    """`kubectl psmdb-backup` when run as a kubectl plugin (kubectl execs `kubectl-psmdb_backup`), else ours."""
    base = os.path.basename(argv0)
    if base.startswith("kubectl-"):
        return "kubectl " + base.removeprefix("kubectl-").replace("_", "-")
    return PROG


def _codes(values: Sequence[str]) -> frozenset[str]:
    return frozenset(c.strip().upper() for v in values for c in v.split(",") if c.strip())


def _use_color(choice: str, stream: object) -> bool:
    if choice != "auto":
        return choice == "always"
    return not os.environ.get("NO_COLOR") and hasattr(stream, "isatty") and stream.isatty()


def explain(rule: Rule) -> str:
    kinds = ", ".join(rule.kinds) or "files"
    lines = [
        f"{rule.code} ({rule.severity.label}): {rule.title}",
        "",
        rule.description or rule.title,
        "",
        f"applies to: {kinds}; crVersion {rule.versions}",
        f"source:     {rule.source}",
        f"checked:    against {rule.checked_against}",
        f"fix:        {rule.hint}",
    ]
    if rule.retried_by_operator:
        lines.append(
            "note:       retried by the operator until the object exists: a warning at admission, not a denial"
        )
    if rule.needs_backup_enabled:
        lines.append("note:       enforced by the operator only while spec.backup.enabled is true; otherwise a warning")
    for label, examples in (("bad", rule.bad), ("good", rule.good)):
        for ex in examples:
            lines += ["", f"{label} example:", *("  " + line for line in ex.yaml.splitlines())]
    return "\n".join(lines) + "\n"


def _crash_is_exit_2(cmd: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """An uncaught exception anywhere in lint (reading, checking, rendering the report) exits 2 with one line, never
    Python's exit 1, which CI would read as "findings found" (docs/lint.md, Exit codes)."""

    @functools.wraps(cmd)
    def run(args: argparse.Namespace) -> int:
        try:
            return cmd(args)
        except (KeyboardInterrupt, BrokenPipeError):
            raise  # main() maps these
        except Exception as exc:
            print(f"psmdb-backup lint: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
            return EXIT_USAGE

    return run


@_crash_is_exit_2
def cmd_lint(args: argparse.Namespace) -> int:
    from .lint.catalog import all_rules
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
    if args.report and not args.cluster:
        print(
            "psmdb-backup lint: --report writes the policy reports of a cluster scan: use it with --cluster",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if args.cluster:
        import asyncio

        from .lint.cluster_scan import lint_cluster

        if args.paths:
            print("psmdb-backup lint: give either PATHs or --cluster, not both", file=sys.stderr)
            return EXIT_USAGE
        try:
            report = asyncio.run(
                lint_cluster(
                    args.kubeconfig,
                    args.context,
                    None if args.all_namespaces else args.namespace,
                    disabled,
                    report_api=args.report_api if args.report else None,
                )
            )
        except Exception as exc:
            print(f"psmdb-backup lint --cluster: {exc}", file=sys.stderr)
            return EXIT_USAGE
        unreadable = False
    else:
        from .lint.kustomize import KustomizeError
        from .lint.kustomize import render as kustomize

        run = LintRun(disabled=disabled)
        try:
            if args.kustomize:
                if args.paths:
                    print("psmdb-backup lint: give either PATHs or -k DIR, not both", file=sys.stderr)
                    return EXIT_USAGE
                report = run.lint_rendered(f"kustomize:{args.kustomize}", kustomize(args.kustomize))
            else:
                report = run.lint_paths(args.paths or ["."])
        except KustomizeError as exc:
            print(f"psmdb-backup lint: {exc}", file=sys.stderr)
            return EXIT_USAGE
        unreadable = run.unreadable
    try:
        out = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout
    except OSError as exc:
        print(f"psmdb-backup lint: cannot write {args.output}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        out.write(render(args.format, report, rules, color=_use_color(args.color, out)))
    finally:
        if out is not sys.stdout:
            out.close()
    if unreadable:
        return EXIT_USAGE
    return exit_code((f.finding for f in report.findings), Severity.parse(args.fail_on))


def cmd_serve(args: argparse.Namespace) -> int:
    import asyncio

    from . import logs
    from .admission.server import Settings, serve
    from .certs import CertsError
    from .kube import CredentialsError
    from .policy.live import Enforcement, LookupFailure

    logs.setup(args.log_level, args.log_format)
    host, port = args.listen
    settings = Settings(
        listen_host=host,
        listen_port=port,
        tls_dir=args.tls_dir,
        kubeconfig=args.kubeconfig,
        context=args.context,
        no_cluster=args.no_cluster,
        enforcement=Enforcement(args.enforcement),
        on_lookup_failure=LookupFailure(args.on_lookup_failure),
        lookup_timeout=args.lookup_timeout,
        lookup_budget=args.lookup_budget,
        keepalive_timeout=args.keepalive_timeout,
        header_timeout=args.header_timeout,
        max_connections=args.max_connections,
        default_backup_image=args.default_backup_image,
        cert_check_interval=args.cert_check_interval,
        report_api=None if args.report_api == "none" else args.report_api,
        report_interval=args.report_interval,
    )
    try:
        asyncio.run(serve(settings))
    except (OSError, ValueError, CertsError, CredentialsError) as exc:
        print(f"psmdb-backup serve: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return 0


def cmd_inject(args: argparse.Namespace) -> int:
    import yaml

    from .inject import inject_documents
    from .lint.loader import STDIN, LoadError, read_text

    def load(path: str) -> list:
        text = read_text(STDIN if path == "-" else path)
        if isinstance(text, LoadError):
            raise ValueError(f"{path}: {text.message}")
        try:
            return list(yaml.safe_load_all(text))
        except yaml.YAMLError as exc:
            raise ValueError(f"{path}: not valid YAML: {exc}") from None

    try:
        docs = load(args.file)
        clusters = [d for f in args.cluster_file for d in load(f)]
    except ValueError as exc:
        print(f"psmdb-backup inject: {exc}", file=sys.stderr)
        return EXIT_USAGE
    keys = None if args.ssl_secret_keys == "" else frozenset(k.strip() for k in args.ssl_secret_keys.split(","))
    results = inject_documents(docs, clusters, ssl_secret_keys=keys)
    for r in results:
        print(r.reason, file=sys.stderr)
    text = yaml.safe_dump_all([r.obj for r in results if r.obj is not None], sort_keys=False)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as out:
            out.write(text)
    else:
        sys.stdout.write(text)
    return 0


def cmd_completion(args: argparse.Namespace) -> int:
    from .completion import script

    # Always for `psmdb-backup`: kubectl completes its plugins through a separate kubectl_complete-* executable.
    sys.stdout.write(script(build_parser(), args.shell))
    return 0


def cmd_schemas(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .schemas_export import LOCATIONS, ExportError, export

    try:
        written = export(Path(args.dir), args.format, args.cr_version)
    except (ExportError, OSError) as exc:
        print(f"psmdb-backup schemas export: {exc}", file=sys.stderr)
        return EXIT_USAGE
    for path in written:
        print(path)
    print(
        f"kubeconform -schema-location '{args.dir}/{LOCATIONS[args.format]}' -schema-location default", file=sys.stderr
    )
    return 0


def cmd_probe(args: argparse.Namespace) -> int:
    from .probe import ProbeUsageError, probe

    try:
        result = probe(args.url, args.ca_file, args.timeout)
    except ProbeUsageError as exc:
        print(f"psmdb-backup probe: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(result.message, file=sys.stdout if result.ok else sys.stderr)
    return 0 if result.ok else 1


def build_parser(prog: str = PROG, only_lint: bool = False) -> argparse.ArgumentParser:
    """The whole command line; `only_lint`: just the lint command, whose run then does not import the server's
    dependencies (aiohttp, the Kubernetes client, cryptography: over a second of a lint run's start on one core)."""
    from .completion import SHELLS
    from .lint.formats import DEFAULT_FORMAT, FORMATS
    from .reports import APIS as REPORT_APIS
    from .reports import DEFAULT_API as DEFAULT_REPORT_API

    parser = argparse.ArgumentParser(
        prog=prog,
        description="Safe backups for Percona Server for MongoDB "
        "on Kubernetes: linter, admission webhooks and backup controller.",
    )
    parser.add_argument("--version", action="version", version=f"psmdb-backup {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    lint = sub.add_parser(
        "lint",
        help="check PSMDB, Backup and Restore manifests",
        description="Check PerconaServerMongoDB, PerconaServerMongoDBBackup and "
        "PerconaServerMongoDBRestore manifests. Exit 0: nothing at or above --fail-on; 1: findings; "
        "2: usage error or unreadable input.",
    )
    lint.add_argument(
        "paths",
        nargs="*",
        metavar="PATH",
        help="files or directories (recursive: .yaml .yml .json); - for stdin; default: the current directory",
    )
    lint.add_argument("-f", "--format", choices=list(FORMATS), default=DEFAULT_FORMAT, help="output format")
    lint.add_argument("-o", "--output", metavar="FILE", help="write the report to FILE instead of stdout")
    lint.add_argument(
        "--fail-on",
        choices=["error", "warning", "info"],
        default="error",
        help="lowest severity that makes the exit code 1 (default: error)",
    )
    lint.add_argument(
        "--disable",
        action="append",
        default=[],
        metavar="CODE[,CODE]",
        help="skip these rules (repeatable); per object: annotation psmdb-backup-webhook.io/disable-rules",
    )
    lint.add_argument(
        "--color",
        choices=["auto", "always", "never"],
        default="auto",
        help="colour the text format (auto: only on a terminal, and not with NO_COLOR)",
    )
    lint.add_argument(
        "-k",
        "--kustomize",
        metavar="DIR",
        help="lint what `kubectl kustomize DIR` renders (needs kubectl on PATH) instead of files",
    )
    lint.add_argument(
        "--cluster",
        action="store_true",
        help="audit the objects already in a cluster (live lookups; "
        "positions are namespace/kind/name) instead of files",
    )
    lint.add_argument(
        "--kubeconfig", metavar="FILE", help="with --cluster: kubeconfig file (default: $KUBECONFIG, ~/.kube/config)"
    )
    lint.add_argument("--context", help="with --cluster: kubeconfig context")
    scope = lint.add_mutually_exclusive_group()
    scope.add_argument("-n", "--namespace", default="default", help="with --cluster: namespace (default: default)")
    scope.add_argument("-A", "--all-namespaces", action="store_true", help="with --cluster: every namespace")
    lint.add_argument(
        "--report",
        action="store_true",
        help="with --cluster: also write the findings as one policy report per namespace (docs/integrations.md)",
    )
    lint.add_argument(
        "--report-api",
        choices=sorted(REPORT_APIS),
        default=DEFAULT_REPORT_API,
        help="with --report: wgpolicyk8s (PolicyReport wgpolicyk8s.io/v1alpha2, the default) or openreports "
        "(Report openreports.io/v1alpha1)",
    )
    lint.add_argument("--list-rules", action="store_true", help="list every rule and exit")
    lint.add_argument("--explain", metavar="CODE", help="describe one rule, with examples, and exit")
    lint.set_defaults(func=cmd_lint)
    if only_lint:
        return parser

    from .admission.mutate import DEFAULT_BACKUP_IMAGE

    serve = sub.add_parser(
        "serve",
        help="run the validating and mutating admission webhooks (HTTPS)",
        description="Serve /validate, /mutate, /healthz, /readyz and /metrics over TLS 1.2+. "
        "Every flag can also be set with the environment variable shown.",
    )
    serve.add_argument(
        "--tls-dir",
        default=_env("TLS_DIR"),
        required=_env("TLS_DIR") is None,
        metavar="DIR",
        help="directory with tls.crt and tls.key, reloaded when they change [PSMDB_BACKUP_TLS_DIR]",
    )
    serve.add_argument(
        "--listen",
        type=_listen,
        default=_env("LISTEN", "0.0.0.0:8443"),
        help="HOST:PORT (default 0.0.0.0:8443) [PSMDB_BACKUP_LISTEN]",
    )
    serve.add_argument(
        "--kubeconfig",
        default=_env("KUBECONFIG_FILE"),
        metavar="FILE",
        help="kubeconfig for lookups (default: in-cluster, then ~/.kube/config) [PSMDB_BACKUP_KUBECONFIG_FILE]",
    )
    serve.add_argument("--context", default=_env("CONTEXT"), help="kubeconfig context [PSMDB_BACKUP_CONTEXT]")
    serve.add_argument(
        "--no-cluster",
        action="store_true",
        default=env_bool("NO_CLUSTER", False),
        help="never contact an API server: cross-object rules follow --on-lookup-failure, pods get "
        "latest-crVersion defaults [PSMDB_BACKUP_NO_CLUSTER=1]",
    )
    serve.add_argument(
        "--enforcement",
        choices=["enforce", "warn", "audit"],
        default=_env("ENFORCEMENT", "enforce"),
        help="cluster-wide mode; a namespace label psmdb-backup-webhook.io/enforcement overrides it "
        "[PSMDB_BACKUP_ENFORCEMENT]",
    )
    serve.add_argument(
        "--on-lookup-failure",
        choices=["deny", "warn"],
        default=_env("ON_LOOKUP_FAILURE", "deny"),
        help="when a referenced object cannot be read: deny with a clear message, or allow with a "
        "warning [PSMDB_BACKUP_ON_LOOKUP_FAILURE]",
    )
    serve.add_argument(
        "--lookup-timeout",
        type=float,
        default=_env("LOOKUP_TIMEOUT", "2"),
        help="seconds per API read (default 2) [PSMDB_BACKUP_LOOKUP_TIMEOUT]",
    )
    serve.add_argument(
        "--lookup-budget",
        type=float,
        default=_env("LOOKUP_BUDGET", "4"),
        help="seconds for all API reads of one admission request, below the webhook's timeoutSeconds "
        "(default 4) [PSMDB_BACKUP_LOOKUP_BUDGET]",
    )
    serve.add_argument(
        "--keepalive-timeout",
        type=float,
        default=_env("KEEPALIVE_TIMEOUT", "30"),
        help="seconds an idle client connection is kept open (default 30) [PSMDB_BACKUP_KEEPALIVE_TIMEOUT]",
    )
    serve.add_argument(
        "--header-timeout",
        type=float,
        default=_env("HEADER_TIMEOUT", "10"),
        help="seconds for the TLS handshake and for a new connection's request headers (default 10) "
        "[PSMDB_BACKUP_HEADER_TIMEOUT]",
    )
    serve.add_argument(
        "--max-connections",
        type=int,
        default=_env("MAX_CONNECTIONS", "1000"),
        help="open client connections at most; more get a 503 and are closed (default 1000) "
        "[PSMDB_BACKUP_MAX_CONNECTIONS]",
    )
    serve.add_argument(
        "--default-backup-image",
        default=_env("DEFAULT_BACKUP_IMAGE", DEFAULT_BACKUP_IMAGE),
        help="backup-agent image when a pod's cluster cannot be read [PSMDB_BACKUP_DEFAULT_BACKUP_IMAGE]",
    )
    serve.add_argument(
        "--cert-check-interval",
        type=float,
        default=_env("CERT_CHECK_INTERVAL", "10"),
        help="seconds between checks for rotated certificate files (default 10) [PSMDB_BACKUP_CERT_CHECK_INTERVAL]",
    )
    serve.add_argument(
        "--report-api",
        choices=[*sorted(REPORT_APIS), "none"],
        default=_env("REPORT_API", DEFAULT_REPORT_API),
        help="write policy reports of admitted objects and of background scans: wgpolicyk8s (PolicyReport, the "
        "default), openreports (Report) or none [PSMDB_BACKUP_REPORT_API]",
    )
    serve.add_argument(
        "--report-interval",
        type=float,
        default=_env("REPORT_INTERVAL", "600"),
        help="seconds between full scans that rewrite the policy reports (default 600; 0: no scans) "
        "[PSMDB_BACKUP_REPORT_INTERVAL]",
    )
    serve.add_argument("--log-level", default=_env("LOG_LEVEL", "info"), choices=["debug", "info", "warning", "error"])
    serve.add_argument("--log-format", default=_env("LOG_FORMAT", "json"), choices=["json", "text"])
    serve.set_defaults(func=cmd_serve)

    inject = sub.add_parser(
        "inject",
        help="add the backup-agent sidecar to Pods and StatefulSets offline (GitOps)",
        description="Write the input back with the backup-agent container added to every PSMDB "
        "replica-set or config-server Pod and StatefulSet pod template, exactly as the mutating "
        "webhook would. What was done to each object is printed on stderr.",
    )
    inject.add_argument("-f", "--file", required=True, metavar="FILE", help="manifests to inject into; - for stdin")
    inject.add_argument(
        "--cluster-file",
        action="append",
        default=[],
        metavar="FILE",
        help="file(s) with the PerconaServerMongoDB objects, when they are not in --file",
    )
    inject.add_argument(
        "--ssl-secret-keys",
        default="ca.crt,tls.crt,tls.key",
        metavar="KEYS",
        help="keys of the cluster's SSL Secret, which decide the TLS options of PBM_MONGODB_URI "
        '(default: the three keys the operator\'s Secret has; "" for none)',
    )
    inject.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    inject.set_defaults(func=cmd_inject)

    from .certs import add_certs_parser

    add_certs_parser(sub)

    from .controller.cli import add_controller_parser, add_ops_parsers, add_schedules_parser

    add_controller_parser(sub)
    add_ops_parsers(sub)
    add_schedules_parser(sub)

    from .schemas_export import FORMATS as SCHEMA_FORMATS

    schemas = sub.add_parser(
        "schemas",
        help="export JSON Schemas of the Percona kinds and the schedule kind",
        description="Export JSON Schemas.",
    ).add_subparsers(dest="schemas_command", required=True, metavar="ACTION")
    export = schemas.add_parser(
        "export",
        help="write standalone JSON Schemas (CEL rules included where JSON Schema can say them) for kubeconform",
        description="Write one standalone JSON Schema per Percona kind and for PerconaServerMongoDBBackupSchedule into "
        "DIR, named as kubeconform's "
        "-schema-location template {{.ResourceKind}}{{.KindSuffix}}.json reads them (--format plain: "
        "openapi2jsonschema's {{.ResourceKind}}_{{.ResourceAPIVersion}}.json).",
    )
    export.add_argument("dir", metavar="DIR", help="output directory (created if missing)")
    export.add_argument("--format", choices=list(SCHEMA_FORMATS), default="kubeconform", help="file layout")
    export.add_argument(
        "--cr-version", metavar="X", help="pin the cluster's spec.crVersion to this minor version (1.20 to 1.23)"
    )
    export.set_defaults(func=cmd_schemas)

    probe = sub.add_parser(
        "probe",
        help="GET an HTTPS URL trusting only a CA file (the Helm chart's `helm test` Pod)",
        description="GET URL over TLS, verifying the server's certificate with --ca-file. Exit 0: a 2xx answer "
        "(printed on stdout); 1: any other answer, or no answer (said on stderr); 2: unusable URL or CA file.",
    )
    probe.add_argument("url", metavar="URL", help="https:// URL, e.g. https://psmdb-backup-webhook.NS.svc/readyz")
    probe.add_argument("--ca-file", metavar="FILE", help="PEM CA bundle to trust (default: the system's)")
    probe.add_argument("--timeout", type=float, default=5.0, help="seconds to connect and to answer (default 5)")
    probe.set_defaults(func=cmd_probe)

    completion = sub.add_parser(
        "completion",
        help="print a shell completion script",
        description="Print a completion script for psmdb-backup. bash: add "
        "source <(psmdb-backup completion bash) to ~/.bashrc; zsh: save it as _psmdb-backup in "
        "a directory of $fpath; fish: save it as ~/.config/fish/completions/psmdb-backup.fish; "
        "tcsh: eval `psmdb-backup completion tcsh`.",
    )
    completion.add_argument("shell", choices=SHELLS)
    completion.set_defaults(func=cmd_completion)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    given = sys.argv[1:] if argv is None else argv
    parser = build_parser(prog_name(sys.argv[0]), only_lint=list(given[:1]) == ["lint"])
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `psmdb-backup lint ... | head`
        return 0


if __name__ == "__main__":
    sys.exit(main())
