"""`psmdb-backup controller`: flags (each also an environment variable) and the entry point."""

from __future__ import annotations

import argparse
import sys

from ..cliutil import env, env_bool, listen


# String defaults (from the environment) go through `type` too, so a bad PSMDB_BACKUP_* value is a usage error
def _positive(kind: type) -> object:
    def parse(value: str) -> object:
        try:
            v = kind(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a positive number, got {value!r}") from None
        if v <= 0:
            raise argparse.ArgumentTypeError(f"expected a positive number, got {value!r}")
        return v

    return parse


def _threshold(value: str) -> tuple[str, float]:
    from .watchdog_run import thresholds

    name, sep, seconds = value.partition("=")
    try:
        pair = (name.strip(), float(seconds))
        if not sep or pair[1] <= 0:
            raise ValueError
        thresholds(dict([pair]))
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e) or f"expected NAME=SECONDS with SECONDS > 0, got {value!r}") from None
    return pair


def add_controller_parser(sub: argparse._SubParsersAction) -> None:
    from .manager import default_lease_namespace

    p = sub.add_parser(
        "controller",
        help="the companion of the Percona operator: watches the PSMDB backup objects (never runs PBM itself)",
        description="The companion controller for the selected PerconaServerMongoDB clusters. It runs beside the "
        "stock Percona operator, which runs every PerconaServerMongoDBBackup and PerconaServerMongoDBRestore through "
        "PBM; the companion watches those objects and writes only Kubernetes objects, never a PBM command that "
        "changes anything. Every flag can also be set with the environment variable shown.",
    )
    p.add_argument(
        "--kubeconfig",
        default=env("KUBECONFIG_FILE"),
        metavar="FILE",
        help="kubeconfig (default: in-cluster, then ~/.kube/config) [PSMDB_BACKUP_KUBECONFIG_FILE]",
    )
    p.add_argument("--context", default=env("CONTEXT"), help="kubeconfig context [PSMDB_BACKUP_CONTEXT]")
    p.add_argument(
        "-n",
        "--namespace",
        action="append",
        default=None,
        metavar="NS",
        help="watch this namespace (repeatable; default: every namespace) [PSMDB_BACKUP_NAMESPACES, comma-separated]",
    )
    p.add_argument(
        "--cluster-selector",
        default=env("CLUSTER_SELECTOR", ""),
        metavar="SELECTOR",
        help="label selector of the PerconaServerMongoDB clusters this controller manages (default: "
        "all) [PSMDB_BACKUP_CLUSTER_SELECTOR]",
    )
    p.add_argument(
        "--leader-elect",
        action=argparse.BooleanOptionalAction,
        default=env("LEADER_ELECT", "1") != "0",
        help="elect one active replica through a Lease (default: on) [PSMDB_BACKUP_LEADER_ELECT=0|1]",
    )
    p.add_argument(
        "--lease-name",
        default=env("LEASE_NAME", "psmdb-backup-controller"),
        help="leader Lease name [PSMDB_BACKUP_LEASE_NAME]",
    )
    p.add_argument(
        "--lease-namespace",
        default=env("LEASE_NAMESPACE") or default_lease_namespace(),
        help="leader Lease namespace (default: the pod's namespace) [PSMDB_BACKUP_LEASE_NAMESPACE]",
    )
    p.add_argument(
        "--lease-duration",
        type=_positive(int),
        default=env("LEASE_DURATION", "15"),
        metavar="SECONDS",
        help="a standby replica takes over this long after the leader stops renewing "
        "(default 15) [PSMDB_BACKUP_LEASE_DURATION]",
    )
    p.add_argument(
        "--identity",
        default=env("IDENTITY", ""),
        help="leader election identity (default: hostname plus a random suffix) [PSMDB_BACKUP_IDENTITY]",
    )
    p.add_argument(
        "--metrics-listen",
        type=listen,
        default=env("METRICS_LISTEN", "0.0.0.0:8080"),
        metavar="HOST:PORT",
        help="/metrics, /healthz, /readyz (default 0.0.0.0:8080) [PSMDB_BACKUP_METRICS_LISTEN]",
    )
    p.add_argument(
        "--workers",
        type=_positive(int),
        default=env("WORKERS", "8"),
        help="objects reconciled at once (default 8) [PSMDB_BACKUP_WORKERS]",
    )
    p.add_argument(
        "--watchdog-interval",
        type=_positive(float),
        default=env("WATCHDOG_INTERVAL", "30"),
        metavar="SECONDS",
        help="seconds between watchdog passes over every cluster with backups enabled (default 30) "
        "[PSMDB_BACKUP_WATCHDOG_INTERVAL]",
    )
    p.add_argument(
        "--watchdog-threshold",
        action="append",
        type=_threshold,
        default=None,
        metavar="NAME=SECONDS",
        help="override a watchdog threshold (repeatable): lookback, tolerance, early, lock-grace, pbm-grace, "
        "backup-STATE, restore-STATE (STATE: new, waiting, requested, running); docs/troubleshooting.md",
    )
    p.add_argument(
        "--repair",
        action=argparse.BooleanOptionalAction,
        default=env_bool("REPAIR", False),
        help="let the watchdog release stale lock Leases and mark stuck Backups error in every cluster (default: "
        "off; a cluster annotated psmdb-backup-webhook.io/watchdog-repair=true opts in alone) [PSMDB_BACKUP_REPAIR]",
    )
    p.add_argument(
        "--pbm-reads",
        action=argparse.BooleanOptionalAction,
        default=env_bool("PBM_READS", False),
        help="let the watchdog run read-only `pbm status`/`describe-backup`/`list` in each cluster's backup-agent "
        "container (needs pods/exec; default: off) [PSMDB_BACKUP_PBM_READS]",
    )
    p.add_argument(
        "--log-level",
        default=env("LOG_LEVEL", "info"),
        choices=["debug", "info", "warning", "error"],
        help="[PSMDB_BACKUP_LOG_LEVEL]",
    )
    p.add_argument(
        "--log-format", default=env("LOG_FORMAT", "json"), choices=["json", "text"], help="[PSMDB_BACKUP_LOG_FORMAT]"
    )
    p.set_defaults(func=cmd_controller)


def cmd_controller(args: argparse.Namespace) -> int:
    import asyncio

    from .. import logs
    from .manager import RECONCILERS, Options, main
    from .watchdog_run import register as watchdog

    logs.setup(args.log_level, args.log_format)
    namespaces = args.namespace or [n.strip() for n in (env("NAMESPACES") or "").split(",") if n.strip()]
    opts = Options(
        kubeconfig=args.kubeconfig,
        context=args.context,
        namespaces=namespaces,
        cluster_selector=args.cluster_selector,
        leader_elect=args.leader_elect,
        lease_name=args.lease_name,
        lease_namespace=args.lease_namespace,
        lease_duration=args.lease_duration,
        identity=args.identity,
        metrics_listen=args.metrics_listen,
        workers=args.workers,
        watchdog_interval=args.watchdog_interval,
        repair=args.repair,
        pbm_reads=args.pbm_reads,
        watchdog_thresholds=dict(args.watchdog_threshold or []),
    )
    try:
        return asyncio.run(main(opts, [*RECONCILERS, watchdog]))
    except OSError as exc:
        print(f"psmdb-backup controller: {exc}", file=sys.stderr)
        return 2
