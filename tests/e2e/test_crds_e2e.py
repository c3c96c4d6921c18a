"""The generated CRDs (manifests/crds/) and webhook configurations (manifests/webhook/) on a real kube-apiserver.

One control plane (etcd + kube-apiserver only) for the module. Objects are sent with ``--dry-run=server`` unless a
test needs them stored (printer columns).
"""

from __future__ import annotations

import copy
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tools.controlplane import ControlPlane, find_bin_dir  # noqa: E402

CRD_DIR = REPO_ROOT / "manifests" / "crds"
WEBHOOK_DIR = REPO_ROOT / "manifests" / "webhook"
GOOD = REPO_ROOT / "examples" / "good"
NAMESPACE = "psmdb"  # the namespace of every object in examples/good
CRD_NAMES = [
    "perconaservermongodbs.psmdb.percona.com",
    "perconaservermongodbbackups.psmdb.percona.com",
    "perconaservermongodbrestores.psmdb.percona.com",
    "perconaservermongodbbackupschedules.psmdb-backup-webhook.io",
]

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def cp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    plane = ControlPlane(
        find_bin_dir(), tmp_path_factory.mktemp("controlplane"), with_kwok=False, with_controllers=False
    )
    plane.start()
    try:
        yield plane
    finally:
        plane.stop()


@pytest.fixture(scope="module")
def crds(cp: ControlPlane) -> str:
    """Apply manifests/crds/, wait until Established, create the examples' namespace; kubectl's stderr."""
    applied = cp.kubectl("apply", "-f", str(CRD_DIR))
    cp.kubectl("wait", "--for=condition=Established", "--timeout=60s", *(f"crd/{n}" for n in CRD_NAMES), timeout=90)
    cp.create_namespace(NAMESPACE)
    return applied.stderr


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _dry_run(cp: ControlPlane, obj: dict[str, Any] | list[dict[str, Any]], *flags: str) -> Any:
    docs = obj if isinstance(obj, list) else [obj]
    text = "\n---\n".join(json.dumps(d) for d in docs)
    return cp.kubectl("apply", "--dry-run=server", "-o", "json", *flags, "-f", "-", input=text, check=False)


def _items(output: str) -> list[dict[str, Any]]:
    parsed = json.loads(output)
    return parsed["items"] if parsed.get("kind") == "List" else [parsed]


def _is_subset(small: Any, big: Any) -> bool:
    if isinstance(small, dict):
        return isinstance(big, dict) and all(k in big and _is_subset(v, big[k]) for k, v in small.items())
    if isinstance(small, list):
        return isinstance(big, list) and len(small) == len(big) and all(map(_is_subset, small, big))
    return small == big


def _restore(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "psmdb.percona.com/v1",
        "kind": "PerconaServerMongoDBRestore",
        "metadata": {"name": "cel-check", "namespace": NAMESPACE},
        "spec": {"clusterName": "my-cluster", "backupName": "before-upgrade", **spec},
    }


def _errors(stderr: str) -> list[str]:
    """The API server's causes of an Invalid error as kubectl prints them: inline after "is invalid: " when there
    is one, else one per "* " line."""
    causes = []
    for line in stderr.splitlines():
        if line.startswith("* "):
            causes.append(line[2:])
        elif " is invalid: " in line and line.split(" is invalid: ", 1)[1].strip():
            causes.append(line.split(" is invalid: ", 1)[1].strip())
    return causes


# --------------------------------------------------------------------------------------------- CRDs


def test_crds_are_established_and_accepted_without_warnings(cp: ControlPlane, crds: str) -> None:
    assert "Warning" not in crds and "warning" not in crds, crds  # e.g. no CEL cost or schema warnings
    for name in CRD_NAMES:
        got = json.loads(cp.kubectl("get", "crd", name, "-o", "json").stdout)
        conditions = {c["type"]: c["status"] for c in got["status"]["conditions"]}
        assert conditions["Established"] == "True"
        assert conditions["NamesAccepted"] == "True"
        assert conditions.get("NonStructuralSchema", "False") == "False"
        assert got["status"]["acceptedNames"]["shortNames"] == got["spec"]["names"]["shortNames"]


