"""Certificates in Kubernetes (through webhook/kube): the TLS Secret and the webhooks' ``caBundle``."""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..kube import KubeError, call_json, resource_path
from .pki import CA_CERT, SECRET_TYPE, TLS_CERT, TLS_KEY, CertsError

log = logging.getLogger(__name__)

REQUEST_TIMEOUT = 30


@dataclass(frozen=True)
class CertBundle:
    ca_pem: bytes | None
    cert_pem: bytes | None
    key_pem: bytes | None

    @property
    def complete(self) -> bool:
        return bool(self.ca_pem and self.cert_pem and self.key_pem)


@dataclass(frozen=True)
class WebhookPatch:
    """The outcome of :func:`patch_ca_bundle` for one webhook configuration."""

    kind: str
    name: str
    webhooks: int  # entries in the configuration
    changed: int  # entries whose caBundle was set


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def secret_data(ca_pem: bytes, cert_pem: bytes, key_pem: bytes) -> dict[str, str]:
    """The ``data`` of the ``kubernetes.io/tls`` Secret (base64 values)."""
    return {TLS_CERT: _b64(cert_pem), TLS_KEY: _b64(key_pem), CA_CERT: _b64(ca_pem)}


def ca_bundle_ops(webhooks: Sequence[tuple[str, str | None]], ca_bundle_b64: str) -> list[dict[str, Any]]:
    """JSON Patch setting ``clientConfig.caBundle`` on every entry of a webhook configuration's ``webhooks`` list.

    ``webhooks`` is ``[(name, current caBundle or None), ...]`` in list order. Entries that already hold the bundle
    are skipped; each change is guarded by a ``test`` of the entry's name so a concurrent reorder fails the patch
    instead of writing into the wrong entry. Only ``caBundle`` is touched: every other field stays as it is.
    """
    ops: list[dict[str, Any]] = []
    for i, (name, current) in enumerate(webhooks):
        if current == ca_bundle_b64:
            continue
        ops.append({"op": "test", "path": f"/webhooks/{i}/name", "value": name})
        ops.append({"op": "add", "path": f"/webhooks/{i}/clientConfig/caBundle", "value": ca_bundle_b64})
    return ops


async def _request(
    api_client: Any, method: str, path: str, body: Any = None, content_type: str = "application/json"
) -> Any:
    return await call_json(api_client, method, path, body, content_type=content_type, timeout=REQUEST_TIMEOUT)


def _bundle(data: dict[str, str]) -> CertBundle:
    def get(key: str) -> bytes | None:
        value = data.get(key)
        return base64.b64decode(value) if value else None

    return CertBundle(get(CA_CERT), get(TLS_CERT), get(TLS_KEY))


async def read_secret(api_client: Any, namespace: str, name: str) -> CertBundle | None:
    """The certificate material of a Secret, or None when the Secret does not exist. Missing keys are None."""
    try:
        secret = await _request(api_client, "GET", resource_path("Secret", namespace, name))
    except KubeError as e:
        if e.not_found:
            return None
        raise CertsError(str(e.about(f"could not read Secret {namespace}/{name}"))) from None
    return _bundle(secret.get("data") or {})


