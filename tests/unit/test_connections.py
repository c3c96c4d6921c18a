"""`psmdb-backup serve` as its own process against many idle TLS connections, a slow-header client and a
connection flood (loopback only, bounded): new requests are still served, the slow client is dropped, the cap
refuses clearly, and the memory of idle connections stays far below the pod limit (256 MiB)."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from webhook import certs

ROOT = Path(__file__).resolve().parents[2]
POD_LIMIT = 256 * 1024 * 1024
IDLE = 500  # idle kept-alive connections, as an API server pool or an attacker holds them


@dataclass
class Server:
    proc: subprocess.Popen
    port: int
    tls: ssl.SSLContext

    def rss(self) -> int:
        text = Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(re.search(r"VmRSS:\s+(\d+) kB", text).group(1)) * 1024

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", self.port, ssl=self.tls, server_hostname="127.0.0.1")

    async def get(self, path: str, conn=None) -> tuple[int, str]:
        """One keep-alive GET, on `conn` or a new connection."""
        reader, writer = conn or await self.connect()
        writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        length = int(re.search(r"(?i)content-length: (\d+)", head).group(1))
        body = (await reader.readexactly(length)).decode()
        if conn is None:
            writer.close()
        return int(head.split()[1]), body


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def serve(tmp_path: Path) -> Iterator:
    procs: list[subprocess.Popen] = []

    def start(*flags: str) -> Server:
        tls_dir = tmp_path / "tls"
        certs.load_or_create(tls_dir, ["127.0.0.1"])
        port = _free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("PSMDB_BACKUP_")}
        log = (tmp_path / f"serve-{port}.log").open("w")
        cmd = [sys.executable, "-m", "webhook.cli", "serve", "--no-cluster", "--tls-dir", str(tls_dir)]
        proc = subprocess.Popen(
            [*cmd, "--listen", f"127.0.0.1:{port}", *flags], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        procs.append(proc)
        server = Server(proc, port, ssl.create_default_context(cafile=str(tls_dir / certs.CA_CERT)))
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (tmp_path / f"serve-{port}.log").read_text()
            try:
                if asyncio.run(server.get("/readyz"))[0] == 200:
                    return server
            except (OSError, ssl.SSLError, asyncio.IncompleteReadError):
                pass
            assert time.monotonic() < deadline, "serve did not become ready in 60s"
            time.sleep(0.2)

    yield start
    for p in procs:
        p.terminate()
        p.wait(10)


def _metric(text: str, name: str) -> float:
    return float(re.search(rf"^{name} (\S+)$", text, re.M).group(1))


async def _slow_client(server: Server) -> float:
    """Sends request headers one byte every 0.3 s; returns when the server closes the connection."""
    reader, writer = await server.connect()
    started = time.monotonic()
    header = b"POST /validate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Pad: " + b"a" * 200
    try:
        for byte in header:
            writer.write(bytes([byte]))
            await writer.drain()
            try:
                if await asyncio.wait_for(reader.read(1), 0.3) == b"":
                    break
            except TimeoutError:
                continue
    except (ConnectionError, ssl.SSLError):
        pass
    writer.close()
    return time.monotonic() - started


def test_idle_connections_and_a_slow_client_do_not_stop_new_requests(serve) -> None:
    server = serve("--header-timeout", "3", "--keepalive-timeout", "60")
    rss_start = server.rss()

    async def go() -> tuple[int, float, list[float], str]:
        idle = []
        for _ in range(IDLE // 50):  # in batches: loopback, but the handshakes share two cores with other tests
            batch = await asyncio.gather(*(server.connect() for _ in range(50)))
            for conn in batch:
                assert (await server.get("/healthz", conn))[0] == 200  # used once, then idle like a pooled conn
            idle += batch
        rss_idle = server.rss()
        slow = asyncio.create_task(_slow_client(server))
        latencies = []
        for _ in range(20):
            started = time.monotonic()
            status, _ = await asyncio.wait_for(server.get("/healthz"), 2.0)  # well inside timeoutSeconds (5)
            assert status == 200
            latencies.append(time.monotonic() - started)
            await asyncio.sleep(0.1)
        slow_for = await asyncio.wait_for(slow, 15)
        metrics = (await server.get("/metrics"))[1]
        for _, writer in idle:
            writer.close()
        return rss_idle, slow_for, latencies, metrics

    rss_idle, slow_for, latencies, metrics = asyncio.run(go())
    per_conn = (rss_idle - rss_start) / IDLE
    print(
        f"RESULT idle_tls_connections={IDLE} rss_start_mib={rss_start / 2**20:.1f} "
        f"rss_idle_mib={rss_idle / 2**20:.1f} per_connection_kib={per_conn / 1024:.1f} "
        f"max_latency_s={max(latencies):.3f} slow_client_dropped_after_s={slow_for:.1f}"
    )
    assert rss_idle < POD_LIMIT and server.rss() < POD_LIMIT
    assert per_conn < 128 * 1024, "asyncio's 256 KiB TLS read buffer per connection is back"
    assert 2.5 < slow_for < 6, f"the slow-header client was dropped after {slow_for:.1f}s (header timeout 3s)"
    assert _metric(metrics, "psmdb_backup_webhook_slow_connections_dropped_total") >= 1
    assert _metric(metrics, "psmdb_backup_webhook_connections_open") >= IDLE  # the idle ones were kept


def test_connections_past_the_cap_get_a_503_and_are_counted(serve) -> None:
    server = serve("--max-connections", "3")

    async def go() -> tuple[int, str, int, str]:
        held = [await server.connect() for _ in range(3)]
        for conn in held:
            assert (await server.get("/healthz", conn))[0] == 200
        refused = await server.get("/healthz")
        held[0][1].close()
        await asyncio.sleep(0.5)
        status_after, _ = await server.get("/healthz", held[1])
        metrics = (await server.get("/metrics", held[2]))[1]
        return refused[0], refused[1], status_after, metrics

    status, body, status_after, metrics = asyncio.run(go())
    assert status == 503 and "too many connections" in body
    assert status_after == 200
    assert _metric(metrics, "psmdb_backup_webhook_connections_refused_total") == 1


def test_idle_connections_are_closed_after_the_keepalive_timeout(serve) -> None:
    server = serve("--keepalive-timeout", "1")

    async def go() -> float:
        conn = await server.connect()
        assert (await server.get("/healthz", conn))[0] == 200
        started = time.monotonic()
        assert await asyncio.wait_for(conn[0].read(1), 10) == b""  # closed by the server
        return time.monotonic() - started

    assert asyncio.run(go()) < 3
