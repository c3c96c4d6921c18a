"""Rules on spec.backup.storages of a PerconaServerMongoDB (OP v1.23.0@b15af500 pkg/apis/psmdb/v1/psmdb_types.go:1296-1405
storage specs, psmdb_defaults.go:623-638 main storage; OP v1.23.0@b15af500 pkg/psmdb/backup/pbm.go:400-476 the PBM storage config)."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from typing import Any

from ..findings import Path, Severity
from ..versions import LATEST, V1_20, V1_22, V1_23, Version
from . import kinds, oci
from .common import STORAGE_TYPES, mapping, pbm_version_from_image, quoted, storage_block, text
from .examples import with_backup
from .lookup import Found, Missing
from .registry import RELEASE_1_23, Context, Example, Violation, rule

ROOT = ("spec", "backup", "storages")
PBM_OSS = Version(2, 12)


def _by_type(ctx: Context, storage_type: str) -> Iterable[tuple[str, Mapping[str, Any]]]:
    """(name, block) of every storage of `storage_type` that has its block."""
    return ctx.storages_by_type.get(storage_type, ())


S3 = "s3-main: {type: s3, s3: {bucket: backups, credentialsSecret: s3-creds"


@rule(
    "PSB101",
    title="Unsupported storage type",
    severity=Severity.ERROR,
    checked_against=RELEASE_1_23,
    kind=kinds.CLUSTER,
    needs_backup_enabled=True,
    source="OP v1.23.0@b15af500 pkg/psmdb/backup/pbm.go:763-765 (unsupported backup storage type); oci since 1.23.0 (K8SPSMDB-1644)",
    hint="use one of: " + ", ".join(STORAGE_TYPES),
    bad=[with_backup("storages: {blob: {type: blob, blob: {bucket: b}}}")],
    good=[with_backup("storages: {s3-main: {type: s3, s3: {bucket: b}}}")],
)
def unsupported_storage_type(ctx: Context) -> Iterable[Violation]:
    """Any other type passes the CRD, then PBM configuration fails and the cluster goes to `error`. On a crVersion
    newer than the operator this project models, a new type may well exist: a warning, never an error."""
    newer = ctx.cr_version > LATEST
    for name, st in ctx.storages.items():
        kind = st.get("type")
        if isinstance(kind, str) and kind not in STORAGE_TYPES:
            if newer:
                yield Violation(
                    ROOT + (name, "type"),
                    f'storage type "{kind}" is unknown to operator {LATEST}, the newest this linter models; '
                    f"crVersion {ctx.cr_version} may support it: not checked",
                    severity=Severity.WARNING,
                )
                continue
            yield Violation(
                ROOT + (name, "type"),
                f'storage type "{kind}" is not supported by the operator: '
                'the cluster goes to error with "unsupported backup storage type"',
            )


@rule(
    "PSB102",
    title="Storage has no block for its type",
    severity=Severity.ERROR,
    kind=kinds.CLUSTER,
    needs_backup_enabled=True,
    source="OP v1.23.0@b15af500 pkg/psmdb/backup/pbm.go:729-765 (only the block matching `type` is read)",
    hint='add the block named after the type, e.g. "s3: {bucket: ...}" for "type: s3"',
    bad=[with_backup("storages: {s3-main: {type: s3}}")],
    good=[with_backup("storages: {s3-main: {type: s3, s3: {bucket: backups}}}")],
)
def missing_type_block(ctx: Context) -> Iterable[Violation]:
    """Without its block a storage has no bucket, path or credentials, so PBM cannot use it."""
    for name, st in ctx.storages.items():
        kind = st.get("type")
        if kind in STORAGE_TYPES and storage_block(st) is None:
            others = [t for t in STORAGE_TYPES if isinstance(st.get(t), dict)]
            also = f" (it has a {others[0]} block: is the type wrong?)" if others else ""
            yield Violation(ROOT + (name,), f'type is "{kind}" but there is no "{kind}" block{also}')


@rule(
    "PSB103",
    title="Block of another storage type is ignored",
    severity=Severity.WARNING,
    kind=kinds.CLUSTER,
    source="OP v1.23.0@b15af500 pkg/psmdb/backup/pbm.go:729-765 (sub-objects of other types are ignored)",
    hint="remove the block, or change the type if it is the one you meant",
    bad=[with_backup("storages: {s3-main: {type: s3, s3: {bucket: b}, azure: {container: c, credentialsSecret: a}}}")],
    good=[with_backup("storages: {s3-main: {type: s3, s3: {bucket: b}}}")],
)
def ignored_type_block(ctx: Context) -> Iterable[Violation]:
    for name, st in ctx.storages.items():
        kind = st.get("type")
        for other in STORAGE_TYPES:
            if other != kind and isinstance(st.get(other), dict) and kind in STORAGE_TYPES:
                yield Violation(ROOT + (name, other), f'the "{other}" block is ignored because type is "{kind}"')


@rule(
    "PSB104",
    title="No main storage among several",
    severity=Severity.ERROR,
    kind=kinds.CLUSTER,
    since=V1_20,
    needs_backup_enabled=True,
    source="OP v1.23.0@b15af500 pkg/apis/psmdb/v1/psmdb_defaults.go:623-638 (main backup storage is not specified)",
    hint="mark exactly one storage with main: true",
    bad=[with_backup(f"storages: {{{S3}}}}}, gcs: {{type: gcs, gcs: {{bucket: b}}}}}}")],
    good=[
        with_backup(f"storages: {{{S3}}}, main: true}}, gcs: {{type: gcs, gcs: {{bucket: b}}}}}}"),
        with_backup(f"storages: {{{S3}}}}}}}"),
    ],
)
def no_main_storage(ctx: Context) -> Iterable[Violation]:
    """With more than one storage the operator needs to know which one is PBM's main storage."""
    all_st = ctx.storages
    if len(all_st) > 1 and not any(st.get("main") is True for st in all_st.values()):
        yield Violation(
            ROOT,
            f"{len(all_st)} storages ({quoted(all_st)}) but none has main: true: the cluster goes "
            'to error with "main backup storage is not specified"',
        )


