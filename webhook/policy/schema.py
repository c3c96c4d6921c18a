"""Structure checks from schemas/ (jsonschema): types, enums, required fields, formats, unknown fields."""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Iterator, Mapping
from functools import cache
from importlib import resources
from typing import Any, cast

import jsonschema
from jsonschema.exceptions import ValidationError

from ..findings import Finding, Path, Severity
from ..redaction import clip, scrub, sensitive_path
from . import kinds

SCHEMA_CODE = "PSB001"
UNKNOWN_FIELD_CODE = "PSB002"

SCHEMA_FILES = {
    kinds.CLUSTER: "perconaservermongodb.json",
    kinds.BACKUP: "perconaservermongodbbackup.json",
    kinds.RESTORE: "perconaservermongodbrestore.json",
    kinds.SCHEDULE: "perconaservermongodbbackupschedule.json",
}

_INT_RANGES = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}
_formats = jsonschema.FormatChecker()
for _fmt, (_lo, _hi) in _INT_RANGES.items():
    # bool is an int subclass in Python; the type check reports it, the format check must not crash on it.
    _formats.checks(_fmt)(lambda v, lo=_lo, hi=_hi: not isinstance(v, int) or isinstance(v, bool) or lo <= v <= hi)


def load_schema(kind: str) -> dict[str, Any]:
    text = resources.files("webhook").joinpath("schemas", SCHEMA_FILES[kind]).read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@cache
def _validator(kind: str) -> jsonschema.protocols.Validator:
    return jsonschema.Draft202012Validator(load_schema(kind), format_checker=_formats)


# --- A fast "is it valid?" answer for the schema keywords we use --------------------------------------------------
# jsonschema is the only source of findings; this compiled predicate only decides whether jsonschema needs to run,
# because most manifests are valid and jsonschema costs more than parsing them (tests/unit/test_schema.py proves the
# two agree). A keyword it does not know fails at import, so a schema change cannot silently bypass validation.

Predicate = Callable[[Any], bool]
_ANNOTATIONS = {"$schema", "$id", "title", "description", "default", "x-message", "x-kubernetes-validations"}
_TYPES: dict[str, Predicate] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "integer": lambda v: (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, float) and v.is_integer()),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
}


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def compile_schema(schema: dict[str, Any]) -> Predicate:
    unknown = (
        set(schema)
        - _ANNOTATIONS
        - {"type", "properties", "required", "additionalProperties", "enum", "minimum", "items", "format", "pattern"}
    )
    if unknown:
        raise ValueError(f"fast schema check does not know keyword(s) {sorted(unknown)}: teach compile_schema")
    checks: list[Predicate] = []
    if "type" in schema:
        checks.append(_TYPES[schema["type"]])
    if "enum" in schema:
        allowed = schema["enum"]
        checks.append(lambda v: any(type(v) is type(a) and v == a for a in allowed))
    if "minimum" in schema:
        low = schema["minimum"]
        checks.append(lambda v: not _is_number(v) or v >= low)
    if "format" in schema:
        fmt = _formats.checkers[schema["format"]][0]
        checks.append(lambda v: fmt(v))
    if "pattern" in schema:
        rx = re.compile(schema["pattern"])
        checks.append(lambda v: not isinstance(v, str) or rx.search(v) is not None)
    if "required" in schema:
        required = tuple(schema["required"])
        checks.append(lambda v: not isinstance(v, dict) or all(k in v for k in required))
    props = {k: compile_schema(sub) for k, sub in schema.get("properties", {}).items()}
    extra = schema.get("additionalProperties", True)
    extra_check = None if extra is True else (lambda v: False) if extra is False else compile_schema(extra)
    if props or extra_check:

        def check_props(v: Any) -> bool:
            if not isinstance(v, dict):
                return True
            for key, value in v.items():
                sub = props.get(key) if isinstance(key, str) else None
                if sub is not None:
                    if not sub(value):
                        return False
                elif extra_check is not None and not extra_check(value):
                    return False
            return True

        checks.append(check_props)
    if "items" in schema:
        item = compile_schema(schema["items"])

        def check_items(v: Any) -> bool:
            if isinstance(v, list):
                for x in v:
                    if not item(x):
                        return False
            return True

        checks.append(check_items)
    return _all_of(checks)


