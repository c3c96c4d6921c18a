"""manifests/ (kustomize): what `kubectl apply -k manifests/` installs, rendered by the real kubectl's kustomize.

The RBAC rules are compared with reviewed lists kept here, so any new permission is a visible change in review.
The end-to-end side (the API server accepts it all, Pod Security admits the pods, a second apply changes nothing)
is tests/e2e/test_install_e2e.py.
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from croniter import croniter

from webhook import certs

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tools import controlplane  # noqa: E402

MANIFESTS = ROOT / "manifests"
NETWORK_POLICY = MANIFESTS / "components" / "networkpolicy"
SECRETS_PER_NAMESPACE = MANIFESTS / "components" / "secrets-per-namespace"
PBM_READS = MANIFESTS / "components" / "pbm-reads"
NAMESPACE = "psmdb-backup-system"
NAME = "psmdb-backup-webhook"
IMAGE = "ghcr.io/psmdb-backup-webhook/psmdb-backup-webhook:0.1.0"
TLS_SECRET = "psmdb-backup-webhook-tls"
WEBHOOK_SA = "psmdb-backup-webhook"
CERTS_SA = "psmdb-backup-webhook-certs"
CONTROLLER = "psmdb-backup-controller"
LABELS = {"app.kubernetes.io/name": NAME, "app.kubernetes.io/part-of": NAME}
CRDS = {
    f"{p}.psmdb.percona.com"
    for p in ("perconaservermongodbs", "perconaservermongodbbackups", "perconaservermongodbrestores")
} | {"perconaservermongodbbackupschedules.psmdb-backup-webhook.io"}

# ---------------------------------------------------------------------------------------------------------------
# The reviewed permissions: (apiGroup, resource, verb, resourceName or "*" for any name). Change these only together
# with the manifests, and say why in the review.
# ---------------------------------------------------------------------------------------------------------------

# The webhook reads single objects by name (webhook/kube.py resource_path); Secrets only to see that they exist and
# which keys they hold. No list, no watch, no write.
WEBHOOK_CLUSTER_RULES = {
    ("psmdb.percona.com", "perconaservermongodbs", "get", "*"),
    ("psmdb.percona.com", "perconaservermongodbbackups", "get", "*"),
    ("psmdb.percona.com", "perconaservermongodbrestores", "get", "*"),
    ("", "configmaps", "get", "*"),
    ("", "namespaces", "get", "*"),
    ("", "secrets", "get", "*"),
    ("snapshot.storage.k8s.io", "volumesnapshotclasses", "get", "*"),
}
# Policy reports (webhook/reporting.py), a role of their own so an install without reports drops exactly these: the
# background scan lists the PSMDB kinds and the schedules; one report per namespace is read, listed (by label), created and updated,
# never deleted.
REPORTS = f"{NAME}-reports"
WEBHOOK_REPORTS_RULES = {
    *(("psmdb.percona.com", p, "list", "*") for p in ("perconaservermongodbs", "perconaservermongodbbackups")),
    ("psmdb.percona.com", "perconaservermongodbrestores", "list", "*"),
    ("psmdb-backup-webhook.io", "perconaservermongodbbackupschedules", "list", "*"),
    *(("wgpolicyk8s.io", "policyreports", v, "*") for v in ("get", "list", "create", "update")),
    *(("openreports.io", "reports", v, "*") for v in ("get", "list", "create", "update")),
}
# The controller (webhook/controller), the operator's companion: watches the PSMDB kinds; creates and patches the
# operator's Backups and Restores; holds its leader Lease and writes Events. No Secrets, no pods/exec: no PBM.
CONTROLLER_CLUSTER_RULES = {
    *(("psmdb.percona.com", "perconaservermongodbs", v, "*") for v in ("get", "list", "watch")),
    *(
        ("psmdb.percona.com", kind, v, "*")
        for kind in ("perconaservermongodbbackups", "perconaservermongodbrestores")
        for v in ("get", "list", "watch", "create", "patch")
    ),
    ("psmdb.percona.com", "perconaservermongodbbackups/status", "patch", "*"),  # watchdog --repair
    *(("coordination.k8s.io", "leases", v, "*") for v in ("get", "list", "watch", "create", "update", "delete")),
    ("", "events", "create", "*"),
    # schedules (webhook/controller/schedules.py): read them, write their status, retention deletes Backups
    ("psmdb.percona.com", "perconaservermongodbbackups", "delete", "*"),
    *(("psmdb-backup-webhook.io", "perconaservermongodbbackupschedules", v, "*") for v in ("get", "list", "watch")),
    ("psmdb-backup-webhook.io", "perconaservermongodbbackupschedules/status", "patch", "*"),
}
# `psmdb-backup certs` in the Job/CronJob: its own Secret (create cannot be limited by name) ...
CERTS_NAMESPACE_RULES = {
    ("", "secrets", "get", TLS_SECRET),
    ("", "secrets", "patch", TLS_SECRET),
    ("", "secrets", "create", "*"),
}
# ... and the caBundle of the two webhook configurations.
CERTS_CLUSTER_RULES = {
    ("admissionregistration.k8s.io", "mutatingwebhookconfigurations", "get", NAME),
    ("admissionregistration.k8s.io", "mutatingwebhookconfigurations", "patch", NAME),
    ("admissionregistration.k8s.io", "validatingwebhookconfigurations", "get", NAME),
    ("admissionregistration.k8s.io", "validatingwebhookconfigurations", "patch", NAME),
}


# ---------------------------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------------------------


def _kubectl() -> Path:
    """The kubectl built by tools/build-control-plane.sh (its kustomize is the one `kubectl apply -k` uses)."""
    built = list((controlplane._cache_dir() / "control-plane").glob("k8s-*/kubectl"))
    if not built and os.environ.get("PSMDB_REQUIRE_E2E") != "1":
        pytest.skip("needs the control-plane kubectl: run `make control-plane` (make test does)")
    return controlplane.find_bin_dir() / "kubectl"


_CACHE: dict[str, list[dict[str, Any]]] = {}


def render(path: Path | str) -> list[dict[str, Any]]:
    key = str(path)
    if key not in _CACHE:
        proc = subprocess.run([str(_kubectl()), "kustomize", key], capture_output=True, text=True, check=False)
        assert proc.returncode == 0, proc.stderr
        _CACHE[key] = [d for d in yaml.safe_load_all(proc.stdout) if d]
    return _CACHE[key]


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = by_kind(docs, kind)
    assert name in found, f"no {kind} {name} in {sorted(found)}"
    return found[name]


def ident(doc: dict[str, Any]) -> tuple[str, str, str]:
    return doc["kind"], doc["metadata"].get("namespace", ""), doc["metadata"]["name"]


def rules_of(role: dict[str, Any]) -> set[tuple[str, str, str, str]]:
    out = set()
    for rule in role["rules"]:
        assert "nonResourceURLs" not in rule
        for group in rule.get("apiGroups", []):
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    for name in rule.get("resourceNames") or ["*"]:
                        out.add((group, resource, verb, name))
    return out


def pod_templates(docs: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for d in docs:
        spec = d.get("spec", {})
        if d["kind"] in ("Deployment", "Job"):
            yield f"{d['kind']}/{d['metadata']['name']}", spec["template"]
        elif d["kind"] == "CronJob":
            yield f"CronJob/{d['metadata']['name']}", spec["jobTemplate"]["spec"]["template"]


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    assert set(selector) <= {"matchLabels"}, selector
    return all(labels.get(k) == v for k, v in selector["matchLabels"].items())


def write_overlay(tmp_path: Path, resources: list[Path], components: list[Path] | None = None, **more: Any) -> Path:
    """A user's own kustomization of install directories in `tmp_path` (kustomize refuses absolute paths)."""
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [os.path.relpath(r, tmp_path) for r in resources],
        **({"components": [os.path.relpath(c, tmp_path) for c in components]} if components else {}),
        **more,
    }
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    return tmp_path


