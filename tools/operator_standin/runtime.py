"""What the stand-in's reconcilers share on top of the companion's context (webhook/controller/runtime.py): PBM,
settings, Secrets, the per-cluster lock, and the rule engine (so a Backup or Restore that slipped past a disabled
webhook fails with the webhook's message)."""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import Counter

from webhook.controller import runtime
from webhook.controller.kubeapi import psmdb_path, secret_path
from webhook.controller.pbmread import ClusterRef
from webhook.controller.runtime import TERMINAL, Store, rfc3339
from webhook.kube import LiveLookup
from webhook.policy import kinds
from webhook.policy.common import storage_block
from webhook.policy.live import Enforcement, LookupFailure, decide, evaluate
from webhook.policy.lookup import MISSING, Found, LookupResult, Ref

from .faults import LEAVE_LEASE
from .metrics import Metrics
from .pbm import PBMDriver

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Settings:
    poll_interval: float = 5.0  # how often a running backup/restore is polled
    lock_duration: int = 300  # seconds a per-cluster operation lock lives without renewal
    default_starting_deadline: int = (
        120  # seconds (OP v1.23.0@b15af500 pkg/controller/perconaservermongodbbackup/backup.go:257-271)
    )
    config_retry: float = 30.0  # seconds between attempts to apply a PBM config that failed
    faults: frozenset[str] = frozenset()  # the operator faults reproduced (faults.py)


class StoreLookup:
    """The rule engine's lookups for the controller: PSMDB objects from the informers' caches (no API request per
    validation), everything else (Secrets, ConfigMaps) through the live lookup."""

    def __init__(self, stores: Callable[[str], Store | None], live: LiveLookup) -> None:
        self.stores, self.live = stores, live

    async def fetch(self, refs: Iterable[Ref]) -> dict[Ref, LookupResult]:
        answers: dict[Ref, LookupResult] = {}
        rest = []
        for ref in refs:
            store = self.stores(ref[0])
            if store is None:
                rest.append(ref)
            else:
                obj = store.get((ref[1], ref[2]))
                answers[ref] = MISSING if obj is None else Found(obj)
        if rest:
            answers.update(await self.live.fetch(rest))
        return answers


@dataclass(kw_only=True)
class Ctx(runtime.Ctx):
    driver: PBMDriver
    lookup: LiveLookup
    settings: Settings = field(default_factory=Settings)
    metrics: Metrics = field(default_factory=Metrics)

    def __post_init__(self) -> None:
        super().__post_init__()
        self._cluster_locks: dict[tuple[str, str], asyncio.Lock] = {}

    def cluster_lock(self, key: tuple[str, str]) -> asyncio.Lock:
        """Serialises this process's PBM configuration changes per cluster."""
        return self._cluster_locks.setdefault(key, asyncio.Lock())

    async def validation_error(self, obj: Mapping[str, Any]) -> str | None:
        """The webhook's denial message for `obj` as it is now, or None when the webhook would admit it. Lookups that
        fail do not fail the object (the caller retries on its next pass)."""
        meta = obj.get("metadata") or {}
        lookup = StoreLookup(lambda kind: self.store_for(kind) if kind in kinds.KINDS else None, self.lookup)
        checked = await evaluate(obj, None, lookup)
        for e in checked.rule_errors:
            self.metrics.rule_errors.labels(e.rule).inc()
        decision = decide(
            checked,
            what=f"{obj.get('kind')} {meta.get('namespace')}/{meta.get('name')}",
            mode=Enforcement.ENFORCE,
            on_lookup_failure=LookupFailure.WARN,
        )
        return None if decision.allowed else decision.message

    async def secret(self, namespace: str, name: str) -> dict[str, str] | None:
        obj = await self.kube.get(secret_path(namespace, name))
        if obj is None:
            return None
        out = {k: base64.b64decode(v).decode("utf-8", "replace") for k, v in (obj.get("data") or {}).items()}
        out.update(obj.get("stringData") or {})
        return out

    async def secrets_for(self, namespace: str, names: list[str]) -> Callable[[str], dict[str, str] | None]:
        """A synchronous getter over the Secrets `names` read now (pbmconfig is pure)."""
        data = {n: await self.secret(namespace, n) for n in dict.fromkeys(names) if n}
        return lambda n: data.get(n)

    async def add_finalizer(self, obj: dict[str, Any], finalizer: str) -> dict[str, Any]:
        meta = obj["metadata"]
        have = list(meta.get("finalizers") or [])
        if finalizer in have:
            return obj
        updated = await self.kube.patch(
            psmdb_path(obj["kind"], meta["namespace"], meta["name"]),
            {"metadata": {"finalizers": have + [finalizer], "resourceVersion": meta["resourceVersion"]}},
        )
        return self.remember(updated, obj["kind"])

    def may_steal(self, holder: str) -> bool:
        """Whether a lock held by `holder` may be taken over: when its holder is finished or gone, unless the
        LEAVE_LEASE fault makes the stand-in never steal, as the operator (OP v1.23.0@b15af500 pkg/k8s/lease.go)."""
        return LEAVE_LEASE not in self.settings.faults and self.holder_finished(holder)

    def holder_finished(self, holder: str) -> bool:
        """Whether the Backup or Restore holding a cluster lock (`<name>-<uid>`) is gone or finished, so the lock
        can be taken over (a lock the operator left, or one whose owner was deleted while waiting)."""
        uid = holder[-36:]
        for store in (self.backups, self.restores):
            for o in store.values():
                if o["metadata"].get("uid") == uid:
                    return (o.get("status") or {}).get("state") in TERMINAL
        return True


