"""`kubectl apply -k manifests/` against a real kube-apiserver, with kube-controller-manager, kube-scheduler and a kwok
node (which "runs" any image): the install is accepted, Pod Security "restricted" admits every pod, the RBAC is enough
(and no more) for what the webhook and the certificate Job really do, a second apply changes nothing, uninstalling
keeps the CRDs, and the cert-manager overlay applies too.

A control plane of its own (not the session `cluster`, which already runs a webhook registered under the same
configuration names). Tests run in file order and share it.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.unit.test_install_manifests import (  # noqa: E402
    NETWORK_POLICY,
    api_server_cidr_patch,
    write_overlay,
    write_secrets_per_namespace,
)
from tools.controlplane import KWOK_NODE_NAME, ControlPlane, KubectlError, find_bin_dir  # noqa: E402
from webhook import certs  # noqa: E402
from webhook.kube import resource_path  # noqa: E402

MANIFESTS = ROOT / "manifests"
BASE = MANIFESTS / "base"
CERT_MANAGER = MANIFESTS / "overlays" / "cert-manager"
CERT_MANAGER_CRDS = ROOT / "tests" / "data" / "cert-manager-crds.yaml"
NS = "psmdb-backup-system"
NAME = "psmdb-backup-webhook"
TLS_SECRET = "psmdb-backup-webhook-tls"
CERTS_JOB = "psmdb-backup-webhook-certs"
ROTATION = "psmdb-backup-webhook-cert-rotation"
WEBHOOK_USER = f"system:serviceaccount:{NS}:psmdb-backup-webhook"
CERTS_USER = f"system:serviceaccount:{NS}:psmdb-backup-webhook-certs"
WEBHOOK_PODS = "app.kubernetes.io/name=psmdb-backup-webhook,app.kubernetes.io/component=webhook"
NOT_FOUND = f'namespaces "{NS}" not found'
# kubectl's client-side apply always sends a PodDisruptionBudget's spec.selector (its patch strategy is "replace"),
# so it prints "configured" for a PDB that did not change (also seen by others: Azure/eno#246). That it really did not
# change is checked with resourceVersions.
ALWAYS_PATCHED = {f"poddisruptionbudget.policy/{NAME}"}


@pytest.fixture(scope="module")
def cp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    plane = ControlPlane(find_bin_dir(), tmp_path_factory.mktemp("install"), with_kwok=True, with_controllers=True)
    plane.start()
    try:
        yield plane
    finally:
        plane.stop()


def kubectl(
    cp: ControlPlane, *args: str, check: bool = True, timeout: float = 120, input: str | None = None
) -> subprocess.CompletedProcess:
    try:
        return cp.kubectl(*args, check=check, timeout=timeout, input=input)
    except KubectlError as e:
        raise AssertionError(f"{e}\n--- control plane logs ---\n{cp.log_tail(15)}") from None


def render(cp: ControlPlane, path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(kubectl(cp, "kustomize", str(path)).stdout) if d]


def ref(doc: dict[str, Any]) -> str:
    """How kubectl apply names an object: `deployment.apps/name`, `namespace/name`."""
    group = doc["apiVersion"].rpartition("/")[0]
    return f"{doc['kind'].lower()}{'.' + group if group else ''}/{doc['metadata']['name']}"


def outcomes(stdout: str) -> dict[str, str]:
    """`kubectl apply` output lines -> {object: "created" | "unchanged" | "configured" (+ " (server dry run)")}."""
    out = {}
    for line in stdout.splitlines():
        obj, _, what = line.partition(" ")
        out[obj] = what
    return out


def get_json(cp: ControlPlane, *args: str) -> dict[str, Any]:
    return json.loads(kubectl(cp, "get", *args, "-o", "json").stdout)


def resource_versions(cp: ControlPlane, path: Path) -> dict[str, str]:
    items = get_json(cp, "-k", str(path))["items"]
    return {f"{i['kind']}/{i['metadata']['name']}": i["metadata"]["resourceVersion"] for i in items}


def assert_second_apply_changes_nothing(cp: ControlPlane, path: Path) -> None:
    dry = kubectl(cp, "apply", "-k", str(path), "--dry-run=server")
    assert set(outcomes(dry.stdout).values()) <= {"unchanged (server dry run)", "configured (server dry run)"}
    before = resource_versions(cp, path)
    second = kubectl(cp, "apply", "-k", str(path))
    result = outcomes(second.stdout)
    assert len(result) == len(before)
    changed = {obj: what for obj, what in result.items() if what != "unchanged"}
    assert set(changed) <= ALWAYS_PATCHED and set(changed.values()) <= {"configured"}, changed
    assert resource_versions(cp, path) == before  # nothing at all was written
    assert "Warning" not in second.stderr, second.stderr


def wait_webhook_pods_running(cp: ControlPlane) -> list[dict[str, Any]]:
    kubectl(cp, "-n", NS, "rollout", "status", f"deployment/{NAME}", "--timeout=120s", timeout=150)
    pods = get_json(cp, "-n", NS, "pods", "-l", WEBHOOK_PODS)["items"]
    running = [p for p in pods if p["status"]["phase"] == "Running" and not p["metadata"].get("deletionTimestamp")]
    assert len(running) == 2, [(p["metadata"]["name"], p["status"]["phase"]) for p in pods]
    for pod in running:
        assert pod["spec"]["nodeName"] == KWOK_NODE_NAME
        assert {c["type"]: c["status"] for c in pod["status"]["conditions"]}["Ready"] == "True"
    return running


def run_certs(
    cp: ControlPlane, job_args: list[str], directory: Path, kubeconfig: Path, *extra: str
) -> subprocess.CompletedProcess:
    """The certificate Job's exact arguments, run locally (kwok does not run images) with its ServiceAccount's token;
    only --dir is pointed at a local directory."""
    args = list(job_args)
    args[args.index("--dir") + 1] = str(directory)
    cmd = [sys.executable, "-m", "webhook.cli", *args, "--kubeconfig", str(kubeconfig), *extra]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60)


def service_account_kubeconfig(cp: ControlPlane, name: str, path: Path) -> Path:
    token = kubectl(cp, "-n", NS, "create", "token", name, "--duration=1h").stdout.strip()
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {"name": "local", "cluster": {"server": cp.server, "certificate-authority": str(cp.ca_file)}}
                ],
                "users": [{"name": name, "user": {"token": token}}],
                "contexts": [{"name": "local", "context": {"cluster": "local", "user": name}}],
                "current-context": "local",
            }
        )
    )
    return path


# ---------------------------------------------------------------------------------------------------------------
# manifests/ (base + CRDs)
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.e2e
def test_server_dry_run_on_an_empty_cluster(cp: ControlPlane) -> None:
    """Every cluster-scoped object (CRDs, RBAC, webhook configurations) passes the API server's validation and
    admission; namespaced ones can only be tried once the namespace exists (a dry run creates nothing)."""
    docs = render(cp, MANIFESTS)
    dry = kubectl(cp, "apply", "-k", str(MANIFESTS), "--dry-run=server", check=False)
    namespaced = [d for d in docs if d["metadata"].get("namespace")]
    cluster_scoped = [d for d in docs if not d["metadata"].get("namespace")]
    assert outcomes(dry.stdout) == {ref(d): "created (server dry run)" for d in cluster_scoped}
    errors = dry.stderr.strip().splitlines()
    assert len(errors) == len(namespaced) and all(NOT_FOUND in e for e in errors), dry.stderr
    assert kubectl(cp, "get", "namespace", NS, check=False).returncode != 0  # nothing was created


@pytest.mark.e2e
def test_apply_creates_everything_without_warnings(cp: ControlPlane) -> None:
    docs = render(cp, MANIFESTS)
    started = time.monotonic()
    applied = kubectl(cp, "apply", "-k", str(MANIFESTS))
    assert outcomes(applied.stdout) == {ref(d): "created" for d in docs}
    assert applied.stderr == ""  # in particular no "would violate PodSecurity" warning
    assert time.monotonic() - started < 30
    # and a full server dry run now passes too
    dry = kubectl(cp, "apply", "-k", str(MANIFESTS), "--dry-run=server")
    assert len(outcomes(dry.stdout)) == len(docs)


@pytest.mark.e2e
def test_namespace_enforces_pod_security_restricted(cp: ControlPlane) -> None:
    labels = get_json(cp, "namespace", NS)["metadata"]["labels"]
    for mode in ("enforce", "audit", "warn"):
        assert labels[f"pod-security.kubernetes.io/{mode}"] == "restricted"
    # enforcement is live: a pod that is not restricted is refused in this namespace
    bad = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "not-restricted", "namespace": NS},
        "spec": {"containers": [{"name": "c", "image": "busybox", "securityContext": {"privileged": True}}]},
    }
    refused = cp.kubectl("apply", "--dry-run=server", "-f", "-", input=json.dumps(bad), check=False)
    assert refused.returncode != 0 and 'violates PodSecurity "restricted:latest"' in refused.stderr, refused.stderr


@pytest.mark.e2e
def test_webhook_pods_are_admitted_and_run(cp: ControlPlane) -> None:
    pods = wait_webhook_pods_running(cp)
    for pod in pods:
        [c] = pod["spec"]["containers"]
        assert c["securityContext"]["readOnlyRootFilesystem"] is True
        assert pod["spec"]["serviceAccountName"] == "psmdb-backup-webhook"
        assert any(v["name"].startswith("kube-api-access-") for v in pod["spec"]["volumes"])  # token mounted
    events = get_json(cp, "-n", NS, "events")["items"]
    assert not [e["message"] for e in events if e["reason"] in ("FailedCreate", "FailedScheduling")]
    pdb = get_json(cp, "-n", NS, "pdb", NAME)
    assert pdb["status"]["expectedPods"] == 2 and pdb["status"]["disruptionsAllowed"] == 1


@pytest.mark.e2e
def test_certificate_job_and_rotation_cronjob_pods_are_admitted(cp: ControlPlane) -> None:
    kubectl(cp, "-n", NS, "wait", f"job/{CERTS_JOB}", "--for=condition=Complete", "--timeout=60s", timeout=90)
    kubectl(cp, "-n", NS, "create", "job", "rotation-now", f"--from=cronjob/{ROTATION}")
    try:
        kubectl(cp, "-n", NS, "wait", "job/rotation-now", "--for=condition=Complete", "--timeout=60s", timeout=90)
        pods = get_json(cp, "-n", NS, "pods", "-l", "batch.kubernetes.io/job-name=rotation-now")["items"]
        assert len(pods) == 1 and pods[0]["spec"]["serviceAccountName"] == "psmdb-backup-webhook-certs"
    finally:
        kubectl(cp, "-n", NS, "delete", "job", "rotation-now", "--cascade=foreground", "--wait=true")


@pytest.mark.e2e
@pytest.mark.parametrize(
    "kind",
    [
        "PerconaServerMongoDB",
        "PerconaServerMongoDBBackup",
        "PerconaServerMongoDBRestore",
        "Secret",
        "ConfigMap",
        "Namespace",
        "VolumeSnapshotClass",
    ],
)
def test_webhook_service_account_can_read_every_object_the_webhook_looks_up(cp: ControlPlane, kind: str) -> None:
    """The exact GETs of webhook/kube.py, made as the webhook's ServiceAccount: 404 (allowed), never 403."""
    path = resource_path(kind, "default", "does-not-exist")
    answer = kubectl(cp, "get", "--raw", path, f"--as={WEBHOOK_USER}", check=False)
    assert answer.returncode != 0 and "NotFound" in answer.stderr, (path, answer.stderr)


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("verb", "resource", "allowed"),
    [
        ("get", "secrets", True),
        ("list", "secrets", False),
        ("watch", "secrets", False),
        ("create", "secrets", False),
        ("get", "perconaservermongodbs.psmdb.percona.com", True),
        ("list", "perconaservermongodbs.psmdb.percona.com", True),  # the policy reports' background scan
        ("watch", "perconaservermongodbs.psmdb.percona.com", False),
        ("update", "perconaservermongodbs.psmdb.percona.com", False),
        ("get", "pods", False),
        ("patch", "validatingwebhookconfigurations", False),
    ],
)
def test_webhook_service_account_has_nothing_more(cp: ControlPlane, verb: str, resource: str, allowed: bool) -> None:
    answer = kubectl(cp, "auth", "can-i", verb, resource, "-A", f"--as={WEBHOOK_USER}", check=False)
    assert answer.stdout.strip() == ("yes" if allowed else "no"), answer.stdout + answer.stderr


