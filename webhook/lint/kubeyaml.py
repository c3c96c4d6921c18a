"""YAML scalars as kubectl reads them: sigs.k8s.io/yaml (YAMLToJSON over go-yaml v2, YAML 1.1, decoding into an
untyped value) and then JSON. PyYAML's own YAML 1.1 resolver differs: it makes `2024-03-07T18:00:21Z` a datetime
(go-yaml keeps timestamps as strings when the target is untyped), `1:20` the integer 80, and keeps bytes, NaN and
non-string keys that JSON cannot carry. tests/unit/test_yaml_scalars.py checks this module against the Go library.
"""

from __future__ import annotations

import math
import re
import struct
from decimal import Decimal
from typing import Any

import yaml

PLAIN_TAG = "tag:psmdb-backup,2026:plain"  # every untagged plain scalar; resolved by `go_scalar`
PLAIN_KEY_TAG = "tag:psmdb-backup,2026:plain-key"  # the same as a mapping key (where NaN and Inf are allowed)
MERGE_TAG = "tag:yaml.org,2002:merge"

_MAP: dict[str, Any] = {
    **dict.fromkeys(("y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"), True),
    **dict.fromkeys(("n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"), False),
    **dict.fromkeys(("", "~", "null", "Null", "NULL"), None),
    **dict.fromkeys((".nan", ".NaN", ".NAN"), math.nan),
    **dict.fromkeys((".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"), math.inf),
    **dict.fromkeys(("-.inf", "-.Inf", "-.INF"), -math.inf),
}
_HINTS = {**dict.fromkeys("+-0123456789", "D"), **dict.fromkeys("yYnNtTfFoO~", "M"), ".": "."}
# strconv.ParseInt(s, 0, 64) / ParseUint: optional sign, then 0x / 0o / 0b / leading-0 octal / decimal.
_GO_INT = re.compile(r"([-+]?)(0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+|0[0-7]*|[1-9][0-9]*)\Z")
_YAML_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?\Z")  # go-yaml's yamlStyleFloat
_DOT_FLOAT = re.compile(r"\.[0-9]+([eE][-+]?[0-9]+)?\Z")  # what strconv.ParseFloat accepts after a leading dot
_BASES = {"x": 16, "o": 8, "b": 2}


def _go_int(plain: str) -> int | None:
    m = _GO_INT.match(plain)
    if not m:
        return None
    sign, body = m.groups()
    if len(body) > 1 and body[1] in "xXoObB":
        value = int(body[2:], _BASES[body[1].lower()])
    else:
        value = int(body, 8 if body.startswith("0") else 10)
    value = -value if sign == "-" else value
    if -(2**63) <= value < 2**63 or (not sign and value < 2**64):  # ParseInt, then ParseUint (no sign allowed)
        return value
    return None


def go_scalar(text: str) -> Any:
    """The value go-yaml v2 resolves a plain scalar to (before the JSON step)."""
    hint = _HINTS.get(text[:1], "N" if text == "" else None)
    if hint is None:
        return text
    if text in _MAP:
        return _MAP[text]
    if hint == "." and _DOT_FLOAT.match(text):
        return float(text)
    if hint == "D":  # timestamps are kept as strings when decoding into an untyped value
        plain = text.replace("_", "")
        value = _go_int(plain)
        if value is not None:
            return value
        if _YAML_FLOAT.match(plain) and not math.isinf(f := float(plain)):
            return f
    return text


def json_number(value: float) -> float | int:
    """What a float becomes after Go's json.Marshal and a JSON decode: integral values below 1e21 print without a
    fraction or exponent (the shortest digits, then zeros) and so come back as integers."""
    if value.is_integer() and abs(value) < 1e21:
        return int(Decimal(repr(value)))
    return value


def _float32_key(value: float) -> str:
    """strconv.FormatFloat(v, 'g', -1, 32), as sigs.k8s.io/yaml turns a float map key into a string."""
    if math.isnan(value):
        return ".nan"
    if math.isinf(value):
        return ".inf" if value > 0 else "-.inf"
    if value == 0:
        return "0"
    target = struct.unpack("f", struct.pack("f", value))[0]
    for digits in range(1, 10):  # the shortest decimal that reads back as the same float32
        text = f"{value:.{digits - 1}e}"
        if struct.unpack("f", struct.pack("f", float(text)))[0] == target:
            break
    mantissa, exp = text.split("e")
    exp_n = int(exp)
    if exp_n < -4 or exp_n >= 6:  # Go's %g switches to an exponent at 6 digits for the shortest form
        mantissa = mantissa.rstrip("0").rstrip(".")
        return f"{mantissa}e{'-' if exp_n < 0 else '+'}{abs(exp_n):02d}"
    return f"{float(text):.{max(digits - 1 - exp_n, 0)}f}"


def json_key(key: Any, node: yaml.Node) -> str:
    """A map key as sigs.k8s.io/yaml converts it for JSON (string, int, float and bool keys; others are errors)."""
    if isinstance(key, str):
        return key
    if isinstance(key, bool):
        return "true" if key else "false"
    if isinstance(key, int) and -(2**63) <= key < 2**63:
        return str(key)
    if isinstance(key, float):
        return _float32_key(key)
    raise yaml.constructor.ConstructorError(
        None, None, f"kubectl cannot use {key!r} as a map key (unsupported map key for JSON)", node.start_mark
    )
