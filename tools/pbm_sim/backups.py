"""Backups and the PITR timeline: starting, phasing, metadata in PBM's layout, deleting."""

from __future__ import annotations

import copy
import gzip
import json
import time
from collections.abc import Iterator
from typing import Any

from . import PBM_VERSION
from .common import SUFFIX, TERMINAL, PBMFail, chunk_name, now_f, opid, rfc3339
from .config import full_config
from .core import BACKUP_PHASES, EXTERNAL_PHASES, SimCore
from .storage import Storage, StorageError, storage_path


class BackupOps(SimCore):
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


def iter_sorted_backups(sim: SimCore, *, newest_first: bool) -> Iterator[dict[str, Any]]:
    yield from sorted(sim.data["backups"].values(), key=lambda b: (b["start_ts"], b["name"]), reverse=newest_first)


def storage_path_of(storage_conf: dict[str, Any]) -> str:
    return storage_path(storage_conf)
