"""The watchdog's passes (detections in watchdog.py, SLO samples in slo.py): every `--watchdog-interval` seconds, while
this replica leads, each cluster with backups enabled is built into a `watchdog.Snapshot` from the informer caches
(clusters, Backups, Restores, schedules when their informer runs, lock Leases), optionally with read-only PBM reads
(`--pbm-reads`), and judged. A finding is logged and evented once, when it first appears (again only after it went
away); the SLO gauges are replaced every pass and served only while this replica leads. Repairs are made only with
`--repair` or the cluster's opt-in annotation, each with a resourceVersion precondition.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ..policy import kinds
from . import slo
from . import watchdog as wd
from .kubeapi import KubeError, lease_path, psmdb_path
from .kubeexec import Exec, KubeExec, PodRef
from .leases import lock_name
from .manager import Controller
from .pbmread import ClusterRef, PBMError, PBMReader
from .runtime import Ctx, rfc3339
from .slo_metrics import SloMetrics

log = logging.getLogger(__name__)

LEASE = "Lease"
LEASE_API = "coordination.k8s.io/v1"
FindingKey = tuple[str, str, str, str, str, str]
EVENTS_AT_ONCE = 16


@dataclass
class Settings:
    interval: float = 30.0
    repair: bool = False  # every cluster; else only clusters annotated wd.REPAIR_ANNOTATION=true
    pbm_reads: bool = False
    thresholds: wd.Thresholds = field(default_factory=wd.Thresholds)


def leases_path(namespace: str | None) -> str:
    return lease_path(namespace) if namespace else "/apis/coordination.k8s.io/v1/leases"


def finding_key(f: wd.WatchdogFinding) -> FindingKey:
    """What makes a finding "the same" across passes: a missed or unfinished slot is new once a later slot is
    involved; a Backup whose state or PBM status changed is a new finding."""
    slot = rfc3339(f.slots[-1]) if f.slots else ""
    return (f.code, f.ref.kind, f.ref.namespace, f.ref.name, f.ancestor, f"{slot}|{f.state}|{f.pbm_status}")


def backups_enabled(cluster: Mapping[str, Any]) -> bool:
    return ((cluster.get("spec") or {}).get("backup") or {}).get("enabled") is True


Grouped = dict[tuple[str, str], list[dict[str, Any]]]


def by_cluster(objs: Iterable[dict[str, Any]]) -> Grouped:
    """Objects by (namespace, spec.clusterName): one scan per pass instead of one per cluster."""
    out: Grouped = {}
    for o in objs:
        key = ((o.get("metadata") or {}).get("namespace", ""), str((o.get("spec") or {}).get("clusterName") or ""))
        out.setdefault(key, []).append(o)
    return out


@dataclass(frozen=True)
class ByCluster:
    backups: Grouped
    restores: Grouped
    schedules: Grouped

    @classmethod
    def of(cls, ctx: Ctx) -> ByCluster:
        return cls(
            by_cluster(ctx.backups.values()),
            by_cluster(ctx.restores.values()),
            by_cluster(ctx.store_for(kinds.SCHEDULE).values()),
        )


class SeenSince:
    """When this process first saw each ancestor (task or schedule) with its current schedule text, so that a task
    added or rescheduled a minute ago is not judged over the whole look-back window. At the first pass nothing is
    known: an ancestor with Backups is bounded by its oldest one (in detect()); one without any starts now."""

    def __init__(self) -> None:
        self.known: dict[tuple[str, str, str], tuple[str, datetime | None]] = {}
        self.first_pass = True

    def update(self, snapshot: wd.Snapshot, now: datetime) -> dict[str, datetime]:
        ref = wd.ref_of(wd.CLUSTER_KIND, snapshot.cluster)
        with_backups = {wd.ancestor_of(b) for b in snapshot.backups}
        out: dict[str, datetime] = {}
        for exp in wd.expected(snapshot):
            key = (ref.namespace, ref.name, exp.ancestor)
            old = self.known.get(key)
            if old is None or old[0] != exp.expr:
                since = None if old is None and self.first_pass and exp.ancestor in with_backups else now
                self.known[key] = old = (exp.expr, since)
            if old[1] is not None:
                out[exp.ancestor] = old[1]
        return out

    def end_pass(self, alive: Iterable[tuple[str, str]]) -> None:
        self.first_pass = False
        keep = set(alive)
        self.known = {k: v for k, v in self.known.items() if k[:2] in keep}


def needs_pbm(cluster: Mapping[str, Any], backups: Iterable[Mapping[str, Any]]) -> bool:
    """Exec only where PBM can change a finding or a gauge: a Backup PBM runs, or PITR's window."""
    pitr = ((cluster.get("spec") or {}).get("backup") or {}).get("pitr") or {}
    return pitr.get("enabled") is True or any(wd.state_of(b) in ("requested", "running") for b in backups)


