"""Nulls the API server drops before it validates: a `null` value of a field whose schema is not nullable is
removed (apiextensions-apiserver, pkg/apiserver/schema/defaulting/prunenulls.go). So `storages:` or `tasks:` left
empty in a manifest is the same as leaving the field out. Admission receives objects already pruned; lint prunes
what it reads with this, once, before any rule or lookup sees it."""

from __future__ import annotations

from functools import cache
from typing import Any

from . import kinds
from .schema import load_schema

_ANY: dict[str, Any] = {}  # a field this project does not model: its nulls are pruned too (the CRDs have no nullable)


def _nullable(schema: dict[str, Any]) -> bool:
    t = schema.get("type")
    return schema.get("nullable") is True or (isinstance(t, list) and "null" in t)


def _child(schema: dict[str, Any], key: str) -> dict[str, Any]:
    props = schema.get("properties")
    if isinstance(props, dict) and key in props:
        child: dict[str, Any] = props[key]
        return child
    extra = schema.get("additionalProperties")
    return extra if isinstance(extra, dict) else _ANY


def prune_nulls(value: Any, schema: dict[str, Any] = _ANY) -> Any:
    """Drop, in place, every map entry whose value is null and whose schema is not nullable. List items are kept
    (prunenulls only removes map entries). Returns `value`. Iterative: a manifest may nest deeper than the stack."""
    stack, seen = [(value, schema)], set()
    while stack:
        node, sch = stack.pop()
        if id(node) in seen:  # YAML anchors can share a node or make it contain itself
            continue
        seen.add(id(node))
        if isinstance(node, dict):
            for key in [k for k, v in node.items() if v is None and not _nullable(_child(sch, k))]:
                del node[key]
            stack.extend((child, _child(sch, key)) for key, child in node.items() if isinstance(child, dict | list))
        elif isinstance(node, list):
            items = sch.get("items")
            items = items if isinstance(items, dict) else _ANY
            stack.extend((item, items) for item in node if isinstance(item, dict | list))
    return value


@cache
def _kind_schema(kind: str) -> dict[str, Any]:
    return load_schema(kind)


def prune_object(obj: Any) -> Any:
    """`prune_nulls` with the schema of the object's kind (the checked kinds; any other object by itself)."""
    kind = obj.get("kind") if isinstance(obj, dict) else None
    return prune_nulls(obj, _kind_schema(kind) if kind in kinds.CHECKED_KINDS else _ANY)
