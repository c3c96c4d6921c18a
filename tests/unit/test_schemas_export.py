"""`psmdb-backup schemas export`: standalone schemas, the kubeconform file names, and the CEL rules as JSON Schema
(checked here with jsonschema; tests/unit/test_schemas_kubeconform.py runs kubeconform itself)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from webhook import schemas_export
from webhook.cli import main
from webhook.policy import kinds
from webhook.schemas_export import CEL_RULES, ExportError, export, standalone_schema

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "schemas"
CRDS = ROOT / "manifests" / "crds"


def docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def crd_schema(kind: str) -> dict[str, Any]:
    """The CRD's structural schema (no CEL): what a converted-CRD schema catalog gives kubeconform users."""
    for path in CRDS.glob("*.yaml"):
        crd = yaml.safe_load(path.read_text())
        if crd["spec"]["names"]["kind"] == kind:
            return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    raise AssertionError(f"no CRD for {kind}")


def valid(schema: dict[str, Any], obj: dict[str, Any]) -> bool:
    return jsonschema.Draft202012Validator(schema).is_valid(obj)


def walk(node: Any):
    if isinstance(node, dict):
        yield node
        for v in node.values():
            yield from walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from walk(v)


def test_kubeconform_layout_names(tmp_path: Path) -> None:
    written = export(tmp_path)
    assert sorted(p.name for p in written) == [
        "perconaservermongodb-psmdb-v1.json",
        "perconaservermongodbbackup-psmdb-v1.json",
        "perconaservermongodbbackupschedule-psmdb-backup-webhook-v1alpha1.json",
        "perconaservermongodbrestore-psmdb-v1.json",
    ]
    assert sorted(p.name for p in export(tmp_path / "plain", "plain")) == [
        "perconaservermongodb_v1.json",
        "perconaservermongodbbackup_v1.json",
        "perconaservermongodbbackupschedule_v1alpha1.json",
        "perconaservermongodbrestore_v1.json",
    ]


@pytest.mark.parametrize("kind", kinds.CHECKED_KINDS)
def test_schema_is_standalone_and_valid_2020_12(kind: str) -> None:
    schema = standalone_schema(kind)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"  # kubeconform defaults to draft 4
    for node in walk(schema):
        assert not {"$ref", "$id", "x-kubernetes-validations", "x-message"} & set(node), node


def test_every_good_example_is_valid() -> None:
    for path in sorted((ROOT / "examples" / "good").glob("*.yaml")):
        for obj in docs(path):
            if obj["kind"] in schemas_export.SCHEMA_FILES:
                assert valid(standalone_schema(obj["kind"]), obj), f"{path.name}: {obj['metadata']['name']}"


@pytest.mark.parametrize("obj", docs(DATA / "cel-invalid.yaml"), ids=lambda o: o["metadata"]["name"])
def test_cel_only_violations_are_rejected(obj: dict[str, Any]) -> None:
    assert valid(crd_schema(obj["kind"]), obj), "not a CEL-only case: the CRD's structure already rejects it"
    assert not valid(standalone_schema(obj["kind"]), obj)


@pytest.mark.parametrize("obj", docs(DATA / "cel-valid.yaml"), ids=lambda o: o["metadata"]["name"])
def test_cel_valid_objects_stay_valid(obj: dict[str, Any]) -> None:
    assert valid(standalone_schema(obj["kind"]), obj)


def test_the_untranslatable_rule_is_stated_in_the_description() -> None:
    selective = standalone_schema(kinds.RESTORE)["properties"]["spec"]["properties"]["selective"]
    assert "nsFrom and nsTo can't be the same" in selective["description"]


def test_an_unknown_cel_rule_stops_the_export(monkeypatch: pytest.MonkeyPatch) -> None:
    schema = {"type": "object", "x-kubernetes-validations": [{"rule": "self.a == 1", "message": "m"}]}
    monkeypatch.setattr(schemas_export, "load_schema", lambda kind: schema)
    with pytest.raises(ExportError, match="self.a == 1"):
        standalone_schema(kinds.BACKUP)


def test_every_cel_rule_of_the_schemas_is_known() -> None:
    rules = {
        v["rule"]
        for kind in schemas_export.SCHEMA_FILES
        for node in walk(schemas_export.load_schema(kind))
        for v in node.get("x-kubernetes-validations", [])
    }
    assert rules == set(CEL_RULES)


def test_cr_version_pins_the_cluster() -> None:
    schema = standalone_schema(kinds.CLUSTER, "1.22")
    cluster = docs(ROOT / "examples" / "good" / "cluster.yaml")[0]
    for version, ok in (("1.22.0", True), ("1.22", True), ("", True), ("1.23.0", False), ("1.220.0", False)):
        cluster["spec"]["crVersion"] = version
        assert valid(schema, cluster) is ok, version


def test_cli_export_and_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schemas", "export", str(tmp_path), "--format", "plain"]) == 0
    out, err = capsys.readouterr()
    assert "perconaservermongodbrestore_v1.json" in out
    assert "{{.ResourceKind}}_{{.ResourceAPIVersion}}.json" in err
    assert json.loads((tmp_path / "perconaservermongodb_v1.json").read_text())["type"] == "object"
    assert main(["schemas", "export", str(tmp_path / "x"), "--cr-version", "1.19"]) == 2
    assert "1.20.0 to 1.23.0" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_the_schedule_schema_checks_the_spec(tmp_path: Path) -> None:
    [path] = [p for p in export(tmp_path) if "schedule" in p.name]
    schema = json.loads(path.read_text())
    [good] = docs(ROOT / "examples" / "good" / "schedule.yaml")
    assert valid(schema, good)
    for field, value in (("concurrencyPolicy", "Replace"), ("type", "external"), ("startingDeadlineSeconds", -1)):
        assert not valid(schema, {**good, "spec": {**good["spec"], field: value}}), field
    assert not valid(schema, {**good, "spec": {**good["spec"], "retention": {"maxAge": "7 days"}}})
    assert not valid(schema, {**good, "spec": {k: v for k, v in good["spec"].items() if k != "schedule"}})
