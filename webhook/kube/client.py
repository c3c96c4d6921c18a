"""The one place that loads Kubernetes credentials and builds API clients, and the one JSON request every component
sends through them.

Credentials are taken in this order (docs/architecture.md, "Kubernetes access"):
1. an explicit kubeconfig file (`--kubeconfig`), with `--context` if given;
2. the in-cluster service account, when running in a pod and no `--context` was asked for;
3. `$KUBECONFIG` or `~/.kube/config`, with `--context` if given.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping
from typing import Any

from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

from .errors import CredentialsError, KubeError, KubeTimeout

log = logging.getLogger(__name__)

NO_CREDENTIALS = "no Kubernetes credentials: pass --kubeconfig, set KUBECONFIG, or run in a pod with a service account"
_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"


def _in_cluster() -> bool:
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and os.path.exists(_TOKEN)


async def load_configuration(kubeconfig: str | None = None, context: str | None = None) -> client.Configuration:
    """The client Configuration from the first source of the module's order; CredentialsError when there is none or
    it cannot be read."""
    cfg = client.Configuration()
    try:
        if kubeconfig:
            if not os.path.exists(kubeconfig):
                raise CredentialsError(f"kubeconfig {kubeconfig!r} does not exist")
            found = kubeconfig
        elif _in_cluster() and not context:
            config.load_incluster_config(client_configuration=cfg)
            return cfg
        else:  # every file $KUBECONFIG lists, merged as kubectl does, else ~/.kube/config
            found = os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
            if not any(os.path.exists(os.path.expanduser(p)) for p in found.split(os.pathsep) if p):
                raise CredentialsError(NO_CREDENTIALS)
        # persist_config=False: a refreshed token is never written back into the user's file
        await config.load_kube_config(
            config_file=found, context=context, client_configuration=cfg, persist_config=False
        )
    except (config.ConfigException, OSError, ValueError) as exc:
        raise CredentialsError(f"could not load Kubernetes credentials: {exc}") from None
    return cfg


async def new_api_client(kubeconfig: str | None = None, context: str | None = None) -> client.ApiClient:
    """An ApiClient from the module's credential order (CredentialsError without any). The caller closes it."""
    return client.ApiClient(configuration=await load_configuration(kubeconfig, context))


async def load_api_client(kubeconfig: str | None, context: str | None = None) -> client.ApiClient | None:
    """Like new_api_client, but None (logged) when no credentials exist and none were asked for explicitly: the
    admission server then runs without cross-object lookups."""
    try:
        return await new_api_client(kubeconfig, context)
    except CredentialsError as exc:
        if kubeconfig or context:
            raise
        log.info("%s: cross-object lookups will be unavailable", exc)
        return None


def exec_client(configuration: client.Configuration) -> Any:
    """A websocket client (pods/exec) with the same credentials as an ApiClient's `configuration`."""
    from kubernetes_asyncio.stream import WsApiClient

    return WsApiClient(configuration=configuration)


async def call_json(
    api: client.ApiClient,
    method: str,
    path: str,
    body: Any = None,
    *,
    query: Mapping[str, Any] | None = None,
    content_type: str = "application/json",
    timeout: float = 30.0,
    attempts: int = 6,
) -> Any:
    """One request, JSON in and out. A 429 (e.g. "storage is (re)initializing" while the API server fills the watch
    cache of a resource) is retried after its Retry-After (at most 5 s), `attempts` times in all. Raises KubeError
    (KubeTimeout when no answer came within `timeout`)."""
    headers = {"Accept": "application/json"}
    if body is not None:
        headers["Content-Type"] = content_type
    for attempt in range(attempts):
        try:
            return await api.call_api(
                path,
                method,
                query_params=list((query or {}).items()),
                header_params=headers,
                body=body,
                response_types_map={200: "object", 201: "object", 202: "object"},
                auth_settings=["BearerToken"],
                _return_http_data_only=True,
                _request_timeout=timeout,
            )
        except ApiException as exc:
            if exc.status == 429 and attempt < attempts - 1:
                retry_after = str(exc.headers.get("Retry-After", "1") if exc.headers else "1")
                await asyncio.sleep(min(float(retry_after) if retry_after.isdigit() else 1.0, 5.0))
                continue
            raise KubeError.from_api_exception(exc) from None
        except TimeoutError:
            raise KubeTimeout(timeout) from None
    raise AssertionError("unreachable")
