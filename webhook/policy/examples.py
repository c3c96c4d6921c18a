"""Example manifests of the rules: each example's YAML is merged onto the kind's header below."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import yaml

from . import kinds

if TYPE_CHECKING:
    from .lookup import RecordingLookup

HEADERS: dict[str, dict[str, Any]] = {
    kinds.CLUSTER: {
        "apiVersion": "psmdb.percona.com/v1",
        "kind": kinds.CLUSTER,
        "metadata": {"name": "my-cluster", "namespace": "default"},
    },
    kinds.BACKUP: {
        "apiVersion": "psmdb.percona.com/v1",
        "kind": kinds.BACKUP,
        "metadata": {"name": "backup1", "namespace": "default"},
    },
    kinds.RESTORE: {
        "apiVersion": "psmdb.percona.com/v1",
        "kind": kinds.RESTORE,
        "metadata": {"name": "restore1", "namespace": "default"},
    },
    kinds.SCHEDULE: {
        "apiVersion": kinds.api_version(kinds.SCHEDULE),
        "kind": kinds.SCHEDULE,
        "metadata": {"name": "nightly", "namespace": "default"},
    },
}


def build(kind: str, fragment: str) -> dict[str, Any]:
    """The full object of an example: header + fragment (the fragment's top-level keys win)."""
    body = yaml.safe_load(fragment) or {}
    if "kind" in body:  # a full object
        return body
    return {**HEADERS[kind], **body}


def load_all(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if isinstance(d, dict)]


# A cluster that Backup and Restore examples can name (`others=`).
CLUSTER = """\
apiVersion: psmdb.percona.com/v1
kind: PerconaServerMongoDB
metadata: {name: my-cluster, namespace: default}
spec:
  crVersion: 1.23.0
  replsets: [{name: rs0, size: 3}]
  backup:
    enabled: true
    image: percona/percona-backup-mongodb:2.15.0
    storages:
      s3-main: {type: s3, main: true, s3: {bucket: backups, region: us-east-1, credentialsSecret: s3-creds}}
      azure-blob: {type: azure, azure: {container: backups, credentialsSecret: azure-creds}}
status: {state: ready}
"""

SHARDED_CLUSTER = CLUSTER.replace(
    "  replsets: [{name: rs0, size: 3}]", "  replsets: [{name: rs0, size: 3}]\n  sharding: {enabled: true}"
)

READY_BACKUP = """\
apiVersion: psmdb.percona.com/v1
kind: PerconaServerMongoDBBackup
metadata: {name: backup1, namespace: default}
spec: {clusterName: my-cluster, storageName: s3-main, type: logical}
status:
  state: ready
  type: logical
  pbmName: "2026-11-01T10:00:00Z"
  lastWriteAt: "2026-11-01T10:05:00Z"
"""

PHYSICAL_BACKUP = READY_BACKUP.replace("type: logical}", "type: physical}").replace(
    "  type: logical", "  type: physical"
)


def with_backup(body: str, *, cr_version: str = "1.23.0", enabled: bool = True, spec: str = "") -> str:
    """A cluster example fragment: `body` is the inside of spec.backup after enabled and image (flow YAML)."""
    inner = f"enabled: {str(enabled).lower()}, image: percona/percona-backup-mongodb:2.15.0" + (
        f", {body}" if body else ""
    )
    extra = f", {spec}" if spec else ""
    return f"spec: {{crVersion: {cr_version}, replsets: [{{name: rs0, size: 3}}]{extra}, backup: {{{inner}}}}}"


def lookup_for(others: tuple[str, ...]) -> RecordingLookup:
    """The Lookup an example runs with: each entry is a YAML object (found), or `MISSING <Kind> <name>` for an
    object the live API would report as absent (namespace default; none for cluster-scoped kinds)."""
    from .lookup import MISSING, Found, LookupResult, RecordingLookup

    known: dict[tuple[str, str, str], LookupResult] = {}
    for item in others:
        if item.startswith("MISSING "):
            _, kind, name = item.split()
            known[(kind, "" if kind in kinds.CLUSTER_SCOPED else "default", name)] = MISSING
            continue
        for doc in load_all(item):
            meta = doc.get("metadata", {})
            ns = "" if doc["kind"] in kinds.CLUSTER_SCOPED else meta.get("namespace", "default")
            known[(doc["kind"], ns, meta["name"])] = Found(doc)
    return RecordingLookup(known=known)


def example_object(rule_kinds: tuple[str, ...], fragment: str) -> dict[str, Any]:
    """The object an example describes. Rules of several kinds give cluster examples with a spec.backup."""
    kind = rule_kinds[0]
    if len(rule_kinds) > 1 and kinds.CLUSTER in rule_kinds and "backup: {" not in fragment:
        kind = next(k for k in rule_kinds if k != kinds.CLUSTER)
    return build(kind, fragment)
