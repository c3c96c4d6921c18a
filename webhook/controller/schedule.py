"""Pure scheduling decisions of the backup controller: which slot is due, what a slot's Backup is called, and
which backups retention removes. No clock, no API: callers pass `now` and the objects.

Exactly once per slot: the Backup for a slot has a name derived from (namespace, cluster, task, slot time), so a
restart, a leader change or a second replica that decides the same slot creates the same name, and the API server
refuses the duplicate (409 AlreadyExists).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from .. import cron

MAX_CATCH_UP_STEPS = 5_000  # about 3.5 days of a minutely schedule; beyond that we jump (see due())


def slot_backup_name(namespace: str, cluster: str, task: str, slot: datetime) -> str:
    """`cron-<cluster[:16]>-<YYYYMMDDhhmmss>-<hash>`: the operator's generateName shape, with a deterministic suffix
    instead of a random one (the hash also separates two tasks that fire in the same second)."""
    stamp = slot.astimezone(UTC).strftime("%Y%m%d%H%M%S")
    digest = hashlib.sha256(f"{namespace}/{cluster}/{task}/{stamp}".encode()).hexdigest()[:6]
    return f"cron-{cluster[:16].rstrip('-.')}-{stamp}-{digest}"


@dataclass(frozen=True)
class Due:
    run: datetime | None  # the slot to back up now, if any
    missed: tuple[datetime, ...]  # slots that passed unrun and are reported, never run
    next: datetime | None  # the next slot after now (for the timer)


def due(schedule: cron.Schedule, *, since: datetime, now: datetime, starting_deadline: timedelta | None) -> Due:
    """Slots in (since, now]: only the latest is run, and only when now - slot <= starting_deadline (no deadline:
    always); every other one is missed. `since` is the last slot already handled (or when the task appeared)."""
    slots: list[datetime] = []
    t = since
    for _ in range(MAX_CATCH_UP_STEPS):
        nxt = schedule.next(t)
        if nxt is None or nxt > now:
            break
        slots.append(nxt)
        t = nxt
    else:  # an absurdly long downtime: report the ones we walked, then restart the walk close to now
        recent = due(schedule, since=now - timedelta(days=1), now=now, starting_deadline=starting_deadline)
        return Due(recent.run, tuple(slots) + recent.missed, recent.next)
    latest = slots[-1] if slots else None
    run = latest if latest and (starting_deadline is None or now - latest <= starting_deadline) else None
    missed = tuple(s for s in slots if s != run)
    return Due(run, missed, schedule.next(now))


def _created(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("creationTimestamp") or "")


def retention_victims(backups: Iterable[Mapping[str, Any]], *, keep: int, task_type: str) -> list[Mapping[str, Any]]:
    """The Backups of one task that retention deletes: keep the newest `keep` in state ready, delete older ready
    ones; non-ready Backups are never counted or deleted; `incremental` tasks and keep <= 0 delete nothing
    (facts §4.4)."""
    if task_type == "incremental" or keep <= 0:
        return []
    ready = [b for b in backups if (b.get("status") or {}).get("state") == "ready"]
    if len(ready) <= keep:
        return []
    ready.sort(key=lambda b: (_created(b), (b.get("metadata") or {}).get("name", "")))
    return ready[: len(ready) - keep]