class PbmViews:
    """`--pbm-reads`: what read-only PBM says about each cluster, read in its first pod's backup-agent container
    (pbmread.PBMReader refuses anything but reads). A cluster whose PBM cannot be read is left out (logged): its
    findings then come from the Kubernetes objects alone."""

    def __init__(self, exec: Exec, clusters: Mapping[tuple[str, str], dict[str, Any]], *, parallel: int = 8) -> None:
        self.clusters = clusters
        self.reader = PBMReader(exec, self._pod, timeout=20.0)
        self.parallel = asyncio.Semaphore(parallel)

    def _pod(self, ref: ClusterRef) -> PodRef:
        """`<cluster>-<first replset>-0`, the pod the operator execs PBM in
        (OP v1.23.0@b15af500 pkg/controller/perconaservermongodbrestore/physical.go:45-332)."""
        replsets = ((self.clusters.get((ref.namespace, ref.name)) or {}).get("spec") or {}).get("replsets") or [{}]
        first = replsets[0].get("name") if isinstance(replsets[0], Mapping) else None
        return PodRef(ref.namespace, f"{ref.name}-{first or 'rs0'}-0")

    async def view(self, cluster: Mapping[str, Any], backups: Iterable[Mapping[str, Any]]) -> wd.PbmView:
        ref = ClusterRef(cluster["metadata"]["namespace"], cluster["metadata"]["name"])
        status = await self.reader.status(ref)
        pitr = ((cluster.get("spec") or {}).get("backup") or {}).get("pitr") or {}
        latest = await self.reader.pitr_latest(ref) if pitr.get("enabled") is True else None
        view = wd.PbmView.from_status(status, latest)
        found = dict(view.backups)
        for b in backups:  # a Backup PBM's status did not list (it lists the newest few): ask for it by name
            name = str((b.get("status") or {}).get("pbmName") or "")
            if name and name not in found and wd.state_of(b) in ("requested", "running"):
                info = await self.reader.backup_status(ref, name)
                if info is not None:
                    found[name] = wd.PbmBackup(name, info.status, info.error or "")
        return wd.PbmView(found, latest)

    async def read(
        self, clusters: list[dict[str, Any]], backups: Mapping[tuple[str, str], list[dict[str, Any]]]
    ) -> dict[tuple[str, str], wd.PbmView]:
        """Per cluster (namespace, name); `backups` grouped the same way."""

        async def one(c: dict[str, Any]) -> tuple[tuple[str, str], wd.PbmView | None]:
            key = (c["metadata"]["namespace"], c["metadata"]["name"])
            mine = backups.get(key, [])
            if not needs_pbm(c, mine):
                return key, None
            async with self.parallel:
                try:
                    return key, await self.view(c, mine)
                except PBMError as e:
                    log.warning("watchdog: PBM reads of %s/%s failed: %s", *key, e.message)
                    return key, None

        out = await asyncio.gather(*(one(c) for c in clusters))
        return {k: v for k, v in out if v is not None}