@pytest.mark.parametrize("file", ["cluster.yaml", "backup.yaml", "restore.yaml", "schedule.yaml"])
def test_good_examples_are_accepted_and_nothing_is_pruned(cp: ControlPlane, crds: str, file: str) -> None:
    docs = _docs(GOOD / file)
    result = _dry_run(cp, docs)
    assert result.returncode == 0, result.stderr
    items = _items(result.stdout)
    assert [i["metadata"]["name"] for i in items] == [d["metadata"]["name"] for d in docs]
    for sent, stored in zip(docs, items):
        assert _is_subset(sent["spec"], stored["spec"]), (sent["spec"], stored["spec"])


def test_backup_gets_the_crd_default_starting_deadline(cp: ControlPlane, crds: str) -> None:
    [backup] = _docs(GOOD / "backup.yaml")
    result = _dry_run(cp, backup)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["spec"]["startingDeadlineSeconds"] == 120


def test_open_parts_of_the_cluster_spec_keep_unknown_fields(cp: ControlPlane, crds: str) -> None:
    [cluster] = _docs(GOOD / "cluster.yaml")
    cluster = copy.deepcopy(cluster)
    cluster["spec"]["sharding"] = {"enabled": False, "mongos": {"size": 3}}  # mongos: not in our schema
    cluster["spec"]["backup"]["podSecurityContext"] = {"fsGroup": 1001}
    result = _dry_run(cp, cluster)
    assert result.returncode == 0, result.stderr
    spec = json.loads(result.stdout)["spec"]
    assert spec["sharding"]["mongos"] == {"size": 3}
    assert spec["backup"]["podSecurityContext"] == {"fsGroup": 1001}


def test_closed_objects_reject_unknown_fields_and_prune_them_without_strict_validation(
    cp: ControlPlane, crds: str
) -> None:
    [cluster] = _docs(GOOD / "cluster.yaml")
    cluster = copy.deepcopy(cluster)
    cluster["spec"]["backup"]["storages"]["s3-us-west"]["s3"]["bucketName"] = "typo"
    strict = _dry_run(cp, cluster)
    assert strict.returncode != 0
    assert 'unknown field "spec.backup.storages.s3-us-west.s3.bucketName"' in strict.stderr
    lax = _dry_run(cp, cluster, "--validate=false")
    assert lax.returncode == 0, lax.stderr
    assert "bucketName" not in json.loads(lax.stdout)["spec"]["backup"]["storages"]["s3-us-west"]["s3"]


def test_schema_requirements_are_enforced(cp: ControlPlane, crds: str) -> None:
    [cluster] = _docs(GOOD / "cluster.yaml")
    cluster = copy.deepcopy(cluster)
    del cluster["spec"]["backup"]["image"]
    result = _dry_run(cp, cluster)
    assert result.returncode != 0
    assert "spec.backup.image: Required value" in _errors(result.stderr)

    [backup] = _docs(GOOD / "backup.yaml")
    backup = copy.deepcopy(backup)
    backup["spec"]["type"] = "full"
    backup["spec"]["startingDeadlineSeconds"] = 0
    result = _dry_run(cp, backup)
    assert result.returncode != 0
    errors = "\n".join(_errors(result.stderr))
    assert 'spec.type: Unsupported value: "full"' in errors
    assert (
        "spec.startingDeadlineSeconds: Invalid value: 0: spec.startingDeadlineSeconds in body should be greater "
        "than or equal to 1" in errors
    )


def _schedule(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "psmdb-backup-webhook.io/v1alpha1",
        "kind": "PerconaServerMongoDBBackupSchedule",
        "metadata": {"name": "schema-check", "namespace": NAMESPACE},
        "spec": {"clusterName": "my-cluster", "schedule": "0 1 * * *", **spec},
    }


def test_schedule_gets_the_crd_defaults(cp: ControlPlane, crds: str) -> None:
    result = _dry_run(cp, _schedule(retention={"count": 3}))
    assert result.returncode == 0, result.stderr
    spec = json.loads(result.stdout)["spec"]
    assert {k: spec[k] for k in ("type", "startingDeadlineSeconds", "suspend", "concurrencyPolicy")} == {
        "type": "logical",
        "startingDeadlineSeconds": 300,
        "suspend": False,
        "concurrencyPolicy": "Forbid",
    }
    assert spec["retention"] == {"count": 3, "deleteFromStorage": True}


