"""The stand-in's own metrics, beside the companion's (it runs on the companion's manager): its state machines'
transitions and durations and its PBM commands. The operator has its own; these are for looking into a test run."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from webhook.controller import metrics

PREFIX = "psmdb_operator_standin"


class Metrics(metrics.Metrics):
    def __post_init__(self) -> None:
        super().__post_init__()
        r = self.registry
        self.backup_transitions = Counter(
            f"{PREFIX}_backup_transitions_total",
            "Backup state changes made by the stand-in, by the state entered",
            ["namespace", "cluster", "state"],
            registry=r,
        )
        self.backup_duration = Histogram(
            f"{PREFIX}_backup_duration_seconds",
            "From the PBM start to ready or error",
            ["namespace", "cluster", "type", "outcome"],
            registry=r,
            buckets=(5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 43200),
        )
        self.restore_transitions = Counter(
            f"{PREFIX}_restore_transitions_total",
            "Restore state changes made by the stand-in, by the state entered",
            ["namespace", "cluster", "state"],
            registry=r,
        )
        self.pbm_commands = Counter(
            f"{PREFIX}_pbm_commands_total", "PBM commands run through the driver", ["command", "outcome"], registry=r
        )
        self.pbm_config_applies = Counter(
            f"{PREFIX}_pbm_config_applies_total",
            "PBM configuration applies",
            ["namespace", "cluster", "outcome"],
            registry=r,
        )