def overlay(
    tmp_path: Path, resources: list[Path], components: list[Path] | None = None, **more: Any
) -> list[dict[str, Any]]:
    return render(write_overlay(tmp_path, resources, components, **more))


def api_server_cidr_patch(cidrs: list[str]) -> dict[str, Any]:
    """The patch docs/install.md gives for manifests/components/networkpolicy: the first range replaces the
    placeholder, each further one is added after it (before the monitoring namespace, as the chart orders them)."""
    ops = [{"op": "replace", "path": "/spec/ingress/0/from/0/ipBlock/cidr", "value": cidrs[0]}]
    ops += [
        {"op": "add", "path": f"/spec/ingress/0/from/{i}", "value": {"ipBlock": {"cidr": c}}}
        for i, c in enumerate(cidrs[1:], 1)
    ]
    return {"target": {"kind": "NetworkPolicy", "name": NAME}, "patch": yaml.safe_dump(ops)}


def write_secrets_per_namespace(tmp_path: Path, namespaces: list[str]) -> Path:
    """The base with Secret access only in `namespaces`, as manifests/components/secrets-per-namespace documents it:
    the component, and one directory per namespace that includes its namespace/ with `namespace:` set."""
    dirs = []
    for ns in namespaces:
        d = tmp_path / f"secrets-{ns}"
        d.mkdir()
        rel = os.path.relpath(SECRETS_PER_NAMESPACE / "namespace", d)
        (d / "kustomization.yaml").write_text(yaml.safe_dump({"namespace": ns, "resources": [rel]}))
        dirs.append(d)
    return write_overlay(tmp_path, [MANIFESTS / "base", *dirs], [SECRETS_PER_NAMESPACE])


