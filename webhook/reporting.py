"""Writing the policy reports (webhook/reports.py) to the API server: full rewrites from a scan (`lint --cluster
--report`, the server's background scan) and per-object updates (the admission webhook).

Every write is read-modify-write on the report's resourceVersion (a conflict is retried) and is skipped when the
results did not change, so several webhook replicas scanning at once write the same report at most once each: no
leader is needed. A result keeps the timestamp of the scan that first found it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping
from typing import Any

from kubernetes_asyncio import client

from .findings import Finding
from .kube import KubeError, KubeReader, call_json
from .reports import (
    MANAGED_BY,
    REPORT_NAME,
    ReportApi,
    build_report,
    keep_timestamps,
    replace_subject,
    results_of,
    same_results,
)
from .scan import Scanned, scan

log = logging.getLogger("psmdb_backup.reports")

Results = list[dict[str, Any]]
CONFLICT_RETRIES = 5
UNAVAILABLE_RECHECK = 10.0  # seconds before asking again whether a missing report CRD was installed


class ReportsError(Exception):
    """A report could not be written; the message says why and what to do."""


class ReportWriter:
    def __init__(
        self,
        api: client.ApiClient,
        report_api: ReportApi,
        *,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.api, self.report_api, self.timeout, self.clock = api, report_api, timeout, clock
        self._locks: dict[str, asyncio.Lock] = {}
        self._available_at: float | None = None  # monotonic time of the last "not installed" answer

    async def _request(
        self, method: str, path: str, body: Any = None, query: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        return await call_json(self.api, method, path, body, query=query, timeout=self.timeout)

    def _error(self, doing: str, exc: KubeError) -> ReportsError:
        kind = f"{self.report_api.kind} ({self.report_api.api_version})"
        if exc.status == 403:
            return ReportsError(
                f"{doing}: forbidden: the identity needs get, list, create and update on {self.report_api.plural}."
                f"{self.report_api.group} (manifests/base/rbac.yaml, ClusterRole psmdb-backup-webhook-reports)"
            )
        return ReportsError(f"{exc.about(doing)} ({kind})")

    async def check_available(self) -> None:
        """ReportsError unless the cluster serves the report kind (its CRD is installed); a negative answer is
        remembered for UNAVAILABLE_RECHECK seconds, so admission traffic does not ask again for every object."""
        api = self.report_api
        missing = ReportsError(
            f"the cluster does not serve {api.kind} ({api.api_version}): install its CRD (docs/integrations.md) "
            "or turn reports off"
        )
        if self._available_at is not None and time.monotonic() - self._available_at < UNAVAILABLE_RECHECK:
            raise missing
        try:
            found = await self._request("GET", f"/apis/{api.api_version}")
        except KubeError as exc:
            if not exc.not_found:
                raise self._error(f"cannot discover {api.api_version}", exc) from None
            found = {}
        if not any(r.get("name") == api.plural for r in found.get("resources") or []):
            self._available_at = time.monotonic()
            raise missing
        self._available_at = None

    async def _get(self, namespace: str) -> dict[str, Any] | None:
        try:
            return await self._request("GET", self.report_api.path(namespace, REPORT_NAME))
        except KubeError as exc:
            if exc.not_found:
                return None
            raise self._error(f"cannot read {namespace}/{REPORT_NAME}", exc) from None

    async def _write(self, namespace: str, change: Callable[[Results], Results]) -> bool:
        """Read the namespace's report, apply `change` to its results, write it back if they changed. True when it
        wrote. No report is created only to hold no results."""
        async with self._locks.setdefault(namespace, asyncio.Lock()):
            for _ in range(CONFLICT_RETRIES):
                current = await self._get(namespace)
                old: Results = list((current or {}).get("results") or [])
                new = keep_timestamps(change(old), old)
                if same_results(new, old) and (current is not None or not new):
                    return False
                body = build_report(self.report_api, namespace, new)
                try:
                    if current is None:
                        await self._request("POST", self.report_api.path(namespace), body)
                    else:
                        meta = current.get("metadata") or {}
                        body["metadata"]["labels"] = {**(meta.get("labels") or {}), **MANAGED_BY}
                        body["metadata"]["resourceVersion"] = meta.get("resourceVersion")
                        await self._request("PUT", self.report_api.path(namespace, REPORT_NAME), body)
                    return True
                except KubeError as exc:
                    if not exc.conflict:  # 409: written or created meanwhile; read again
                        raise self._error(f"cannot write {namespace}/{REPORT_NAME}", exc) from None
            raise ReportsError(
                f"cannot write {namespace}/{REPORT_NAME}: it kept changing ({CONFLICT_RETRIES} conflicts)"
            )

    async def _reported_namespaces(self, namespace: str | None) -> set[str]:
        selector = ",".join(f"{k}={v}" for k, v in MANAGED_BY.items())
        try:
            found = await self._request("GET", self.report_api.path(namespace), query={"labelSelector": selector})
        except KubeError as exc:
            raise self._error(f"cannot list {self.report_api.plural}", exc) from None
        items = found.get("items") or []
        return {i["metadata"]["namespace"] for i in items if i.get("metadata", {}).get("name") == REPORT_NAME}

    async def rewrite(self, scanned: Iterable[Scanned], namespace: str | None) -> list[str]:
        """Make the reports say exactly what a full scan of `namespace` (None: every namespace) found: results of
        deleted or fixed objects go, namespaces left without findings keep an empty report. Returns the namespaces
        whose report was written."""
        await self.check_available()
        now = self.clock()
        found: dict[str, Results] = {}
        for item in scanned:
            ns = str((item.obj.get("metadata") or {}).get("namespace") or "")
            found.setdefault(ns, []).extend(results_of(item.obj, item.findings, now))
        targets = {ns for ns, results in found.items() if results} | await self._reported_namespaces(namespace)
        written = []
        for ns in sorted(t for t in targets if namespace is None or t == namespace):
            results = found.get(ns, [])
            if await self._write(ns, lambda _old: results):  # noqa: B023 (awaited before the loop moves on)
                written.append(ns)
        return written

    async def record(self, obj: Mapping[str, Any], namespace: str, findings: Iterable[Finding]) -> bool:
        """Replace the results of one object (admitted just now) in its namespace's report."""
        await self.check_available()
        obj = {**obj, "metadata": {**(obj.get("metadata") or {}), "namespace": namespace}}
        results = results_of(obj, findings, self.clock())
        return await self._write(namespace, lambda old: replace_subject(old, obj, results))


