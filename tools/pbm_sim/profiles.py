"""Main configuration, profiles and resync from storage."""

from __future__ import annotations

import copy
import json
from typing import Any

from . import PBM_VERSION
from .backups import BackupOps, _backup_from_meta
from .common import COMPRESSIONS, TERMINAL, PBMFail
from .config import cast_var, config_var_kind
from .storage import StorageError, same_storage


class ConfigOps(BackupOps):
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
