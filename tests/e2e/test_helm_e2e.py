"""The Helm chart against a real kube-apiserver (with kube-controller-manager, kube-scheduler and a kwok node):
`helm install` creates every rendered object, Pod Security "restricted" admits every pod, the certificate Job's
command succeeds with the chart's RBAC; `helm upgrade` with a changed value rolls the webhook out and runs a new
certificate Job while keeping the caBundle; `helm uninstall` removes everything but the CRDs. The `helm test` hook is
checked without `helm test` (kwok runs no containers; see its test).

A control plane of its own (the configuration names clash with other installs). Tests run in file order.
"""

from __future__ import annotations

import base64
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.e2e.test_install_e2e import get_json, kubectl, run_certs, service_account_kubeconfig
from tests.unit.test_helm_chart import CHART, helm_binary
from tools.controlplane import ControlPlane, find_bin_dir
from tools.devcluster import WebhookProcess
from webhook.cli import build_parser
from webhook.probe import probe

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
    kubectl(cp, "get", "crd", "perconaservermongodbbackupschedules.psmdb-backup-webhook.io")
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
def test_helm_test_pod_is_admitted_and_its_probe_passes_against_the_charts_certificate(
    cp: ControlPlane, tmp_path: Path
) -> None:
    """`helm test` itself is not run: kwok does not run containers, so the hook Pod would be "Running" and never
    Succeeded (or Failed) and helm would time out, whatever the webhook does. What it would check is checked piece by
    piece: the release holds the hook, Pod Security "restricted" admits the Pod in the release namespace, and the Pod's
    exact probe arguments pass against `psmdb-backup serve` serving the TLS Secret the chart's certificate command
    wrote (the connection goes to 127.0.0.1; the certificate is verified for the Service name in the URL)."""
    hooks = [d for d in yaml.safe_load_all(helm(cp, "get", "hooks", RELEASE).stdout) if d]
    [pod] = [d for d in hooks if d["metadata"].get("annotations", {}).get("helm.sh/hook") == "test"]
    dry = cp.kubectl("create", "--dry-run=server", "-f", "-", input=yaml.safe_dump(pod), check=False)
    assert dry.returncode == 0 and "violate PodSecurity" not in dry.stderr, dry.stderr
    secret = get_json(cp, "-n", NS, "secret", TLS_SECRET)["data"]
    tls = tmp_path / "tls"
    tls.mkdir()
    for key in ("tls.crt", "tls.key", "ca.crt"):
        (tls / key).write_bytes(base64.b64decode(secret[key]))
    server = WebhookProcess(tls, cp.kubeconfig, tmp_path / "serve.log", extra_args=["--report-api", "none"])
    server.start()
    try:
        args = build_parser().parse_args(pod["spec"]["containers"][0]["args"])
        assert args.url == f"https://{NAME}.{NS}.svc:443/readyz"
        deadline = time.monotonic() + 30
        while not (result := probe(args.url, str(tls / "ca.crt"), args.timeout, connect=("127.0.0.1", server.port))).ok:
            assert time.monotonic() < deadline, result.message  # /readyz is 503 for a moment after the port opens
            time.sleep(0.2)
        assert "HTTP 200" in result.message
    finally:
        server.stop()


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
