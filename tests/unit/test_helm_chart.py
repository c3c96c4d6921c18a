"""charts/psmdb-backup-webhook: the Helm chart renders what the kustomize install (manifests/) does.

`helm template` with default values is compared object by object with `kubectl kustomize` of manifests/ (and of the
cert-manager overlay and manifests/observability with the matching values), so the two installs cannot drift; the
values change the rendering as documented; the schema refuses bad values with a message naming the value; `helm lint`
is clean; the chart README is generated from values.yaml. Helm is built from its Go module by tools/build-helm.sh
(`make helm`, a prerequisite of `make test`). The install, upgrade and uninstall against a real API server are
tests/e2e/test_helm_e2e.py.
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.test_install_manifests import (
    MANIFESTS,
    NAME,
    NAMESPACE,
    NETWORK_POLICY,
    PBM_READS,
    ROOT,
    TLS_SECRET,
    api_server_cidr_patch,
    by_kind,
    ident,
    overlay,
    pod_templates,
    render,
    restricted_violations,
    secrets_per_namespace,
)
from tools import gen_chart_readme
from webhook.cli import build_parser

CHART = ROOT / "charts" / "psmdb-backup-webhook"
RELEASE = "psmdb-backup-webhook"
CERTS_JOB = "psmdb-backup-webhook-certs"
# Labels Helm's install adds on top of the kustomize install's (metadata only, never selectors or pod templates).
HELM_LABELS = {
    "app.kubernetes.io/instance",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/version",
    "helm.sh/chart",
}


def helm_binary() -> Path:
    """The helm built by tools/build-helm.sh (its version is read from the script, the one place it is set)."""
    version = re.search(r"^HELM_VERSION=(\S+)", (ROOT / "tools" / "build-helm.sh").read_text(), re.M)
    assert version, "tools/build-helm.sh sets no HELM_VERSION"
    cache = Path(os.environ.get("PSMDB_BACKUP_CACHE", Path.home() / ".cache" / "psmdb-backup-webhook"))
    helm = cache / f"helm-{version[1]}" / "helm"
    if not helm.exists():
        if os.environ.get("PSMDB_REQUIRE_E2E") == "1":
            pytest.fail(f"{helm} is missing: run `make helm` (tools/build-helm.sh)")
        pytest.skip(f"needs helm {version[1]} built from its Go module: run `make helm` (make test does)")
    return helm


def run_helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([str(helm_binary()), *args], capture_output=True, text=True, check=False)
    if check:
        assert proc.returncode == 0, f"helm {' '.join(args)}:\n{proc.stderr}"
    return proc


def set_args(values: dict[str, Any]) -> list[str]:
    """--set-json for each value: keeps types (numbers, lists, maps) exactly as given."""
    out: list[str] = []
    for key, value in values.items():
        out += ["--set-json", f"{key}={json.dumps(value)}"]
    return out


_RENDERED: dict[str, list[dict[str, Any]]] = {}


def template(values: dict[str, Any] | None = None, namespace: str = NAMESPACE) -> list[dict[str, Any]]:
    args = ["template", RELEASE, str(CHART), "--namespace", namespace, "--include-crds", "--skip-tests"]
    args += set_args(values or {})
    key = repr(args)
    if key not in _RENDERED:
        _RENDERED[key] = [d for d in yaml.safe_load_all(run_helm(*args).stdout) if d]
    return copy.deepcopy(_RENDERED[key])


def normalised(doc: dict[str, Any]) -> dict[str, Any]:
    """The object without the labels Helm adds and with the certificate Job's per-revision name as kustomize's."""
    doc = copy.deepcopy(doc)
    meta = doc["metadata"]
    for key in HELM_LABELS:
        meta.get("labels", {}).pop(key, None)
    if doc["kind"] == "Job" and meta["name"].startswith(CERTS_JOB + "-"):
        meta["name"] = CERTS_JOB
    return doc


def assert_same_objects(helm_docs: list[dict[str, Any]], kustomize_docs: list[dict[str, Any]]) -> None:
    helm = {ident(d): d for d in map(normalised, helm_docs)}
    kust = {ident(d): d for d in kustomize_docs}
    assert sorted(helm) == sorted(kust), (
        f"objects differ: only in helm {sorted(set(helm) - set(kust))}, only in kustomize {sorted(set(kust) - set(helm))}"
    )
    for key, want in kust.items():
        assert helm[key] == want, f"{key} differs between the chart and the kustomize install"


# ---------------------------------------------------------------------------------------------------------------
# The chart renders the kustomize install
# ---------------------------------------------------------------------------------------------------------------


def test_default_values_render_the_kustomize_install_but_the_namespace() -> None:
    """Same objects, RBAC rules, security contexts, webhook rules, container args, CRDs. The Namespace is the one
    object left out by default: Helm stores its release in the namespace, so it must exist before the install."""
    kust = render(MANIFESTS)
    assert_same_objects(template(), [d for d in kust if d["kind"] != "Namespace"])


def test_create_namespace_renders_the_restricted_namespace() -> None:
    assert_same_objects(template({"createNamespace": True}), render(MANIFESTS))


def test_cert_manager_values_render_the_cert_manager_overlay() -> None:
    kust = render(MANIFESTS / "overlays" / "cert-manager")
    helm = [d for d in template({"certificates.provider": "cert-manager"}) if d["kind"] != "CustomResourceDefinition"]
    assert_same_objects(helm, [d for d in kust if d["kind"] != "Namespace"])


def test_metrics_values_render_manifests_observability() -> None:
    on = {f"metrics.{k}.enabled": True for k in ("serviceMonitor", "prometheusRule", "dashboard")}
    default = {ident(d) for d in template()}
    extra = [d for d in template(on) if ident(d) not in default]
    assert_same_objects(extra, render(MANIFESTS / "observability"))


def test_network_policy_values_render_the_networkpolicy_component(tmp_path) -> None:
    cidrs = ["10.0.0.0/24", "fd00::/64"]
    kust = overlay(tmp_path, [MANIFESTS / "base"], [NETWORK_POLICY], patches=[api_server_cidr_patch(cidrs)])
    helm = template({"networkPolicy.enabled": True, "networkPolicy.apiServerCIDRs": cidrs})
    # The chart alone has a `helm test` Pod (templates/tests/readyz.yaml), which its policy admits as well.
    test_pod = {
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": RELEASE, "app.kubernetes.io/component": "test"}}
    }
    webhook_policy = by_kind(helm, "NetworkPolicy")[RELEASE]
    webhook_policy["spec"]["ingress"][0]["from"].remove(test_pod)
    assert_same_objects(by_kind(helm, "NetworkPolicy").values(), by_kind(kust, "NetworkPolicy").values())


def test_secret_namespaces_render_the_secrets_per_namespace_component(tmp_path) -> None:
    namespaces = ["psmdb-a", "psmdb-b"]
    kust = [d for d in secrets_per_namespace(tmp_path, namespaces) if d["kind"] != "Namespace"]
    helm = [d for d in template({"webhook.secretNamespaces": namespaces}) if d["kind"] != "CustomResourceDefinition"]
    assert_same_objects(helm, kust)


def test_pbm_reads_value_renders_the_pbm_reads_component(tmp_path) -> None:
    """pods/exec and `--pbm-reads` only when asked: the chart's value and the kustomize component agree."""
    kust = overlay(tmp_path, [MANIFESTS / "base"], [PBM_READS])
    helm = template({"controller.pbmReads": True})
    rbac = "psmdb-backup-controller-pbm-reads"
    pick = [("ClusterRole", rbac), ("ClusterRoleBinding", rbac), ("Deployment", "psmdb-backup-controller")]
    assert_same_objects(
        [d for d in helm if (d["kind"], d["metadata"]["name"]) in pick],
        [d for d in kust if (d["kind"], d["metadata"]["name"]) in pick],
    )
    assert "--pbm-reads" in _container(helm, "psmdb-backup-controller")["args"]
    default = template()
    assert "--pbm-reads" not in _container(default, "psmdb-backup-controller")["args"]
    assert not [d for d in default if d["metadata"]["name"] == rbac]
    assert not [
        r for d in default if d["kind"] == "ClusterRole" for r in d.get("rules", []) if "pods/exec" in r["resources"]
    ]


