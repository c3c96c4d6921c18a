"""What the companion's reconcilers share: the API, the caches the informers fill (one store per watched kind),
Events, metrics, Lease reads and the clock. The companion writes only Kubernetes objects, never PBM."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..policy import kinds
from ..times import format_rfc3339
from .kubeapi import Events, Kube, psmdb_path
from .leases import Leases
from .metrics import Metrics

Store = dict[tuple[str, str], dict[str, Any]]

TERMINAL = ("ready", "error")  # Backup and Restore states that end an object's work


def utcnow() -> datetime:
    return datetime.now(UTC)


rfc3339 = format_rfc3339  # status and annotation times: whole seconds, UTC


@dataclass
class Ctx:
    kube: Kube
    metrics: Metrics = field(default_factory=Metrics)
    clock: Callable[[], datetime] = utcnow
    stores: dict[str, Store] = field(default_factory=lambda: {k: {} for k in kinds.KINDS})

    def __post_init__(self) -> None:
        self.events = Events(self.kube)
        self.leases = Leases(self.kube, self.clock)

    @property
    def clusters(self) -> Store:
        return self.stores[kinds.CLUSTER]

    @property
    def backups(self) -> Store:
        return self.stores[kinds.BACKUP]

    @property
    def restores(self) -> Store:
        return self.stores[kinds.RESTORE]

    def store_for(self, kind: str) -> Store:
        """The informer cache of `kind` (a kind registered later gets an empty store)."""
        return self.stores.setdefault(kind, {})

    def remember(self, obj: dict[str, Any], kind: str) -> dict[str, Any]:
        """Keep what the API server answered in the cache at once (the watch event follows)."""
        obj.setdefault("kind", kind)
        obj["metadata"].pop("managedFields", None)  # as the informers cache it
        self.store_for(kind)[(obj["metadata"]["namespace"], obj["metadata"]["name"])] = obj
        return obj

    async def patch_status(self, obj: Mapping[str, Any], status: Mapping[str, Any]) -> dict[str, Any]:
        meta = obj["metadata"]
        updated = await self.kube.patch(
            psmdb_path(obj["kind"], meta["namespace"], meta["name"], "status"), {"status": dict(status)}
        )
        return self.remember(updated, obj["kind"])

    def cluster_of(self, obj: Mapping[str, Any]) -> dict[str, Any] | None:
        meta = obj.get("metadata") or {}
        name = (obj.get("spec") or {}).get("clusterName") or ""
        return self.clusters.get((meta.get("namespace", ""), name)) if name else None