async def store_secret(
    api_client: Any,
    namespace: str,
    name: str,
    ca_pem: bytes,
    cert_pem: bytes,
    key_pem: bytes,
    *,
    labels: dict[str, str] | None = None,
) -> str:
    """Create or update the ``kubernetes.io/tls`` Secret with ``tls.crt``, ``tls.key`` and ``ca.crt``.

    Other keys, labels and annotations already on the Secret are kept (merge patch of ``data`` only, guarded by the
    ``resourceVersion`` read). Returns ``"created"``, ``"updated"`` or ``"unchanged"``.
    """
    path = resource_path("Secret", namespace, name)
    data = secret_data(ca_pem, cert_pem, key_pem)
    for _attempt in range(5):
        try:
            existing = await _request(api_client, "GET", path)
        except KubeError as e:
            if not e.not_found:
                raise CertsError(str(e.about(f"could not read Secret {namespace}/{name}"))) from None
            metadata: dict[str, Any] = {"name": name, "namespace": namespace}
            if labels:
                metadata["labels"] = labels
            body = {"apiVersion": "v1", "kind": "Secret", "type": SECRET_TYPE, "data": data, "metadata": metadata}
            try:
                await _request(api_client, "POST", resource_path("Secret", namespace), body)
            except KubeError as e2:
                if e2.conflict:  # created meanwhile: update it instead
                    continue
                raise CertsError(str(e2.about(f"could not create Secret {namespace}/{name}"))) from None
            log.info("created Secret %s/%s", namespace, name)
            return "created"
        if existing.get("type") != SECRET_TYPE:
            raise CertsError(
                f"Secret {namespace}/{name} has type {existing.get('type')!r}, not {SECRET_TYPE!r}; the type "
                "of a Secret cannot change: delete it or choose another name"
            )
        current = existing.get("data") or {}
        if all(current.get(k) == v for k, v in data.items()):
            return "unchanged"
        patch = {"metadata": {"resourceVersion": existing["metadata"]["resourceVersion"]}, "data": data}
        try:
            await _request(api_client, "PATCH", path, patch, "application/merge-patch+json")
        except KubeError as e:
            if e.conflict:  # changed since we read it
                continue
            raise CertsError(str(e.about(f"could not update Secret {namespace}/{name}"))) from None
        log.info("updated Secret %s/%s", namespace, name)
        return "updated"
    raise CertsError(f"Secret {namespace}/{name} kept changing while it was being updated; try again")


async def patch_ca_bundle(
    api_client: Any, ca_pem: bytes, mutating_names: Iterable[str] = (), validating_names: Iterable[str] = ()
) -> list[WebhookPatch]:
    """Set ``clientConfig.caBundle`` (base64 of ``ca_pem``) on every webhook entry of the named
    MutatingWebhookConfiguration and ValidatingWebhookConfiguration objects, with a JSON Patch that touches nothing
    else. Entries already holding the bundle are not patched; a configuration that is already right is not written.
    """
    bundle = _b64(ca_pem)
    targets = [("MutatingWebhookConfiguration", n) for n in mutating_names]
    targets += [("ValidatingWebhookConfiguration", n) for n in validating_names]
    results: list[WebhookPatch] = []
    for kind, name in targets:
        path = resource_path(kind, None, name)
        for attempt in range(4):
            try:
                obj = await _request(api_client, "GET", path)
            except KubeError as e:
                if e.not_found:
                    raise CertsError(f"{kind} {name!r} not found; apply the webhook manifests first") from None
                raise CertsError(str(e.about(f"could not read {kind} {name!r}"))) from None
            entries = [
                (w.get("name", ""), (w.get("clientConfig") or {}).get("caBundle")) for w in obj.get("webhooks") or []
            ]
            ops = ca_bundle_ops(entries, bundle)
            if not entries:
                log.warning("%s %r has no webhooks; nothing to patch", kind, name)
            if not ops:
                results.append(WebhookPatch(kind, name, len(entries), 0))
                break
            try:
                await _request(api_client, "PATCH", path, ops, "application/json-patch+json")
            except KubeError as e:
                # a failed `test` (the list changed under us) or a conflict: read again and retry
                if e.status in (409, 422, 400, 500) and attempt < 3:
                    log.info("patching %s %r failed (%s); retrying", kind, name, e)
                    continue
                raise CertsError(str(e.about(f"could not patch caBundle into {kind} {name!r}"))) from None
            log.info("set caBundle on %d of %d webhooks of %s %r", len(ops) // 2, len(entries), kind, name)
            results.append(WebhookPatch(kind, name, len(entries), len(ops) // 2))
            break
    return results