def secrets_per_namespace(tmp_path: Path, namespaces: list[str]) -> list[dict[str, Any]]:
    return render(write_secrets_per_namespace(tmp_path, namespaces))


def certs_args(argv: list[str]) -> argparse.Namespace:
    """Parse a `psmdb-backup certs ...` command line with the real parser (exact flag spelling)."""
    parser = argparse.ArgumentParser(prog="psmdb-backup")
    certs.add_certs_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


@pytest.fixture(scope="module")
def full() -> list[dict[str, Any]]:
    return render(MANIFESTS)


@pytest.fixture(scope="module")
def base() -> list[dict[str, Any]]:
    return render(MANIFESTS / "base")


@pytest.fixture(scope="module")
def cert_manager() -> list[dict[str, Any]]:
    return render(MANIFESTS / "overlays" / "cert-manager")


# ---------------------------------------------------------------------------------------------------------------
# Shape
# ---------------------------------------------------------------------------------------------------------------


def test_top_level_is_the_base_plus_the_generated_crds(full, base) -> None:
    crds = [d for d in full if d["kind"] == "CustomResourceDefinition"]
    assert {d["metadata"]["name"] for d in crds} == CRDS
    generated = {
        yaml.safe_load(p.read_text())["metadata"]["name"]: yaml.safe_load(p.read_text())
        for p in (MANIFESTS / "crds").glob("*.yaml")
    }
    for crd in crds:  # included as generated: no label or name changes
        assert crd == generated[crd["metadata"]["name"]]
    assert [d for d in full if d["kind"] != "CustomResourceDefinition"] == base


def test_base_installs_exactly_these_objects(base) -> None:
    assert sorted(ident(d) for d in base) == sorted(
        [
            ("Namespace", "", NAMESPACE),
            ("ServiceAccount", NAMESPACE, WEBHOOK_SA),
            ("ClusterRole", "", NAME),
            ("ClusterRoleBinding", "", NAME),
            ("ClusterRole", "", REPORTS),
            ("ClusterRoleBinding", "", REPORTS),
            ("Deployment", NAMESPACE, NAME),
            ("PodDisruptionBudget", NAMESPACE, NAME),
            ("Service", NAMESPACE, NAME),
            ("Service", NAMESPACE, f"{NAME}-metrics"),
            ("MutatingWebhookConfiguration", "", NAME),
            ("ValidatingWebhookConfiguration", "", NAME),
            ("ServiceAccount", NAMESPACE, CERTS_SA),
            ("Role", NAMESPACE, CERTS_SA),
            ("RoleBinding", NAMESPACE, CERTS_SA),
            ("ClusterRole", "", CERTS_SA),
            ("ClusterRoleBinding", "", CERTS_SA),
            ("Job", NAMESPACE, "psmdb-backup-webhook-certs"),
            ("CronJob", NAMESPACE, "psmdb-backup-webhook-cert-rotation"),
            ("ServiceAccount", NAMESPACE, CONTROLLER),
            ("ClusterRole", "", CONTROLLER),
            ("ClusterRoleBinding", "", CONTROLLER),
            ("Deployment", NAMESPACE, CONTROLLER),
            ("Service", NAMESPACE, f"{CONTROLLER}-metrics"),
        ]
    )


def test_every_object_carries_the_project_labels(base) -> None:
    for d in base:
        labels = d["metadata"].get("labels", {})
        assert {k: labels.get(k) for k in LABELS} == LABELS, ident(d)
    for where, template in pod_templates(base):
        labels = template["metadata"]["labels"]
        assert {k: labels.get(k) for k in LABELS} == LABELS, where


def test_labels_did_not_leak_into_the_webhook_selectors(base) -> None:
    """kustomize `labels` with includeSelectors: false: selectors stay exactly as written in manifests/webhook."""
    for kind, file in (
        ("MutatingWebhookConfiguration", "mutatingwebhookconfiguration.yaml"),
        ("ValidatingWebhookConfiguration", "validatingwebhookconfiguration.yaml"),
    ):
        source = yaml.safe_load((MANIFESTS / "webhook" / file).read_text())
        rendered = one(base, kind, NAME)
        assert rendered["webhooks"] == source["webhooks"]
        assert "caBundle" not in str(rendered)  # filled in by `psmdb-backup certs` or cert-manager, never applied


def test_namespace_enforces_pod_security_restricted(base) -> None:
    labels = one(base, "Namespace", NAMESPACE)["metadata"]["labels"]
    for mode in ("enforce", "audit", "warn"):
        assert labels[f"pod-security.kubernetes.io/{mode}"] == "restricted"


