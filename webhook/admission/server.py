"""`psmdb-backup serve`: the validating and mutating webhooks over TLS, plus health and metrics endpoints."""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ..kube import KubeReader, LiveLookup, load_api_client
from ..policy import kinds
from ..policy.live import Enforcement, LookupFailure, decide, evaluate
from ..policy.nulls import prune_object
from ..redaction import clip, strip_userinfo
from ..reporting import BackgroundReports, ReportWriter
from ..reports import APIS
from . import review
from .connections import GuardedSite
from .metrics import Metrics, kind_label, operation_label, rule_label
from .mutate import DEFAULT_BACKUP_IMAGE, mutate_pod
from .validate import namespace_mode

log = logging.getLogger("psmdb_backup.admission")

MAX_BODY_BYTES = 3 * 1024 * 1024  # the API server limits objects to ~1.5 MiB; a review carries object + oldObject


@dataclass(frozen=True)
class Settings:
    listen_host: str = "127.0.0.1"
    listen_port: int = 8443
    tls_dir: str | None = None
    kubeconfig: str | None = None
    context: str | None = None
    no_cluster: bool = False
    enforcement: Enforcement = Enforcement.ENFORCE
    on_lookup_failure: LookupFailure = LookupFailure.DENY
    lookup_timeout: float = 2.0
    lookup_budget: float = 4.0  # all lookups of one request; the API server's timeoutSeconds is 5
    cache_ttl: float = 5.0
    read_timeout: float = 10.0
    max_body_bytes: int = MAX_BODY_BYTES
    default_backup_image: str = DEFAULT_BACKUP_IMAGE
    cert_check_interval: float = 10.0
    keepalive_timeout: float = 30.0
    header_timeout: float = 10.0
    max_connections: int = 1000
    report_api: str | None = None  # a key of webhook.reports.APIS; None: no policy reports
    report_interval: float = 600.0  # seconds between full scans rewriting the reports; 0: none