@rule(
    "PSB105",
    title="Several main storages",
    severity=Severity.ERROR,
    kind=kinds.CLUSTER,
    since=V1_20,
    needs_backup_enabled=True,
    source="OP v1.23.0@b15af500 pkg/apis/psmdb/v1/psmdb_defaults.go:623-638 (multiple main backup storages are specified)",
    hint="keep main: true on one storage only",
    bad=[with_backup(f"storages: {{{S3}}}, main: true}}, gcs: {{type: gcs, main: true, gcs: {{bucket: b}}}}}}")],
    good=[with_backup(f"storages: {{{S3}}}, main: true}}, gcs: {{type: gcs, gcs: {{bucket: b}}}}}}")],
)
def several_main_storages(ctx: Context) -> Iterable[Violation]:
    all_st = ctx.storages
    mains = [n for n, st in all_st.items() if st.get("main") is True]
    if len(all_st) > 1 and len(mains) > 1:
        for name in mains[1:]:
            yield Violation(
                ROOT + (name, "main"),
                f"storages {quoted(mains)} all have main: true: the cluster goes to "
                'error with "multiple main backup storages are specified"',
            )


def _required_fields(ctx: Context, storage_type: str, fields: dict[str, str]) -> Iterable[Violation]:
    for name, block in _by_type(ctx, storage_type):
        for field, consequence in fields.items():
            if not text(block.get(field)).strip():
                yield Violation(ROOT + (name, storage_type, field), f"{field} is empty: {consequence}")


@rule(
    "PSB106",
    title="S3 storage without a bucket",
    severity=Severity.ERROR,
    kind=kinds.CLUSTER,
    needs_backup_enabled=True,
    source="OP v1.23.0@b15af500 config/crd/bases/psmdb.percona.com_perconaservermongodbs.yaml:622-669 (bucket key only); PBM v2.15.0@6f9fc3bf pbm/storage/s3/s3.go:208-235 (fails at run time)",
    hint="set s3.bucket to the bucket name (without s3://)",
    bad=[with_backup('storages: {s3-main: {type: s3, s3: {bucket: ""}}}')],
    good=[with_backup("storages: {s3-main: {type: s3, s3: {bucket: backups}}}")],
)
def s3_bucket(ctx: Context) -> Iterable[Violation]:
    """The CRD only requires the key; an empty bucket passes and every backup then fails."""
    yield from _required_fields(ctx, "s3", {"bucket": "every backup to this storage fails"})


def _sse(block: Mapping[str, Any]) -> Mapping[str, Any]:
    return mapping(block.get("serverSideEncryption"))