class Watchdog:
    def __init__(self, controller: Controller, settings: Settings, pbm: PbmViews | None = None) -> None:
        self.controller, self.ctx, self.settings = controller, controller.ctx, settings
        self.pbm = pbm
        self.slo = SloMetrics()
        self.seen = SeenSince()
        self.reported: set[FindingKey] = set()
        controller.watch(LEASE, leases_path, LEASE_API)
        controller.serve_metrics(self.slo.registry)
        controller.every(settings.interval, self.run_pass)

    # ------------------------------------------------------------------ one pass

    def snapshot(
        self, cluster: Mapping[str, Any], objs: ByCluster, pbm: wd.PbmView | None, now: datetime
    ) -> wd.Snapshot:
        ns, name = cluster["metadata"].get("namespace", ""), cluster["metadata"].get("name", "")
        snap = wd.Snapshot(
            cluster,
            backups=objs.backups.get((ns, name), []),
            restores=objs.restores.get((ns, name), []),
            lease=self.ctx.store_for(LEASE).get((ns, lock_name(name))),
            schedules=objs.schedules.get((ns, name), []),
            pbm=pbm,
        )
        return dataclasses.replace(snap, seen_since=self.seen.update(snap, now))

    async def run_pass(self) -> None:
        t0 = time.monotonic()
        now = self.ctx.clock()
        clusters = [c for c in self.ctx.clusters.values() if backups_enabled(c)]
        objs = ByCluster.of(self.ctx)
        views: dict[tuple[str, str], wd.PbmView] = await self.pbm.read(clusters, objs.backups) if self.pbm else {}
        findings: list[wd.WatchdogFinding] = []
        for cluster in clusters:
            key = (cluster["metadata"].get("namespace", ""), cluster["metadata"].get("name", ""))
            try:
                snap = self.snapshot(cluster, objs, views.get(key), now)
                found = wd.detect(snap, now, self.settings.thresholds)
            except Exception:  # one malformed cluster must not blind the watchdog to the others
                log.exception("watchdog: cluster %s/%s", *key)
                self.ctx.metrics.reconcile_errors.labels("watchdog").inc()
                continue
            findings += found
            if wd.repair_enabled(cluster, self.settings.repair):
                for r in wd.repairs(found):
                    await self.repair(r)
        self.seen.end_pass(
            (c["metadata"].get("namespace", ""), c["metadata"].get("name", "")) for c in self.ctx.clusters.values()
        )
        await self.report(findings)
        self.slo.update(
            slo.samples(
                clusters,
                (b for b in self.ctx.backups.values()),
                (s for s in self.ctx.store_for(kinds.SCHEDULE).values()),
                views,
                now,
                findings,
            )
        )
        self.ctx.metrics.watchdog_pass_seconds.set(time.monotonic() - t0)
        self.ctx.metrics.watchdog_last_pass.set(now.timestamp())

    async def report(self, findings: list[wd.WatchdogFinding]) -> None:
        """Log and event the findings not seen in the previous pass (Events a few at a time: a first pass over many
        clusters may have many)."""
        current = {finding_key(f): f for f in findings}
        limit = asyncio.Semaphore(EVENTS_AT_ONCE)

        async def one(f: wd.WatchdogFinding) -> None:
            log.log(
                logging.ERROR if f.severity >= wd.Severity.ERROR else logging.WARNING,
                "watchdog %s %s: %s",
                f.code,
                f.ref,
                f.message,
                extra={"namespace": f.ref.namespace, "cluster": f.cluster, "code": f.code, "reason": f.reason},
            )
            async with limit:
                await self.ctx.events.emit(self._object(f.ref), f.reason, f"{f.code}: {f.message}", warning=True)
            self.ctx.metrics.watchdog_events.labels(f.reason).inc()

        await asyncio.gather(*(one(f) for key, f in current.items() if key not in self.reported))
        self.reported = set(current)

    def _object(self, ref: wd.Ref) -> dict[str, Any]:
        """The cached object the Event names (its resourceVersion and uid), else what the finding knows."""
        store = self.ctx.store_for(LEASE if ref.kind == wd.LEASE_KIND else ref.kind)
        cached = store.get((ref.namespace, ref.name))
        meta = (cached or {}).get("metadata") or {"name": ref.name, "namespace": ref.namespace, "uid": ref.uid}
        return {"apiVersion": ref.api_version, "kind": ref.kind, "metadata": meta}

    # ------------------------------------------------------------------ --repair

    async def repair(self, r: wd.Repair) -> None:
        ns, name = r.ref.namespace, r.ref.name
        try:
            if r.action == "release-lease":
                done = await self.ctx.kube.delete(lease_path(ns, name), resource_version=r.resource_version or None)
                if done:
                    self.ctx.store_for(LEASE).pop((ns, name), None)
                what = f"deleted the stale lock Lease {ns}/{name}"
            elif r.action == "mark-backup-error":
                patch: dict[str, Any] = {
                    "status": {"state": "error", "error": r.message, "lastTransition": rfc3339(self.ctx.clock())}
                }
                if r.resource_version:
                    patch["metadata"] = {"resourceVersion": r.resource_version}
                updated = await self.ctx.kube.patch(psmdb_path(kinds.BACKUP, ns, name, "status"), patch)
                self.ctx.remember(updated, kinds.BACKUP)
                what = f"marked Backup {ns}/{name} error"
            else:
                raise ValueError(f"unknown repair action {r.action!r}")
        except KubeError as e:
            # 409: the object changed since the pass read it: the next pass judges it again
            log.warning("watchdog repair %s of %s skipped: %s", r.action, r.ref, e.message)
            self.ctx.metrics.watchdog_repairs.labels(r.action, "conflict" if e.conflict else "error").inc()
            return
        log.warning("watchdog repair (%s): %s: %s", r.code, what, r.message, extra={"namespace": ns, "code": r.code})
        self.ctx.metrics.watchdog_repairs.labels(r.action, "done").inc()
        target = self._object(r.ref) if r.action == "mark-backup-error" else self._lease_owner_cluster(r.ref)
        await self.ctx.events.emit(target, "WatchdogRepaired", f"{r.code}: {what}. {r.message}", warning=True)

    def _lease_owner_cluster(self, ref: wd.Ref) -> dict[str, Any]:
        """A deleted Lease cannot carry the Event: its cluster does (`psmdb-<cluster>-backup-lock`)."""
        cluster = ref.name.removeprefix("psmdb-").removesuffix("-backup-lock")
        obj = self.ctx.clusters.get((ref.namespace, cluster))
        return obj or self._object(ref)


