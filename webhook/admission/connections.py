"""Connection limits aiohttp does not have: a deadline for a request's headers and a cap on open connections.

Each connection's protocol is wrapped: past `max_connections` a new connection gets a 503 and is closed at once
(counted); a connection whose first request's headers (up to the blank line) have not arrived within
`header_timeout` is closed (counted). Idle kept-alive connections are aiohttp's `keepalive_timeout`, which also
closes a later request whose headers stall. TLS handshakes are bounded by `ssl_handshake_timeout`.
"""

from __future__ import annotations

import asyncio
from asyncio import sslproto
from typing import Any

from aiohttp import web

from .metrics import Metrics

_REFUSAL_TEXT = b"too many connections to the webhook; retry later\n"
REFUSAL = (
    b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Type: text/plain\r\n"
    b"Content-Length: %d\r\n\r\n%s" % (len(_REFUSAL_TEXT), _REFUSAL_TEXT)
)
_END_OF_HEADERS = b"\r\n\r\n"
# asyncio gives every TLS connection a zero-filled 256 KiB read buffer (SSLProtocol.max_size), which made an idle
# connection cost ~285 KiB of RSS. Two TLS records (16 KiB each) per read are plenty for admission reviews.
TLS_READ_BUFFER = 32 * 1024


class _Limits:
    def __init__(self, max_connections: int, header_timeout: float, metrics: Metrics) -> None:
        self.max_connections, self.header_timeout, self.metrics = max_connections, header_timeout, metrics
        self.open = 0


class _Guarded(asyncio.Protocol):
    """Forwards to aiohttp's request handler; enforces the limits around it."""

    def __init__(self, make_inner: Any, limits: _Limits) -> None:
        self.make_inner, self.limits = make_inner, limits
        self.inner: Any = None
        self.transport: asyncio.Transport | None = None
        self.counted = False
        self.tail = b""  # the last bytes seen, to find the end of headers split across reads
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        limits = self.limits
        if limits.open >= limits.max_connections:
            limits.metrics.connections_refused.inc()
            transport.write(REFUSAL)
            transport.close()
            return
        limits.open += 1
        self.counted = True
        limits.metrics.connections_open.set(limits.open)
        self.timer = asyncio.get_running_loop().call_later(limits.header_timeout, self._too_slow)
        self.inner = self.make_inner()
        self.inner.connection_made(transport)

    def _too_slow(self) -> None:
        self.timer = None
        self.limits.metrics.connections_dropped.inc()
        if self.transport is not None:
            self.transport.abort()

    def data_received(self, data: bytes) -> None:
        if not self.counted:
            return
        if self.timer is not None:
            seen = self.tail + data
            if _END_OF_HEADERS in seen:
                self.timer.cancel()
                self.timer = None
            else:
                self.tail = seen[-3:]
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received() if self.counted else None

    def pause_writing(self) -> None:
        if self.counted:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.counted:
            self.inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
        if not self.counted:
            return
        self.counted = False
        self.limits.open -= 1
        self.limits.metrics.connections_open.set(self.limits.open)
        self.inner.connection_lost(exc)


class GuardedSite(web.TCPSite):
    """A TCPSite whose connections go through `_Guarded`."""

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        *,
        max_connections: int,
        header_timeout: float,
        metrics: Metrics,
        **kwargs: Any,
    ) -> None:
        super().__init__(runner, host, port, **kwargs)
        self._limits = _Limits(max_connections, header_timeout, metrics)

    async def start(self) -> None:
        if self._ssl_context is not None and getattr(sslproto.SSLProtocol, "max_size", 0) > TLS_READ_BUFFER:
            sslproto.SSLProtocol.max_size = TLS_READ_BUFFER  # process-wide; see above
        await web.BaseSite.start(self)
        server, limits = self._runner.server, self._limits
        assert server is not None
        self._server = await asyncio.get_running_loop().create_server(
            lambda: _Guarded(server, limits),
            self._host,
            self._port,
            ssl=self._ssl_context,
            ssl_handshake_timeout=limits.header_timeout if self._ssl_context else None,
            backlog=self._backlog,
            reuse_address=self._reuse_address,
        )
        self._bound_port = self._server.sockets[0].getsockname()[1]
