"""manifests/webhook/: the admission webhook configurations say what the admission server and the injector expect."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from webhook import sidecar

WEBHOOK_DIR = Path(__file__).resolve().parents[2] / "manifests" / "webhook"
INSTALL_NAMESPACE = "psmdb-backup-system"
CRD_RESOURCES = ["perconaservermongodbs", "perconaservermongodbbackups", "perconaservermongodbrestores"]


def _load(name: str) -> dict[str, Any]:
    docs = [d for d in yaml.safe_load_all((WEBHOOK_DIR / name).read_text()) if d is not None]
    assert len(docs) == 1, name
    return docs[0]


VALIDATING = _load("validatingwebhookconfiguration.yaml")
MUTATING = _load("mutatingwebhookconfiguration.yaml")
[VALIDATE] = VALIDATING["webhooks"]
[INJECT] = MUTATING["webhooks"]


def selects(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """metav1.LabelSelector semantics (matchLabels AND every matchExpression)."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
        assert op in ("In", "NotIn", "Exists", "DoesNotExist"), op
    return True


def test_kustomization_lists_both_configurations() -> None:
    kustomization = _load("kustomization.yaml")
    assert kustomization["kind"] == "Kustomization"
    assert sorted(kustomization["resources"]) == [
        "mutatingwebhookconfiguration.yaml",
        "validatingwebhookconfiguration.yaml",
    ]


def test_kinds_and_names() -> None:
    assert (VALIDATING["apiVersion"], VALIDATING["kind"]) == (
        "admissionregistration.k8s.io/v1",
        "ValidatingWebhookConfiguration",
    )
    assert (MUTATING["apiVersion"], MUTATING["kind"]) == (
        "admissionregistration.k8s.io/v1",
        "MutatingWebhookConfiguration",
    )
    assert VALIDATING["metadata"]["name"] == MUTATING["metadata"]["name"] == "psmdb-backup-webhook"
    assert VALIDATE["name"] == "validate.psmdb-backup-webhook.io"
    assert INJECT["name"] == "inject.psmdb-backup-webhook.io"


@pytest.mark.parametrize(("hook", "path"), [(VALIDATE, "/validate"), (INJECT, "/mutate")], ids=["validate", "inject"])
def test_common_settings(hook: dict, path: str) -> None:
    assert hook["clientConfig"]["service"] == {
        "name": "psmdb-backup-webhook",
        "namespace": INSTALL_NAMESPACE,
        "path": path,
        "port": 443,
    }
    assert "url" not in hook["clientConfig"]
    assert hook["sideEffects"] == "None"
    assert hook["admissionReviewVersions"] == ["v1"]
    assert hook["timeoutSeconds"] <= 10
    assert hook["timeoutSeconds"] == 5
    assert hook["matchPolicy"] == "Equivalent"


def test_validating_rules_cover_the_four_crds_on_create_and_update() -> None:
    psmdb, schedules = VALIDATE["rules"]
    assert psmdb["apiGroups"] == ["psmdb.percona.com"]
    assert psmdb["apiVersions"] == ["v1"]
    assert sorted(psmdb["resources"]) == sorted(CRD_RESOURCES)  # no "/status": status writes are not validated
    assert schedules["apiGroups"] == ["psmdb-backup-webhook.io"]
    assert schedules["apiVersions"] == ["v1alpha1"]
    assert schedules["resources"] == ["perconaservermongodbbackupschedules"]
    for rule in (psmdb, schedules):
        assert sorted(rule["operations"]) == ["CREATE", "UPDATE"]
        assert rule["scope"] == "Namespaced"


def test_mutating_rule_is_pod_create_only() -> None:
    [rule] = INJECT["rules"]
    assert (rule["apiGroups"], rule["apiVersions"], rule["operations"], rule["resources"]) == (
        [""],
        ["v1"],
        ["CREATE"],
        ["pods"],
    )


def test_failure_policies() -> None:
    assert VALIDATE["failurePolicy"] == "Fail"  # a bad spec must never slip through
    assert INJECT["failurePolicy"] == "Ignore"  # a pod must never be blocked from starting


@pytest.mark.parametrize("name", ["validatingwebhookconfiguration.yaml", "mutatingwebhookconfiguration.yaml"])
def test_failure_policy_choice_is_explained_in_a_comment(name: str) -> None:
    lines = (WEBHOOK_DIR / name).read_text().splitlines()
    i = next(n for n, line in enumerate(lines) if line.strip().startswith("failurePolicy:"))
    assert lines[i - 1].strip().startswith("#")


@pytest.mark.parametrize("hook", [VALIDATE, INJECT], ids=["validate", "inject"])
def test_namespace_selector_excludes_the_install_namespace_kube_system_and_opted_out(hook: dict) -> None:
    selector = hook["namespaceSelector"]
    name = "kubernetes.io/metadata.name"
    assert not selects(selector, {name: INSTALL_NAMESPACE})
    assert not selects(selector, {name: "kube-system"})
    assert not selects(selector, {name: "psmdb", "psmdb-backup-webhook.io/ignore": "true"})
    assert selects(selector, {name: "psmdb"})
    assert selects(selector, {name: "psmdb", "psmdb-backup-webhook.io/ignore": "false"})


def test_validating_webhook_sees_every_object_in_its_namespaces() -> None:
    assert "objectSelector" not in VALIDATE


COMPONENTS = ["mongod", "cfg", "arbiter", "mongos", "nonVoting", "hidden", "search", None]


def test_object_selector_matches_exactly_the_pods_the_injector_wants() -> None:
    """Every combination of the operator's labels: the API server sends a pod iff the injector would inject."""
    combinations = itertools.product(
        [sidecar.APP_NAME, "other", None],
        ["my-cluster", None],
        COMPONENTS,
        ["rs0", "cfg", None],
        [None, "false", "true"],
    )
    checked = 0
    for name, instance, component, replset, opt_out in combinations:
        labels = {
            key: value
            for key, value in (
                (sidecar.LABEL_NAME, name),
                (sidecar.LABEL_INSTANCE, instance),
                (sidecar.LABEL_COMPONENT, component),
                (sidecar.LABEL_REPLSET, replset),
                (sidecar.OPT_OUT_ANNOTATION, opt_out),
            )
            if value is not None
        }
        identity = sidecar.identify({"metadata": {"labels": labels}})
        wanted = identity is not None and sidecar.wants_sidecar(identity) and opt_out != "false"
        assert selects(INJECT["objectSelector"], labels) == wanted, labels
        checked += wanted
    assert checked == 4 * 2 * 2  # mongod, cfg, nonVoting, hidden x two replsets x (no label, inject=true)


def test_object_selector_uses_the_injector_label_keys() -> None:
    selector = INJECT["objectSelector"]
    keys = set(selector["matchLabels"]) | {e["key"] for e in selector["matchExpressions"]}
    assert keys == {
        sidecar.LABEL_NAME,
        sidecar.LABEL_INSTANCE,
        sidecar.LABEL_COMPONENT,
        sidecar.LABEL_REPLSET,
        sidecar.OPT_OUT_ANNOTATION,
    }
    assert selector["matchLabels"][sidecar.LABEL_NAME] == sidecar.APP_NAME