def thresholds(overrides: Mapping[str, float]) -> wd.Thresholds:
    """`--watchdog-threshold NAME=SECONDS`: lookback, tolerance, early, lock-grace, pbm-grace, backup-<state> and
    restore-<state> (state new, waiting, requested or running)."""
    base = wd.Thresholds()
    simple = {"lookback", "tolerance", "early", "lock-grace", "pbm-grace"}
    kw: dict[str, Any] = {}
    stuck = {"backup": dict(base.backup_stuck), "restore": dict(base.restore_stuck)}
    for name, seconds in overrides.items():
        d = timedelta(seconds=seconds)
        kind, _, state = name.partition("-")
        if name in simple:
            kw[name.replace("-", "_")] = d
        elif kind in stuck and state in ("new", "waiting", "requested", "running"):
            stuck[kind]["" if state == "new" else state] = d
        else:
            raise ValueError(
                f"unknown watchdog threshold {name!r}: use one of {', '.join(sorted(simple))}, "
                "backup-<state> or restore-<state> (state new, waiting, requested, running)"
            )
    return wd.Thresholds(**kw, backup_stuck=stuck["backup"], restore_stuck=stuck["restore"])


def register(controller: Controller) -> None:
    """The watchdog of `psmdb-backup controller`, configured by its options (--watchdog-*, --repair, --pbm-reads)."""
    opts = controller.opts
    settings = Settings(
        interval=opts.watchdog_interval,
        repair=opts.repair,
        pbm_reads=opts.pbm_reads,
        thresholds=thresholds(opts.watchdog_thresholds),
    )
    views = None
    if settings.pbm_reads:
        execer = KubeExec.from_configuration(controller.ctx.kube.api.configuration)
        views = PbmViews(execer, controller.ctx.clusters)

        async def close_on_stop() -> None:
            try:
                await asyncio.Event().wait()
            finally:
                await execer.close()

        controller.background(close_on_stop)
    Watchdog(controller, settings, views)