def _json_error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class AdmissionApp:
    reports: BackgroundReports | None = None  # policy reports of admitted objects (webhook/reporting.py)

    def __init__(self, settings: Settings, lookup: LiveLookup, metrics: Metrics | None = None) -> None:
        self.settings, self.lookup = settings, lookup
        self.metrics = metrics or Metrics()
        self.ready = False

    def build(self) -> web.Application:
        app = web.Application(client_max_size=self.settings.max_body_bytes, middlewares=[self._errors])
        app.router.add_post("/validate", self.validate)
        app.router.add_post("/mutate", self.mutate)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/readyz", self.readyz)
        app.router.add_get("/metrics", self.metrics_view)
        return app

    @web.middleware
    async def _errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Every failure becomes a JSON answer: 4xx for the client's mistakes, 500 only for our own bugs."""
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if exc.status >= 400:
                self.metrics.bad_requests.labels(reason=str(exc.status)).inc()
                return _json_error(
                    exc.status,
                    exc.reason
                    if exc.status != 413
                    else f"request body larger than {self.settings.max_body_bytes} bytes",
                )
            raise
        except Exception:
            log.exception("unexpected error answering %s", clip(request.path))
            return _json_error(500, "internal error; see the webhook's log")

    async def _review(self, request: web.Request) -> review.Request:
        if request.content_type not in ("application/json", ""):
            raise web.HTTPUnsupportedMediaType(reason="Content-Type must be application/json")
        try:
            async with asyncio.timeout(self.settings.read_timeout):  # no extra task per request, unlike wait_for
                body = await request.read()
        except TimeoutError:
            raise web.HTTPRequestTimeout(reason="request body not received in time") from None
        try:
            return review.parse(body)
        except review.BadReview as exc:
            self.metrics.bad_requests.labels(reason="bad_review").inc()
            raise web.HTTPBadRequest(reason=str(exc)) from None

    def _answer(
        self, webhook: str, req: review.Request, decision: str, started: float, body: dict[str, Any], **fields: Any
    ) -> web.Response:
        elapsed = time.perf_counter() - started
        self.metrics.requests.labels(webhook, kind_label(req.kind), operation_label(req.operation), decision).inc()
        self.metrics.latency.labels(webhook).observe(elapsed)
        kind, namespace, name = clip(req.kind), clip(req.namespace), clip(req.display_name)
        log.info(
            "%s %s %s/%s: %s",
            webhook,
            kind,
            namespace,
            name,
            decision,
            extra={
                "uid": clip(req.uid),
                "kind": kind,
                "operation": clip(req.operation),
                "namespace": namespace,
                "object": name,
                "decision": decision,
                "dry_run": req.dry_run,
                "duration_ms": round(elapsed * 1000, 2),
                **{k: clip(strip_userinfo(v)) if isinstance(v, str) else v for k, v in fields.items()},
            },
        )
        return web.Response(body=review.dumps(body), content_type="application/json")

    async def validate(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        req = await self._review(request)
        ours = req.kind in kinds.CHECKED_KINDS and req.group == kinds.group_of(req.kind)
        if not ours or req.operation not in ("CREATE", "UPDATE"):
            return self._answer(
                "validate",
                req,
                "allowed",
                started,
                review.response(req.uid, allowed=True),
                reason="not a PSMDB create or update",
            )
        if req.obj is None:
            return self._answer(
                "validate",
                req,
                "denied",
                started,
                review.response(
                    req.uid,
                    allowed=False,
                    code=400,
                    reason="BadRequest",
                    message="AdmissionReview request.object is missing or not an object",
                ),
            )
        # The API server drops nulls of non-nullable fields before it validates; lint prunes the same way, so a
        # `storages:` left empty means "no storages" here too (objects parsed for this request only, pruned in place).
        # Most objects have no null at all: then there is nothing to walk.
        if review.may_hold_nulls(req.obj):
            prune_object(req.obj)
        if req.old is not None and review.may_hold_nulls(req.old):
            prune_object(req.old)
        what = f"{req.kind} {req.namespace}/{clip(req.display_name)}"
        lookup = self.lookup.until(time.monotonic() + self.settings.lookup_budget)  # one budget for every read
        ns_ref = ("Namespace", "", req.namespace)
        ns_found = (await lookup.fetch([ns_ref]))[ns_ref]
        ns_error = getattr(ns_found, "error", None)
        mode = namespace_mode(getattr(ns_found, "obj", None), self.settings.enforcement)
        checked = await evaluate(req.obj, req.old if req.operation == "UPDATE" else None, lookup)
        decision = decide(checked, what=what, mode=mode, on_lookup_failure=self.settings.on_lookup_failure)
        for e in checked.rule_errors:
            self.metrics.rule_errors.labels(e.rule).inc()
        for f in decision.findings:
            self.metrics.findings.labels(rule_label(f.code), f.severity.label).inc()
        failures = decision.lookup_errors + ([ns_error] if ns_error else [])
        if failures:
            self.metrics.lookup_failures.inc(len(failures))
        if self.reports is not None and decision.allowed and not req.dry_run:
            self.reports.record(req.obj, req.namespace, decision.findings)  # in the background
        warnings = list(decision.warnings)
        if ns_error:  # the namespace's enforcement label is unknown: say so instead of silently using the default
            log.warning("%s; enforcement mode %s (the default) applies", clip(ns_error), mode.value)
            warnings.append(f"{ns_error}; its enforcement label could not be read, so mode {mode.value} applies")
        body = review.response(req.uid, allowed=decision.allowed, message=decision.message, code=422, warnings=warnings)
        return self._answer(
            "validate",
            req,
            "allowed" if decision.allowed else "denied",
            started,
            body,
            mode=mode.value,
            findings=[clip(f"{f.code} {f.path_str}") for f in decision.findings],
            lookup_errors=[clip(strip_userinfo(e)) for e in failures],
        )

    async def mutate(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        req = await self._review(request)
        if req.kind != "Pod" or req.group != "" or req.operation != "CREATE" or req.obj is None:
            return self._answer(
                "mutate", req, "allowed", started, review.response(req.uid, allowed=True), reason="not a pod create"
            )
        lookup = self.lookup.until(time.monotonic() + self.settings.lookup_budget)
        result = await mutate_pod(req.obj, req.namespace, lookup, default_image=self.settings.default_backup_image)
        body = review.response(req.uid, allowed=True, patch=result.patch, warnings=result.warnings)
        return self._answer(
            "mutate", req, "patched" if result.patch else "allowed", started, body, reason=result.reason
        )

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ready" if self.ready else "starting"}, status=200 if self.ready else 503)

    async def metrics_view(self, request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(self.metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})


async def serve(
    settings: Settings,
    *,
    started: asyncio.Event | None = None,
    stop: asyncio.Event | None = None,
    lookup: LiveLookup | None = None,
) -> None:
    """Run until SIGTERM/SIGINT (or `stop` is set). Starts without any cluster when none is configured; a given
    `lookup` replaces the API server (the admission benchmark serves its objects from memory)."""
    from ..certs.reload import CertReloader

    api = None
    if lookup is None:
        api = None if settings.no_cluster else await load_api_client(settings.kubeconfig, settings.context)
        lookup = LiveLookup(KubeReader(api, settings.lookup_timeout) if api else None, ttl=settings.cache_ttl)
    if settings.tls_dir is None:
        raise ValueError("--tls-dir is required: the API server only calls webhooks over HTTPS")
    reloader = CertReloader(settings.tls_dir)
    admission = AdmissionApp(settings, lookup)
    admission.metrics.cert_expiry.set(reloader.expiry.timestamp())
    runner = web.AppRunner(
        admission.build(),
        access_log=None,
        handle_signals=False,
        shutdown_timeout=5,
        keepalive_timeout=settings.keepalive_timeout,
    )
    await runner.setup()
    site = GuardedSite(
        runner,
        settings.listen_host,
        settings.listen_port,
        max_connections=settings.max_connections,
        header_timeout=settings.header_timeout,
        metrics=admission.metrics,
        ssl_context=reloader.context,
        reuse_address=True,
    )
    await site.start()
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # not the main thread (tests)
            pass

    def cert_reloaded(r: CertReloader) -> None:
        admission.metrics.cert_expiry.set(r.expiry.timestamp())

    watcher = asyncio.create_task(reloader.watch(settings.cert_check_interval, on_reload=cert_reloaded))
    if api is not None and settings.report_api:
        writer = ReportWriter(api, APIS[settings.report_api], timeout=max(settings.lookup_timeout, 10))
        admission.reports = BackgroundReports(writer, KubeReader(api, 30), settings.report_interval)
    scanner = asyncio.create_task(admission.reports.run(stop)) if admission.reports else None
    admission.ready = True
    log.info(
        "serving on https://%s:%s (enforcement %s, lookup failure policy %s, cluster %s)",
        settings.listen_host,
        settings.listen_port,
        settings.enforcement.value,
        settings.on_lookup_failure.value,
        "none" if lookup.reader is None else "connected",
    )
    if started:
        started.set()
    try:
        await stop.wait()
    finally:
        admission.ready = False
        watcher.cancel()
        if scanner is not None:
            scanner.cancel()
        await runner.cleanup()
        if admission.reports is not None:
            await admission.reports.close()
        if api is not None:
            await api.close()
