"""Reading manifests: files, directories and stdin; multi-document YAML (and JSON) with node marks for positions.

Documents are composed with libyaml (CSafeLoader) and constructed once; the node tree is kept so a finding's JSON
path can be turned into `line:col` only when there is a finding to place.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..findings import Path as JsonPath

SYNTAX_CODE = "PSB000"
EXTENSIONS = (".yaml", ".yml", ".json")
STDIN = "<stdin>"

try:
    _Loader = yaml.CSafeLoader
except AttributeError:  # PyYAML built without libyaml: slower, same results
    _Loader = yaml.SafeLoader  # type: ignore[misc]


@dataclass(frozen=True)
class Document:
    file: str
    index: int
    data: Any
    node: yaml.Node


@dataclass(frozen=True)
class LoadError:
    """A file or document that could not be read; reported as a PSB000 finding (or exit 2 when unreadable)."""

    file: str
    line: int
    column: int
    message: str
    unreadable: bool = False  # the file itself could not be opened: exit code 2


def discover(paths: list[str]) -> Iterator[str | LoadError]:
    """Expand the command-line paths: files as given, directories recursively (hidden entries skipped), `-` = stdin."""
    for raw in paths:
        if raw == "-":
            yield STDIN
        elif os.path.isdir(raw):
            for root, dirs, files in os.walk(raw):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(files):
                    if name.endswith(EXTENSIONS) and not name.startswith("."):
                        yield os.path.join(root, name)
        elif os.path.exists(raw):
            yield raw
        else:
            yield LoadError(raw, 0, 0, "no such file or directory", unreadable=True)


def read_text(file: str) -> str | LoadError:
    try:
        raw = sys.stdin.buffer.read() if file == STDIN else Path(file).read_bytes()
    except OSError as exc:
        return LoadError(file, 0, 0, f"cannot read: {exc.strerror or exc}", unreadable=True)
    if b"\x00" in raw[:8192]:
        return LoadError(file, 1, 1, "binary file, not YAML or JSON")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        return LoadError(file, line, 1, f"not UTF-8 text (invalid byte at offset {exc.start})")


def parse(file: str, text: str) -> Iterator[Document | LoadError]:
    """Every document of a (multi-document) YAML or JSON text; a syntax error ends that file."""
    loader = _Loader(text)
    index = 0
    try:
        while loader.check_node():
            node = loader.get_node()
            data = loader.construct_document(node)
            yield Document(file, index, data, node)
            index += 1
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = " ".join(p for p in (exc.context, exc.problem) if p) or "invalid YAML"
        yield LoadError(file, mark.line + 1 if mark else 0, mark.column + 1 if mark else 0, problem)
    except (yaml.YAMLError, TypeError, ValueError, RecursionError) as exc:
        # TypeError: an unhashable key such as `? [a, b] : c`; RecursionError: absurdly deep nesting.
        yield LoadError(file, 0, 0, f"cannot load YAML: {exc}")
    finally:
        loader.dispose()


def position(node: yaml.Node, path: JsonPath) -> tuple[int, int]:
    """1-based line and column of the deepest node on `path` (the key of the last field found)."""
    mark = node.start_mark
    for seg in path:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value == str(seg):
                    mark, node = key.start_mark, value
                    break
            else:
                break
        elif isinstance(node, yaml.SequenceNode) and isinstance(seg, int) and 0 <= seg < len(node.value):
            node = node.value[seg]
            mark = node.start_mark
        else:
            break
    return mark.line + 1, mark.column + 1
