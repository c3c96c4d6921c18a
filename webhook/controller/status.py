"""`psmdb-backup status [CLUSTER] [-n NS | -A] [-o text|json]`: one read-only look at the backups of PSMDB clusters.

Per cluster: its storages (main marked), every schedule (our kind) and operator task with last run, last success and
next run, the Backups and Restores not finished yet and the holder of the lock Lease `psmdb-<cluster>-backup-lock`,
the PITR window the operator wrote on the Backups, the last Backups, and every watchdog finding (watchdog.detect on
the same lists). `gather` reads the API, `build` (pure) makes the JSON document, `render_text` (pure) the terminal
view; the JSON shape is documented in docs/operations.md and versioned by `FORMAT`.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

from .. import cron
from ..kube import CredentialsError, new_api_client, resource_path
from ..policy import kinds
from ..policy.common import main_storage, storage_block, storages
from ..redaction import strip_userinfo
from ..times import format_rfc3339
from . import watchdog as wd
from .kubeapi import Kube, KubeError, lease_path
from .leases import lock_name

FORMAT = "psmdb-backup/status/v1"
FINAL = ("ready", "error")


class OpsError(Exception):
    """A failure the user can act on, said in one message (the command exits 1); `status`: the API's HTTP status."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


# --------------------------------------------------------------------------------------------------- API access


def collection(kind: str, namespace: str | None) -> str:
    return resource_path(kind, namespace)


def resource(kind: str) -> str:
    """`perconaservermongodbbackups.psmdb.percona.com`: what `kubectl auth can-i` and RBAC call the kind."""
    return f"{kinds.PLURALS[kind]}.{kinds.group_of(kind)}"


def explain(e: BaseException, verb: str, what: str, namespace: str | None, host: str = "") -> OpsError:
    """A KubeError or a transport error as a message naming what was attempted."""
    where = f" in namespace {namespace}" if namespace else " in any namespace"
    if isinstance(e, KubeError) and e.status == 0:  # no answer in time
        return OpsError(f"cannot reach the API server{f' at {host}' if host else ''}: {e.message}")
    if isinstance(e, KubeError) and e.status in (401, 403):
        check = f"kubectl auth can-i {verb} {what}" + (f" -n {namespace}" if namespace else " -A")
        return OpsError(f"no permission to {verb} {what}{where}: {e.message} (check: {check})", e.status)
    if isinstance(e, KubeError):
        return OpsError(f"cannot {verb} {what}{where}: {e.message}", e.status)
    reason = str(e) or type(e).__name__
    return OpsError(f"cannot reach the API server{f' at {host}' if host else ''}: {reason}")


TRANSPORT_ERRORS = (OSError, TimeoutError, asyncio.TimeoutError)


@dataclass
class Api:
    """A Kube with the messages of this command's failures."""

    kube: Kube
    host: str = ""

    async def call(self, coro: Any, verb: str, what: str, namespace: str | None) -> Any:
        try:
            return await coro
        except KubeError as e:
            raise explain(e, verb, what, namespace) from None
        except TRANSPORT_ERRORS as e:
            raise explain(e, verb, what, namespace, self.host) from None

    async def list(self, kind: str, namespace: str | None, *, optional: bool = False) -> list[dict[str, Any]]:
        """Every object of `kind`; with `optional`, none when its CRD is not installed (404)."""
        try:
            data = await self.call(
                self.kube.request("GET", collection(kind, namespace)), "list", resource(kind), namespace
            )
        except OpsError as e:
            if optional and e.status == 404:
                return []
            raise
        return [{**o, "kind": kind, "apiVersion": kinds.api_version(kind)} for o in data.get("items") or []]


async def connect(kubeconfig: str | None, context: str | None) -> tuple[Api, Callable[[], Any]]:
    """An Api and its close(); OpsError when there are no usable credentials."""
    try:
        client = await new_api_client(kubeconfig, context)
    except CredentialsError as e:
        raise OpsError(str(e)) from None
    return Api(Kube(client, timeout=15.0), client.configuration.host or ""), client.close


