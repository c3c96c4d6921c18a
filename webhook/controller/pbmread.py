"""Read-only PBM: `pbm status`, `pbm describe-backup`, `pbm describe-restore` and `pbm list`, run in a cluster pod's
`backup-agent` container, and their `-o json` output parsed into dataclasses. The companion never changes anything in
PBM: `PBMReader` refuses every other command (the operator stand-in in tools/ extends it with the write side).

Contract (PBM 2.15.0, PBM v2.15.0@6f9fc3bf cmd/pbm/backup.go:383-427, restore.go:720-746,
list.go:35-45,199-207, status.go; tests:
tests/unit/test_pbm_contract.py against the simulator in tools/pbm_sim):

* `pbm describe-backup NAME -o json`, `pbm describe-restore NAME -o json`, `pbm status -o json`, `pbm list -o json`.
* A failing command prints `Error: <msg>` on stderr and exits 1, stdout empty. Under kwok the exit code is lost and
  the exec API says `Internal error occurred: ... exit status 1`; we read PBM's own text from stderr either way.
* Unknown names: `get backup meta: get backup meta: not found` / `get restore meta: not found` -> None here.
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
from typing import Any

from ..redaction import strip_userinfo
from ..times import parse_rfc3339
from .kubeexec import Exec, ExecResult, PodRef

log = logging.getLogger(__name__)

BACKUP_AGENT_CONTAINER = "backup-agent"
TERMINAL_STATUSES = frozenset({"done", "canceled", "error"})
READ_COMMANDS = frozenset({"status", "describe-backup", "describe-restore", "list", "version"})


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


@dataclass(frozen=True)
class ClusterRef:
    """A PerconaServerMongoDB cluster; the driver's pod resolver turns it into the pod to exec in."""

    namespace: str
    name: str


def _error(j: Mapping[str, Any]) -> str | None:
    """PBM's error text without URL userinfo: it quotes storage URIs, which may carry credentials."""
    return strip_userinfo(str(j["error"])) if j.get("error") else None


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
            ReplsetState(str(r.get("name", "")), str(r.get("status", "")), str(r.get("node", "")), _error(r))
            for r in (j.get("replsets") or [])
            if isinstance(r, Mapping)
        )
        error = _error(j)
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
            error=_error(s),
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
            ReplsetState(str(r.get("name", "")), str(r.get("status", "")), "", _error(r))
            for r in (j.get("replsets") or [])
            if isinstance(r, Mapping)
        )
        error = _error(j)
        if error is None and j["status"] == "error":
            error = next((r.error for r in reps if r.error), None)
        return cls(
            name=j["name"],
            backup=str(j.get("backup") or ""),
            type=str(j.get("type") or ""),
            status=j["status"],
            error=error,
            start_time=parse_rfc3339(j.get("start")),
            finish_time=parse_rfc3339(j.get("finish")),
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


# --------------------------------------------------------------------------------------------------- reader


PodResolver = Callable[[ClusterRef], PodRef | Awaitable[PodRef]]

_NOT_FOUND_RE = re.compile(r"(?:^|: )not found$")


def default_pod(cluster_ref: ClusterRef, replset: str = "rs0") -> PodRef:
    """`<cluster>-<replset>-0`, the pod the operator execs PBM commands in (first pod of the first replset)."""
    return PodRef(cluster_ref.namespace, f"{cluster_ref.name}-{replset}-0")


def parse_json_output(stdout: str, what: str) -> Any:
    """PBM prints one JSON document and a newline; some commands print text lines first."""
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


class PBMReader:
    """Read-only `pbm` in the `backup-agent` container through an injected `Exec` transport (`KubeExec` in the
    cluster, `LocalExec` in unit tests). `commands` are the `pbm` subcommands it may run: only reads."""

    commands: frozenset[str] | None = READ_COMMANDS

    def __init__(
        self,
        exec: Exec,
        resolve_pod: PodResolver = default_pod,
        *,
        container: str = BACKUP_AGENT_CONTAINER,
        pbm: str = "pbm",
        timeout: float = 60.0,
    ) -> None:
        self._exec = exec
        self._resolve = resolve_pod
        self.container = container
        self.pbm = pbm
        self.timeout = timeout

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
        if self.commands is not None and (not args or args[0] not in self.commands):
            raise ValueError(f"pbm {' '.join(args[:1])}: not a read-only PBM command; this reader runs only reads")
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
        message = strip_userinfo(message)  # stderr may quote a storage URI with credentials
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
        (t, n) for n in names if isinstance(n, str) for t in [parse_rfc3339(n)] if t is not None and t >= floor
    )
    return found[0][1] if found else None
