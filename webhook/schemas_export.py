"""`psmdb-backup schemas export`: standalone JSON Schemas of the Percona kinds and of this project's schedule kind
(PerconaServerMongoDBBackupSchedule, psmdb-backup-webhook.io/v1alpha1) for kubeconform and its kin.

The schemas come from schemas/ (the source of the webhook's structure checks and of manifests/crds/), made
self-contained (no `$ref`, no `$id`) and with the CRDs' CEL rules (``x-kubernetes-validations``, which kubeconform
cannot run) written as JSON Schema wherever JSON Schema can say the same. One schema serves every crVersion this
project models (1.20 to 1.23 share the structure), so the layout is flat; ``--cr-version`` pins the cluster's
``spec.crVersion`` to one minor version for teams that want kubeconform to flag a cluster left behind.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .policy import kinds
from .policy.schema import SCHEMA_FILES, load_schema
from .versions import LATEST, OLDEST_MODELLED, Version

DROPPED = frozenset({"$id", "x-message", "x-kubernetes-validations"})
_DATE = "^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01]) ([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]$"


def _when_type(value: str, then: dict[str, Any]) -> dict[str, Any]:
    return {"if": {"properties": {"type": {"const": value}}, "required": ["type"]}, "then": then}


# Every CEL rule of schemas/ and its JSON Schema equivalent; None where JSON Schema cannot compare two fields.
# A rule missing here stops the export, so a new CEL rule is translated (or declared untranslatable) on purpose.
CEL_RULES: dict[str, dict[str, Any] | None] = {
    "self.type != 'date' || (has(self.date) && self.date.matches('" + _DATE + "'))": _when_type(
        "date", {"required": ["date"], "properties": {"date": {"type": "string", "pattern": _DATE}}}
    ),
    "self.type != 'latest' || !has(self.date)": _when_type("latest", {"not": {"required": ["date"]}}),
    "(!has(self.nsFrom) && !has(self.nsTo)) || (has(self.nsFrom) && has(self.nsTo))": {
        "dependentRequired": {"nsFrom": ["nsTo"], "nsTo": ["nsFrom"]}
    },
    "(!has(self.nsFrom) && !has(self.nsTo)) || self.nsFrom != self.nsTo": None,
}


# kubeconform: `-schema-location 'DIR/{{.ResourceKind}}{{.KindSuffix}}.json'`; KindSuffix is "-" + the first label
# of the group + "-" + the version. plain: openapi2jsonschema's `<kind>_<version>.json`, read with
# `-schema-location 'DIR/{{.ResourceKind}}_{{.ResourceAPIVersion}}.json'`.
def _kubeconform_name(kind: str) -> str:
    group, _, version = kinds.api_version(kind).partition("/")
    return f"{kind.lower()}-{group.split('.')[0]}-{version}.json"


def _plain_name(kind: str) -> str:
    return f"{kind.lower()}_{kinds.api_version(kind).partition('/')[2]}.json"


FORMATS = {"kubeconform": _kubeconform_name, "plain": _plain_name}
LOCATIONS = {
    "kubeconform": "{{.ResourceKind}}{{.KindSuffix}}.json",
    "plain": "{{.ResourceKind}}_{{.ResourceAPIVersion}}.json",
}


class ExportError(ValueError):
    """The schemas cannot be exported as asked (unknown CEL rule, crVersion outside the modelled range)."""


def _convert(node: Any, path: str) -> Any:
    if isinstance(node, list):
        return [_convert(x, path) for x in node]
    if not isinstance(node, Mapping):
        return copy.deepcopy(node)
    out = {k: _convert(v, f"{path}.{k}") for k, v in node.items() if k not in DROPPED}
    if "$ref" in out:
        raise ExportError(f"{path}: $ref is not allowed in a standalone schema")
    rules = []
    for cel in node.get("x-kubernetes-validations", ()):
        if cel["rule"] not in CEL_RULES:
            raise ExportError(f"{path}: no JSON Schema translation known for the CEL rule {cel['rule']!r}")
        translated = CEL_RULES[cel["rule"]]
        if translated is None:
            out["description"] = (
                out.get("description", "") + f" Not checked here (CEL only): {cel['message']}."
            ).strip()
        else:
            rules.append(copy.deepcopy(translated))
    if rules:
        out["allOf"] = out.get("allOf", []) + rules
    return out


def cr_version_pattern(text: str) -> str:
    """The spec.crVersion pattern for one modelled minor version (the operator accepts a missing patch part)."""
    version = Version.parse(text)
    if version is None or not OLDEST_MODELLED <= version < Version(LATEST.major, LATEST.minor + 1):
        raise ExportError(f"--cr-version {text!r}: give a version from {OLDEST_MODELLED} to {LATEST}, such as 1.23")
    # Empty stays valid: the operator then sets its own version.
    return rf"^(v?{version.major}\.{version.minor}(\.[0-9]+)?)?$"


def standalone_schema(kind: str, cr_version: str | None = None) -> dict[str, Any]:
    schema = _convert(load_schema(kind), kind)
    if cr_version is not None and kind == kinds.CLUSTER:
        prop = schema["properties"]["spec"]["properties"]["crVersion"]
        prop["pattern"] = cr_version_pattern(cr_version)
        prop["description"] = f"exported for crVersion {cr_version}"
        schema["title"] = re.sub(r"crVersion [0-9.]+ to [0-9.]+", f"crVersion {cr_version}", schema["title"])
    return schema


def export(out_dir: Path, fmt: str = "kubeconform", cr_version: str | None = None) -> list[Path]:
    """Write one schema per kind into out_dir; returns the files written."""
    name = FORMATS[fmt]
    schemas = {kind: standalone_schema(kind, cr_version) for kind in SCHEMA_FILES}  # fail before writing
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for kind, schema in schemas.items():
        path = out_dir / name(kind)
        path.write_text(json.dumps(schema, indent=2) + "\n", encoding="utf-8")
        written.append(path)
    return written
