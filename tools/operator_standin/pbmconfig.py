"""From a PerconaServerMongoDB spec to PBM's configuration: the main config document and one profile per other
storage (OP v1.23.0@b15af500 pkg/psmdb/backup/pbm.go:292-343,714-808; PBM v2.15.0@6f9fc3bf pbm/config/config.go), with
credentials read from the cluster namespace's Secrets (OP v1.23.0@b15af500 pkg/psmdb/backup/pbm.go:47-59). Pure: the
caller passes a function that returns a Secret's decoded data.

Also the Backup `status.destination` format (OP v1.23.0@b15af500
pkg/controller/perconaservermongodbbackup/backup.go:142-206), which needs the same storage specs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any

from webhook.policy.common import storage_block

SecretData = Mapping[str, str]
SecretGetter = Callable[[str], "SecretData | None"]  # Secret name -> decoded data, None when it does not exist


class ConfigError(Exception):
    """The cluster's backup configuration cannot be turned into a PBM config; str() is the operator's text."""


def _copy(src: Mapping[str, Any], keys: Mapping[str, str]) -> dict[str, Any]:
    return {pbm: src[cr] for cr, pbm in keys.items() if src.get(cr) not in (None, "")}


def _secret(get: SecretGetter, name: str, what: str) -> SecretData:
    data = get(name)
    if data is None:
        raise ConfigError(f'get {what} credentials secret: secrets "{name}" not found')
    return data


def _s3(c: Mapping[str, Any], get: SecretGetter, sse_secret: str) -> dict[str, Any]:
    out = _copy(
        c,
        {
            "region": "region",
            "endpointUrl": "endpointUrl",
            "bucket": "bucket",
            "prefix": "prefix",
            "uploadPartSize": "uploadPartSize",
            "maxUploadParts": "maxUploadParts",
            "storageClass": "storageClass",
            "insecureSkipTLSVerify": "insecureSkipTLSVerify",
            "forcePathStyle": "forcePathStyle",
        },
    )
    out.setdefault("region", "us-east-1")
    if isinstance(c.get("retryer"), Mapping):
        out["retryer"] = _copy(c["retryer"], {k: k for k in ("numMaxRetries", "minRetryDelay", "maxRetryDelay")})
    if c.get("credentialsSecret"):
        data = _secret(get, c["credentialsSecret"], "s3")
        out["credentials"] = {
            "access-key-id": data.get("AWS_ACCESS_KEY_ID", ""),
            "secret-access-key": data.get("AWS_SECRET_ACCESS_KEY", ""),
        }
        # SSE is read only with static credentials (the operator's quirk, OP v1.23.0@b15af500
        # pkg/psmdb/backup/pbm.go:421-476)
        sse = dict(c.get("serverSideEncryption") or {})
        fallback = (get(sse_secret) or {}) if sse_secret else {}
        if sse.get("sseCustomerAlgorithm"):
            sse["sseCustomerKey"] = sse.get("sseCustomerKey") or fallback.get("SSE_CUSTOMER_KEY", "")
            if not sse["sseCustomerKey"]:
                raise ConfigError("no SseCustomerKey specified")
        if sse.get("sseAlgorithm"):
            sse["kmsKeyID"] = sse.get("kmsKeyID") or fallback.get("KMS_KEY_ID", "")
            if not sse["kmsKeyID"]:
                raise ConfigError("no KmsKeyID specified")
        if sse:
            out["serverSideEncryption"] = sse
    return out


def _minio(c: Mapping[str, Any], get: SecretGetter) -> dict[str, Any]:
    for key, text in (
        ("bucket", "bucket is required"),
        ("endpointUrl", "endpointURL is required"),
        ("credentialsSecret", "credentialsSecret is required"),
    ):
        if not c.get(key):
            raise ConfigError(text)
    data = _secret(get, c["credentialsSecret"], "minio")
    if not data.get("AWS_ACCESS_KEY_ID"):
        raise ConfigError("access key not found in credentials secret")
    if not data.get("AWS_SECRET_ACCESS_KEY"):
        raise ConfigError("secret access key not found in credentials secret")
    out = _copy(
        c,
        {
            "endpointUrl": "endpoint",
            "bucket": "bucket",
            "prefix": "prefix",
            "region": "region",
            "secure": "secure",
            "insecureSkipTLSVerify": "insecureSkipTLSVerify",
            "forcePathStyle": "forcePathStyle",
            "debugTrace": "debugTrace",
            "partSize": "partSize",
        },
    )
    if isinstance(c.get("retryer"), Mapping):
        out["retryer"] = _copy(c["retryer"], {"numMaxRetries": "numMaxRetries"})
    out["credentials"] = {
        "access-key-id": data["AWS_ACCESS_KEY_ID"],
        "secret-access-key": data["AWS_SECRET_ACCESS_KEY"],
    }
    return out


def _gcs(c: Mapping[str, Any], get: SecretGetter) -> dict[str, Any]:
    out = _copy(c, {"bucket": "bucket", "prefix": "prefix", "chunkSize": "chunkSize"})
    if isinstance(c.get("retryer"), Mapping):
        out["retryer"] = _copy(c["retryer"], {k: k for k in ("backoffInitial", "backoffMax", "backoffMultiplier")})
    if not c.get("credentialsSecret"):
        out["credentials"] = {"workloadIdentity": True}
        return out
    data = _secret(get, c["credentialsSecret"], "gcs")
    if data.get("AWS_ACCESS_KEY_ID"):
        out["credentials"] = {
            "hmacAccessKey": data["AWS_ACCESS_KEY_ID"],
            "hmacSecret": data.get("AWS_SECRET_ACCESS_KEY", ""),
        }
    else:
        out["credentials"] = {
            "clientEmail": data.get("GCS_CLIENT_EMAIL", ""),
            "privateKey": data.get("GCS_PRIVATE_KEY", ""),
        }
    return out


def _azure(c: Mapping[str, Any], get: SecretGetter) -> dict[str, Any]:
    if not c.get("credentialsSecret"):
        raise ConfigError("no credentials specified for the secret name")
    data = _secret(get, c["credentialsSecret"], "azure")
    out = _copy(c, {"container": "container", "prefix": "prefix", "endpointUrl": "endpointUrl"})
    out["account"] = data.get("AZURE_STORAGE_ACCOUNT_NAME", "")
    out["credentials"] = {"key": data.get("AZURE_STORAGE_ACCOUNT_KEY", "")}
    return out


def _oss(c: Mapping[str, Any], get: SecretGetter) -> dict[str, Any]:
    for key, text in (
        ("bucket", "bucket is required"),
        ("endpointUrl", "endpointURL is required"),
        ("credentialsSecret", "no credentials specified for the secret name"),
    ):
        if not c.get(key):
            raise ConfigError(text)
    data = _secret(get, c["credentialsSecret"], "oss")
    out = _copy(
        c,
        {
            "region": "region",
            "endpointUrl": "endpointUrl",
            "bucket": "bucket",
            "prefix": "prefix",
            "connectTimeout": "connectTimeout",
            "uploadPartSize": "uploadPartSize",
            "maxUploadParts": "maxUploadParts",
        },
    )
    if data.get("AWS_ACCESS_KEY_ID"):
        out["credentials"] = {
            "accessKeyId": data["AWS_ACCESS_KEY_ID"],
            "accessKeySecret": data.get("AWS_SECRET_ACCESS_KEY", ""),
        }
    else:
        out["credentials"] = {
            "accessKeyId": data.get("ALIBABA_ACCESS_KEY_ID", ""),
            "accessKeySecret": data.get("ALIBABA_ACCESS_KEY_SECRET", ""),
        }
    if isinstance(c.get("retryer"), Mapping):
        out["retryer"] = _copy(c["retryer"], {k: k for k in ("maxAttempts", "maxBackoff", "baseDelay")})
    sse = c.get("serverSideEncryption") or {}
    if sse.get("encryptionAlgorithm"):
        key = sse.get("encryptionKeyId") or ""
        if not key and sse.get("secretName"):
            key = (get(sse["secretName"]) or {}).get("SSE_CUSTOMER_KEY", "")
        if not key:
            raise ConfigError("no encryptionKeyId or SSE secret specified")
        out["serverSideEncryption"] = {
            "encryptionMethod": sse.get("encryptionMethod", ""),
            "encryptionAlgorithm": sse["encryptionAlgorithm"],
            "encryptionKeyId": key,
        }
    return out


def storage_config(storage: Mapping[str, Any], get: SecretGetter, *, sse_secret: str = "") -> dict[str, Any]:
    """A CR storage (`spec.backup.storages.<name>`) as PBM's `storage` section."""
    kind = storage.get("type")
    body = storage.get(kind) if isinstance(kind, str) else None
    body = body if isinstance(body, Mapping) else {}
    if kind == "s3":
        return {"type": "s3", "s3": _s3(body, get, sse_secret)}
    if kind == "minio":
        return {"type": "minio", "minio": _minio(body, get)}
    if kind == "gcs":
        return {"type": "gcs", "gcs": _gcs(body, get)}
    if kind == "azure":
        return {"type": "azure", "azure": _azure(body, get)}
    if kind == "oss":
        return {"type": "oss", "oss": _oss(body, get)}
    if kind == "filesystem":
        if not body.get("path"):
            raise ConfigError("path can't be empty")
        return {"type": "filesystem", "filesystem": {"path": body["path"]}}
    raise ConfigError("unsupported backup storage type")