def test_the_chart_readme_lists_every_value_and_is_fresh() -> None:
    assert gen_chart_readme.main(["--check"]) == 0, "run `python tools/gen_chart_readme.py`"
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    readme = (CHART / "README.md").read_text()
    for section in ("image", "webhook", "reports", "admission", "certificates", "controller", "metrics"):
        for key in values[section]:
            assert f"`{section}.{key}" in readme, f"{section}.{key} is not in the chart README"


def test_the_readme_generator_refuses_an_undocumented_value() -> None:
    with pytest.raises(SystemExit, match=r"no comment above webhook\.replicas"):
        gen_chart_readme.render("webhook:\n  replicas: 2\n")


def test_helm_lint_is_clean() -> None:
    for values in ({}, {"certificates.provider": "cert-manager", "controller.enabled": False}):
        proc = run_helm("lint", "--strict", str(CHART), *set_args(values))
        assert "0 chart(s) failed" in proc.stdout, proc.stdout
        assert "[WARNING]" not in proc.stdout and "[ERROR]" not in proc.stdout, proc.stdout


# ---------------------------------------------------------------------------------------------------------------
# Values
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"webhook.enforcement": "block"}, r"webhook/enforcement.*'enforce', 'warn', 'audit'"),
        ({"webhook.onLookupFailure": "allow"}, r"webhook/onLookupFailure.*'deny', 'warn'"),
        ({"certificates.provider": "vault"}, r"certificates/provider.*'job', 'cert-manager'"),
        ({"webhook.replicas": "two"}, r"webhook/replicas.*got string, want integer"),
        ({"admission.validating.timeoutSeconds": 60}, r"admission/validating/timeoutSeconds.*maximum"),
        ({"webhok": {"replicas": 1}}, r"additional properties 'webhok' not allowed"),
        ({"image.pullPolicy": "Sometimes"}, r"image/pullPolicy"),
        ({"metrics.serviceMonitor.interval": "often"}, r"metrics/serviceMonitor/interval.*does not match pattern"),
        ({"reports.api": "kyverno"}, r"reports/api.*'wgpolicyk8s', 'openreports'"),
        ({"reports.interval": -1}, r"reports/interval.*minimum"),
        ({"webhook.secretNamespaces": ["Not_A_Namespace"]}, r"webhook/secretNamespaces/0.*does not match pattern"),
    ],
)
def test_bad_values_are_refused_with_a_message_naming_them(values: dict[str, Any], message: str) -> None:
    proc = run_helm("template", RELEASE, str(CHART), *set_args(values), check=False)
    assert proc.returncode != 0, f"accepted {values}"
    assert "values don't meet the specifications of the schema" in proc.stderr, proc.stderr
    assert re.search(message, proc.stderr), proc.stderr


