"""The pure rule engine: `check(obj, lookup=...)` -> findings. Importing this package registers every rule."""

from . import backup, cluster, compression, engines, gcs, oci, restore, schedule, snapshots, storages, tasks
from .engine import check
from .lookup import DocumentsLookup, EmptyLookup, Found, Lookup, Missing, RecordingLookup, Unknown
from .registry import RULES, Rule

# Imported for their @rule registrations.
RULE_MODULES = (backup, cluster, compression, engines, gcs, oci, restore, schedule, snapshots, storages, tasks)

__all__ = [
    "check",
    "RULES",
    "Rule",
    "Lookup",
    "DocumentsLookup",
    "EmptyLookup",
    "RecordingLookup",
    "Found",
    "Missing",
    "Unknown",
]