@rule(
    "PSB107",
    title="S3 storage with two encryption methods",
    severity=Severity.ERROR,
    kind=kinds.CLUSTER,
    needs_backup_enabled=True,
    source="OP v1.23.0@b15af500 pkg/apis/psmdb/v1/psmdb_defaults.go:645-648",
    hint="set either (sseAlgorithm and kmsKeyID) or (sseCustomerAlgorithm and sseCustomerKey)",
    bad=[
        with_backup(
            f"storages: {{{S3}, serverSideEncryption: {{sseAlgorithm: 'aws:kms', kmsKeyID: k, "
            "sseCustomerAlgorithm: AES256, sseCustomerKey: a}}}}"
        )
    ],
    good=[with_backup(f"storages: {{{S3}, serverSideEncryption: {{sseAlgorithm: 'aws:kms', kmsKeyID: k}}}}}}}}")],
)
def s3_two_sse_methods(ctx: Context) -> Iterable[Violation]:
    for name, block in _by_type(ctx, "s3"):
        sse = _sse(block)
        if text(sse.get("sseAlgorithm")) and text(sse.get("sseCustomerAlgorithm")):
            yield Violation(
                ROOT + (name, "s3", "serverSideEncryption"),
                "For S3 storage only one encryption method can be used: both sseAlgorithm and "
                "sseCustomerAlgorithm are set",
            )


@rule(
    "PSB108",
    title="S3 encryption without a key",
    severity=Severity.ERROR,
    kind=kinds.CLUSTER,
    needs_backup_enabled=True,
    source="OP v1.23.0@b15af500 pkg/psmdb/backup/pbm.go:421-476 (no KmsKeyID / no SseCustomerKey specified)",
    hint="set the key in the storage, or name a Secret in spec.secrets.sse with KMS_KEY_ID / SSE_CUSTOMER_KEY",
    bad=[with_backup(f"storages: {{{S3}, serverSideEncryption: {{sseAlgorithm: 'aws:kms'}}}}}}}}")],
    good=[
        with_backup(
            f"storages: {{{S3}, serverSideEncryption: {{sseAlgorithm: 'aws:kms'}}}}}}}}", spec="secrets: {sse: my-sse}"
        )
    ],
)
def s3_sse_without_key(ctx: Context) -> Iterable[Violation]:
    """The key can come from the field or from the spec.secrets.sse Secret; with neither, PBM config fails."""
    if text(mapping(ctx.spec.get("secrets")).get("sse")):
        return
    for name, block in _by_type(ctx, "s3"):
        sse, path = _sse(block), ROOT + (name, "s3", "serverSideEncryption")
        if not text(block.get("credentialsSecret")):
            continue  # PSB109: SSE is dropped altogether without a credentials Secret
        if text(sse.get("sseAlgorithm")) and not text(sse.get("kmsKeyID")):
            yield Violation(
                path + ("kmsKeyID",),
                "sseAlgorithm is set but there is no kmsKeyID and no "
                'spec.secrets.sse: the cluster goes to error with "no KmsKeyID specified"',
            )
        if text(sse.get("sseCustomerAlgorithm")) and not text(sse.get("sseCustomerKey")):
            yield Violation(
                path + ("sseCustomerKey",),
                "sseCustomerAlgorithm is set but there is no sseCustomerKey "
                'and no spec.secrets.sse: the cluster goes to error with "no SseCustomerKey specified"',
            )


@rule(
    "PSB109",
    title="S3 encryption is dropped without a credentials Secret",
    severity=Severity.WARNING,
    kind=kinds.CLUSTER,
    source="OP v1.23.0@b15af500 pkg/psmdb/backup/pbm.go:421-476 (SSE sits inside the credentialsSecret branch)",
    hint="set s3.credentialsSecret, or use bucket default encryption with IRSA / instance profiles",
    bad=[with_backup("storages: {s3-main: {type: s3, s3: {bucket: b, serverSideEncryption: {sseAlgorithm: AES256}}}}")],
    good=[with_backup(f"storages: {{{S3}, serverSideEncryption: {{sseAlgorithm: AES256, kmsKeyID: k}}}}}}}}")],
)
def s3_sse_dropped(ctx: Context) -> Iterable[Violation]:
    for name, block in _by_type(ctx, "s3"):
        sse = _sse(block)
        if any(text(v) for v in sse.values()) and not text(block.get("credentialsSecret")):
            yield Violation(
                ROOT + (name, "s3", "serverSideEncryption"),
                "server-side encryption settings are "
                "silently ignored because s3.credentialsSecret is not set: backups are not encrypted this way",
            )


