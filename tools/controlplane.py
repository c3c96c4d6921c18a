"""A real local Kubernetes control plane for end-to-end tests and ``make demo``.

Starts etcd, kube-apiserver and optionally kwok (one fake node whose pods "run" and whose ``kubectl exec`` runs
local processes) plus kube-controller-manager and kube-scheduler, all on 127.0.0.1, from the binaries that
``tools/build-control-plane.sh`` builds. The flags follow the local-control-plane reference (sections 0, 3,
4 and 7).

Usage::

    with ControlPlane(find_bin_dir(), tmp_path) as cp:
        cp.kubectl("get", "nodes")

Only the standard library and ``cryptography`` are used, so the demo script can import this without test deps.
"""

from __future__ import annotations

import atexit
import collections
import ctypes
import datetime
import fcntl
import ipaddress
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "ControlPlane",
    "ControlPlaneError",
    "KubectlError",
    "KWOK_NODE_NAME",
    "find_bin_dir",
]

REPO_ROOT = Path(__file__).resolve().parent.parent
BUILD_SCRIPT = REPO_ROOT / "tools" / "build-control-plane.sh"
BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "kwok")

LOOPBACK = "127.0.0.1"
SERVICE_CIDR = "10.0.0.0/24"
KWOK_NODE_NAME = "kwok-node-0"
KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"
KWOK_NODE_ANNOTATION_VALUE = "fake"
NOT_READY_TAINT = "node.kubernetes.io/not-ready"
NODE_LEASE_SECONDS = 40  # the kubelet's default Lease duration

# Controllers that need a cloud or real pod networking; the rest (statefulset, gc, namespace, nodelifecycle, ...)
# stay on. nodelifecycle must stay on with kwok: it removes the not-ready taint new nodes get (reference section 0).
KCM_CONTROLLERS_WITH_KWOK = (
    "*,-node-ipam-controller,-cloud-node-lifecycle-controller,-service-lb-controller,-node-route-controller"
)
# Without kwok no node heartbeats, so nodelifecycle and podgc would evict / delete every pod bound to a node.
KCM_CONTROLLERS_WITHOUT_KWOK = (
    KCM_CONTROLLERS_WITH_KWOK + ",-node-lifecycle-controller,-pod-garbage-collector-controller"
)


class ControlPlaneError(RuntimeError):
    """The control plane could not be built, started or queried; the message carries the log tails."""


class KubectlError(subprocess.CalledProcessError):
    """A failed ``kubectl`` call whose message includes kubectl's stderr (CalledProcessError's does not)."""

    def __str__(self) -> str:
        return f"{super().__str__()}\nstderr:\n{self.stderr}"


# --------------------------------------------------------------------------------------------------- binaries


def _cache_dir() -> Path:
    # Same default as build-control-plane.sh.
    return Path(os.environ.get("PSMDB_BACKUP_CACHE", Path.home() / ".cache" / "psmdb-backup-webhook"))


def find_bin_dir(build_script: Path = BUILD_SCRIPT) -> Path:
    """Return the directory holding the control-plane binaries, building them first if needed.

    The build script is idempotent (skips what exists) and prints the directory on its last stdout line. A file lock
    keeps parallel callers (e.g. pytest-xdist workers) from running two Go builds at once.
    """
    lock_path = _cache_dir() / ".build.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        proc = subprocess.run(["bash", str(build_script)], capture_output=True, text=True, check=False)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-40:])
        raise ControlPlaneError(f"{build_script} failed with exit code {proc.returncode}:\n{tail}")
    bin_dir = Path(lines[-1])
    missing = [b for b in BINARIES if not os.access(bin_dir / b, os.X_OK)]
    if missing:
        raise ControlPlaneError(f"{build_script} reported {bin_dir} but it lacks {', '.join(missing)}")
    return bin_dir


# --------------------------------------------------------------------------------------------------- PKI


@dataclass(frozen=True)
class _Pki:
    ca_cert: Path
    serving_cert: Path  # for kube-apiserver and kwok's kubelet server: IP SAN 127.0.0.1, DNS localhost
    serving_key: Path
    sa_key: Path  # service-account token signing key (private) ...
    sa_pub: Path  # ... and its public half for verification


def _pem_key(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _write_private(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    path.chmod(0o600)


def _cert_builder(subject: str, issuer: str, public_key: Any, days: int) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))  # tolerate small clock skew
        .not_valid_after(now + datetime.timedelta(days=days))
    )


