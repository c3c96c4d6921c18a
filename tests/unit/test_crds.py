"""manifests/crds/ is what tools/gen_crds.py makes from schemas/, and each file is a structural apiextensions v1 CRD.

The structural check here is offline; tests/e2e/test_crds_e2e.py has a real kube-apiserver accept the same files.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tools import gen_crds  # noqa: E402

CRD_DIR = REPO_ROOT / "manifests" / "crds"
SCHEMA_DIR = REPO_ROOT / "schemas"

# Keywords apiextensions.k8s.io/v1 JSONSchemaProps accepts in a structural schema (no $ref, no definitions, no
# oneOf/anyOf/allOf/not here: the generator never needs them, and they are tightly restricted in structural schemas).
ALLOWED = frozenset(
    {
        "type",
        "format",
        "title",
        "description",
        "default",
        "example",
        "externalDocs",
        "nullable",
        "enum",
        "maximum",
        "exclusiveMaximum",
        "minimum",
        "exclusiveMinimum",
        "multipleOf",
        "maxLength",
        "minLength",
        "pattern",
        "maxItems",
        "minItems",
        "uniqueItems",
        "maxProperties",
        "minProperties",
        "required",
        "items",
        "properties",
        "additionalProperties",
        "x-kubernetes-preserve-unknown-fields",
        "x-kubernetes-int-or-string",
        "x-kubernetes-embedded-resource",
        "x-kubernetes-list-type",
        "x-kubernetes-list-map-keys",
        "x-kubernetes-map-type",
        "x-kubernetes-validations",
    }
)
TYPES = {"object", "array", "string", "integer", "number", "boolean"}
PYTHON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
}
COLUMN_TYPES = {"integer", "number", "string", "boolean", "date"}


def _has_type(value: object, type_: str) -> bool:
    if isinstance(value, bool) and type_ in ("integer", "number"):
        return False
    return isinstance(value, PYTHON_TYPES[type_])


def structural_problems(node: object, path: str = "") -> Iterator[str]:
    """Every way `node` (an openAPIV3Schema node and what is below it) breaks the structural-schema rules."""
    if not isinstance(node, Mapping):
        yield f"{path}: a schema node must be a mapping"
        return
    for key in sorted(set(node) - ALLOWED):
        yield f"{path}: {key} is not allowed in a structural schema"
    preserve = node.get("x-kubernetes-preserve-unknown-fields")
    if preserve is not None and preserve is not True:
        yield f"{path}: x-kubernetes-preserve-unknown-fields must be true when present"
    type_ = node.get("type")
    if type_ is None:
        if not (preserve or node.get("x-kubernetes-int-or-string")):
            yield f"{path}: no type"
    elif type_ not in TYPES:
        yield f"{path}: unknown type {type_!r}"
    if node.get("uniqueItems") is True:
        yield f"{path}: uniqueItems: true is forbidden"
    if "properties" in node and "additionalProperties" in node:
        yield f"{path}: properties and additionalProperties are mutually exclusive"
    if "additionalProperties" in node and not isinstance(node["additionalProperties"], Mapping):
        yield f"{path}: additionalProperties must be a schema, not {node['additionalProperties']!r}"
    for key in ("properties", "additionalProperties", "required"):
        if key in node and type_ != "object":
            yield f"{path}: {key} on a node of type {type_}"
    if type_ == "array" and not isinstance(node.get("items"), Mapping):
        yield f"{path}: an array needs one items schema"
    if "items" in node and type_ != "array":
        yield f"{path}: items on a node of type {type_}"
    for name in node.get("required", []):
        if name not in node.get("properties", {}):
            yield f"{path}: required field {name} is not a property"
    if type_ in TYPES:
        for value in node.get("enum", []):
            if not _has_type(value, type_):
                yield f"{path}: enum value {value!r} is not a {type_}"
        if "default" in node and not _has_type(node["default"], type_):
            yield f"{path}: default {node['default']!r} is not a {type_}"
    if "pattern" in node:
        try:
            re.compile(node["pattern"])
        except re.error as err:
            yield f"{path}: pattern does not compile: {err}"
    for i, rule in enumerate(node.get("x-kubernetes-validations", [])):
        if not (isinstance(rule.get("rule"), str) and isinstance(rule.get("message"), str)):
            yield f"{path}: x-kubernetes-validations[{i}] needs a rule and a message"
    for name, sub in node.get("properties", {}).items():
        yield from structural_problems(sub, f"{path}.{name}")
    if isinstance(node.get("additionalProperties"), Mapping):
        yield from structural_problems(node["additionalProperties"], f"{path}.*")
    if isinstance(node.get("items"), Mapping):
        yield from structural_problems(node["items"], f"{path}[]")


def crd_problems(crd: Mapping[str, Any]) -> list[str]:
    """Structural-schema problems plus the CRD-level rules of apiextensions.k8s.io/v1."""
    problems: list[str] = []
    if crd.get("apiVersion") != "apiextensions.k8s.io/v1" or crd.get("kind") != "CustomResourceDefinition":
        problems.append("not an apiextensions.k8s.io/v1 CustomResourceDefinition")
    spec, names = crd["spec"], crd["spec"]["names"]
    if crd["metadata"]["name"] != f"{names['plural']}.{spec['group']}":
        problems.append("metadata.name must be <plural>.<group>")
    for key in ("plural", "singular"):
        if names[key] != names[key].lower():
            problems.append(f"names.{key} must be lower case")
    if spec["scope"] not in ("Namespaced", "Cluster"):
        problems.append("bad scope")
    versions = spec["versions"]
    if sum(1 for v in versions if v.get("storage")) != 1:
        problems.append("exactly one version must be the storage version")
    for version in versions:
        schema = version["schema"]["openAPIV3Schema"]
        where = f"versions[{version['name']}]"
        problems += [f"{where}{p}" for p in structural_problems(schema)]
        if schema.get("type") != "object":
            problems.append(f"{where}: the root must be of type object")
        props = schema.get("properties", {})
        if props.get("metadata") != {"type": "object"}:
            problems.append(f"{where}: metadata may only be {{type: object}} here")
        for field in ("apiVersion", "kind"):
            if props.get(field) != {"type": "string"}:
                problems.append(f"{where}: {field} must be {{type: string}}")
        for column in version.get("additionalPrinterColumns", []):
            if column.get("type") not in COLUMN_TYPES or not str(column.get("jsonPath", "")).startswith("."):
                problems.append(f"{where}: bad printer column {column}")
    return problems


def load(crd: gen_crds.Crd) -> dict[str, Any]:
    return yaml.safe_load(crd.out_file.read_text())


def schema_of(crd: gen_crds.Crd) -> dict[str, Any]:
    return load(crd)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def walk(node: Mapping[str, Any], path: str = "") -> Iterator[tuple[str, Mapping[str, Any]]]:
    yield path, node
    for name, sub in node.get("properties", {}).items():
        yield from walk(sub, f"{path}.{name}")
    if isinstance(node.get("additionalProperties"), Mapping):
        yield from walk(node["additionalProperties"], f"{path}.*")
    if isinstance(node.get("items"), Mapping):
        yield from walk(node["items"], f"{path}[]")


BY_KIND = {crd.kind: crd for crd in gen_crds.CRDS}
CLUSTER = BY_KIND["PerconaServerMongoDB"]
BACKUP = BY_KIND["PerconaServerMongoDBBackup"]
RESTORE = BY_KIND["PerconaServerMongoDBRestore"]
SCHEDULE = BY_KIND["PerconaServerMongoDBBackupSchedule"]
PERCONA = (CLUSTER, BACKUP, RESTORE)


# --------------------------------------------------------------------------------------------- up to date


@pytest.mark.parametrize("crd", gen_crds.CRDS, ids=lambda c: c.plural)
def test_generated_file_is_current(crd: gen_crds.Crd) -> None:
    assert crd.out_file.read_text() == gen_crds.render(crd), "run python tools/gen_crds.py"


def test_generated_files_start_with_the_header() -> None:
    for crd in gen_crds.CRDS:
        assert crd.out_file.read_text().startswith("# Generated by tools/gen_crds.py from schemas/; do not edit.\n")


def test_crd_directory_holds_exactly_the_generated_files() -> None:
    assert sorted(CRD_DIR.glob("*.yaml")) == sorted(crd.out_file for crd in gen_crds.CRDS)


def test_check_mode_passes_on_the_repository() -> None:
    assert gen_crds.main(["--check"]) == 0


def test_check_mode_fails_when_out_of_date_and_generation_fixes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(gen_crds, "OUT_DIR", tmp_path / "crds")
    assert gen_crds.main(["--check"]) == 1
    assert "is out of date" in capsys.readouterr().err
    assert gen_crds.main([]) == 0
    assert gen_crds.main(["--check"]) == 0
    (tmp_path / "crds" / "psmdb.percona.com_perconaservermongodbbackups.yaml").write_text("# edited by hand\n")
    assert gen_crds.main(["--check"]) == 1


def test_generation_is_deterministic() -> None:
    assert gen_crds.generate() == gen_crds.generate()


# --------------------------------------------------------------------------------------------- structural


@pytest.mark.parametrize("crd", gen_crds.CRDS, ids=lambda c: c.plural)
def test_crd_is_a_structural_apiextensions_v1_crd(crd: gen_crds.Crd) -> None:
    assert crd_problems(load(crd)) == []


def test_structural_check_catches_what_the_api_server_rejects() -> None:
    bad = {
        "type": "object",
        "properties": {
            "a": {"type": "object", "properties": {"x": {"type": "string"}}, "additionalProperties": False},
            "b": {"properties": {"x": {"type": "string"}}},
            "c": {"$ref": "#/definitions/c"},
            "d": {"type": "string", "oneOf": [{"pattern": "a"}]},
            "e": {"type": "object", "x-kubernetes-preserve-unknown-fields": False},
            "f": {"type": "array"},
            "g": {"type": "object", "properties": {}, "required": ["missing"]},
            "h": {"type": "integer", "default": "1"},
        },
    }
    problems = "\n".join(structural_problems(bad))
    for expected in (
        ".a: properties and additionalProperties are mutually exclusive",
        ".b: no type",
        ".c: $ref is not allowed",
        ".d: oneOf is not allowed",
        ".e: x-kubernetes-preserve-unknown-fields must be true",
        ".f: an array needs one items schema",
        ".g: required field missing is not a property",
        ".h: default '1' is not a integer",
    ):
        assert expected in problems


def test_no_json_schema_only_keywords_survive() -> None:
    for crd in gen_crds.CRDS:
        text = crd.out_file.read_text()
        for keyword in ("$schema", "$id", "title:", "x-message", "additionalProperties: false"):
            assert keyword not in text, (crd.plural, keyword)


# --------------------------------------------------------------------------------------------- content


def test_names_scope_and_versions() -> None:
    expected = {
        CLUSTER: ("perconaservermongodbs", "perconaservermongodb", ["psmdb"]),
        BACKUP: ("perconaservermongodbbackups", "perconaservermongodbbackup", ["psmdb-backup"]),
        RESTORE: ("perconaservermongodbrestores", "perconaservermongodbrestore", ["psmdb-restore"]),
    }
    expected[SCHEDULE] = (
        "perconaservermongodbbackupschedules",
        "perconaservermongodbbackupschedule",
        ["psmdb-schedule"],
    )
    for crd, (plural, singular, short) in expected.items():
        doc = load(crd)
        group, served = ("psmdb-backup-webhook.io", "v1alpha1") if crd is SCHEDULE else ("psmdb.percona.com", "v1")
        assert doc["metadata"]["name"] == f"{plural}.{group}"
        assert doc["spec"]["group"] == group
        assert doc["spec"]["scope"] == "Namespaced"
        names = doc["spec"]["names"]
        assert (names["kind"], names["listKind"]) == (crd.kind, f"{crd.kind}List")
        assert (names["plural"], names["singular"], names["shortNames"]) == (plural, singular, short)
        assert names.get("categories") == (["psmdb-backup-webhook"] if crd is SCHEDULE else None)
        [version] = doc["spec"]["versions"]
        assert (version["name"], version["served"], version["storage"]) == (served, True, True)
        assert version["subresources"] == {"status": {}}


def _columns(crd: gen_crds.Crd) -> list[tuple[str, str, str]]:
    version = load(crd)["spec"]["versions"][0]
    return [(c["name"], c["type"], c["jsonPath"]) for c in version["additionalPrinterColumns"]]


def test_printer_columns_are_the_operators() -> None:
    assert _columns(BACKUP) == [
        ("Cluster", "string", ".spec.clusterName"),
        ("Storage", "string", ".spec.storageName"),
        ("Destination", "string", ".status.destination"),
        ("Type", "string", ".status.type"),
        ("Size", "string", ".status.size"),
        ("Status", "string", ".status.state"),
        ("Completed", "date", ".status.completed"),
        ("Age", "date", ".metadata.creationTimestamp"),
    ]
    assert _columns(RESTORE) == [
        ("Cluster", "string", ".spec.clusterName"),
        ("Status", "string", ".status.state"),
        ("Age", "date", ".metadata.creationTimestamp"),
    ]
    assert _columns(CLUSTER) == [
        ("ENDPOINT", "string", ".status.host"),
        ("STATUS", "string", ".status.state"),
        ("AGE", "date", ".metadata.creationTimestamp"),
    ]


def test_schedule_columns_are_a_cronjobs() -> None:
    assert _columns(SCHEDULE) == [
        ("SCHEDULE", "string", ".spec.schedule"),
        ("SUSPEND", "boolean", ".spec.suspend"),
        ("ACTIVE", "string", ".status.active"),
        ("LAST SCHEDULE", "date", ".status.lastScheduleTime"),
        ("LAST SUCCESS", "date", ".status.lastSuccessfulTime"),
        ("NEXT", "string", ".status.nextScheduleTime"),  # a date column would print a future time as <invalid>
        ("AGE", "date", ".metadata.creationTimestamp"),
    ]


def test_top_level_is_the_standard_shape_with_an_open_status() -> None:
    for crd in gen_crds.CRDS:
        schema = schema_of(crd)
        assert list(schema["properties"]) == ["apiVersion", "kind", "metadata", "spec", "status"]
        status = schema["properties"]["status"]
        assert status["type"] == "object" and status["x-kubernetes-preserve-unknown-fields"] is True
        if crd in PERCONA:
            assert status == {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
        assert "required" not in schema


def test_schedule_status_is_modelled_and_stays_open() -> None:
    status = schema_of(SCHEDULE)["properties"]["status"]
    assert sorted(status["properties"]) == sorted(
        [
            "observedGeneration",
            "lastScheduleTime",
            "lastSuccessfulTime",
            "lastBackupName",
            "nextScheduleTime",
            "active",
            "missedSlots",
            "conditions",
        ]
    )
    condition = status["properties"]["conditions"]["items"]
    assert condition["required"] == ["type", "status", "lastTransitionTime", "reason", "message"]
    assert condition["properties"]["status"]["enum"] == ["True", "False", "Unknown"]
    closed = {"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": False}
    with pytest.raises(gen_crds.GenerationError, match="keep it open"):
        gen_crds.openapi_schema({"properties": {"spec": closed, "status": closed}})


def test_schedule_spec_requirements_and_defaults() -> None:
    spec = schema_of(SCHEDULE)["properties"]["spec"]
    assert spec["required"] == ["clusterName", "schedule"]
    props = spec["properties"]
    assert props["type"]["enum"] == ["logical", "physical", "incremental", "incremental-base"]
    assert (
        props["concurrencyPolicy"]["enum"] == ["Forbid", "Allow"] and props["concurrencyPolicy"]["default"] == "Forbid"
    )
    assert props["startingDeadlineSeconds"]["minimum"] == 0 and props["startingDeadlineSeconds"]["default"] == 300
    assert props["suspend"]["default"] is False
    assert props["retention"]["properties"]["deleteFromStorage"]["default"] is True
    assert props["retention"]["properties"]["maxAge"]["pattern"] == "^([0-9]+[wdhm])+$"


def test_backup_section_requires_enabled_and_image() -> None:
    backup = schema_of(CLUSTER)["properties"]["spec"]["properties"]["backup"]
    assert backup["required"] == ["enabled", "image"]
    assert "x-kubernetes-preserve-unknown-fields" not in backup  # closed in the JSON Schema: unknown keys pruned


def test_open_json_schema_objects_preserve_unknown_fields() -> None:
    spec = schema_of(CLUSTER)["properties"]["spec"]
    assert spec["x-kubernetes-preserve-unknown-fields"] is True  # the cluster spec models only part of the CRD
    backup = spec["properties"]["backup"]["properties"]
    for name in ("podSecurityContext", "resources", "livenessProbe", "readinessProbe"):
        assert backup[name] == {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    assert spec["properties"]["replsets"]["items"]["x-kubernetes-preserve-unknown-fields"] is True
    assert "x-kubernetes-preserve-unknown-fields" not in schema_of(BACKUP)["properties"]["spec"]
    assert "x-kubernetes-preserve-unknown-fields" not in schema_of(RESTORE)["properties"]["spec"]
    assert "x-kubernetes-preserve-unknown-fields" not in schema_of(SCHEDULE)["properties"]["spec"]


def test_maps_stay_maps() -> None:
    backup = schema_of(CLUSTER)["properties"]["spec"]["properties"]["backup"]["properties"]
    assert backup["annotations"] == {"type": "object", "additionalProperties": {"type": "string"}}
    storage = backup["storages"]["additionalProperties"]
    assert storage["required"] == ["type"] and "s3" in storage["properties"]
    remap = schema_of(RESTORE)["properties"]["spec"]["properties"]["replsetRemapping"]
    assert remap == {"type": "object", "additionalProperties": {"type": "string"}}


def test_enums_defaults_and_minimums_are_kept() -> None:
    spec = schema_of(BACKUP)["properties"]["spec"]["properties"]
    assert spec["type"]["enum"] == ["logical", "physical", "external", "incremental", "incremental-base"]
    assert spec["startingDeadlineSeconds"] == {"type": "integer", "format": "int64", "minimum": 1, "default": 120}


def test_restore_cel_rules_and_pattern_are_copied_verbatim() -> None:
    source = json.loads((SCHEMA_DIR / "perconaservermongodbrestore.json").read_text())["properties"]["spec"]
    spec = schema_of(RESTORE)["properties"]["spec"]["properties"]
    for name in ("pitr", "selective"):
        assert spec[name]["x-kubernetes-validations"] == source["properties"][name]["x-kubernetes-validations"]
    assert (
        spec["pitr"]["properties"]["date"]["pattern"] == source["properties"]["pitr"]["properties"]["date"]["pattern"]
    )
    messages = [v["message"] for n in ("pitr", "selective") for v in spec[n]["x-kubernetes-validations"]]
    assert "Date should not be used when 'latest' type is used" in messages
    assert "nsFrom and nsTo need to be set together" in messages


def test_every_schema_property_reaches_the_crd() -> None:
    """Nothing the JSON Schema describes is lost: same property paths on both sides."""

    def json_paths(node: Mapping[str, Any], path: str = "") -> Iterator[str]:
        yield path
        for name, sub in node.get("properties", {}).items():
            yield from json_paths(sub, f"{path}.{name}")
        if isinstance(node.get("additionalProperties"), Mapping):
            yield from json_paths(node["additionalProperties"], f"{path}.*")
        if isinstance(node.get("items"), Mapping):
            yield from json_paths(node["items"], f"{path}[]")

    for crd in gen_crds.CRDS:
        source = json.loads((SCHEMA_DIR / crd.schema_file).read_text())["properties"]["spec"]
        generated = schema_of(crd)["properties"]["spec"]
        assert sorted(json_paths(source)) == sorted(p for p, _ in walk(generated))


# --------------------------------------------------------------------------------------------- generator rules


def test_convert_maps_open_closed_and_map_objects() -> None:
    node = {
        "type": "object",
        "properties": {
            "closed": {"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": False},
            "open": {"type": "object", "properties": {"a": {"type": "string"}}},
            "opaque": {"type": "object"},
            "map": {"type": "object", "additionalProperties": {"type": "integer"}},
        },
        "additionalProperties": False,
    }
    out = gen_crds.convert(node)
    assert out == {
        "type": "object",
        "properties": {
            "closed": {"type": "object", "properties": {"a": {"type": "string"}}},
            "open": {
                "type": "object",
                "properties": {"a": {"type": "string"}},
                "x-kubernetes-preserve-unknown-fields": True,
            },
            "opaque": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            "map": {"type": "object", "additionalProperties": {"type": "integer"}},
        },
    }


@pytest.mark.parametrize(
    ("node", "message"),
    [
        ({"type": "string", "oneOf": [{"pattern": "a"}]}, "no structural translation for oneOf"),
        ({"$ref": "#/x"}, "no structural translation for $ref"),
        ({"enum": ["a"]}, "every node needs a type"),
        (
            {"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": {"type": "string"}},
            "properties and an additionalProperties schema cannot be combined",
        ),
        ({"type": "array"}, "an array needs a single items schema"),
        ({"type": "object", "properties": {}, "required": ["x"]}, "required ['x'] are not in properties"),
    ],
)
def test_convert_refuses_what_it_cannot_translate(node: dict, message: str) -> None:
    with pytest.raises(gen_crds.GenerationError, match=re.escape(message)):
        gen_crds.convert(node)