def test_both_webhooks_call_the_service_and_skip_their_own_namespace(base) -> None:
    service = one(base, "Service", NAME)
    for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
        for hook in one(base, kind, NAME)["webhooks"]:
            ref = hook["clientConfig"]["service"]
            assert (ref["name"], ref["namespace"], ref["port"]) == (
                NAME,
                NAMESPACE,
                service["spec"]["ports"][0]["port"],
            )
            [excluded] = [
                e for e in hook["namespaceSelector"]["matchExpressions"] if e["key"] == "kubernetes.io/metadata.name"
            ]
            assert excluded["operator"] == "NotIn" and NAMESPACE in excluded["values"]


# ---------------------------------------------------------------------------------------------------------------
# RBAC
# ---------------------------------------------------------------------------------------------------------------


def test_webhook_cluster_role_is_the_reviewed_list(base) -> None:
    assert rules_of(one(base, "ClusterRole", NAME)) == WEBHOOK_CLUSTER_RULES
    assert rules_of(one(base, "ClusterRole", REPORTS)) == WEBHOOK_REPORTS_RULES


def test_secrets_per_namespace_drops_the_cluster_wide_secret_rule(tmp_path, base) -> None:
    docs = secrets_per_namespace(tmp_path, ["psmdb-a", "psmdb-b"])
    assert rules_of(one(docs, "ClusterRole", NAME)) == WEBHOOK_CLUSTER_RULES - {("", "secrets", "get", "*")}
    added = [d for d in docs if ident(d) not in {ident(b) for b in base}]
    assert sorted(ident(d) for d in added) == sorted(
        (kind, ns, f"{NAME}-secrets") for kind in ("Role", "RoleBinding") for ns in ("psmdb-a", "psmdb-b")
    )
    for ns in ("psmdb-a", "psmdb-b"):
        role = [d for d in added if d["kind"] == "Role" and d["metadata"]["namespace"] == ns][0]
        assert rules_of(role) == {("", "secrets", "get", "*")}
        binding = [d for d in added if d["kind"] == "RoleBinding" and d["metadata"]["namespace"] == ns][0]
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": f"{NAME}-secrets",
        }
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": WEBHOOK_SA, "namespace": NAMESPACE}]
        assert {k: binding["metadata"]["labels"].get(k) for k in LABELS} == LABELS
    changed = {ident(d) for d in docs} - {ident(d) for d in added} - {("ClusterRole", "", NAME)}
    assert [d for d in docs if ident(d) in changed] == [d for d in base if ident(d) in changed]


def test_controller_cluster_role_is_the_reviewed_list(base) -> None:
    assert rules_of(one(base, "ClusterRole", CONTROLLER)) == CONTROLLER_CLUSTER_RULES


def test_cert_job_roles_are_the_reviewed_lists(base) -> None:
    role = one(base, "Role", CERTS_SA)
    assert role["metadata"]["namespace"] == NAMESPACE
    assert rules_of(role) == CERTS_NAMESPACE_RULES
    assert rules_of(one(base, "ClusterRole", CERTS_SA)) == CERTS_CLUSTER_RULES


def test_no_wildcards_and_secrets_are_never_listed_or_watched(base) -> None:
    for d in base:
        if d["kind"] not in ("Role", "ClusterRole"):
            continue
        for group, resource, verb, _ in rules_of(d):
            assert "*" not in (group, resource, verb), ident(d)
            if resource == "secrets":
                assert verb not in ("list", "watch", "deletecollection", "delete", "update"), (ident(d), verb)
    assert all(d["kind"] != "ClusterRole" or "aggregationRule" not in d for d in base)


@pytest.mark.parametrize(
    ("binding_kind", "role_kind", "name", "sa"),
    [
        ("ClusterRoleBinding", "ClusterRole", NAME, WEBHOOK_SA),
        ("ClusterRoleBinding", "ClusterRole", REPORTS, WEBHOOK_SA),
        ("RoleBinding", "Role", CERTS_SA, CERTS_SA),
        ("ClusterRoleBinding", "ClusterRole", CERTS_SA, CERTS_SA),
        ("ClusterRoleBinding", "ClusterRole", CONTROLLER, CONTROLLER),
    ],
)
def test_each_role_is_bound_to_exactly_its_service_account(base, binding_kind, role_kind, name, sa) -> None:
    binding = one(base, binding_kind, name)
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": name}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa, "namespace": NAMESPACE}]


def test_service_accounts_do_not_mount_tokens_by_default(base) -> None:
    for sa in (WEBHOOK_SA, CERTS_SA, CONTROLLER):
        assert one(base, "ServiceAccount", sa)["automountServiceAccountToken"] is False
    for where, template in pod_templates(base):
        assert template["spec"]["automountServiceAccountToken"] is True, where  # opted in where needed


# ---------------------------------------------------------------------------------------------------------------
# Pods: Pod Security "restricted" (https://kubernetes.io/docs/concepts/security/pod-security-standards/) + ours
# ---------------------------------------------------------------------------------------------------------------