def _write_pki(pki_dir: Path) -> _Pki:
    pki_dir.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = "psmdb-backup-webhook local control plane CA"
    ca = (
        _cert_builder(ca_name, ca_name, ca_key.public_key(), days=365)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    serving_key = ec.generate_private_key(ec.SECP256R1())
    serving = (
        _cert_builder("localhost", ca_name, serving_key.public_key(), days=30)
        # Go ignores the CN since 1.15, so the IP SAN is what makes https://127.0.0.1 verify.
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(LOOPBACK)), x509.DNSName("localhost")]),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    pki = _Pki(
        ca_cert=pki_dir / "ca.crt",
        serving_cert=pki_dir / "serving.crt",
        serving_key=pki_dir / "serving.key",
        sa_key=pki_dir / "sa.key",
        sa_pub=pki_dir / "sa.pub",
    )
    pki.ca_cert.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    pki.serving_cert.write_bytes(serving.public_bytes(serialization.Encoding.PEM))
    _write_private(pki.serving_key, _pem_key(serving_key))
    _write_private(pki.sa_key, _pem_key(sa_key))
    pki.sa_pub.write_bytes(
        sa_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return pki


# --------------------------------------------------------------------------------------------------- ports


@dataclass(frozen=True)
class _Ports:
    etcd_client: int
    etcd_peer: int
    apiserver: int
    kwok: int
    scheduler: int

    @classmethod
    def pick(cls) -> _Ports:
        return cls(*_free_ports(5))


def _free_ports(count: int) -> list[int]:
    """Ask the kernel for distinct free loopback ports (all sockets held open together so none repeats)."""
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((LOOPBACK, 0))
            socks.append(sock)
        return [s.getsockname()[1] for s in socks]
    finally:
        for sock in socks:
            sock.close()


# --------------------------------------------------------------------------------------------------- processes


@dataclass
class _Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: IO[bytes]
    log_path: Path


def _parent_death_signal() -> Callable[[], None] | None:
    """A preexec_fn making the child get SIGTERM when this process dies, so even `kill -9 pytest` leaves nothing.

    Linux only. PR_SET_PDEATHSIG fires when the *thread* that forked exits, so it is only armed from the main
    thread; a control plane started from a worker thread relies on stop()/atexit alone.
    """
    if not sys.platform.startswith("linux") or threading.current_thread() is not threading.main_thread():
        return None
    libc = ctypes.CDLL(None, use_errno=True)  # loaded before fork: preexec_fn must stay trivial
    parent = os.getpid()
    pr_set_pdeathsig = 1

    def arm() -> None:
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
        if os.getppid() != parent:  # the parent already died between fork and prctl
            os._exit(1)

    return arm


def _terminate(procs: Sequence[_Process], timeout: float) -> None:
    """SIGTERM every process, wait up to `timeout` in total, then SIGKILL the rest."""
    for proc in procs:
        if proc.popen.poll() is None:
            proc.popen.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for proc in procs:
        try:
            proc.popen.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.popen.kill()
            proc.popen.wait()


def _tail(path: Path, lines: int) -> list[str]:
    try:
        with open(path, errors="replace") as fh:
            return list(collections.deque(fh, maxlen=lines))
    except FileNotFoundError:
        return []


# --------------------------------------------------------------------------------------------------- control plane


class ControlPlane:
    """etcd + kube-apiserver (+ kwok) (+ kube-controller-manager + kube-scheduler) on 127.0.0.1.

    `extra_path` directories come first on kwok's PATH: kwok looks up `kubectl exec` commands on its *own* PATH,
    not on the PATH in `exec_env`. `exec_env` reaches every exec'd command (ClusterExec `local.envs`). Exec'd
    commands run with `work_dir/exec` as working directory. `kwok_extra_docs` are appended to kwok's --config
    (e.g. ClusterLogs or per-pod Exec objects, as dicts).
    """

    def __init__(
        self,
        bin_dir: Path,
        work_dir: Path,
        *,
        with_kwok: bool = True,
        with_controllers: bool = True,
        extra_path: Sequence[Path] = (),
        exec_env: Mapping[str, str] | None = None,
        kwok_extra_docs: Sequence[Mapping[str, Any]] = (),
        ready_timeout: float = 90.0,
    ) -> None:
        self.bin_dir = Path(bin_dir).resolve()
        self.work_dir = Path(work_dir).resolve()
        self.with_kwok = with_kwok
        self.with_controllers = with_controllers
        self.extra_path = [Path(p).resolve() for p in extra_path]
        self.exec_env = dict(exec_env or {})
        self.kwok_extra_docs = list(kwok_extra_docs)
        self.ready_timeout = ready_timeout

        self.kubeconfig = self.work_dir / "kubeconfig"
        self.log_dir = self.work_dir / "logs"
        self.exec_dir = self.work_dir / "exec"
        self.ca_file = self.work_dir / "pki" / "ca.crt"
        self.token = secrets.token_urlsafe(32)  # URL-safe: no comma or quote to break the token CSV
        self.server = ""
        self.start_seconds: float | None = None

        self._pki: _Pki | None = None
        self._ports: _Ports | None = None
        self._procs: list[_Process] = []
        self._atexit_registered = False

    # ----------------------------------------------------------------------------------------- lifecycle

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> ControlPlane:
        """Start everything and wait until it is usable; retries once with new ports on a port clash."""
        if self._procs:
            raise ControlPlaneError("control plane already started")
        began = time.monotonic()
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self._pki = _write_pki(self.work_dir / "pki")
        if not self._atexit_registered:
            atexit.register(self.stop)  # a crashed or interrupted test run must not leave processes behind
            self._atexit_registered = True
        for attempt in (1, 2):
            try:
                self._start_once()
                break
            except BaseException as exc:
                clash = isinstance(exc, ControlPlaneError) and self._saw_port_clash()
                self.stop()
                if attempt == 2 or not clash:
                    raise
                print("controlplane: port clash, retrying with new ports", file=sys.stderr)
        self.start_seconds = time.monotonic() - began
        return self

    def stop(self, timeout: float = 15.0) -> None:
        """Terminate every started process by PID (SIGTERM, wait, SIGKILL). Idempotent."""
        procs, self._procs = self._procs, []
        if not procs:
            return
        # Clients first, then the apiserver, then etcd, so nothing logs errors about a vanished server.
        clients = [p for p in procs if p.name not in ("kube-apiserver", "etcd")]
        try:
            _terminate(clients[::-1], timeout)
            _terminate([p for p in procs if p.name == "kube-apiserver"], timeout)
            _terminate([p for p in procs if p.name == "etcd"], timeout)
        finally:
            for proc in procs:
                if proc.popen.poll() is None:  # e.g. interrupted while waiting above
                    proc.popen.kill()
                    proc.popen.wait()
                proc.log.close()

    @property
    def pids(self) -> dict[str, int]:
        """PIDs of the processes started by this instance and not yet stopped."""
        return {p.name: p.popen.pid for p in self._procs}

    def log_tail(self, lines: int = 30) -> str:
        """The last `lines` lines of every process log, for printing on failure."""
        parts = []
        for path in sorted(self.log_dir.glob("*.log")):
            parts.append(f"==> {path} <==\n{''.join(_tail(path, lines))}")
        return "\n".join(parts)

    # ----------------------------------------------------------------------------------------- clients

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        """Run the matching kubectl against this control plane (text mode, captured output)."""
        cmd = [
            str(self.bin_dir / "kubectl"),
            f"--kubeconfig={self.kubeconfig}",
            f"--cache-dir={self.work_dir / 'kubectl-cache'}",  # keep ~/.kube untouched
            *args,
        ]
        proc = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout, check=False)
        if check and proc.returncode != 0:
            raise KubectlError(proc.returncode, cmd, proc.stdout, proc.stderr)
        return proc

    def api(self, method: str, path: str, body: Any = None, timeout: float = 10.0) -> Any:
        """A raw JSON API call with the admin token (no kubectl process: cheap enough to poll)."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.server + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.token}")
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        with self._opener().open(req, timeout=timeout) as resp:
            return json.load(resp)

    def wait_ready_node(self, name: str = KWOK_NODE_NAME, timeout: float = 60.0) -> None:
        """Wait until the node is Ready and, when the scheduler runs, no longer carries the not-ready taint."""
        self._wait_until(f"node {name} Ready", lambda: self._node_ready(name), timeout)

    def create_namespace(self, name: str, timeout: float = 60.0) -> str:
        """Create a namespace; with the controllers on, wait for its `default` ServiceAccount.

        The ServiceAccount admission plugin is on then, and rejects pods until the token controller made it.
        """
        self.api("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        if self.with_controllers:
            self._wait_default_service_account(name, timeout)
        return name

    # ----------------------------------------------------------------------------------------- start steps

    def _start_once(self) -> None:
        assert self._pki is not None
        self._prepare_dirs()
        ports = self._ports = _Ports.pick()
        self.server = f"https://{LOOPBACK}:{ports.apiserver}"
        self._write_auth_files()

        self._spawn("etcd", self._etcd_args())
        self._wait_until("etcd /health", lambda: self._http_ok(f"http://{LOOPBACK}:{ports.etcd_client}/health"))
        self._spawn("kube-apiserver", self._apiserver_args())
        self._wait_until("kube-apiserver /readyz", lambda: self._http_ok(self.server + "/readyz", auth=True))

        if self.with_kwok:
            self._create_kwok_node()
            self._spawn("kwok", self._kwok_args(), env=self._kwok_env())
            self._wait_until("kwok /healthz", lambda: self._http_ok(f"http://{LOOPBACK}:{ports.kwok}/healthz"))
        if self.with_controllers:
            self._spawn("kube-controller-manager", self._controller_manager_args())
            self._spawn("kube-scheduler", self._scheduler_args())
            self._wait_until(
                "kube-scheduler /healthz",
                lambda: self._http_ok(f"https://{LOOPBACK}:{ports.scheduler}/healthz", verify=False),
            )
            self._wait_default_service_account("default", self.ready_timeout)
        if self.with_kwok:
            self.wait_ready_node(timeout=self.ready_timeout)

    def _prepare_dirs(self) -> None:
        shutil.rmtree(self.work_dir / "etcd-data", ignore_errors=True)  # every start is a fresh cluster
        for d in (self.log_dir, self.exec_dir, self.work_dir / "kwok-home"):
            d.mkdir(parents=True, exist_ok=True)

    def _write_kubeconfig(self, path: Path, user: str, token: str) -> None:
        kubeconfig = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {"name": "local", "cluster": {"server": self.server, "certificate-authority": str(self.ca_file)}}
            ],
            "users": [{"name": user, "user": {"token": token}}],
            "contexts": [{"name": "local", "context": {"cluster": "local", "user": user}}],
            "current-context": "local",
        }
        _write_private(path, json.dumps(kubeconfig, indent=2).encode())  # JSON is valid YAML

    def _write_auth_files(self) -> None:
        (self.work_dir / "tokens.csv").write_text(f'{self.token},admin,admin,"system:masters"\n')
        (self.work_dir / "tokens.csv").chmod(0o600)
        self._write_kubeconfig(self.kubeconfig, "admin", self.token)

    def service_account_kubeconfig(self, rbac_docs: Sequence[Mapping[str, Any]], namespace: str, name: str) -> Path:
        """A kubeconfig with a TokenRequest token of ServiceAccount `namespace/name`, after applying `rbac_docs`
        (the install's own ServiceAccount, roles and bindings): components run with exactly the install's rights."""
        existing = self.kubectl("get", "namespace", namespace, check=False)
        if existing.returncode != 0:
            self.kubectl("create", "namespace", namespace)
        self.kubectl("apply", "-f", "-", input="\n---\n".join(json.dumps(d) for d in rbac_docs))
        token = self.kubectl("create", "token", name, "-n", namespace, "--duration=24h").stdout.strip()
        path = self.work_dir / f"kubeconfig-{namespace}-{name}"
        self._write_kubeconfig(path, f"system:serviceaccount:{namespace}:{name}", token)
        return path

    def _spawn(self, name: str, args: list[str], env: Mapping[str, str] | None = None) -> None:
        log_path = self.log_dir / f"{name}.log"
        log = open(log_path, "wb")  # truncated per attempt: a retry's log is not mixed with the failed one
        try:
            popen = subprocess.Popen(
                [str(self.bin_dir / name), *args],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.work_dir,
                env=dict(env) if env is not None else None,
                start_new_session=True,  # a terminal Ctrl-C reaches only us; stop() then shuts down in order
                preexec_fn=_parent_death_signal(),
            )
        except BaseException:
            log.close()
            raise
        self._procs.append(_Process(name, popen, log, log_path))

    # ----------------------------------------------------------------------------------------- flags

    def _etcd_args(self) -> list[str]:
        assert self._ports is not None
        client = f"http://{LOOPBACK}:{self._ports.etcd_client}"
        peer = f"http://{LOOPBACK}:{self._ports.etcd_peer}"
        return [
            "--name=e2e",
            f"--data-dir={self.work_dir / 'etcd-data'}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=e2e={peer}",
            "--unsafe-no-fsync=true",  # test data only; fsync dominates etcd latency on shared disks
            "--log-level=warn",
        ]

    def _apiserver_args(self) -> list[str]:
        assert self._ports is not None and self._pki is not None
        pki = self._pki
        args = [
            f"--etcd-servers=http://{LOOPBACK}:{self._ports.etcd_client}",
            f"--bind-address={LOOPBACK}",
            f"--advertise-address={LOOPBACK}",  # else it derives one from the default route (or fails without)
            f"--secure-port={self._ports.apiserver}",
            f"--tls-cert-file={pki.serving_cert}",
            f"--tls-private-key-file={pki.serving_key}",
            f"--client-ca-file={pki.ca_cert}",
            f"--token-auth-file={self.work_dir / 'tokens.csv'}",
            "--authorization-mode=RBAC",  # no real kubelet, so the Node authorizer has nobody to authorize
            f"--service-account-issuer={self.server}",
            f"--service-account-key-file={pki.sa_pub}",
            f"--service-account-signing-key-file={pki.sa_key}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--allow-privileged=true",
            "--enable-priority-and-fairness=false",  # trims overhead (kwokctl does the same)
            "--endpoint-reconciler-type=none",  # a 127.0.0.1 endpoint for Service/kubernetes is invalid anyway
            "--kubelet-preferred-address-types=InternalIP",  # kwok's node InternalIP is 127.0.0.1 (exec, logs)
            "--profiling=false",
        ]
        if not self.with_controllers:
            # Without kube-controller-manager no token controller creates `default` ServiceAccounts, and the
            # plugin would reject every pod (envtest does the same). Webhook admission plugins stay on (defaults).
            args.append("--disable-admission-plugins=ServiceAccount")
        return args

    def _kube_client_args(self) -> list[str]:
        return [
            f"--kubeconfig={self.kubeconfig}",
            f"--authentication-kubeconfig={self.kubeconfig}",  # avoids in-cluster lookups and their warnings
            f"--authorization-kubeconfig={self.kubeconfig}",
            "--leader-elect=false",
            f"--bind-address={LOOPBACK}",
        ]

    def _controller_manager_args(self) -> list[str]:
        assert self._pki is not None
        controllers = KCM_CONTROLLERS_WITH_KWOK if self.with_kwok else KCM_CONTROLLERS_WITHOUT_KWOK
        return [
            *self._kube_client_args(),
            "--secure-port=0",  # no health endpoint needed
            f"--root-ca-file={self._pki.ca_cert}",  # published as kube-root-ca.crt ConfigMaps
            f"--service-account-private-key-file={self._pki.sa_key}",  # token controller
            f"--controllers={controllers}",
        ]

    def _scheduler_args(self) -> list[str]:
        assert self._ports is not None
        return [
            *self._kube_client_args(),
            f"--secure-port={self._ports.scheduler}",  # kwokctl does not rely on --secure-port=0 for the scheduler
            # Our apiserver has no front proxy, so the published extension-apiserver-authentication ConfigMap has
            # no requestheader CA and the lookup would log "missing content for CA bundle" over and over.
            "--authentication-skip-lookup=true",
        ]

    def _kwok_args(self) -> list[str]:
        config_path = self.work_dir / "kwok.yaml"
        config_path.write_text("\n---\n".join(json.dumps(doc) for doc in self._kwok_config_docs()) + "\n")
        return [f"--kubeconfig={self.kubeconfig}", f"--config={config_path}"]

    def _kwok_config_docs(self) -> list[Mapping[str, Any]]:
        assert self._ports is not None and self._pki is not None
        configuration = {
            "apiVersion": "config.kwok.x-k8s.io/v1alpha1",
            "kind": "KwokConfiguration",
            "options": {
                "nodeIP": LOOPBACK,
                "nodePort": self._ports.kwok,
                "serverAddress": f"{LOOPBACK}:{self._ports.kwok}",
                "tlsCertFile": str(self._pki.serving_cert),
                "tlsPrivateKeyFile": str(self._pki.serving_key),
                "manageAllNodes": False,
                "manageNodesWithAnnotationSelector": f"{KWOK_NODE_ANNOTATION}={KWOK_NODE_ANNOTATION_VALUE}",
                # Unset, the kwok binary renews no node Lease (kwokctl sets 40) and (kwok v0.7.0 pkg/kwok/cmd/root.go:171)
                # picks the 10-minute heartbeat stage, so nodelifecycle marks the node Unknown after its 50 s grace
                # period and sets every pod on it Ready=False for good (kwok's pod-ready stage skips pods that
                # already have an IP). 40 s as the kubelet: a Lease renewed every 10 s keeps the node Ready.
                "nodeLeaseDurationSeconds": NODE_LEASE_SECONDS,
            },
        }
        # kwok's HOME is redirected (see _kwok_env); give exec'd commands the real one back unless overridden.
        envs = {"HOME": os.environ.get("HOME", "/"), **self.exec_env}
        cluster_exec = {
            "apiVersion": "kwok.x-k8s.io/v1alpha1",
            "kind": "ClusterExec",
            "metadata": {"name": "local"},
            "spec": {
                "execs": [
                    {
                        "local": {
                            "workDir": str(self.exec_dir),
                            "envs": [{"name": k, "value": v} for k, v in envs.items()],
                        }
                    }
                ]
            },
        }
        return [configuration, cluster_exec, *self.kwok_extra_docs]

    def _kwok_env(self) -> dict[str, str]:
        env = dict(os.environ)
        # exec'd commands are looked up on kwok's own PATH, not on PATH in ClusterExec envs.
        env["PATH"] = os.pathsep.join([*map(str, self.extra_path), env.get("PATH", os.defpath)])
        # kwok always also loads ~/.kwok/kwok.yaml if it exists; a private HOME keeps a stray one out.
        env["HOME"] = str(self.work_dir / "kwok-home")
        return env

    def _create_kwok_node(self) -> None:
        resources = {"cpu": "32", "memory": "256Gi", "pods": "110"}
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": KWOK_NODE_NAME,
                "annotations": {KWOK_NODE_ANNOTATION: KWOK_NODE_ANNOTATION_VALUE},
                "labels": {
                    "kubernetes.io/hostname": KWOK_NODE_NAME,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "type": "kwok",
                },
            },
            "status": {"capacity": resources, "allocatable": resources},
        }
        self.api("POST", "/api/v1/nodes", node)

    # ----------------------------------------------------------------------------------------- waiting

    def _wait_until(self, what: str, predicate: Callable[[], bool], timeout: float | None = None) -> None:
        timeout = self.ready_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while True:
            self._check_alive()
            if predicate():
                return
            if time.monotonic() > deadline:
                raise ControlPlaneError(f"{what}: not ready after {timeout:.0f}s\n{self.log_tail()}")
            time.sleep(0.2)

    def _check_alive(self) -> None:
        for proc in self._procs:
            code = proc.popen.poll()
            if code is not None:
                raise ControlPlaneError(f"{proc.name} exited with code {code}\n{self.log_tail()}")

    def _saw_port_clash(self) -> bool:
        return any("address already in use" in "".join(_tail(p.log_path, 50)) for p in self._procs)

    def _opener(self, verify: bool = True) -> urllib.request.OpenerDirector:
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        if not verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        # An empty ProxyHandler: urllib would otherwise send 127.0.0.1 through $https_proxy.
        return urllib.request.build_opener(urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=ctx))

    def _http_ok(self, url: str, *, auth: bool = False, verify: bool = True) -> bool:
        req = urllib.request.Request(url)
        if auth:
            req.add_header("Authorization", f"Bearer {self.token}")
        try:
            with self._opener(verify).open(req, timeout=5) as resp:
                return resp.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def _node_ready(self, name: str) -> bool:
        try:
            node = self.api("GET", f"/api/v1/nodes/{name}")
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return False
            raise
        conditions = node.get("status", {}).get("conditions", [])
        ready = any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)
        tainted = any(t["key"] == NOT_READY_TAINT for t in node.get("spec", {}).get("taints", []))
        # Only kube-controller-manager's nodelifecycle removes the taint, and only the scheduler cares about it.
        return ready and not (tainted and self.with_controllers)

    def _wait_default_service_account(self, namespace: str, timeout: float) -> None:
        def exists() -> bool:
            try:
                self.api("GET", f"/api/v1/namespaces/{namespace}/serviceaccounts/default")
                return True
            except urllib.error.HTTPError as exc:
                if exc.code == 404:
                    return False
                raise

        self._wait_until(f"ServiceAccount {namespace}/default", exists, timeout)