class BackgroundReports:
    """The server's report writing: admitted objects recorded in background tasks (an admission answer never waits
    for a report), and a full scan every `interval` seconds (0: none) that removes what admission cannot see (deleted
    objects, objects changed while the webhook was down or by a rule's lookup target changing)."""

    MAX_PENDING = 256  # admission bursts beyond this are left to the next scan

    def __init__(self, writer: ReportWriter, reader: KubeReader, interval: float) -> None:
        self.writer, self.reader, self.interval = writer, reader, interval
        self._tasks: set[asyncio.Task[Any]] = set()
        self._last_error = ""

    def _failed(self, exc: Exception) -> None:
        text = str(exc) or type(exc).__name__
        # the same cause (e.g. the CRD not installed) is a warning once, then debug until something changes
        log.log(logging.DEBUG if text == self._last_error else logging.WARNING, "policy reports: %s", text)
        self._last_error = text

    async def _guard(self, work: Coroutine[Any, Any, Any]) -> None:
        try:
            await work
            self._last_error = ""
        except (ReportsError, KubeError, OSError, TimeoutError) as exc:
            self._failed(exc)

    def record(self, obj: Mapping[str, Any], namespace: str, findings: Iterable[Finding]) -> None:
        """Called by the admission handler for an admitted object: schedules the write and returns at once."""
        if len(self._tasks) >= self.MAX_PENDING:
            log.debug(
                "policy reports: %d writes pending, %s/%s left to the next scan",
                len(self._tasks),
                namespace,
                (obj.get("metadata") or {}).get("name"),
            )
            return
        task = asyncio.create_task(self._guard(self.writer.record(obj, namespace, list(findings))))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def scan_once(self) -> None:
        async def work() -> None:
            written = await self.writer.rewrite(await scan(self.reader, None), None)
            log.info("policy reports: scan done, %d report(s) written", len(written))

        await self._guard(work())

    async def run(self, stop: asyncio.Event) -> None:
        """Scan now and every `interval` seconds until `stop` is set."""
        if self.interval <= 0:
            return
        while not stop.is_set():
            await self.scan_once()
            try:
                await asyncio.wait_for(stop.wait(), self.interval)
            except TimeoutError:
                pass

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
