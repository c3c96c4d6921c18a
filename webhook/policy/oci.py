"""OCI Object Storage (`type: oci`, operator 1.23.0 K8SPSMDB-1644, PBM 2.15.0): the cluster storage and a Restore's
backupSource.oci share one check of the block. Fields: k8spsmdb-docs docs/operator.md `backup.storages.STORAGE-NAME.oci.*`
and docs/backups-storage-oci.md; limits: PBM v2.15.0@6f9fc3bf pbm/storage/oci/config.go:141-161."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..findings import Path, Severity
from ..versions import V1_23, Version
from . import kinds
from .common import mapping, pbm_version_from_image, text
from .examples import with_backup
from .registry import RELEASE_1_23, Context, Violation, rule

PBM_OCI = Version(2, 15)
USER_PRINCIPAL = "userPrincipal"
CREDENTIAL_TYPES = (USER_PRINCIPAL, "okeWorkloadIdentity")
SECRET_KEYS = ("OCI_TENANCY", "OCI_USER", "OCI_FINGERPRINT", "OCI_PRIVATE_KEY")  # OCI_PRIVATE_KEY_PASSPHRASE optional
# PBM's upper limits (exclusive for maxObjSizeGB, inclusive for the others): SetConfig refuses larger values.
LIMITS = {"maxObjSizeGB": (10240, "less than 10240"), "uploadConcurrency": (1000, "at most 1000")}
MAX_PART_SIZE = 50 * 1024**3

OCI = "{type: oci, oci: {bucket: b, namespace: ns, region: us-ashburn-1, credentials: {type: okeWorkloadIdentity}"


def secret_name(block: Mapping[str, Any]) -> str:
    """The user-principal credentials Secret; "" when the storage authenticates otherwise (workload identity)."""
    creds = mapping(block.get("credentials"))
    kind = text(creds.get("type")) or USER_PRINCIPAL  # PBM's default
    return text(creds.get("secretName")) if kind == USER_PRINCIPAL else ""


def _number(value: Any) -> float | None:
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def block_problems(block: Mapping[str, Any], path: Path) -> Iterable[Violation]:
    """What makes PBM unable to use this OCI block."""
    for field in ("bucket", "namespace", "region"):
        if not text(block.get(field)).strip():
            yield Violation(path + (field,), f"oci.{field} is empty: every backup and restore on this storage fails")
    creds = mapping(block.get("credentials"))
    kind = text(creds.get("type"))
    if kind and kind not in CREDENTIAL_TYPES:
        yield Violation(
            path + ("credentials", "type"),
            f'credentials.type "{kind}" is not one the operator documents ({", ".join(CREDENTIAL_TYPES)})',
            severity=Severity.WARNING,
        )
    elif kind in ("", USER_PRINCIPAL) and not text(creds.get("secretName")).strip():
        yield Violation(
            path + ("credentials", "secretName"),
            f"credentials.type is {kind or 'unset (PBM defaults to userPrincipal)'} but credentials.secretName is "
            "empty: PBM has no API signing key, so every backup fails",
        )
    for field, (limit, bound) in LIMITS.items():
        value = _number(block.get(field))
        if value is not None and (value < 0 or value > limit or (field == "maxObjSizeGB" and value == limit)):
            yield Violation(path + (field,), f"{field} is {value}; PBM refuses the configuration unless it is {bound}")
    part = _number(block.get("uploadPartSize"))
    if part is not None and (part < 0 or part > MAX_PART_SIZE):
        yield Violation(path + ("uploadPartSize",), f"uploadPartSize is {part}; PBM accepts at most 50 GiB")
    attempts = _number(mapping(block.get("retryer")).get("maxAttempts"))
    if attempts is not None and attempts < 0:
        yield Violation(path + ("retryer", "maxAttempts"), "retryer.maxAttempts is negative: PBM refuses it")


@rule(
    "PSB122",
    title="OCI storage incomplete or on a PBM without OCI",
    severity=Severity.ERROR,
    kind=kinds.CLUSTER,
    since=V1_23,
    checked_against=RELEASE_1_23,
    needs_backup_enabled=True,
    source="DOCS@db1fbb18 docs/backups-storage-oci.md, docs/operator.md backup.storages.STORAGE-NAME.oci (1.23.0); "
    "OP v1.23.0@b15af500 pkg/apis/psmdb/v1/psmdb_types.go:1396-1405 (no oci type before 1.23.0); PBM v2.15.0@6f9fc3bf pbm/storage/oci/config.go:141-161 (limits; OCI storage since PBM 2.15.0)",
    hint="set oci.bucket, oci.namespace, oci.region and credentials (userPrincipal with secretName, or "
    "okeWorkloadIdentity); use percona-backup-mongodb 2.15.0 or newer",
    bad=[
        with_backup("storages: {oci: {type: oci, oci: {bucket: b, region: us-ashburn-1}}}"),
        with_backup(f"storages: {{oci: {OCI}}}}}}}").replace("2.15.0", "2.14.0"),
        with_backup(f"storages: {{oci: {OCI}, maxObjSizeGB: 20000}}}}}}"),
    ],
    good=[
        with_backup(f"storages: {{oci: {OCI}}}}}}}"),
        with_backup(
            "storages: {oci: {type: oci, oci: {bucket: b, namespace: ns, region: us-ashburn-1, prefix: p, "
            "credentials: {type: userPrincipal, secretName: oci-creds}, uploadConcurrency: 5, maxObjSizeGB: 10}}}"
        ),
    ],
)
def oci_storage(ctx: Context) -> Iterable[Violation]:
    oci = ctx.storages_by_type.get("oci")
    if not oci:
        return
    pbm = pbm_version_from_image(mapping(ctx.spec.get("backup")).get("image"))
    for name, block in oci:
        path = ("spec", "backup", "storages", name)
        yield from block_problems(block, path + ("oci",))
        if pbm is not None and pbm < PBM_OCI:
            yield Violation(
                path + ("type",),
                f"the backup image runs PBM {pbm}, which has no OCI storage (added in PBM {PBM_OCI}): "
                "PBM refuses the configuration",
            )


@rule(
    "PSB517",
    title="Restore from an incomplete OCI backupSource",
    severity=Severity.ERROR,
    kind=kinds.RESTORE,
    since=V1_23,
    checked_against=RELEASE_1_23,
    source="DOCS@db1fbb18 docs/operator.md backup.storages.STORAGE-NAME.oci (1.23.0); PBM v2.15.0@6f9fc3bf pbm/storage/oci/config.go:141-161",
    hint="give backupSource.oci the bucket, namespace, region and credentials of the storage the backup is on",
    bad=[
        "spec: {clusterName: my-cluster, backupSource: {destination: 'oci://b/2026-11-01T10:00:00Z', "
        "oci: {bucket: b, credentials: {type: okeWorkloadIdentity}}}}"
    ],
    good=[
        "spec: {clusterName: my-cluster, backupSource: {destination: 'oci://b/2026-11-01T10:00:00Z', "
        "oci: {bucket: b, namespace: ns, region: us-ashburn-1, credentials: {type: okeWorkloadIdentity}}}}"
    ],
)
def oci_backup_source(ctx: Context) -> Iterable[Violation]:
    block = mapping(ctx.spec.get("backupSource")).get("oci")
    if isinstance(block, dict):
        yield from block_problems(block, ("spec", "backupSource", "oci"))
