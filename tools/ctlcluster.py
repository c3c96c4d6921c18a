"""A local cluster for the backup controller's end-to-end tests, its benchmark and the demo's scheduled backup:
etcd + kube-apiserver + kwok (+ controller-manager and scheduler), the CRDs, moto S3 and (optionally) Azurite on
127.0.0.1, database pods whose `backup-agent` exec runs the PBM simulator (tools/pbm_sim), the operator stand-in
(tools/operator_standin, playing the stock Percona operator) and any number of `psmdb-backup controller` (companion)
processes.

kwok passes no pod identity to exec'd commands, so every database pod gets its own kwok `Exec` naming its cluster;
those are kwok configuration, fixed at start: `start(clusters=[...])` lists the clusters whose pods can run PBM.
"""

from __future__ import annotations

import builtins  # `list` is also a method of CtlCluster
import json
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tools.controlplane import ControlPlane, find_bin_dir  # noqa: E402
from tools.devcluster import INSTALL_NAMESPACE, free_port, install_rbac  # noqa: E402
from tools.pbm_sim import SIM_DIR, kwok_exec_docs  # noqa: E402
from tools.storage_servers import AZURITE_ACCOUNT, AZURITE_KEY, Azurite, Moto, start_azurite, start_moto  # noqa: E402

MANIFESTS = ROOT / "manifests"
S3_SECRET = "s3-credentials"
AZURE_SECRET = "azure-credentials"


