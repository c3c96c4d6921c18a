"""Reading manifests: files, directories and stdin; multi-document YAML (and JSON) with node marks for positions.

Documents are composed with libyaml (CSafeLoader) and constructed once; the node tree is kept so a finding's JSON
path can be turned into `line:col` only when there is a finding to place.
"""

from __future__ import annotations

import itertools
import math
import os
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from ..findings import Path as JsonPath
from . import construct, kubeyaml

SYNTAX_CODE = "PSB000"
EXTENSIONS = (".yaml", ".yml", ".json")
STDIN = "<stdin>"

if TYPE_CHECKING or hasattr(yaml, "CSafeLoader"):
    _Base = yaml.CSafeLoader
else:  # PyYAML built without libyaml: slower, same results
    _Base = yaml.SafeLoader


class _Loader(_Base):
    """libyaml's parser with go-yaml v2's scalar resolution and JSON's value space (see kubeyaml)."""

    def resolve(self, kind, value, implicit):
        if kind is yaml.ScalarNode and implicit[0]:
            return kubeyaml.MERGE_TAG if value == "<<" else kubeyaml.PLAIN_TAG
        return super().resolve(kind, value, implicit)

    def construct_plain(self, node: yaml.ScalarNode) -> Any:
        value = kubeyaml.go_scalar(node.value)
        return self._number(value, node) if isinstance(value, float) else value

    def construct_plain_key(self, node: yaml.ScalarNode) -> str:
        # Spelled as a JSON key here, before the dict sees it: `yes:` and `1:` are different keys to Go.
        return kubeyaml.json_key(kubeyaml.go_scalar(node.value), node)

    def construct_float(self, node: yaml.ScalarNode) -> Any:
        return self._number(self.construct_yaml_float(node), node)

    def _number(self, value: float, node: yaml.Node) -> float | int:
        if math.isnan(value) or math.isinf(value):
            raise yaml.constructor.ConstructorError(
                None, None, f"kubectl cannot convert {node.value} to JSON (unsupported value)", node.start_mark
            )
        return kubeyaml.json_number(value)

    def construct_as_text(self, node: yaml.ScalarNode) -> str:
        return self.construct_scalar(node)  # !!timestamp stays a string, as go-yaml decodes it into an untyped value

    def construct_binary_text(self, node: yaml.ScalarNode) -> str:
        return self.construct_yaml_binary(node).decode("utf-8", "replace")  # Go strings; JSON replaces bad bytes

    def construct_mapping(self, node, deep=False):
        for key, _ in node.value:
            if key.tag == kubeyaml.PLAIN_TAG:
                key.tag = kubeyaml.PLAIN_KEY_TAG
        mapping = super().construct_mapping(node, deep)
        if all(type(k) is str for k in mapping):
            return mapping
        return {kubeyaml.json_key(k, node): v for k, v in mapping.items()}


_Loader.add_constructor(kubeyaml.PLAIN_TAG, _Loader.construct_plain)
_Loader.add_constructor(kubeyaml.PLAIN_KEY_TAG, _Loader.construct_plain_key)
_Loader.add_constructor("tag:yaml.org,2002:float", _Loader.construct_float)
_Loader.add_constructor("tag:yaml.org,2002:timestamp", _Loader.construct_as_text)
_Loader.add_constructor("tag:yaml.org,2002:binary", _Loader.construct_binary_text)


@dataclass(frozen=True)
class Document:
    file: str
    index: int
    data: Any
    node: yaml.Node
    line_offset: int = 0  # lines before the text this node was parsed from (documents read after a syntax error)


@dataclass(frozen=True)
class LoadError:
    """A file or document that could not be read; reported as a PSB000 finding (or exit 2 when unreadable)."""

    file: str
    line: int
    column: int
    message: str
    unreadable: bool = False  # the file itself could not be opened: exit code 2


SKIPPED_DIRS = frozenset({"node_modules", "vendor"})  # dependencies, not the project's manifests (like .git/)


def discover(paths: list[str]) -> Iterator[str | LoadError]:
    """Expand the command-line paths: files as given, directories recursively (hidden entries, node_modules/ and
    vendor/ skipped), `-` = stdin. A directory without manifests is an input error: a mistyped CI path must not pass."""
    for raw in paths:
        if raw == "-":
            yield STDIN
        elif os.path.isdir(raw):
            found = False
            for root, dirs, files in os.walk(raw):
                dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in SKIPPED_DIRS)
                for name in sorted(files):
                    if name.endswith(EXTENSIONS) and not name.startswith("."):
                        found = True
                        yield os.path.join(root, name)
            if not found:
                yield LoadError(raw, 0, 0, f"no {', '.join(EXTENSIONS)} files found in this directory", True)
        elif os.path.exists(raw):
            yield raw
        else:
            yield LoadError(raw, 0, 0, "no such file or directory", unreadable=True)


Source = str | bytes  # the text of an input; bytes when it is plain ASCII (see read_source)


