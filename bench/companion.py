"""The companion (`psmdb-backup controller`) at scale on the local API server (tools/ctlcluster.py); no operator
stand-in: only the creation of Backup objects is measured, nothing runs them.

    python bench/companion.py [--clusters N] [--backups M]

1. Slots: N clusters x 2 PerconaServerMongoDBBackupSchedules, all on one minute boundary (a daily cron at a minute
   a little ahead, so the run stays bounded). Measured per slot: the time this process sees the slot's Backup on its
   own watch minus the slot time. Baseline in the same run: this process creating the same number of Backups
   straight through the API with the companion's concurrency (its --workers, 8), each measured the same way (seen on
   the watch) from the instant the burst starts. Goal: companion p99 / baseline p99 <= 1.2.
2. Watchdog: Backups bulk-created up to M in all (over the N clusters); then the companion's duration of one full
   watchdog pass (its psmdb_backup_controller_watchdog_pass_seconds, the first pass that starts after the last
   create) and its peak RSS (VmHWM). Goals: <= 5 s, <= 150 MB.

The last line is machine-readable: RESULT slot_to_backup_p99_ratio=<x> rss_mb=<y> watchdog_pass_s=<z>
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.controller import pct, rss_mb  # noqa: E402
from tools import ctlcluster  # noqa: E402
from webhook.controller.kubeapi import Kube, psmdb_path  # noqa: E402
from webhook.controller.schedule import SCHEDULE_LABEL  # noqa: E402
from webhook.kube import new_api_client  # noqa: E402
from webhook.policy import kinds  # noqa: E402

NS = "bench"
BACKUP, SCHEDULE = "PerconaServerMongoDBBackup", "PerconaServerMongoDBBackupSchedule"
WORKERS = 8  # the companion's default --workers: at most this many slots are worked on at once
SLOT_MARGIN = 30.0  # seconds between the last schedule created and the slot
DEADLINE = 180.0  # seconds after the slot (or burst start) to wait for every Backup


def create_clusters(ctl: ctlcluster.CtlCluster, n: int) -> None:
    docs = [ctl.cluster_manifest(f"c{i:04d}") for i in range(n)]  # an S3 main storage, no operator tasks
    for i in range(0, n, 250):
        ctl.apply(docs[i : i + 250])


async def bounded(n: int, concurrency: int, one: Callable[[int], Awaitable[Any]]) -> list[Any]:
    sem = asyncio.Semaphore(concurrency)

    async def run(i: int) -> Any:
        async with sem:
            return await one(i)

    return list(await asyncio.gather(*(run(i) for i in range(n))))


class BackupWatch:
    """Wall time at which this process sees each Backup ADDED on a watch of the namespace."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self.seen: dict[str, float] = {}
        self.labels: dict[str, dict[str, str]] = {}
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        rv = (await self.kube.request("GET", psmdb_path(BACKUP, NS), query={"limit": 1}))["metadata"]["resourceVersion"]
        self.task = asyncio.create_task(self._run(rv))

    async def _run(self, rv: str) -> None:
        while True:
            async for ev in self.kube.watch(psmdb_path(BACKUP, NS), resource_version=rv, timeout_seconds=600):
                meta = (ev.get("object") or {}).get("metadata") or {}
                rv = meta.get("resourceVersion") or rv
                if ev.get("type") == "ADDED" and meta.get("name") not in self.seen:
                    self.seen[meta["name"]] = time.time()
                    self.labels[meta["name"]] = meta.get("labels") or {}

    async def wait(self, names: Callable[[], int], want: int, until: float) -> None:
        while names() < want and time.time() < until:
            await asyncio.sleep(0.2)

    async def stop(self) -> None:
        if self.task:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)


def schedule_doc(i: int, task: int, cron: str) -> dict[str, Any]:
    return {
        "apiVersion": kinds.api_version(SCHEDULE),
        "kind": SCHEDULE,
        "metadata": {"name": f"c{i:04d}-s{task}", "namespace": NS},
        "spec": {"clusterName": f"c{i:04d}", "schedule": cron, "storageName": "s3"},
    }


def backup_doc(name: str, cluster: str) -> dict[str, Any]:
    return {
        "apiVersion": "psmdb.percona.com/v1",
        "kind": BACKUP,
        "metadata": {"name": name, "namespace": NS},
        "spec": {"clusterName": cluster, "storageName": "s3", "type": "logical"},
    }


