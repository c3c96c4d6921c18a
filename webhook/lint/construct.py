"""Values from composed YAML nodes, fast. PyYAML's generic constructor (a generator per node, a resolver call per
node, merge-key flattening on every mapping) took about as long as libyaml's parse itself; this direct walk covers
what manifests are made of (plain and quoted scalars, mappings with scalar keys, sequences, aliases) and gives up on
anything else (explicit tags, merge keys, complex keys, recursive aliases, NaN or Inf values): the caller then
constructs that document with the full PyYAML-based loader, so both paths give the same values and errors.
"""

from __future__ import annotations

import math
from typing import Any

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from . import kubeyaml

_STR = "tag:yaml.org,2002:str"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
_PLAIN = kubeyaml.PLAIN_TAG
_BUSY = object()  # a collection being built: an alias to it is a recursive structure


class Unsupported(Exception):
    """The node needs the full constructor."""


def build(node: Node) -> Any:
    """The value of a document's node, as the full loader constructs it (or Unsupported)."""
    return _value(node, {})


def _scalar(node: ScalarNode) -> Any:
    tag = node.tag
    if tag == _PLAIN:
        value = kubeyaml.go_scalar(node.value)
        if type(value) is float:
            if math.isinf(value) or math.isnan(value):
                raise Unsupported  # the full loader reports it as kubectl does
            return kubeyaml.json_number(value)
        return value
    if tag == _STR:
        return node.value
    raise Unsupported


def _key(node: Node) -> str:
    if type(node) is not ScalarNode:
        raise Unsupported
    tag = node.tag
    if tag == _STR:
        return node.value
    if tag != _PLAIN:  # merge keys (`<<`) and explicit tags
        raise Unsupported
    value = kubeyaml.go_scalar(node.value)
    if type(value) is str:
        return value
    try:
        return kubeyaml.json_key(value, node)  # `yes:` is the key "true", `1:` is "1"
    except Exception as exc:
        raise Unsupported from exc


def _value(node: Node, memo: dict[int, Any]) -> Any:
    cls = type(node)
    if cls is ScalarNode:
        return _scalar(node)  # type: ignore[arg-type]
    ident = id(node)
    if ident in memo:  # an alias: the same object, as PyYAML gives it
        done = memo[ident]
        if done is _BUSY:
            raise Unsupported
        return done
    memo[ident] = _BUSY
    result: Any
    if cls is MappingNode and node.tag == _MAP:
        result = {}
        for key, value in node.value:
            result[_key(key)] = _scalar(value) if type(value) is ScalarNode else _value(value, memo)
    elif cls is SequenceNode and node.tag == _SEQ:
        result = [_scalar(v) if type(v) is ScalarNode else _value(v, memo) for v in node.value]
    else:
        raise Unsupported
    memo[ident] = result
    return result
