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


# --------------------------------------------------------------------------------------------------- status, backup,
# restore: one-shot commands for a person at a terminal (webhook/controller/status.py and ondemand.py)


def _api_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--kubeconfig", default=env("KUBECONFIG_FILE"), metavar="FILE", help="kubeconfig (default: kubectl's)"
    )
    p.add_argument("--context", default=None, help="kubeconfig context (default: the current one)")


def _timeout(value: str) -> float:
    try:
        parsed = float(value)
    except ValueError:
        parsed = 0.0
    if parsed <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {value!r}")
    return parsed


def add_ops_parsers(sub: argparse._SubParsersAction) -> None:
    from .ondemand import pitr_target

    status = sub.add_parser(
        "status",
        help="backups of PSMDB clusters at a glance: storages, schedules, running operations, PITR, findings",
        description="Show, per PerconaServerMongoDB cluster: its storages (main marked), every schedule and operator "
        "task with last run, last success and next run, the Backups and Restores not finished, the holder of the "
        "lock Lease, the PITR window the operator reported, the newest Backups and every watchdog finding. Read "
        "only. Exit 0: shown; 1: the cluster does not exist or the API could not be read; 2: usage error.",
    )
    status.add_argument("cluster", nargs="?", metavar="CLUSTER", help="one cluster (default: every cluster)")
    where = status.add_mutually_exclusive_group()
    where.add_argument("-n", "--namespace", metavar="NS", help="namespace (default: the kubeconfig context's)")
    where.add_argument("-A", "--all-namespaces", action="store_true", help="every namespace")
    status.add_argument("-o", "--output", choices=["text", "json"], default="text", help="format (default text)")
    status.add_argument(
        "--last", type=_positive(int), default=10, metavar="N", help="newest Backups shown per cluster (default 10)"
    )
    status.add_argument(
        "--watchdog-threshold",
        action="append",
        type=_threshold,
        default=None,
        metavar="NAME=SECONDS",
        help="judge findings with this watchdog threshold, as `controller --watchdog-threshold` (repeatable)",
    )
    _api_flags(status)
    status.set_defaults(func=cmd_status)

    backup = sub.add_parser(
        "backup",
        help="start an on-demand backup of a cluster (creates a PerconaServerMongoDBBackup for the operator)",
        description="Create a PerconaServerMongoDBBackup for the Percona operator to run, after checking it with the "
        "admission webhook's rules (errors stop here, before anything is created). Exit 0: created (with --wait: "
        "ready); 1: rejected, failed (with the operator's error), timed out or API error; 2: usage error.",
    )
    backup.add_argument("cluster", metavar="CLUSTER")
    backup.add_argument("-n", "--namespace", metavar="NS", help="namespace (default: the kubeconfig context's)")
    backup.add_argument("--storage", metavar="NAME", help="a storage of the cluster (default: its main storage)")
    backup.add_argument(
        "--type", choices=["logical", "physical", "incremental", "incremental-base"], help="default: logical"
    )
    backup.add_argument("--compression", metavar="TYPE", help="compressionType, e.g. gzip, zstd, s2 (default gzip)")
    backup.add_argument("--compression-level", type=int, metavar="N", help="compressionLevel")
    backup.add_argument("--name", help="the Backup's name (default: generated, CLUSTER-backup-xxxxx)")
    _wait_flags(backup)
    _api_flags(backup)
    backup.set_defaults(func=cmd_backup)

    restore = sub.add_parser(
        "restore",
        help="restore a cluster from a backup or to a point in time (creates a PerconaServerMongoDBRestore)",
        description="Create a PerconaServerMongoDBRestore for the Percona operator to run, after checking it with "
        "the admission webhook's rules. --pitr without --backup starts from the newest ready Backup that fits. "
        "Exit codes as for backup.",
    )
    restore.add_argument("cluster", metavar="CLUSTER")
    restore.add_argument("-n", "--namespace", metavar="NS", help="namespace (default: the kubeconfig context's)")
    restore.add_argument("--backup", metavar="NAME", help="the PerconaServerMongoDBBackup to restore")
    restore.add_argument(
        "--pitr",
        type=pitr_target,
        metavar="'YYYY-MM-DD HH:MM:SS'|latest",
        help="point-in-time restore to this UTC time, or to the latest restorable time",
    )
    restore.add_argument("--name", help="the Restore's name (default: generated, CLUSTER-restore-xxxxx)")
    _wait_flags(restore)
    _api_flags(restore)
    restore.set_defaults(func=cmd_restore)