@pytest.mark.e2e
def test_secrets_per_namespace_limits_the_webhook_to_the_listed_namespaces(cp: ControlPlane, tmp_path: Path) -> None:
    """manifests/components/secrets-per-namespace applied over the install: the webhook's account reads Secrets in
    the listed namespace only (the exact GET of webhook/kube.py, and `can-i`); the other lookups are untouched. The
    plain install is applied again afterwards, which brings the cluster-wide rule back."""
    listed, other = "psmdb-listed", "psmdb-other"
    for ns in (listed, other):
        kubectl(cp, "create", "namespace", ns)
    applied = kubectl(cp, "apply", "-k", str(write_secrets_per_namespace(tmp_path, [listed])))
    assert outcomes(applied.stdout)[f"clusterrole.rbac.authorization.k8s.io/{NAME}"] == "configured"
    assert applied.stderr == ""
    try:
        for ns, allowed in ((listed, True), (other, False), ("default", False)):
            can = kubectl(cp, "auth", "can-i", "get", "secrets", "-n", ns, f"--as={WEBHOOK_USER}", check=False)
            assert can.stdout.strip() == ("yes" if allowed else "no"), (ns, can.stdout + can.stderr)
            answer = kubectl(cp, "get", "--raw", resource_path("Secret", ns, "x"), f"--as={WEBHOOK_USER}", check=False)
            assert ("NotFound" if allowed else "Forbidden") in answer.stderr, (ns, answer.stderr)
        for kind in ("PerconaServerMongoDB", "ConfigMap", "Namespace"):
            answer = kubectl(cp, "get", "--raw", resource_path(kind, other, "x"), f"--as={WEBHOOK_USER}", check=False)
            assert "NotFound" in answer.stderr, (kind, answer.stderr)
        for verb in ("list", "watch"):
            assert (
                kubectl(
                    cp, "auth", "can-i", verb, "secrets", "-n", listed, f"--as={WEBHOOK_USER}", check=False
                ).stdout.strip()
                == "no"
            )
    finally:
        kubectl(cp, "apply", "-k", str(MANIFESTS))
        kubectl(cp, "delete", "namespace", listed, other, "--wait=false")
    can = kubectl(cp, "auth", "can-i", "get", "secrets", "-n", other, f"--as={WEBHOOK_USER}", check=False)
    assert can.stdout.strip() == "yes"


