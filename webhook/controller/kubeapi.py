"""The controller's view of the API server: plain-dict requests (GET, create, merge patch, delete), watch streams and
Events, over one kubernetes_asyncio ApiClient. Dicts rather than generated models because the PSMDB kinds are
custom resources and the controller patches small parts of them. Credentials, the error type, the request itself and
the resource map are the shared layer's (webhook/kube/); this module keeps the controller's verbs and paths.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import uuid
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from typing import Any

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from ..kube import KubeError, call_json, resource_path
from ..policy import kinds
from ..times import format_rfc3339

__all__ = ["API_VERSION", "PLURALS", "Events", "Kube", "KubeError", "lease_path", "psmdb_path", "secret_path"]

log = logging.getLogger(__name__)

PLURALS = kinds.PLURALS
API_VERSION = kinds.api_version(kinds.CLUSTER)


def now_rfc3339() -> str:
    return format_rfc3339(datetime.now(UTC))


def psmdb_path(kind: str, namespace: str | None, name: str | None = None, subresource: str | None = None) -> str:
    return resource_path(kind, namespace, name, subresource)


def lease_path(namespace: str, name: str | None = None) -> str:
    return resource_path("Lease", namespace, name)


def secret_path(namespace: str, name: str) -> str:
    return resource_path("Secret", namespace, name)


class Kube:
    def __init__(self, api: client.ApiClient, *, timeout: float = 30.0) -> None:
        self.api = api
        self.timeout = timeout

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        query: Mapping[str, Any] | None = None,
        content_type: str = "application/json",
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """One request; JSON in, JSON out (webhook.kube.call_json: 429 retried, KubeError otherwise)."""
        return await call_json(
            self.api, method, path, body, query=query, content_type=content_type, timeout=timeout or self.timeout
        )

    async def get(self, path: str) -> dict[str, Any] | None:
        try:
            return await self.request("GET", path)
        except KubeError as e:
            if e.not_found:
                return None
            raise

    async def create(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return await self.request("POST", path, dict(body))

    async def replace(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return await self.request("PUT", path, dict(body))

    async def patch(self, path: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        return await self.request("PATCH", path, dict(patch), content_type="application/merge-patch+json")

    async def delete(self, path: str, *, resource_version: str | None = None) -> bool:
        """False when it was already gone."""
        body: dict[str, Any] = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if resource_version:
            body["preconditions"] = {"resourceVersion": resource_version}
        try:
            await self.request("DELETE", path, body)
            return True
        except KubeError as e:
            if e.not_found:
                return False
            raise

    async def watch(
        self,
        path: str,
        *,
        resource_version: str,
        label_selector: str = "",
        timeout_seconds: int = 300,
        field_selector: str = "",
    ) -> AsyncIterator[dict[str, Any]]:
        """The raw watch events (`{"type", "object"}`) of a collection from `resource_version`, with bookmarks."""
        query = {
            "watch": "true",
            "allowWatchBookmarks": "true",
            "resourceVersion": resource_version,
            "timeoutSeconds": str(timeout_seconds),
        }
        if label_selector:
            query["labelSelector"] = label_selector
        if field_selector:  # e.g. metadata.name=NAME: follow one object
            query["fieldSelector"] = field_selector
        try:
            resp = await self.api.call_api(
                path,
                "GET",
                query_params=list(query.items()),
                header_params={"Accept": "application/json"},
                auth_settings=["BearerToken"],
                _preload_content=False,
                _request_timeout=timeout_seconds + 30,
            )
        except ApiException as exc:
            raise KubeError.from_api_exception(exc) from None
        try:
            while True:
                line = await resp.content.readline()
                if not line:
                    return
                line = line.strip()
                if line:
                    yield json.loads(line)
        finally:
            resp.release()


class Events:
    """Kubernetes Events on the objects the controller acts on (core/v1, what `kubectl describe` shows).

    While `run()` is running, `emit` only queues the Event and one sender writes them in order, so that a
    reconcile (a schedule's slot) does not wait for it; a full queue makes `emit` write inline (backpressure,
    nothing dropped). Without `run()` (tests, one-shot tools) `emit` writes at once."""

    def __init__(self, kube: Kube, component: str = "psmdb-backup-controller", *, queue_size: int = 1000) -> None:
        self.kube = kube
        self.component = component
        self.instance = os.environ.get("POD_NAME") or os.uname().nodename
        self.queue_size = queue_size
        self._queue: asyncio.Queue[dict[str, Any]] | None = None

    async def run(self, drain_timeout: float = 5.0) -> None:
        """Send queued Events until cancelled; then send what is still queued, for at most `drain_timeout`."""
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(self.queue_size)
        self._queue = queue
        try:
            while True:
                await self._send(await queue.get())
        finally:
            self._queue = None  # later emits write inline
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(drain_timeout):
                    while not queue.empty():
                        await self._send(queue.get_nowait())

    async def emit(self, obj: Mapping[str, Any], reason: str, message: str, *, warning: bool = False) -> None:
        meta = obj.get("metadata") or {}
        namespace = meta.get("namespace") or "default"
        stamp = now_rfc3339()
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{meta.get('name', 'object')}.{uuid.uuid4().hex[:16]}", "namespace": namespace},
            "involvedObject": {
                "apiVersion": obj.get("apiVersion", API_VERSION),
                "kind": obj.get("kind", ""),
                "name": meta.get("name", ""),
                "namespace": namespace,
                "uid": meta.get("uid", ""),
                "resourceVersion": meta.get("resourceVersion", ""),
            },
            "reason": reason,
            "message": message[:1024],
            "type": "Warning" if warning else "Normal",
            "source": {"component": self.component},
            "reportingComponent": self.component,
            "reportingInstance": self.instance,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        if self._queue is not None:
            with contextlib.suppress(asyncio.QueueFull):
                self._queue.put_nowait(event)
                return
        await self._send(event)

    async def _send(self, event: dict[str, Any]) -> None:
        try:
            await self.kube.create(resource_path("Event", event["metadata"]["namespace"]), event)
        except (TimeoutError, KubeError, OSError) as e:  # an event is never worth failing a reconcile
            obj = event["involvedObject"]
            log.warning("could not record event %s on %s/%s: %s", event["reason"], obj["namespace"], obj["name"], e)
