"""The container image itself, end to end: built with podman from the project's Dockerfile, run read-only as UID
10001, and registered with the real kube-apiserver through its own pair of webhook configurations.

The build is cached: the tag is `localhost/psmdb-backup-webhook:test-<hash of the build inputs and the base image>`,
and nothing is built when `podman image exists` says it is there (older test tags are removed after a build). There
is no registry on the test machines, so the base is a local Debian image (`localhost/psmdb-base:bookworm`, made with
debootstrap when missing; override with $PSMDB_IMAGE_BASE). podman needs runc and explicit ulimits here: this module
writes a containers.conf into the cache directory and points $CONTAINERS_CONF at it (an existing $CONTAINERS_CONF is
kept). When podman cannot build or run the image, the tests skip, and fail under PSMDB_REQUIRE_E2E=1."""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import resource
import shutil
import ssl
import subprocess
import tempfile
import time
import tomllib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tools import devcluster
from webhook import certs

from .conftest import Cluster

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
CACHE = Path(os.environ.get("PSMDB_BACKUP_CACHE") or Path.home() / ".cache" / "psmdb-backup-webhook")
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
REPO = "localhost/psmdb-backup-webhook"
BASE = os.environ.get("PSMDB_IMAGE_BASE", "localhost/psmdb-base:bookworm")
# Everything `podman build` reads (the Dockerfile copies from these; .dockerignore filters them); webhook/schemas is
# a symlink to schemas/, hashed once through schemas/.
BUILD_INPUTS = (
    "Dockerfile",
    ".dockerignore",
    "pyproject.toml",
    "constraints.txt",
    "README.md",
    "LICENSE",
    "webhook",
    "schemas",
)
HOST_CA = "/etc/ssl/certs/ca-certificates.crt"  # pip in the build trusts the index only with the host's bundle
SELECTOR_LABEL = "psmdb-backup-webhook.io/image-e2e"
IGNORE_LABEL = "psmdb-backup-webhook.io/ignore"  # keeps the session fixture's own webhooks out of the namespace
HOOK_DOMAIN = "image-e2e.psmdb-backup-webhook.io"


def _unavailable(message: str) -> None:
    if os.environ.get("PSMDB_REQUIRE_E2E") == "1":
        pytest.fail(f"PSMDB_REQUIRE_E2E=1 but the image cannot be tested: {message}", pytrace=False)
    pytest.skip(message)


class Podman:
    def __init__(self, env: dict[str, str]) -> None:
        self.env = env

    def __call__(
        self, *args: str, check: bool = True, timeout: float = 120, log: Path | None = None
    ) -> subprocess.CompletedProcess:
        if log is not None:
            with open(log, "wb") as out:
                result = subprocess.run(
                    ["podman", *args], env=self.env, stdout=out, stderr=subprocess.STDOUT, timeout=timeout
                )
        else:
            result = subprocess.run(["podman", *args], env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            detail = log.read_text(errors="replace")[-4000:] if log else f"{result.stdout}\n{result.stderr}"
            raise RuntimeError(f"podman {' '.join(args)} exited with {result.returncode}:\n{detail}")
        return result

    def exists(self, image: str) -> bool:
        return self("image", "exists", image, check=False).returncode == 0


def _containers_conf() -> Path:
    """runc (Debian's crun refuses the hybrid cgroup layout) and ulimits within the hard limits (podman otherwise
    asks for more open files than allowed: `setrlimit RLIMIT_NOFILE: Operation not permitted`)."""
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nproc = resource.getrlimit(resource.RLIMIT_NPROC)[1]
    nproc = 32768 if nproc == resource.RLIM_INFINITY else min(nproc, 32768)
    nofile = 1048576 if nofile == resource.RLIM_INFINITY else nofile
    path = CACHE / "podman" / "containers.conf"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f'[containers]\ndefault_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]\n'
        '[engine]\nruntime = "runc"\n'
    )
    return path


@pytest.fixture(scope="module")
def podman() -> Podman:
    if shutil.which("podman") is None:
        _unavailable("podman is not installed (apt-get install podman buildah runc debootstrap)")
    env = dict(os.environ)
    env.setdefault("CONTAINERS_CONF", str(_containers_conf()))
    p = Podman(env)
    info = p("info", "--format", "{{.Host.OCIRuntime.Name}}", check=False, timeout=60)
    if info.returncode != 0:
        _unavailable(f"podman info failed: {info.stderr.strip()[-500:]}")
    return p


