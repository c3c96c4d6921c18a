"""The stand-in process: the companion's informers and work queue (webhook/controller/manager.py) with the operator's
reconcilers registered: clusters (PBM config, task cron, retention), Backups and Restores. One process, no leader
election and no HTTP server, as one operator pod."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Mapping
from typing import Any

from webhook.controller.kubeapi import Kube
from webhook.controller.kubeexec import KubeExec, PodRef
from webhook.controller.manager import Controller, Options
from webhook.controller.pbmread import ClusterRef
from webhook.kube import KubeReader, LiveLookup, load_api_client
from webhook.policy import kinds

from . import clusters
from .backups import BackupReconciler
from .metrics import Metrics
from .pbm import CliDriver
from .restores import RestoreReconciler
from .runtime import Ctx, Settings
from .tasks import TaskCron

log = logging.getLogger(__name__)

CLUSTER_RESYNC = 5.0  # seconds: the operator reconciles every cluster again this often (task entries, retention)


class Operator:
    def __init__(self, controller: Controller, ctx: Ctx) -> None:
        self.controller, self.ctx = controller, ctx
        self.backups = BackupReconciler(ctx)
        self.restores = RestoreReconciler(ctx)
        self.cron = TaskCron(ctx)
        controller.handle(kinds.CLUSTER, self.cluster)
        controller.handle(kinds.BACKUP, self.backups.reconcile)
        controller.handle(kinds.RESTORE, self.restores.reconcile)
        controller.on_change(self._changed)
        controller.background(self.cron.run)

    async def cluster(self, cluster: dict[str, Any]) -> float | None:
        tasks, error = self.cron.cluster_changed(cluster)
        if error:
            log.error("reconcile backup tasks of %s/%s: %s", *_key(cluster), error)
        await self.cron.retention(cluster, tasks)
        retry = await clusters.reconcile_cluster(self.ctx, cluster)
        return min(retry or CLUSTER_RESYNC, CLUSTER_RESYNC)

    def _changed(self, kind: str, obj: dict[str, Any], deleted: bool) -> None:
        if kind == kinds.BACKUP:
            self.cron.backup_changed(obj, deleted)
        if kind == kinds.CLUSTER:
            if not deleted:
                self._wake_waiting(*_key(obj))
        elif deleted or (obj.get("status") or {}).get("state") in ("ready", "error"):
            # a Backup or Restore that ends or goes may free its cluster's lock: wake the ones waiting for it
            self._wake_waiting(obj["metadata"].get("namespace", ""), (obj.get("spec") or {}).get("clusterName", ""))

    def _wake_waiting(self, namespace: str, cluster: str) -> None:
        for kind, store in ((kinds.BACKUP, self.ctx.backups), (kinds.RESTORE, self.ctx.restores)):
            for (ns, name), o in list(store.items()):
                if (
                    ns == namespace
                    and (o.get("spec") or {}).get("clusterName") == cluster
                    and (o.get("status") or {}).get("state", "") in ("", "waiting")
                ):
                    self.controller.enqueue(kind, ns, name)


def _key(obj: Mapping[str, Any]) -> tuple[str, str]:
    return obj["metadata"].get("namespace", ""), obj["metadata"].get("name", "")


def pod_resolver(ctx: Ctx) -> Any:
    """The pod the operator execs PBM in: `<cluster>-<first replset>-0`
    (OP v1.23.0@b15af500 pkg/controller/perconaservermongodbrestore/physical.go:45-332)."""

    def resolve(ref: ClusterRef) -> PodRef:
        cluster = ctx.clusters.get((ref.namespace, ref.name)) or {}
        replsets = (cluster.get("spec") or {}).get("replsets") or [{}]
        first = replsets[0].get("name") if isinstance(replsets[0], dict) else None
        return PodRef(ref.namespace, f"{ref.name}-{first or 'rs0'}-0")

    return resolve


async def main(opts: Options, settings: Settings, pbm_timeout: float = 60.0) -> int:
    api = await load_api_client(opts.kubeconfig, opts.context)
    if api is None:
        log.error("no cluster credentials: give --kubeconfig")
        return 2
    kube = Kube(api)
    execer = KubeExec.from_configuration(api.configuration)
    lookup = LiveLookup(KubeReader(api, timeout=5.0), ttl=2.0)
    ctx = Ctx(kube=kube, metrics=Metrics(), driver=None, lookup=lookup, settings=settings)  # type: ignore[arg-type]
    ctx.driver = CliDriver(execer, pod_resolver(ctx), timeout=pbm_timeout)
    controller = Controller(opts, ctx)
    Operator(controller, ctx)
    log.info(
        "operator stand-in started: namespaces %s, operator faults %s",
        opts.namespaces or "all",
        sorted(settings.faults) or "none",
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    run = asyncio.create_task(controller.run(None))
    stopper = asyncio.create_task(stop.wait())
    try:
        done, _ = await asyncio.wait({run, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if run in done and run.exception() is not None:
            raise run.exception()  # type: ignore[misc]
    finally:
        for t in (run, stopper):
            t.cancel()
        await asyncio.gather(run, stopper, return_exceptions=True)
        await execer.close()
        await api.close()
    log.info("operator stand-in stopped")
    return 0
