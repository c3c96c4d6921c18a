"""The pure rule engine: `check(obj, lookup=...)` -> findings. Importing this package registers every rule."""

from . import backup, cluster, compression, oci, restore, storages, tasks  # noqa: F401  (registers the rules)
from .engine import check
from .lookup import DocumentsLookup, EmptyLookup, Found, Lookup, Missing, RecordingLookup, Unknown
from .registry import RULES, Rule

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
