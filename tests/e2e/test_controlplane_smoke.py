"""Smoke tests for tools/controlplane.py: a real kube-apiserver + etcd + kwok + controller-manager + scheduler.

Tests run in file order and share one control plane; the last one stops it.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tools.controlplane import KWOK_NODE_NAME, NODE_LEASE_SECONDS, ControlPlane, find_bin_dir  # noqa: E402

EXEC_ENV_VALUE = "from-kwok-exec-env"
HELLO_SCRIPT = """#!/bin/sh
echo "hello $1 cwd=$(pwd) env=$KWOK_TEST"
"""


@pytest.fixture(scope="module")
def script_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("bin")
    hello = d / "hello"
    hello.write_text(HELLO_SCRIPT)
    hello.chmod(0o755)
    return d


@pytest.fixture(scope="module")
def cp(tmp_path_factory: pytest.TempPathFactory, script_dir: Path) -> Iterator[ControlPlane]:
    plane = ControlPlane(
        find_bin_dir(),
        tmp_path_factory.mktemp("controlplane"),
        extra_path=[script_dir],
        exec_env={"KWOK_TEST": EXEC_ENV_VALUE},
    )
    plane.start()
    print(f"control plane started in {plane.start_seconds:.1f}s at {plane.server}")
    try:
        yield plane
    finally:
        plane.stop()


def _pod(name: str, namespace: str, node_name: str | None = None) -> str:
    spec: dict = {"containers": [{"name": "main", "image": "busybox:1.36", "command": ["sleep", "infinity"]}]}
    if node_name:
        spec["nodeName"] = node_name
    return json.dumps(
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace}, "spec": spec}
    )


def _wait_running(cp: ControlPlane, namespace: str, pod: str) -> dict:
    cp.kubectl(
        "wait",
        "-n",
        namespace,
        f"pod/{pod}",
        "--for=jsonpath={.status.phase}=Running",
        "--timeout=60s",
        timeout=90,
    )
    return json.loads(cp.kubectl("get", "-n", namespace, f"pod/{pod}", "-o", "json").stdout)


@pytest.mark.e2e
def test_server_version(cp: ControlPlane) -> None:
    versions = json.loads(cp.kubectl("version", "-o", "json").stdout)
    assert versions["serverVersion"]["gitVersion"] == "v1.34.3"
    assert versions["clientVersion"]["gitVersion"] == "v1.34.3"


@pytest.mark.e2e
def test_namespace_can_be_created(cp: ControlPlane) -> None:
    cp.kubectl("create", "namespace", "smoke-ns")
    phase = cp.kubectl("get", "namespace", "smoke-ns", "-o", "jsonpath={.status.phase}").stdout
    assert phase == "Active"


@pytest.mark.e2e
def test_kwok_node_ready(cp: ControlPlane) -> None:
    cp.wait_ready_node()
    node = json.loads(cp.kubectl("get", "node", KWOK_NODE_NAME, "-o", "json").stdout)
    ready = {c["type"]: c["status"] for c in node["status"]["conditions"]}["Ready"]
    assert ready == "True"
    assert {"type": "InternalIP", "address": "127.0.0.1"} in node["status"]["addresses"]


@pytest.mark.e2e
def test_kwok_renews_the_node_lease(cp: ControlPlane) -> None:
    """Without a renewed Lease, nodelifecycle marks the node Unknown after its 50 s grace period and every pod on it
    Ready=False for good (kwok never re-readies a pod): later rollouts and readiness waits then time out."""

    def lease() -> dict:
        return json.loads(cp.kubectl("-n", "kube-node-lease", "get", "lease", KWOK_NODE_NAME, "-o", "json").stdout)

    first = lease()
    assert first["spec"]["leaseDurationSeconds"] == NODE_LEASE_SECONDS
    deadline = time.monotonic() + NODE_LEASE_SECONDS / 2  # renewed every quarter of the duration
    while lease()["spec"]["renewTime"] == first["spec"]["renewTime"]:
        assert time.monotonic() < deadline, f"node Lease not renewed since {first['spec']['renewTime']}"
        time.sleep(1)


@pytest.mark.e2e
def test_pod_with_node_name_runs(cp: ControlPlane) -> None:
    ns = cp.create_namespace("smoke-direct")
    cp.kubectl("apply", "-f", "-", input=_pod("direct", ns, node_name=KWOK_NODE_NAME))
    assert _wait_running(cp, ns, "direct")["spec"]["nodeName"] == KWOK_NODE_NAME


@pytest.mark.e2e
def test_pod_is_scheduled_and_runs(cp: ControlPlane) -> None:
    ns = cp.create_namespace("smoke-sched")
    cp.kubectl("apply", "-f", "-", input=_pod("scheduled", ns))
    assert _wait_running(cp, ns, "scheduled")["spec"]["nodeName"] == KWOK_NODE_NAME


@pytest.mark.e2e
def test_exec_runs_a_local_process(cp: ControlPlane, script_dir: Path) -> None:
    ns = cp.create_namespace("smoke-exec")
    cp.kubectl("apply", "-f", "-", input=_pod("exec", ns, node_name=KWOK_NODE_NAME))
    _wait_running(cp, ns, "exec")

    out = cp.kubectl("exec", "-n", ns, "exec", "--", "sh", "-c", "echo $KWOK_TEST").stdout
    assert out.strip() == EXEC_ENV_VALUE

    # `hello` exists only in script_dir, which is on kwok's PATH via extra_path.
    out = cp.kubectl("exec", "-n", ns, "exec", "--", "hello", "world").stdout
    assert out.strip() == f"hello world cwd={cp.exec_dir} env={EXEC_ENV_VALUE}"

    # kwok does not forward the exit code like a kubelet (Status reason NonZeroExitCode): the apiserver reports an
    # InternalError naming it, and kubectl exits 1. Output written before the failure still arrives.
    failed = cp.kubectl("exec", "-n", ns, "exec", "--", "sh", "-c", "echo out; echo err >&2; exit 3", check=False)
    assert failed.returncode != 0
    assert failed.stdout == "out\n"
    assert "err\n" in failed.stderr
    assert "exit status 3" in failed.stderr


@pytest.mark.e2e
def test_statefulset_gets_a_running_pod(cp: ControlPlane) -> None:
    ns = cp.create_namespace("smoke-sts")
    sts = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "web", "namespace": ns},
        "spec": {
            "replicas": 1,
            "serviceName": "web",
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "main", "image": "busybox:1.36"}]},
            },
        },
    }
    cp.kubectl("apply", "-f", "-", input=json.dumps(sts))
    cp.kubectl("rollout", "status", "-n", ns, "statefulset/web", "--timeout=60s", timeout=90)
    assert _wait_running(cp, ns, "web-0")["spec"]["nodeName"] == KWOK_NODE_NAME


def _processes_mentioning(text: str) -> list[int]:
    """PIDs of live processes whose command line contains `text`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(int(entry.name))
    return found


@pytest.mark.e2e
def test_stop_leaves_no_process(cp: ControlPlane) -> None:
    # Must stay the last test: it stops the shared control plane (the fixture's stop() is then a no-op).
    pids = cp.pids
    assert set(pids) == {"etcd", "kube-apiserver", "kwok", "kube-controller-manager", "kube-scheduler"}
    cp.stop()
    cp.stop()  # idempotent
    assert cp.pids == {}
    for name, pid in pids.items():
        assert not Path(f"/proc/{pid}").exists(), f"{name} (pid {pid}) still exists"
    assert _processes_mentioning(str(cp.work_dir)) == []
