"""The stand-in's PBM write side (what the operator does to PBM): `CliDriver` extends the product's read-only
`PBMReader` (webhook/controller/pbmread.py) with config apply, backup and restore starts, deletes and `config --set`,
run as the `pbm` CLI in the cluster pod's `backup-agent` container.

Contract (PBM 2.15.0, PBM v2.15.0@6f9fc3bf cmd/pbm/backup.go:64-74,383-427, restore.go:227-263,720-746,
list.go:35-45; tests:
tests/unit/test_pbm_contract.py against the simulator in tools/pbm_sim):

* `pbm backup --type T [--base] [--compression C] [--compression-level N] [--profile P] -o json` returns once the
  backup is `running` with `{"name","profile"?,"storagePath"}` (`{"name","storage":[{"name","files"}]}` for
  `external`). PBM names the backup itself (UTC RFC3339 second): the name to record is the JSON `name`.
* `pbm restore ... --yes -o json` (`{"name","snapshot"?}`; restore names are RFC3339Nano), `pbm delete-backup NAME
  --yes`. `restore` and `delete-backup` ask for confirmation unless `--yes` (and fail with `no tty` when exec'd).

Config files (`apply_config`): `pbm config --file F` and `pbm profile add NAME F` need a file in the container. The
YAML goes on the exec's STDIN, and a shell writes exactly that many bytes to a private temp file:

    argv: sh -c SCRIPT <byte count> pbm config -o json --file
    SCRIPT: f=$(mktemp) || exit 1; trap 'rm -f "$f"' EXIT; head -c "$0" >"$f" || exit 1; "$@" "$f"

so credentials never appear in a command line (the exec request URL, API server audit logs, `ps` in the pod) and
the command does not depend on stdin EOF, which neither the v4 WebSocket exec protocol nor kwok can signal. The
temp file lives in the container's /tmp (writable; an emptyDir when the root filesystem is read-only) and is removed
when the shell exits; the shell's exit status is pbm's.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

import yaml

from webhook.controller.pbmread import (
    BackupInfo,
    ClusterRef,
    PBMError,
    PBMNotFound,
    PBMOutputError,
    PBMReader,
    PBMTimeout,
    RestoreInfo,
    parse_json_output,
)

log = logging.getLogger(__name__)

# sh -c SCRIPT <nbytes> <argv...>: $0 is the byte count; the temp file's path is appended to argv
_FILE_SCRIPT = 'f=$(mktemp) || exit 1; trap \'rm -f "$f"\' EXIT; head -c "$0" >"$f" || exit 1; "$@" "$f"'


# --------------------------------------------------------------------------------------------------- interface


class PBMDriver(Protocol):
    """What the controller needs from PBM. `cluster_ref` says which cluster; implementations find the pod."""

    async def apply_config(
        self, cluster_ref: ClusterRef, main: Mapping[str, Any], profiles: Mapping[str, Mapping[str, Any]]
    ) -> dict[str, Any]:
        """Set the main PBM config (storage, pitr, backup/restore options) and make the profiles (non-main
        storages, each `{"storage": {...}}`) exactly `profiles`."""
        ...

    async def start_backup(
        self,
        cluster_ref: ClusterRef,
        name: str,
        type: str,
        compression: str | None = None,
        level: int | None = None,
        profile: str | None = None,
    ) -> dict[str, Any]:
        """Start a backup; returns PBM's JSON, whose `name` is the PBM backup name to record. `name` is ours (the
        Backup object's), used for logs only: PBM names backups itself."""
        ...

    async def backup_status(self, cluster_ref: ClusterRef, pbm_name: str) -> BackupInfo | None: ...

    async def start_restore(
        self,
        cluster_ref: ClusterRef,
        backup_name: str,
        *,
        time: datetime | str | int | None = None,
        base_snapshot: str | None = None,
        namespaces: Sequence[str] = (),
        ns_from: str | None = None,
        ns_to: str | None = None,
        replset_remapping: Mapping[str, str] | None = None,
        with_users_and_roles: bool = False,
    ) -> str: ...

    async def restore_status(self, cluster_ref: ClusterRef, name: str) -> RestoreInfo | None: ...

    async def delete_backup(self, cluster_ref: ClusterRef, pbm_name: str) -> bool: ...

    async def status(self, cluster_ref: ClusterRef, sections: Sequence[str] = ()) -> dict[str, Any]: ...

    async def set_config_value(self, cluster_ref: ClusterRef, key: str, value: str) -> None: ...

    async def pitr_latest(self, cluster_ref: ClusterRef) -> datetime | None:
        """The end of the newest point-in-time range PBM can restore to (None: no range)."""
        ...

    async def find_backup_since(self, cluster_ref: ClusterRef, since: datetime) -> str | None:
        """The name of a PBM backup started at or after `since` (running or finished), if any: how a controller that
        died between starting a backup and recording its name finds it again."""
        ...

    async def find_restore_since(self, cluster_ref: ClusterRef, since: datetime) -> str | None: ...