@pytest.mark.e2e
def test_network_policy_component_is_refused_until_the_api_server_range_is_given(
    cp: ControlPlane, tmp_path: Path
) -> None:
    """The placeholder CIDR is invalid to the API server (so a forgotten patch leaves the webhook reachable); the
    documented patch makes both policies valid. Server-side dry runs: the kwok node enforces no policy anyway."""
    for d in ("bare", "patched"):
        (tmp_path / d).mkdir()
    bare = [
        d
        for d in render(cp, write_overlay(tmp_path / "bare", [BASE], [NETWORK_POLICY]))
        if d["kind"] == "NetworkPolicy"
    ]
    refused = kubectl(cp, "apply", "--dry-run=server", "-f", "-", check=False, input=yaml.safe_dump_all(bare))
    assert refused.returncode != 0 and "ipBlock.cidr" in refused.stderr, refused.stdout + refused.stderr
    patched = write_overlay(
        tmp_path / "patched", [BASE], [NETWORK_POLICY], patches=[api_server_cidr_patch(["127.0.0.1/32", "::1/128"])]
    )
    docs = [d for d in render(cp, patched) if d["kind"] == "NetworkPolicy"]
    accepted = kubectl(cp, "apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump_all(docs))
    assert outcomes(accepted.stdout) == {ref(d): "created (server dry run)" for d in docs}


@pytest.mark.e2e
def test_certificate_command_succeeds_with_its_service_account(cp: ControlPlane, tmp_path: Path) -> None:
    """First install (Secret created, caBundle patched), a new pod (seeded from the Secret, nothing written) and a
    rotation (Secret patched): all with only the Job's RBAC."""
    job = get_json(cp, "-n", NS, "job", CERTS_JOB)
    [container] = job["spec"]["template"]["spec"]["containers"]
    kubeconfig = service_account_kubeconfig(cp, "psmdb-backup-webhook-certs", tmp_path / "kubeconfig")

    first = run_certs(cp, container["args"], tmp_path / "run1", kubeconfig)
    assert first.returncode == 0, first.stderr
    assert f"Secret {NS}/{TLS_SECRET}: created" in first.stdout
    assert "MutatingWebhookConfiguration psmdb-backup-webhook: caBundle set on 1 of 1 webhooks" in first.stdout
    assert "ValidatingWebhookConfiguration psmdb-backup-webhook: caBundle set on 1 of 1 webhooks" in first.stdout
    secret = get_json(cp, "-n", NS, "secret", TLS_SECRET)
    assert secret["type"] == "kubernetes.io/tls" and set(secret["data"]) == {"ca.crt", "tls.crt", "tls.key"}
    ca_pem = base64.b64decode(secret["data"]["ca.crt"])
    assert certs.cert_sans(base64.b64decode(secret["data"]["tls.crt"])) == certs.service_sans(NAME, NS)
    for kind in ("mutatingwebhookconfiguration", "validatingwebhookconfiguration"):
        [hook] = get_json(cp, kind, NAME)["webhooks"]
        assert base64.b64decode(hook["clientConfig"]["caBundle"]) == ca_pem
        assert hook["clientConfig"]["service"]["namespace"] == NS  # the rest is untouched

    second = run_certs(cp, container["args"], tmp_path / "run2", kubeconfig)  # a later pod: empty /tmp
    assert second.returncode == 0, second.stderr
    assert f"seeded {tmp_path / 'run2'} from Secret {NS}/{TLS_SECRET}" in second.stdout
    assert f"Secret {NS}/{TLS_SECRET}: unchanged" in second.stdout and "caBundle unchanged" in second.stdout
    assert (
        get_json(cp, "-n", NS, "secret", TLS_SECRET)["metadata"]["resourceVersion"]
        == secret["metadata"]["resourceVersion"]
    )

    # a name the certificate does not cover makes the command re-issue it, as expiry would
    rotated = run_certs(cp, container["args"], tmp_path / "run3", kubeconfig, "--san", "webhook.example")
    assert rotated.returncode == 0, rotated.stderr
    assert f"Secret {NS}/{TLS_SECRET}: updated" in rotated.stdout
    after = get_json(cp, "-n", NS, "secret", TLS_SECRET)["data"]
    assert after["tls.crt"] != secret["data"]["tls.crt"]
    # The Secret holds no CA key, so a re-issue from a fresh pod makes a new CA; the bundle keeps the old one too,
    # and caBundle is patched to it, so servers still presenting the old certificate stay trusted.
    new_bundle = base64.b64decode(after["ca.crt"])
    assert ca_pem in new_bundle
    for kind in ("mutatingwebhookconfiguration", "validatingwebhookconfiguration"):
        [hook] = get_json(cp, kind, NAME)["webhooks"]
        assert base64.b64decode(hook["clientConfig"]["caBundle"]) == new_bundle

    # and nothing else: the Job's account cannot touch other Secrets or other namespaces
    for verb, what, extra in (
        ("get", "secrets/other", ["-n", NS]),
        ("list", "secrets", ["-n", NS]),
        ("create", "secrets", ["-n", "default"]),
        ("patch", "secrets/other", ["-n", NS]),
        ("patch", "validatingwebhookconfigurations/other", []),
    ):
        answer = kubectl(cp, "auth", "can-i", verb, what, *extra, f"--as={CERTS_USER}", check=False)
        assert answer.stdout.strip() == "no", (verb, what, answer.stdout)


@pytest.mark.e2e
def test_second_apply_changes_nothing(cp: ControlPlane) -> None:
    """Also after the certificate command patched caBundle in: a re-apply keeps it (it is not in the manifests)."""
    wait_webhook_pods_running(cp)
    bundles = [
        get_json(cp, k, NAME)["webhooks"][0]["clientConfig"]["caBundle"]
        for k in ("mutatingwebhookconfiguration", "validatingwebhookconfiguration")
    ]
    assert_second_apply_changes_nothing(cp, MANIFESTS)
    assert [
        get_json(cp, k, NAME)["webhooks"][0]["clientConfig"]["caBundle"]
        for k in ("mutatingwebhookconfiguration", "validatingwebhookconfiguration")
    ] == bundles


@pytest.mark.e2e
def test_uninstall_with_the_base_keeps_the_crds(cp: ControlPlane) -> None:
    kubectl(cp, "delete", "-k", str(BASE), "--wait=true", "--timeout=120s", timeout=150)
    assert kubectl(cp, "get", "namespace", NS, check=False).returncode != 0
    for kind in ("clusterrole", "clusterrolebinding", "mutatingwebhookconfiguration", "validatingwebhookconfiguration"):
        assert kubectl(cp, "get", kind, NAME, check=False).returncode != 0, kind
    crds = kubectl(cp, "get", "crd", "-o", "name").stdout.split()
    assert {c for c in crds if c.endswith(".psmdb.percona.com")} == {
        f"customresourcedefinition.apiextensions.k8s.io/{p}.psmdb.percona.com"
        for p in ("perconaservermongodbs", "perconaservermongodbbackups", "perconaservermongodbrestores")
    }
    assert (
        "customresourcedefinition.apiextensions.k8s.io/perconaservermongodbbackupschedules.psmdb-backup-webhook.io"
        in crds
    )


# ---------------------------------------------------------------------------------------------------------------
# overlays/cert-manager (with stand-in cert-manager CRDs: tests/data/cert-manager-crds.yaml)
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.e2e
def test_cert_manager_overlay_applies(cp: ControlPlane) -> None:
    kubectl(cp, "apply", "-f", str(CERT_MANAGER_CRDS))
    kubectl(
        cp,
        "wait",
        "--for=condition=Established",
        "crd/issuers.cert-manager.io",
        "crd/certificates.cert-manager.io",
        "--timeout=60s",
        timeout=90,
    )
    docs = render(cp, CERT_MANAGER)
    applied = kubectl(cp, "apply", "-k", str(CERT_MANAGER))
    assert outcomes(applied.stdout) == {ref(d): "created" for d in docs}
    assert applied.stderr == ""
    kinds = {d["kind"] for d in docs}
    assert {"Issuer", "Certificate"} <= kinds and not {"Job", "CronJob"} & kinds
    cert = get_json(cp, "-n", NS, "certificate", NAME)
    assert cert["spec"]["secretName"] == TLS_SECRET
    assert cert["spec"]["dnsNames"] == certs.service_sans(NAME, NS)
    for kind in ("mutatingwebhookconfiguration", "validatingwebhookconfiguration"):
        annotations = get_json(cp, kind, NAME)["metadata"]["annotations"]
        assert annotations["cert-manager.io/inject-ca-from"] == f"{NS}/{NAME}"
    assert get_json(cp, "-n", NS, "jobs")["items"] == []
    wait_webhook_pods_running(cp)


@pytest.mark.e2e
def test_cert_manager_overlay_second_apply_changes_nothing(cp: ControlPlane) -> None:
    assert_second_apply_changes_nothing(cp, CERT_MANAGER)
