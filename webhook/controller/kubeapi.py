"""The controller's view of the API server: plain-dict requests (GET, create, merge patch, delete), watch streams and
Events, over one kubernetes_asyncio ApiClient. Dicts rather than generated models because the PSMDB kinds are
custom resources and the controller patches small parts of them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import uuid
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from typing import Any

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from ..policy import kinds

log = logging.getLogger(__name__)

PLURALS = {
    kinds.CLUSTER: "perconaservermongodbs",
    kinds.BACKUP: "perconaservermongodbbackups",
    kinds.RESTORE: "perconaservermongodbrestores",
}
API_VERSION = f"{kinds.GROUP}/v1"


class KubeError(Exception):
    """A request the API server refused (status is the HTTP status; message the Status object's message)."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message or f"HTTP {status} {reason}")
        self.status, self.reason, self.message = status, reason, message or f"HTTP {status} {reason}"

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def conflict(self) -> bool:
        return self.status == 409


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def psmdb_path(kind: str, namespace: str | None, name: str | None = None, subresource: str | None = None) -> str:
    path = f"/apis/{API_VERSION}/" + (f"namespaces/{namespace}/" if namespace else "") + PLURALS[kind]
    if name:
        path += f"/{name}"
    if subresource:
        path += f"/{subresource}"
    return path


def lease_path(namespace: str, name: str | None = None) -> str:
    return f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases" + (f"/{name}" if name else "")


def secret_path(namespace: str, name: str) -> str:
    return f"/api/v1/namespaces/{namespace}/secrets/{name}"


def _error(exc: ApiException) -> KubeError:
    message = ""
    try:
        body = json.loads(exc.body or "{}")
        message = body.get("message", "") if isinstance(body, dict) else ""
    except (ValueError, TypeError):
        message = str(exc.body or "")[:500]
    return KubeError(exc.status or 0, exc.reason or "", message)


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
        """One request; JSON in, JSON out. 429 (API server still filling a watch cache) is retried briefly."""
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        for attempt in range(6):
            try:
                return await self.api.call_api(
                    path,
                    method,
                    query_params=list((query or {}).items()),
                    header_params=headers,
                    body=body,
                    response_types_map={200: "object", 201: "object", 202: "object"},
                    auth_settings=["BearerToken"],
                    _return_http_data_only=True,
                    _request_timeout=timeout or self.timeout,
                )
            except ApiException as exc:
                if exc.status == 429 and attempt < 5:
                    await asyncio.sleep(1.0)
                    continue
                raise _error(exc) from None
        raise AssertionError("unreachable")

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

    async def json_patch(self, path: str, ops: list[Mapping[str, Any]]) -> dict[str, Any]:
        return await self.request("PATCH", path, list(ops), content_type="application/json-patch+json")

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
        self, path: str, *, resource_version: str, label_selector: str = "", timeout_seconds: int = 300
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
            raise _error(exc) from None
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
    """Kubernetes Events on the objects the controller acts on (core/v1, what `kubectl describe` shows)."""

    def __init__(self, kube: Kube, component: str = "psmdb-backup-controller") -> None:
        self.kube = kube
        self.component = component
        self.instance = os.environ.get("POD_NAME") or os.uname().nodename

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
        try:
            await self.kube.create(f"/api/v1/namespaces/{namespace}/events", event)
        except (TimeoutError, KubeError, OSError) as e:  # an event is never worth failing a reconcile
            log.warning("could not record event %s on %s/%s: %s", reason, namespace, meta.get("name"), e)