# --------------------------------------------------------------------------------------------------- CLI driver


def backup_type_args(type: str) -> list[str]:
    """The CR's backup types to `pbm backup` flags: `incremental-base` is `--type incremental --base`."""
    if type == "incremental-base":
        return ["--type", "incremental", "--base"]
    if type in ("logical", "physical", "incremental", "external"):
        return ["--type", type]
    raise ValueError(f"unknown backup type {type!r}")


def pitr_time_arg(t: datetime | str | int) -> str:
    """`--time` takes `2006-01-02T15:04:05` (UTC) or `T,I`."""
    if isinstance(t, datetime):
        if t.tzinfo is not None:
            t = t.astimezone(UTC)
        return t.strftime("%Y-%m-%dT%H:%M:%S")
    if isinstance(t, int):
        return f"{t},0"
    s = t.strip()
    if re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", s):  # the Restore CR's pitr.date format
        s = s.replace(" ", "T")
    return s


class CliDriver(PBMReader):
    """`PBMDriver`: the reads of `PBMReader` and the operator's writes."""

    commands = None  # every pbm command

    def __init__(self, *args: Any, backup_timeout: float = 180.0, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.backup_timeout = backup_timeout

    async def _json_with_file(self, cluster_ref: ClusterRef, args: Sequence[str], content: str) -> Any:
        """`pbm ARGS -o json <tempfile>` with `content` in the temp file (see the module docstring)."""
        data = content.encode("utf-8")
        # `pbm config -o json --file <f>`, `pbm profile add -o json NAME <f>`: the script appends the file
        argv = ["sh", "-c", _FILE_SCRIPT, str(len(data)), self.pbm, *args[:-1], "-o", "json", args[-1]]
        res = await self._run(cluster_ref, list(args), stdin=data, argv=argv)
        return parse_json_output(res.stdout_text, args[0])

    # ------------------------------------------------------------------ the interface

    async def apply_config(
        self, cluster_ref: ClusterRef, main: Mapping[str, Any], profiles: Mapping[str, Mapping[str, Any]]
    ) -> dict[str, Any]:
        """`pbm config --file` with `main`, then `pbm profile add` for each profile and `pbm profile remove` for
        profiles PBM has that `profiles` does not. PBM refuses all of these while a backup or restore runs
        (PBMBusy). PBM re-syncs its backup list when the main storage changed."""
        if "storage" not in main:
            raise ValueError("main PBM config needs a storage section")
        cfg = await self._json_with_file(cluster_ref, ["config", "--file"], _dump_yaml(main))
        current = await self._json(cluster_ref, ["profile", "list"])
        have = {p.get("name") for p in (current or {}).get("profiles") or [] if isinstance(p, Mapping)}
        added, removed = [], []
        for name, prof in sorted(profiles.items()):
            if name == "main":
                raise ValueError('a PBM profile cannot be called "main"')
            body = {"storage": prof["storage"]} if "storage" in prof else {"storage": dict(prof)}
            # --sync: PBM learns the backups already on that storage, so they can be restored
            await self._json_with_file(cluster_ref, ["profile", "add", "--sync", name], _dump_yaml(body))
            added.append(name)
        for name in sorted(n for n in have if n and n not in profiles):
            await self._json(cluster_ref, ["profile", "remove", name])
            removed.append(name)
        return {"config": cfg, "profiles_added": added, "profiles_removed": removed}

    async def start_backup(
        self,
        cluster_ref: ClusterRef,
        name: str,
        type: str,
        compression: str | None = None,
        level: int | None = None,
        profile: str | None = None,
    ) -> dict[str, Any]:
        args = ["backup", *backup_type_args(type)]
        if compression:
            args += ["--compression", compression]
        if level is not None:
            args += ["--compression-level", str(int(level))]
        if profile:
            args += ["--profile", profile]
        started = datetime.now(UTC).replace(microsecond=0)
        try:
            out = await self._json(cluster_ref, args, timeout=self.backup_timeout)
        except PBMTimeout:
            # `pbm backup` waits for the backup to run; if we gave up first, the backup may exist anyway
            found = await self._find_backup_since(cluster_ref, started)
            if found is None:
                raise
            log.warning("pbm backup for %s timed out, but PBM runs backup %s", name, found)
            return {"name": found, "recovered": True}
        if not isinstance(out, Mapping) or not isinstance(out.get("name"), str) or not out["name"]:
            raise PBMOutputError(f"pbm backup: no backup name in output: {str(out)[:200]}", argv=args)
        log.info("backup %s is PBM backup %s", name, out["name"])
        return dict(out)

    async def _find_backup_since(self, cluster_ref: ClusterRef, since: datetime) -> str | None:
        try:
            return await self.find_backup_since(cluster_ref, since)
        except PBMError:
            return None

    async def set_config_value(self, cluster_ref: ClusterRef, key: str, value: str) -> None:
        await self._run(cluster_ref, ["config", "--set", f"{key}={value}"])

    async def start_restore(
        self,
        cluster_ref: ClusterRef,
        backup_name: str,
        *,
        time: datetime | str | int | None = None,
        base_snapshot: str | None = None,
        namespaces: Sequence[str] = (),
        ns_from: str | None = None,
        ns_to: str | None = None,
        replset_remapping: Mapping[str, str] | None = None,
        with_users_and_roles: bool = False,
    ) -> str:
        """`pbm restore NAME` or, for point-in-time, `pbm restore --time T --base-snapshot NAME` (PBM refuses a
        name together with --time). `replset_remapping` is the Restore CR's map, backup (source) replset ->
        target replset; PBM's flag wants `target=source` pairs."""
        args = ["restore"]
        if time is not None:
            args += ["--time", pitr_time_arg(time)]
            base = base_snapshot or backup_name
            if base:
                args += ["--base-snapshot", base]
        else:
            if base_snapshot:
                raise ValueError("base_snapshot only applies to a point-in-time restore (time=...)")
            if not backup_name:
                raise ValueError("a restore needs a backup name or a time")
            args.append(backup_name)
        if namespaces:
            args += ["--ns", ",".join(namespaces)]
        if ns_from or ns_to:
            if not (ns_from and ns_to):
                raise ValueError("ns_from and ns_to go together")
            args += ["--ns-from", ns_from, "--ns-to", ns_to]
        if replset_remapping:
            args += ["--replset-remapping", ",".join(f"{t}={s}" for s, t in sorted(replset_remapping.items()))]
        if with_users_and_roles:
            args.append("--with-users-and-roles")
        args.append("--yes")
        out = await self._json(cluster_ref, args)
        if not isinstance(out, Mapping) or not isinstance(out.get("name"), str) or not out["name"]:
            raise PBMOutputError(f"pbm restore: no restore name in output: {str(out)[:200]}", argv=args)
        return out["name"]

    async def delete_backup(self, cluster_ref: ClusterRef, pbm_name: str) -> bool:
        """Delete the backup's files and PBM metadata. False when PBM does not know the name (already gone)."""
        try:
            await self._run(cluster_ref, ["delete-backup", pbm_name, "--yes"])
        except PBMNotFound:
            return False
        return True


def _dump_yaml(doc: Mapping[str, Any]) -> str:
    return yaml.safe_dump(json.loads(json.dumps(doc)), sort_keys=False, default_flow_style=False)
