"""The one resource map: kind -> API group, version, plural and scope, and the request paths built from it. The
custom kinds come from webhook/policy/kinds.py; the built-in kinds are the few this project reads or writes."""

from __future__ import annotations

from dataclasses import dataclass

from ..policy import kinds


@dataclass(frozen=True)
class Resource:
    group: str  # "" for the core API
    version: str
    plural: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str | None = None, name: str | None = None, subresource: str | None = None) -> str:
        """The object (`name`) or the collection (in `namespace`, or in all namespaces when it is empty)."""
        path = "/apis/" + self.api_version if self.group else "/api/" + self.version
        if self.namespaced and namespace:
            path += f"/namespaces/{namespace}"
        path += f"/{self.plural}"
        if name:
            path += f"/{name}"
            if subresource:
                path += f"/{subresource}"
        return path


def _custom(kind: str) -> Resource:
    group, version = kinds.api_version(kind).split("/")
    return Resource(group, version, kinds.PLURALS[kind])


RESOURCES: dict[str, Resource] = {
    **{kind: _custom(kind) for kind in kinds.CHECKED_KINDS},
    "Secret": Resource("", "v1", "secrets"),
    "ConfigMap": Resource("", "v1", "configmaps"),
    "Event": Resource("", "v1", "events"),
    "Namespace": Resource("", "v1", "namespaces", namespaced=False),
    "Lease": Resource("coordination.k8s.io", "v1", "leases"),
    kinds.SNAPSHOT_CLASS: Resource("snapshot.storage.k8s.io", "v1", "volumesnapshotclasses", namespaced=False),
    "MutatingWebhookConfiguration": Resource(
        "admissionregistration.k8s.io", "v1", "mutatingwebhookconfigurations", namespaced=False
    ),
    "ValidatingWebhookConfiguration": Resource(
        "admissionregistration.k8s.io", "v1", "validatingwebhookconfigurations", namespaced=False
    ),
}


def resource(kind: str) -> Resource:
    try:
        return RESOURCES[kind]
    except KeyError:
        raise ValueError(f"no resource known for kind {kind}") from None


def resource_path(kind: str, namespace: str | None, name: str | None = None, subresource: str | None = None) -> str:
    """The path of an object (or, without `name`, of a collection) of `kind`; a cluster-scoped kind ignores
    `namespace`."""
    return resource(kind).path(namespace, name, subresource)