@dataclass
class ControllerProcess:
    """`psmdb-backup controller` against the local API server; killable and restartable."""

    name: str
    kubeconfig: Path
    log_file: Path
    args: list[str]
    metrics_port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "webhook.cli",
            "controller",
            "--kubeconfig",
            str(self.kubeconfig),
            "--identity",
            self.name,
            "--metrics-listen",
            f"127.0.0.1:{self.metrics_port}",
            *self.args,
        ]

    def started(self) -> bool:
        try:
            self.http("/healthz")
            return True
        except OSError:
            return False

    def start(self) -> ControllerProcess:
        with open(self.log_file, "ab") as log:
            self.proc = subprocess.Popen(self.command(), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120  # a stand-in over 1,000 clusters (bench) needs a while
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")
            if self.started():
                return self
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} did not start:\n{self.log_tail()}")

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise RuntimeError(f"controller {self.name} is not running")
        return self.proc.pid

    def http(self, path: str) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}{path}", timeout=5) as r:
            return r.read().decode()

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no clean-up, no lease release (a crash)."""
        if self.running():
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        if self.running():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def log_lines(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log_file.read_text(errors="replace").splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out

    def log_tail(self, lines: int = 60) -> str:
        if not self.log_file.exists():
            return ""
        return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class StandinProcess(ControllerProcess):
    """The operator stand-in (`python -m tools.operator_standin`), with the admin kubeconfig as the operator has its
    own wide RBAC; started once its caches are filled and it acts."""

    def command(self) -> list[str]:
        return [sys.executable, "-m", "tools.operator_standin", "--kubeconfig", str(self.kubeconfig), *self.args]

    def started(self) -> bool:
        return any(line.get("msg", "").startswith("acting") for line in self.log_lines())

    def http(self, path: str) -> str:
        raise RuntimeError("the operator stand-in serves no HTTP")


@dataclass
class CtlCluster:
    cp: ControlPlane
    work: Path
    namespace: str
    moto: Moto
    azurite: Azurite | None
    sim_state: Path
    bucket: str
    container: str
    controllers: list[ControllerProcess] = field(default_factory=list)
    standins: list[StandinProcess] = field(default_factory=list)
    sa_kubeconfig: Path | None = None

    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
        return self.cp.kubectl(*args, input=input, check=check)

    def apply(self, manifest: dict | list, check: bool = True) -> subprocess.CompletedProcess:
        docs = yaml.safe_dump_all(manifest if isinstance(manifest, list) else [manifest])
        return self.kubectl("apply", "-f", "-", input=docs, check=check)

    def get(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        r = self.kubectl("get", kind, name, "-n", namespace or self.namespace, "-o", "json", check=False)
        return json.loads(r.stdout) if r.returncode == 0 else None

    def list(self, kind: str, selector: str = "", namespace: str | None = None) -> list[dict[str, Any]]:
        args = ["get", kind, "-n", namespace or self.namespace, "-o", "json"] + (["-l", selector] if selector else [])
        return json.loads(self.kubectl(*args).stdout)["items"]

    def wait(self, what: str, predicate: Callable[[], Any], timeout: float = 60.0, interval: float = 0.5) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                logs = "\n".join(f"--- {c.name}\n{c.log_tail(30)}" for c in [*self.standins, *self.controllers])
                raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{logs}")
            time.sleep(interval)

    def wait_state(self, kind: str, name: str, states: Iterable[str], timeout: float = 60.0) -> dict[str, Any]:
        wanted = set(states)

        def reached() -> dict[str, Any] | None:
            obj = self.get(kind, name)
            return obj if obj and (obj.get("status") or {}).get("state") in wanted else None

        return self.wait(f"{kind} {name} in {sorted(wanted)}", reached, timeout)

    def controller(self, name: str, *args: str, extra_rbac: Iterable[Path] = ()) -> ControllerProcess:
        """A controller with the credentials of the install's controller ServiceAccount (least privilege, proven),
        plus the rules of `extra_rbac` (e.g. manifests/components/pbm-reads/rbac.yaml for --pbm-reads)."""
        if self.sa_kubeconfig is None:
            self.sa_kubeconfig = self.cp.service_account_kubeconfig(
                install_rbac(MANIFESTS / "base" / "controller.yaml"), INSTALL_NAMESPACE, "psmdb-backup-controller"
            )
        for path in extra_rbac:
            self.apply(install_rbac(path))
        c = ControllerProcess(
            name,
            self.sa_kubeconfig,
            self.work / f"controller-{name}.log",
            ["--lease-namespace", self.namespace, "--namespace", self.namespace, *args],
        )
        self.controllers.append(c)
        return c.start()

    def standin(self, *args: str) -> StandinProcess:
        """The operator stand-in for this namespace (a second call after `kill()`/`stop()` restarts it)."""
        n = len(self.standins)
        s = StandinProcess(
            f"operator-standin-{n}",
            self.cp.kubeconfig,
            self.work / f"standin-{n}.log",
            ["--namespace", self.namespace, *args],
        )
        self.standins.append(s)
        s.start()
        return s

    def sim_calls(self, cluster: str) -> builtins.list[dict[str, Any]]:
        path = self.sim_state / self.namespace / cluster / "calls.log"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def storages(self, cluster: str) -> dict[str, Any]:
        """An S3 (moto, main) storage and, with Azurite, an Azure storage; each cluster under its own prefix."""
        out: dict[str, Any] = {
            "s3": {
                "type": "s3",
                "main": True,
                "s3": {
                    "bucket": self.bucket,
                    "prefix": cluster,
                    "region": "us-east-1",
                    "endpointUrl": self.moto.endpoint,
                    "credentialsSecret": S3_SECRET,
                },
            }
        }
        if self.azurite is not None:
            out["azure"] = {
                "type": "azure",
                "azure": {
                    "container": self.container,
                    "prefix": cluster,
                    "endpointUrl": self.azurite.endpoint,
                    "credentialsSecret": AZURE_SECRET,
                },
            }
        return out

    def cluster_manifest(
        self,
        name: str,
        *,
        tasks: builtins.list[dict[str, Any]] | None = None,
        pitr: bool = False,
        labels: dict[str, str] | None = None,
        **backup: Any,
    ) -> dict[str, Any]:
        return {
            "apiVersion": "psmdb.percona.com/v1",
            "kind": "PerconaServerMongoDB",
            "metadata": {"name": name, "namespace": self.namespace, "labels": labels or {}},
            "spec": {
                "crVersion": "1.21.0",
                "image": "percona/percona-server-mongodb:7.0.18-11",
                "replsets": [{"name": "rs0", "size": 3}],
                "backup": {
                    "enabled": True,
                    "image": "percona/percona-backup-mongodb:2.9.1",
                    "storages": self.storages(name),
                    "tasks": tasks or [],
                    "pitr": {"enabled": pitr},
                    **backup,
                },
            },
        }

    def add_cluster(self, name: str, **kw: Any) -> dict[str, Any]:
        """The cluster object, marked ready as the operator would, and its first database pod."""
        self.apply(self.cluster_manifest(name, **kw))
        self.kubectl(
            "patch",
            "psmdb",
            name,
            "-n",
            self.namespace,
            "--subresource=status",
            "--type=merge",
            "-p",
            json.dumps({"status": {"state": "ready", "replsets": {"rs0": {"ready": 3, "size": 3, "status": "ready"}}}}),
        )
        self.apply(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": f"{name}-rs0-0",
                    "namespace": self.namespace,
                    "labels": {"app.kubernetes.io/instance": name, "app.kubernetes.io/component": "mongod"},
                },
                "spec": {
                    "containers": [
                        {"name": "mongod", "image": "percona/percona-server-mongodb:7.0.18-11"},
                        {"name": "backup-agent", "image": "percona/percona-backup-mongodb:2.9.1"},
                    ],
                    "nodeName": "kwok-node-0",
                    "tolerations": [{"key": "kwok.x-k8s.io/node", "operator": "Exists", "effect": "NoSchedule"}],
                },
            }
        )
        self.wait(
            f"pod {name}-rs0-0 running",
            lambda: (self.get("pod", f"{name}-rs0-0") or {}).get("status", {}).get("phase") == "Running",
        )
        return self.get("psmdb", name) or {}

    def s3_keys(self, prefix: str) -> builtins.list[str]:
        client = self.moto.client()
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))

    def azure_keys(self, prefix: str) -> builtins.list[str]:
        assert self.azurite is not None
        cc = self.azurite.service().get_container_client(self.container)
        return sorted(b.name for b in cc.list_blobs(name_starts_with=prefix))


def start(
    work: Path,
    clusters: Iterable[str],
    *,
    namespace: str = "ctl",
    azurite: bool = True,
    sim_env: dict[str, str] | None = None,
    with_controllers: bool = True,
    cluster_sim_env: dict[str, dict[str, str]] | None = None,
) -> CtlCluster:
    """Everything up; the caller stops it with `stop()` (also on failure inside this function).
    `cluster_sim_env`: PBM simulator settings of one cluster's pods (e.g. slower backups), over `sim_env`."""
    work.mkdir(parents=True, exist_ok=True)
    state = work / "pbm-state"
    exec_dir = work / "exec"
    exec_dir.mkdir(exist_ok=True)
    env = {
        "PSMDB_PBM_SIM_PYTHON": sys.executable,
        "AWS_EC2_METADATA_DISABLED": "true",
        "PBM_SIM_BACKUP_SECONDS": "2",
        "PBM_SIM_RESTORE_SECONDS": "2",
        **(sim_env or {}),
    }
    docs = [
        doc
        for c in clusters
        for doc in kwok_exec_docs(
            [(namespace, f"{c}-rs0-0", c)],
            state_root=state,
            work_dir=exec_dir,
            extra_env={**env, **(cluster_sim_env or {}).get(c, {})},
        )
    ]
    moto = start_moto()
    az = None
    cp = ControlPlane(
        find_bin_dir(),
        work / "cp",
        with_kwok=True,
        with_controllers=with_controllers,
        extra_path=[SIM_DIR],
        exec_env=env,
        kwok_extra_docs=docs,
    )
    try:
        if azurite:
            (work / "azurite").mkdir(exist_ok=True)
            az = start_azurite(work / "azurite")
            az.service().create_container("psmdb-backups")
        moto.client().create_bucket(Bucket="psmdb-backups")
        cp.start()
        cp.kubectl("apply", "-f", str(MANIFESTS / "crds"))
        cp.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd", "--all")
        cp.create_namespace(namespace)
        ctl = CtlCluster(cp, work, namespace, moto, az, state, "psmdb-backups", "psmdb-backups")
        secrets = [
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": S3_SECRET, "namespace": namespace},
                "stringData": {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"},
            },
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": AZURE_SECRET, "namespace": namespace},
                "stringData": {"AZURE_STORAGE_ACCOUNT_NAME": AZURITE_ACCOUNT, "AZURE_STORAGE_ACCOUNT_KEY": AZURITE_KEY},
            },
        ]
        ctl.apply(secrets)
        return ctl
    except BaseException:
        print(cp.log_tail(), file=sys.stderr)
        cp.stop()
        if az:
            az.stop()
        moto.stop()
        raise


def stop(ctl: CtlCluster) -> None:
    for c in [*ctl.controllers, *ctl.standins]:
        c.stop()
    ctl.cp.stop()
    if ctl.azurite:
        ctl.azurite.stop()
    ctl.moto.stop()
