"""The Kubernetes access layer every component uses (admission, lint --cluster, the scan and policy reports, certs,
the controller): one credential loader and client factory (client.py), one error type (errors.py), one resource map
(resources.py), and the cached, redacting object reads of the rules (lookup.py)."""

from .client import call_json, exec_client, load_api_client, load_configuration, new_api_client
from .errors import CredentialsError, KubeError, KubeTimeout
from .lookup import LAST_APPLIED, DeadlineLookup, KubeReader, LiveLookup, ObjectReader, redact
from .resources import RESOURCES, Resource, resource, resource_path

__all__ = [
    "LAST_APPLIED",
    "RESOURCES",
    "CredentialsError",
    "DeadlineLookup",
    "KubeError",
    "KubeReader",
    "KubeTimeout",
    "LiveLookup",
    "ObjectReader",
    "Resource",
    "call_json",
    "exec_client",
    "load_api_client",
    "load_configuration",
    "new_api_client",
    "redact",
    "resource",
    "resource_path",
]
