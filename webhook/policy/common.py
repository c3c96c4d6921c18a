"""Small accessors shared by the rule modules. Every accessor tolerates malformed input (the schema reports it)."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from functools import lru_cache
from typing import Any

from ..versions import Version

STORAGE_TYPES = ("s3", "minio", "gcs", "azure", "oss", "filesystem", "oci")  # oci: operator 1.23.0, K8SPSMDB-1644
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


def main_storage(spec: Mapping[str, Any]) -> tuple[str | None, str]:
    """The operator's `MainStorage()` of a cluster spec (OP v1.23.0@b15af500 pkg/apis/psmdb/v1/psmdb_types.go:1495-1513): the only storage, else the one with main: true.
    (name, "") or (None, why there is none)."""
    defined = storages(spec)
    if len(defined) == 1:
        return next(iter(defined)), ""
    mains = sorted(n for n, st in defined.items() if st.get("main") is True)
    if len(mains) == 1:
        return mains[0], ""
    if not defined:
        return None, "it defines no storage"
    if not mains:
        return None, f"none of its {len(defined)} storages ({quoted(defined)}) has main: true"
    return None, f"several of its storages have main: true ({quoted(mains)})"


def storage_block(storage: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The sub-object matching the storage's type (`s3:` for `type: s3`), None when absent."""
    block = storage.get(text(storage.get("type")))
    return block if isinstance(block, dict) else None


def tasks(spec: Mapping[str, Any]) -> Iterator[tuple[int, Mapping[str, Any]]]:
    items = backup_spec(spec).get("tasks")
    for i, task in enumerate(items if isinstance(items, list) else ()):
        if isinstance(task, dict):
            yield i, task


def mongo_replset_names(spec: Mapping[str, Any]) -> set[str]:
    """Every name a replset of the cluster answers to in PBM: its spec name and, when its `configuration` sets
    replication.replSetName, that name (the operator starts mongod with it: ReplsetSpec.CustomReplsetName); the
    config server replset ("cfg", or its custom name) when sharding is enabled."""
    from ..sidecar import replset_name_and_port  # pure; imported here to keep common.py's import light

    items = spec.get("replsets")
    sets = [(text(rs.get("name")), rs) for rs in (items if isinstance(items, list) else ()) if isinstance(rs, dict)]
    cfg = mapping(spec.get("sharding")).get("configsvrReplSet")
    if is_sharded(spec):
        sets.append(("cfg", cfg if isinstance(cfg, dict) else {}))
    names = {name for name, _ in sets if name}
    names |= {replset_name_and_port(rs, name)[0] for name, rs in sets if name}
    return names


def is_sharded(spec: Mapping[str, Any]) -> bool:
    return mapping(spec.get("sharding")).get("enabled") is True


PBM_REPOSITORY = "percona-backup-mongodb"
_PBM_TAG_VERSION = re.compile(r"^v?(\d+\.\d+(?:\.\d+)?)(?:-[0-9A-Za-z.-]*)?$")


def pbm_version_from_image(image: Any) -> Version | None:
    """The PBM version an image tag names, or None (unknown). Only an image whose repository's last path component is
    percona-backup-mongodb (any registry or mirror) names one: `perconalab/percona-server-mongodb-operator:1.1.0-backup`
    is an operator image whose tag says nothing about PBM. Digest-only references and `latest` are unknown too."""
    if not isinstance(image, str):
        return None
    return _pbm_version(image) if len(image) <= _CACHED_LENGTH else _pbm_version.__wrapped__(image)


_CACHED_LENGTH = 256  # a request may carry huge strings: the cache keeps only image-sized ones


@lru_cache(maxsize=1024)
def _pbm_version(image: str) -> Version | None:  # several rules ask, per object, for the same few images
    ref = image.strip().split("@", 1)[0]  # a digest does not say the version
    last = ref.rsplit("/", 1)[-1]
    repo, _, tag = last.partition(":")  # a registry port sits before the last "/", never in `last`
    if repo != PBM_REPOSITORY or not tag:
        return None
    m = _PBM_TAG_VERSION.match(tag)
    return Version.parse(m.group(1)) if m else None


def quoted(names: Any) -> str:
    items = sorted(str(n) for n in names)
    return ", ".join(items) if items else "none"
