"""Reading objects from the API server for cross-object rules and pod mutation (kubernetes_asyncio).

`LiveLookup.fetch()` resolves the references the rules asked for, concurrently, with a short timeout and a small
TTL cache. Secrets are reduced to their key names before anything else sees them: rules only need to know which
keys exist, and credentials must never reach a log line or an admission response.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from kubernetes_asyncio import client

from ..policy import kinds
from ..policy.lookup import MISSING, Found, LookupResult, Ref, Unknown
from .client import call_json
from .errors import KubeError
from .resources import resource_path

log = logging.getLogger(__name__)


LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def redact(obj: dict[str, Any]) -> dict[str, Any]:
    """A Secret reduced to its key names (data, stringData and annotation values blanked; kubectl's
    last-applied-configuration, a full copy of the data, dropped); other objects unchanged."""
    if obj.get("kind") != "Secret":
        return obj
    meta = obj.get("metadata")
    meta = meta if isinstance(meta, dict) else {}
    annotations = meta.get("annotations")
    annotations = annotations if isinstance(annotations, dict) else {}
    return {
        **obj,
        "metadata": {**meta, "annotations": {k: "" for k in annotations if k != LAST_APPLIED}},
        "data": {k: "" for k in obj.get("data") or {}},
        "stringData": {k: "" for k in obj.get("stringData") or {}},
    }


# A 403 is a configuration matter, not a flaky API server: most likely Secrets readable only in listed namespaces
# (manifests/components/secrets-per-namespace, Helm webhook.secretNamespaces) and a cluster outside them.
FORBIDDEN_HINT = (
    "the webhook's RBAC does not allow this read; with Secret access per namespace, add this namespace: "
    "docs/install.md#secret-access"
)


class KubeReader:
    """GET one object as a plain dict: None on 404, KubeError otherwise."""

    def __init__(self, api: client.ApiClient, timeout: float) -> None:
        self.api, self.timeout = api, timeout

    async def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            data: dict[str, Any] = await call_json(
                self.api, "GET", resource_path(kind, namespace, name), timeout=self.timeout
            )
        except KubeError as exc:
            if exc.not_found:
                return None
            raise exc.about(f"cannot read {kind} {namespace}/{name}") from None
        data.setdefault("kind", kind)
        return data

    async def list(self, kind: str, namespace: str | None) -> list[dict[str, Any]]:
        """Every object of a checked kind (kinds.CHECKED_KINDS), in one namespace or (None) in all."""
        try:
            data = await call_json(self.api, "GET", resource_path(kind, namespace), timeout=max(self.timeout, 30))
        except KubeError as exc:
            where = f"namespace {namespace}" if namespace else "all namespaces"
            raise exc.about(f"cannot list {kinds.PLURALS.get(kind, kind)} in {where}") from None
        version = kinds.api_version(kind)
        return [{**item, "kind": kind, "apiVersion": version} for item in data.get("items", [])]


class ObjectReader(Protocol):
    """What LiveLookup reads through: a KubeReader, or an in-memory stand-in (the admission benchmark)."""

    timeout: float

    async def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None: ...


@dataclass
class _Entry:
    expires: float
    result: LookupResult


class LiveLookup:
    """Answers for references, from the API server, cached for `ttl` seconds (errors are never cached)."""

    def __init__(self, reader: ObjectReader | None, *, ttl: float = 5.0, size: int = 1024) -> None:
        self.reader, self.ttl, self.size = reader, ttl, size
        self._cache: OrderedDict[Ref, _Entry] = OrderedDict()

    def _cached(self, ref: Ref, now: float) -> LookupResult | None:
        hit = self._cache.get(ref)
        if hit and hit.expires > now:
            self._cache.move_to_end(ref)
            return hit.result
        return None

    async def _one(self, ref: Ref, deadline: float | None) -> LookupResult:
        if self.reader is None:
            return Unknown("no connection to the API server is configured")
        now = time.monotonic()
        timeout = self.reader.timeout if deadline is None else min(self.reader.timeout, deadline - now)
        if timeout <= 0:
            return Unknown(f"could not read {ref[0]} {ref[1]}/{ref[2]}: the request's lookup budget is spent")
        try:
            obj = await asyncio.wait_for(self.reader.get(*ref), timeout)
        except KubeError as exc:
            reason = "timed out" if exc.status == 0 else f"HTTP {exc.status} {exc.reason}"
            if exc.status == 403:
                reason += f" ({FORBIDDEN_HINT})"
            return Unknown(f"could not read {ref[0]} {ref[1]}/{ref[2]}: {reason}")
        except (TimeoutError, OSError, ValueError) as exc:
            return Unknown(f"could not read {ref[0]} {ref[1]}/{ref[2]}: {type(exc).__name__}")
        result: LookupResult = MISSING if obj is None else Found(redact(obj))
        self._cache[ref] = _Entry(now + self.ttl, result)
        while len(self._cache) > self.size:
            self._cache.popitem(last=False)
        return result

    def cached(self, ref: Ref) -> LookupResult | None:
        """The answer fetch() would give at once from the cache, or None."""
        return self._cached(ref, time.monotonic()) if self.reader is not None else None

    def until(self, deadline: float) -> DeadlineLookup:
        """This lookup with every read of one admission request ending by `deadline` (time.monotonic())."""
        return DeadlineLookup(self, deadline)

    async def fetch(self, refs: Iterable[Ref], deadline: float | None = None) -> dict[Ref, LookupResult]:
        """Answers for every ref: cache hits at once, misses read concurrently (one task each), none past
        `deadline`."""
        now = time.monotonic()
        answers: dict[Ref, LookupResult] = {}
        misses: list[Ref] = []
        for ref in dict.fromkeys(refs):
            hit = self._cached(ref, now) if self.reader is not None else None
            if hit is None:
                misses.append(ref)
            else:
                answers[ref] = hit
        if misses:
            answers.update(zip(misses, await asyncio.gather(*(self._one(r, deadline) for r in misses))))
        return answers


@dataclass(frozen=True)
class DeadlineLookup:
    """A `LiveLookup` whose reads share one deadline: the Namespace read and every rule round of a request."""

    live: LiveLookup
    deadline: float

    async def fetch(self, refs: Iterable[Ref]) -> dict[Ref, LookupResult]:
        return await self.live.fetch(refs, self.deadline)

    def cached(self, ref: Ref) -> LookupResult | None:
        return self.live.cached(ref)
