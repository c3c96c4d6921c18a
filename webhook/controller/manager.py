"""`psmdb-backup controller`, the companion of the stock Percona operator: informers for the PSMDB kinds, leader
election, a keyed work queue for the reconcilers registered here, and a small HTTP server for /metrics, /healthz and
/readyz. It writes only Kubernetes objects; the operator runs every Backup and Restore through PBM.

Reconcilers plug in with `Controller.handle(kind, handler)` (one per kind; it gets the cached object and returns the
seconds until its next pass, or None), `Controller.on_change(callback)` (every cache change, on every replica) and
`Controller.every(seconds, tick)` (a periodic pass while leading) and `Controller.background(loop)` (a coroutine that
runs while leading, e.g. a timer).

Only the leader acts (reconciles, ticks); every replica keeps its caches warm so a new leader starts at once. A
leader that cannot renew its Lease exits, as client-go's default does, rather than risk acting beside the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import signal
import socket
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from ..kube import load_api_client
from ..policy import kinds
from . import schedules
from .informer import Informer, OnChange
from .kubeapi import API_VERSION, Kube, psmdb_path
from .leases import LeaderElector, Leases
from .metrics import BACKUP_STATES, RESTORE_STATES, Metrics
from .runtime import Ctx

log = logging.getLogger(__name__)

Key = tuple[str, str, str]  # kind, namespace, name
Handler = Callable[[dict[str, Any]], Awaitable[float | None]]


@dataclass
class Options:
    kubeconfig: str | None = None
    context: str | None = None
    namespaces: list[str] = field(default_factory=list)  # empty: every namespace
    cluster_selector: str = ""
    leader_elect: bool = True
    lease_name: str = "psmdb-backup-controller"
    lease_namespace: str = "default"
    lease_duration: int = 15
    identity: str = ""
    metrics_listen: tuple[str, int] = ("0.0.0.0", 8080)
    workers: int = 8
    watchdog_interval: float = 30.0  # seconds between watchdog passes (watchdog_run.py)
    repair: bool = False  # --repair: the watchdog repairs every cluster (else only those annotated)
    pbm_reads: bool = False  # --pbm-reads: read-only pbm status/describe-backup/list in backup-agent (pods/exec)
    watchdog_thresholds: dict[str, float] = field(default_factory=dict)  # --watchdog-threshold NAME=SECONDS


class WorkQueue:
    """Each key is handled by one worker at a time; a key added while in flight runs once more afterwards; a
    handler's return value (seconds) re-adds the key later. Failures back off per key, up to 5 minutes."""

    def __init__(self, handler: Callable[[Key], Awaitable[float | None]], on_error: Callable[[Key], None]) -> None:
        self.handler, self.on_error = handler, on_error
        self.queue: asyncio.Queue[Key] = asyncio.Queue()
        self.pending: set[Key] = set()
        self.in_flight: set[Key] = set()
        self.dirty: set[Key] = set()
        self.timers: dict[Key, asyncio.TimerHandle] = {}
        self.failures: dict[Key, int] = {}

    def add(self, key: Key, delay: float = 0.0) -> None:
        if delay > 0:
            loop = asyncio.get_running_loop()
            old = self.timers.get(key)
            if old is not None and old.when() <= loop.time() + delay:
                return
            if old is not None:
                old.cancel()
            self.timers[key] = loop.call_later(delay, self._fire, key)
            return
        if key in self.in_flight:
            self.dirty.add(key)
        elif key not in self.pending:
            self.pending.add(key)
            self.queue.put_nowait(key)

    def _fire(self, key: Key) -> None:
        self.timers.pop(key, None)
        self.add(key)

    async def worker(self) -> None:
        while True:
            key = await self.queue.get()
            self.pending.discard(key)
            self.in_flight.add(key)
            delay: float | None = None
            try:
                delay = await self.handler(key)
                self.failures.pop(key, None)
            except asyncio.CancelledError:
                raise
            except Exception:
                n = self.failures[key] = self.failures.get(key, 0) + 1
                delay = min(300.0, 0.5 * 2 ** min(n, 10))
                log.exception("reconcile of %s %s/%s failed (attempt %d); retrying in %.1fs", *key, n, delay)
                self.on_error(key)
            finally:
                self.in_flight.discard(key)
            if key in self.dirty:
                self.dirty.discard(key)
                self.add(key)
            elif delay:
                self.add(key, delay)


