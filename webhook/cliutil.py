"""Conventions shared by every subcommand's flags: PSMDB_BACKUP_* environment defaults and HOST:PORT values."""

from __future__ import annotations

import argparse
import os


def listen(value: str) -> tuple[str, int]:
    """argparse `type` for a HOST:PORT flag ("[::1]:8443" too; an empty host listens everywhere)."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT such as 127.0.0.1:8443, got {value!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


def env(name: str, default: str | None = None) -> str | None:
    """The default of a flag: every flag can also be set as PSMDB_BACKUP_<NAME>."""
    return os.environ.get(f"PSMDB_BACKUP_{name}", default)