@rule(
    "PSB110",
    title="Invalid S3 customer encryption key",
    severity=Severity.ERROR,
    kind=kinds.CLUSTER,
    needs_backup_enabled=True,
    source="PBM v2.15.0@6f9fc3bf pbm/storage/s3/s3.go:418 (SseCustomerAlgorithm specified with invalid SseCustomerKey)",
    hint="sseCustomerKey must be the base64 encoding of a 32-byte key (openssl rand -base64 32)",
    bad=[
        with_backup(
            f"storages: {{{S3}, serverSideEncryption: {{sseCustomerAlgorithm: AES256, sseCustomerKey: not-base64}}}}}}}}"
        )
    ],
    good=[
        with_backup(
            f"storages: {{{S3}, serverSideEncryption: {{sseCustomerAlgorithm: AES256, "
            "sseCustomerKey: MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=}}}}"
        )
    ],
)
def s3_customer_key(ctx: Context) -> Iterable[Violation]:
    for name, block in _by_type(ctx, "s3"):
        key = text(_sse(block).get("sseCustomerKey"))
        if not key:
            continue
        path = ROOT + (name, "s3", "serverSideEncryption", "sseCustomerKey")
        try:
            raw = base64.b64decode(key, validate=True)
        except (binascii.Error, ValueError):
            yield Violation(
                path,
                "sseCustomerKey is not valid base64: every upload fails with "
                '"SseCustomerAlgorithm specified with invalid SseCustomerKey"',
            )
            continue
        if len(raw) != 32:
            yield Violation(
                path,
                f"sseCustomerKey decodes to {len(raw)} bytes; AES256 needs 32: uploads are refused",
                severity=Severity.WARNING,
            )


@rule(
    "PSB111",
    title="Setting that has no effect on S3 storages",
    severity=Severity.WARNING,
    kind=kinds.CLUSTER,
    source="OP v1.23.0@b15af500 pkg/apis/psmdb/v1/psmdb_types.go:1307 (the field); OP v1.23.0@b15af500 pkg/psmdb/backup/pbm.go:400-476 (the S3 config sent to PBM leaves it out)",
    hint="remove s3.debugLogLevels; set PBM log levels in PBM itself",
    bad=[with_backup("storages: {s3-main: {type: s3, s3: {bucket: b, debugLogLevels: Signing}}}")],
    good=[with_backup("storages: {s3-main: {type: s3, s3: {bucket: b}}}")],
)
def s3_debug_log_levels(ctx: Context) -> Iterable[Violation]:
    for name, block in _by_type(ctx, "s3"):
        if text(block.get("debugLogLevels")):
            yield Violation(
                ROOT + (name, "s3", "debugLogLevels"),
                "debugLogLevels is not passed to PBM by the operator: it has no effect",
            )


@rule(
    "PSB112",
    title="S3-compatible Alibaba OSS endpoint without credentials",
    severity=Severity.WARNING,
    kind=kinds.CLUSTER,
    needs_backup_enabled=True,
    source="OP v1.23.0@b15af500 pkg/psmdb/backup/pbm.go:714-741 (aliyuncs.com endpoints become native OSS with PBM >= 2.12)",
    hint="set s3.credentialsSecret (Secret with AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY), or use type: oss",
    bad=[
        with_backup(
            "storages: {oss-s3: {type: s3, s3: {bucket: b, endpointUrl: 'https://oss-eu-central-1.aliyuncs.com'}}}"
        )
    ],
    good=[
        with_backup(
            "storages: {oss-s3: {type: s3, s3: {bucket: b, credentialsSecret: oss, "
            "endpointUrl: 'https://oss-eu-central-1.aliyuncs.com'}}}"
        )
    ],
)
def s3_aliyun_without_secret(ctx: Context) -> Iterable[Violation]:
    for name, block in _by_type(ctx, "s3"):
        if "aliyuncs.com" in text(block.get("endpointUrl")) and not text(block.get("credentialsSecret")):
            pbm = pbm_version_from_image(mapping(ctx.spec.get("backup")).get("image"))
            sure = pbm is not None and pbm >= PBM_OSS
            yield Violation(
                ROOT + (name, "s3", "credentialsSecret"),
                "endpointUrl is an Alibaba OSS endpoint, which PBM >= 2.12 turns into a native OSS storage "
                'that needs credentials: the cluster goes to error with "no credentials specified for the '
                f'secret name"{"" if sure else " (if the backup image runs PBM >= 2.12)"}',
                severity=Severity.ERROR if sure else None,
            )


@rule(
    "PSB113",
    title="MinIO storage without endpoint, bucket or credentials",
    severity=Severity.ERROR,
    kind=kinds.CLUSTER,
    needs_backup_enabled=True,
    source="OP v1.23.0@b15af500 pkg/psmdb/backup/pbm.go:346-398 (invalid minio storage config: ... is required)",
    hint="set minio.endpointUrl (host:port), minio.bucket and minio.credentialsSecret",
    bad=[with_backup("storages: {minio: {type: minio, minio: {bucket: b}}}")],
    good=[
        with_backup(
            "storages: {minio: {type: minio, minio: {bucket: b, endpointUrl: 'minio:9000', credentialsSecret: m}}}"
        )
    ],
)
def minio_required(ctx: Context) -> Iterable[Violation]:
    yield from _required_fields(
        ctx,
        "minio",
        {
            "endpointUrl": 'the cluster goes to error with "invalid minio storage config: endpointURL is required"',
            "bucket": 'the cluster goes to error with "invalid minio storage config: bucket is required"',
            "credentialsSecret": 'the cluster goes to error with "invalid minio storage config: credentialsSecret is required"',
        },
    )


