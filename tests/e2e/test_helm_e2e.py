"""The Helm chart against a real kube-apiserver (with kube-controller-manager, kube-scheduler and a kwok node):
`helm install` creates every rendered object, Pod Security "restricted" admits every pod, the certificate Job's
command succeeds with the chart's RBAC; `helm upgrade` with a changed value rolls the webhook out and runs a new
certificate Job while keeping the caBundle; `helm uninstall` removes everything but the CRDs.

A control plane of its own (the configuration names clash with other installs). Tests run in file order.
"""

from __future__ import annotations

import base64
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.e2e.test_install_e2e import get_json, kubectl, run_certs, service_account_kubeconfig
from tests.unit.test_helm_chart import CHART, helm_binary
from tools.controlplane import ControlPlane, find_bin_dir

NS = "psmdb-backup-system"
RELEASE = "psmdb-backup-webhook"
NAME = "psmdb-backup-webhook"
TLS_SECRET = "psmdb-backup-webhook-tls"
WEBHOOK_CONFIGS = ("mutatingwebhookconfiguration", "validatingwebhookconfiguration")


@pytest.fixture(scope="module")
def cp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    helm_binary()  # skip (or fail under PSMDB_REQUIRE_E2E=1) before starting anything
    plane = ControlPlane(find_bin_dir(), tmp_path_factory.mktemp("helm"), with_kwok=True, with_controllers=True)
    plane.start()
    try:
        yield plane
    finally:
        plane.stop()


def helm(cp: ControlPlane, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env_dir = cp.work_dir / "helm-home"  # no state in the user's ~/.config/helm or ~/.cache/helm
    env = {"PATH": "/usr/bin:/bin", "HOME": str(env_dir), "HELM_CONFIG_HOME": str(env_dir / "config")}
    env |= {"HELM_CACHE_HOME": str(env_dir / "cache"), "HELM_DATA_HOME": str(env_dir / "data")}
    cmd = [str(helm_binary()), "--kubeconfig", str(cp.kubeconfig), "-n", NS, *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, check=False)
    if check:
        assert proc.returncode == 0, f"helm {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}\n{cp.log_tail(15)}"
    return proc


def release_objects(cp: ControlPlane) -> list[dict]:
    return [d for d in yaml.safe_load_all(helm(cp, "get", "manifest", RELEASE).stdout) if d]


def exists(cp: ControlPlane, doc: dict) -> bool:
    ns = ["-n", doc["metadata"]["namespace"]] if doc["metadata"].get("namespace") else []
    kind = f"{doc['kind'].lower()}.{doc['apiVersion'].rpartition('/')[0] or 'core'}".removesuffix(".core")
    return kubectl(cp, "get", *ns, kind, doc["metadata"]["name"], check=False).returncode == 0


def ca_bundles(cp: ControlPlane) -> list[str]:
    return [get_json(cp, k, NAME)["webhooks"][0]["clientConfig"].get("caBundle", "") for k in WEBHOOK_CONFIGS]


def certs_job(cp: ControlPlane) -> dict:
    jobs = get_json(cp, "-n", NS, "jobs", "-l", "app.kubernetes.io/component=certs")["items"]
    assert len(jobs) == 1, [j["metadata"]["name"] for j in jobs]
    return jobs[0]


@pytest.mark.e2e
def test_install_creates_every_object_and_pods_are_admitted(cp: ControlPlane) -> None:
    kubectl(cp, "create", "namespace", NS)
    levels = [f"pod-security.kubernetes.io/{m}=restricted" for m in ("enforce", "audit", "warn")]
    kubectl(cp, "label", "namespace", NS, *levels)
    installed = helm(cp, "install", RELEASE, str(CHART), "--wait", "--wait-for-jobs", "--timeout", "180s")
    assert "violate PodSecurity" not in installed.stderr, installed.stderr
    docs = release_objects(cp)
    assert len(docs) > 15 and all(exists(cp, d) for d in docs)
    for crd in ("perconaservermongodbs", "perconaservermongodbbackups", "perconaservermongodbrestores"):
        kubectl(cp, "get", "crd", f"{crd}.psmdb.percona.com")
    for deploy in ("psmdb-backup-webhook", "psmdb-backup-controller"):
        status = get_json(cp, "-n", NS, "deployment", deploy)["status"]
        assert status.get("readyReplicas") == 2, (deploy, status)
    assert certs_job(cp)["metadata"]["name"] == "psmdb-backup-webhook-certs-1"
    events = get_json(cp, "-n", NS, "events")["items"]
    assert not [e["message"] for e in events if e["reason"] in ("FailedCreate", "FailedScheduling")]


@pytest.mark.e2e
def test_certificate_command_succeeds_with_the_charts_rbac(cp: ControlPlane, tmp_path: Path) -> None:
    """kwok does not run images: the Job's exact arguments run locally with its ServiceAccount's token."""
    [container] = certs_job(cp)["spec"]["template"]["spec"]["containers"]
    kubeconfig = service_account_kubeconfig(cp, "psmdb-backup-webhook-certs", tmp_path / "kubeconfig")
    done = run_certs(cp, container["args"], tmp_path / "run", kubeconfig)
    assert done.returncode == 0, done.stderr
    ca_pem = base64.b64decode(get_json(cp, "-n", NS, "secret", TLS_SECRET)["data"]["ca.crt"])
    assert [base64.b64decode(b) for b in ca_bundles(cp)] == [ca_pem, ca_pem]


@pytest.mark.e2e
def test_upgrade_with_a_changed_value_rolls_out_and_keeps_the_ca_bundle(cp: ControlPlane) -> None:
    bundles = ca_bundles(cp)
    before = get_json(cp, "-n", NS, "deployment", NAME)["metadata"]["generation"]
    helm(cp, "upgrade", RELEASE, str(CHART), "--reuse-values", "--set", "webhook.enforcement=warn", "--wait")
    deploy = get_json(cp, "-n", NS, "deployment", NAME)
    assert deploy["metadata"]["generation"] == before + 1
    assert deploy["spec"]["template"]["spec"]["containers"][0]["args"][-2:] == ["--enforcement", "warn"]
    kubectl(cp, "-n", NS, "rollout", "status", f"deployment/{NAME}", "--timeout=120s", timeout=150)
    pods = get_json(cp, "-n", NS, "pods", "-l", "app.kubernetes.io/component=webhook")["items"]
    live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
    assert live and all(p["spec"]["containers"][0]["args"][-1] == "warn" for p in live)
    # the certificate Job of revision 1 is gone (no longer in the release), revision 2's replaced it
    assert certs_job(cp)["metadata"]["name"] == "psmdb-backup-webhook-certs-2"
    assert ca_bundles(cp) == bundles  # helm's patch leaves the caBundle the certificate command wrote


@pytest.mark.e2e
def test_uninstall_removes_everything_but_the_crds(cp: ControlPlane) -> None:
    docs = release_objects(cp)
    helm(cp, "uninstall", RELEASE, "--wait", "--timeout", "120s")
    left = [f"{d['kind']}/{d['metadata']['name']}" for d in docs if exists(cp, d)]
    assert left == []
    kubectl(cp, "get", "crd", "perconaservermongodbs.psmdb.percona.com")  # Helm never deletes crds/
