"""Prometheus metrics of the admission server (one registry per app, so tests can run several)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from ..policy.failures import RULE_ERRORS_HELP, RULE_ERRORS_METRIC

PREFIX = "psmdb_backup_webhook"


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
        self.cert_expiry = Gauge(
            f"{PREFIX}_certificate_expiry_timestamp_seconds",
            "Unix time when the serving certificate expires",
            registry=r,
        )