def test_schedule_schema_is_enforced(cp: ControlPlane, crds: str) -> None:
    missing = _schedule()
    del missing["spec"]["schedule"]
    result = _dry_run(cp, missing)
    assert result.returncode != 0
    assert "spec.schedule: Required value" in _errors(result.stderr)
    result = _dry_run(
        cp,
        _schedule(
            concurrencyPolicy="Replace", type="external", startingDeadlineSeconds=-1, retention={"maxAge": "7 days"}
        ),
    )
    assert result.returncode != 0
    errors = "\n".join(_errors(result.stderr))
    assert 'spec.concurrencyPolicy: Unsupported value: "Replace"' in errors
    assert 'spec.type: Unsupported value: "external"' in errors
    assert "spec.startingDeadlineSeconds in body should be greater than or equal to 0" in errors
    assert 'spec.retention.maxAge: Invalid value: "7 days"' in errors


def test_schedule_status_is_a_subresource(cp: ControlPlane, crds: str) -> None:
    obj = _schedule()
    obj["metadata"]["name"] = "status-check"
    obj["status"] = {"missedSlots": 3}
    cp.kubectl("apply", "-f", "-", input=json.dumps(obj))
    stored = json.loads(cp.kubectl("get", "psmdb-schedule", "status-check", "-n", NAMESPACE, "-o", "json").stdout)
    assert "status" not in stored  # written only through /status
    patch = json.dumps({"status": {"missedSlots": 2, "active": ["b1"]}})
    cp.kubectl(
        "patch", "psmdb-schedule", "status-check", "-n", NAMESPACE, "--subresource=status", "--type=merge", "-p", patch
    )
    stored = json.loads(cp.kubectl("get", "psmdb-schedule", "status-check", "-n", NAMESPACE, "-o", "json").stdout)
    assert stored["status"] == {"missedSlots": 2, "active": ["b1"]}
    bad = json.dumps({"status": {"missedSlots": -1}})
    result = cp.kubectl(
        "patch",
        "psmdb-schedule",
        "status-check",
        "-n",
        NAMESPACE,
        "--subresource=status",
        "--type=merge",
        "-p",
        bad,
        check=False,
    )
    assert result.returncode != 0 and "status.missedSlots" in result.stderr


# --------------------------------------------------------------------------------------------- CEL


def test_cel_rejects_a_date_with_latest(cp: ControlPlane, crds: str) -> None:
    result = _dry_run(cp, _restore(pitr={"type": "latest", "date": "2026-11-20 12:00:00"}))
    assert result.returncode != 0
    assert _errors(result.stderr) == [
        """spec.pitr: Invalid value: "object": Date should not be used when 'latest' type is used"""
    ]


def test_cel_rejects_ns_from_without_ns_to(cp: ControlPlane, crds: str) -> None:
    result = _dry_run(cp, _restore(selective={"nsFrom": "shop.orders"}))
    assert result.returncode != 0
    errors = _errors(result.stderr)
    assert errors[0] == 'spec.selective: Invalid value: "object": nsFrom and nsTo need to be set together'
    # The operator's second rule reads self.nsTo unguarded, so the API server reports its evaluation error too.
    assert errors[1:] == [
        """spec.selective: Invalid value: "object": no such key: nsTo evaluating rule: nsFrom and nsTo can't be """
        "the same"
    ]


def test_cel_rejects_equal_ns_from_and_ns_to(cp: ControlPlane, crds: str) -> None:
    result = _dry_run(cp, _restore(selective={"nsFrom": "shop.orders", "nsTo": "shop.orders"}))
    assert result.returncode != 0
    assert _errors(result.stderr) == ["""spec.selective: Invalid value: "object": nsFrom and nsTo can't be the same"""]


def test_cel_and_pattern_reject_a_malformed_date(cp: ControlPlane, crds: str) -> None:
    result = _dry_run(cp, _restore(pitr={"type": "date", "date": "2026-11-20T12:00:00Z"}))
    assert result.returncode != 0
    errors = "\n".join(_errors(result.stderr))
    assert 'spec.pitr.date: Invalid value: "2026-11-20T12:00:00Z": spec.pitr.date in body should match' in errors
    assert "Time should be in format YYYY-MM-DD HH:MM:SS with valid ranges" in errors


def test_cel_accepts_latest_without_date(cp: ControlPlane, crds: str) -> None:
    result = _dry_run(cp, _restore(pitr={"type": "latest"}))
    assert result.returncode == 0, result.stderr