def _container(docs: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return by_kind(docs, "Deployment")[name]["spec"]["template"]["spec"]["containers"][0]


def test_modes_and_flags_become_server_arguments() -> None:
    docs = template(
        {
            "webhook.enforcement": "warn",
            "webhook.onLookupFailure": "warn",
            "webhook.extraArgs": ["--lookup-timeout", "1.5"],
            "controller.clusterSelector": "team=db",
            "controller.extraArgs": ["--workers", "4"],
        }
    )
    args = _container(docs, "psmdb-backup-webhook")["args"]
    assert args[5:] == ["--enforcement", "warn", "--on-lookup-failure", "warn", "--lookup-timeout", "1.5"]
    assert _container(docs, "psmdb-backup-controller")["args"][3:] == [
        "--cluster-selector",
        "team=db",
        "--workers",
        "4",
    ]


def test_image_replicas_resources_and_scheduling() -> None:
    resources = {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}}
    toleration = {"key": "dedicated", "operator": "Equal", "value": "infra", "effect": "NoSchedule"}
    docs = template(
        {
            "image.repository": "registry.example.com/psmdb",
            "image.tag": "9.9.9",
            "image.pullPolicy": "Always",
            "imagePullSecrets": [{"name": "regcred"}],
            "webhook.replicas": 3,
            "webhook.resources": resources,
            "webhook.nodeSelector": {"node-role": "infra"},
            "webhook.tolerations": [toleration],
            "webhook.affinity": {"nodeAffinity": {}},
            "webhook.topologySpreadConstraints": [],
            "controller.replicas": 1,
        }
    )
    web = by_kind(docs, "Deployment")["psmdb-backup-webhook"]
    pod = web["spec"]["template"]["spec"]
    assert (
        web["spec"]["replicas"] == 3 and by_kind(docs, "Deployment")["psmdb-backup-controller"]["spec"]["replicas"] == 1
    )
    assert pod["containers"][0]["resources"] == resources
    assert pod["nodeSelector"] == {"node-role": "infra"} and pod["tolerations"] == [toleration]
    assert pod["affinity"] == {"nodeAffinity": {}} and "topologySpreadConstraints" not in pod
    for where, tpl in pod_templates(docs):
        assert tpl["spec"]["containers"][0]["image"] == "registry.example.com/psmdb:9.9.9", where
        assert tpl["spec"]["containers"][0]["imagePullPolicy"] == "Always", where
        assert tpl["spec"]["imagePullSecrets"] == [{"name": "regcred"}], where


