"""The compiled fast check agrees with jsonschema on every input; schema findings read well."""

from __future__ import annotations

import copy
from pathlib import Path

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from webhook.policy import schema
from webhook.policy.kinds import CHECKED_KINDS, api_version

from .test_robustness import VALUES

EXAMPLES = [
    d
    for f in sorted((Path(__file__).resolve().parents[2] / "examples").rglob("*.yaml"))
    for d in yaml.safe_load_all(f.read_text())
    if isinstance(d, dict) and d.get("kind") in CHECKED_KINDS
]


def agree(obj: object, kind: str) -> None:
    fast = schema._is_valid(kind)(obj)
    slow = schema._validator(kind).is_valid(obj)
    assert fast == slow, (kind, obj)


@settings(max_examples=500, deadline=None)
@given(kind=st.sampled_from(CHECKED_KINDS), spec=VALUES)
def test_fast_check_agrees_with_jsonschema_on_random_specs(kind: str, spec: object) -> None:
    agree({"apiVersion": api_version(kind), "kind": kind, "metadata": {"name": "x"}, "spec": spec}, kind)


def _paths(obj: object, prefix: tuple = ()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, prefix + (i,))


@settings(max_examples=700, deadline=None)
@given(data=st.data())
def test_fast_check_agrees_with_jsonschema_on_mutated_examples(data) -> None:
    """Replace one node of a realistic manifest with anything: the two checks must still agree."""
    doc = copy.deepcopy(data.draw(st.sampled_from(EXAMPLES)))
    kind = doc["kind"]
    path = data.draw(st.sampled_from(list(_paths(doc))[1:]))
    parent = doc
    for seg in path[:-1]:
        parent = parent[seg]
    parent[path[-1]] = data.draw(VALUES | st.sampled_from([True, 1, 1.0, 2.5, -1, 2**40, "", "x", [], {}, None]))
    agree(doc, kind)


def test_examples_are_valid() -> None:
    for doc in EXAMPLES:
        agree(doc, doc["kind"])


def test_unknown_keyword_fails_loudly() -> None:
    import pytest

    with pytest.raises(ValueError, match="does not know keyword"):
        schema.compile_schema({"type": "object", "oneOf": []})