def storages(cluster: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    s = ((cluster.get("spec") or {}).get("backup") or {}).get("storages") or {}
    return {k: v for k, v in s.items() if isinstance(v, Mapping)} if isinstance(s, Mapping) else {}


def main_storage(cluster: Mapping[str, Any]) -> str:
    """`MainStorage()`: the only storage, else the one marked main (OP v1.23.0@b15af500
    pkg/apis/psmdb/v1/psmdb_types.go:1495-1513)."""
    s = storages(cluster)
    if len(s) == 1:
        return next(iter(s))
    mains = sorted(k for k, v in s.items() if v.get("main") is True)
    if not mains:
        raise ConfigError("main backup storage is not specified" if s else "main storage not found")
    if len(mains) > 1:
        raise ConfigError("multiple main backup storages are specified")
    return mains[0]


def desired(cluster: Mapping[str, Any], get: SecretGetter) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """(main config, profiles by storage name) for the cluster, as the operator builds them
    (OP v1.23.0@b15af500 pkg/psmdb/backup/pbm.go:292-343,714-808)."""
    spec = cluster.get("spec") or {}
    backup = spec.get("backup") or {}
    sse_secret = str((spec.get("secrets") or {}).get("sse") or "")
    main = main_storage(cluster)
    all_storages = storages(cluster)
    cfg: dict[str, Any] = {"storage": storage_config(all_storages[main], get, sse_secret=sse_secret)}
    pitr = backup.get("pitr") or {}
    pitr_cfg: dict[str, Any] = {"enabled": bool(pitr.get("enabled")) and backup.get("enabled") is not False}
    pitr_cfg.update(
        _copy(
            pitr,
            {
                "compressionType": "compression",
                "compressionLevel": "compressionLevel",
                "oplogSpanMin": "oplogSpanMin",
                "oplogOnly": "oplogOnly",
            },
        )
    )
    cfg["pitr"] = pitr_cfg
    conf = backup.get("configuration") or {}
    if isinstance(conf.get("backupOptions"), Mapping):
        o = conf["backupOptions"]
        b = _copy(
            o,
            {
                "oplogSpanMin": "oplogSpanMin",
                "numParallelCollections": "numParallelCollections",
                "priority": "priority",
            },
        )
        if isinstance(o.get("timeouts"), Mapping) and o["timeouts"].get("startingStatus") is not None:
            b["timeouts"] = {"startingStatus": o["timeouts"]["startingStatus"]}
        cfg["backup"] = b
    if isinstance(conf.get("restoreOptions"), Mapping):
        cfg["restore"] = _copy(
            conf["restoreOptions"],
            {
                k: k
                for k in (
                    "batchSize",
                    "numInsertionWorkers",
                    "numDownloadWorkers",
                    "numParallelCollections",
                    "maxDownloadBufferMb",
                    "downloadChunkMb",
                    "mongodLocation",
                    "mongodLocationMap",
                )
            },
        )
    profiles = {
        name: {"storage": storage_config(st, get, sse_secret=sse_secret)}
        for name, st in sorted(all_storages.items())
        if name != main
    }
    return cfg, profiles


def config_hash(main: Mapping[str, Any], profiles: Mapping[str, Any]) -> str:
    """A digest of what would be applied, credentials included (so a rotated key is re-applied); never the keys."""
    blob = json.dumps({"main": main, "profiles": profiles}, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def destination(storage: Mapping[str, Any], pbm_name: str) -> str:
    """`status.destination` as the operator writes it (OP v1.23.0@b15af500
    pkg/controller/perconaservermongodbbackup/backup.go:142-206)."""
    kind = storage.get("type")
    c = storage_block(storage) or {}
    prefix = str(c.get("prefix") or "").strip("/")
    if kind in ("s3", "minio", "gcs", "oss"):
        scheme = {"s3": "s3://", "minio": "s3://", "gcs": "gs://", "oss": "oss://"}[kind]
        bucket = str(c.get("bucket") or "")
        base = bucket if bucket.startswith(scheme) else scheme + bucket
    elif kind == "azure":
        endpoint = str(c.get("endpointUrl") or "")
        container = str(c.get("container") or "")
        base = f"{endpoint.rstrip('/')}/{container}" if endpoint else f"azure://{container}"
    elif kind == "filesystem":
        return f"{str(c.get('path') or '').rstrip('/')}/{pbm_name}"
    else:
        return pbm_name
    return f"{base}/{prefix}/{pbm_name}" if prefix else f"{base}/{pbm_name}"