def default_namespace(kubeconfig: str | None, context: str | None) -> str:
    """kubectl's choice: the namespace of the kubeconfig context, else the pod's, else `default`."""
    import yaml

    paths = [kubeconfig] if kubeconfig else (os.environ.get("KUBECONFIG") or "").split(os.pathsep)
    paths = [p for p in paths if p] or [os.path.expanduser("~/.kube/config")]
    for path in paths:
        try:
            with open(path) as f:
                cfg = yaml.safe_load(f) or {}
        except (OSError, yaml.YAMLError):
            continue
        name = context or cfg.get("current-context")
        for ctx in cfg.get("contexts") or []:
            if isinstance(ctx, dict) and ctx.get("name") == name:
                ns = (ctx.get("context") or {}).get("namespace")
                if ns:
                    return str(ns)
    try:
        with open("/var/run/secrets/kubernetes.io/serviceaccount/namespace") as f:
            return f.read().strip() or "default"
    except OSError:
        return "default"


# --------------------------------------------------------------------------------------------------- gather


@dataclass
class Inputs:
    clusters: list[dict[str, Any]]
    backups: list[dict[str, Any]] = field(default_factory=list)
    restores: list[dict[str, Any]] = field(default_factory=list)
    schedules: list[dict[str, Any]] = field(default_factory=list)
    leases: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)  # (namespace, cluster) -> lock Lease
    warnings: list[str] = field(default_factory=list)  # what could not be read (the rest is still shown)


async def gather(api: Api, namespace: str | None, cluster: str | None) -> Inputs:
    """Everything `build` needs, for one namespace or (None) all. OpsError when CLUSTER does not exist."""
    clusters, backups, restores = await asyncio.gather(
        api.list(kinds.CLUSTER, namespace), api.list(kinds.BACKUP, namespace), api.list(kinds.RESTORE, namespace)
    )
    if cluster is not None:
        clusters = [c for c in clusters if c["metadata"]["name"] == cluster]
        if not clusters:
            where = f"namespace {namespace}" if namespace else "any namespace"
            raise OpsError(f"cluster {cluster} not found in {where} (kubectl get psmdb -n NS lists the clusters)")
    inputs = Inputs(clusters, backups, restores)
    try:  # without our CRD (the operator alone) there are no schedules
        inputs.schedules = await api.list(kinds.SCHEDULE, namespace, optional=True)
    except OpsError as e:
        inputs.warnings.append(f"schedules not shown: {e}")

    async def lease(c: Mapping[str, Any]) -> None:
        ns, name = c["metadata"]["namespace"], c["metadata"]["name"]
        try:
            got = await api.call(api.kube.get(lease_path(ns, lock_name(name))), "get", "leases.coordination.k8s.io", ns)
        except OpsError as e:
            inputs.warnings.append(f"lock Lease of {ns}/{name} not shown: {e}")
            return
        if got is not None:
            inputs.leases[(ns, name)] = {**got, "kind": "Lease"}

    await asyncio.gather(*(lease(c) for c in clusters))
    return inputs


# --------------------------------------------------------------------------------------------------- build (pure)


def stamp(t: datetime | None) -> str | None:
    return format_rfc3339(t) if t else None


def _meta(o: Mapping[str, Any]) -> Mapping[str, Any]:
    return o.get("metadata") or {}


def _status(o: Mapping[str, Any]) -> Mapping[str, Any]:
    return o.get("status") or {}


def _location(storage: Mapping[str, Any]) -> str:
    """Where a storage writes: `s3://bucket/prefix`, `azure://container/prefix`, `filesystem:/path`."""
    block = storage_block(storage) or {}
    kind = str(storage.get("type") or "")
    if kind == "filesystem":
        return f"filesystem:{block.get('path', '')}"
    root = block.get("container") if kind == "azure" else block.get("bucket")
    prefix = str(block.get("prefix") or "").strip("/")
    return f"{kind}://{root or '?'}" + (f"/{prefix}" if prefix else "")


def _storages(cluster: Mapping[str, Any]) -> list[dict[str, Any]]:
    spec = cluster.get("spec") or {}
    main, _ = main_storage(spec)
    return [
        {"name": n, "type": str(s.get("type") or ""), "main": n == main, "location": _location(s)}
        for n, s in sorted(storages(spec).items())
    ]