@rule(
    "PSB114",
    title="Storage type newer than the cluster's crVersion",
    severity=Severity.WARNING,
    checked_against=RELEASE_1_23,
    kind=kinds.CLUSTER,
    source="OP v1.23.0@b15af500 pkg/apis/psmdb/v1/psmdb_types.go:1396-1405 (storage types; release notes: minio in 1.22.0, oss in 1.23.0, oci in 1.23.0 K8SPSMDB-1644)",
    hint="raise spec.crVersion (and the operator) or use an s3 storage",
    bad=[
        with_backup(
            "storages: {minio: {type: minio, minio: {bucket: b, endpointUrl: 'm:9000', credentialsSecret: m}}}",
            cr_version="1.21.0",
        )
    ],
    good=[
        with_backup(
            "storages: {minio: {type: minio, minio: {bucket: b, endpointUrl: 'm:9000', credentialsSecret: m}}}",
            cr_version="1.22.0",
        )
    ],
)
def storage_type_too_new(ctx: Context) -> Iterable[Violation]:
    first = {"minio": V1_22, "oss": V1_23, "oci": V1_23}
    for name, st in ctx.storages.items():
        since = first.get(text(st.get("type")))
        if since and ctx.cr_version < since:
            yield Violation(
                ROOT + (name, "type"),
                f'type "{st["type"]}" needs operator {since} or newer; crVersion '
                f"is {ctx.cr_version}, so an operator of that version rejects it as unsupported",
            )


@rule(
    "PSB115",
    title="MinIO CA bundle ignored before crVersion 1.22",
    severity=Severity.WARNING,
    kind=kinds.CLUSTER,
    until=V1_22,
    source="OP v1.23.0@b15af500 pkg/psmdb/statefulset.go:832-929 (crVersion gate 1.22.0)",
    hint="raise spec.crVersion to 1.22.0 or newer",
    bad=[
        with_backup(
            "storages: {m: {type: minio, minio: {bucket: b, endpointUrl: 'm:9000', credentialsSecret: m, "
            "caBundle: {name: ca, key: ca.crt}}}}",
            cr_version="1.21.0",
        )
    ],
    good=[
        with_backup(
            "storages: {m: {type: minio, minio: {bucket: b, endpointUrl: 'm:9000', credentialsSecret: m, "
            "caBundle: {name: ca, key: ca.crt}}}}",
            cr_version="1.22.0",
        )
    ],
)
def minio_ca_bundle_ignored(ctx: Context) -> Iterable[Violation]:
    for name, block in _by_type(ctx, "minio"):
        if isinstance(block.get("caBundle"), dict):
            yield Violation(
                ROOT + (name, "minio", "caBundle"),
                f"caBundle is ignored with crVersion {ctx.cr_version}: the sidecar does not trust that CA",
            )


@rule(
    "PSB116",
    title="GCS retryer backoff in nanoseconds",
    severity=Severity.WARNING,
    kind=kinds.CLUSTER,
    source="OP v1.23.0@b15af500 pkg/psmdb/backup/pbm.go:541-547 (passed unchanged as a Go time.Duration: the integer is nanoseconds)",
    hint="write durations in nanoseconds: 1 second is 1000000000",
    bad=[
        with_backup(
            "storages: {g: {type: gcs, gcs: {bucket: b, retryer: {backoffInitial: 1, backoffMax: 30, backoffMultiplier: 2}}}}"
        )
    ],
    good=[
        with_backup(
            "storages: {g: {type: gcs, gcs: {bucket: b, retryer: {backoffInitial: 1000000000, "
            "backoffMax: 30000000000, backoffMultiplier: 2}}}}"
        )
    ],
)
def gcs_backoff_units(ctx: Context) -> Iterable[Violation]:
    for name, block in _by_type(ctx, "gcs"):
        retryer = mapping(block.get("retryer"))
        for field in ("backoffInitial", "backoffMax"):
            value = retryer.get(field)
            if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 1_000_000:
                yield Violation(
                    ROOT + (name, "gcs", "retryer", field),
                    f"{field} is {value} nanoseconds (less than a millisecond): did you mean {value} seconds "
                    f"= {value * 1_000_000_000}?",
                )


