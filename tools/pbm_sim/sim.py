"""State and behaviour of the simulated PBM: config, profiles, backups, restores, PITR timeline, and the clock that
moves operations through PBM's statuses. The CLI layer (cli.py) parses argv and renders output; everything here
works on plain dicts kept in one JSON file per simulated cluster, guarded by an flock so that concurrent `pbm`
invocations (the controller polls while another exec runs) see a consistent state.

Error texts follow PBM 2.15.0 (PBM:cmd/pbm/*.go at 6f9fc3bf); each raising site names the PBM source it copies.
"""

from __future__ import annotations

import copy
import fcntl
import gzip
import json
import os
import re
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import PBM_VERSION
from .storage import NotExist, Storage, StorageError, open_storage, same_storage, storage_path

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


def rfc3339(ts: float | int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(ts)))


def rfc3339nano(ns: int) -> str:
    """Go's time.RFC3339Nano in UTC: the fraction loses its trailing zeros (and the dot, when it is zero)."""
    sec, frac = divmod(ns, 1_000_000_000)
    s = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
    f = f"{frac:09d}".rstrip("0")
    return s + ("." + f if f else "") + "Z"


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


# --------------------------------------------------------------------------------------------------- state file


class StateFile:
    """`<state_dir>/state.json`, read and written under an exclusive flock on `<state_dir>/.lock`."""

    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir
        self.path = state_dir / "state.json"
        self._lock_fd: int | None = None
        self.data: dict[str, Any] = {}

    def __enter__(self) -> StateFile:
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(self.dir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            self.data = json.loads(self.path.read_text()) if self.path.exists() else {}
        except (OSError, json.JSONDecodeError):
            self.data = {}
        for k, v in (
            ("config", None),
            ("profiles", {}),
            ("backups", {}),
            ("restores", {}),
            ("pitr", {"ranges": [], "open": None, "enabled_at": None}),
            ("log", []),
        ):
            self.data.setdefault(k, copy.deepcopy(v))
        return self

    def save(self) -> None:
        tmp = self.path.with_name("state.json.tmp")
        tmp.write_text(json.dumps(self.data, indent=1, sort_keys=True))
        os.replace(tmp, self.path)

    def __exit__(self, *exc: Any) -> None:
        try:
            if exc[0] is None or issubclass(exc[0], PBMFail):
                self.save()
        finally:
            if self._lock_fd is not None:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
                os.close(self._lock_fd)
                self._lock_fd = None


# --------------------------------------------------------------------------------------------------- the engine


BACKUP_PHASES = ["starting", "running", "dumpDone", "done"]
EXTERNAL_PHASES = ["starting", "running", "copyReady", "copyDone", "done"]
RESTORE_PHASES = {"logical": ["starting", "running", "dumpDone", "done"], "physical": ["starting", "running", "done"]}


@dataclass
class Sim:
    settings: Settings
    st: StateFile
    now: float = field(default_factory=now_f)
    _stg_cache: dict[str, Storage] = field(default_factory=dict)

    # ------------------------------------------------------------------ small accessors

    @property
    def data(self) -> dict[str, Any]:
        return self.st.data

    @property
    def config(self) -> dict[str, Any] | None:
        return self.data.get("config")

    def fail_points(self) -> set[str]:
        pts = set(self.settings.fail_env)
        marker = self.st.dir / "fail"
        if marker.exists():
            try:
                pts |= {p.strip() for p in re.split(r"[,\s]+", marker.read_text()) if p.strip()}
            except OSError:
                pass
        return pts

    def fail_message(self, point: str) -> str:
        msg = self.settings.fail_message
        marker = self.st.dir / "fail-message"
        if marker.exists():
            try:
                msg = marker.read_text().strip() or msg
            except OSError:
                pass
        return msg or f"pbm-sim: simulated {point} failure"

    def storage(self, conf: dict[str, Any]) -> Storage:
        key = json.dumps(conf, sort_keys=True)
        if key not in self._stg_cache:
            self._stg_cache[key] = open_storage(conf)
        return self._stg_cache[key]

    def log(self, msg: str) -> None:
        entries = self.data["log"]
        entries.append(f"{rfc3339(self.now)} {msg}")
        del entries[:-200]

    def in_flight(self) -> tuple[str, dict[str, Any]] | None:
        for b in self.data["backups"].values():
            if b["status"] not in TERMINAL:
                return "backup", b
        for r in self.data["restores"].values():
            if r["status"] not in TERMINAL:
                return "restore", r
        return None

    def check_no_other_operation(self) -> None:
        """PBM:cmd/pbm/common.go checkForAnotherOperation / concurrentOpError."""
        op = self.in_flight()
        if op is None:
            return
        kind, rec = op
        rs = self.settings.replsets[0]
        node = (rec.get("replsets") or [{}])[0].get("node") or self.settings.hosts(rs)[0]
        raise PBMFail(f"another operation in progress, {kind}/{rec['opid']} [{rs}/{node}]")

    # ------------------------------------------------------------------ clock

    def _progress(self, op: dict[str, Any]) -> float:
        if op["mode"] == "calls":
            return float(op["polls"])
        return self.now - op["t0"]

    def _target(self, op: dict[str, Any]) -> int:
        prog = self._progress(op)
        phases, lengths = op["phases"], op["lengths"]
        idx, cum = len(phases) - 1, 0.0
        for i, length in enumerate(lengths):
            cum += length
            if prog < cum:
                idx = i
                break
        hold = op.get("hold")
        if hold and hold in phases and not op.get("released"):
            idx = min(idx, phases.index(hold))
        if op.get("released"):  # external backups: copyDone for one step after backup-finish, then done
            rel = (op["polls"] - op["released_polls"]) if op["mode"] == "calls" else self.now - op["released_at"]
            idx = phases.index("copyDone") if rel < op["lengths"][-1] else len(phases) - 1
        return idx

    def advance(self, *, poll: bool = False) -> None:
        """Move every in-flight operation to where the clock says it is, running each phase's side effects in order.
        `poll` counts this invocation as a status call (PBM_SIM_ADVANCE=calls moves one phase per status call)."""
        self._pitr_tick()
        for b in list(self.data["backups"].values()):
            if b["status"] not in TERMINAL and b.get("phase") is not None:
                self._advance_backup(b)
        for r in list(self.data["restores"].values()):
            if r["status"] not in TERMINAL:
                self._advance_restore(r)
        self._pitr_tick()

    def count_poll(self) -> None:
        for recs in (self.data["backups"], self.data["restores"]):
            for rec in recs.values():
                if rec["status"] not in TERMINAL and rec.get("mode") == "calls":
                    rec["polls"] += 1

    def _new_op(self, phases: list[str], lengths: list[float]) -> dict[str, Any]:
        return {
            "phases": phases,
            "lengths": lengths,
            "mode": self.settings.advance,
            "t0": self.now,
            "polls": 0,
            "phase": 0,
        }

    # ------------------------------------------------------------------ backups

    def backup_storage(self, b: dict[str, Any]) -> Storage:
        return self.storage({k: v for k, v in b["store"].items() if k not in ("name", "profile")})

    def start_backup(
        self,
        *,
        typ: str,
        base: bool,
        compression: str | None,
        level: int | None,
        profile: str,
        nss: list[str],
        users_and_roles: bool,
    ) -> dict[str, Any]:
        """What `pbm backup` does before it waits (PBM:cmd/pbm/backup.go runBackup)."""
        self.check_no_other_operation()
        cfg = self.config
        if cfg is None:
            raise PBMFail("no config set. Set config with <pbm config>")
        if profile:
            prof = self.data["profiles"].get(profile)
            if prof is None:
                raise PBMFail(f'profile "{profile}" is not found')
            store = {"name": profile, "profile": True, **copy.deepcopy(prof["storage"])}
        else:
            store = copy.deepcopy(cfg["storage"])
        fc = full_config(cfg)
        comp = compression or fc["backup"].get("compression") or "s2"
        if level is None:
            level = fc["backup"].get("compressionLevel")
        # PBM names the backup with the current UTC second; a second backup in the same second would collide
        while rfc3339(self.now) in self.data["backups"]:
            time.sleep(max(0.0, int(self.now) + 1 - time.time()) + 0.01)
            self.now = now_f()
        name = rfc3339(self.now)
        fails = self.fail_points()
        external = typ == "external"
        if external:
            s = self.settings
            op = self._new_op(EXTERNAL_PHASES, [s.starting_s, 0.5 * s.backup_s, 1e12, 0.5 * s.backup_s])
            if op["mode"] == "calls":
                op["lengths"] = [1, 1, 1e12, 1]
            op["hold"] = "copyReady"
        else:
            s = self.settings
            op = self._new_op(BACKUP_PHASES, [s.starting_s, 0.8 * s.backup_s, 0.2 * s.backup_s])
            if op["mode"] == "calls":
                op["lengths"] = [1, 1, 1]
        fail_at, fail_msg = None, ""
        for point, phase in (("backup-start", "starting"), ("backup-dump", "running"), ("backup", "dumpDone")):
            if point in fails and phase in op["phases"]:
                fail_at, fail_msg = phase, self.fail_message(point)
                break
        src = ""
        if typ == "incremental" and not base:
            prev = [
                x
                for x in self.data["backups"].values()
                if x["type"] == "incremental" and x["status"] == "done" and not x["store"].get("name")
            ]
            if prev:
                src = max(prev, key=lambda x: x["start_ts"])["name"]
            elif fail_at is None:
                fail_at, fail_msg = "starting", "define source backup: not found"
        b: dict[str, Any] = {
            "name": name,
            "opid": opid(),
            "type": typ,
            "base": base,
            "src_backup": src,
            "compression": comp,
            "level": level,
            "profile": profile,
            "store": store,
            "nss": nss,
            "users_and_roles": users_and_roles,
            "status": "starting",
            "error": "",
            "start_ts": int(self.now),
            "last_transition_ts": int(self.now),
            "first_write_ts": 0,
            "last_write_ts": 0,
            "hb": int(self.now),
            "size": 0,
            "size_uncompressed": 0,
            "replsets": [],
            "conditions": [{"timestamp": int(self.now), "status": "starting"}],
            "fail_at": fail_at,
            "fail_msg": fail_msg,
            "pbm_version": PBM_VERSION,
            **op,
        }
        self.data["backups"][name] = b
        self.log(f"backup {name} started ({typ}{', base' if base else ''}, {comp})")
        return b

    def _set_backup_status(self, b: dict[str, Any], status: str, error: str = "") -> None:
        b["status"] = status
        b["last_transition_ts"] = int(self.now)
        b["hb"] = int(self.now)
        b["conditions"].append({"timestamp": int(self.now), "status": status, **({"error": error} if error else {})})
        if error:
            b["error"] = error
        for rs in b["replsets"]:
            if rs["status"] not in TERMINAL:
                rs["status"] = status
                rs["last_transition_ts"] = int(self.now)
                if error:
                    rs["error"] = error

    def _advance_backup(self, b: dict[str, Any]) -> None:
        target = self._target(b)
        while b["phase"] < target and b["status"] not in TERMINAL:
            leaving = b["phases"][b["phase"]]
            if b.get("fail_at") == leaving:
                self._set_backup_status(b, "error", b["fail_msg"])
                self.log(f"backup {b['name']} failed in {leaving}: {b['fail_msg']}")
                return
            nxt = b["phases"][b["phase"] + 1]
            try:
                self._enter_backup_phase(b, nxt)
            except StorageError as e:
                self._set_backup_status(b, "error", f"{'dump' if nxt != 'done' else 'save metadata'}: {e}")
                self.log(f"backup {b['name']} failed entering {nxt}: {e}")
                return
            b["phase"] += 1
            self._set_backup_status(b, nxt)

    def _files_for(self, b: dict[str, Any], rs: str) -> list[tuple[str, bytes, int]]:
        """(key, stored bytes, uncompressed size) of the data files a backup of one replset writes."""
        name, comp = b["name"], b["compression"]
        ext = SUFFIX.get(comp, "")
        out = []

        def pack(raw: bytes) -> bytes:
            if comp in ("gzip", "pgzip"):
                return gzip.compress(raw, compresslevel=6, mtime=0)
            return (
                raw  # snappy/lz4/s2/zstd are not simulated: the bytes are stored as they are, named as PBM names them
            )

        if b["type"] == "logical":
            colls = b["nss"] and [c for c in self.settings.collections if _ns_match(c, b["nss"])]
            colls = colls if b["nss"] else self.settings.collections
            for ns in colls:
                raw = "".join(
                    json.dumps({"_id": i, "ns": ns, "rs": rs, "backup": name}) + "\n" for i in range(20)
                ).encode()
                out.append((f"{name}/{rs}/{ns}{ext}", pack(raw), len(raw)))
            raw = json.dumps(
                {
                    "version": PBM_VERSION,
                    "serverVersion": self.settings.mongo_version,
                    "fcv": self.settings.fcv,
                    "specifications": colls,
                }
            ).encode()
            out.append((f"{name}/{rs}/meta.pbm", raw, len(raw)))
        elif b["type"] in ("physical", "incremental"):
            for f in (
                "WiredTiger",
                "WiredTiger.wt",
                "_mdb_catalog.wt",
                "collection-0-1234567890.wt",
                "journal/WiredTigerLog.0000000001",
            ):
                raw = f"{name} {rs} {f}\n".encode() * 64
                out.append((f"{name}/{rs}/{f}{ext}", pack(raw), len(raw)))
        return out

    def _enter_backup_phase(self, b: dict[str, Any], phase: str) -> None:
        stg = None if b["type"] == "external" else self.backup_storage(b)
        s = self.settings
        if phase == "running":
            b["first_write_ts"] = int(self.now)
            for rs in s.replsets:
                hosts = s.hosts(rs)
                node = hosts[1] if len(hosts) > 1 else hosts[0]
                meta: dict[str, Any] = {
                    "name": rs,
                    "node": node,
                    "status": "running",
                    "start_ts": int(self.now),
                    "last_transition_ts": int(self.now),
                    "first_write_ts": int(self.now),
                    "last_write_ts": 0,
                    "size": 0,
                    "size_uncompressed": 0,
                    "error": "",
                    "files": [],
                    "dump_name": f"{b['name']}/{rs}/metadata.json" if b["type"] == "logical" else "",
                    "oplog_name": f"{b['name']}/{rs}/oplog" if b["type"] == "logical" else "",
                }
                if rs == "cfg":
                    meta["configsvr"] = True
                if b["type"] == "external":
                    meta["files"] = [
                        {
                            "filename": f"/data/db/{f}",
                            "offset": 0,
                            "length": 0,
                            "fileSize": 4096,
                            "stgSize": 0,
                            "stgSizeUncompressed": 0,
                            "fmode": 420,
                        }
                        for f in ("WiredTiger", "WiredTiger.wt", "collection-0-1234567890.wt")
                    ]
                b["replsets"].append(meta)
            if stg is not None:
                for rs in b["replsets"]:
                    for key, data, raw in self._files_for(b, rs["name"]):
                        stg.put(key, data)
                        # PBM adds the sizes to the meta when the dump is done (IncBackupSize), not as it goes
                        rs["written"] = rs.get("written", 0) + len(data)
                        rs["written_raw"] = rs.get("written_raw", 0) + raw
                        if b["type"] != "logical":
                            rs["files"].append(
                                {
                                    "filename": key.split("/", 2)[2],
                                    "offset": 0,
                                    "length": 0,
                                    "fileSize": raw,
                                    "stgSize": len(data),
                                    "stgSizeUncompressed": raw,
                                    "fmode": 384,
                                }
                            )
        elif phase == "dumpDone":
            for rs in b["replsets"]:
                rs["size"] += rs.pop("written", 0)
                rs["size_uncompressed"] += rs.pop("written_raw", 0)
                if stg is not None and b["type"] == "logical":
                    dump_meta = json.dumps(
                        {
                            "version": PBM_VERSION,
                            "namespaces": [
                                {"db": ns.split(".", 1)[0], "collection": ns.split(".", 1)[1]}
                                for ns in self.settings.collections
                                if not b["nss"] or _ns_match(ns, b["nss"])
                            ],
                        }
                    ).encode()
                    stg.put(rs["dump_name"], dump_meta)
                    rs["size"] += len(dump_meta)
                    rs["size_uncompressed"] += len(dump_meta)
                    oplog_raw = b"".join(
                        json.dumps({"ts": int(self.now), "op": "n", "rs": rs["name"], "i": i}).encode() + b"\n"
                        for i in range(5)
                    )
                    oplog = gzip.compress(oplog_raw, mtime=0) if b["compression"] in ("gzip", "pgzip") else oplog_raw
                    stg.put(
                        f"{rs['oplog_name']}/{chunk_name(b['first_write_ts'], int(self.now), b['compression'])}", oplog
                    )
                    rs["size"] += len(oplog)
                    rs["size_uncompressed"] += len(oplog_raw)
                rs["last_write_ts"] = int(self.now)
            b["last_write_ts"] = int(self.now)
            b["size"] = sum(rs["size"] for rs in b["replsets"])
            b["size_uncompressed"] = sum(rs["size_uncompressed"] for rs in b["replsets"])
        elif phase == "copyReady":
            b["last_write_ts"] = int(self.now)
            for rs in b["replsets"]:
                rs["last_write_ts"] = int(self.now)
        elif phase == "done":
            if not b["last_write_ts"]:
                b["last_write_ts"] = int(self.now)
            for rs in b["replsets"]:
                rs["status"] = "done"
                rs["last_transition_ts"] = int(self.now)
            b["status"] = "done"
            b["last_transition_ts"] = int(self.now)
            # external backups keep no data on the storage, but their metadata goes to the main storage
            meta_stg = stg if stg is not None else (self.storage(self.config["storage"]) if self.config else None)
            if meta_stg is not None:
                meta_stg.put(f"{b['name']}.pbm.json", json.dumps(self.backup_meta_json(b), indent=2).encode())

    def backup_meta_json(self, b: dict[str, Any]) -> dict[str, Any]:
        """The `<name>.pbm.json` PBM writes next to the backup (BackupMeta, PBM:pbm/backup/types.go)."""
        store = {k: v for k, v in b["store"].items()}
        out: dict[str, Any] = {"type": b["type"], "opid": b["opid"], "name": b["name"]}
        if b["src_backup"]:
            out["src_backup"] = b["src_backup"]
        if b["nss"]:
            out["nss"] = b["nss"]
        if b["users_and_roles"]:
            out["sel_users_and_roles"] = True
        out["replsets"] = []
        for rs in b["replsets"]:
            r: dict[str, Any] = {"name": rs["name"]}
            if rs["files"]:
                r["files"] = rs["files"]
            if rs["dump_name"]:
                r["backup_name"] = rs["dump_name"]
            if rs["oplog_name"]:
                r["oplog_name"] = rs["oplog_name"]
            r.update(
                {
                    "start_ts": rs["start_ts"],
                    "status": rs["status"],
                    "size": rs["size"],
                    "size_uncompressed": rs["size_uncompressed"],
                }
            )
            if rs.get("configsvr"):
                r["iscs"] = True
            r.update(
                {
                    "last_transition_ts": rs["last_transition_ts"],
                    "first_write_ts": {"T": rs["first_write_ts"], "I": 1},
                    "last_write_ts": {"T": rs["last_write_ts"], "I": 1},
                    "node": rs["node"],
                }
            )
            if rs.get("error"):
                r["error"] = rs["error"]
            r["conditions"] = []
            out["replsets"].append(r)
        out.update(
            {
                "compression": b["compression"],
                "store": store,
                "size": b["size"],
                "size_uncompressed": b["size_uncompressed"],
                "mongodb_version": self.settings.mongo_version,
                "fcv": self.settings.fcv,
                "start_ts": b["start_ts"],
                "last_transition_ts": b["last_transition_ts"],
                "first_write_ts": {"T": b["first_write_ts"], "I": 1},
                "last_write_ts": {"T": b["last_write_ts"], "I": 1},
                "hb": {"T": b["hb"], "I": 1},
                "status": b["status"],
                "conditions": b["conditions"],
                "n": [],
            }
        )
        if b["error"]:
            out["error"] = b["error"]
        out.update({"pbm_version": b["pbm_version"], "balancer": ""})
        return out

    def finish_external(self, name: str) -> None:
        """PBM:cmd/pbm/backup.go runFinishBcp."""
        b = self.data["backups"].get(name)
        if b is None:
            raise PBMFail(f'backup "{name}" not found')
        if b["status"] != "copyReady":
            raise PBMFail(f'expected "copyReady" status. got "{b["status"]}"')
        b["released"] = True
        b["released_at"] = self.now
        b["released_polls"] = b["polls"]
        b["phase"] = b["phases"].index("copyDone")
        self._set_backup_status(b, "copyDone")

    def cancel_backup(self) -> None:
        for b in self.data["backups"].values():
            if b["status"] not in TERMINAL:
                self._set_backup_status(b, "canceled")

    def get_backup(self, name: str) -> dict[str, Any]:
        b = self.data["backups"].get(name)
        if b is None:
            raise PBMFail("get backup meta: get backup meta: not found")
        return b

    def legacy_size_check(self, b: dict[str, Any], with_collections: bool = False) -> None:
        """What describe-backup does with the storage before printing (PBM:cmd/pbm/backup.go describeBackup):
        for a backup whose meta says size 0 (or --with-collections) it checks read access (`.pbm.init`; a missing
        one is fine), and for a finished logical backup of size 0 it recomputes the size from the files and fails
        when the dump or the oplog is missing unless the backup is `done` (cmd/pbm/status.go getLegacyLogicalSize,
        `FileStat` on `<name>/<rs>/metadata.json` and on `<name>/<rs>/oplog`, which an object store never has as an
        object). So a logical backup that failed before its size was recorded cannot be described:
        `get snapshot size: missed file` (`pbm status` still lists it)."""
        if b["size"] != 0 and not with_collections:
            return
        if b["type"] == "external" and not with_collections:
            return
        stg = self.backup_storage(b)
        try:
            stg.stat(".pbm.init")
        except StorageError as e:
            raise PBMFail(f"check read access: {e}") from None
        if b["size"] != 0 or b["status"] not in ("done", "canceled", "error"):
            return
        if b["type"] != "logical":
            return
        missed = False
        for rs in b["replsets"]:
            for key in (rs["dump_name"], rs["oplog_name"]):
                try:
                    present = stg.stat(key)
                except StorageError as e:
                    raise PBMFail(f"get snapshot size: get file {key}: {e}") from None
                if not present:
                    if b["status"] == "done":
                        raise PBMFail(f"get snapshot size: get file {key}: no such file")
                    missed = True
        if missed:
            raise PBMFail("get snapshot size: missed file")

    def delete_backup(self, name: str) -> list[dict[str, Any]]:
        """PBM:cmd/pbm/delete.go deleteBackupByName + pbm/backup/delete.go DeleteBackup. Returns the deleted metas."""
        self.check_no_other_operation()
        b = self.data["backups"].get(name)
        if b is None:
            raise PBMFail("get backup metadata: get backup meta: not found")
        chain = [b]
        if b["type"] == "incremental":
            if b["src_backup"]:
                raise PBMFail(
                    "Removing a single incremental backup is not allowed; the entire chain must be removed instead."
                )
            frontier = {b["name"]}
            while frontier:
                nxt = [x for x in self.data["backups"].values() if x["src_backup"] in frontier]
                chain += nxt
                frontier = {x["name"] for x in nxt}
        if b["status"] not in TERMINAL:
            raise PBMFail("backup cannot be deleted: backup is in progress")
        if self._is_pitr_base(b):
            raise PBMFail("backup cannot be deleted: cannot delete the last PITR base snapshot while PITR is enabled")
        if "delete" in self.fail_points():
            raise PBMFail(self.fail_message("delete"))
        for x in reversed(chain):
            if x["type"] != "external":
                stg = self.backup_storage(x)
                try:
                    stg.delete_tree(x["name"])
                    stg.delete(f"{x['name']}.pbm.json")
                except StorageError as e:
                    raise PBMFail(f'delete files from storage for "{x["name"]}": {e}') from None
            del self.data["backups"][x["name"]]
            self.log(f"backup {x['name']} deleted")
        return chain

    def _is_base_snapshot(self, b: dict[str, Any]) -> bool:
        return (
            b["status"] == "done"
            and not b["nss"]
            and b["type"] in ("logical", "physical", "incremental")
            and not b["store"].get("name")
        )

    def _is_pitr_base(self, b: dict[str, Any]) -> bool:
        cfg = self.config
        if not cfg or not (cfg.get("pitr") or {}).get("enabled") or not self._is_base_snapshot(b):
            return False
        later = [
            x
            for x in self.data["backups"].values()
            if x is not b and self._is_base_snapshot(x) and x["last_write_ts"] >= b["last_write_ts"]
        ]
        return not later

    # ------------------------------------------------------------------ PITR timeline

    def _pitr_tick(self) -> None:
        """Oplog slicing: on while `pitr.enabled` and a base snapshot exists (or oplogOnly); a new timeline starts at
        the latest base snapshot's last write (PBM catches up from there). No chunk objects are written."""
        p = self.data["pitr"]
        cfg = self.config or {}
        enabled = bool((cfg.get("pitr") or {}).get("enabled"))
        if not enabled:
            if p["open"] is not None:
                p["ranges"].append([p["open"], int(self.now)])
                p["open"] = None
            return
        if p["open"] is not None:
            return
        bases = [b for b in self.data["backups"].values() if self._is_base_snapshot(b)]
        if bases:
            start = max(b["last_write_ts"] for b in bases)
        elif (cfg.get("pitr") or {}).get("oplogOnly"):
            start = int(self.now)
        else:
            return
        last_end = p["ranges"][-1][1] if p["ranges"] else 0
        p["open"] = max(start, last_end)  # a new timeline never overlaps the previous one

    def pitr_ranges(self) -> list[tuple[int, int]]:
        p = self.data["pitr"]
        out = [(int(a), int(b)) for a, b in p["ranges"] if b > a]
        if p["open"] is not None and int(self.now) > p["open"]:
            out.append((int(p["open"]), int(self.now)))
        return out

    # ------------------------------------------------------------------ config

    def set_config(self, cfg: dict[str, Any]) -> None:
        """PBM:cmd/pbm/config.go runConfig --file + config.SetConfig (+ resync when the storage changed)."""
        self.check_no_other_operation()
        if "config" in self.fail_points():
            raise PBMFail(f"unable to set config: write to db: {self.fail_message('config')}")
        pitr = cfg.get("pitr") or {}
        c = pitr.get("compression")
        if c and c not in COMPRESSIONS:
            raise PBMFail(f'unable to set config: write to db: unsupported compression type: "{c}"')
        old = self.config
        self.data["config"] = cfg
        if old is None or not same_storage(old.get("storage"), cfg.get("storage")):
            self.resync_main()

    def resync_main(self) -> None:
        """PBM resync: initialise the storage (`.pbm.init`) and replace the main storage's backup list by the
        `*.pbm.json` found there. Failures are logged, as the agents do; the CLI does not wait for them."""
        cfg = self.config
        if cfg is None:
            return
        for name in [
            n for n, b in self.data["backups"].items() if b["status"] in TERMINAL and not b["store"].get("name")
        ]:
            del self.data["backups"][name]
        self._import_from(cfg["storage"], profile="")

    def _import_from(self, storage_conf: dict[str, Any], *, profile: str) -> None:
        try:
            stg = self.storage(storage_conf)
            if not stg.exists(".pbm.init"):
                stg.put(".pbm.init", PBM_VERSION.encode())
            keys = [k for k in stg.list("") if "/" not in k and k.endswith(".pbm.json")]
        except StorageError as e:
            self.log(f"resync failed: {e}")
            return
        for key in keys:
            try:
                meta = json.loads(stg.get(key))
            except (StorageError, json.JSONDecodeError) as e:
                self.log(f"resync: skip {key}: {e}")
                continue
            name = meta.get("name") or key[: -len(".pbm.json")]
            if name in self.data["backups"] or meta.get("status") != "done":
                continue
            store = copy.deepcopy(storage_conf)
            if profile:
                store = {"name": profile, "profile": True, **store}
            self.data["backups"][name] = _backup_from_meta(meta, store)
            self.log(f"resync: imported {name}")

    def set_config_vars(self, pairs: list[tuple[str, str]]) -> list[dict[str, str]]:
        """PBM:cmd/pbm/config.go runConfig --set + config.SetConfigVar."""
        self.check_no_other_operation()
        out = []
        for key, raw in pairs:
            kind = config_var_kind(key)
            if kind is None:
                raise PBMFail(f"set {key}: invalid config key")
            if self.config is None:
                raise PBMFail(f"set {key}: config is not set")
            val = cast_var(kind, key, raw)
            if key == "pitr.compression" and val and val not in COMPRESSIONS:
                raise PBMFail(f'set {key}: unsupported compression type: "{val}"')
            if key == "storage.filesystem.path" and not val:
                raise PBMFail(f"set {key}: storage.filesystem.path can't be empty")
            if (
                isinstance(val, str)
                and key.startswith("storage.")
                and key.rsplit(".", 1)[-1] in ("bucket", "container", "prefix")
            ):
                val = val.strip("/")
            old_storage = copy.deepcopy(self.config["storage"])
            node = self.data["config"]
            parts = key.split(".")
            for p in parts[:-1]:
                if not isinstance(node.get(p), dict):
                    node[p] = {}
                node = node[p]
            node[parts[-1]] = val
            if key == "pitr.enabled":
                self.data["pitr"]["enabled_at"] = int(self.now) if val else None
            out.append({"key": key, "value": raw})
            if not same_storage(old_storage, self.config["storage"]):
                self.resync_main()
        self._pitr_tick()
        return out

    def get_config_var(self, key: str) -> Any:
        if config_var_kind(key) is None and key not in ("storage", "pitr", "backup", "restore"):
            raise PBMFail(f"unable to get config key: invalid config key: {key}")
        if self.config is None:
            raise PBMFail("unable to get config key: get from db: mongo: no documents in result")
        node: Any = self.config
        for p in key.split("."):
            if not isinstance(node, dict) or p not in node:
                return None
            node = node[p]
        return node

    # ------------------------------------------------------------------ profiles

    def add_profile(self, name: str, cfg: dict[str, Any], *, sync: bool) -> None:
        """PBM:cmd/pbm/profile.go handleAddConfigProfile."""
        if name == "main":
            raise PBMFail('argument `profile-name` should not be "main"')
        self.check_no_other_operation()
        if self.config is None:
            raise PBMFail("PBM is not configured")
        self.data["profiles"][name] = {"name": name, "profile": True, "storage": cfg["storage"]}
        if sync:
            self._import_from(cfg["storage"], profile=name)

    def remove_profile(self, name: str) -> None:
        self.check_no_other_operation()
        if name not in self.data["profiles"]:
            raise PBMFail(f'profile "{name}" is not found')
        del self.data["profiles"][name]
        for n in [n for n, b in self.data["backups"].items() if b["store"].get("name") == name]:
            del self.data["backups"][n]

    def sync_profile(self, name: str | None, *, all_: bool, clear: bool) -> None:
        self.check_no_other_operation()
        names = list(self.data["profiles"]) if all_ else [name or ""]
        for n in names:
            if n not in self.data["profiles"]:
                raise PBMFail(f'profile "{n}" is not found')
            for bn in [bn for bn, b in self.data["backups"].items() if b["store"].get("name") == n]:
                del self.data["backups"][bn]
            if not clear:
                self._import_from(self.data["profiles"][n]["storage"], profile=n)

    # ------------------------------------------------------------------ restores

    def start_restore(
        self,
        *,
        backup: str,
        pitr_ts: int,
        base_snapshot: str,
        nss: list[str],
        ns_from: str,
        ns_to: str,
        users_and_roles: bool,
        rs_map: dict[str, str],
        external: bool,
    ) -> dict[str, Any]:
        """PBM:cmd/pbm/restore.go runRestore/doRestore/checkBackup (after the option checks, which the CLI does)."""
        self.check_no_other_operation()
        b = None
        if external and not backup:
            typ = "external"
        else:
            bname = base_snapshot if (pitr_ts and base_snapshot) else backup
            if bname:
                b = self.data["backups"].get(bname)
                if b is None:
                    raise PBMFail(f"backup '{bname}' not found")
            else:
                cands = [
                    x
                    for x in self.data["backups"].values()
                    if self._is_base_snapshot(x) and x["last_write_ts"] <= pitr_ts
                ]
                if not cands:
                    raise PBMFail("no base snapshot found")
                b = max(cands, key=lambda x: x["last_write_ts"])
            if nss and b["type"] != "logical":
                raise PBMFail("--ns flag is only allowed for logical restore")
            if ns_from and ns_to and b["type"] != "logical":
                raise PBMFail("--ns-from and ns-to flags are only allowed for logical restore")
            if b["status"] != "done":
                raise PBMFail(f"backup '{b['name']}' didn't finish successfully")
            typ = b["type"]
        name = rfc3339nano(time.time_ns())
        s = self.settings
        phases = RESTORE_PHASES["logical" if typ == "logical" else "physical"]
        op = self._new_op(phases, [s.starting_s] + [s.restore_s / (len(phases) - 2)] * (len(phases) - 2))
        if op["mode"] == "calls":
            op["lengths"] = [1] * (len(phases) - 1)
        fail_at = "running" if "restore" in self.fail_points() else None
        r: dict[str, Any] = {
            "name": name,
            "opid": opid(),
            "backup": b["name"] if b else "",
            "type": typ,
            "status": "starting",
            "error": "",
            "nss": nss,
            "ns_from": ns_from,
            "ns_to": ns_to,
            "users_and_roles": users_and_roles,
            "rs_map": rs_map,
            "start_ts": int(self.now),
            "last_transition_ts": int(self.now),
            "pitr": pitr_ts,
            "replsets": [],
            "fail_at": fail_at,
            "fail_msg": self.fail_message("restore") if fail_at else "",
            **op,
        }
        self.data["restores"][name] = r
        self.log(f"restore {name} started from {r['backup'] or '[external]'}")
        return r

    def _set_restore_status(self, r: dict[str, Any], status: str, error: str = "") -> None:
        r["status"] = status
        r["last_transition_ts"] = int(self.now)
        if error:
            r["error"] = error
        for rs in r["replsets"]:
            if rs["status"] not in TERMINAL:
                rs["status"] = status
                rs["last_transition_ts"] = int(self.now)
                if error:
                    rs["error"] = error
                for n in rs.get("nodes") or []:
                    n["status"] = status
                    n["last_transition_ts"] = int(self.now)
                    if error:
                        n["error"] = error

    def _advance_restore(self, r: dict[str, Any]) -> None:
        target = self._target(r)
        while r["phase"] < target and r["status"] not in TERMINAL:
            leaving = r["phases"][r["phase"]]
            if r.get("fail_at") == leaving:
                self._set_restore_status(r, "error", r["fail_msg"])
                return
            nxt = r["phases"][r["phase"] + 1]
            if nxt == "running":
                # the agents switch PITR off when a restore starts (PBM:cmd/pbm-agent/restore.go)
                if self.config and (self.config.get("pitr") or {}).get("enabled"):
                    self.config["pitr"]["enabled"] = False
                    self.log(f"restore {r['name']}: oplog slicer disabled")
                err = self._restore_preflight(r)
                if err:
                    self._set_restore_status(r, "error", err)
                    return
                for rs in self.settings.replsets:
                    entry: dict[str, Any] = {
                        "name": rs,
                        "status": "running",
                        "last_transition_ts": int(self.now),
                        "error": "",
                    }
                    if r["type"] != "logical":
                        entry["nodes"] = [
                            {"name": h, "status": "running", "last_transition_ts": int(self.now), "error": ""}
                            for h in self.settings.hosts(rs)
                        ]
                    r["replsets"].append(entry)
            r["phase"] += 1
            self._set_restore_status(r, nxt)

    def _restore_preflight(self, r: dict[str, Any]) -> str:
        """What the agents find when they start: the backup's files on its storage, and for PITR the oplog."""
        b = self.data["backups"].get(r["backup"]) if r["backup"] else None
        if b is None:
            return "" if r["type"] == "external" else f"get backup metadata: backup '{r['backup']}' not found"
        if b["type"] == "external":
            return ""
        try:
            stg = self.backup_storage(b)
            for rs in b["replsets"]:
                keys = (
                    [rs["dump_name"]]
                    if b["type"] == "logical"
                    else [f"{b['name']}/{rs['name']}/{f['filename']}" for f in rs["files"]]
                )
                for k in keys:
                    if k and not stg.exists(k):
                        return f'download data: get object "{k}": no such file'
        except StorageError as e:
            return f"download data: {e}"
        if r["pitr"]:
            ok = any(a <= b["last_write_ts"] and r["pitr"] <= e for a, e in self.pitr_ranges())
            if not ok:
                return (
                    f"define oplog chunks: no chunk with the target time, the last chunk ends on "
                    f"{{{max((e for _, e in self.pitr_ranges()), default=0)} 0}}"
                )
        return ""

    def get_restore(self, name: str) -> dict[str, Any]:
        r = self.data["restores"].get(name)
        if r is None:
            raise PBMFail("get restore meta: not found")
        return r


def _ns_match(ns: str, patterns: list[str]) -> bool:
    db, _, coll = ns.partition(".")
    for p in patterns:
        pdb, _, pcoll = p.partition(".")
        if p in ("*", "*.*") or (pdb == db and pcoll in ("*", coll)):
            return True
    return False


def _ts(v: Any) -> int:
    if isinstance(v, dict):
        return int(v.get("T") or 0)
    return int(v or 0)


def _backup_from_meta(meta: dict[str, Any], store: dict[str, Any]) -> dict[str, Any]:
    """A state record from a `<name>.pbm.json` found on a storage (resync)."""
    replsets = []
    for rs in meta.get("replsets") or []:
        replsets.append(
            {
                "name": rs.get("name", ""),
                "node": rs.get("node", ""),
                "status": rs.get("status", "done"),
                "start_ts": int(rs.get("start_ts") or 0),
                "last_transition_ts": int(rs.get("last_transition_ts") or 0),
                "first_write_ts": _ts(rs.get("first_write_ts")),
                "last_write_ts": _ts(rs.get("last_write_ts")),
                "size": int(rs.get("size") or 0),
                "size_uncompressed": int(rs.get("size_uncompressed") or 0),
                "error": rs.get("error") or "",
                "files": rs.get("files") or [],
                "dump_name": rs.get("backup_name") or "",
                "oplog_name": rs.get("oplog_name") or "",
                **({"configsvr": True} if rs.get("iscs") else {}),
            }
        )
    return {
        "name": meta["name"],
        "opid": meta.get("opid") or opid(),
        "type": meta.get("type") or "logical",
        "base": meta.get("type") == "incremental" and not meta.get("src_backup"),
        "src_backup": meta.get("src_backup") or "",
        "compression": meta.get("compression") or "s2",
        "level": None,
        "profile": store.get("name") or "",
        "store": store,
        "nss": meta.get("nss") or [],
        "users_and_roles": bool(meta.get("sel_users_and_roles")),
        "status": meta.get("status") or "done",
        "error": meta.get("error") or "",
        "start_ts": int(meta.get("start_ts") or 0),
        "last_transition_ts": int(meta.get("last_transition_ts") or 0),
        "first_write_ts": _ts(meta.get("first_write_ts")),
        "last_write_ts": _ts(meta.get("last_write_ts")),
        "hb": _ts(meta.get("hb")),
        "size": int(meta.get("size") or 0),
        "size_uncompressed": int(meta.get("size_uncompressed") or 0),
        "replsets": replsets,
        "conditions": meta.get("conditions") or [],
        "fail_at": None,
        "fail_msg": "",
        "pbm_version": meta.get("pbm_version") or PBM_VERSION,
        "phases": BACKUP_PHASES,
        "lengths": [0, 0, 0],
        "mode": "time",
        "t0": 0.0,
        "polls": 0,
        "phase": None,
    }


def iter_sorted_backups(sim: Sim, *, newest_first: bool) -> Iterator[dict[str, Any]]:
    yield from sorted(sim.data["backups"].values(), key=lambda b: (b["start_ts"], b["name"]), reverse=newest_first)


def storage_path_of(storage_conf: dict[str, Any]) -> str:
    return storage_path(storage_conf)


__all__ = [
    "PBMFail",
    "Settings",
    "StateFile",
    "Sim",
    "parse_config",
    "full_config",
    "mask_secrets",
    "byte_count_iec",
    "rfc3339",
    "rfc3339nano",
    "iter_sorted_backups",
    "storage_path_of",
    "NotExist",
    "BACKUP_TYPES",
    "COMPRESSIONS",
    "FAIL_POINTS",
    "TERMINAL",
]