def _run_of(b: Mapping[str, Any] | None, when: str) -> dict[str, Any] | None:
    if b is None:
        return None
    t = wd.parse_time(_status(b).get(when)) if when != "created" else wd.created(b)
    return {"backup": _meta(b).get("name"), "time": stamp(t), "state": wd.state_of(b) or "new"}


def _next_run(expr: str, last: datetime | None, now: datetime) -> tuple[datetime | None, str]:
    """The next slot after now in the operator's cron dialect; `@every` counts from the last run (the operator's
    cron starts its interval when it adds the entry). ("", None) or (None, why)."""
    try:
        schedule = wd.schedule_of(expr)
    except cron.CronError as e:
        return None, f"invalid schedule: {e}"
    if schedule.every_seconds is not None and last is not None:
        step = timedelta(seconds=schedule.every_seconds)
        behind = max(0, -(-(now - last) // step))  # whole intervals since the last run, rounded up
        return last + step * max(behind, 1), ""
    return schedule.next(now), ""


def _schedule_rows(
    cluster: Mapping[str, Any],
    schedules: Sequence[Mapping[str, Any]],
    backups: Sequence[Mapping[str, Any]],
    now: datetime,
) -> list[dict[str, Any]]:
    by_ancestor: dict[str, list[Mapping[str, Any]]] = {}
    for b in backups:
        by_ancestor.setdefault(wd.ancestor_of(b), []).append(b)

    def runs(name: str) -> tuple[Mapping[str, Any] | None, Mapping[str, Any] | None]:
        own = sorted(by_ancestor.get(name, []), key=lambda b: str(_meta(b).get("creationTimestamp") or ""))
        ready = [b for b in own if wd.state_of(b) == "ready"]
        ready.sort(key=lambda b: str(_status(b).get("completed") or ""))
        return (own[-1] if own else None), (ready[-1] if ready else None)

    rows: list[dict[str, Any]] = []
    for s in sorted(schedules, key=lambda s: str(_meta(s).get("name"))):
        spec, st, name = s.get("spec") or {}, _status(s), str(_meta(s).get("name"))
        last, good = runs(name)
        active = spec.get("suspend") is not True
        nxt, why = _next_run(str(spec.get("schedule") or ""), wd.created(last) if last else None, now)
        row = {
            "source": "schedule",
            "name": name,
            "schedule": str(spec.get("schedule") or ""),
            "storage": str(spec.get("storageName") or ""),
            "type": str(spec.get("type") or "logical"),
            "active": active,
            "lastRun": _run_of(last, "created"),
            "lastSuccess": _run_of(good, "completed"),
            # the schedule's own status wins: it also knows slots skipped by Forbid and its timer
            "nextRun": (st.get("nextScheduleTime") or stamp(nxt)) if active else None,
            "problem": why,
        }
        rows.append(row)
    backup = (cluster.get("spec") or {}).get("backup") or {}
    scheduled = {str(_meta(s).get("name")) for s in schedules}
    for task in backup.get("tasks") or []:
        if not isinstance(task, Mapping) or not task.get("name"):
            continue
        name = str(task["name"])
        active = task.get("enabled") is True and backup.get("enabled") is True
        # a disabled task whose schedule took over (`schedules import`): the Backups of that name are the schedule's
        last, good = runs(name) if active or name not in scheduled else (None, None)
        nxt, why = _next_run(str(task.get("schedule") or ""), wd.created(last) if last else None, now)
        rows.append(
            {
                "source": "task",
                "name": name,
                "schedule": str(task.get("schedule") or ""),
                "storage": str(task.get("storageName") or ""),
                "type": str(task.get("type") or "logical"),
                "active": active,
                "lastRun": _run_of(last, "created"),
                "lastSuccess": _run_of(good, "completed"),
                "nextRun": stamp(nxt) if active else None,
                "problem": why,
            }
        )
    return rows


def _operation(kind: str, o: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "kind": kind,
        "name": _meta(o).get("name"),
        "state": wd.state_of(o) or "new",
        "since": stamp(wd.last_progress(o)),
        "storage": str((o.get("spec") or {}).get("storageName") or _status(o).get("storageName") or ""),
    }


def _lock(lease: Mapping[str, Any] | None, ops: Mapping[str, tuple[str, Mapping[str, Any]]]) -> dict[str, Any] | None:
    holder = str(((lease or {}).get("spec") or {}).get("holderIdentity") or "")
    if lease is None or not holder:
        return None
    found = ops.get(holder)
    return {
        "lease": _meta(lease).get("name"),
        "holder": holder,
        "heldBy": {"kind": found[0], "name": _meta(found[1]).get("name"), "state": wd.state_of(found[1]) or "new"}
        if found
        else None,
        "since": stamp(wd.parse_time((lease.get("spec") or {}).get("acquireTime")) or wd.created(lease)),
    }


def _pitr(cluster: Mapping[str, Any], backups: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """What the operator wrote: the end of the latest PITR timeline on the newest ready Backup
    (`latestRestorableTime`, OP v1.23.0@b15af500 pkg/controller/perconaservermongodb/pbm.go:273-565); the earliest point
    is the oldest base's `lastWriteAt` on the main storage (PITR chunks are written there only). Gaps in the timeline
    are PBM's to tell (`pbm status`)."""
    spec = cluster.get("spec") or {}
    enabled = (spec.get("backup") or {}).get("enabled") is True and (
        ((spec.get("backup") or {}).get("pitr") or {}).get("enabled") is True
    )
    main, _ = main_storage(spec)
    ready = [b for b in backups if wd.state_of(b) == "ready"]
    latest = max((t for b in ready if (t := wd.parse_time(_status(b).get("latestRestorableTime")))), default=None)
    bases = [
        t
        for b in ready
        if (_status(b).get("storageName") or (b.get("spec") or {}).get("storageName")) == main
        and (t := wd.parse_time(_status(b).get("lastWriteAt")))
        and (latest is None or t <= latest)
    ]
    return {"enabled": enabled, "from": stamp(min(bases, default=None)) if latest else None, "to": stamp(latest)}


def _backup_row(b: Mapping[str, Any]) -> dict[str, Any]:
    st, spec = _status(b), b.get("spec") or {}
    return {
        "name": _meta(b).get("name"),
        "type": str(st.get("type") or spec.get("type") or "logical"),
        "state": wd.state_of(b) or "new",
        "storage": str(st.get("storageName") or spec.get("storageName") or ""),
        "size": str(st.get("size") or ""),
        "created": stamp(wd.created(b)),
        "completed": stamp(wd.parse_time(st.get("completed"))),
        "ancestor": wd.ancestor_of(b),
        "error": strip_userinfo(str(st.get("error") or "")),
    }


def _finding(f: wd.WatchdogFinding) -> dict[str, Any]:
    return {
        "code": f.code,
        "reason": f.reason,
        "severity": f.severity.label,
        "object": {"kind": f.ref.kind, "name": f.ref.name},
        "message": f.message,
    }


def build(inputs: Inputs, now: datetime, *, last: int = 10, thresholds: wd.Thresholds | None = None) -> dict[str, Any]:
    """The JSON document (docs/operations.md, "psmdb-backup status -o json")."""
    out: list[dict[str, Any]] = []
    for c in sorted(inputs.clusters, key=lambda c: (c["metadata"]["namespace"], c["metadata"]["name"])):
        ns, name = c["metadata"]["namespace"], c["metadata"]["name"]
        snap = wd.snapshot_of(c, inputs.backups, inputs.restores, inputs.schedules, inputs.leases.get((ns, name)))
        ops = {
            f"{_meta(o).get('name', '')}-{_meta(o).get('uid', '')}": (kind, o)
            for kind, objs in (("Backup", snap.backups), ("Restore", snap.restores))
            for o in objs
        }
        newest = sorted(snap.backups, key=lambda b: str(_meta(b).get("creationTimestamp") or ""), reverse=True)
        backup = (c.get("spec") or {}).get("backup") or {}
        out.append(
            {
                "namespace": ns,
                "name": name,
                "state": str(_status(c).get("state") or ""),
                "backupEnabled": backup.get("enabled") is True,
                "storages": _storages(c),
                "schedules": _schedule_rows(c, snap.schedules, snap.backups, now),
                "running": [
                    _operation(kind, o)
                    for kind, objs in (("Backup", snap.backups), ("Restore", snap.restores))
                    for o in sorted(objs, key=lambda o: str(_meta(o).get("creationTimestamp") or ""))
                    if wd.state_of(o) not in FINAL
                ],
                "lock": _lock(snap.lease, ops),
                "pitr": _pitr(c, snap.backups),
                "backups": [_backup_row(b) for b in newest[:last]],
                "backupCount": len(newest),
                "findings": [_finding(f) for f in wd.detect(snap, now, thresholds)],
            }
        )
    return {"format": FORMAT, "generatedAt": stamp(now), "clusters": out, "warnings": list(inputs.warnings)}


# --------------------------------------------------------------------------------------------------- text (pure)

STYLES = {"bold": "1", "dim": "2", "red": "31", "green": "32", "yellow": "33", "cyan": "36"}
STATE_STYLE = {"ready": "green", "error": "red", "running": "yellow", "requested": "yellow", "waiting": "yellow"}


def _ago(t: str | None, now: datetime) -> str:
    """`2026-12-03 08:01:02 (3m ago)` / `(in 40s)`; `-` when unknown."""
    when = wd.parse_time(t)
    if when is None:
        return "-"
    delta = when - now
    rel = f"in {wd.human(delta)}" if delta.total_seconds() > 0 else f"{wd.human(-delta)} ago"
    return f"{when.strftime('%Y-%m-%d %H:%M:%SZ')} ({rel})"


class Text:
    def __init__(self, color: bool) -> None:
        self.color = color
        self.lines: list[str] = []

    def paint(self, text: str, style: str | None) -> str:
        return f"\x1b[{STYLES[style]}m{text}\x1b[0m" if self.color and style and text else text

    def table(
        self, headers: Sequence[str], rows: Sequence[Sequence[tuple[str, str | None]]], indent: str = "    "
    ) -> None:
        """Aligned columns; widths from the plain text so that colour codes do not shift them."""
        widths = [max([len(h)] + [len(r[i][0]) for r in rows]) for i, h in enumerate(headers)]
        self.lines.append(indent + self.paint("  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip(), "dim"))
        for r in rows:
            cells = [self.paint(text, style) + " " * (w - len(text)) for (text, style), w in zip(r, widths)]
            self.lines.append(indent + "  ".join(cells).rstrip())


def _run_text(run: Mapping[str, Any] | None, now: datetime, state: bool = False) -> str:
    """`3m ago NAME` (and `[state]`): the exact times are in -o json."""
    when = wd.parse_time(run["time"]) if run else None
    if not run or when is None:
        return "-"
    return f"{wd.human(now - when)} ago {run['backup']}" + (f" [{run['state']}]" if state else "")


def render_text(doc: Mapping[str, Any], *, color: bool = False) -> str:
    now = wd.parse_time(doc.get("generatedAt")) or datetime.now(UTC)
    t = Text(color)
    if not doc["clusters"]:
        t.lines.append("no PerconaServerMongoDB clusters found")
    for c in doc["clusters"]:
        if t.lines:
            t.lines.append("")
        enabled = "backups enabled" if c["backupEnabled"] else "backups DISABLED (spec.backup.enabled is not true)"
        t.lines.append(
            t.paint(f"Cluster {c['namespace']}/{c['name']}", "bold") + f"  ({c['state'] or 'no state'}, {enabled})"
        )
        t.lines.append("  Storages" + ("" if c["storages"] else ": none"))
        if c["storages"]:
            t.table(
                ["NAME", "TYPE", "MAIN", "LOCATION"],
                [
                    [(s["name"], None), (s["type"], None), ("*" if s["main"] else "", "bold"), (s["location"], None)]
                    for s in c["storages"]
                ],
            )
        t.lines.append("  Schedules" + ("" if c["schedules"] else ": none"))
        if c["schedules"]:
            t.table(
                ["NAME", "SOURCE", "SCHEDULE", "STORAGE", "ACTIVE", "LAST RUN", "LAST SUCCESS", "NEXT RUN"],
                [
                    [
                        (s["name"], None),
                        (s["source"], None),
                        (s["schedule"], None),
                        (s["storage"] or "(main)", None),
                        ("yes" if s["active"] else "no", None if s["active"] else "dim"),
                        (_run_text(s["lastRun"], now, state=True), None),
                        (_run_text(s["lastSuccess"], now), None),
                        (s["problem"] or _ago(s["nextRun"], now), "red" if s["problem"] else None),
                    ]
                    for s in c["schedules"]
                ],
            )
        t.lines.append("  Running" + ("" if c["running"] else ": nothing"))
        for op in c["running"]:
            t.lines.append(
                f"    {op['kind']} {op['name']}: "
                + t.paint(op["state"], STATE_STYLE.get(op["state"]))
                + f" since {_ago(op['since'], now)}"
            )
        lock = c["lock"]
        if lock is None:
            t.lines.append("  Lock: free")
        else:
            held = lock["heldBy"]
            by = f"{held['kind']} {held['name']} ({held['state']})" if held else f"{lock['holder']} (no such object)"
            t.lines.append(f"  Lock: {lock['lease']} held by {by} since {_ago(lock['since'], now)}")
        p = c["pitr"]
        if not p["enabled"]:
            t.lines.append("  PITR: off")
        elif p["to"]:
            t.lines.append(f"  PITR: restorable from {_ago(p['from'], now)} to {_ago(p['to'], now)}")
        else:
            t.lines.append(
                "  PITR: on; no restorable time reported yet (the operator writes it on the newest ready Backup "
                "once PBM has oplog after a base backup on the main storage)"
            )
        shown = len(c["backups"])
        t.lines.append(
            f"  Backups (newest {shown} of {c['backupCount']})"
            if shown < c["backupCount"]
            else "  Backups" + ("" if shown else ": none")
        )
        if c["backups"]:
            t.table(
                ["NAME", "TYPE", "STATE", "STORAGE", "SIZE", "CREATED", "COMPLETED"],
                [
                    [
                        (b["name"], None),
                        (b["type"], None),
                        (b["state"], STATE_STYLE.get(b["state"])),
                        (b["storage"], None),
                        (b["size"] or "-", None),
                        (_ago(b["created"], now), None),
                        (_ago(b["completed"], now), None),
                    ]
                    for b in c["backups"]
                ],
            )
        t.lines.append("  Findings" + ("" if c["findings"] else ": none"))
        for f in c["findings"]:
            sev = f["severity"].upper()
            t.lines.append(
                "    "
                + t.paint(f"{sev:<7}", "red" if sev == "ERROR" else "yellow")
                + f" {f['code']} {f['reason']}: {f['message']}"
            )
    for w in doc.get("warnings") or []:
        t.lines.append(t.paint(f"warning: {w}", "yellow"))
    return "\n".join(t.lines) + "\n"


# --------------------------------------------------------------------------------------------------- command


def use_color(stream: TextIO) -> bool:
    """Colour only on a terminal, and never with NO_COLOR (https://no-color.org)."""
    return not os.environ.get("NO_COLOR") and hasattr(stream, "isatty") and stream.isatty()


async def status(
    kubeconfig: str | None,
    context: str | None,
    namespace: str | None,
    cluster: str | None,
    last: int,
    thresholds: wd.Thresholds | None = None,
) -> dict[str, Any]:
    api, close = await connect(kubeconfig, context)
    try:
        inputs = await gather(api, namespace, cluster)
    finally:
        await close()
    return build(inputs, datetime.now(UTC), last=last, thresholds=thresholds)


def run(
    kubeconfig: str | None,
    context: str | None,
    namespace: str | None,
    cluster: str | None,
    *,
    output: str = "text",
    last: int = 10,
    thresholds: wd.Thresholds | None = None,
    out: TextIO = sys.stdout,
) -> int:
    try:
        doc = asyncio.run(status(kubeconfig, context, namespace, cluster, last, thresholds))
    except OpsError as e:
        print(f"psmdb-backup status: {e}", file=sys.stderr)
        return 1
    if output == "json":
        out.write(json.dumps(doc, indent=2) + "\n")
    else:
        out.write(render_text(doc, color=use_color(out)))
    return 0
