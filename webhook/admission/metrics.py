"""Prometheus metrics of the admission server (one registry per app, so tests can run several)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from ..policy import kinds
from ..policy.failures import RULE_ERRORS_HELP, RULE_ERRORS_METRIC

PREFIX = "psmdb_backup_webhook"
OTHER = "other"
# Label values come only from these sets: a request body must never mint a new series (each costs memory forever).
KNOWN_KINDS = frozenset((*kinds.CHECKED_KINDS, "Pod"))
KNOWN_OPERATIONS = frozenset(("CREATE", "UPDATE", "DELETE", "CONNECT"))


def kind_label(kind: object) -> str:
    return kind if kind in KNOWN_KINDS else OTHER


def operation_label(operation: object) -> str:
    return operation if operation in KNOWN_OPERATIONS else OTHER


def rule_label(code: object) -> str:
    from ..policy.failures import RULE_ERROR_CODE
    from ..policy.registry import RULES
    from ..policy.schema import SCHEMA_CODE, UNKNOWN_FIELD_CODE

    return code if code in RULES or code in (SCHEMA_CODE, UNKNOWN_FIELD_CODE, RULE_ERROR_CODE) else OTHER


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.requests = Counter(
            f"{PREFIX}_requests_total",
            "Admission requests by webhook, kind, operation and decision (allowed, denied, patched, invalid)",
            ["webhook", "kind", "operation", "decision"],
            registry=r,
        )
        self.latency = Histogram(
            f"{PREFIX}_request_duration_seconds",
            "Time to answer an admission request",
            ["webhook"],
            registry=r,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        self.findings = Counter(
            f"{PREFIX}_findings_total", "Findings reported by rule code and severity", ["rule", "severity"], registry=r
        )
        self.rule_errors = Counter(RULE_ERRORS_METRIC, RULE_ERRORS_HELP, ["rule"], registry=r)
        self.lookup_failures = Counter(
            f"{PREFIX}_lookup_failures_total",
            "Cross-object lookups that failed (API server unreachable, timeout, forbidden)",
            registry=r,
        )
        self.bad_requests = Counter(
            f"{PREFIX}_bad_requests_total", "Requests answered with HTTP 4xx", ["reason"], registry=r
        )
        self.connections_refused = Counter(
            f"{PREFIX}_connections_refused_total",
            "Connections closed at once because --max-connections were already open",
            registry=r,
        )
        self.connections_dropped = Counter(
            f"{PREFIX}_slow_connections_dropped_total",
            "Connections closed because a request's headers did not arrive within --header-timeout",
            registry=r,
        )
        self.connections_open = Gauge(f"{PREFIX}_connections_open", "Client connections open now", registry=r)
        self.cert_expiry = Gauge(
            f"{PREFIX}_certificate_expiry_timestamp_seconds",
            "Unix time when the serving certificate expires",
            registry=r,
        )
