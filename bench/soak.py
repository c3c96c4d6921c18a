"""Soak: mixed admission traffic through a real `psmdb-backup serve` while its API server is paused and its
certificate rotates (issue 15 item 9).

    python bench/soak.py [--seconds S] [--warmup W] [--concurrency C] [--deadline D]

Starts etcd and kube-apiserver (tools/controlplane.py), seeds a namespace with the examples' cluster, Secrets and
Backup, and runs `psmdb-backup serve` as its own process, reading the API server as the install's ServiceAccount
(manifests/base/rbac.yaml). Then, for a fixed time, C clients send AdmissionReviews straight to the webhook
(validation of PerconaServerMongoDB CREATE and UPDATE, Backup and Restore CREATE; mutation of mongod pods), half on
kept-alive connections and half on a new TLS connection per request, while:

- the kube-apiserver process is stopped (SIGSTOP) for 1, 3 and 6 s in turn and continued (SIGCONT), so lookups hang
  as on an overloaded API server (6 s outlasts the lookup cache's 5 s, so the lookup budget is reached);
- a new serving certificate from the same CA is written every 7 s, as `psmdb-backup certs` or cert-manager would,
  and a prober checks that new handshakes get it (the server reloads it in place: webhook/certs/reload.py).

The warm-up (W s) already includes one pause and one rotation, so the RSS baseline is taken with every code path
run once; RSS is read from /proc with the load stopped, after the warm-up and at the end. Pass: no answer of 5xx, no
transport error, no answer later than D s (the API server's timeoutSeconds of 5 s minus 0.5 s for its own work), RSS
growth within 10 %, every rotation seen by a new handshake, and lookups failing during pauses (proof that the pauses
reached the webhook). Exit 1 otherwise. The last line is machine-readable:
RESULT soak_5xx=<n> soak_late=<n> soak_rss_growth=<x>
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import itertools
import os
import re
import signal
import ssl
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import yaml  # noqa: E402

from tools import devcluster  # noqa: E402
from tools.controlplane import ControlPlane, find_bin_dir  # noqa: E402
from webhook import certs  # noqa: E402

EXAMPLES = ROOT / "examples" / "good"
NAMESPACE = "psmdb"
PAUSES = (1.0, 3.0, 6.0)  # seconds the API server is stopped, in turn
GAP = 4.0  # seconds of normal service between two pauses
ROTATE_EVERY = 7.0
RSS_LIMIT = 0.10


def _load(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((EXAMPLES / name).read_text()) if d]


CLUSTER = _load("cluster.yaml")[0]
BACKUP = _load("backup.yaml")[0]
RESTORES = _load("restore.yaml")
SECRETS = _load("secrets.yaml")
POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {
        "generateName": "my-cluster-rs0-",
        "namespace": NAMESPACE,
        "labels": {
            "app.kubernetes.io/name": "percona-server-mongodb",
            "app.kubernetes.io/instance": CLUSTER["metadata"]["name"],
            "app.kubernetes.io/component": "mongod",
            "app.kubernetes.io/replset": "rs0",
        },
    },
    "spec": {
        "containers": [{"name": "mongod", "image": "percona/percona-server-mongodb:8.0.12-4"}],
        "volumes": [{"name": "mongod-data", "persistentVolumeClaim": {"claimName": "mongod-data-my-cluster-rs0-0"}}],
    },
}


def _review(obj: dict[str, Any], operation: str = "CREATE", old: dict[str, Any] | None = None) -> dict[str, Any]:
    group, _, version = obj["apiVersion"].rpartition("/")
    request = {
        "uid": "",
        "kind": {"group": group, "version": version, "kind": obj["kind"]},
        "resource": {"group": group, "version": version, "resource": obj["kind"].lower() + "s"},
        "operation": operation,
        "namespace": NAMESPACE,
        "name": obj["metadata"].get("name", ""),
        "userInfo": {"username": "soak", "groups": ["system:authenticated"]},
        "object": obj,
        "oldObject": old,
    }
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}


def _updated_cluster() -> dict[str, Any]:
    new = copy.deepcopy(CLUSTER)
    new["spec"]["backup"]["startingDeadlineSeconds"] = 600
    return new


# (label, path, review): what a PSMDB namespace sends while clusters, backups and pods come and go
TRAFFIC: list[tuple[str, str, dict[str, Any]]] = [
    ("validate PerconaServerMongoDB CREATE", "/validate", _review(CLUSTER)),
    ("validate PerconaServerMongoDB UPDATE", "/validate", _review(_updated_cluster(), "UPDATE", CLUSTER)),
    ("validate PerconaServerMongoDBBackup CREATE", "/validate", _review(BACKUP)),
    *(("validate PerconaServerMongoDBRestore CREATE", "/validate", _review(r)) for r in RESTORES),
    ("mutate Pod CREATE", "/mutate", _review(POD)),
]


@dataclass
class Tally:
    answers: Counter[int] = field(default_factory=Counter)
    per_kind: Counter[str] = field(default_factory=Counter)
    late: list[tuple[str, float, str]] = field(default_factory=list)  # label, seconds, uid
    errors: list[str] = field(default_factory=list)
    lookup_failures: int = 0
    latencies: list[float] = field(default_factory=list)

    @property
    def fivexx(self) -> int:
        return sum(n for status, n in self.answers.items() if status >= 500)


@dataclass
class Figures:
    requests: int
    fivexx: int
    late: int
    errors: int
    lookup_failures: int
    rss_warm: int
    rss_end: int
    p99: float
    max_latency: float
    pauses: int
    rotations: int
    rotations_seen: int
    detail: list[str]

    @property
    def rss_growth(self) -> float:
        return self.rss_end / self.rss_warm - 1

    def failures(self) -> list[str]:
        out = [f"{self.fivexx} answers of 5xx"] if self.fivexx else []
        out += [f"{self.late} answers later than the deadline"] if self.late else []
        out += [f"{self.errors} transport errors"] if self.errors else []
        if self.rss_growth > RSS_LIMIT:
            out.append(f"RSS grew {self.rss_growth:.1%} (limit {RSS_LIMIT:.0%})")
        if self.rotations_seen < self.rotations:
            out.append(f"{self.rotations} certificate rotations, {self.rotations_seen} seen by new handshakes")
        if self.pauses and not self.lookup_failures:
            out.append("no lookup failed while the API server was paused: the pauses did not reach the webhook")
        return out

    def result_line(self) -> str:
        return f"RESULT soak_5xx={self.fivexx} soak_late={self.late} soak_rss_growth={self.rss_growth:.3f}"


def rss(pid: int) -> int:
    match = re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    assert match, f"no VmRSS for pid {pid}"
    return int(match[1]) * 1024


class Soak:
    def __init__(self, port: int, tls_dir: Path, ca: bytes, ca_key: bytes, deadline: float) -> None:
        self.port, self.tls_dir, self.ca, self.ca_key, self.deadline = port, tls_dir, ca, ca_key, deadline
        self.client_tls = ssl.create_default_context(cadata=ca.decode())
        self.tally = Tally()
        self.serials: list[int] = []  # written, in order
        self.seen: set[int] = set()  # served to a new handshake
        self.pauses = 0

    async def _one(self, session: aiohttp.ClientSession, label: str, path: str, review: dict[str, Any]) -> None:
        review = copy.deepcopy(review)
        uid = review["request"]["uid"] = str(uuid.uuid4())
        started = time.monotonic()
        try:
            async with session.post(f"https://127.0.0.1:{self.port}{path}", json=review) as resp:
                body = await resp.read()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError, ssl.SSLError) as exc:
            self.tally.errors.append(f"{label}: {type(exc).__name__}: {exc}")
            return
        elapsed = time.monotonic() - started
        self.tally.answers[status] += 1
        self.tally.per_kind[label] += 1
        self.tally.latencies.append(elapsed)
        if elapsed > self.deadline:
            self.tally.late.append((label, elapsed, uid))
        if status == 200 and b"could not read" in body:  # a lookup that failed or did not fit the budget
            self.tally.lookup_failures += 1

    async def clients(self, concurrency: int, until: float) -> None:
        timeout = aiohttp.ClientTimeout(total=15)  # a hang shows up as late, never as a stuck soak

        async def client(n: int) -> None:
            connector = aiohttp.TCPConnector(ssl=self.client_tls, limit=1, force_close=n % 2 == 1)
            async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
                for label, path, review in itertools.cycle(TRAFFIC[n % len(TRAFFIC) :] + TRAFFIC[: n % len(TRAFFIC)]):
                    if time.monotonic() >= until:
                        return
                    await self._one(session, label, path, review)

        await asyncio.gather(*(client(n) for n in range(concurrency)))

    def rotate(self) -> None:
        cert, key = certs.make_serving_cert(self.ca, self.ca_key, ["127.0.0.1", "localhost"], 2)
        certs.write_dir(self.tls_dir, self.ca, cert, key)
        self.serials.append(certs.cert_serial(cert))

    async def probe_certificates(self, until: float) -> None:
        """A new handshake every 0.5 s: which certificate does the server give out now?"""
        from cryptography import x509

        while time.monotonic() < until:
            with contextlib.suppress(OSError, ssl.SSLError, TimeoutError):
                _, writer = await asyncio.wait_for(
                    asyncio.open_connection("127.0.0.1", self.port, ssl=self.client_tls, server_hostname="127.0.0.1"),
                    5,
                )
                der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
                self.seen.add(x509.load_der_x509_certificate(der).serial_number)
                writer.close()
            await asyncio.sleep(0.5)

    async def chaos(self, apiserver_pid: int, until: float) -> None:
        """Pause and continue the API server, and rotate the certificate, until `until`."""
        next_rotation = time.monotonic() + ROTATE_EVERY / 2
        for pause in itertools.cycle(PAUSES):
            await asyncio.sleep(min(GAP, max(0.0, until - time.monotonic())))
            if time.monotonic() + pause > until:
                return
            os.kill(apiserver_pid, signal.SIGSTOP)
            try:
                self.pauses += 1
                await asyncio.sleep(pause)
            finally:
                os.kill(apiserver_pid, signal.SIGCONT)
            if time.monotonic() >= next_rotation and until - time.monotonic() > 2:  # the prober must see it
                self.rotate()
                next_rotation = time.monotonic() + ROTATE_EVERY

    async def phase(self, seconds: float, concurrency: int, apiserver_pid: int) -> None:
        until = time.monotonic() + seconds
        await asyncio.gather(
            self.clients(concurrency, until), self.chaos(apiserver_pid, until), self.probe_certificates(until)
        )
        await asyncio.sleep(1.0)  # the last rotation reaches the prober; the server settles


@contextlib.contextmanager
def control_plane(work: Path) -> Iterator[tuple[ControlPlane, devcluster.WebhookProcess, bytes, bytes]]:
    """etcd + kube-apiserver with the CRDs and the examples' objects, and `serve` as the install's ServiceAccount."""
    cp = ControlPlane(find_bin_dir(), work, with_kwok=False, with_controllers=False)
    cp.start()
    webhook = None
    try:
        cp.kubectl("apply", "-f", str(ROOT / "manifests" / "crds"))
        cp.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd", "--all")
        cp.kubectl("create", "namespace", NAMESPACE)
        seed = yaml.safe_dump_all([*SECRETS, CLUSTER, BACKUP])
        cp.kubectl("apply", "-f", "-", input=seed)
        ca, ca_key = certs.make_ca("soak CA", 3)  # outlives the 2-day serving certificates
        cert, key = certs.make_serving_cert(ca, ca_key, ["127.0.0.1", "localhost"], 2)
        tls_dir = work / "tls"
        certs.write_dir(tls_dir, ca, cert, key)
        kubeconfig = cp.service_account_kubeconfig(
            devcluster.install_rbac(ROOT / "manifests" / "base" / "rbac.yaml"),
            devcluster.INSTALL_NAMESPACE,
            "psmdb-backup-webhook",
        )
        webhook = devcluster.WebhookProcess(tls_dir, kubeconfig, work / "serve.log")  # info: a line per request
        webhook.start()
        yield cp, webhook, ca, ca_key
    finally:
        with contextlib.suppress(ProcessLookupError, KeyError):
            os.kill(cp.pids["kube-apiserver"], signal.SIGCONT)  # a stopped process would not see SIGTERM
        if webhook:
            webhook.stop()
        cp.stop()


def run(seconds: float, warmup: float, concurrency: int, deadline: float, log: Callable[[str], None]) -> Figures:
    with tempfile.TemporaryDirectory(prefix="psmdb-soak-") as tmp, control_plane(Path(tmp)) as (cp, web, ca, ca_key):
        assert web.proc is not None
        apiserver = cp.pids["kube-apiserver"]
        soak = Soak(web.port, web.tls_dir, ca, ca_key, deadline)
        log(f"warm-up {warmup:.0f} s (one pause, one rotation) ...")
        asyncio.run(soak.phase(warmup, concurrency, apiserver))
        rss_warm = rss(web.proc.pid)
        warm_requests, warm_pauses, warm_rotations = soak.tally.answers.total(), soak.pauses, len(soak.serials)
        log(f"soak {seconds:.0f} s, {concurrency} clients, RSS after warm-up {rss_warm / 2**20:.1f} MiB ...")
        asyncio.run(soak.phase(seconds, concurrency, apiserver))
        rss_end = rss(web.proc.pid)
        tally = soak.tally
        lat = sorted(tally.latencies) or [0.0]
        detail = [f"{n:6d}  {label}" for label, n in sorted(tally.per_kind.items())] + [
            f"answers by status: {dict(sorted(tally.answers.items()))}"
        ]
        served = {line["uid"]: line["duration_ms"] / 1000 for line in web.log_lines() if "duration_ms" in line}
        detail += [
            f"late: {label} {t:.2f} s (in the server: {served.get(uid, float('nan')):.2f} s)"
            for label, t, uid in tally.late[:10]
        ]
        detail += [f"longest in the server: {max(served.values(), default=0.0):.2f} s"]
        detail += [f"error: {e}" for e in tally.errors[:10]]
        log(
            f"requests {tally.answers.total()} ({warm_requests} in warm-up), pauses {soak.pauses} ({warm_pauses} in "
            f"warm-up), rotations {len(soak.serials)} ({warm_rotations} in warm-up)"
        )
        return Figures(
            requests=tally.answers.total(),
            fivexx=tally.fivexx,
            late=len(tally.late),
            errors=len(tally.errors),
            lookup_failures=tally.lookup_failures,
            rss_warm=rss_warm,
            rss_end=rss_end,
            p99=lat[max(0, int(len(lat) * 0.99) - 1)],
            max_latency=lat[-1],
            pauses=soak.pauses,
            rotations=len(soak.serials),
            rotations_seen=len(set(soak.serials) & soak.seen),
            detail=detail,
        )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--seconds", type=float, default=600.0, help="soak time after the warm-up (default 600)")
    ap.add_argument("--warmup", type=float, default=15.0, help="warm-up time, not measured for RSS (default 15)")
    ap.add_argument("--concurrency", type=int, default=6, help="clients, half of them on new connections (default 6)")
    ap.add_argument("--deadline", type=float, default=4.5, help="latest acceptable answer in s (default 4.5)")
    args = ap.parse_args(argv)
    figures = run(args.seconds, args.warmup, args.concurrency, args.deadline, lambda s: print(s, flush=True))
    for line in figures.detail:
        print(line)
    print(
        f"requests {figures.requests}, lookups failed during pauses {figures.lookup_failures}, p99 "
        f"{figures.p99 * 1000:.0f} ms, max {figures.max_latency * 1000:.0f} ms (deadline {args.deadline:.1f} s), RSS "
        f"{figures.rss_warm / 2**20:.1f} -> {figures.rss_end / 2**20:.1f} MiB, rotations seen "
        f"{figures.rotations_seen}/{figures.rotations}"
    )
    failures = figures.failures()
    for f in failures:
        print(f"FAIL: {f}")
    print(figures.result_line())
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