def _wait_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--wait", action="store_true", help="follow it until ready (exit 0) or error (exit 1)")
    p.add_argument(
        "--timeout",
        type=_timeout,
        metavar="SECONDS",
        help="with --wait: give up after this long (exit 1; the object is left running) (default: no limit)",
    )


def _namespace(args: argparse.Namespace) -> str:
    from .status import default_namespace

    return args.namespace or default_namespace(args.kubeconfig, args.context)


def cmd_status(args: argparse.Namespace) -> int:
    from .status import run
    from .watchdog_run import thresholds

    namespace = None if args.all_namespaces else _namespace(args)
    return run(
        args.kubeconfig,
        args.context,
        namespace,
        args.cluster,
        output=args.output,
        last=args.last,
        thresholds=thresholds(dict(args.watchdog_threshold or [])),
    )


def cmd_backup(args: argparse.Namespace) -> int:
    from . import ondemand

    req = ondemand.backup_request(
        args.kubeconfig,
        args.context,
        _namespace(args),
        args.cluster,
        storage=args.storage,
        type=args.type,
        compression=args.compression,
        level=args.compression_level,
        name=args.name,
        wait=args.wait,
        timeout=args.timeout,
    )
    return ondemand.run(req)


def cmd_restore(args: argparse.Namespace) -> int:
    from . import ondemand

    if not args.backup and not args.pitr:
        print("psmdb-backup restore: give --backup NAME, --pitr TIME|latest, or both", file=sys.stderr)
        return 2
    req = ondemand.restore_request(
        args.kubeconfig,
        args.context,
        _namespace(args),
        args.cluster,
        backup=args.backup,
        pitr=args.pitr,
        name=args.name,
        wait=args.wait,
        timeout=args.timeout,
    )
    return ondemand.run(req)


def add_schedules_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "schedules",
        help="move a cluster's spec.backup.tasks to PerconaServerMongoDBBackupSchedule objects and back",
        description="import: one schedule per enabled task of the cluster, created first; then the tasks are set "
        "enabled: false in one JSON Patch, so no slot fires twice. export: the cluster's schedules written back as "
        "tasks (enabled unless suspended), then the schedules deleted; their Backups stay. Warnings name every field "
        "that has no equivalent on the other side.",
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    for action, text in (
        ("import", "turn the cluster's enabled tasks into schedules and disable the tasks"),
        ("export", "turn the cluster's schedules into tasks and delete the schedules"),
    ):
        a = actions.add_parser(action, help=text, description=text)
        a.add_argument("cluster", metavar="CLUSTER", help="PerconaServerMongoDB name")
        a.add_argument("-n", "--namespace", help="the cluster's namespace (default: the kubeconfig context's)")
        a.add_argument("--kubeconfig", metavar="FILE", help="kubeconfig (default: $KUBECONFIG, ~/.kube/config)")
        a.add_argument("--context", help="kubeconfig context")
        a.add_argument("--dry-run", action="store_true", help="print what would be created, patched and deleted")
        a.add_argument(
            "-o",
            "--output",
            choices=["text", "yaml", "json"],
            default="text",
            help="yaml/json: print the schedules (import) or tasks (export) on stdout, messages on stderr",
        )
        a.set_defaults(func=cmd_schedules)


def cmd_schedules(args: argparse.Namespace) -> int:
    import asyncio

    from ..kube import CredentialsError, KubeError, new_api_client
    from .kubeapi import Kube
    from .status import default_namespace
    from .taskimport_run import Out, run_export, run_import

    ns = args.namespace or default_namespace(args.kubeconfig, args.context)
    out = Out(sys.stdout, sys.stderr, args.output)
    run = run_import if args.action == "import" else run_export

    async def main() -> int:
        api = await new_api_client(args.kubeconfig, args.context)
        try:
            return await run(Kube(api), ns, args.cluster, dry_run=args.dry_run, out=out)
        finally:
            await api.close()

    try:
        return asyncio.run(main())
    except (CredentialsError, KubeError, OSError) as exc:
        print(f"psmdb-backup schedules {args.action}: {exc}", file=sys.stderr)
        return 2
