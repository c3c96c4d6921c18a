"""Restores: preflight checks as PBM makes them, phasing, status."""

from __future__ import annotations

import time
from typing import Any

from .common import TERMINAL, PBMFail, opid, rfc3339nano
from .core import RESTORE_PHASES
from .profiles import ConfigOps
from .storage import StorageError


class RestoreOps(ConfigOps):
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
