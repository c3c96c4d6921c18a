"""Constants, the failure type, settings from the environment and small formatting helpers."""

from __future__ import annotations

import os
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from webhook.times import format_rfc3339_epoch, format_rfc3339_nano

TERMINAL = ("done", "canceled", "error")
BACKUP_TYPES = ("logical", "physical", "incremental", "external")
COMPRESSIONS = ("none", "gzip", "snappy", "lz4", "s2", "pgzip", "zstd")
SUFFIX = {"gzip": ".gz", "pgzip": ".gz", "lz4": ".lz4", "snappy": ".snappy", "s2": ".s2", "zstd": ".zst"}
STORAGE_TYPES = ("s3", "minio", "gcs", "azure", "filesystem", "oss", "oci", "blackhole")
CONFIG_TOP_KEYS = ("name", "profile", "storage", "pitr", "backup", "restore")
FAIL_POINTS = ("backup-start", "backup-dump", "backup", "restore", "delete", "config", "agents")


class PBMFail(Exception):
    """A PBM command error: the CLI prints `Error: <msg>` on stderr and exits 1 (cobra's RunE error path)."""


# --------------------------------------------------------------------------------------------------- settings


def _float_env(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, "") or default)
    except ValueError:
        return default


@dataclass
class Settings:
    """Everything the environment tunes. See tools/pbm_sim/__init__.py for the list."""

    state_root: Path | None
    cluster: str
    replsets: list[str]
    members: int
    advance: str
    starting_s: float
    backup_s: float
    restore_s: float
    fail_env: set[str]
    fail_message: str
    collections: list[str]
    mongo_version: str
    fcv: str
    backup_wait_s: float

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ
        root = env.get("PBM_SIM_STATE") or ""
        rs = [r.strip() for r in (env.get("PBM_SIM_REPLSETS") or "rs0").split(",") if r.strip()]
        colls = [c.strip() for c in (env.get("PBM_SIM_COLLECTIONS") or "app.items,app.users").split(",") if c.strip()]
        try:
            members = max(1, int(env.get("PBM_SIM_MEMBERS") or 3))
        except ValueError:
            members = 3
        return cls(
            state_root=Path(root) if root else None,
            cluster=(env.get("PBM_SIM_CLUSTER") or "").strip(),
            replsets=rs or ["rs0"],
            members=members,
            advance="calls" if (env.get("PBM_SIM_ADVANCE") or "time").strip() == "calls" else "time",
            starting_s=_float_env("PBM_SIM_STARTING_SECONDS", 0.5),
            backup_s=_float_env("PBM_SIM_BACKUP_SECONDS", 2.0),
            restore_s=_float_env("PBM_SIM_RESTORE_SECONDS", 2.0),
            fail_env={f.strip() for f in (env.get("PBM_SIM_FAIL") or "").split(",") if f.strip()},
            fail_message=env.get("PBM_SIM_FAIL_MESSAGE") or "",
            collections=colls,
            mongo_version=env.get("PBM_SIM_MONGODB_VERSION") or "8.0.12-4",
            fcv=env.get("PBM_SIM_FCV") or "8.0",
            backup_wait_s=_float_env("PBM_SIM_BACKUP_WAIT_SECONDS", 60.0),
        )

    @property
    def state_dir(self) -> Path:
        if self.state_root is None:
            raise PBMFail("pbm-sim: PBM_SIM_STATE is not set (the directory that keeps the simulated PBM state)")
        if not self.cluster:
            return self.state_root
        parts = [p for p in re.split(r"[/\\]", self.cluster) if p]
        if any(p in (".", "..") for p in parts):
            raise PBMFail(f"pbm-sim: bad PBM_SIM_CLUSTER {self.cluster!r}")
        return self.state_root.joinpath(*parts)

    def hosts(self, rs: str) -> list[str]:
        """Member host names like the operator's StatefulSet pods: `<cluster>-<rs>-<i>.<cluster>-<rs>.<ns>...`."""
        ns, _, name = self.cluster.rpartition("/")
        out = []
        for i in range(self.members):
            if name:
                host = f"{name}-{rs}-{i}.{name}-{rs}" + (f".{ns}.svc.cluster.local" if ns else "")
            else:
                host = f"{rs}-{i}"
            out.append(f"{host}:27017")
        return out


# --------------------------------------------------------------------------------------------------- helpers


def now_f() -> float:
    return time.time()


rfc3339 = format_rfc3339_epoch  # PBM's time.RFC3339 of a Unix time (whole seconds)
rfc3339nano = format_rfc3339_nano  # PBM's time.RFC3339Nano (restore names)


def byte_count_iec(b: int) -> str:
    """PBM:cmd/pbm/backup.go byteCountIEC."""
    unit = 1024
    if b < unit:
        return f"{b} B"
    div, exp = unit, 0
    n = b // unit
    while n >= unit:
        div *= unit
        exp += 1
        n //= unit
    return f"{b / div:.1f} {'KMGTPE'[exp]}iB"


def opid() -> str:
    return secrets.token_hex(12)  # a Mongo ObjectID's hex form


def chunk_name(start: int, end: int, compression: str) -> str:
    """PBM:pbm/backup/chunk.go FormatChunkName (chunkUnixFormat = 20060102150405)."""
    f = "%Y%m%d%H%M%S"
    return (
        f"{time.strftime(f, time.gmtime(start))}-1.{time.strftime(f, time.gmtime(end))}-1{SUFFIX.get(compression, '')}"
    )


def mask_secrets(cfg: Any, _in_secret: bool = False) -> Any:
    """PBM masks credentials (storage.MaskedString) as `***` in JSON/YAML output."""
    secret_leaves = {"sseCustomerKey"}
    keep_plain = {"signature-ver", "clientEmail", "server", "workloadIdentity", "type", "roleArn", "sessionName"}
    if isinstance(cfg, dict):
        out = {}
        for k, v in cfg.items():
            inside = _in_secret or k == "credentials"
            if isinstance(v, (dict, list)):
                out[k] = mask_secrets(v, inside)
            elif (inside and k not in keep_plain and isinstance(v, str)) or k in secret_leaves:
                out[k] = "***" if v else ""
            else:
                out[k] = v
        return out
    if isinstance(cfg, list):
        return [mask_secrets(v, _in_secret) for v in cfg]
    return cfg
