"""coordination.k8s.io/v1 Leases: leader election between controller replicas, and the per-cluster operation lock
that backups and restores share (`psmdb-<cluster>-backup-lock`, holder `<name>-<uid>`, as the operator names it).

Both use optimistic concurrency: a create or an update with the observed resourceVersion; a 409 means someone else
won and we read again. Expiry is judged against the lease's `renewTime` plus its duration, with our clock.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ..times import format_rfc3339, parse_rfc3339
from .kubeapi import Kube, KubeError, lease_path

log = logging.getLogger(__name__)


def _now() -> datetime:
    return datetime.now(UTC)


def _micro(t: datetime) -> str:  # Lease times are MicroTime
    return format_rfc3339(t, 6)


def expired(lease: dict[str, Any], now: datetime) -> bool:
    spec = lease.get("spec") or {}
    if not spec.get("holderIdentity"):
        return True
    duration = spec.get("leaseDurationSeconds")
    renewed = parse_rfc3339(spec.get("renewTime")) or parse_rfc3339(spec.get("acquireTime"))
    if not duration or renewed is None:
        return False  # the operator's locks have no duration: never expire on their own
    return now > renewed + timedelta(seconds=int(duration))


def lock_name(cluster: str) -> str:
    return f"psmdb-{cluster}-backup-lock"


def holder_of(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('name', '')}-{meta.get('uid', '')}"


@dataclass
class Held:
    """Another holder has the lock."""

    holder: str


class Leases:
    def __init__(self, kube: Kube, clock: Callable[[], datetime] = _now) -> None:
        self.kube = kube
        self.clock = clock

    async def acquire(
        self, namespace: str, name: str, holder: str, duration: int, may_steal: Callable[[str], bool] = lambda h: False
    ) -> Held | None:
        """Take or renew the lease for `holder`; None on success. Taken over when it is free, expired, or
        `may_steal(current holder)` says the holder is gone."""
        now = self.clock()
        path = lease_path(namespace, name)
        lease = await self.kube.get(path)
        spec = {
            "holderIdentity": holder,
            "leaseDurationSeconds": duration,
            "acquireTime": _micro(now),
            "renewTime": _micro(now),
            "leaseTransitions": 0,
        }
        if lease is None:
            try:
                await self.kube.create(
                    lease_path(namespace),
                    {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": name}, "spec": spec},
                )
                return None
            except KubeError as e:
                if e.conflict:
                    lease = await self.kube.get(path)
                    if lease is None:
                        return Held("")
                else:
                    raise
        current = (lease.get("spec") or {}).get("holderIdentity") or ""
        old = lease.get("spec") or {}
        if current == holder:
            spec.update(
                acquireTime=old.get("acquireTime") or spec["acquireTime"],
                leaseTransitions=old.get("leaseTransitions") or 0,
            )
        elif current and not expired(lease, now) and not may_steal(current):
            return Held(current)
        else:
            spec["leaseTransitions"] = int(old.get("leaseTransitions") or 0) + 1
            if current:
                log.info("lease %s/%s: taking over from %s", namespace, name, current)
        try:
            await self.kube.replace(path, {**lease, "spec": spec})
        except KubeError as e:
            if e.conflict:
                return Held(current or "?")
            raise
        return None

    async def release(self, namespace: str, name: str, holder: str) -> bool:
        """Delete the lease if `holder` holds it (the operator's ReleaseLease); True if it was ours."""
        path = lease_path(namespace, name)
        lease = await self.kube.get(path)
        if lease is None or (lease.get("spec") or {}).get("holderIdentity") != holder:
            return False
        try:
            return await self.kube.delete(path, resource_version=lease["metadata"]["resourceVersion"])
        except KubeError as e:
            if e.conflict:
                return False
            raise

    async def holder(self, namespace: str, name: str) -> str:
        lease = await self.kube.get(lease_path(namespace, name))
        if lease is None or expired(lease, self.clock()):
            return ""
        return (lease.get("spec") or {}).get("holderIdentity") or ""


class LeaderElector:
    """client-go's leader election, small: campaign until we hold the Lease, renew every `retry` seconds, step down
    (and call `on_lost`) if a renewal has not succeeded for `renew_deadline` seconds. As in client-go, a renewal in
    flight is cancelled at the renew deadline: acting stops then, not when a hanging API call finally returns, and
    renew_deadline < duration leaves the standby no window to take over while we still act. `release()` on shutdown
    lets the other replica take over at once instead of after the lease duration."""

    def __init__(
        self,
        leases: Leases,
        namespace: str,
        name: str,
        identity: str,
        *,
        duration: int = 15,
        renew_deadline: float = 10.0,
        retry: float = 2.0,
    ) -> None:
        if not 0 < retry < renew_deadline < duration:
            raise ValueError(
                f"leader election needs 0 < retry ({retry}) < renew deadline ({renew_deadline}) < lease duration ({duration})"
            )
        self.leases, self.namespace, self.name, self.identity = leases, namespace, name, identity
        self.duration, self.renew_deadline, self.retry = duration, renew_deadline, retry
        self.leading = asyncio.Event()
        self.lost = asyncio.Event()

    async def _try(self) -> bool:
        try:
            return await self.leases.acquire(self.namespace, self.name, self.identity, self.duration) is None
        except (TimeoutError, KubeError, OSError) as e:
            log.warning("leader election: %s", e)
            return False

    async def _renew(self, budget: float) -> bool:
        """One renewal, cancelled when `budget` (the time left before the renew deadline) runs out."""
        if budget <= 0:
            return False
        try:
            return await asyncio.wait_for(self._try(), timeout=budget)
        except TimeoutError:
            log.warning("leader election: renewal still pending at the renew deadline; cancelled")
            return False

    async def run(self) -> None:
        while not await self._try():
            await asyncio.sleep(self.retry)
        log.info("leader election: %s is the leader (lease %s/%s)", self.identity, self.namespace, self.name)
        self.leading.set()
        loop = asyncio.get_running_loop()
        last_ok = loop.time()
        while True:
            await asyncio.sleep(self.retry)
            if await self._renew(self.renew_deadline - (loop.time() - last_ok)):
                last_ok = loop.time()
            elif loop.time() - last_ok >= self.renew_deadline:
                log.error("leader election: could not renew the lease for %.0fs; stepping down", self.renew_deadline)
                self.leading.clear()
                self.lost.set()
                return

    async def release(self) -> None:
        if self.leading.is_set():
            try:
                await self.leases.release(self.namespace, self.name, self.identity)
            except (TimeoutError, KubeError, OSError) as e:
                log.warning("leader election: could not release the lease: %s", e)
