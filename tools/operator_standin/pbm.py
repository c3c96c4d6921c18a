"""The controller's only way to PBM: a small driver interface (`PBMDriver`) and its implementation `CliDriver`, which
runs the `pbm` CLI in the cluster pod's `backup-agent` container and parses its `-o json` output.

Contract (PBM 2.15.0, shared reference psmdb-backup-facts.md §10.2-10.3 and errata 20-22; tests:
tests/unit/test_pbm_contract.py against the simulator in tools/pbm_sim):

* `pbm backup --type T [--base] [--compression C] [--compression-level N] [--profile P] -o json` returns once the
  backup is `running` with `{"name","profile"?,"storagePath"}` (`{"name","storage":[{"name","files"}]}` for
  `external`). PBM names the backup itself (UTC RFC3339 second): the name to record is the JSON `name`.
* `pbm describe-backup NAME -o json`, `pbm describe-restore NAME -o json`, `pbm restore ... --yes -o json`
  (`{"name","snapshot"?}`; restore names are RFC3339Nano), `pbm delete-backup NAME --yes`, `pbm status -o json`.
* A failing command prints `Error: <msg>` on stderr and exits 1, stdout empty. Under kwok the exit code is lost and
  the exec API says `Internal error occurred: ... exit status 1`; we read PBM's own text from stderr either way.
* Unknown names: `get backup meta: get backup meta: not found` / `get restore meta: not found` -> None here.
* `restore` and `delete-backup` ask for confirmation unless `--yes` (and fail with `no tty` when exec'd).

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

import asyncio
import inspect
import json
import logging
import re
import time as _time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import yaml

from .kubeexec import Exec, ExecResult, PodRef

log = logging.getLogger(__name__)

BACKUP_AGENT_CONTAINER = "backup-agent"
TERMINAL_STATUSES = frozenset({"done", "canceled", "error"})

# sh -c SCRIPT <nbytes> <argv...>: $0 is the byte count; the temp file's path is appended to argv
_FILE_SCRIPT = 'f=$(mktemp) || exit 1; trap \'rm -f "$f"\' EXIT; head -c "$0" >"$f" || exit 1; "$@" "$f"'


# --------------------------------------------------------------------------------------------------- errors


class PBMError(Exception):
    """A `pbm` command failed. `message` is PBM's own error text when it printed one (`Error: ...`)."""

    def __init__(
        self,
        message: str,
        *,
        argv: Sequence[str] = (),
        stdout: str = "",
        stderr: str = "",
        exit_code: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.argv = tuple(argv)
        self.stdout = stdout
        self.stderr = stderr
        self.exit_code = exit_code


class PBMNotFound(PBMError):
    """The named backup/restore does not exist in PBM."""


class PBMBusy(PBMError):
    """`another operation in progress, <cmd>/<opid> [<rs>/<node>]`: retry later."""


class PBMOutputError(PBMError):
    """The command succeeded but its output is not the JSON we expect."""


class PBMTransportError(PBMError):
    """The command could not be run (pod gone, exec refused, binary missing): nothing from PBM."""


class PBMTimeout(PBMError):
    """The exec did not finish in time (the operation may still have started)."""


# --------------------------------------------------------------------------------------------------- values


def _from_ts(v: Any) -> datetime | None:
    try:
        ts = int(v or 0)
    except (TypeError, ValueError):
        return None
    return datetime.fromtimestamp(ts, tz=UTC) if ts > 0 else None


def _from_rfc3339(v: Any) -> datetime | None:
    if not isinstance(v, str) or not v:
        return None
    try:
        return datetime.strptime(v, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        try:
            return datetime.fromisoformat(v.replace("Z", "+00:00"))
        except ValueError:
            return None


@dataclass(frozen=True)
class ClusterRef:
    """A PerconaServerMongoDB cluster; the driver's pod resolver turns it into the pod to exec in."""

    namespace: str
    name: str


@dataclass(frozen=True)
class ReplsetState:
    name: str
    status: str
    node: str = ""
    error: str | None = None


@dataclass(frozen=True)
class BackupInfo:
    """A PBM backup as `pbm describe-backup -o json` shows it. Times are UTC; a zero PBM timestamp (e.g.
    `last_write_ts` while the backup runs) is None. `storage_name` is the profile name, None for the main storage."""

    name: str
    status: str
    error: str | None
    type: str
    last_write_time: datetime | None
    last_transition_time: datetime | None
    size: int
    storage_name: str | None
    replsets: tuple[ReplsetState, ...] = ()
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @classmethod
    def from_describe(cls, j: Mapping[str, Any]) -> BackupInfo:
        _require(j, {"name": str, "status": str, "type": str}, "describe-backup")
        reps = tuple(
            ReplsetState(
                str(r.get("name", "")), str(r.get("status", "")), str(r.get("node", "")), r.get("error") or None
            )
            for r in (j.get("replsets") or [])
            if isinstance(r, Mapping)
        )
        error = j.get("error") or None
        if error is None and j["status"] == "error":
            error = next((r.error for r in reps if r.error), None)
        return cls(
            name=j["name"],
            status=j["status"],
            error=error,
            type=j["type"],
            last_write_time=_from_ts(j.get("last_write_ts")),
            last_transition_time=_from_ts(j.get("last_transition_ts")),
            size=int(j.get("size") or 0),
            storage_name=j.get("storage_name") or j.get("profile") or None,
            replsets=reps,
            raw=dict(j),
        )

    @classmethod
    def from_status_snapshot(cls, s: Mapping[str, Any]) -> BackupInfo:
        """From an entry of `pbm status -s backups -o json` (`backups.snapshot[]`): used when describe-backup
        cannot describe a backup that failed during its dump (PBM's `get snapshot size: missed file`)."""
        _require(s, {"name": str, "status": str}, "status backups.snapshot[]")
        done = s["status"] == "done"
        restore_to = s.get("restoreTo")
        return cls(
            name=s["name"],
            status=s["status"],
            error=s.get("error") or None,
            type=str(s.get("type") or ""),
            last_write_time=_from_ts(restore_to) if done else None,
            last_transition_time=None if done else _from_ts(restore_to),
            size=int(s.get("size") or 0),
            storage_name=s.get("profile") or None,
            raw=dict(s),
        )


@dataclass(frozen=True)
class RestoreInfo:
    """A PBM restore as `pbm describe-restore -o json` shows it."""

    name: str
    backup: str
    type: str
    status: str
    error: str | None
    start_time: datetime | None
    finish_time: datetime | None
    last_transition_time: datetime | None
    point_in_time: datetime | None
    replsets: tuple[ReplsetState, ...] = ()
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @classmethod
    def from_describe(cls, j: Mapping[str, Any]) -> RestoreInfo:
        _require(j, {"name": str, "status": str}, "describe-restore")
        reps = tuple(
            ReplsetState(str(r.get("name", "")), str(r.get("status", "")), "", r.get("error") or None)
            for r in (j.get("replsets") or [])
            if isinstance(r, Mapping)
        )
        error = j.get("error") or None
        if error is None and j["status"] == "error":
            error = next((r.error for r in reps if r.error), None)
        return cls(
            name=j["name"],
            backup=str(j.get("backup") or ""),
            type=str(j.get("type") or ""),
            status=j["status"],
            error=error,
            start_time=_from_rfc3339(j.get("start")),
            finish_time=_from_rfc3339(j.get("finish")),
            last_transition_time=_from_ts(j.get("last_transition_ts")),
            point_in_time=_from_ts(j.get("ts_to_restore")),
            replsets=reps,
            raw=dict(j),
        )


def _require(j: Any, keys: Mapping[str, type], what: str) -> None:
    if not isinstance(j, Mapping):
        raise PBMOutputError(f"pbm {what}: expected a JSON object, got {type(j).__name__}")
    for k, t in keys.items():
        if not isinstance(j.get(k), t):
            raise PBMOutputError(f"pbm {what}: JSON field {k!r} missing or not a {t.__name__}: {str(j)[:200]}")


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


PodResolver = Callable[[ClusterRef], PodRef | Awaitable[PodRef]]

_NOT_FOUND_RE = re.compile(r"(?:^|: )not found$")


def default_pod(cluster_ref: ClusterRef, replset: str = "rs0") -> PodRef:
    """`<cluster>-<replset>-0`, the pod the operator execs PBM commands in (first pod of the first replset)."""
    return PodRef(cluster_ref.namespace, f"{cluster_ref.name}-{replset}-0")


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


def parse_json_output(stdout: str, what: str) -> Any:
    """PBM prints one JSON document and a newline; some commands print text lines first (delete-backup)."""
    text = stdout.strip()
    if not text:
        raise PBMOutputError(f"pbm {what}: empty output, expected JSON")
    try:
        return json.loads(text)
    except json.JSONDecodeError as first:
        for line in reversed(text.splitlines()):
            line = line.strip()
            if line.startswith(("{", "[")):
                try:
                    return json.loads(line)
                except json.JSONDecodeError:
                    break
        raise PBMOutputError(
            f"pbm {what}: cannot parse output as JSON ({first.msg} at line {first.lineno} column {first.colno}); "
            f"output starts with: {text[:200]!r}",
            stdout=stdout,
        ) from None


def error_message(res: ExecResult) -> tuple[str, bool]:
    """(PBM's error text, whether PBM itself said anything) for a failed exec."""
    out, err = res.stdout_text.strip(), res.stderr_text.strip()
    if out.startswith("{"):  # exitErr in JSON mode: {"Error": "..."}
        try:
            j = json.loads(out.splitlines()[-1] if "\n" in out else out)
            if isinstance(j, dict) and isinstance(j.get("Error"), str):
                return j["Error"], True
        except json.JSONDecodeError:
            pass
    if err:
        idx = err.find("Error: ")
        if idx >= 0:
            return err[idx + len("Error: ") :].strip(), True
        return err[-1000:], True
    if res.error:
        return res.error, False
    return f"pbm failed with exit code {res.exit_code}", False


class CliDriver:
    """`PBMDriver` over `pbm` run in the `backup-agent` container through an injected `Exec` transport
    (`KubeExec` in the cluster, `LocalExec` in unit tests)."""

    def __init__(
        self,
        exec: Exec,
        resolve_pod: PodResolver = default_pod,
        *,
        container: str = BACKUP_AGENT_CONTAINER,
        pbm: str = "pbm",
        timeout: float = 60.0,
        backup_timeout: float = 180.0,
    ) -> None:
        self._exec = exec
        self._resolve = resolve_pod
        self.container = container
        self.pbm = pbm
        self.timeout = timeout
        self.backup_timeout = backup_timeout

    # ------------------------------------------------------------------ plumbing

    async def _pod(self, cluster_ref: ClusterRef) -> PodRef:
        pod = self._resolve(cluster_ref)
        if inspect.isawaitable(pod):
            pod = await pod
        return pod

    async def _run(
        self,
        cluster_ref: ClusterRef,
        args: Sequence[str],
        *,
        stdin: bytes | None = None,
        argv: Sequence[str] | None = None,
        timeout: float | None = None,
    ) -> ExecResult:
        """Run `pbm ARGS` (or a full `argv`) and return the result; raise PBMError if it failed."""
        pod = await self._pod(cluster_ref)
        argv = list(argv) if argv is not None else [self.pbm, *args]
        what = " ".join(args[:1]) if args else argv[0]
        t0 = _time.monotonic()
        try:
            res = await asyncio.wait_for(self._exec(pod, self.container, argv, stdin), timeout or self.timeout)
        except TimeoutError:
            raise PBMTimeout(
                f"pbm {what}: no answer from {pod}/{self.container} within {timeout or self.timeout:.0f}s", argv=argv
            ) from None
        log.debug(
            "pbm exec %s in %s: ok=%s exit=%s (%.2fs)",
            " ".join(args),
            pod,
            res.ok,
            res.exit_code,
            _time.monotonic() - t0,
        )
        if res.ok:
            return res
        message, from_pbm = error_message(res)
        kw: dict[str, Any] = dict(argv=argv, stdout=res.stdout_text, stderr=res.stderr_text, exit_code=res.exit_code)
        if not from_pbm and (res.exit_code is None or "executable file not found" in message):
            raise PBMTransportError(message, **kw)
        if message.startswith("another operation in progress"):
            raise PBMBusy(message, **kw)
        if _NOT_FOUND_RE.search(message):
            raise PBMNotFound(message, **kw)
        raise PBMError(message, **kw)

    async def _json(self, cluster_ref: ClusterRef, args: Sequence[str], **kw: Any) -> Any:
        res = await self._run(cluster_ref, [*args, "-o", "json"], **kw)
        return parse_json_output(res.stdout_text, args[0])

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

    async def find_backup_since(self, cluster_ref: ClusterRef, since: datetime) -> str | None:
        st = await self.status(cluster_ref, ["running", "backups"])
        names = [s.get("name") for s in ((st.get("backups") or {}).get("snapshot") or []) if isinstance(s, Mapping)]
        running = st.get("running") or {}
        if running.get("type") == "backup":
            names.append(running.get("name"))
        return _earliest_since(names, since)

    async def find_restore_since(self, cluster_ref: ClusterRef, since: datetime) -> str | None:
        out = await self._json(cluster_ref, ["list", "--restore"])
        return _earliest_since([r.get("name") for r in out or [] if isinstance(r, Mapping)], since)

    async def set_config_value(self, cluster_ref: ClusterRef, key: str, value: str) -> None:
        await self._run(cluster_ref, ["config", "--set", f"{key}={value}"])

    async def pitr_latest(self, cluster_ref: ClusterRef) -> datetime | None:
        out = await self._json(cluster_ref, ["list"])
        found = (
            _from_ts((r.get("range") or {}).get("end"))
            for r in ((out or {}).get("pitr") or {}).get("ranges") or []
            if isinstance(r, Mapping) and not r.get("error")
        )
        ends = [e for e in found if e is not None]
        return max(ends) if ends else None

    async def backup_status(self, cluster_ref: ClusterRef, pbm_name: str) -> BackupInfo | None:
        try:
            j = await self._json(cluster_ref, ["describe-backup", pbm_name])
        except PBMNotFound:
            return None
        except PBMError as e:
            if type(e) is not PBMError or not e.message.startswith(("get snapshot size", "check read access")):
                raise
            # PBM cannot describe a logical backup that failed before its size was recorded (its dump or oplog
            # is not on the storage), nor a size-0 backup on a storage it cannot read; `pbm status` lists them
            st = await self.status(cluster_ref, ["backups"])
            for s in (st.get("backups") or {}).get("snapshot") or []:
                if isinstance(s, Mapping) and s.get("name") == pbm_name:
                    return BackupInfo.from_status_snapshot(s)
            raise
        return BackupInfo.from_describe(j)

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

    async def restore_status(
        self, cluster_ref: ClusterRef, name: str, *, config_path: str | None = None
    ) -> RestoreInfo | None:
        """`config_path`: for physical restores, PBM reads the status from the storage (`-c pbm_config.yaml`)."""
        args = ["describe-restore", name]
        if config_path:
            args += ["-c", config_path]
        try:
            j = await self._json(cluster_ref, args)
        except PBMNotFound:
            return None
        return RestoreInfo.from_describe(j)

    async def delete_backup(self, cluster_ref: ClusterRef, pbm_name: str) -> bool:
        """Delete the backup's files and PBM metadata. False when PBM does not know the name (already gone)."""
        try:
            await self._run(cluster_ref, ["delete-backup", pbm_name, "--yes"])
        except PBMNotFound:
            return False
        return True

    async def status(self, cluster_ref: ClusterRef, sections: Sequence[str] = ()) -> dict[str, Any]:
        args = ["status"]
        for s in sections:
            args += ["-s", s]
        out = await self._json(cluster_ref, args)
        if not isinstance(out, dict):
            raise PBMOutputError(f"pbm status: expected a JSON object: {str(out)[:200]}", argv=args)
        return out


def _earliest_since(names: Sequence[Any], since: datetime) -> str | None:
    """PBM names backups and restores after their start time (RFC3339 / RFC3339Nano, UTC)."""
    floor = since.astimezone(UTC).replace(microsecond=0)
    found = sorted(
        (t, n) for n in names if isinstance(n, str) for t in [_from_rfc3339(n)] if t is not None and t >= floor
    )
    return found[0][1] if found else None


def _dump_yaml(doc: Mapping[str, Any]) -> str:
    return yaml.safe_dump(json.loads(json.dumps(doc)), sort_keys=False, default_flow_style=False)