async def slots_and_baseline(ctl: ctlcluster.CtlCluster, clusters: int) -> tuple[list[float], list[float], float]:
    """Slot lags (s), baseline lags (s), the slot's unix time."""
    api = await new_api_client(str(ctl.cp.kubeconfig))
    kube = Kube(api)
    watch = BackupWatch(kube)
    try:
        await watch.start()
        t = time.time()
        # a rough slot first: creating 2N schedules takes some seconds; the cron is fixed before they exist
        slot = (int((t + SLOT_MARGIN + clusters * 2 / 100) // 60) + 1) * 60
        when = datetime.fromtimestamp(slot, UTC)
        cron = f"{when.minute} {when.hour} * * *"
        await bounded(
            clusters * 2,
            32,
            lambda k: kube.create(psmdb_path(SCHEDULE, NS), schedule_doc(k // 2, k % 2, cron)),
        )
        print(f"created {clusters * 2} schedules ({cron!r}) in {time.time() - t:.1f}s; slot {when}", flush=True)
        if time.time() > slot - 5:
            raise SystemExit("schedules were created too late for their slot; rerun on a less busy machine")
        want = clusters * 2

        def scheduled() -> int:
            return sum(1 for n in watch.labels.values() if SCHEDULE_LABEL in n)

        await watch.wait(scheduled, want, slot + DEADLINE)
        lags = [watch.seen[n] - slot for n, lb in watch.labels.items() if SCHEDULE_LABEL in lb]
        if len(lags) < want:  # counted at the deadline: the percentiles are then lower bounds
            print(f"only {len(lags)} of {want} slot Backups within {DEADLINE}s", flush=True)
            lags += [DEADLINE] * (want - len(lags))
        await asyncio.sleep(10)  # the companion's status writes after the slot settle
        names = [f"baseline-{k:05d}" for k in range(want)]
        t0 = time.time()
        await bounded(
            want, WORKERS, lambda k: kube.create(psmdb_path(BACKUP, NS), backup_doc(names[k], f"c{k % clusters:04d}"))
        )
        await watch.wait(lambda: sum(1 for n in names if n in watch.seen), want, t0 + DEADLINE)
        base = [watch.seen[n] - t0 for n in names if n in watch.seen]
        if len(base) < want:
            print(f"only {len(base)} of {want} baseline Backups seen within {DEADLINE}s", flush=True)
            base += [DEADLINE] * (want - len(base))
        return lags, base, slot
    finally:
        await watch.stop()
        await api.close()


async def fill_backups(ctl: ctlcluster.CtlCluster, clusters: int, total: int) -> int:
    """Backups up to `total` in the namespace, spread over the clusters; returns how many were created."""
    api = await new_api_client(str(ctl.cp.kubeconfig))
    kube = Kube(api)
    try:
        have = len((await kube.request("GET", psmdb_path(BACKUP, NS), timeout=120))["items"])
        n = max(0, total - have)
        await bounded(
            n, 32, lambda k: kube.create(psmdb_path(BACKUP, NS), backup_doc(f"fill-{k:05d}", f"c{k % clusters:04d}"))
        )
        return n
    finally:
        await api.close()


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise KeyError(f"metric {name} not in the companion's /metrics")


def ready(comp: ctlcluster.ControllerProcess) -> bool:
    try:
        return comp.http("/readyz") == "ok"
    except OSError:  # 503 until its caches are filled
        return False


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clusters", type=int, default=1000)
    ap.add_argument("--backups", type=int, default=20000, help="Backups in all for the watchdog part")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-companion-") as tmp:
        ctl = ctlcluster.start(Path(tmp), [], namespace=NS, azurite=False, with_controllers=False)
        try:
            t = time.monotonic()
            create_clusters(ctl, args.clusters)
            print(f"created {args.clusters} clusters in {time.monotonic() - t:.1f}s", flush=True)
            comp = ctl.controller("companion", "--workers", str(WORKERS))
            ctl.wait("companion caches synced", lambda: ready(comp), timeout=120)
            lags, base, _ = asyncio.run(slots_and_baseline(ctl, args.clusters))
            t = time.monotonic()
            made = asyncio.run(fill_backups(ctl, args.clusters, args.backups))
            filled = time.time()
            print(f"created {made} more Backups ({args.backups} in all) in {time.monotonic() - t:.1f}s", flush=True)
            # the first pass that starts after the last create (its timestamp is its start)
            ctl.wait(
                "a watchdog pass over every Backup",
                lambda: (
                    metric(comp.http("/metrics"), "psmdb_backup_controller_watchdog_last_pass_timestamp_seconds")
                    > filled + 1
                ),
                timeout=120,
                interval=1,
            )
            pass_s = metric(comp.http("/metrics"), "psmdb_backup_controller_watchdog_pass_seconds")
            rss, hwm = rss_mb(comp.pid)
        finally:
            ctlcluster.stop(ctl)
    ratio = pct(lags, 0.99) / max(pct(base, 0.99), 1e-9)
    print(
        f"slot -> Backup seen ({len(lags)} slots): p50 {pct(lags, 0.5):.3f}s p99 {pct(lags, 0.99):.3f}s "
        f"max {max(lags):.3f}s"
    )
    print(
        f"baseline ({len(base)} creates, {WORKERS} at a time, seen on the watch from the burst start): "
        f"p50 {pct(base, 0.5):.3f}s p99 {pct(base, 0.99):.3f}s; ratio p99 {ratio:.2f} (goal <= 1.2)"
    )
    print(f"companion RSS now {rss:.0f} MB, peak {hwm:.0f} MB (goal <= 150); watchdog pass {pass_s:.2f}s (goal <= 5)")
    print(f"RESULT slot_to_backup_p99_ratio={ratio:.2f} rss_mb={hwm:.0f} watchdog_pass_s={pass_s:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