def test_no_value_weakens_pod_security() -> None:
    """The security contexts are not values: the most customised rendering still passes the restricted check."""
    docs = template({"webhook.podLabels": {"a": "b"}, "webhook.extraArgs": ["--log-format", "text"]})
    for where, pod in pod_templates(docs):
        assert restricted_violations(pod) == [], where


def test_selectors_follow_the_release_namespace_and_values() -> None:
    expr = {"key": "team", "operator": "In", "values": ["db"]}
    docs = template(
        {
            "admission.excludedNamespaces": ["kube-system", "monitoring"],
            "admission.namespaceSelectorExpressions": [expr],
            "admission.namespaceSelectorLabels": {"psmdb": "on"},
            "admission.validating.failurePolicy": "Ignore",
            "admission.validating.objectSelector": {"matchLabels": {"gate": "yes"}},
            # maps merge with the defaults (Helm's rule), lists replace them
            "admission.mutating.objectSelector": {"matchLabels": {"inject": "yes"}, "matchExpressions": [expr]},
            "admission.mutating.timeoutSeconds": 3,
        },
        namespace="psmdb-tools",
    )
    (mutating,) = by_kind(docs, "MutatingWebhookConfiguration")["psmdb-backup-webhook"]["webhooks"]
    (validating,) = by_kind(docs, "ValidatingWebhookConfiguration")["psmdb-backup-webhook"]["webhooks"]
    for hook in (mutating, validating):
        assert hook["clientConfig"]["service"]["namespace"] == "psmdb-tools"
        selector = hook["namespaceSelector"]
        assert selector["matchLabels"] == {"psmdb": "on"}
        assert selector["matchExpressions"][0]["values"] == ["psmdb-tools", "kube-system", "monitoring"]
        assert selector["matchExpressions"][-1] == expr
    assert validating["failurePolicy"] == "Ignore" and validating["objectSelector"] == {"matchLabels": {"gate": "yes"}}
    assert mutating["timeoutSeconds"] == 3 and mutating["objectSelector"] == {
        "matchLabels": {"app.kubernetes.io/name": "percona-server-mongodb", "inject": "yes"},
        "matchExpressions": [expr],
    }
    (job,) = by_kind(docs, "Job").values()
    assert "psmdb-tools/psmdb-backup-webhook-tls" in job["spec"]["template"]["spec"]["containers"][0]["args"]


