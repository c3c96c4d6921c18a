"""Pure backup SLO samples: from the clusters, their Backups, our schedules, optional PBM reads and the watchdog's
findings to the gauge values the watchdog exports (webhook/controller/slo_metrics.py). No clock: callers pass `now`.

Sources (OP v1.23.0@b15af500 pkg/apis/psmdb/v1/perconaservermongodbbackup_types.go:33-71): a ready Backup's
`status.completed` (PBM's last transition) is its success time, `status.start` (PBM's start) begins its duration,
`status.size` is PBM's pretty-printed size (`1.00GB`, 1024-based, two decimals, so the bytes are approximate),
`status.storageName` its storage. The operator writes the end of the latest PITR timeline into
`status.latestRestorableTime` of the newest ready Backup (OP v1.23.0@b15af500
pkg/controller/perconaservermongodb/pbm.go:273-565); a PBM read, when allowed, is fresher.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .. import cron
from . import watchdog as wd

# name -> (help, labels); every value is a gauge set by a watchdog pass.
METRICS: dict[str, tuple[str, tuple[str, ...]]] = {
    "psmdb_backup_last_success_timestamp_seconds": (
        "Unix time the newest ready Backup of an ancestor (task or schedule; empty: on-demand) on a storage completed",
        ("namespace", "cluster", "storage", "ancestor"),
    ),
    "psmdb_backup_last_duration_seconds": (
        "From PBM's start to completion of that newest ready Backup",
        ("namespace", "cluster", "storage", "ancestor"),
    ),
    "psmdb_backup_last_size_bytes": (
        "Size of that newest ready Backup (from PBM's rounded size, e.g. 1.00GB)",
        ("namespace", "cluster", "storage", "ancestor"),
    ),
    "psmdb_backup_schedule_period_seconds": (
        "Longest gap between the next slots of an enabled operator task (source=task) or schedule (source=schedule)",
        ("namespace", "cluster", "ancestor", "source"),
    ),
    "psmdb_backup_failed_backups": (
        "Backups of an ancestor (empty: on-demand) in state error created after its newest ready Backup",
        ("namespace", "cluster", "ancestor"),
    ),
    "psmdb_backup_missed_slots": (
        "Slots of an ancestor without a Backup in the watchdog's look-back window",
        ("namespace", "cluster", "ancestor"),
    ),
    "psmdb_backup_stuck_operations": (
        "Backups (kind=backup) or Restores (kind=restore) without progress past the watchdog's thresholds",
        ("namespace", "cluster", "kind"),
    ),
    "psmdb_backup_watchdog_findings": (
        "Current watchdog findings by reason and severity",
        ("namespace", "cluster", "reason", "severity"),
    ),
    "psmdb_backup_pitr_latest_restorable_timestamp_seconds": (
        "The latest time a point-in-time restore can reach (PBM reads, else the operator's latestRestorableTime)",
        ("namespace", "cluster"),
    ),
    "psmdb_backup_pitr_oplog_span_seconds": (
        "spec.backup.pitr.oplogSpanMin of a cluster with backups and PITR enabled, in seconds (PBM default 10 min)",
        ("namespace", "cluster"),
    ),
}

_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGTP]?)i?B\s*$", re.I)
_UNITS = {"": 0, "K": 1, "M": 2, "G": 3, "T": 4, "P": 5}


@dataclass(frozen=True)
class Sample:
    metric: str
    labels: Mapping[str, str]
    value: float


def size_bytes(text: Any) -> float | None:
    """PBM's pretty size back to bytes: `1.00GB` -> 1073741824.0; None when it is not one."""
    m = _SIZE.match(text) if isinstance(text, str) else None
    return float(m.group(1)) * 1024 ** _UNITS[m.group(2).upper()] if m else None


def _storage(b: Mapping[str, Any]) -> str:
    return str((b.get("status") or {}).get("storageName") or (b.get("spec") or {}).get("storageName") or "")


def _success_time(b: Mapping[str, Any]) -> datetime | None:
    return wd.finished_at(b) or wd.created(b)


def _oplog_span(cluster: Mapping[str, Any]) -> float | None:
    backup = (cluster.get("spec") or {}).get("backup") or {}
    pitr = backup.get("pitr") or {}
    if backup.get("enabled") is not True or pitr.get("enabled") is not True:
        return None
    try:
        minutes = float(pitr.get("oplogSpanMin") or 0)  # a NumberString: 10, 10.5 or "10"
    except (TypeError, ValueError):
        minutes = 0
    return (minutes if minutes > 0 else 10.0) * 60


