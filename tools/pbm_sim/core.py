"""The simulator's core: state accessors, fail points, storage handles and the clock that phases operations."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from .common import TERMINAL, PBMFail, Settings, now_f, rfc3339
from .state import StateFile
from .storage import Storage, open_storage

# --------------------------------------------------------------------------------------------------- the engine


BACKUP_PHASES = ["starting", "running", "dumpDone", "done"]
EXTERNAL_PHASES = ["starting", "running", "copyReady", "copyDone", "done"]
RESTORE_PHASES = {"logical": ["starting", "running", "dumpDone", "done"], "physical": ["starting", "running", "done"]}


@dataclass
class SimCore:
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
