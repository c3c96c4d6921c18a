"""`psmdb-backup backup` and `psmdb-backup restore`: create the operator's PerconaServerMongoDBBackup or
PerconaServerMongoDBRestore from the terminal, checked first by the admission webhook's rules with live lookups (same
messages; errors stop before anything is created, warnings are printed), and with `--wait` follow the object until
the operator finishes it. The operator runs it; this command only writes the object.

Exit codes: 0 created (with --wait: ready); 1 rejected, failed (the operator's status.error is printed), timed out,
or the API could not be used; 2 usage errors (argparse); 130 Ctrl-C while waiting (the object is left to run).
"""

from __future__ import annotations

import asyncio
import re
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from ..kube import KubeReader, LiveLookup
from ..policy import kinds
from ..policy.common import main_storage
from ..policy.live import Decision, Enforcement, LookupFailure, decide, evaluate
from ..redaction import strip_userinfo
from . import watchdog as wd
from .kubeapi import KubeError
from .status import Api, OpsError, collection, connect, resource

PITR_DATE = re.compile(r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01]) ([01]\d|2[0-3]):[0-5]\d:[0-5]\d$")
DELETE_BACKUP_FINALIZER = (
    "percona.com/delete-backup"  # deleting the Backup deletes its data (deploy/backup/backup.yaml)
)
NOUN = {kinds.BACKUP: "Backup", kinds.RESTORE: "Restore"}


def pitr_target(value: str) -> str:
    """argparse `type` of --pitr: `latest` or a UTC time `YYYY-MM-DD HH:MM:SS` (the Restore CRD's own pattern)."""
    if value == "latest" or PITR_DATE.match(value):
        return value
    import argparse

    raise argparse.ArgumentTypeError(f"expected 'YYYY-MM-DD HH:MM:SS' (UTC) or latest, got {value!r}")


# --------------------------------------------------------------------------------------------------- objects (pure)


def _metadata(namespace: str, cluster: str, name: str | None, what: str) -> dict[str, Any]:
    # generateName: two runs in the same second never collide, and the name still says whose it is
    meta: dict[str, Any] = {"namespace": namespace}
    if name:
        meta["name"] = name
    else:
        meta["generateName"] = f"{cluster[:40].rstrip('-.')}-{what}-"
    return meta