RESTRICTED_VOLUME_TYPES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}


def restricted_violations(pod: dict[str, Any]) -> list[str]:
    """The Pod Security Standard "restricted" (latest), checked on a pod spec, plus this project's own bar
    (read-only root filesystem, explicit non-root UID, resources)."""
    spec = pod["spec"]
    psc = spec.get("securityContext", {})
    bad = []
    for key in ("hostNetwork", "hostPID", "hostIPC", "hostUsers"):
        if spec.get(key) is True:
            bad.append(key)
    for vol in spec.get("volumes", []):
        kinds = set(vol) - {"name"}
        if not kinds <= RESTRICTED_VOLUME_TYPES:
            bad.append(f"volume {vol['name']}: {kinds}")
    for c in spec.get("initContainers", []) + spec["containers"]:
        csc = c.get("securityContext", {})
        name = c["name"]
        if csc.get("privileged"):
            bad.append(f"{name}: privileged")
        if csc.get("allowPrivilegeEscalation") is not False:
            bad.append(f"{name}: allowPrivilegeEscalation must be false")
        if csc.get("runAsNonRoot", psc.get("runAsNonRoot")) is not True:
            bad.append(f"{name}: runAsNonRoot")
        uid = csc.get("runAsUser", psc.get("runAsUser"))
        if not isinstance(uid, int) or uid == 0:
            bad.append(f"{name}: runAsUser {uid!r}")
        seccomp = csc.get("seccompProfile", psc.get("seccompProfile", {})).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            bad.append(f"{name}: seccompProfile {seccomp!r}")
        caps = csc.get("capabilities", {})
        if "ALL" not in caps.get("drop", []) or set(caps.get("add", [])) - {"NET_BIND_SERVICE"}:
            bad.append(f"{name}: capabilities {caps}")
        if any(p.get("hostPort") for p in c.get("ports", [])):
            bad.append(f"{name}: hostPort")
        if csc.get("readOnlyRootFilesystem") is not True:
            bad.append(f"{name}: readOnlyRootFilesystem")
        if not c.get("resources", {}).get("requests") or not c.get("resources", {}).get("limits", {}).get("memory"):
            bad.append(f"{name}: resources")
        if c["image"] != IMAGE:
            bad.append(f"{name}: image {c['image']}")
    return bad


def test_restricted_check_catches_a_bad_pod() -> None:
    pod = {
        "spec": {
            "hostNetwork": True,
            "volumes": [{"name": "h", "hostPath": {"path": "/"}}],
            "containers": [{"name": "c", "image": "x", "securityContext": {"capabilities": {"add": ["SYS_ADMIN"]}}}],
        }
    }
    assert len(restricted_violations(pod)) >= 8


def test_every_pod_template_is_pod_security_restricted(base) -> None:
    templates = dict(pod_templates(base))
    assert sorted(templates) == [
        "CronJob/psmdb-backup-webhook-cert-rotation",
        "Deployment/psmdb-backup-controller",
        "Deployment/psmdb-backup-webhook",
        "Job/psmdb-backup-webhook-certs",
    ]
    for where, template in templates.items():
        assert restricted_violations(template) == [], where
        spec = template["spec"]
        assert spec["securityContext"]["runAsUser"] == 10001, where
        [tmp] = [m for c in spec["containers"] for m in c["volumeMounts"] if m["mountPath"] == "/tmp"]
        assert "emptyDir" in next(v for v in spec["volumes"] if v["name"] == tmp["name"]), where


def test_deployment(base) -> None:
    dep = one(base, "Deployment", NAME)
    spec = dep["spec"]
    pod = spec["template"]["spec"]
    [c] = pod["containers"]
    assert spec["replicas"] == 2
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0  # a rollout keeps both replicas serving
    assert selects(spec["selector"], spec["template"]["metadata"]["labels"])
    assert pod["serviceAccountName"] == WEBHOOK_SA
    [spread] = pod["topologySpreadConstraints"]
    assert (spread["topologyKey"], spread["whenUnsatisfiable"], spread["maxSkew"]) == (
        "kubernetes.io/hostname",
        "ScheduleAnyway",
        1,
    )
    assert spread["labelSelector"] == spec["selector"]
    assert c["args"] == ["serve", "--tls-dir", "/tls", "--listen", "0.0.0.0:8443"]
    assert c["ports"] == [{"name": "https", "containerPort": 8443, "protocol": "TCP"}]
    assert c["resources"] == {
        "requests": {"cpu": "50m", "memory": "64Mi"},
        "limits": {"cpu": "500m", "memory": "256Mi"},
    }
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        assert c[probe]["httpGet"] == {"path": path, "port": "https", "scheme": "HTTPS"}, probe
    tls_mount = next(m for m in c["volumeMounts"] if m["mountPath"] == "/tls")
    assert tls_mount["readOnly"] is True
    tls = next(v for v in pod["volumes"] if v["name"] == tls_mount["name"])
    assert tls["secret"]["secretName"] == TLS_SECRET and tls["secret"]["optional"] is False


