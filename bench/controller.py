"""Scheduling at scale: 1,000 clusters with 2 tasks each on the local API server, run by the operator stand-in's
in-memory task cron (tools/operator_standin, as the stock operator schedules them).

    python bench/controller.py [--clusters N] [--slots K] [--quick]

Both tasks of every cluster fire on the same minute boundary (`* * * * *` and `*/2 * * * *`), the worst case of
everybody backing up "on the hour". Measured: the time from each slot to its Backup object being created (the
stand-in logs it per Backup), and the stand-in's resident memory (VmHWM, the peak). Baseline in the same run:
this process creating the same number of Backup objects at once, straight through the API (the API server's own
cost for such a burst). Targets: p99 <= 1 s, RSS <= 150 MB. The last line is machine-readable:
RESULT slot_to_backup_p50_s=<x> slot_to_backup_p99_s=<y> rss_mb=<z>
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tools import ctlcluster  # noqa: E402

NS = "bench"


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))] if values else float("nan")


def create_clusters(ctl: ctlcluster.CtlCluster, n: int) -> None:
    tasks = [
        {"name": "minutely", "enabled": True, "schedule": "* * * * *", "storageName": "s3", "keep": 3},
        {"name": "two-minutely", "enabled": True, "schedule": "*/2 * * * *", "storageName": "s3", "keep": 3},
    ]
    docs = [ctl.cluster_manifest(f"c{i:04d}", tasks=tasks) for i in range(n)]
    for i in range(0, n, 250):
        ctl.apply(docs[i : i + 250])


def rss_mb(pid: int) -> tuple[float, float]:
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


async def baseline(ctl: ctlcluster.CtlCluster, count: int) -> list[float]:
    """Seconds from the start of a burst of `count` Backup creates to each one's answer (same client library)."""
    from webhook.controller.kubeapi import Kube, psmdb_path
    from webhook.kube import new_api_client

    api = await new_api_client(str(ctl.cp.kubeconfig))
    kube = Kube(api)
    t0 = time.monotonic()

    async def one(i: int) -> float:
        await kube.create(
            psmdb_path("PerconaServerMongoDBBackup", NS),
            {
                "apiVersion": "psmdb.percona.com/v1",
                "kind": "PerconaServerMongoDBBackup",
                "metadata": {"name": f"baseline-{i:05d}", "namespace": NS},
                "spec": {"clusterName": "none", "storageName": "s3"},
            },
        )
        return time.monotonic() - t0

    try:
        return list(await asyncio.gather(*(one(i) for i in range(count))))
    finally:
        await api.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clusters", type=int, default=1000)
    ap.add_argument("--slots", type=int, default=2, help="minute boundaries to measure (default 2)")
    ap.add_argument("--quick", action="store_true", help="one slot")
    args = ap.parse_args()
    slots = 1 if args.quick else args.slots
    with tempfile.TemporaryDirectory(prefix="bench-controller-") as tmp:
        ctl = ctlcluster.start(Path(tmp), [], namespace=NS, azurite=False, with_controllers=False)
        try:
            t = time.monotonic()
            create_clusters(ctl, args.clusters)
            print(f"created {args.clusters} clusters x 2 tasks in {time.monotonic() - t:.1f}s", flush=True)
            ctrl = ctl.standin()  # returns once it acts
            _, hwm_start = rss_mb(ctrl.pid)
            now = datetime.now(UTC)
            end = (now.replace(second=0, microsecond=0).timestamp() + 60 * slots) + 20
            print(
                f"operator stand-in acting; measuring {slots} slot(s) until {datetime.fromtimestamp(end, UTC)}",
                flush=True,
            )
            while time.time() < end:
                time.sleep(2)
            lags = [float(line["lag_s"]) for line in ctrl.log_lines() if "lag_s" in line]
            rss, hwm = rss_mb(ctrl.pid)
            ctrl.stop()
            expected = sum(
                args.clusters * (2 if m % 2 == 0 else 1)
                for m in range(int(now.timestamp() // 60) + 1, int(end // 60) + 1)
            )
            burst = max(1, len(lags) // max(1, slots))
            base = asyncio.run(baseline(ctl, burst))
        finally:
            ctlcluster.stop(ctl)
    print(
        f"backups created for slots: {len(lags)} (expected {expected}); stand-in RSS at start {hwm_start:.0f} MB, "
        f"now {rss:.0f} MB, peak {hwm:.0f} MB"
    )
    print(
        f"slot -> Backup: p50 {pct(lags, 0.5):.3f}s p99 {pct(lags, 0.99):.3f}s max {max(lags, default=0):.3f}s "
        f"mean {statistics.fmean(lags) if lags else 0:.3f}s"
    )
    print(
        f"baseline: {burst} creates at once straight through the API: p50 {pct(base, 0.5):.3f}s "
        f"p99 {pct(base, 0.99):.3f}s; ratio p99 {pct(lags, 0.99) / max(pct(base, 0.99), 1e-9):.2f}"
    )
    print(
        f"targets: p99 <= 1 s: {'met' if pct(lags, 0.99) <= 1 else 'MISSED'}; RSS <= 150 MB: "
        f"{'met' if hwm <= 150 else 'MISSED'}"
    )
    print(
        f"RESULT slot_to_backup_p50_s={pct(lags, 0.5):.3f} slot_to_backup_p99_s={pct(lags, 0.99):.3f} rss_mb={hwm:.0f}"
    )
    return 0 if lags and len(lags) >= expected * 0.99 else 1


if __name__ == "__main__":
    sys.exit(main())
