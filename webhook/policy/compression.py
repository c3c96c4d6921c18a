"""Compression settings of tasks, PITR and Backup CRs (OP v1.23.0@b15af500 pkg/apis/psmdb/v1/psmdb_types.go:1221-1270,1421-1427;
PITR compression checked by the PBM library inside the operator, PBM@d3436ef pbm/config/config.go:591-594; backups
with an unknown type are written uncompressed, PBM v2.15.0@6f9fc3bf pbm/compress/compress.go:143-147)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..findings import Path, Severity
from . import kinds
from .common import COMPRESSION_TYPES, backup_spec, mapping
from .examples import with_backup
from .registry import Context, Violation, rule

# A schedule's Backups get its compression settings (full object: a Backup is the default kind of the examples).
_SCHEDULE = (
    f"{{apiVersion: {kinds.api_version(kinds.SCHEDULE)}, kind: {kinds.SCHEDULE}, metadata: {{name: nightly}}, "
    "spec: {clusterName: my-cluster, schedule: '0 1 * * *', "
)

# gzip and pgzip refuse levels outside Go's compress/flate range (HuffmanOnly .. BestCompression).
_LEVELS = {"gzip": (-2, 9), "pgzip": (-2, 9)}


def _check(path: Path, settings: Mapping[str, Any], type_key: str, consequence: str) -> Iterable[Violation]:
    kind, level = settings.get(type_key), settings.get("compressionLevel")
    if isinstance(kind, str) and kind not in COMPRESSION_TYPES:
        yield Violation(
            path + (type_key,),
            f'compression "{kind}" is not one PBM knows ({", ".join(COMPRESSION_TYPES)}): ' + consequence,
        )
    lo_hi = _LEVELS.get(kind if isinstance(kind, str) else "")
    if lo_hi and isinstance(level, int) and not isinstance(level, bool) and not lo_hi[0] <= level <= lo_hi[1]:
        yield Violation(
            path + ("compressionLevel",),
            f"compressionLevel {level} is outside {lo_hi[0]}..{lo_hi[1]} "
            f"for {kind}: PBM fails when it starts compressing",
        )


@rule(
    "PSB210",
    title="Unknown compression type or level",
    severity=Severity.ERROR,
    kind=(kinds.CLUSTER, kinds.BACKUP, kinds.SCHEDULE),
    needs_backup_enabled=True,
    source="PBM v2.15.0@6f9fc3bf pbm/compress/compress.go:143-147 (unknown type writes uncompressed); PBM v2.15.0@6f9fc3bf pbm/config/config.go:591-594 "
    "(pitr: unsupported compression type)",
    hint="use one of: none, gzip, pgzip, snappy, lz4, s2, zstd (gzip/pgzip levels -2..9)",
    bad=[
        with_backup(
            "storages: {s3: {type: s3, s3: {bucket: b}}}, tasks: [{name: daily, enabled: true, "
            "schedule: '0 0 * * *', storageName: s3, compressionType: gz}]"
        ),
        with_backup("storages: {s3: {type: s3, s3: {bucket: b}}}, pitr: {enabled: true, compressionType: zip}"),
        "spec: {clusterName: my-cluster, storageName: s3-main, compressionType: gzip, compressionLevel: 11}",
        _SCHEDULE + "compressionType: zip}}",
    ],
    good=[
        with_backup(
            "storages: {s3: {type: s3, s3: {bucket: b}}}, tasks: [{name: daily, enabled: true, "
            "schedule: '0 0 * * *', storageName: s3, compressionType: zstd}]"
        ),
        "spec: {clusterName: my-cluster, storageName: s3-main, compressionType: gzip, compressionLevel: 6}",
        _SCHEDULE + "compressionType: zstd, compressionLevel: 3}}",
    ],
)
def compression(ctx: Context) -> Iterable[Violation]:
    """A backup with an unknown type is silently written uncompressed; an unknown PITR type puts the cluster in error
    (even with PITR disabled, because the operator always writes the PITR section)."""
    if ctx.kind in (kinds.BACKUP, kinds.SCHEDULE):
        yield from _check(("spec",), ctx.spec, "compressionType", "the backup is written uncompressed")
        return
    for i, task in ctx.tasks:
        yield from _check(
            ("spec", "backup", "tasks", i), task, "compressionType", "backups of this task are written uncompressed"
        )
    pitr = mapping(backup_spec(ctx.spec).get("pitr"))
    yield from _check(
        ("spec", "backup", "pitr"),
        pitr,
        "compressionType",
        'the cluster goes to error with "unsupported compression type"',
    )