def test_serve_accepts_the_deployment_arguments(base) -> None:
    from webhook.cli import build_parser

    [c] = one(base, "Deployment", NAME)["spec"]["template"]["spec"]["containers"]
    args = build_parser().parse_args(c["args"])
    assert (args.tls_dir, args.listen) == ("/tls", ("0.0.0.0", 8443))


def test_pod_disruption_budget_keeps_one_replica(base) -> None:
    pdb = one(base, "PodDisruptionBudget", NAME)
    dep = one(base, "Deployment", NAME)
    assert pdb["spec"]["minAvailable"] == 1 < dep["spec"]["replicas"]
    assert pdb["spec"]["selector"] == dep["spec"]["selector"]


def test_services_select_the_webhook_pods(base) -> None:
    labels = one(base, "Deployment", NAME)["spec"]["template"]["metadata"]["labels"]
    svc = one(base, "Service", NAME)
    assert svc["spec"]["ports"] == [{"name": "https", "port": 443, "targetPort": "https", "protocol": "TCP"}]
    metrics = one(base, "Service", f"{NAME}-metrics")
    assert metrics["spec"]["ports"] == [
        {"name": "https-metrics", "port": 8443, "targetPort": "https", "protocol": "TCP"}
    ]
    assert metrics["metadata"]["annotations"]["prometheus.io/scheme"] == "https"
    for s in (svc, metrics):
        assert s["spec"]["selector"] == {"app.kubernetes.io/name": NAME, "app.kubernetes.io/component": "webhook"}
        assert all(labels.get(k) == v for k, v in s["spec"]["selector"].items())
    # the certificate Job's and the controller's pods must not receive admission traffic
    for where, template in pod_templates(base):
        if where != f"Deployment/{NAME}":
            assert not all(template["metadata"]["labels"].get(k) == v for k, v in svc["spec"]["selector"].items())


# ---------------------------------------------------------------------------------------------------------------
# Certificates
# ---------------------------------------------------------------------------------------------------------------


def test_cert_job_and_cronjob_run_the_same_pod(base) -> None:
    job = one(base, "Job", "psmdb-backup-webhook-certs")["spec"]["template"]
    cron = one(base, "CronJob", "psmdb-backup-webhook-cert-rotation")["spec"]["jobTemplate"]["spec"]["template"]
    assert job == cron
    assert job["spec"]["serviceAccountName"] == CERTS_SA


def test_cert_command_names_what_the_manifests_define(base) -> None:
    """The Job's arguments, parsed by the real `certs` parser, point at this Service, Secret and configurations."""
    [c] = one(base, "Job", "psmdb-backup-webhook-certs")["spec"]["template"]["spec"]["containers"]
    assert c["args"] == [
        "certs",
        "--dir",
        "/tmp/certs",
        "--service",
        NAME,
        "--namespace",
        NAMESPACE,
        "--secret",
        f"{NAMESPACE}/{TLS_SECRET}",
        "--patch-webhooks",
        f"mutating={NAME},validating={NAME}",
    ]
    args = certs_args(c["args"])
    assert args.func is certs.cmd_certs
    svc = one(base, "Service", args.service)
    assert svc["metadata"]["namespace"] == args.namespace
    assert args.secret == f"{NAMESPACE}/{TLS_SECRET}"
    mutating, validating = certs.parse_webhook_targets(args.patch_webhooks)
    assert [one(base, "MutatingWebhookConfiguration", n)["metadata"]["name"] for n in mutating] == [NAME]
    assert [one(base, "ValidatingWebhookConfiguration", n)["metadata"]["name"] for n in validating] == [NAME]
    assert args.dir.startswith("/tmp/")  # the only writable path (read-only root filesystem)
    # the Role grants exactly the Secret the command writes
    assert {r[3] for r in rules_of(one(base, "Role", CERTS_SA)) if r[2] != "create"} == {TLS_SECRET}