def _cluster_samples(
    cluster: Mapping[str, Any],
    backups: Sequence[Mapping[str, Any]],
    schedules: Sequence[Mapping[str, Any]],
    pbm: wd.PbmView | None,
    findings: Sequence[wd.WatchdogFinding],
    now: datetime,
) -> list[Sample]:
    ref = wd.ref_of(wd.CLUSTER_KIND, cluster)
    base = {"namespace": ref.namespace, "cluster": ref.name}
    out: list[Sample] = []

    def add(metric: str, value: float, **labels: str) -> None:
        out.append(Sample(metric, {**base, **labels}, float(value)))

    newest: dict[tuple[str, str], Mapping[str, Any]] = {}
    newest_ready_of: dict[str, datetime] = {}
    for b in backups:
        t = _success_time(b)
        if wd.state_of(b) != "ready" or t is None:
            continue
        key = (_storage(b), wd.ancestor_of(b))
        old = newest.get(key)
        if old is None or t > (_success_time(old) or t):
            newest[key] = b
        newest_ready_of[key[1]] = max(t, newest_ready_of.get(key[1], t))
    for (storage, ancestor), b in sorted(newest.items()):
        done = _success_time(b)
        assert done is not None  # only Backups with a success time were kept
        add("psmdb_backup_last_success_timestamp_seconds", done.timestamp(), storage=storage, ancestor=ancestor)
        start = wd.parse_time((b.get("status") or {}).get("start"))
        if start is not None and start <= done:
            add(
                "psmdb_backup_last_duration_seconds", (done - start).total_seconds(), storage=storage, ancestor=ancestor
            )
        size = size_bytes((b.get("status") or {}).get("size"))
        if size is not None:
            add("psmdb_backup_last_size_bytes", size, storage=storage, ancestor=ancestor)

    expected = wd.expected(wd.Snapshot(cluster, schedules=schedules))
    ancestors = {e.ancestor for e in expected} | {wd.ancestor_of(b) for b in backups if wd.ancestor_of(b)}
    failed = dict.fromkeys(ancestors, 0)
    for b in backups:  # on-demand Backups count under ancestor ""
        t, a = wd.created(b), wd.ancestor_of(b)
        last_ok = newest_ready_of.get(a)
        if wd.state_of(b) == "error" and t is not None and (last_ok is None or t > last_ok):
            failed[a] = failed.get(a, 0) + 1
    for a, n in sorted(failed.items()):
        add("psmdb_backup_failed_backups", n, ancestor=a)

    missed = {e.ancestor: 0 for e in expected}
    for e in expected:
        try:
            p = wd.period(wd.schedule_of(e.expr), now)
        except cron.CronError:
            continue  # the watchdog reports it (WD009)
        if p is not None:
            add("psmdb_backup_schedule_period_seconds", p.total_seconds(), ancestor=e.ancestor, source=e.source)
    stuck = {"backup": 0, "restore": 0}
    by_reason: dict[tuple[str, str], int] = {}
    for f in findings:
        if f.code == "WD001":
            missed[f.ancestor] = missed.get(f.ancestor, 0) + f.count
        elif f.code in ("WD004", "WD005"):
            stuck["backup" if f.code == "WD004" else "restore"] += 1
        key = (f.reason, f.severity.label)
        by_reason[key] = by_reason.get(key, 0) + 1
    for a, n in sorted(missed.items()):
        add("psmdb_backup_missed_slots", n, ancestor=a)
    for kind, n in stuck.items():
        add("psmdb_backup_stuck_operations", n, kind=kind)
    for (reason, severity), n in sorted(by_reason.items()):
        add("psmdb_backup_watchdog_findings", n, reason=reason, severity=severity)

    restorable = [
        t for b in backups if (t := wd.parse_time((b.get("status") or {}).get("latestRestorableTime"))) is not None
    ]
    latest = pbm.pitr_latest if pbm is not None and pbm.pitr_latest is not None else max(restorable, default=None)
    if latest is not None:
        add("psmdb_backup_pitr_latest_restorable_timestamp_seconds", latest.timestamp())
    span = _oplog_span(cluster)
    if span is not None:
        add("psmdb_backup_pitr_oplog_span_seconds", span)
    return out


def samples(
    clusters: Iterable[Mapping[str, Any]],
    backups: Iterable[Mapping[str, Any]],
    schedules: Iterable[Mapping[str, Any]],
    pbm_status_by_cluster: Mapping[tuple[str, str], wd.PbmView],
    now: datetime,
    findings: Iterable[wd.WatchdogFinding] = (),
) -> list[Sample]:
    """Every sample for every cluster. `pbm_status_by_cluster` and the findings are keyed by (namespace, cluster);
    a cluster without PBM reads falls back to what the operator wrote on its Backups."""
    by_cluster: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for b in backups:
        key = (str((b.get("metadata") or {}).get("namespace") or ""), str((b.get("spec") or {}).get("clusterName")))
        by_cluster.setdefault(key, []).append(b)
    scheds: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for s in schedules:
        key = (str((s.get("metadata") or {}).get("namespace") or ""), str((s.get("spec") or {}).get("clusterName")))
        scheds.setdefault(key, []).append(s)
    found: dict[tuple[str, str], list[wd.WatchdogFinding]] = {}
    for f in findings:
        found.setdefault((f.ref.namespace, f.cluster), []).append(f)
    out: list[Sample] = []
    for c in clusters:
        r = wd.ref_of(wd.CLUSTER_KIND, c)
        key = (r.namespace, r.name)
        out += _cluster_samples(
            c, by_cluster.get(key, []), scheds.get(key, []), pbm_status_by_cluster.get(key), found.get(key, []), now
        )
    return out
