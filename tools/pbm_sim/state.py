"""The simulator's state: one JSON file per simulated cluster, guarded by an flock."""

from __future__ import annotations

import copy
import fcntl
import json
import os
from pathlib import Path
from typing import Any

from .common import PBMFail

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