def backup_object(
    namespace: str,
    cluster: str,
    storage: str,
    *,
    type: str | None = None,
    compression: str | None = None,
    level: int | None = None,
    name: str | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {"clusterName": cluster, "storageName": storage}
    if type:
        spec["type"] = type
    if compression:
        spec["compressionType"] = compression
    if level is not None:
        spec["compressionLevel"] = level
    meta = _metadata(namespace, cluster, name, "backup")
    meta["finalizers"] = [DELETE_BACKUP_FINALIZER]
    return {"apiVersion": kinds.api_version(kinds.BACKUP), "kind": kinds.BACKUP, "metadata": meta, "spec": spec}


def restore_object(
    namespace: str, cluster: str, backup: str, *, pitr: str | None = None, name: str | None = None
) -> dict[str, Any]:
    spec: dict[str, Any] = {"clusterName": cluster, "backupName": backup}
    if pitr == "latest":
        spec["pitr"] = {"type": "latest"}
    elif pitr:
        spec["pitr"] = {"type": "date", "date": pitr}
    return {
        "apiVersion": kinds.api_version(kinds.RESTORE),
        "kind": kinds.RESTORE,
        "metadata": _metadata(namespace, cluster, name, "restore"),
        "spec": spec,
    }


def pitr_base(backups: Sequence[Mapping[str, Any]], cluster: str, target: str) -> Mapping[str, Any] | None:
    """The newest ready Backup of the cluster a point-in-time restore to `target` can start from: written before the
    target (the operator refuses a base whose lastWriteAt is not before it), never a snapshot (`external`) one."""
    when = None if target == "latest" else wd.parse_time(target.replace(" ", "T") + "Z")
    fit = [
        b
        for b in backups
        if (b.get("spec") or {}).get("clusterName") == cluster
        and wd.state_of(b) == "ready"
        and str((b.get("status") or {}).get("type") or (b.get("spec") or {}).get("type") or "logical") != "external"
        and (when is None or ((t := wd.parse_time((b.get("status") or {}).get("lastWriteAt"))) and t < when))
    ]
    return max(fit, key=lambda b: str((b.get("metadata") or {}).get("creationTimestamp") or ""), default=None)


# --------------------------------------------------------------------------------------------------- check, create


async def check(api: Api, obj: Mapping[str, Any]) -> Decision:
    """The admission webhook's decision for this new object (enforce mode); objects the rules could not read are
    warnings here, as the webhook itself still decides at admission when it is installed."""
    meta = obj["metadata"]
    lookup = LiveLookup(KubeReader(api.kube.api, 10.0))
    checked = await evaluate(obj, None, lookup)
    what = f"{obj['kind']} {meta['namespace']}/{meta.get('name') or meta.get('generateName')}"
    return decide(checked, what=what, mode=Enforcement.ENFORCE, on_lookup_failure=LookupFailure.WARN)


async def get_cluster(api: Api, namespace: str, cluster: str) -> dict[str, Any]:
    path = collection(kinds.CLUSTER, namespace) + f"/{cluster}"
    found = await api.call(api.kube.get(path), "get", resource(kinds.CLUSTER), namespace)
    if found is None:
        raise OpsError(f"cluster {cluster} not found in namespace {namespace} (kubectl get psmdb -n {namespace})")
    return found


async def create(api: Api, obj: Mapping[str, Any]) -> dict[str, Any]:
    ns = obj["metadata"]["namespace"]
    try:
        return await api.kube.create(collection(obj["kind"], ns), obj)
    except KubeError as e:
        if "denied the request" in e.message:  # an admission webhook (ours, when installed) said no
            raise OpsError(f"the API server refused the {NOUN[obj['kind']]}: {e.message}", e.status) from None
        raise api_error(api, e, "create", obj["kind"], ns) from None
    except OSError as e:
        raise api_error(api, e, "create", obj["kind"], ns) from None


def api_error(api: Api, e: BaseException, verb: str, kind: str, ns: str) -> OpsError:
    from .status import explain

    return explain(e, verb, resource(kind), ns, api.host)


# --------------------------------------------------------------------------------------------------- follow


class Progress:
    """On a terminal one line rewritten in place (state, elapsed, size); otherwise a plain line per change."""

    def __init__(self, out: TextIO, tty: bool, label: str) -> None:
        self.out, self.tty, self.label = out, tty, label
        self.started = time.monotonic()
        self.last_line = ""
        self.obj: Mapping[str, Any] = {}

    def line(self) -> str:
        st = self.obj.get("status") or {}
        elapsed = int(time.monotonic() - self.started)
        size = f", size {st['size']}" if st.get("size") else ""
        return f"{self.label}: {st.get('state') or 'new'} (elapsed {elapsed // 60}:{elapsed % 60:02d}{size})"

    def update(self, obj: Mapping[str, Any]) -> None:
        self.obj = obj
        if self.tty:
            self.tick()
            return
        state = str((obj.get("status") or {}).get("state") or "new")
        if state != self.last_line:
            self.last_line = state
            self.out.write(self.line() + "\n")
            self.out.flush()

    def tick(self) -> None:
        if self.tty:
            self.out.write("\r\x1b[K" + self.line())
            self.out.flush()

    def done(self) -> None:
        if self.tty:
            self.out.write("\n")
            self.out.flush()


async def follow(api: Api, obj: Mapping[str, Any], progress: Progress) -> dict[str, Any]:
    """Watch one object until its state is ready or error; the watch is re-opened (from a fresh read when its
    resourceVersion is too old) until then. OpsError when it is deleted meanwhile."""
    kind, ns, name = obj["kind"], obj["metadata"]["namespace"], obj["metadata"]["name"]
    path = collection(kind, ns)
    current: Mapping[str, Any] = obj
    while True:
        progress.update(current)
        if wd.state_of(current) in wd.FINAL_STATES:
            return dict(current)
        rv = str(current["metadata"].get("resourceVersion") or "")
        try:
            async for event in api.kube.watch(
                path, resource_version=rv, field_selector=f"metadata.name={name}", timeout_seconds=60
            ):
                kind_of_event, o = event.get("type"), event.get("object") or {}
                if kind_of_event == "DELETED":
                    raise OpsError(f"{NOUN[kind]} {ns}/{name} was deleted while waiting for it")
                if kind_of_event in ("ADDED", "MODIFIED"):
                    current = o
                    progress.update(current)
                    if wd.state_of(current) in wd.FINAL_STATES:
                        return dict(current)
                elif kind_of_event == "ERROR":  # 410 Gone: our resourceVersion is too old
                    break
        except KubeError as e:
            if e.status != 410:
                raise api_error(api, e, "watch", kind, ns) from None
        except OSError as e:
            raise api_error(api, e, "watch", kind, ns) from None
        fresh = await api.call(api.kube.get(f"{path}/{name}"), "get", resource(kind), ns)
        if fresh is None:
            raise OpsError(f"{NOUN[kind]} {ns}/{name} was deleted while waiting for it")
        current = fresh


async def _ticker(progress: Progress) -> None:
    while True:
        await asyncio.sleep(1)
        progress.tick()


# --------------------------------------------------------------------------------------------------- the commands


@dataclass
class Request:
    """What the command line asked for; `build` makes the object once the cluster is known."""

    kubeconfig: str | None
    context: str | None
    namespace: str
    cluster: str
    build: Callable[[Api, dict[str, Any]], Any]  # async (api, cluster) -> the object to create
    wait: bool = False
    timeout: float | None = None
    out: TextIO = sys.stdout
    err: TextIO = sys.stderr
    created: dict[str, Any] = field(default_factory=dict)  # what the API server answered (for Ctrl-C's message)


def _summary(obj: Mapping[str, Any]) -> str:
    st, spec = obj.get("status") or {}, obj.get("spec") or {}
    if obj["kind"] == kinds.BACKUP:
        parts = [f"storage {st.get('storageName') or spec.get('storageName')}", f"type {st.get('type') or 'logical'}"]
        if st.get("size"):
            parts.append(f"size {st['size']}")
        if st.get("destination"):
            parts.append(f"destination {strip_userinfo(str(st['destination']))}")  # may be s3://user:pass@host/...
        return ", ".join(parts)
    target = spec.get("pitr") or {}
    return f"from backup {spec.get('backupName')}" + (
        f", to {target.get('date') or 'the latest restorable time'}" if target else ""
    )


def failure(label: str, obj: Mapping[str, Any]) -> str:
    """The line for a Backup or Restore that ended in error: its status.error without URL userinfo."""
    return f"{label} failed: {strip_userinfo(str((obj.get('status') or {}).get('error') or 'no error message'))}"


async def _run(req: Request, progress_tty: bool) -> int:
    api, close = await connect(req.kubeconfig, req.context)
    try:
        cluster = await get_cluster(api, req.namespace, req.cluster)
        obj = await req.build(api, cluster)
        decision = await check(api, obj)
        for w in decision.warnings:
            print(f"warning: {w}", file=req.err)
        if not decision.allowed:
            print(decision.message, file=req.err)
            print(f"nothing was created (fix the {NOUN[obj['kind']]} and run again)", file=req.err)
            return 1
        made = await create(api, obj)
        req.created.update(made)
        label = f"{NOUN[obj['kind']]} {req.namespace}/{made['metadata']['name']}"
        print(f"{label} created ({_summary(made)})", file=req.out, flush=True)
        if not req.wait:
            return 0
        progress = Progress(req.out, progress_tty, label)
        ticker = asyncio.create_task(_ticker(progress))
        try:
            final = await asyncio.wait_for(follow(api, made, progress), req.timeout)
        except TimeoutError:
            progress.done()
            state = wd.state_of(progress.obj) or "new"
            print(
                f"timed out after {req.timeout:g}s waiting for {label} (state {state}); it is left to the operator: "
                f"psmdb-backup status {req.cluster} -n {req.namespace}",
                file=req.err,
            )
            return 1
        finally:
            ticker.cancel()
        progress.done()
        if wd.state_of(final) == "ready":
            print(f"{label} is ready ({_summary(final)})", file=req.out)
            return 0
        print(failure(label, final), file=req.err)
        return 1
    finally:
        await close()


def run(req: Request) -> int:
    tty = hasattr(req.out, "isatty") and req.out.isatty()
    try:
        return asyncio.run(_run(req, tty))
    except OpsError as e:
        print(f"psmdb-backup: {e}", file=req.err)
        return 1
    except KeyboardInterrupt:
        name = (req.created.get("metadata") or {}).get("name")
        if not name:
            print("\ninterrupted; nothing was created", file=req.err)
            return 130
        plural = kinds.PLURALS[req.created["kind"]]
        print(
            f"\nstopped waiting; {NOUN[req.created['kind']]} {req.namespace}/{name} is left to the operator and keeps "
            f"going (delete it with: kubectl delete {plural} {name} -n {req.namespace})",
            file=req.err,
        )
        return 130


def backup_request(
    kubeconfig: str | None,
    context: str | None,
    namespace: str,
    cluster: str,
    *,
    storage: str | None,
    type: str | None,
    compression: str | None,
    level: int | None,
    name: str | None,
    **kw: Any,
) -> Request:
    async def build(api: Api, found: dict[str, Any]) -> dict[str, Any]:
        chosen = storage or main_storage(found.get("spec") or {})[0]
        if not chosen:
            why = main_storage(found.get("spec") or {})[1]
            raise OpsError(f"cluster {namespace}/{cluster} has no main storage ({why}): pass --storage NAME")
        return backup_object(namespace, cluster, chosen, type=type, compression=compression, level=level, name=name)

    return Request(kubeconfig, context, namespace, cluster, build, **kw)


def restore_request(
    kubeconfig: str | None,
    context: str | None,
    namespace: str,
    cluster: str,
    *,
    backup: str | None,
    pitr: str | None,
    name: str | None,
    **kw: Any,
) -> Request:
    async def build(api: Api, found: dict[str, Any]) -> dict[str, Any]:
        base = backup
        if base is None and pitr is not None:
            backups = await api.list(kinds.BACKUP, namespace)
            chosen = pitr_base(backups, cluster, pitr)
            if chosen is None:
                before = "" if pitr == "latest" else f" written before {pitr} UTC"
                raise OpsError(
                    f"no ready Backup of cluster {namespace}/{cluster}{before} to start the point-in-time restore "
                    "from: pass --backup NAME"
                )
            base = str(chosen["metadata"]["name"])
            print(
                f"point-in-time restore from Backup {base} (the newest ready one that fits)",
                file=kw.get("out", sys.stdout),
            )
        assert base is not None  # argparse requires --backup or --pitr
        return restore_object(namespace, cluster, base, pitr=pitr, name=name)

    return Request(kubeconfig, context, namespace, cluster, build, **kw)