class Controller:
    def __init__(self, opts: Options, ctx: Ctx) -> None:
        self.opts, self.ctx = opts, ctx
        self.queue = WorkQueue(self._handle, lambda key: ctx.metrics.reconcile_errors.labels(key[0]).inc())
        self.informers: list[Informer] = []
        self.handlers: dict[str, Handler] = {}
        self.callbacks: list[OnChange] = []
        self.loops: list[Callable[[], Coroutine[Any, Any, None]]] = []
        self.leader_registries: list[CollectorRegistry] = []
        self.acting = False
        for kind in kinds.KINDS:
            selector = opts.cluster_selector if kind == kinds.CLUSTER else ""
            self.watch(kind, functools.partial(psmdb_path, kind), API_VERSION, selector)

    # ------------------------------------------------------------------ registration

    def watch(self, kind: str, path: Callable[[str | None], str], api_version: str, selector: str = "") -> None:
        """Keep `ctx.store_for(kind)` filled from the collection `path(namespace)` of every watched namespace."""
        namespaces: list[str | None] = [*self.opts.namespaces] or [None]
        for ns in namespaces:
            self.informers.append(
                Informer(
                    self.ctx.kube,
                    kind,
                    path(ns),
                    self._changed,
                    label_selector=selector,
                    api_version=api_version,
                    on_restart=functools.partial(self._watch_restarted, kind),
                )
            )

    def handle(self, kind: str, handler: Handler) -> None:
        """`handler(obj)` reconciles every `kind` object that changes (and all of them when this replica starts
        leading); its return value re-queues the object after that many seconds."""
        if kind in self.handlers:
            raise ValueError(f"a handler for {kind} is already registered")
        self.handlers[kind] = handler

    def on_change(self, callback: OnChange) -> None:
        """`callback(kind, obj, deleted)` after every cache change, on every replica (e.g. to keep an index)."""
        self.callbacks.append(callback)

    def every(self, seconds: float, tick: Callable[[], Awaitable[None]]) -> None:
        """`tick()` every `seconds` while this replica leads; an exception is logged and the next tick runs."""
        self.loops.append(functools.partial(self._tick, seconds, tick))

    def background(self, loop: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """`loop()` runs while this replica leads (cancelled when it stops leading)."""
        self.loops.append(loop)

    def serve_metrics(self, registry: CollectorRegistry) -> None:
        """Serve `registry` on /metrics next to the controller's own, only while this replica leads: a standby has
        no passes of its own, and must not export a former leader's stale values."""
        self.leader_registries.append(registry)

    def enqueue(self, kind: str, namespace: str, name: str, delay: float = 0.0) -> None:
        if kind in self.handlers:
            self.queue.add((kind, namespace, name), delay)

    # ------------------------------------------------------------------ events from the informers

    def _watch_restarted(self, kind: str, reason: str) -> None:
        self.ctx.metrics.watch_restarts.labels(kind, reason).inc()

    def _changed(self, kind: str, obj: dict[str, Any], deleted: bool) -> None:
        key = (obj["metadata"].get("namespace", ""), obj["metadata"].get("name", ""))
        store = self.ctx.store_for(kind)
        if deleted:
            store.pop(key, None)
        else:
            store[key] = obj
        for callback in self.callbacks:
            callback(kind, obj, deleted)
        if not deleted:
            self.enqueue(kind, *key)

    async def _handle(self, key: Key) -> float | None:
        kind, ns, name = key
        if not self.acting:
            return None  # re-queued for everyone when this replica becomes the leader
        obj = self.ctx.store_for(kind).get((ns, name))
        handler = self.handlers.get(kind)
        if obj is None or handler is None:
            return None
        return await handler(obj)

    async def _tick(self, seconds: float, tick: Callable[[], Awaitable[None]]) -> None:
        while True:
            try:
                await tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("periodic %s failed", getattr(tick, "__qualname__", tick))
                self.ctx.metrics.reconcile_errors.labels("tick").inc()
            await asyncio.sleep(seconds)

    # ------------------------------------------------------------------ gauges and HTTP

    def _update_gauges(self) -> None:
        m = self.ctx.metrics
        for gauge, store, states in (
            (m.backups, self.ctx.backups, BACKUP_STATES),
            (m.restores, self.ctx.restores, RESTORE_STATES),
        ):
            counts: dict[tuple[str, str, str], int] = {}
            for (ns, _), o in store.items():
                cluster = (o.get("spec") or {}).get("clusterName", "")
                if (ns, cluster) not in self.ctx.clusters:
                    continue
                for s in states:
                    counts.setdefault((ns, cluster, s or "new"), 0)
                state = (o.get("status") or {}).get("state") or "new"
                counts[(ns, cluster, state)] = counts.get((ns, cluster, state), 0) + 1
            gauge.clear()
            for labels, n in counts.items():
                gauge.labels(*labels).set(n)

    def http_app(self) -> web.Application:
        async def metrics(_: web.Request) -> web.Response:
            self._update_gauges()
            body = generate_latest(self.ctx.metrics.registry)
            if self.acting:
                body += b"".join(generate_latest(r) for r in self.leader_registries)
            return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

        async def healthz(_: web.Request) -> web.Response:
            return web.Response(text="ok")

        async def readyz(_: web.Request) -> web.Response:
            synced = all(i.synced.is_set() for i in self.informers)
            return web.Response(text="ok" if synced else "caches not synced", status=200 if synced else 503)

        app = web.Application()
        app.router.add_get("/metrics", metrics)
        app.router.add_get("/healthz", healthz)
        app.router.add_get("/readyz", readyz)
        return app

    # ------------------------------------------------------------------ main loop

    async def run(self, elector: LeaderElector | None) -> None:
        tasks = [asyncio.create_task(i.run(), name=f"informer-{i.kind}") for i in self.informers]
        tasks.append(asyncio.create_task(self.ctx.events.run(), name="events"))  # Events off the reconcile path
        try:
            if elector is not None:
                tasks.append(asyncio.create_task(elector.run(), name="leader-election"))
                await elector.leading.wait()
            await asyncio.gather(*(i.synced.wait() for i in self.informers))
            self.ctx.metrics.is_leader.set(1)
            self.acting = True
            log.info(
                "acting: %d clusters, %d backups, %d restores",
                len(self.ctx.clusters),
                len(self.ctx.backups),
                len(self.ctx.restores),
            )
            for kind in self.handlers:
                for ns, name in list(self.ctx.store_for(kind)):
                    self.queue.add((kind, ns, name))
            tasks += [asyncio.create_task(self.queue.worker(), name=f"worker-{n}") for n in range(self.opts.workers)]
            tasks += [asyncio.create_task(loop(), name=f"loop-{n}") for n, loop in enumerate(self.loops)]
            if elector is not None:
                await elector.lost.wait()
                raise SystemExit("lost the leader lease; exiting so that only the new leader acts")
            await asyncio.Event().wait()
        finally:
            self.acting = False
            self.ctx.metrics.is_leader.set(0)
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


# The companion's reconcilers: each one is a `register(controller)` that calls `controller.watch`, `handle`,
# `on_change` and `every`; `main` runs them all on start.
RECONCILERS: list[Callable[[Controller], None]] = [schedules.register]


async def main(opts: Options, reconcilers: Sequence[Callable[[Controller], None]] | None = None) -> int:
    """Run the controller with `reconcilers` (default RECONCILERS); the CLI adds those that import this module."""
    api = await load_api_client(opts.kubeconfig, opts.context)
    if api is None:
        log.error("no cluster credentials: give --kubeconfig or run in a pod with a service account")
        return 2
    kube = Kube(api)
    ctx = Ctx(kube=kube, metrics=Metrics())
    controller = Controller(opts, ctx)
    # our schedule kind (its CRD is part of the install); not in Controller(), which the operator stand-in reuses
    controller.watch(kinds.SCHEDULE, functools.partial(psmdb_path, kinds.SCHEDULE), kinds.api_version(kinds.SCHEDULE))
    for register in RECONCILERS if reconcilers is None else reconcilers:
        register(controller)
    identity = opts.identity or f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}"
    elector = (
        LeaderElector(
            Leases(kube),
            opts.lease_namespace,
            opts.lease_name,
            identity,
            duration=opts.lease_duration,
            renew_deadline=opts.lease_duration * 2 / 3,
            retry=min(max(1.0, opts.lease_duration / 7), opts.lease_duration / 3),  # below the renew deadline
        )
        if opts.leader_elect
        else None
    )
    runner = web.AppRunner(controller.http_app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, *opts.metrics_listen)
    await site.start()
    log.info(
        "psmdb-backup controller %s started: namespaces %s, cluster selector %r, metrics on %s:%d",
        identity,
        opts.namespaces or "all",
        opts.cluster_selector,
        *opts.metrics_listen,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    main_task = asyncio.create_task(controller.run(elector))
    stopper = asyncio.create_task(stop.wait())
    code = 0
    try:
        done, _ = await asyncio.wait({main_task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if main_task in done:
            exc = main_task.exception()
            if isinstance(exc, SystemExit):
                log.error("%s", exc)
                code = 1
            elif exc is not None:
                raise exc
    finally:
        main_task.cancel()
        stopper.cancel()
        await asyncio.gather(main_task, stopper, return_exceptions=True)
        if elector is not None and code == 0:
            await elector.release()
        await runner.cleanup()
        await api.close()
    log.info("psmdb-backup controller stopped")
    return code


def default_lease_namespace() -> str:
    env = os.environ.get("POD_NAMESPACE")
    if env:
        return env
    try:
        with open("/var/run/secrets/kubernetes.io/serviceaccount/namespace") as f:
            return f.read().strip() or "default"
    except OSError:
        return "default"
