"""Policy reports (pure): findings -> one `PolicyReport` (wgpolicyk8s.io/v1alpha2) or `Report` (openreports.io/v1alpha1)
per namespace, named `psmdb-backup-webhook`, one result per finding, the form Policy Reporter and Kyverno's tooling
read. The writers (webhook/reporting.py) only move these dicts to and from the API server.

Mapping (docs/integrations.md): severity error -> result `fail`, severity `high`; warning -> `warn`, `medium`;
info -> `pass`, `info` (an info finding is a note that does not fail the policy).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .findings import Finding, Severity
from .redaction import strip_userinfo

POLICY = SOURCE = REPORT_NAME = "psmdb-backup-webhook"
MANAGED_BY = {"app.kubernetes.io/managed-by": "psmdb-backup-webhook"}
CATEGORY = "PSMDB backups"

RESULT = {Severity.ERROR: "fail", Severity.WARNING: "warn", Severity.INFO: "pass"}
SEVERITY = {Severity.ERROR: "high", Severity.WARNING: "medium", Severity.INFO: "info"}
SUMMARY_KEYS = ("pass", "fail", "warn", "error", "skip")


@dataclass(frozen=True)
class ReportApi:
    """One report API: where its namespaced report kind lives."""

    name: str
    group: str
    version: str
    kind: str
    plural: str

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"

    def path(self, namespace: str | None, name: str | None = None) -> str:
        where = f"namespaces/{namespace}/" if namespace else ""
        return f"/apis/{self.api_version}/{where}{self.plural}" + (f"/{name}" if name else "")


APIS = {
    "wgpolicyk8s": ReportApi("wgpolicyk8s", "wgpolicyk8s.io", "v1alpha2", "PolicyReport", "policyreports"),
    "openreports": ReportApi("openreports", "openreports.io", "v1alpha1", "Report", "reports"),
}
DEFAULT_API = "wgpolicyk8s"


def resource_ref(obj: Mapping[str, Any]) -> dict[str, str]:
    """The object as a report result's `resources` entry (an ObjectReference)."""
    meta = obj.get("metadata") or {}
    ref = {
        "apiVersion": str(obj.get("apiVersion") or ""),
        "kind": str(obj.get("kind") or ""),
        "name": str(meta.get("name") or ""),
        "namespace": str(meta.get("namespace") or ""),
    }
    if meta.get("uid"):
        ref["uid"] = str(meta["uid"])
    return ref


def result_of(obj: Mapping[str, Any], finding: Finding, now: float) -> dict[str, Any]:
    hint = strip_userinfo(finding.hint)
    properties = {"hint": hint}
    if finding.path:
        properties["path"] = finding.path_str
    return {
        "source": SOURCE,
        "policy": POLICY,
        "rule": finding.code,
        "category": CATEGORY,
        "result": RESULT[finding.severity],
        "severity": SEVERITY[finding.severity],
        "scored": True,
        "timestamp": {"seconds": int(now), "nanos": 0},
        "resources": [resource_ref(obj)],
        "message": f"{strip_userinfo(finding.headline())} (fix: {hint})",
        "properties": properties,
    }


def results_of(obj: Mapping[str, Any], findings: Iterable[Finding], now: float) -> list[dict[str, Any]]:
    return [result_of(obj, f, now) for f in findings]


def _subject(result: Mapping[str, Any]) -> tuple[str, str]:
    res = (result.get("resources") or [{}])[0]
    return str(res.get("kind", "")), str(res.get("name", ""))


def _key(result: Mapping[str, Any]) -> tuple[str, ...]:
    """What makes two results the same finding (the timestamp and uid aside)."""
    return (*_subject(result), str(result.get("rule", "")), str(result.get("message", "")), str(result.get("result")))


def ordered(results: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(results, key=_key)


def keep_timestamps(new: list[dict[str, Any]], old: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """A finding already reported keeps the time it was first seen, so an unchanged scan rewrites nothing."""
    seen = {_key(r): r.get("timestamp") for r in old}
    return [{**r, "timestamp": seen[_key(r)]} if seen.get(_key(r)) else r for r in new]


def same_results(a: Iterable[Mapping[str, Any]], b: Iterable[Mapping[str, Any]]) -> bool:
    return sorted(map(_key, a)) == sorted(map(_key, b))


def replace_subject(
    results: Iterable[dict[str, Any]], obj: Mapping[str, Any], new: Iterable[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The report's results with those of `obj` (same kind and name) replaced by `new` (admission: one object)."""
    ref = resource_ref(obj)
    subject = (ref["kind"], ref["name"])
    return ordered([r for r in results if _subject(r) != subject] + list(new))


def summary(results: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    counts = dict.fromkeys(SUMMARY_KEYS, 0)
    for r in results:
        counts[str(r.get("result"))] = counts.get(str(r.get("result")), 0) + 1
    return counts


def build_report(api: ReportApi, namespace: str, results: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The whole report object of one namespace (without resourceVersion: the writer adds it on update)."""
    results = ordered(results)
    report: dict[str, Any] = {
        "apiVersion": api.api_version,
        "kind": api.kind,
        "metadata": {"name": REPORT_NAME, "namespace": namespace, "labels": dict(MANAGED_BY)},
        "summary": summary(results),
        "results": results,
    }
    if api.name == "openreports":
        report["source"] = SOURCE  # openreports.io has a report-level source besides the per-result one
    return report
