"""`psmdb-backup lint --cluster`: the PSMDB, Backup and Restore objects already in a cluster, checked with the same
rules and live cross-object lookups as the admission webhook; positions are `namespace/kind/name` + JSON path."""

from __future__ import annotations

from ..kube import KubeReader, LiveLookup, load_api_client
from ..policy import kinds
from ..policy.live import evaluate
from .report import LintReport, LocatedFinding


async def lint_cluster(
    kubeconfig: str | None,
    context: str | None,
    namespace: str | None,
    disabled: frozenset[str] = frozenset(),
    timeout: float = 10.0,
) -> LintReport:
    api = await load_api_client(kubeconfig, context)
    if api is None:
        raise ValueError("no cluster credentials: pass --kubeconfig, set KUBECONFIG, or run inside a cluster")
    report = LintReport()
    try:
        reader = KubeReader(api, timeout)
        lookup = LiveLookup(reader, ttl=60)
        for kind in kinds.KINDS:
            for obj in await reader.list(kind, namespace):
                meta = obj.get("metadata") or {}
                where = f"{meta.get('namespace')}/{kind}/{meta.get('name')}"
                report.documents += 1
                report.checked += 1
                checked = await evaluate(obj, None, lookup)
                for finding in checked.findings:
                    if finding.code not in disabled:
                        report.findings.append(LocatedFinding(finding, where, 0, 0, where))
    finally:
        await api.close()
    return report
