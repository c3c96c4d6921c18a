"""Small accessors shared by the rule modules. Every accessor tolerates malformed input (the schema reports it)."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from .versions import Version

STORAGE_TYPES = ("s3", "minio", "gcs", "azure", "oss", "filesystem")
COMPRESSION_TYPES = ("none", "gzip", "pgzip", "snappy", "lz4", "s2", "zstd")  # PBM:pbm/compress/compress.go


def mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def text(value: Any) -> str:
    """A string field's value, or "" when absent or not a string."""
    return value if isinstance(value, str) else ""


def backup_spec(spec: Mapping[str, Any]) -> Mapping[str, Any]:
    return mapping(spec.get("backup"))


def storages(spec: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {str(k): v for k, v in mapping(backup_spec(spec).get("storages")).items() if isinstance(v, dict)}


def storage_block(storage: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The sub-object matching the storage's type (`s3:` for `type: s3`), None when absent."""
    block = storage.get(text(storage.get("type")))
    return block if isinstance(block, dict) else None


def tasks(spec: Mapping[str, Any]) -> Iterator[tuple[int, Mapping[str, Any]]]:
    items = backup_spec(spec).get("tasks")
    for i, task in enumerate(items if isinstance(items, list) else ()):
        if isinstance(task, dict):
            yield i, task


def replset_names(spec: Mapping[str, Any]) -> list[str]:
    items = spec.get("replsets")
    return [
        rs["name"]
        for rs in (items if isinstance(items, list) else ())
        if isinstance(rs, dict) and isinstance(rs.get("name"), str)
    ]


def is_sharded(spec: Mapping[str, Any]) -> bool:
    return mapping(spec.get("sharding")).get("enabled") is True


_IMAGE_TAG_VERSION = re.compile(r":v?(\d+\.\d+(?:\.\d+)?)(?:[-@]|$)")


def pbm_version_from_image(image: Any) -> Version | None:
    """`percona/percona-backup-mongodb:2.15.0` -> 2.15.0; None when the tag is not a plain version (digests, latest)."""
    m = _IMAGE_TAG_VERSION.search(text(image))
    return Version.parse(m.group(1)) if m else None


def quoted(names: Any) -> str:
    items = sorted(str(n) for n in names)
    return ", ".join(items) if items else "none"