def test_controller_off_removes_it_and_its_rbac() -> None:
    on = {ident(d) for d in template()}
    off = {ident(d) for d in template({"controller.enabled": False})}
    assert on - off == {
        ("ServiceAccount", NAMESPACE, "psmdb-backup-controller"),
        ("ClusterRole", "", "psmdb-backup-controller"),
        ("ClusterRoleBinding", "", "psmdb-backup-controller"),
        ("Service", NAMESPACE, "psmdb-backup-controller-metrics"),
        ("Deployment", NAMESPACE, "psmdb-backup-controller"),
    }
    assert off <= on


def test_reports_off_removes_their_rbac_and_turns_them_off_in_the_server() -> None:
    on = {ident(d) for d in template()}
    docs = template({"reports.enabled": False})
    assert on - {ident(d) for d in docs} == {
        ("ClusterRole", "", "psmdb-backup-webhook-reports"),
        ("ClusterRoleBinding", "", "psmdb-backup-webhook-reports"),
    }
    assert _container(docs, "psmdb-backup-webhook")["args"][5:] == ["--report-api", "none"]


def test_report_api_and_interval_become_server_arguments() -> None:
    args = _container(template({"reports.api": "openreports", "reports.interval": 30}), "psmdb-backup-webhook")["args"]
    assert args[5:] == ["--report-api", "openreports", "--report-interval", "30"]
    assert build_parser().parse_args(["serve", "--tls-dir", "/tls", *args[1:]]).report_interval == 30


def test_extra_labels_and_annotations_reach_every_object_but_no_selector() -> None:
    docs = template({"commonLabels": {"team": "db"}, "commonAnnotations": {"owner": "dba@example.com"}})
    for doc in docs:
        if doc["kind"] == "CustomResourceDefinition":
            continue  # crds/ is installed as is, like manifests/crds
        meta = doc["metadata"]
        assert meta["labels"]["team"] == "db" and meta["annotations"]["owner"] == "dba@example.com", ident(doc)
    assert "team" not in yaml.safe_dump([d.get("spec", {}).get("selector") for d in docs])
    metrics = by_kind(docs, "Service")["psmdb-backup-webhook-metrics"]["metadata"]["annotations"]
    assert metrics["prometheus.io/scrape"] == "true"  # merged with, not replaced by, the extra annotations


def test_metrics_labels_and_interval() -> None:
    docs = template(
        {
            "metrics.serviceMonitor.enabled": True,
            "metrics.serviceMonitor.labels": {"release": "kps"},
            "metrics.serviceMonitor.interval": "15s",
            "metrics.prometheusRule.enabled": True,
            "metrics.prometheusRule.labels": {"release": "kps"},
        }
    )
    for sm in by_kind(docs, "ServiceMonitor").values():
        assert sm["metadata"]["labels"]["release"] == "kps"
        assert {e["interval"] for e in sm["spec"]["endpoints"]} == {"15s"}
    assert by_kind(docs, "PrometheusRule")["psmdb-backup-webhook"]["metadata"]["labels"]["release"] == "kps"
    assert "ConfigMap" not in {d["kind"] for d in docs}


TEST_POD = "templates/tests/readyz.yaml"


def helm_test_pod(values: dict[str, Any] | None = None, namespace: str = NAMESPACE) -> dict[str, Any]:
    proc = run_helm("template", RELEASE, str(CHART), "-n", namespace, "--show-only", TEST_POD, *set_args(values or {}))
    [pod] = [d for d in yaml.safe_load_all(proc.stdout) if d]
    return pod


