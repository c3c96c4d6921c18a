"""The shared Kubernetes access layer (webhook/kube/): one place that loads credentials and builds clients, one error
type with sentences for users, one resource map."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio.client.exceptions import ApiException

from webhook.controller.kubeapi import lease_path, psmdb_path, secret_path
from webhook.kube import (
    CredentialsError,
    KubeError,
    KubeTimeout,
    call_json,
    load_api_client,
    load_configuration,
    resource_path,
)
from webhook.kube import client as kube_client
from webhook.policy import kinds

ROOT = Path(__file__).resolve().parents[2]
CLIENT_MAKERS = re.compile(
    r"\b(?:Ws)?ApiClient\(|load_kube_config|load_incluster_config|new_client_from_config|client\.Configuration\("
)


def test_exactly_one_module_loads_credentials_and_builds_clients() -> None:
    makers = sorted(
        str(path.relative_to(ROOT))
        for top in ("webhook", "tools", "bench")
        for path in (ROOT / top).rglob("*.py")
        if CLIENT_MAKERS.search(path.read_text(encoding="utf-8"))
    )
    assert makers == ["webhook/kube/client.py"]


def test_resource_map_builds_the_paths_of_every_component() -> None:
    assert psmdb_path(kinds.BACKUP, "db", "b1", "status") == (
        "/apis/psmdb.percona.com/v1/namespaces/db/perconaservermongodbbackups/b1/status"
    )
    assert psmdb_path(kinds.CLUSTER, None) == "/apis/psmdb.percona.com/v1/perconaservermongodbs"
    assert psmdb_path(kinds.SCHEDULE, "db") == (
        "/apis/psmdb-backup-webhook.io/v1alpha1/namespaces/db/perconaservermongodbbackupschedules"
    )
    assert lease_path("db", "l") == "/apis/coordination.k8s.io/v1/namespaces/db/leases/l"
    assert secret_path("db", "s") == "/api/v1/namespaces/db/secrets/s"
    assert resource_path("Namespace", "ignored", "db") == "/api/v1/namespaces/db"
    assert resource_path("ValidatingWebhookConfiguration", None, "w") == (
        "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/w"
    )
    with pytest.raises(ValueError, match="no resource known for kind Pod"):
        resource_path("Pod", "db", "p")


@pytest.mark.parametrize(
    ("status", "reason", "expected"),
    [
        (401, "Unauthorized", "did not accept the credentials"),
        (403, "Forbidden", 'User "x" cannot list resource'),
        (403, "Forbidden", "lacks the RBAC permission"),
        (404, "Not Found", "CRD is not installed"),
        (409, "Conflict", "changed since it was read"),
        (500, "Internal Server Error", "HTTP 500 Internal Server Error: boom"),
    ],
)
def test_errors_read_as_sentences(status: int, reason: str, expected: str) -> None:
    body = '{"kind": "Status", "message": "%s"}' % ('User \\"x\\" cannot list resource' if status == 403 else "boom")
    err = KubeError.from_api_exception(_api_exception(status, reason, body), "cannot list backups")
    assert (err.status, err.reason) == (status, reason)
    assert str(err).startswith(f"cannot list backups: HTTP {status} {reason}")
    assert expected in str(err)


def _api_exception(status: int, reason: str, body: str) -> ApiException:
    exc = ApiException(status=status, reason=reason)
    exc.body = body
    return exc


class FakeApi:
    """call_api answering from a list of outcomes (an exception is raised, anything else returned)."""

    def __init__(self, *outcomes: Any) -> None:
        self.outcomes = list(outcomes)
        self.calls = 0

    async def call_api(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


def test_call_json_retries_429_and_raises_one_error_type(monkeypatch: pytest.MonkeyPatch) -> None:
    async def no_sleep(_: float) -> None:
        return None

    monkeypatch.setattr(kube_client.asyncio, "sleep", no_sleep)
    busy = ApiException(status=429, reason="Too Many Requests")
    api = FakeApi(busy, busy, {"items": []})
    assert asyncio.run(call_json(api, "GET", "/api/v1/namespaces")) == {"items": []}  # type: ignore[arg-type]
    assert api.calls == 3
    with pytest.raises(KubeError) as refused:
        asyncio.run(call_json(FakeApi(_api_exception(409, "Conflict", "{}")), "POST", "/x", {}))  # type: ignore[arg-type]
    assert refused.value.conflict
    with pytest.raises(TimeoutError) as slow:  # a KubeTimeout is both
        asyncio.run(call_json(FakeApi(TimeoutError()), "GET", "/x", timeout=2.5))  # type: ignore[arg-type]
    assert (
        isinstance(slow.value, KubeTimeout) and str(slow.value) == "no answer from the API server: timed out after 2.5s"
    )


KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://%s:6443"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: one, context: {cluster: c, user: u}}, {name: two, context: {cluster: c, user: u}}]
current-context: one
"""


@pytest.fixture
def environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No credentials anywhere unless a test puts them there; returns the service account token file."""
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    token = tmp_path / "sa" / "token"
    monkeypatch.setattr(kube_client, "_TOKEN", str(token))
    return token


def _in_pod(token: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    token.parent.mkdir(parents=True)
    token.write_text("sa-token")
    (token.parent / "ca.crt").write_text("not read before a request")
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    monkeypatch.setattr("kubernetes_asyncio.config.incluster_config.SERVICE_TOKEN_FILENAME", str(token))
    monkeypatch.setattr(
        "kubernetes_asyncio.config.incluster_config.SERVICE_CERT_FILENAME", str(token.parent / "ca.crt")
    )


def _kubeconfig(path: Path, host: str) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(KUBECONFIG % host)
    return str(path)


def test_credential_order(environment: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(CredentialsError, match="no Kubernetes credentials: pass --kubeconfig"):
        asyncio.run(load_configuration())
    assert asyncio.run(load_api_client(None)) is None  # the admission server then runs without lookups
    _kubeconfig(tmp_path / "home" / ".kube" / "config", "home.example")
    assert asyncio.run(load_configuration()).host == "https://home.example:6443"
    monkeypatch.setenv("KUBECONFIG", _kubeconfig(tmp_path / "env.yaml", "env.example"))
    assert asyncio.run(load_configuration()).host == "https://env.example:6443"
    _in_pod(environment, monkeypatch)
    assert asyncio.run(load_configuration()).host == "https://10.0.0.1:443"  # in a pod: its service account first
    assert asyncio.run(load_configuration(context="two")).host == "https://env.example:6443"  # a context: kubeconfig
    explicit = _kubeconfig(tmp_path / "given.yaml", "given.example")
    assert asyncio.run(load_configuration(explicit)).host == "https://given.example:6443"  # --kubeconfig wins


def test_credential_errors_name_the_problem(environment: Path, tmp_path: Path) -> None:
    with pytest.raises(CredentialsError, match="kubeconfig '/nonexistent' does not exist"):
        asyncio.run(load_api_client("/nonexistent"))  # asked for explicitly: an error, not None
    given = _kubeconfig(tmp_path / "given.yaml", "given.example")
    with pytest.raises(CredentialsError, match="could not load Kubernetes credentials: .*three"):
        asyncio.run(load_configuration(given, "three"))