def _debian_mirror() -> str:
    for source in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
        for line in source.read_text().splitlines():
            if line.startswith("URIs:") and "security" not in line:
                return line.split()[1]
    return "http://deb.debian.org/debian"


def _build_base(podman: Podman) -> None:
    """The recipe of container-images.md: a minimal Debian with Python, imported as an image (no registry)."""
    if os.geteuid() != 0 or shutil.which("debootstrap") is None:
        _unavailable(f"the base image {BASE} is missing and debootstrap (as root) is not available to make it")
    with tempfile.TemporaryDirectory(prefix="psmdb-base-") as tmp:
        rootfs, tar = Path(tmp) / "rootfs", Path(tmp) / "base.tar"
        subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                "--include=python3,python3-venv,ca-certificates,tzdata",
                "bookworm",
                str(rootfs),
                _debian_mirror(),
            ],
            check=True,
            capture_output=True,
            timeout=600,
        )
        for cache in ("var/cache/apt", "var/lib/apt/lists"):
            shutil.rmtree(rootfs / cache, ignore_errors=True)
        subprocess.run(["tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(tar), "."], check=True, timeout=300)
        podman("import", "--change", "ENV LANG=C.UTF-8", str(tar), BASE, timeout=300)


def _inputs_hash(base_id: str) -> str:
    h = hashlib.sha256(f"recipe 1\0base {base_id}\0".encode())
    for name in BUILD_INPUTS:
        top = ROOT / name
        files = (
            [top]
            if top.is_file()
            else sorted(
                p
                for p in top.rglob("*")
                if p.is_file() and not p.is_symlink() and "__pycache__" not in p.parts and p.suffix != ".pyc"
            )
        )
        for path in files:
            h.update(f"{path.relative_to(ROOT).as_posix()}\0{path.stat().st_mode & 0o111}\0".encode())
            h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()[:16]


@pytest.fixture(scope="module")
def image(podman: Podman, tmp_path_factory: pytest.TempPathFactory) -> str:
    if not podman.exists(BASE):
        _build_base(podman)
    base_id = podman("image", "inspect", "--format", "{{.Id}}", BASE).stdout.strip()
    tag = f"{REPO}:test-{_inputs_hash(base_id)}"
    if podman.exists(tag):
        return tag
    log = tmp_path_factory.mktemp("image-build") / "podman-build.log"
    try:
        podman(
            "build",
            "--pull=never",
            "--build-arg",
            f"BASE={BASE}",
            "-v",
            f"{HOST_CA}:{HOST_CA}:ro",
            "-t",
            tag,
            "-f",
            str(ROOT / "Dockerfile"),
            str(ROOT),
            timeout=900,
            log=log,
        )
    except RuntimeError as err:
        if "crun" in str(err) or "setrlimit" in str(err) or "cgroup" in str(err):
            _unavailable(f"podman cannot run build steps here: {err}")
        raise
    for old in podman("images", "--format", "{{.Repository}}:{{.Tag}}", REPO).stdout.split():
        if old.startswith(f"{REPO}:test-") and old != tag:
            podman("rmi", old, check=False)  # only our own earlier test tags; shared layers stay
    return tag


def run(
    podman: Podman,
    image: str,
    *args: str,
    mounts: dict[Path, str] | None = None,
    entrypoint: str | None = None,
    user: str | None = None,
) -> subprocess.CompletedProcess:
    flags = ["--rm", "--read-only", "--cap-drop=ALL", "--security-opt=no-new-privileges"]
    if user:
        flags += ["--user", user]
    for source, target in (mounts or {}).items():
        flags += ["-v", f"{source}:{target}:ro"]
    if entrypoint:
        flags += ["--entrypoint", entrypoint]
    return podman("run", *flags, image, *args, check=False)


def test_image_metadata_contents_and_size(podman: Podman, image: str, capsys: pytest.CaptureFixture) -> None:
    info = json.loads(podman("image", "inspect", image).stdout)[0]
    config = info["Config"]
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"] == ["psmdb-backup"] and config["Cmd"] == ["--help"]
    assert {"HOME=/tmp", "PYTHONDONTWRITEBYTECODE=1"} <= set(config["Env"])
    labels = config["Labels"]
    assert labels["org.opencontainers.image.version"] == VERSION  # the Dockerfile's ARG VERSION default
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"
    assert labels["org.opencontainers.image.title"] == "psmdb-backup-webhook"
    assert labels["org.opencontainers.image.source"].startswith("https://github.com/")
    assert labels["org.opencontainers.image.description"]
    # Nothing of the build stage: no pip, setuptools or wheel in the venv, no compiler, no wheels, sources or caches.
    probe = run(
        podman,
        image,
        "-c",
        "id -u; command -v gcc cc c++ make pip pip3 || true; "
        "/opt/venv/bin/python -c 'import importlib.util as u; "
        'print([m for m in ("pip", "setuptools", "wheel") if u.find_spec(m)])\'',
        entrypoint="/bin/sh",
    )
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.split("\n")[:3] == ["10001", "[]", ""], probe.stdout
    leftovers = run(
        podman,
        image,
        "-c",
        "ls -d /wheels /src /root/.cache/pip 2>/dev/null; "
        "find /opt/venv -name '*.whl' -o -name '*.dist-info' -path '*/pip-*'",
        entrypoint="/bin/sh",
        user="0",
    )
    assert leftovers.stdout == "", leftovers.stdout
    size = int(podman("image", "inspect", "--format", "{{.Size}}", image).stdout)
    base_size = int(podman("image", "inspect", "--format", "{{.Size}}", BASE).stdout)
    with capsys.disabled():
        print(
            f"\nimage {image}: {size / 1e6:.0f} MB ({size} bytes; base {BASE} {base_size / 1e6:.0f} MB, "
            f"venv layer {(size - base_size) / 1e6:.0f} MB)"
        )


def test_version_and_lint_in_the_image(podman: Podman, image: str) -> None:
    version = run(podman, image, "--version")
    assert version.returncode == 0 and version.stdout.strip() == f"psmdb-backup {VERSION}", version

    bad = run(podman, image, "lint", "/in/cluster.yaml", mounts={EXAMPLES / "bad" / "cluster.yaml": "/in/cluster.yaml"})
    assert bad.returncode == 1, bad
    assert '/in/cluster.yaml:35:9 error PSB203 spec.backup.tasks[0].storageName: storage "s3-eu"' in bad.stdout
    assert "4 errors, 1 warning" in bad.stdout

    good = run(podman, image, "lint", "--fail-on", "warning", "/in", mounts={EXAMPLES / "good": "/in"})
    assert good.returncode == 0, good
    assert "0 errors, 0 warnings" in good.stdout


# --------------------------------------------------------------------------------------------------------------
# `serve` from the image
# --------------------------------------------------------------------------------------------------------------


def _readable_by_the_image_user(path: Path) -> None:
    """Mounted read-only for UID 10001: owned by it (we are root), the key staying 0600; else world-readable."""
    for p in [path, *path.rglob("*")]:
        if os.geteuid() == 0:
            os.chown(p, 10001, 10001)
        else:
            p.chmod(0o755 if p.is_dir() else 0o644)


def _tls_dir(where: Path) -> tuple[Path, bytes]:
    ca, ca_key = certs.make_ca("psmdb-backup image-e2e CA", 2)
    cert, key = certs.make_serving_cert(ca, ca_key, ["127.0.0.1", "localhost"], 2)
    certs.write_dir(where, ca, cert, key)
    return where, ca


def _wait_ready(podman: Podman, name: str, port: int, ca_pem: bytes, timeout: float = 30) -> None:
    context = ssl.create_default_context(cadata=ca_pem.decode())
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=2)
            conn.request("GET", "/readyz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        if podman("inspect", "--format", "{{.State.Running}}", name, check=False).stdout.strip() != "true":
            break
        time.sleep(0.2)
    logs = podman("logs", name, check=False)
    raise AssertionError(f"the container never became ready on 127.0.0.1:{port}:\n{logs.stdout}{logs.stderr}")


@pytest.fixture
def container(podman: Podman, image: str) -> Iterator[Any]:
    """Starts `serve` containers by name; removes every one it started."""
    names: list[str] = []

    def start(*args: str, flags: list[str]) -> str:
        name = f"psmdb-image-e2e-{uuid.uuid4().hex[:8]}"
        names.append(name)
        podman(
            "run",
            "-d",
            "--name",
            name,
            "--init",
            "--read-only",
            "--tmpfs",
            "/tmp",
            "--cap-drop=ALL",
            "--security-opt=no-new-privileges",
            *flags,
            image,
            "serve",
            *args,
            timeout=60,
        )
        return name

    yield start
    for name in names:
        podman("rm", "--force", "--time", "2", name, check=False, timeout=60)


def _logs(podman: Podman, name: str) -> list[dict[str, Any]]:
    result = podman("logs", name, check=False)
    entries = []
    for line in (result.stdout + result.stderr).splitlines():
        try:
            entries.append(json.loads(line))
        except ValueError:
            continue
    return entries


def test_serve_on_the_published_default_port(podman: Podman, container, tmp_path: Path) -> None:
    """The image's defaults (listen 0.0.0.0:8443, EXPOSE 8443) behind `-p 127.0.0.1:<port>:8443`, read-only, with
    --no-cluster: an AdmissionReview posted from the host is answered by the container (its log has our uid)."""
    tls, ca = _tls_dir(tmp_path / "tls")
    _readable_by_the_image_user(tls)
    port = devcluster.free_port()
    name = container(
        "--tls-dir", "/tls", "--no-cluster", flags=["-p", f"127.0.0.1:{port}:8443", "-v", f"{tls}:/tls:ro"]
    )
    _wait_ready(podman, name, port, ca)
    uid = str(uuid.uuid4())
    review = {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "psmdb.percona.com", "version": "v1", "kind": "PerconaServerMongoDBBackup"},
            "resource": {"group": "psmdb.percona.com", "version": "v1", "resource": "perconaservermongodbbackups"},
            "namespace": "psmdb",
            "operation": "CREATE",
            "userInfo": {"username": "image-e2e"},
            "object": {
                "apiVersion": "psmdb.percona.com/v1",
                "kind": "PerconaServerMongoDBBackup",
                "metadata": {"name": "no-storage", "namespace": "psmdb"},
                "spec": {"clusterName": "my-cluster"},
            },
        },
    }
    conn = http.client.HTTPSConnection(
        "127.0.0.1", port, timeout=10, context=ssl.create_default_context(cadata=ca.decode())
    )
    conn.request("POST", "/validate", json.dumps(review), {"Content-Type": "application/json"})
    answer = json.loads(conn.getresponse().read())["response"]
    assert answer["uid"] == uid and answer["allowed"] is False, answer
    assert "PSB403" in answer["status"]["message"], answer
    assert any(e.get("uid") == uid and e.get("decision") == "denied" for e in _logs(podman, name))