def test_rotation_runs_well_inside_the_rotation_window(base) -> None:
    cron = one(base, "CronJob", "psmdb-backup-webhook-cert-rotation")["spec"]
    assert cron["concurrencyPolicy"] == "Forbid"
    it = croniter(cron["schedule"], dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    runs = [it.get_next(dt.datetime) for _ in range(60)]
    longest = max(b - a for a, b in zip(runs, runs[1:]))
    assert longest == dt.timedelta(days=7)
    [c] = cron["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    args = certs_args(c["args"])
    # at least three chances to rotate before the certificate expires
    assert args.rotate_before >= 3 * longest
    assert args.rotate_before < dt.timedelta(days=args.days)


def test_cert_manager_overlay_replaces_the_job_with_a_certificate(base, cert_manager) -> None:
    removed = {ident(d) for d in base} - {ident(d) for d in cert_manager}
    assert removed == {
        ("ServiceAccount", NAMESPACE, CERTS_SA),
        ("Role", NAMESPACE, CERTS_SA),
        ("RoleBinding", NAMESPACE, CERTS_SA),
        ("ClusterRole", "", CERTS_SA),
        ("ClusterRoleBinding", "", CERTS_SA),
        ("Job", NAMESPACE, "psmdb-backup-webhook-certs"),
        ("CronJob", NAMESPACE, "psmdb-backup-webhook-cert-rotation"),
    }
    added = {ident(d) for d in cert_manager} - {ident(d) for d in base}
    assert added == {
        ("Issuer", NAMESPACE, "psmdb-backup-webhook-selfsigned"),
        ("Certificate", NAMESPACE, "psmdb-backup-webhook-ca"),
        ("Issuer", NAMESPACE, "psmdb-backup-webhook-ca"),
        ("Certificate", NAMESPACE, NAME),
    }
    base_by_id = {ident(d): d for d in base}
    for d in cert_manager:
        if ident(d) in base_by_id and "WebhookConfiguration" not in d["kind"]:
            assert d == base_by_id[ident(d)], ident(d)  # everything else is the base, unchanged
        assert {k: d["metadata"].get("labels", {}).get(k) for k in LABELS} == LABELS, ident(d)


def test_cert_manager_certificate_matches_the_service_and_the_mounted_secret(cert_manager) -> None:
    cert = one(cert_manager, "Certificate", NAME)["spec"]
    assert cert["secretName"] == TLS_SECRET
    assert cert["dnsNames"] == certs.service_sans(NAME, NAMESPACE)  # what `psmdb-backup certs --service` issues
    assert cert["issuerRef"]["name"] == "psmdb-backup-webhook-ca"
    ca = one(cert_manager, "Certificate", "psmdb-backup-webhook-ca")["spec"]
    assert ca["isCA"] is True and ca["issuerRef"]["name"] == "psmdb-backup-webhook-selfsigned"
    assert one(cert_manager, "Issuer", "psmdb-backup-webhook-ca")["spec"]["ca"]["secretName"] == ca["secretName"]
    assert "selfSigned" in one(cert_manager, "Issuer", "psmdb-backup-webhook-selfsigned")["spec"]
    for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
        doc = one(cert_manager, kind, NAME)
        assert doc["metadata"]["annotations"] == {"cert-manager.io/inject-ca-from": f"{NAMESPACE}/{NAME}"}
        source = yaml.safe_load((MANIFESTS / "webhook" / f"{kind.lower()}.yaml").read_text())
        assert doc["webhooks"] == source["webhooks"]


def test_image_can_be_overridden_with_kustomize_images(tmp_path) -> None:
    (tmp_path / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [os.path.relpath(MANIFESTS, tmp_path)],  # kustomize refuses absolute paths
                "images": [
                    {
                        "name": IMAGE.split(":")[0],
                        "newName": "registry.example.com/psmdb-backup-webhook",
                        "newTag": "9.9.9",
                    }
                ],
            }
        )
    )
    docs = render(tmp_path)
    images = {where: [c["image"] for c in t["spec"]["containers"]] for where, t in pod_templates(docs)}
    assert len(images) == 4
    assert all(i == ["registry.example.com/psmdb-backup-webhook:9.9.9"] for i in images.values()), images


# ---------------------------------------------------------------------------------------------------------------
# The image the manifests run: Dockerfile and constraints.txt
# ---------------------------------------------------------------------------------------------------------------


def _project() -> dict[str, Any]:
    import tomllib

    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _pins() -> dict[str, str]:
    from packaging.utils import canonicalize_name

    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, sep, version = line.partition("==")
            assert sep and version, f"not an exact pin: {line!r}"
            pins[canonicalize_name(name)] = version
    return pins


def test_constraints_pin_every_runtime_dependency_within_its_range() -> None:
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    pins = _pins()
    for spec in _project()["dependencies"]:
        req = Requirement(spec)
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is not pinned in constraints.txt"
        assert req.specifier.contains(pins[name]), f"{req.name}=={pins[name]} is outside {req.specifier}"
    test_only = {canonicalize_name(Requirement(s).name) for s in _project()["optional-dependencies"]["test"]}
    assert not test_only & set(pins), "test-only packages do not belong in the image"


def test_image_version_and_user_agree_with_the_project() -> None:
    version = _project()["version"]
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "ARG BASE=python:3.11-slim" in dockerfile
    assert f"ARG VERSION={version}" in dockerfile
    assert "USER 10001:10001" in dockerfile  # the manifests' runAsUser
    assert IMAGE.rpartition(":")[2] == version  # the manifests run the image of this release