def read_source(file: str) -> Source | LoadError:
    """The text of an input. Plain ASCII (nearly every manifest) stays the bytes that were read: libyaml parses
    them in place with the same positions, where a str would be copied once more into UTF-8 for it (three copies of
    a big input at a time instead of one)."""
    try:
        raw = sys.stdin.buffer.read() if file == STDIN else Path(file).read_bytes()
    except OSError as exc:
        return LoadError(file, 0, 0, f"cannot read: {exc.strerror or exc}", unreadable=True)
    if b"\x00" in raw[:8192]:
        return LoadError(file, 1, 1, "binary file, not YAML or JSON")
    if raw.isascii():
        return raw
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        return LoadError(file, line, 1, f"not UTF-8 text (invalid byte at offset {exc.start})")


def read_text(file: str) -> str | LoadError:
    source = read_source(file)
    return source.decode("ascii") if isinstance(source, bytes) else source


def as_text(source: Source) -> str:
    return source.decode("ascii") if isinstance(source, bytes) else source


_SEPARATOR = re.compile(r"^---[ \t]*(#.*)?$", re.M)  # how kubectl's YAML reader splits a stream


def parse(file: str, text: Source) -> Iterator[Document | LoadError]:
    """Every document of a (multi-document) YAML or JSON text. A document that cannot be converted is reported and
    the next one read; after a syntax error the rest is split on `---` lines, as kubectl splits a stream, so only
    the broken document is lost."""
    index = 0
    for item in _parse_stream(file, text, 0, recover=True):
        if isinstance(item, Document):
            item = Document(item.file, index, item.data, item.node, item.line_offset)
            index += 1
        yield item


def _parse_stream(file: str, text: Source, line: int, recover: bool) -> Iterator[Document | LoadError]:
    # `line`: the line of the file where `text` starts (always at a line start).
    loader = _Loader(text)
    resume = 0  # where the text after the last complete document starts
    try:
        while True:
            try:
                if not loader.check_node():
                    return
                node = loader.get_node()
                if node is None:  # check_node() said one follows
                    return
            except (yaml.YAMLError, RecursionError) as exc:
                yield _load_error(file, exc, line)
                if recover:
                    yield from _recover(file, text, resume, line)
                return
            resume = node.end_mark.index
            try:
                data = _construct(loader, node)
            except (yaml.YAMLError, TypeError, ValueError, RecursionError) as exc:
                # TypeError: an unhashable key such as `? [a, b] : c`; RecursionError: absurdly deep nesting.
                loader.constructed_objects, loader.recursive_objects = {}, {}
                loader.state_generators, loader.deep_construct = [], False
                yield _load_error(file, exc, line)
                continue
            yield Document(file, 0, data, node, line)
    finally:
        loader.dispose()


def _construct(loader: _Loader, node: yaml.Node) -> Any:
    try:
        return construct.build(node)
    except (construct.Unsupported, RecursionError):
        return loader.construct_document(node)  # the full constructor: same values, and the errors to report


def _recover(file: str, source: Source, resume: int, line: int) -> Iterator[Document | LoadError]:
    """The documents after a syntax error: each `---`-separated chunk of the rest parsed on its own, skipping the
    first chunk with content (the broken document, reported already)."""
    text = as_text(source)
    rest = text[resume:]
    line += text.count("\n", 0, resume)
    bounds = [0, *(m.start() for m in _SEPARATOR.finditer(rest) if m.start() > 0), len(rest)]
    broken_seen = False
    for begin, end in itertools.pairwise(bounds):
        chunk = rest[begin:end]
        if not broken_seen:
            broken_seen = _has_content(chunk)
            continue
        yield from _parse_stream(file, chunk, line + rest.count("\n", 0, begin), recover=False)


def _has_content(chunk: str) -> bool:
    lines = (ln.strip() for ln in chunk.splitlines())
    return any(ln and not ln.startswith("#") and not _SEPARATOR.match(ln) for ln in lines)


def _load_error(file: str, exc: BaseException, line: int) -> LoadError:
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        problem = " ".join(p for p in (exc.context, exc.problem) if p) or "invalid YAML"
        return LoadError(file, mark.line + 1 + line if mark else 0, mark.column + 1 if mark else 0, problem)
    return LoadError(file, 0, 0, f"cannot load YAML: {exc}")


def list_items(doc: Document) -> list[Document] | None:
    """The items of a `v1 List` or a typed `*List` (what `kubectl get -o yaml` writes), each with its own node so
    findings keep their positions; None when `doc` is not a list."""
    data = doc.data
    if not (isinstance(data, dict) and str(data.get("kind", "")).endswith("List") and "apiVersion" in data):
        return None
    items = data.get("items")
    if not isinstance(items, list) or not isinstance(doc.node, yaml.MappingNode):
        return None
    node = next((v for k, v in doc.node.value if isinstance(k, yaml.ScalarNode) and k.value == "items"), None)
    if not isinstance(node, yaml.SequenceNode) or len(node.value) != len(items):
        return None
    return [Document(doc.file, doc.index, item, n, doc.line_offset) for item, n in zip(items, node.value, strict=True)]


def position(node: yaml.Node, path: JsonPath, line_offset: int = 0) -> tuple[int, int]:
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
    return mark.line + 1 + line_offset, mark.column + 1