def _kubeconfig_for_the_container(cluster: Cluster, where: Path) -> Path:
    """The test API server's kubeconfig with its CA inlined (the container cannot see the host's file)."""
    config = json.loads(cluster.cp.kubeconfig.read_text())
    for entry in config["clusters"]:
        ca_file = entry["cluster"].pop("certificate-authority")
        entry["cluster"]["certificate-authority-data"] = base64.b64encode(Path(ca_file).read_bytes()).decode()
    where.mkdir()
    (where / "kubeconfig").write_text(json.dumps(config))
    return where


def _webhook_configs(port: int, ca_pem: bytes, selector: str) -> list[dict[str, Any]]:
    """The project's two configurations under other names, pointed at the container, for one namespace only."""
    docs = []
    for manifest in ("validatingwebhookconfiguration.yaml", "mutatingwebhookconfiguration.yaml"):
        doc = devcluster.rewrite_for_local(
            yaml.safe_load((ROOT / "manifests" / "webhook" / manifest).read_text()), port, ca_pem
        )
        doc["metadata"]["name"] = "psmdb-backup-webhook-image-e2e"
        for hook in doc["webhooks"]:
            hook["name"] = hook["name"].replace("psmdb-backup-webhook.io", HOOK_DOMAIN)
            hook["namespaceSelector"] = {"matchLabels": {SELECTOR_LABEL: selector}}
        docs.append(doc)
    return docs


