"""A GCS storage without a credentials Secret works only through GKE Workload Identity: operator 1.23.0 asks PBM for
it (`workloadIdentity: true`), and only PBM 2.13.0 and newer know that setting. Before either, PBM has neither a
key nor Workload Identity and every backup fails."""

from __future__ import annotations

from collections.abc import Iterable

from ..findings import Severity
from ..versions import V1_23, Version
from . import kinds
from .common import mapping, pbm_version_from_image, storage_block, text
from .examples import with_backup
from .registry import RELEASE_1_23, Context, Violation, rule

PBM_WORKLOAD_IDENTITY = Version(2, 13)
FAILURE = '"clientEmail and privateKey are required for GCS credentials"'


@rule(
    "PSB124",
    title="GCS storage without credentials before Workload Identity support",
    severity=Severity.WARNING,
    kind=kinds.CLUSTER,
    needs_backup_enabled=True,
    checked_against=RELEASE_1_23,
    source="OP v1.23.0@b15af500 pkg/psmdb/backup/pbm.go:513,533-539 (no credentialsSecret: workloadIdentity true, "
    "K8SPSMDB-1602, new in 1.23.0; v1.22.0 pkg/psmdb/backup/pbm.go:505-526 sets no credentials); "
    "PBM v2.12.0@05ab6d7e pbm/storage/gcs/google_client.go:31-32 (clientEmail and privateKey are required); "
    "PBM v2.13.0@cd59a62c pbm/storage/gcs/google_client.go:34 (unless workloadIdentity)",
    hint="set gcs.credentialsSecret to a Secret with GCS_CLIENT_EMAIL and GCS_PRIVATE_KEY, or use crVersion 1.23.0 "
    "with PBM 2.13.0 or newer and GKE Workload Identity",
    bad=[
        with_backup("storages: {g: {type: gcs, gcs: {bucket: b}}}").replace(
            "percona-backup-mongodb:2.15.0", "percona-backup-mongodb:2.12.0"
        ),
        with_backup("storages: {g: {type: gcs, gcs: {bucket: b}}}", cr_version="1.22.0"),
    ],
    good=[
        with_backup("storages: {g: {type: gcs, gcs: {bucket: b}}}"),
        with_backup("storages: {g: {type: gcs, gcs: {bucket: b, credentialsSecret: gcs-creds}}}", cr_version="1.22.0"),
    ],
    description="An error when the backup image is PBM older than 2.13.0; a warning on a crVersion before 1.23.0, "
    "because an operator older than 1.23.0 does not ask for Workload Identity (operator 1.23.0 does, whatever "
    "the crVersion).",
)
def gcs_without_credentials(ctx: Context) -> Iterable[Violation]:
    pbm = pbm_version_from_image(mapping(ctx.spec.get("backup")).get("image"))
    for name, storage in ctx.storages.items():
        block = storage_block(storage)
        if storage.get("type") != "gcs" or block is None or text(block.get("credentialsSecret")):
            continue
        path = ("spec", "backup", "storages", name, "gcs", "credentialsSecret")
        if pbm is not None and pbm < PBM_WORKLOAD_IDENTITY:
            yield Violation(
                path,
                f"no credentialsSecret and the backup image is PBM {pbm}: Workload Identity needs PBM "
                f"{PBM_WORKLOAD_IDENTITY}, so every backup to this storage fails with {FAILURE}",
                severity=Severity.ERROR,
            )
        elif ctx.cr_version < V1_23:
            yield Violation(
                path,
                f"no credentialsSecret on crVersion {ctx.cr_version}: an operator older than 1.23.0 passes PBM no "
                f"credentials and no Workload Identity, so every backup to this storage fails with {FAILURE}",
            )
