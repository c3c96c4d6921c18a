"""Prometheus metrics of the backup controller (one registry per controller, so tests can run several).

Names are part of the install's contract: manifests/observability (alerts, dashboard) use them, and a test scrapes a
running controller to check that every name used there is exported here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from ..policy.failures import RULE_ERRORS_HELP, RULE_ERRORS_METRIC

PREFIX = "psmdb_backup_controller"

BACKUP_STATES = ("", "waiting", "requested", "running", "ready", "error")
RESTORE_STATES = ("", "waiting", "requested", "rejected", "running", "ready", "error")


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.rule_errors = Counter(RULE_ERRORS_METRIC, RULE_ERRORS_HELP, ["rule"], registry=r)
        self.backups = Gauge(
            f"{PREFIX}_backups",
            'Backup objects of managed clusters by state (new backups have state="new")',
            ["namespace", "cluster", "state"],
            registry=r,
        )
        self.last_success = Gauge(
            f"{PREFIX}_task_last_success_timestamp_seconds",
            "Unix time when the newest ready backup of a task completed",
            ["namespace", "cluster", "task"],
            registry=r,
        )
        self.task_interval = Gauge(
            f"{PREFIX}_task_interval_seconds",
            "Seconds between the next two slots of a task's schedule (what 'overdue' means for its alert)",
            ["namespace", "cluster", "task"],
            registry=r,
        )
        self.task_next_slot = Gauge(
            f"{PREFIX}_task_next_slot_timestamp_seconds",
            "Unix time of a task's next slot",
            ["namespace", "cluster", "task"],
            registry=r,
        )
        self.scheduled = Counter(
            f"{PREFIX}_scheduled_backups_total",
            "Backups created for schedule slots",
            ["namespace", "cluster", "task"],
            registry=r,
        )
        self.missed_slots = Counter(
            f"{PREFIX}_missed_slots_total",
            "Schedule slots not run (controller down or past startingDeadlineSeconds); reported, never run",
            ["namespace", "cluster", "task"],
            registry=r,
        )
        self.schedule_errors = Gauge(
            f"{PREFIX}_task_schedule_error",
            "1 while a task's schedule does not parse (the last good schedule, if any, keeps running)",
            ["namespace", "cluster", "task"],
            registry=r,
        )
        self.slot_lag = Histogram(
            f"{PREFIX}_slot_to_backup_seconds",
            "From a slot's time to its Backup object being created",
            registry=r,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
        )
        self.retention_deletions = Counter(
            f"{PREFIX}_retention_deletions_total",
            "Backups deleted by retention",
            ["namespace", "cluster", "task"],
            registry=r,
        )
        self.restores = Gauge(
            f"{PREFIX}_restores",
            "Restore objects of managed clusters by state",
            ["namespace", "cluster", "state"],
            registry=r,
        )
        self.is_leader = Gauge(f"{PREFIX}_leader", "1 while this replica holds the leader Lease", registry=r)
        self.watch_restarts = Counter(
            f"{PREFIX}_watch_restarts_total",
            "Watches restarted, by resource and reason (expired = 410 Gone, error, closed)",
            ["resource", "reason"],
            registry=r,
        )
        self.watchdog_pass_seconds = Gauge(
            f"{PREFIX}_watchdog_pass_seconds", "Duration of the latest watchdog pass over every cluster", registry=r
        )
        self.watchdog_last_pass = Gauge(
            f"{PREFIX}_watchdog_last_pass_timestamp_seconds", "Unix time of the latest watchdog pass", registry=r
        )
        self.watchdog_events = Counter(
            f"{PREFIX}_watchdog_findings_total",
            "Watchdog findings evented (each once, when it first appears), by reason",
            ["reason"],
            registry=r,
        )
        self.watchdog_repairs = Counter(
            f"{PREFIX}_watchdog_repairs_total",
            "Watchdog repairs (--repair) by action (release-lease, mark-backup-error) and result (done, conflict, "
            "error)",
            ["action", "result"],
            registry=r,
        )
        self.reconcile_errors = Counter(
            f"{PREFIX}_reconcile_errors_total", "Reconcile passes that raised", ["kind"], registry=r
        )