def test_pitr_without_type_fails_rule_evaluation_as_with_the_operators_crd(cp: ControlPlane, crds: str) -> None:
    # The operator's rules read self.type unguarded; copied verbatim, so the same request fails the same way.
    result = _dry_run(cp, _restore(pitr={"date": "2026-11-20 12:00:00"}))
    assert result.returncode != 0
    assert _errors(result.stderr) == [
        """spec.pitr: Invalid value: "object": no such key: type evaluating rule: Date should not be used when """
        "'latest' type is used"
    ]


def test_api_server_enforces_the_cel_cost_budget_the_generated_rules_pass(cp: ControlPlane, crds: str) -> None:
    """The generated CRDs' acceptance means something: the same CRD with one costly rule is refused."""
    restore_crd = yaml.safe_load((CRD_DIR / "psmdb.percona.com_perconaservermongodbrestores.yaml").read_text())
    spec = restore_crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    spec["properties"]["selective"]["x-kubernetes-validations"].append(
        {"rule": "self.namespaces.all(x, self.namespaces.all(y, x.matches(y)))", "message": "costly"}
    )
    result = _dry_run(cp, restore_crd)
    assert result.returncode != 0
    assert "estimated rule cost exceeds budget" in result.stderr


# --------------------------------------------------------------------------------------------- printer columns


def test_printer_columns_and_short_names(cp: ControlPlane, crds: str) -> None:
    for file in ("cluster.yaml", "backup.yaml", "restore.yaml"):
        cp.kubectl("apply", "-f", str(GOOD / file))
    headers = {
        short: cp.kubectl("get", short, "-n", NAMESPACE).stdout.splitlines()[0].split()
        for short in ("psmdb", "psmdb-backup", "psmdb-restore")
    }
    assert headers == {
        "psmdb": ["NAME", "ENDPOINT", "STATUS", "AGE"],
        "psmdb-backup": ["NAME", "CLUSTER", "STORAGE", "DESTINATION", "TYPE", "SIZE", "STATUS", "COMPLETED", "AGE"],
        "psmdb-restore": ["NAME", "CLUSTER", "STATUS", "AGE"],
    }
    row = cp.kubectl("get", "psmdb-backup", "before-upgrade", "-n", NAMESPACE, "--no-headers").stdout.split()
    assert row[:3] == ["before-upgrade", "my-cluster", "azure-blob"]


def test_schedule_printer_columns_and_category(cp: ControlPlane, crds: str) -> None:
    cp.kubectl("apply", "-f", str(GOOD / "schedule.yaml"))
    status = {
        "active": ["cron-my-cluster-20261203060000-abc123"],
        "lastScheduleTime": "2026-12-03T06:00:00Z",
        "nextScheduleTime": "2099-12-03T12:00:00Z",
    }
    cp.kubectl(
        "patch",
        "psmdb-schedule",
        "six-hourly-minio",
        "-n",
        NAMESPACE,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": status}),
    )
    header, row = cp.kubectl("get", "psmdb-schedule", "six-hourly-minio", "-n", NAMESPACE).stdout.splitlines()[:2]
    assert re.split(r"\s{2,}", header.strip()) == [
        "NAME",
        "SCHEDULE",
        "SUSPEND",
        "ACTIVE",
        "LAST SCHEDULE",
        "LAST SUCCESS",
        "NEXT",
        "AGE",
    ]
    assert "CRON_TZ=Europe/Berlin 0 */6 * * *" in row and "false" in row
    assert "cron-my-cluster-20261203060000-abc123" in row
    assert "2099-12-03T12:00:00Z" in row  # NEXT is a string column: a date column would print <invalid>
    listed = cp.kubectl("get", "psmdb-backup-webhook", "-n", NAMESPACE, "-o", "name").stdout.split()
    assert "perconaservermongodbbackupschedule.psmdb-backup-webhook.io/six-hourly-minio" in listed


# --------------------------------------------------------------------------------------------- webhook configs


def test_webhook_configurations_are_accepted(cp: ControlPlane) -> None:
    result = cp.kubectl("apply", "--dry-run=server", "-o", "json", "-k", str(WEBHOOK_DIR), check=False)
    assert result.returncode == 0, result.stderr
    kinds = sorted((i["kind"], i["metadata"]["name"]) for i in _items(result.stdout))
    assert kinds == [
        ("MutatingWebhookConfiguration", "psmdb-backup-webhook"),
        ("ValidatingWebhookConfiguration", "psmdb-backup-webhook"),
    ]