@rule(
    "PSB117",
    title="Azure storage without credentials",
    severity=Severity.ERROR,
    kind=kinds.CLUSTER,
    needs_backup_enabled=True,
    source="OP v1.23.0@b15af500 pkg/psmdb/backup/pbm.go:603-632 (no credentials specified for the secret name)",
    hint="set azure.credentialsSecret to a Secret with AZURE_STORAGE_ACCOUNT_NAME and AZURE_STORAGE_ACCOUNT_KEY",
    bad=[with_backup('storages: {az: {type: azure, azure: {container: c, credentialsSecret: ""}}}')],
    good=[with_backup("storages: {az: {type: azure, azure: {container: c, credentialsSecret: azure-creds}}}")],
)
def azure_credentials(ctx: Context) -> Iterable[Violation]:
    yield from _required_fields(
        ctx,
        "azure",
        {"credentialsSecret": 'the cluster goes to error with "no credentials specified for the secret name"'},
    )


@rule(
    "PSB118",
    title="OSS storage incomplete",
    severity=Severity.ERROR,
    kind=kinds.CLUSTER,
    needs_backup_enabled=True,
    source="OP v1.23.0@b15af500 pkg/psmdb/backup/pbm.go:47-52,634-712",
    hint="set oss.bucket, oss.endpointUrl and oss.credentialsSecret; with SSE also encryptionKeyId or secretName",
    bad=[with_backup("storages: {oss: {type: oss, oss: {bucket: b, credentialsSecret: o}}}")],
    good=[
        with_backup(
            "storages: {oss: {type: oss, oss: {bucket: b, credentialsSecret: o, "
            "endpointUrl: 'https://oss-eu-central-1.aliyuncs.com'}}}"
        )
    ],
)
def oss_required(ctx: Context) -> Iterable[Violation]:
    if not _by_type(ctx, "oss"):
        return
    yield from _required_fields(
        ctx,
        "oss",
        {
            "bucket": 'the cluster goes to error with "bucket is required"',
            "endpointUrl": 'the cluster goes to error with "endpointURL is required"',
            "credentialsSecret": 'the cluster goes to error with "no credentials specified for the secret name"',
        },
    )
    pbm = pbm_version_from_image(mapping(ctx.spec.get("backup")).get("image"))
    for name, block in _by_type(ctx, "oss"):
        sse = mapping(block.get("serverSideEncryption"))
        if text(sse.get("encryptionAlgorithm")) and not (
            text(sse.get("encryptionKeyId")) or text(sse.get("secretName"))
        ):
            yield Violation(
                ROOT + (name, "oss", "serverSideEncryption"),
                "encryptionAlgorithm is set without "
                'encryptionKeyId or secretName: the cluster goes to error with "no encryptionKeyId or SSE '
                'secret specified"',
            )
        if pbm is not None and pbm < PBM_OSS:
            yield Violation(
                ROOT + (name, "type"),
                f"the backup image runs PBM {pbm}: the cluster goes to error with "
                '"oss storage requires PBM 2.12.0 or newer"',
            )


@rule(
    "PSB119",
    title="Filesystem storage without a path",
    severity=Severity.ERROR,
    kind=kinds.CLUSTER,
    needs_backup_enabled=True,
    source="PBM v2.15.0@6f9fc3bf pbm/storage/fs/fs.go:74 (path can't be empty)",
    hint="set filesystem.path to a directory mounted into the backup-agent container",
    bad=[with_backup('storages: {fs: {type: filesystem, filesystem: {path: ""}}}')],
    good=[
        with_backup(
            "storages: {fs: {type: filesystem, filesystem: {path: /mnt/backup}}}, "
            "volumeMounts: [{name: backup-nfs, mountPath: /mnt/backup}]",
            spec="replsets: [{name: rs0, size: 3, sidecarVolumes: [{name: backup-nfs, nfs: {server: n, path: /}}]}]",
        )
    ],
)
def filesystem_path(ctx: Context) -> Iterable[Violation]:
    yield from _required_fields(
        ctx, "filesystem", {"path": 'PBM refuses the configuration with "path can\'t be empty"'}
    )


def _covers(mount_path: str, path: str) -> bool:
    mount = mount_path.rstrip("/") or "/"
    return path == mount or path.startswith(mount if mount.endswith("/") else mount + "/")


