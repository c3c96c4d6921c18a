"""Admission throughput and latency against a bare aiohttp TLS echo server of the same AdmissionReview size.

    python bench/admission.py [--seconds S] [--concurrency C] [--quick]

Each server runs alone in a child process on 127.0.0.1 (one process, TLS); the load comes from this process over
keep-alive connections for a bounded time. Scenarios: validation of a full cluster CR (3 storages, 3 tasks, PITR)
with its Secrets and Namespace served from an in-memory reader, and mutation of a replica-set pod. Targets: >= 60 %
of the echo's requests/s and p99 <= 2x the echo's p99. The last line is machine-readable:
RESULT validate_rps_ratio=<x> validate_p99_ratio=<y> mutate_rps_ratio=<x> mutate_p99_ratio=<y>
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import socket
import ssl
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from webhook import certs  # noqa: E402

CLUSTER = yaml.safe_load((ROOT / "examples/good/cluster.yaml").read_text())
SECRETS = list(yaml.safe_load_all((ROOT / "examples/good/secrets.yaml").read_text()))
POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {
        "name": "my-cluster-rs0-0",
        "namespace": "psmdb",
        "labels": {
            "app.kubernetes.io/name": "percona-server-mongodb",
            "app.kubernetes.io/instance": "my-cluster",
            "app.kubernetes.io/component": "mongod",
            "app.kubernetes.io/replset": "rs0",
        },
    },
    "spec": {
        "containers": [{"name": "mongod", "image": "percona/percona-server-mongodb:8.0.12-4"}],
        "volumes": [{"name": "mongod-data", "persistentVolumeClaim": {"claimName": "mongod-data-my-cluster-rs0-0"}}],
    },
}


def review(obj: dict, group: str) -> bytes:
    return json.dumps(
        {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": str(uuid.uuid4()),
                "kind": {"group": group, "version": "v1", "kind": obj["kind"]},
                "operation": "CREATE",
                "namespace": "psmdb",
                "name": obj["metadata"]["name"],
                "object": obj,
            },
        }
    ).encode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_ssl(tls_dir: str) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(f"{tls_dir}/tls.crt", f"{tls_dir}/tls.key")
    return ctx


def run_echo(port: int, tls_dir: str) -> None:
    """The baseline: read the body, parse it as JSON, answer an allowed AdmissionReview echoing the uid."""
    from aiohttp import web

    async def echo(request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        return web.json_response(
            {
                "apiVersion": "admission.k8s.io/v1",
                "kind": "AdmissionReview",
                "response": {"uid": body["request"]["uid"], "allowed": True},
            }
        )

    app = web.Application()
    app.router.add_post("/validate", echo)
    app.router.add_post("/mutate", echo)
    web.run_app(app, host="127.0.0.1", port=port, ssl_context=server_ssl(tls_dir), print=None, access_log=None)


def run_webhook(port: int, tls_dir: str) -> None:
    import logging

    from aiohttp import web

    from webhook.admission.server import AdmissionApp, Settings
    from webhook.kube import LiveLookup

    logging.disable(logging.INFO)  # a log line per request is the production default, but not what we measure here

    class MemoryReader:  # the API server's answers, as the TTL cache would serve them
        timeout = 1.0
        objects = {
            (o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]): o
            for o in [CLUSTER, *SECRETS, {"kind": "Namespace", "metadata": {"name": "psmdb"}}]
        }

        async def get(self, kind, namespace, name):
            return self.objects.get((kind, namespace, name))

    app = AdmissionApp(Settings(), LiveLookup(MemoryReader(), ttl=3600)).build()
    web.run_app(app, host="127.0.0.1", port=port, ssl_context=server_ssl(tls_dir), print=None, access_log=None)


async def load(
    port: int, path: str, body: bytes, seconds: float, concurrency: int, ca: str
) -> tuple[float, list[float]]:
    import aiohttp

    ctx = ssl.create_default_context(cafile=ca)
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx, limit=concurrency)) as session:

        async def worker() -> None:
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                async with session.post(
                    f"https://127.0.0.1:{port}{path}", data=body, headers={"Content-Type": "application/json"}
                ) as resp:
                    await resp.read()
                    assert resp.status == 200, resp.status
                latencies.append(time.perf_counter() - t0)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return len(latencies) / elapsed, latencies


def measure(
    target, tls_dir: str, path: str, body: bytes, seconds: float, concurrency: int
) -> tuple[float, float, float]:
    port = free_port()
    proc = mp.get_context("spawn").Process(target=target, args=(port, tls_dir), daemon=True)
    proc.start()
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.05)
        asyncio.run(load(port, path, body, 1.0, concurrency, f"{tls_dir}/ca.crt"))  # warm-up
        rps, lat = asyncio.run(load(port, path, body, seconds, concurrency, f"{tls_dir}/ca.crt"))
    finally:
        proc.terminate()
        proc.join(5)
    lat.sort()
    return rps, statistics.median(lat), lat[int(len(lat) * 0.99) - 1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0, help="measured seconds per server and scenario")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--quick", action="store_true", help="4 s per measurement (under 45 s in all)")
    args = ap.parse_args()
    seconds = 4.0 if args.quick else args.seconds
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tls_dir:
        ca, ca_key = certs.make_ca("bench CA", 1)
        crt, key = certs.make_serving_cert(ca, ca_key, ["127.0.0.1", "localhost"], 1)
        certs.write_dir(tls_dir, ca, crt, key)
        for name, path, body in (
            ("validate", "/validate", review(CLUSTER, "psmdb.percona.com")),
            ("mutate", "/mutate", review(POD, "")),
        ):
            echo = measure(run_echo, tls_dir, path, body, seconds, args.concurrency)
            ours = measure(run_webhook, tls_dir, path, body, seconds, args.concurrency)
            results[f"{name}_rps_ratio"] = ours[0] / echo[0]
            results[f"{name}_p99_ratio"] = ours[2] / echo[2]
            print(f"{name} ({len(body)} byte review, concurrency {args.concurrency}):")
            for label, (rps, p50, p99) in (("echo", echo), ("webhook", ours)):
                print(f"  {label:<8} {rps:8.0f} req/s   p50 {p50 * 1000:6.2f} ms   p99 {p99 * 1000:6.2f} ms")
            print(
                f"  ratio    rps {results[f'{name}_rps_ratio']:.2f} (target >= 0.60)   "
                f"p99 {results[f'{name}_p99_ratio']:.2f} (target <= 2.00)"
            )
    print("RESULT " + " ".join(f"{k}={v:.2f}" for k, v in results.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
