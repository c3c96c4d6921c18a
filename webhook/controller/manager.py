"""`psmdb-backup controller`: informers for the three PSMDB kinds, leader election, a keyed work queue for the
reconcilers, the schedule timer, and a small HTTP server for /metrics, /healthz and /readyz.

Only the leader acts (reconciles, schedules); every replica keeps its caches warm so a new leader starts at once. A
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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ..kube import KubeReader, LiveLookup, load_api_client
from ..policy import kinds
from .backups import BackupReconciler
from .clusters import reconcile_cluster
from .informer import Informer
from .kubeapi import API_VERSION, Kube, psmdb_path
from .kubeexec import KubeExec, PodRef
from .leases import LeaderElector, Leases
from .metrics import BACKUP_STATES, RESTORE_STATES, Metrics
from .pbm import CliDriver, ClusterRef, PBMDriver
from .restores import RestoreReconciler
from .runtime import Ctx, Settings
from .scheduler import Scheduler

log = logging.getLogger(__name__)

Key = tuple[str, str, str]  # kind, namespace, name


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
    pbm_timeout: float = 60.0
    settings: Settings = field(default_factory=Settings)


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
        self.scheduler = Scheduler(ctx)
        self.backups = BackupReconciler(ctx, on_terminal=self._backup_finished)
        self.restores = RestoreReconciler(ctx)
        self.queue = WorkQueue(self._handle, lambda key: ctx.metrics.reconcile_errors.labels(key[0]).inc())
        self.informers: list[Informer] = []
        self.acting = False
        namespaces: list[str | None] = [*opts.namespaces] or [None]
        for ns in namespaces:
            for kind in kinds.KINDS:
                selector = opts.cluster_selector if kind == kinds.CLUSTER else ""
                self.informers.append(
                    Informer(
                        ctx.kube,
                        kind,
                        psmdb_path(kind, ns),
                        self._changed,
                        label_selector=selector,
                        api_version=API_VERSION,
                        on_restart=functools.partial(self._watch_restarted, kind),
                    )
                )

    # ------------------------------------------------------------------ events from the informers

    def _watch_restarted(self, kind: str, reason: str) -> None:
        self.ctx.metrics.watch_restarts.labels(kind, reason).inc()

    def _changed(self, kind: str, obj: dict[str, Any], deleted: bool) -> None:
        ctx = self.ctx
        key = (obj["metadata"].get("namespace", ""), obj["metadata"].get("name", ""))
        store = ctx.store_for(kind)
        if deleted:
            store.pop(key, None)
        else:
            store[key] = obj
        if kind == kinds.CLUSTER:
            for c, message in self.scheduler.cluster_changed(obj, deleted):
                if self.acting:
                    asyncio.ensure_future(ctx.events.emit(c, "BackupScheduleInvalid", message, warning=True))
            if not deleted:
                self.queue.add((kind, *key))
            self._enqueue_cluster_work(key[0], key[1])
        elif deleted:  # a finished or deleted Backup/Restore may free the cluster's lock
            self._enqueue_cluster_work(key[0], (obj.get("spec") or {}).get("clusterName", ""))
        else:
            self.queue.add((kind, *key))
            if kind == kinds.BACKUP:
                self.scheduler.last_success(obj)  # also fills the metric from existing Backups at start-up
            if (obj.get("status") or {}).get("state") in ("ready", "error"):
                self._enqueue_cluster_work(key[0], (obj.get("spec") or {}).get("clusterName", ""))

    def _enqueue_cluster_work(self, namespace: str, cluster: str) -> None:
        """Backups and restores of a cluster that wait for something the cluster or its lock decides."""
        for kind, store in ((kinds.BACKUP, self.ctx.backups), (kinds.RESTORE, self.ctx.restores)):
            for (ns, name), o in list(store.items()):
                if (
                    ns == namespace
                    and (o.get("spec") or {}).get("clusterName") == cluster
                    and (o.get("status") or {}).get("state", "") in ("", "waiting")
                ):
                    self.queue.add((kind, ns, name))

    # ------------------------------------------------------------------ reconcile

    async def _handle(self, key: Key) -> float | None:
        kind, ns, name = key
        if not self.acting:
            return None  # re-queued for everyone when this replica becomes the leader
        obj = self.ctx.store_for(kind).get((ns, name))
        if obj is None:
            return None
        if kind == kinds.CLUSTER:
            return await reconcile_cluster(self.ctx, obj)
        if self.ctx.cluster_of(obj) is None and await self._foreign_cluster(obj):
            return None
        if kind == kinds.BACKUP:
            return await self.backups.reconcile(obj)
        return await self.restores.reconcile(obj)

    async def _foreign_cluster(self, obj: dict[str, Any]) -> bool:
        """A Backup/Restore whose cluster exists but is not selected (label selector): not ours to touch."""
        if not self.opts.cluster_selector:
            return False
        name = (obj.get("spec") or {}).get("clusterName")
        if not name:
            return False
        return await self.ctx.kube.get(psmdb_path(kinds.CLUSTER, obj["metadata"]["namespace"], name)) is not None

    async def _backup_finished(self, backup: dict[str, Any]) -> None:
        self.scheduler.last_success(backup)
        cluster = self.ctx.cluster_of(backup)
        if cluster is not None and (backup.get("status") or {}).get("state") == "ready":
            await self.scheduler.retention(cluster)

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
                counts[(ns, cluster, (o.get("status") or {}).get("state") or "new")] = (
                    counts.get((ns, cluster, (o.get("status") or {}).get("state") or "new"), 0) + 1
                )
            gauge.clear()
            for labels, n in counts.items():
                gauge.labels(*labels).set(n)

    async def _gauges(self) -> None:
        while True:
            self._update_gauges()
            await asyncio.sleep(5)

    def http_app(self) -> web.Application:
        async def metrics(_: web.Request) -> web.Response:
            self._update_gauges()
            return web.Response(
                body=generate_latest(self.ctx.metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
            )

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
        tasks.append(asyncio.create_task(self._gauges(), name="gauges"))
        try:
            if elector is not None:
                tasks.append(asyncio.create_task(elector.run(), name="leader-election"))
                await elector.leading.wait()
            await asyncio.gather(*(i.synced.wait() for i in self.informers))
            self.ctx.metrics.is_leader.set(1)
            self.scheduler.refresh()
            self.acting = True
            log.info(
                "acting: %d clusters, %d backups, %d restores, %d scheduled tasks",
                len(self.ctx.clusters),
                len(self.ctx.backups),
                len(self.ctx.restores),
                len(self.scheduler.tasks),
            )
            for kind in kinds.KINDS:
                for ns, name in list(self.ctx.store_for(kind)):
                    self.queue.add((kind, ns, name))
            tasks += [asyncio.create_task(self.queue.worker(), name=f"worker-{n}") for n in range(self.opts.workers)]
            tasks.append(asyncio.create_task(self.scheduler.run(), name="scheduler"))
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


def _pod_resolver(ctx: Ctx) -> Callable[[ClusterRef], PodRef]:
    """The pod the operator execs PBM in: `<cluster>-<first replset>-0` (facts §9.1)."""

    def resolve(ref: ClusterRef) -> PodRef:
        cluster = ctx.clusters.get((ref.namespace, ref.name)) or {}
        replsets = (cluster.get("spec") or {}).get("replsets") or [{}]
        first = replsets[0].get("name") if isinstance(replsets[0], dict) else None
        return PodRef(ref.namespace, f"{ref.name}-{first or 'rs0'}-0")

    return resolve


async def main(opts: Options, driver: PBMDriver | None = None) -> int:
    api = await load_api_client(opts.kubeconfig, opts.context)
    if api is None:
        log.error("no cluster credentials: give --kubeconfig or run in a pod with a service account")
        return 2
    kube = Kube(api)
    execer = KubeExec.from_configuration(api.configuration)
    lookup = LiveLookup(KubeReader(api, timeout=5.0), ttl=2.0)
    ctx = Ctx(
        kube=kube,
        driver=driver or CliDriver(execer, timeout=opts.pbm_timeout),
        lookup=lookup,
        settings=opts.settings,
        metrics=Metrics(),
    )
    if driver is None:
        ctx.driver = CliDriver(execer, _pod_resolver(ctx), timeout=opts.pbm_timeout)
    controller = Controller(opts, ctx)
    identity = opts.identity or f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}"
    elector = (
        LeaderElector(
            Leases(kube),
            opts.lease_namespace,
            opts.lease_name,
            identity,
            duration=opts.lease_duration,
            renew_deadline=opts.lease_duration * 2 / 3,
            retry=max(1.0, opts.lease_duration / 7),
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
        await execer.close()
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
