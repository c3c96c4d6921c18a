"""List + watch of one collection into a local store, resumable: a watch restarts from the last resourceVersion it
saw (bookmarks keep it fresh on quiet collections); `410 Gone` (the version fell out of the API server's window)
means a fresh list, after which vanished objects are reported as deleted. Every change calls `on_change(kind, obj,
deleted)`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from .kubeapi import Kube, KubeError

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (namespace, name)
OnChange = Callable[[str, dict[str, Any], bool], None]


def key_of(obj: dict[str, Any]) -> Key:
    meta = obj.get("metadata") or {}
    return meta.get("namespace", ""), meta.get("name", "")


class Informer:
    def __init__(
        self,
        kube: Kube,
        kind: str,
        path: str,
        on_change: OnChange,
        *,
        label_selector: str = "",
        api_version: str = "",
        on_restart: Callable[[str], None] | None = None,
        watch_timeout: int = 300,
    ) -> None:
        self.kube, self.kind, self.path = kube, kind, path
        self.label_selector = label_selector
        self.api_version = api_version
        self.on_change = on_change
        self.on_restart = on_restart or (lambda reason: None)
        self.watch_timeout = watch_timeout
        self.store: dict[Key, dict[str, Any]] = {}
        self.synced = asyncio.Event()
        self.resource_version = ""

    def _typed(self, obj: dict[str, Any]) -> dict[str, Any]:
        (obj.get("metadata") or {}).pop("managedFields", None)  # no reader; most of a small object's cached memory
        obj.setdefault("kind", self.kind)
        if self.api_version:
            obj.setdefault("apiVersion", self.api_version)
        return obj

    async def _list(self) -> None:
        query = {"labelSelector": self.label_selector} if self.label_selector else {}
        data = await self.kube.request("GET", self.path, query=query, timeout=60)
        fresh = {key_of(o): self._typed(o) for o in data.get("items") or []}
        gone = [k for k in self.store if k not in fresh]
        for k in gone:
            self.on_change(self.kind, self.store.pop(k), True)
        for k, obj in fresh.items():
            old = self.store.get(k)
            self.store[k] = obj
            if old is None or (old.get("metadata") or {}).get("resourceVersion") != obj["metadata"].get(
                "resourceVersion"
            ):
                self.on_change(self.kind, obj, False)
        self.resource_version = (data.get("metadata") or {}).get("resourceVersion", "")
        self.synced.set()

    def _apply(self, event: dict[str, Any]) -> bool:
        """False when the watch must restart with a fresh list."""
        kind, obj = event.get("type"), event.get("object") or {}
        if kind == "ERROR":
            code = obj.get("code")
            log.info("watch of %s ended: %s %s", self.kind, code, obj.get("message", ""))
            self.on_restart("expired" if code == 410 else "error")
            if code == 410:
                self.resource_version = ""
            return False
        rv = (obj.get("metadata") or {}).get("resourceVersion")
        if rv:
            self.resource_version = rv
        if kind == "BOOKMARK":
            return True
        obj = self._typed(obj)
        if kind == "DELETED":
            self.store.pop(key_of(obj), None)
            self.on_change(self.kind, obj, True)
        else:
            self.store[key_of(obj)] = obj
            self.on_change(self.kind, obj, False)
        return True

    async def run(self) -> None:
        backoff = 0.5
        while True:
            try:
                if not self.resource_version:
                    await self._list()
                async for event in self.kube.watch(
                    self.path,
                    resource_version=self.resource_version,
                    label_selector=self.label_selector,
                    timeout_seconds=self.watch_timeout,
                ):
                    if not self._apply(event):
                        break
                    backoff = 0.5
                else:
                    self.on_restart("closed")  # the server's timeoutSeconds: resume from the last version
            except asyncio.CancelledError:
                raise
            except KubeError as e:
                if e.status == 410:
                    self.resource_version = ""
                self.on_restart("expired" if e.status == 410 else "error")
                log.warning("watch of %s failed: %s; retrying in %.1fs", self.kind, e, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30)
            except Exception as e:  # connection reset, timeout, bad JSON: resume from the last version
                self.on_restart("error")
                log.warning("watch of %s broke: %s: %s; retrying in %.1fs", self.kind, type(e).__name__, e, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30)
