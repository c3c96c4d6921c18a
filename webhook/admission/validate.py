"""The admission-only part of validation: a namespace may choose its enforcement mode with a label. The rules, live
lookups and the decision itself are shared with `lint --cluster` and the controller (webhook.policy.live)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..policy.live import Enforcement

ENFORCEMENT_LABEL = "psmdb-backup-webhook.io/enforcement"


def namespace_mode(namespace: Mapping[str, Any] | None, default: Enforcement) -> Enforcement:
    labels = ((namespace or {}).get("metadata") or {}).get("labels") or {}
    try:
        return Enforcement(str(labels.get(ENFORCEMENT_LABEL, default.value)).strip().lower())
    except ValueError:
        return default
