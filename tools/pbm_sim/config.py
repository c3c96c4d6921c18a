"""PBM configuration documents: parsing, storage casts, defaults and `pbm config --set` variables."""

from __future__ import annotations

import copy
import re
from typing import Any

from .common import CONFIG_TOP_KEYS, STORAGE_TYPES, PBMFail

# --------------------------------------------------------------------------------------------------- config


def parse_config(text: str, *, what: str = "config") -> dict[str, Any]:
    """PBM:pbm/config/config.go Parse (strict YAML decode, then StorageConf.Cast)."""
    import yaml

    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise PBMFail(f"decode: yaml: {str(e).splitlines()[0]}") from None
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise PBMFail(f"decode: yaml: unmarshal errors:\n  cannot unmarshal {type(doc).__name__} into config.Config")
    unknown = [k for k in doc if k not in CONFIG_TOP_KEYS]
    if unknown:
        raise PBMFail(
            "decode: yaml: unmarshal errors:\n"
            + "\n".join(f"  field {k} not found in type config.Config" for k in unknown)
        )
    cfg = copy.deepcopy(doc)
    stg = cfg.get("storage")
    if not isinstance(stg, dict):
        stg = {"type": ""}
        cfg["storage"] = stg
    cast_storage(stg)
    return cfg


def cast_storage(stg: dict[str, Any]) -> None:
    """StorageConf.Cast + sanitizeStoragePaths (PBM:pbm/config/config.go; pbm/storage/*/Cast)."""
    typ = str(stg.get("type") or "")
    if typ not in STORAGE_TYPES:
        raise PBMFail(f"storage cast: {typ}: unknown storage type")
    if typ == "blackhole":
        return
    sub = stg.get(typ)
    if not isinstance(sub, dict):
        names = {
            "s3": "S3",
            "minio": "minio",
            "gcs": "GCS",
            "azure": "azure",
            "filesystem": "filesystem",
            "oss": "OSS",
            "oci": "OCI",
        }
        raise PBMFail(f"storage cast: missing {names[typ]} configuration with {names[typ]} storage type")
    if typ == "s3":
        sub.setdefault("region", "us-east-1")
        sub.setdefault("forcePathStyle", True)
        if not sub.get("maxUploadParts"):
            sub["maxUploadParts"] = 10000
        sub.setdefault("storageClass", "STANDARD")
        sub.setdefault("endpointUrl", "")  # no omitempty in its JSON tag
        sub.setdefault("bucket", "")
        sub.setdefault("credentials", {})
        sub.setdefault("insecureSkipTLSVerify", False)
    elif typ == "minio":
        if not sub.get("endpoint"):
            raise PBMFail("storage cast: endpointURL cannot be empty")
    elif typ == "filesystem":
        if not sub.get("path"):
            raise PBMFail("storage cast: path can't be empty")
    for k in ("bucket", "container", "prefix"):
        if isinstance(sub.get(k), str):
            sub[k] = sub[k].strip("/")


def full_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """GetConfig: fills pitr/backup/restore and the compression defaults (PBM:pbm/config/config.go GetConfig)."""
    out = copy.deepcopy(cfg)
    out.setdefault("pitr", {})
    out["pitr"] = dict(out["pitr"] or {})
    out["pitr"].setdefault("enabled", False)
    out["backup"] = dict(out.get("backup") or {})
    out["restore"] = dict(out.get("restore") or {})
    out["backup"].setdefault("compression", "s2")
    out["pitr"].setdefault("compression", out["backup"]["compression"])
    if "compressionLevel" not in out["pitr"] and "compressionLevel" in out["backup"]:
        out["pitr"]["compressionLevel"] = out["backup"]["compressionLevel"]
    return out


CONFIG_VAR_KINDS = {
    "pitr.enabled": bool,
    "pitr.oplogOnly": bool,
    "pitr.oplogSpanMin": float,
    "pitr.compression": str,
    "pitr.compressionLevel": int,
    "backup.oplogSpanMin": float,
    "backup.compression": str,
    "backup.compressionLevel": int,
    "backup.numParallelCollections": int,
    "backup.numParallelFiles": int,
    "backup.timeouts.startingStatus": int,
    "backup.timeouts.balancerStop": int,
    "restore.batchSize": int,
    "restore.numInsertionWorkers": int,
    "restore.numParallelCollections": int,
    "restore.numParallelFiles": int,
    "restore.numDownloadWorkers": int,
    "restore.maxDownloadBufferMb": int,
    "restore.downloadChunkMb": int,
    "restore.mongodLocation": str,
    "restore.fallbackEnabled": bool,
    "restore.allowPartlyDone": bool,
    "restore.indexCommitQuorum": str,
    "storage.type": str,
}


def config_var_kind(key: str) -> type | None:
    if key in CONFIG_VAR_KINDS:
        return CONFIG_VAR_KINDS[key]
    if re.fullmatch(r"storage\.(s3|minio|gcs|azure|filesystem|oss|oci)\.[A-Za-z0-9_.-]+", key):
        leaf = key.rsplit(".", 1)[-1]
        if leaf in ("forcePathStyle", "insecureSkipTLSVerify", "secure", "debugTrace", "workloadIdentity"):
            return bool
        if leaf in ("uploadPartSize", "maxUploadParts", "partSize", "chunkSize", "numMaxRetries"):
            return int
        if leaf == "maxObjSizeGB":
            return float
        return str
    return None


def cast_var(kind: type, key: str, raw: str) -> Any:
    try:
        if kind is bool:
            low = raw.strip()
            if low in ("1", "t", "T", "TRUE", "true", "True"):
                return True
            if low in ("0", "f", "F", "FALSE", "false", "False"):
                return False
            raise ValueError(f'strconv.ParseBool: parsing "{raw}": invalid syntax')
        if kind is int:
            return int(raw)
        if kind is float:
            return float(raw)
    except ValueError as e:
        msg = str(e) if str(e).startswith("strconv") else f'strconv.Parse: parsing "{raw}": invalid syntax'
        raise PBMFail(f"set {key}: casting value of {key}: {msg}") from None
    return raw
