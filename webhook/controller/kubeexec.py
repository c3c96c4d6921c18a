"""Transports that run a command in a pod's container: `KubeExec` (the Kubernetes exec API over WebSocket) and
`LocalExec` (a local subprocess, for unit tests and for running the PBM simulator without a cluster).

Both implement the `Exec` protocol the PBM reader takes (webhook/controller/pbmread.py):

    await exec(pod, container, argv, stdin) -> ExecResult(stdout, stderr, ok, exit_code, error)

`ok` is true only when the command ran and exited 0. Output printed before a failure is kept: PBM prints its error
on stderr (`Error: ...`) and exits 1, and the driver reads that text, not the transport's.

How the exec API reports the end of a command (channel 3, a `metav1.Status` JSON):
* `{"status":"Success"}`: exit 0.
* a real kubelet: `{"status":"Failure","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode",
  "message":"1"}]},"message":"command terminated with non-zero exit code: ..."}`.
* kwok (local exec) does not pass the exit code on: `{"status":"Failure","reason":"InternalError","message":
  "Internal error occurred: error executing command in container: cmd wait: <argv>: exit status 1",...}`; we take
  the code from the trailing `exit status N`.
* no status at all (the stream closed early): a failed result with `error` saying so.

stdin: sent as one channel-0 frame. The v4 WebSocket protocol that kubernetes_asyncio speaks cannot signal EOF on
stdin, and kwok never closes the child's stdin pipe either, so a command must not read stdin to EOF: read a known
number of bytes instead (`head -c N`), as the PBM driver does.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

log = logging.getLogger(__name__)

STDIN_CHANNEL, STDOUT_CHANNEL, STDERR_CHANNEL, ERROR_CHANNEL = 0, 1, 2, 3


@dataclass(frozen=True)
class PodRef:
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class ExecResult:
    stdout: bytes
    stderr: bytes
    ok: bool
    exit_code: int | None = None  # None when unknown (the command may not have run at all)
    error: str | None = None  # the transport's / API server's message when not ok

    @property
    def stdout_text(self) -> str:
        return self.stdout.decode("utf-8", "replace")

    @property
    def stderr_text(self) -> str:
        return self.stderr.decode("utf-8", "replace")


class Exec(Protocol):
    async def __call__(
        self, pod: PodRef, container: str, argv: Sequence[str], stdin: bytes | None = None
    ) -> ExecResult: ...


_EXIT_STATUS_RE = re.compile(r"exit (?:status|code) (-?\d+)\s*$")


def parse_exec_status(raw: bytes | str) -> tuple[bool, int | None, str | None]:
    """(ok, exit_code, error message) from the error channel's Status JSON."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    try:
        st = json.loads(text)
    except json.JSONDecodeError:
        return False, None, f"unparsable exec status: {text[:200]}"
    if not isinstance(st, dict):
        return False, None, f"unexpected exec status: {text[:200]}"
    if st.get("status") == "Success":
        return True, 0, None
    message = str(st.get("message") or st.get("reason") or "exec failed")
    code: int | None = None
    for cause in (st.get("details") or {}).get("causes") or []:
        if isinstance(cause, dict) and cause.get("reason") == "ExitCode":
            try:
                code = int(str(cause.get("message")))
            except (TypeError, ValueError):
                pass
    if code is None:
        m = _EXIT_STATUS_RE.search(message)
        if m:
            code = int(m.group(1))
    return False, code, message


