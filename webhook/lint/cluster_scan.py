"""`psmdb-backup lint --cluster`: the PSMDB, Backup, Restore and BackupSchedule objects already in a cluster (see
webhook/scan.py), checked with the same rules and live cross-object lookups as the admission webhook; positions are `namespace/kind/name` + JSON path.
With `--report`, the scan is also written as policy reports (webhook/reporting.py)."""

from __future__ import annotations

from ..kube import KubeReader, new_api_client
from ..reporting import ReportWriter
from ..reports import APIS
from ..scan import Scanned, scan
from .report import LintReport, LocatedFinding


def _lint_report(scanned: list[Scanned]) -> LintReport:
    report = LintReport()
    for item in scanned:
        meta = item.obj.get("metadata") or {}
        where = f"{meta.get('namespace')}/{item.obj.get('kind')}/{meta.get('name')}"
        report.documents += 1
        report.checked += 1
        report.findings.extend(LocatedFinding(f, where, 0, 0, where) for f in item.findings)
    return report


async def lint_cluster(
    kubeconfig: str | None,
    context: str | None,
    namespace: str | None,
    disabled: frozenset[str] = frozenset(),
    timeout: float = 10.0,
    report_api: str | None = None,
) -> LintReport:
    """Scan, and with `report_api` (a key of webhook.reports.APIS) rewrite the policy reports of the scanned
    namespaces (all of them when `namespace` is None). Raises CredentialsError, KubeError and ReportsError with a
    message for the user."""
    api = await new_api_client(kubeconfig, context)
    try:
        scanned = await scan(KubeReader(api, timeout), namespace, disabled)
        if report_api is not None:
            await ReportWriter(api, APIS[report_api], timeout=timeout).rewrite(scanned, namespace)
    finally:
        await api.close()
    return _lint_report(scanned)