def cluster_ref(cluster: Mapping[str, Any]) -> ClusterRef:
    return ClusterRef(cluster["metadata"]["namespace"], cluster["metadata"]["name"])


def credential_secrets(storage: Mapping[str, Any]) -> list[str]:
    """Secret names a storage spec reads (for pbmconfig)."""
    body = storage_block(storage) or {}
    names = [str(body.get("credentialsSecret") or "")]
    sse = body.get("serverSideEncryption") or {}
    if isinstance(sse, Mapping):
        names.append(str(sse.get("secretName") or ""))
    return [n for n in names if n]


def cluster_secrets(cluster: Mapping[str, Any]) -> list[str]:
    spec = cluster.get("spec") or {}
    names = [
        n
        for st in ((spec.get("backup") or {}).get("storages") or {}).values()
        if isinstance(st, Mapping)
        for n in credential_secrets(st)
    ]
    sse = (spec.get("secrets") or {}).get("sse")
    return names + ([sse] if sse else [])


class StateMachine:
    """What the Backup and Restore reconcilers share: dispatch by state, and the one way a state is written (status
    patch, transition metric, log line and Event)."""

    noun = ""  # "backup" or "restore": log lines and the log field that names the object
    logger = log

    def __init__(self, ctx: Ctx) -> None:
        self.ctx = ctx

    def transitions(self) -> Counter:
        raise NotImplementedError

    def _log(self, obj: Mapping[str, Any], level: int, msg: str, *args: Any, **fields: Any) -> None:
        meta = obj["metadata"]
        self.logger.log(
            level,
            msg,
            *args,
            extra={
                "namespace": meta["namespace"],
                self.noun: meta["name"],
                "cluster": (obj.get("spec") or {}).get("clusterName"),
                **fields,
            },
        )

    async def _set(
        self,
        obj: dict[str, Any],
        state: str,
        event: str,
        message: str,
        *,
        warning: bool = False,
        always: bool = False,
        **status: Any,
    ) -> dict[str, Any]:
        """Write `state` (with `status` fields); a changed state, or `always`, is also logged and evented."""
        ctx, meta = self.ctx, obj["metadata"]
        old_state = (obj.get("status") or {}).get("state", "")
        updated = await ctx.patch_status(obj, {"state": state, "lastTransition": rfc3339(ctx.clock()), **status})
        if state != old_state:
            self.transitions().labels(meta["namespace"], obj["spec"].get("clusterName", ""), state).inc()
        if state != old_state or always:
            self._log(
                obj,
                logging.WARNING if warning else logging.INFO,
                "%s %s/%s: %s -> %s: %s",
                self.noun,
                meta["namespace"],
                meta["name"],
                old_state or "new",
                state,
                message,
                state=state,
            )
            await ctx.events.emit(obj, event, message, warning=warning)
        return updated

    async def reconcile(self, obj: dict[str, Any]) -> float | None:
        """One pass; returns seconds until the next pass, None when nothing is pending."""
        if obj["metadata"].get("deletionTimestamp"):
            return await self._finalize(obj)
        state = (obj.get("status") or {}).get("state", "")
        if state in TERMINAL:
            return None
        cluster = self.ctx.cluster_of(obj)
        if state in ("", "waiting"):
            return await self._new(obj, cluster, state)
        return await self._active(obj, cluster)

    async def _new(self, obj: dict[str, Any], cluster: dict[str, Any] | None, state: str) -> float | None:
        raise NotImplementedError

    async def _active(self, obj: dict[str, Any], cluster: dict[str, Any] | None) -> float | None:
        raise NotImplementedError

    async def _finalize(self, obj: dict[str, Any]) -> float | None:
        raise NotImplementedError