def _load(path: str, ns: str) -> list[dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all((EXAMPLES / path).read_text()) if d]
    for d in docs:
        d["metadata"]["namespace"] = ns
    return docs


def _backup(ns: str, name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "psmdb.percona.com/v1",
        "kind": "PerconaServerMongoDBBackup",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"clusterName": "my-cluster", **spec},
    }


def _replset_pod(ns: str, name: str) -> dict[str, Any]:
    """Labelled as the operator labels a replica-set member (webhook/sidecar.py identify/wants_sidecar)."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": ns,
            "labels": {
                "app.kubernetes.io/name": "percona-server-mongodb",
                "app.kubernetes.io/instance": "my-cluster",
                "app.kubernetes.io/component": "mongod",
                "app.kubernetes.io/replset": "rs0",
                "app.kubernetes.io/managed-by": "percona-server-mongodb-operator",
                "app.kubernetes.io/part-of": "percona-server-mongodb",
            },
        },
        "spec": {
            "nodeName": "kwok-node-0",
            "containers": [{"name": "mongod", "image": "percona/percona-server-mongodb:8.0.12-4"}],
            "volumes": [{"name": "mongod-data", "emptyDir": {}}],
        },
    }


def test_the_api_server_calls_the_image(cluster: Cluster, podman: Podman, container, tmp_path: Path) -> None:
    """`serve` from the image (read-only, UID 10001, host network, live lookups through a kubeconfig) behind its own
    webhook configurations: a bad Backup is denied with the rule's message and a replica-set pod gets backup-agent,
    both answered by the container (its log) and never by the session's Python server (its log)."""
    mount = tmp_path / "mount"
    tls, ca = _tls_dir(mount / "tls")
    _kubeconfig_for_the_container(cluster, mount / "kube")
    _readable_by_the_image_user(mount)
    port = devcluster.free_port()
    name = container(
        "--tls-dir",
        "/tls",
        "--listen",
        f"127.0.0.1:{port}",
        "--kubeconfig",
        "/kube/kubeconfig",
        "--lookup-timeout",
        "2",
        "--cert-check-interval",
        "1",
        flags=["--network", "host", "-v", f"{tls}:/tls:ro", "-v", f"{mount / 'kube'}:/kube:ro"],
    )
    _wait_ready(podman, name, port, ca)

    selector = uuid.uuid4().hex[:10]
    configs = _webhook_configs(port, ca, selector)
    ns = cluster.namespace({SELECTOR_LABEL: selector, IGNORE_LABEL: "true"})
    try:
        cluster.apply(configs, check=True)
        # until the API server calls the container: a server-side dry-run it must deny (naming another cluster:
        # the server caches lookups, not-found included, for a few seconds)
        probe = _backup(ns, "probe")
        probe["spec"]["clusterName"] = "probe"
        deadline, last = time.monotonic() + 60, None
        while time.monotonic() < deadline:
            last = cluster.apply(probe, "--dry-run=server")
            if f'admission webhook "validate.{HOOK_DOMAIN}" denied the request' in last.stderr:
                break
            time.sleep(0.5)
        else:
            raise AssertionError(
                f"the API server never called the container: {last and last.stderr}\n"
                f"{podman('logs', name, check=False).stderr[-3000:]}"
            )
        assert "PSB403" in last.stderr, last.stderr

        cluster.apply(_load("good/secrets.yaml", ns), check=True)
        cluster.apply(_load("good/cluster.yaml", ns), check=True)  # allowed by the container
        denied = cluster.apply(_backup(ns, "nightly-gcs", storageName="gcs"))
        assert denied.returncode != 0, denied.stdout
        assert f'admission webhook "validate.{HOOK_DOMAIN}" denied the request' in denied.stderr, denied.stderr
        # a live lookup of my-cluster, made by the container through the mounted kubeconfig
        assert 'PSB404 spec.storageName: storage "gcs" is not defined in cluster my-cluster' in denied.stderr
        assert cluster.get("psmdb-backup", "nightly-gcs", ns) is None

        cluster.apply(_replset_pod(ns, "my-cluster-rs0-0"), check=True)
        pod = cluster.get("pod", "my-cluster-rs0-0", ns)
        agent = next((c for c in pod["spec"]["containers"] if c["name"] == "backup-agent"), None)
        assert agent is not None, pod["spec"]["containers"]
        assert agent["image"] == "percona/percona-backup-mongodb:2.15.0"  # the live cluster's spec.backup.image
        env = {e["name"]: e.get("value") for e in agent["env"]}
        assert env["PBM_MONGODB_REPLSET"] == "rs0"

        entries = [e for e in _logs(podman, name) if e.get("namespace") == ns]
        decisions = {(e.get("kind"), e.get("object"), e.get("decision")) for e in entries}
        assert ("PerconaServerMongoDB", "my-cluster", "allowed") in decisions, decisions
        assert ("PerconaServerMongoDBBackup", "nightly-gcs", "denied") in decisions, decisions
        assert ("Pod", "my-cluster-rs0-0", "patched") in decisions, decisions
        assert all(e.get("uid") for e in entries)
        assert not [e for e in cluster.webhook.log_lines() if e.get("namespace") == ns], (
            "the session's own webhook server answered for the image's namespace"
        )
    finally:
        for kind in ("validatingwebhookconfiguration", "mutatingwebhookconfiguration"):
            cluster.kubectl("delete", kind, "psmdb-backup-webhook-image-e2e", "--ignore-not-found", check=False)
        cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)