def test_helm_test_pod_probes_readyz_through_the_service_with_the_ca_only() -> None:
    """`helm test` runs `psmdb-backup probe` (the image has no curl) against the Service's /readyz, trusting the CA
    of the webhook's TLS Secret, of which nothing else is mounted. tests/e2e/test_helm_e2e.py runs the same
    command against a webhook serving the chart's certificate."""
    pod = helm_test_pod({"imagePullSecrets": [{"name": "regcred"}], "image.tag": "9.9"}, namespace="ops")
    assert pod["kind"] == "Pod" and pod["metadata"]["namespace"] == "ops"
    assert pod["metadata"]["annotations"] == {
        "helm.sh/hook": "test",
        "helm.sh/hook-delete-policy": "before-hook-creation,hook-succeeded",
    }
    spec = pod["spec"]
    assert spec["restartPolicy"] == "Never" and spec["automountServiceAccountToken"] is False
    assert spec["imagePullSecrets"] == [{"name": "regcred"}]
    [container] = spec["containers"]
    assert container["image"].endswith(":9.9")
    args = build_parser().parse_args(container["args"])
    assert (args.url, args.ca_file) == ("https://psmdb-backup-webhook.ops.svc:443/readyz", "/ca/ca.crt")
    assert spec["volumes"] == [
        {"name": "ca", "secret": {"secretName": TLS_SECRET, "items": [{"key": "ca.crt", "path": "ca.crt"}]}}
    ]
    assert container["volumeMounts"] == [{"name": "ca", "mountPath": "/ca", "readOnly": True}]
    assert restricted_violations(helm_test_pod()) == []  # (it also wants the chart's own image)
    assert "Pod" not in {d["kind"] for d in template()}  # the install itself has no bare Pod


def test_network_policy_admits_the_api_server_and_monitoring_only() -> None:
    docs = template({"networkPolicy.enabled": True, "networkPolicy.apiServerCIDRs": ["10.0.0.0/24", "fd00::/64"]})
    policies = by_kind(docs, "NetworkPolicy")
    [webhook_rule] = policies["psmdb-backup-webhook"]["spec"]["ingress"]
    assert webhook_rule["ports"] == [{"port": 8443, "protocol": "TCP"}]
    assert webhook_rule["from"] == [
        {"ipBlock": {"cidr": "10.0.0.0/24"}},
        {"ipBlock": {"cidr": "fd00::/64"}},
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}},
        {"podSelector": {"matchLabels": {"app.kubernetes.io/name": NAME, "app.kubernetes.io/component": "test"}}},
    ]
    assert helm_test_pod()["metadata"]["labels"]["app.kubernetes.io/component"] == "test"
    [controller_rule] = policies["psmdb-backup-controller"]["spec"]["ingress"]
    assert controller_rule["ports"] == [{"port": 8080, "protocol": "TCP"}]
    assert policies["psmdb-backup-controller"]["spec"]["podSelector"]["matchLabels"] == {
        "app.kubernetes.io/name": "psmdb-backup-webhook",
        "app.kubernetes.io/component": "controller",
    }
    off = template(
        {"networkPolicy.enabled": True, "networkPolicy.apiServerCIDRs": ["10.0.0.0/24"], "controller.enabled": False}
    )
    assert set(by_kind(off, "NetworkPolicy")) == {"psmdb-backup-webhook"}
    assert "NetworkPolicy" not in {d["kind"] for d in template()}


def test_network_policy_without_api_server_cidrs_is_refused() -> None:
    proc = run_helm("template", RELEASE, str(CHART), *set_args({"networkPolicy.enabled": True}), check=False)
    assert proc.returncode != 0 and re.search(r"networkPolicy/apiServerCIDRs.*minItems|minimum 1 items", proc.stderr), (
        proc.stderr
    )