@rule(
    "PSB120",
    title="Filesystem storage path is not mounted",
    severity=Severity.WARNING,
    kind=kinds.CLUSTER,
    source="DOCS@db1fbb18 docs/backups-storage-filesystem.md; OP v1.23.0@b15af500 pkg/psmdb/statefulset.go:568-570",
    hint="add a spec.backup.volumeMounts entry whose mountPath contains the path, backed by a replsets[].sidecarVolumes volume",
    bad=[with_backup("storages: {fs: {type: filesystem, filesystem: {path: /mnt/backup}}}")],
    good=[
        with_backup(
            "storages: {fs: {type: filesystem, filesystem: {path: /mnt/backup/psmdb}}}, "
            "volumeMounts: [{name: backup-nfs, mountPath: /mnt/backup}]",
            spec="replsets: [{name: rs0, size: 3, sidecarVolumes: [{name: backup-nfs, nfs: {server: n, path: /}}]}]",
        )
    ],
)
def filesystem_not_mounted(ctx: Context) -> Iterable[Violation]:
    """Without a mount the backups land in the container's own filesystem and vanish with the pod."""
    mounts = [
        text(m.get("mountPath"))
        for m in mapping(ctx.spec.get("backup")).get("volumeMounts") or ()
        if isinstance(m, dict)
    ]
    for name, block in _by_type(ctx, "filesystem"):
        path = text(block.get("path"))
        if path and not any(_covers(m, path) for m in mounts if m):
            yield Violation(
                ROOT + (name, "filesystem", "path"),
                f'no spec.backup.volumeMounts entry covers "{path}": '
                "backups would be written inside the backup-agent container and lost with the pod",
            )


# Secret keys per storage type (OP v1.23.0@b15af500 pkg/psmdb/backup/pbm.go:47-59); keys whose absence breaks the storage for sure.
_SECRET_KEYS = {
    "s3": ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"),
    "minio": ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"),
    "azure": ("AZURE_STORAGE_ACCOUNT_NAME", "AZURE_STORAGE_ACCOUNT_KEY"),
    "oss": ("ALIBABA_ACCESS_KEY_ID", "ALIBABA_ACCESS_KEY_SECRET"),
    "oci": oci.SECRET_KEYS,
}
# Types whose Secret without its keys fails for sure, and how.
_KEYS_REQUIRED = {"minio": "the cluster goes to error", "oci": "PBM has no API signing key, so every backup fails"}


def _secret_keys(secret: Mapping[str, Any]) -> set[str]:
    return {str(k) for part in ("data", "stringData") for k in mapping(secret.get(part))}


@rule(
    "PSB121",
    title="Storage credentials Secret missing or incomplete",
    severity=Severity.ERROR,
    checked_against=RELEASE_1_23,
    retried_by_operator=True,
    kind=kinds.CLUSTER,
    since=V1_20,
    needs_backup_enabled=True,
    source="OP v1.23.0@b15af500 pkg/controller/perconaservermongodb/pbm.go:41-119; OP v1.23.0@b15af500 pkg/psmdb/backup/pbm.go:47-59,969-978",
    hint="create the Secret in the cluster's namespace with the keys the storage type needs",
    bad=[
        Example(
            with_backup(
                "storages: {o: {type: oci, oci: {bucket: b, namespace: n, region: r, "
                "credentials: {type: userPrincipal, secretName: oci-creds}}}}"
            ),
            others=(
                "apiVersion: v1\nkind: Secret\nmetadata: {name: oci-creds, namespace: default}\n"
                "stringData: {OCI_TENANCY: t, OCI_USER: u, OCI_FINGERPRINT: f}",
            ),
        ),
        Example(
            with_backup(
                "storages: {m: {type: minio, minio: {bucket: b, endpointUrl: 'm:9000', credentialsSecret: minio-creds}}}"
            ),
            others=(
                "apiVersion: v1\nkind: Secret\nmetadata: {name: minio-creds, namespace: default}\n"
                "stringData: {AWS_ACCESS_KEY_ID: minio}",
            ),
        ),
    ],
    good=[
        Example(
            with_backup(
                "storages: {m: {type: minio, minio: {bucket: b, endpointUrl: 'm:9000', credentialsSecret: minio-creds}}}"
            ),
            others=(
                "apiVersion: v1\nkind: Secret\nmetadata: {name: minio-creds, namespace: default}\n"
                "stringData: {AWS_ACCESS_KEY_ID: minio, AWS_SECRET_ACCESS_KEY: minio123}",
            ),
        )
    ],
)
def credentials_secret(ctx: Context) -> Iterable[Violation]:
    """Checked only when the Secret can be looked up (live cluster, or a Secret in the same lint run)."""
    for name, st in ctx.storages.items():
        kind, block = text(st.get("type")), storage_block(st)
        if block is None:
            continue
        path: Path
        if kind == "oci":
            secret_name, path = oci.secret_name(block), ROOT + (name, kind, "credentials", "secretName")
        else:
            secret_name, path = text(block.get("credentialsSecret")), ROOT + (name, kind, "credentialsSecret")
        found = ctx.get("Secret", secret_name)
        if isinstance(found, Missing):
            # The operator's error text for OCI is not in the source this project has (1.23.0 docs only).
            why = (
                "the operator cannot configure PBM until it exists"
                if kind == "oci"
                else f'the cluster goes to error with "get {kind} credentials secret: secrets \\"{secret_name}\\" not found"'
            )
            yield Violation(path, f'Secret "{secret_name}" does not exist in namespace {ctx.namespace}: {why}')
        elif isinstance(found, Found) and kind in _SECRET_KEYS:
            present = _secret_keys(found.obj)
            missing = [k for k in _SECRET_KEYS[kind] if k not in present]
            if missing:
                # The other types silently use empty credentials.
                sure = kind in _KEYS_REQUIRED
                yield Violation(
                    path,
                    f'Secret "{secret_name}" has no {" and no ".join(missing)}: '
                    + _KEYS_REQUIRED.get(kind, "PBM authenticates with empty credentials"),
                    severity=None if sure else Severity.WARNING,
                )


