"""Conventions shared by every subcommand's flags: PSMDB_BACKUP_* environment defaults and HOST:PORT values."""

from __future__ import annotations

import argparse
import os
import sys


def listen(value: str) -> tuple[str, int]:
    """argparse `type` for a HOST:PORT flag ("[::1]:8443" too; an empty host listens everywhere)."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT such as 127.0.0.1:8443, got {value!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


def env(name: str, default: str | None = None) -> str | None:
    """The default of a flag: every flag can also be set as PSMDB_BACKUP_<NAME>."""
    return os.environ.get(f"PSMDB_BACKUP_{name}", default)


TRUE, FALSE = frozenset({"1", "true", "yes", "on"}), frozenset({"0", "false", "no", "off", ""})


def parse_bool(text: str) -> bool | None:
    """The one spelling of a boolean variable (ours and PSMDB_STRICT_RULES): 1/true/yes/on or 0/false/no/off, any
    case; None for anything else."""
    value = text.strip().lower()
    return True if value in TRUE else False if value in FALSE else None


def env_bool(name: str, default: bool) -> bool:
    """The default of an on/off flag from PSMDB_BACKUP_<NAME>; a value that is not a boolean stops the command
    (exit 2) instead of being read as off."""
    raw = env(name)
    if raw is None:
        return default
    value = parse_bool(raw)
    if value is None:
        print(
            f"psmdb-backup: PSMDB_BACKUP_{name}={raw!r} is not a boolean (use 1/0, true/false, yes/no, on/off)",
            file=sys.stderr,
        )
        raise SystemExit(2)
    return value