def test_image_build_copies_the_schemas_the_package_links_to() -> None:
    """webhook/schemas is a symlink to ../schemas: without schemas/ in the build stage, the wheel has no schemas and
    every admission request fails (found by running the image: FileNotFoundError for the Backup schema)."""
    link = ROOT / "webhook" / "schemas"
    dockerfile = (ROOT / "Dockerfile").read_text()
    if link.is_symlink():
        assert "COPY schemas/ schemas/" in dockerfile
    assert "load_schema" in dockerfile  # and the build stage loads them, so a wheel without them fails the build
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    assert not {"schemas", "webhook", "pyproject.toml", "README.md", "constraints.txt"} & ignored


def test_controller_deployment_elects_a_leader_and_serves_probes_on_its_metrics_port(base) -> None:
    from webhook.cli import build_parser

    dep = one(base, "Deployment", CONTROLLER)
    assert dep["spec"]["replicas"] == 2
    pod = dep["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    assert pod["spec"]["serviceAccountName"] == CONTROLLER and container["image"] == IMAGE
    args = build_parser().parse_args(container["args"])
    assert args.func.__name__ == "cmd_controller" and args.leader_elect and args.metrics_listen == ("0.0.0.0", 8080)
    assert args.cluster_selector == "psmdb-backup-webhook.io/backup-engine=controller"  # opt-in per cluster
    env = {e["name"]: e for e in container["env"]}
    assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    svc = one(base, "Service", f"{CONTROLLER}-metrics")
    assert svc["spec"]["ports"][0]["name"] == "metrics"
    assert all(pod["metadata"]["labels"].get(k) == v for k, v in svc["spec"]["selector"].items())


# ---------------------------------------------------------------------------------------------------------------
# manifests/components/networkpolicy (opt-in)
# ---------------------------------------------------------------------------------------------------------------


def test_network_policies_are_opt_in(full, base, cert_manager) -> None:
    """A policy that misses the API server's addresses takes the validating webhook down: never by default."""
    assert not [d for d in full + base + cert_manager if d["kind"] == "NetworkPolicy"]


def test_network_policy_component_admits_the_api_server_and_monitoring_only(tmp_path, base) -> None:
    docs = overlay(
        tmp_path, [MANIFESTS / "base"], [NETWORK_POLICY], patches=[api_server_cidr_patch(["10.0.0.0/24", "fd00::/64"])]
    )
    assert [d for d in docs if d["kind"] != "NetworkPolicy"] == base
    policies = by_kind(docs, "NetworkPolicy")
    assert set(policies) == {NAME, CONTROLLER}
    monitoring = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    [webhook_rule] = policies[NAME]["spec"]["ingress"]
    assert webhook_rule["from"] == [
        {"ipBlock": {"cidr": "10.0.0.0/24"}},
        {"ipBlock": {"cidr": "fd00::/64"}},
        monitoring,
    ]
    [controller_rule] = policies[CONTROLLER]["spec"]["ingress"]
    assert controller_rule["from"] == [monitoring]
    for policy, deployment, port_name in ((NAME, NAME, "https"), (CONTROLLER, CONTROLLER, "metrics")):
        spec = policies[policy]["spec"]
        assert spec["policyTypes"] == ["Ingress"] and policies[policy]["metadata"]["namespace"] == NAMESPACE
        pod = one(base, "Deployment", deployment)["spec"]["template"]
        assert selects(spec["podSelector"], pod["metadata"]["labels"]), policy
        others = [t for where, t in pod_templates(base) if where != f"Deployment/{deployment}"]
        assert not any(selects(spec["podSelector"], t["metadata"].get("labels", {})) for t in others), policy
        ports = {p["name"]: p["containerPort"] for c in pod["spec"]["containers"] for p in c.get("ports", [])}
        assert spec["ingress"][0]["ports"] == [{"port": ports[port_name], "protocol": "TCP"}], policy
        labels = policies[policy]["metadata"]["labels"]
        assert {k: labels.get(k) for k in LABELS} == LABELS


def test_network_policy_component_without_the_patch_is_refused_not_open(tmp_path) -> None:
    """Forgotten patch: the placeholder is no CIDR, so the API server refuses the policy (the e2e test shows it) and
    the webhook stays reachable, rather than a guessed range that could shut the API server out."""
    docs = overlay(tmp_path, [MANIFESTS / "base"], [NETWORK_POLICY])
    cidr = one(docs, "NetworkPolicy", NAME)["spec"]["ingress"][0]["from"][0]["ipBlock"]["cidr"]
    with pytest.raises(ValueError):
        ipaddress.ip_network(cidr)
    assert "docs-install-md" in cidr