def _all_of(checks: list[Predicate]) -> Predicate:
    """One predicate for several; plain loops, because this runs for every node of every manifest."""
    if not checks:
        return lambda v: True
    if len(checks) == 1:
        return checks[0]
    if len(checks) == 2:
        first, second = checks
        return lambda v: first(v) and second(v)

    def every(v: Any) -> bool:
        for c in checks:
            if not c(v):
                return False
        return True

    return every


@cache
def _is_valid(kind: str) -> Predicate:
    return compile_schema(load_schema(kind))


_JSON_TYPE_NAMES: dict[type | None, str] = {
    dict: "a mapping",
    list: "a list",
    str: "a string",
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    type(None): "null",
}


def _describe(value: Any, hide: bool = False) -> str:
    if hide:
        return f"{_JSON_TYPE_NAMES.get(type(value), type(value).__name__)} (value not shown)"
    shown = scrub(json.dumps(value, default=str), 60)
    return (
        f"{_JSON_TYPE_NAMES.get(type(value), type(value).__name__)} {shown}"
        if not isinstance(value, (dict, list))
        else _JSON_TYPE_NAMES[type(value)]
    )


def _finding(err: ValidationError) -> Iterator[Finding]:
    path: Path = tuple(err.absolute_path)
    hide = sensitive_path(path)  # never echo what may be a credential
    # jsonschema types these as unions with its Unset sentinel; on a reported error they are set.
    v, vv = err.validator, cast(Any, err.validator_value)
    schema = err.schema if isinstance(err.schema, Mapping) else {}
    if v == "additionalProperties":
        allowed = list(schema.get("properties", {}))
        for extra in sorted(set(cast(Any, err.instance)) - set(allowed), key=str):
            near = difflib.get_close_matches(str(extra), allowed, n=1)
            hint = f'did you mean "{near[0]}"?' if near else f"known fields here: {', '.join(allowed)}"
            yield Finding(
                UNKNOWN_FIELD_CODE,
                Severity.WARNING,
                path + (str(extra),),
                f'unknown field "{clip(str(extra), 60)}": the API server drops it and the operator never sees it',
                hint,
            )
        return
    if v == "required":
        missing = err.message.split("'")[1] if "'" in err.message else str(vv)
        msg, hint = f'required field "{missing}" is missing', f'add "{missing}"'
    elif v == "type":
        msg = f"must be {_JSON_TYPE_NAMES.get({'object': dict, 'array': list, 'string': str, 'boolean': bool, 'integer': int, 'number': float}.get(vv), vv)}, got {_describe(err.instance, hide)}"
        hint = "fix the value's type (quote strings that look like numbers or booleans)"
    elif v == "enum":
        msg = f"{'value' if hide else scrub(json.dumps(err.instance, default=str), 60)} is not one of: {', '.join(map(str, vv))}"
        hint = f"use one of: {', '.join(map(str, vv))}"
    elif v in ("minimum", "maximum"):
        op = ">=" if v == "minimum" else "<="
        msg, hint = f"must be {op} {vv}, got {err.instance}", f"use a value {op} {vv}"
    elif v == "format":
        lo, hi = _INT_RANGES.get(vv, (None, None))
        msg = f"{err.instance} does not fit in {vv}" + (f" ({lo} to {hi})" if lo is not None else "")
        hint = "use a smaller number"
    elif v == "pattern":
        msg = ("" if hide else f"{scrub(json.dumps(err.instance), 60)}: ") + schema.get(
            "x-message", f"does not match {vv}"
        )
        hint = "fix the format of the value"
    else:  # jsonschema's own message quotes the value
        msg = f"does not satisfy {v} {vv}" if hide else scrub(err.message)
        hint = "fix the field to match the CRD schema"
    yield Finding(SCHEMA_CODE, Severity.ERROR, path, msg, hint)


def schema_findings(obj: Mapping[str, Any]) -> list[Finding]:
    kind = obj.get("kind")
    if kind not in SCHEMA_FILES:
        return []
    if _is_valid(kind)(obj):
        return []
    out: list[Finding] = []
    for err in _validator(kind).iter_errors(obj):
        out.extend(_finding(err))
    return out