def minio_endpoint_path(endpoint: str) -> str:
    """The URL path minio-go sees in an endpointUrl: it parses "https://" + endpoint (minio-go v7.1.0 utils.go:109-128),
    so whatever follows the first "/" is a path, and a scheme ("http://m:9000") turns the host into "http:" and the
    rest into the path "//m:9000". Query and fragment are not part of it."""
    rest = endpoint.strip().split("#", 1)[0].split("?", 1)[0]
    _, slash, path = rest.partition("/")
    return slash + path


@rule(
    "PSB123",
    title="MinIO endpointUrl with a scheme or a path",
    severity=Severity.ERROR,
    kind=(kinds.CLUSTER, kinds.RESTORE),
    needs_backup_enabled=True,
    checked_against=RELEASE_1_23,
    source="OP v1.23.0@b15af500 pkg/psmdb/backup/pbm.go:346-361 (endpointUrl passed verbatim); PBM v2.15.0 "
    "(9641a911) pbm/storage/mio/minio.go:130 minio.New(cfg.resolveEndpointURL(n)); minio-go v7.1.0 (f29e5687) "
    "api.go:241, utils.go:109-128,159-164 (Endpoint url cannot have fully qualified paths.)",
    hint='write host:port only, e.g. "minio.ns.svc:9000"; choose http or https with minio.secure',
    bad=[
        with_backup(
            "storages: {m: {type: minio, minio: {bucket: b, endpointUrl: 'minio.ns.svc:9000/minio/', "
            "credentialsSecret: m}}}"
        ),
        with_backup(
            "storages: {m: {type: minio, minio: {bucket: b, endpointUrl: 'http://minio:9000', credentialsSecret: m}}}"
        ),
        "spec: {clusterName: my-cluster, backupSource: {destination: 's3://b/2026-11-01T10:00:00Z', "
        "minio: {bucket: b, endpointUrl: 'https://minio:9000', credentialsSecret: m}}}",
    ],
    good=[
        with_backup(
            "storages: {m: {type: minio, minio: {bucket: b, endpointUrl: 'minio.ns.svc:9000', credentialsSecret: m}}}"
        ),
        with_backup(
            "storages: {m: {type: minio, minio: {bucket: b, endpointUrl: 'minio:9000/', credentialsSecret: m}}}"
        ),
    ],
)
def minio_endpoint_url(ctx: Context) -> Iterable[Violation]:
    """The operator hands minio.endpointUrl to PBM as it is, and minio-go refuses an endpoint with a path (a scheme
    counts as one): PBM cannot create the storage client, so every backup and restore on the storage fails."""
    blocks: list[tuple[Path, Mapping[str, Any]]] = [
        (ROOT + (name, "minio"), block) for name, block in _by_type(ctx, "minio")
    ]
    source = mapping(ctx.spec.get("backupSource")).get("minio")
    if ctx.kind == kinds.RESTORE and isinstance(source, dict):
        blocks.append((("spec", "backupSource", "minio"), source))
    for path, block in blocks:
        endpoint = text(block.get("endpointUrl"))
        bad = minio_endpoint_path(endpoint)
        if bad not in ("", "/"):
            what = "a scheme" if "://" in endpoint else f'the path "{bad}"'
            yield Violation(
                path + ("endpointUrl",),
                f'endpointUrl "{endpoint}" has {what}: the MinIO client refuses it ("Endpoint url cannot have fully '
                'qualified paths."), so every backup and restore on this storage fails',
            )
