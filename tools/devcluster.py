"""A local cluster with the webhooks installed, for the end-to-end tests and `make demo`: etcd + kube-apiserver + kwok
(+ controller-manager and scheduler), the three CRDs, and `psmdb-backup serve` as its own process, registered
through the project's own webhook configuration manifests rewritten to `url: https://127.0.0.1:<port>/...` with a
locally generated CA."""

from __future__ import annotations

import base64
import json
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tools.controlplane import ControlPlane, find_bin_dir  # noqa: E402
from webhook import certs  # noqa: E402

MANIFESTS = ROOT / "manifests"


INSTALL_NAMESPACE = "psmdb-backup-system"
RBAC_KINDS = ("ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding")


def install_rbac(manifest: Path) -> list[dict[str, Any]]:
    """The ServiceAccount, roles and bindings of one install manifest (manifests/base/*.yaml), in the install
    namespace: what the component gets in a real cluster."""
    docs = [d for d in yaml.safe_load_all(manifest.read_text()) if d and d["kind"] in RBAC_KINDS]
    for d in docs:
        if d["kind"] in ("ServiceAccount", "Role", "RoleBinding"):
            d["metadata"]["namespace"] = INSTALL_NAMESPACE
    return docs


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class WebhookProcess:
    """`psmdb-backup serve` on 127.0.0.1, restartable (failurePolicy and rotation tests stop and start it)."""

    tls_dir: Path
    kubeconfig: Path
    log_file: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None
    extra_args: list[str] = field(default_factory=list)  # further `serve` flags (a test's second server)

    def start(self) -> None:
        cmd = [
            sys.executable,
            "-m",
            "webhook.cli",
            "serve",
            "--tls-dir",
            str(self.tls_dir),
            "--listen",
            f"127.0.0.1:{self.port}",
            "--kubeconfig",
            str(self.kubeconfig),
            "--cert-check-interval",
            "0.5",
            "--lookup-timeout",
            "2",
            *self.extra_args,
        ]
        log = open(self.log_file, "ab")
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"psmdb-backup serve exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"psmdb-backup serve did not listen within 30 s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def log_lines(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log_file.read_text(errors="replace").splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out


@dataclass
class Cluster:
    cp: ControlPlane
    webhook: WebhookProcess
    ca_pem: bytes
    ca_key_pem: bytes

    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
        return self.cp.kubectl(*args, input=input, check=check)

    def apply(self, manifest: str | dict | list, *args: str, check: bool = False) -> subprocess.CompletedProcess:
        docs = (
            manifest
            if isinstance(manifest, str)
            else yaml.safe_dump_all(manifest if isinstance(manifest, list) else [manifest])
        )
        return self.kubectl("apply", "-f", "-", *args, input=docs, check=check)

    def namespace(self, labels: dict[str, str] | None = None) -> str:
        name = f"e2e-{uuid.uuid4().hex[:8]}"
        self.cp.create_namespace(name)
        if labels:
            self.kubectl("label", "namespace", name, *(f"{k}={v}" for k, v in labels.items()), "--overwrite")
        return name

    def get(self, kind: str, name: str, namespace: str) -> dict[str, Any] | None:
        result = self.kubectl("get", kind, name, "-n", namespace, "-o", "json", check=False)
        return json.loads(result.stdout) if result.returncode == 0 else None

    def rotate_certificate(self) -> int:
        """A new serving certificate from the same CA (what `psmdb-backup certs` does before expiry)."""
        cert, key = certs.make_serving_cert(self.ca_pem, self.ca_key_pem, ["127.0.0.1", "localhost"], 2)
        certs.write_dir(self.webhook.tls_dir, self.ca_pem, cert, key)
        return certs.cert_serial(cert)


def rewrite_for_local(doc: dict[str, Any], port: int, ca_pem: bytes) -> dict[str, Any]:
    """Our webhook configuration manifest, with the Service reference replaced by a loopback URL (as envtest does)."""
    for hook in doc["webhooks"]:
        path = hook["clientConfig"]["service"].get("path", "/")
        hook["clientConfig"] = {"url": f"https://127.0.0.1:{port}{path}", "caBundle": base64.b64encode(ca_pem).decode()}
    return doc


def wait_for_webhook(cluster: Cluster, timeout: float = 60) -> None:
    """Until the API server really calls our webhook: a server-side dry-run the webhook must deny."""
    probe = {
        "apiVersion": "psmdb.percona.com/v1",
        "kind": "PerconaServerMongoDBBackup",
        "metadata": {"name": "webhook-probe", "namespace": "default"},
        "spec": {"clusterName": "probe"},
    }
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        result = cluster.apply(probe, "--dry-run=server")
        last = result.stderr
        if "psmdb-backup-webhook" in result.stderr and "PSB403" in result.stderr:
            return
        time.sleep(0.5)
    raise RuntimeError(f"the API server never called the webhook; last answer: {last}\n{cluster.webhook.log_tail()}")


def start(work: Path, *, log_file: Path | None = None, **control_plane: Any) -> Cluster:
    """Start everything; the caller stops it with `stop(cluster)` (also on failure inside this function).
    `control_plane` goes to ControlPlane (e.g. extra_path and kwok_extra_docs for the PBM simulator)."""
    cp = ControlPlane(find_bin_dir(), work, with_kwok=True, with_controllers=True, **control_plane)
    cp.start()
    webhook = None
    try:
        cp.kubectl("apply", "-f", str(MANIFESTS / "crds"))
        cp.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd", "--all")
        tls_dir = work / "webhook-tls"
        ca, ca_key = certs.make_ca("psmdb-backup local CA", 2)
        cert, key = certs.make_serving_cert(ca, ca_key, ["127.0.0.1", "localhost"], 2)
        certs.write_dir(tls_dir, ca, cert, key)
        # the webhook runs as its ServiceAccount with the install's RBAC: every e2e lookup proves it is enough
        sa_kubeconfig = cp.service_account_kubeconfig(
            install_rbac(MANIFESTS / "base" / "rbac.yaml"), INSTALL_NAMESPACE, "psmdb-backup-webhook"
        )
        webhook = WebhookProcess(tls_dir, sa_kubeconfig, log_file or work / "logs" / "psmdb-backup-serve.log")
        webhook.start()
        cluster = Cluster(cp, webhook, ca, ca_key)
        for name in ("validatingwebhookconfiguration.yaml", "mutatingwebhookconfiguration.yaml"):
            doc = yaml.safe_load((MANIFESTS / "webhook" / name).read_text())
            cluster.apply(rewrite_for_local(doc, webhook.port, ca), check=True)
        wait_for_webhook(cluster)
        return cluster
    except BaseException:
        print(cp.log_tail(), file=sys.stderr)
        if webhook:
            print(webhook.log_tail(), file=sys.stderr)
            webhook.stop()
        cp.stop()
        raise


def stop(cluster: Cluster) -> None:
    cluster.webhook.stop()
    cluster.cp.stop()