class KubeExec:
    """The Kubernetes exec API through kubernetes_asyncio's `WsApiClient` (`connect_get_namespaced_pod_exec` with
    `_preload_content=False`, reading the channels ourselves so stdout and stderr stay apart).

    `ws_client` is a `kubernetes_asyncio.stream.WsApiClient` built from the same Configuration as the controller's
    ApiClient (use `KubeExec.from_configuration`)."""

    def __init__(self, ws_client: Any) -> None:
        self._ws = ws_client

    @classmethod
    def from_configuration(cls, configuration: Any) -> KubeExec:
        from ..kube import exec_client

        return cls(exec_client(configuration))

    async def close(self) -> None:
        await self._ws.close()

    async def __call__(
        self, pod: PodRef, container: str, argv: Sequence[str], stdin: bytes | None = None
    ) -> ExecResult:
        import aiohttp
        from kubernetes_asyncio.client import CoreV1Api
        from kubernetes_asyncio.client.exceptions import ApiException

        api = CoreV1Api(self._ws)
        out, err = bytearray(), bytearray()
        status: bytes | None = None
        try:
            # The generated client annotates `command` as str and the result as str; it takes a list and, without
            # preloading, returns the websocket context.
            ctx: Any = await api.connect_get_namespaced_pod_exec(
                pod.name,
                pod.namespace,
                command=list(argv),  # type: ignore[arg-type]
                container=container,
                stdin=stdin is not None,
                stdout=True,
                stderr=True,
                tty=False,
                _preload_content=False,
            )
            async with ctx as ws:
                if stdin is not None:
                    await ws.send_bytes(bytes([STDIN_CHANNEL]) + stdin)
                async for msg in ws:
                    if msg.type == aiohttp.WSMsgType.BINARY:
                        data = msg.data
                    elif msg.type == aiohttp.WSMsgType.TEXT:
                        data = msg.data.encode("utf-8")
                    else:  # CLOSE / CLOSING / CLOSED / ERROR
                        break
                    if len(data) < 1:
                        continue
                    channel, payload = data[0], data[1:]
                    if not payload:
                        continue  # the API server opens each channel with an empty frame
                    if channel == STDOUT_CHANNEL:
                        out += payload
                    elif channel == STDERR_CHANNEL:
                        err += payload
                    elif channel == ERROR_CHANNEL:
                        status = (status or b"") + payload
        except aiohttp.WSServerHandshakeError as e:
            return ExecResult(
                bytes(out), bytes(err), False, None, f"exec into {pod}/{container}: {e.status} {e.message}"
            )
        except ApiException as e:
            return ExecResult(
                bytes(out), bytes(err), False, None, f"exec into {pod}/{container}: {e.status} {e.reason}"
            )
        except aiohttp.ClientError as e:
            return ExecResult(bytes(out), bytes(err), False, None, f"exec into {pod}/{container}: {e}")
        if status is None:
            return ExecResult(
                bytes(out),
                bytes(err),
                False,
                None,
                f"exec into {pod}/{container}: stream closed without an exit status",
            )
        ok, code, message = parse_exec_status(status)
        return ExecResult(bytes(out), bytes(err), ok, code, message)


@dataclass
class LocalExec:
    """Runs argv as a local process, as kwok does with exec'd commands. `env` is added to this process's
    environment (a mapping, or a function of the pod so that each pod can name its simulated cluster).

    A non-zero exit gives `ok=False` with the message a real kubelet sends (`command terminated with non-zero exit
    code: ...`), or with `kwok_style=True` the message kwok sends (`Internal error occurred: ... exit status N`)."""

    env: Mapping[str, str] | Callable[[PodRef], Mapping[str, str]] | None = None
    cwd: str | None = None
    kwok_style: bool = False
    calls: list[tuple[PodRef, str, tuple[str, ...]]] = field(default_factory=list)

    async def __call__(
        self, pod: PodRef, container: str, argv: Sequence[str], stdin: bytes | None = None
    ) -> ExecResult:
        self.calls.append((pod, container, tuple(argv)))
        extra = self.env(pod) if callable(self.env) else (self.env or {})
        env = {**os.environ, **extra}
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=env,
                cwd=self.cwd,
            )
        except OSError as e:
            cmd = " ".join(argv)
            msg = f'cmd start: {cmd}: exec: "{argv[0]}": {e.strerror or e}'
            if self.kwok_style:
                msg = f"Internal error occurred: error executing command in container: {msg}"
            return ExecResult(b"", b"", False, None, msg)
        try:
            out, err = await proc.communicate(stdin)
        except asyncio.CancelledError:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            raise
        rc = proc.returncode
        if rc == 0:
            return ExecResult(out, err, True, 0, None)
        cmd = " ".join(argv)
        if self.kwok_style:
            msg = f"Internal error occurred: error executing command in container: cmd wait: {cmd}: exit status {rc}"
        else:
            msg = f"command terminated with non-zero exit code: error executing command [{cmd}], exit code {rc}"
        return ExecResult(out, err, False, rc, msg)
