"""The schedule reconciler (webhook/controller/schedules.py) against an in-memory API: what it creates, deletes and
writes into the status for each situation. The real API server runs it in tests/e2e/test_schedules_e2e.py."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from webhook.controller.kubeapi import KubeError
from webhook.controller.runtime import Ctx
from webhook.controller.schedule import schedule_backup_name
from webhook.controller.schedules import ScheduleReconciler
from webhook.policy import kinds

NS = "psmdb"
T0 = datetime(2026, 12, 3, 10, 0, 0, tzinfo=UTC)


class FakeKube:
    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}  # path -> object
        self.events: list[dict[str, Any]] = []
        self.deleted: list[str] = []
        self.refuse_create: KubeError | None = None

    async def create(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        if path.endswith("/events"):
            self.events.append(dict(body))
            return dict(body)
        if self.refuse_create is not None:
            raise self.refuse_create
        full = f"{path}/{body['metadata']['name']}"
        if full in self.objects:
            raise KubeError(409, "AlreadyExists", f"{body['metadata']['name']} already exists")
        obj = copy.deepcopy(dict(body))
        obj["metadata"]["resourceVersion"] = "1"
        self.objects[full] = obj
        return copy.deepcopy(obj)

    async def patch(self, path: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        assert path.endswith("/status"), path
        obj = self.objects[path.removesuffix("/status")]
        status = obj.setdefault("status", {})
        for k, v in patch["status"].items():
            if v is None:
                status.pop(k, None)
            else:
                status[k] = v
        return copy.deepcopy(obj)

    async def delete(self, path: str, *, resource_version: str | None = None) -> bool:
        self.deleted.append(path.rsplit("/", 1)[1])
        self.objects.pop(path, None)
        return True


class Registry:
    def __init__(self, ctx: Ctx) -> None:
        self.ctx = ctx
        self.handlers: dict[str, Any] = {}
        self.callbacks: list[Any] = []
        self.queued: list[tuple[str, str, str]] = []

    def handle(self, kind: str, handler: Any) -> None:
        self.handlers[kind] = handler

    def on_change(self, callback: Any) -> None:
        self.callbacks.append(callback)

    def enqueue(self, kind: str, namespace: str, name: str, delay: float = 0.0) -> None:
        self.queued.append((kind, namespace, name))


class World:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now
        self.kube = FakeKube()
        self.ctx = Ctx(kube=self.kube, clock=lambda: self.now)  # type: ignore[arg-type]
        self.reg = Registry(self.ctx)
        self.rec = ScheduleReconciler(self.reg)  # type: ignore[arg-type]
        self.ctx.clusters[(NS, "c1")] = {
            "metadata": {"name": "c1", "namespace": NS},
            "spec": {"backup": {"storages": {"s3-a": {"type": "s3"}, "s3-main": {"type": "s3", "main": True}}}},
        }

    def schedule(self, name: str = "nightly", created: datetime = T0 - timedelta(hours=1), **spec: Any) -> None:
        obj = {
            "apiVersion": "psmdb-backup-webhook.io/v1alpha1",
            "kind": kinds.SCHEDULE,
            "metadata": {"name": name, "namespace": NS, "generation": 2, "creationTimestamp": _t(created)},
            "spec": {"clusterName": "c1", "schedule": "0 * * * *", "startingDeadlineSeconds": 300, **spec},
        }
        path = f"/apis/psmdb-backup-webhook.io/v1alpha1/namespaces/{NS}/perconaservermongodbbackupschedules/{name}"
        self.kube.objects[path] = obj
        self.ctx.store_for(kinds.SCHEDULE)[(NS, name)] = copy.deepcopy(obj)

    def sched(self, name: str = "nightly") -> dict[str, Any]:
        return self.ctx.store_for(kinds.SCHEDULE)[(NS, name)]

    def run(self, name: str = "nightly") -> float | None:
        return asyncio.run(self.rec.reconcile(self.sched(name)))

    def backups(self) -> dict[str, dict[str, Any]]:
        return {p.rsplit("/", 1)[1]: o for p, o in self.kube.objects.items() if "/perconaservermongodbbackups/" in p}

    def set_state(self, name: str, state: str, completed: datetime | None = None) -> None:
        b = self.backups()[name]
        b["status"] = {"state": state, **({"completed": _t(completed)} if completed else {})}
        self.ctx.backups[(NS, name)] = copy.deepcopy(b)

    def reasons(self) -> list[str]:
        return [e["reason"] for e in self.kube.events]


def _t(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def conditions(status: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}


def test_a_due_slot_gets_one_backup_with_the_main_storage_and_the_status_says_so() -> None:
    w = World(T0 + timedelta(seconds=3))
    w.schedule()
    delay = w.run()
    name = schedule_backup_name(NS, "nightly", T0)
    assert list(w.backups()) == [name]
    b = w.backups()[name]
    assert b["spec"] == {"clusterName": "c1", "type": "logical", "storageName": "s3-main"}
    assert b["metadata"]["labels"]["percona.com/backup-ancestor"] == "nightly"
    st = w.sched()["status"]
    assert st["lastScheduleTime"] == "2026-12-03T10:00:00Z" and st["nextScheduleTime"] == "2026-12-03T11:00:00Z"
    assert st["active"] == [name] and st["lastBackupName"] == name and st["missedSlots"] == 0
    assert st["observedGeneration"] == 2
    assert conditions(st) == {
        "Ready": ("True", "Scheduling"),
        "ScheduleValid": ("True", "Parsed"),
        "ClusterFound": ("True", "Found"),
    }
    assert w.reasons() == ["BackupCreated"]
    assert delay == pytest.approx(3600 - 3, abs=0.1)
    assert w.ctx.metrics.scheduled.labels(NS, "c1", "nightly")._value.get() == 1
    w.run()  # again, same time: nothing new
    assert len(w.backups()) == 1 and w.reasons() == ["BackupCreated"]


def test_a_lost_mark_meets_409_and_counts_the_slot_as_done() -> None:
    """A new leader whose caches miss the Backup (and the status write) decides the same slot: AlreadyExists."""
    w = World(T0 + timedelta(seconds=3))
    w.schedule()
    w.run()
    w.rec.marks.clear()
    w.ctx.backups.clear()
    w.sched().pop("status")
    w.kube.events.clear()
    w.run()
    assert len(w.backups()) == 1 and w.reasons() == []
    assert w.sched()["status"]["lastScheduleTime"] == "2026-12-03T10:00:00Z"


def test_after_downtime_only_the_latest_slot_runs_and_older_ones_are_counted() -> None:
    w = World(T0 + timedelta(minutes=1))
    w.schedule(created=T0 - timedelta(hours=3, minutes=30))  # slots 07:00, 08:00, 09:00, 10:00 passed
    w.run()
    assert list(w.backups()) == [schedule_backup_name(NS, "nightly", T0)]
    assert w.sched()["status"]["missedSlots"] == 3
    assert w.reasons() == ["BackupCreated", "MissedSlots"]
    assert "3 slot(s) got no Backup: 2026-12-03T07:00:00Z" in w.kube.events[1]["message"]
    assert w.ctx.metrics.missed_slots.labels(NS, "c1", "nightly")._value.get() == 3


def test_a_slot_past_the_starting_deadline_is_counted_not_run() -> None:
    w = World(T0 + timedelta(minutes=10))
    w.schedule()
    w.run()
    assert w.backups() == {} and w.sched()["status"]["missedSlots"] == 1
    assert "noticed after startingDeadlineSeconds" in w.kube.events[0]["message"]


@pytest.mark.parametrize(("policy", "created"), [("Forbid", 0), ("Allow", 1)])
def test_concurrency_policy_with_the_previous_backup_unfinished(policy: str, created: int) -> None:
    w = World(T0 + timedelta(seconds=1))
    w.schedule(concurrencyPolicy=policy)
    w.run()
    first = schedule_backup_name(NS, "nightly", T0)
    w.set_state(first, "running")
    w.now += timedelta(hours=1)
    w.run()
    assert len(w.backups()) == 1 + created
    assert w.sched()["status"]["missedSlots"] == 1 - created
    assert len(w.sched()["status"]["active"]) == 1 + created


def test_suspended_slots_pass_uncounted_and_resuming_does_not_run_them() -> None:
    w = World(T0 + timedelta(seconds=1))
    w.schedule(suspend=True)
    w.run()
    st = w.sched()["status"]
    assert w.backups() == {} and st["missedSlots"] == 0 and "nextScheduleTime" not in st
    assert conditions(st)["Ready"] == ("True", "Suspended")
    w.sched()["spec"]["suspend"] = False
    w.now += timedelta(minutes=2)
    w.run()
    assert w.backups() == {} and w.sched()["status"]["nextScheduleTime"] == "2026-12-03T11:00:00Z"


def test_retention_deletes_the_oldest_ready_backups_beyond_count_and_events_them() -> None:
    w = World(T0 + timedelta(seconds=1))
    w.schedule(retention={"count": 2})
    names = []
    for _ in range(4):
        w.run()
        name = schedule_backup_name(NS, "nightly", w.now.replace(second=0))
        names.append(name)
        w.set_state(name, "ready", completed=w.now + timedelta(minutes=1))
        w.now += timedelta(hours=1)
    w.run()
    assert w.kube.deleted == names[:2]
    assert [e["reason"] for e in w.kube.events].count("RetentionDeleted") == 2
    assert w.sched()["status"]["lastSuccessfulTime"] == "2026-12-03T13:01:01Z"


def test_missing_cluster_and_bad_schedule_show_in_the_conditions() -> None:
    w = World()
    w.schedule(clusterName="nope")
    assert w.run() is None
    assert conditions(w.sched()["status"])["Ready"] == ("False", "ClusterNotFound")
    w.schedule("broken", schedule="61 * * * *")
    assert w.run("broken") is None
    assert conditions(w.sched("broken")["status"])["ScheduleValid"][0] == "False"
    assert w.backups() == {}


def test_a_refused_create_is_retried_and_reported() -> None:
    w = World(T0 + timedelta(seconds=1))
    w.schedule()
    w.kube.refuse_create = KubeError(403, "Forbidden", "backups is forbidden")
    assert w.run() == 10.0
    assert conditions(w.sched()["status"])["Ready"] == ("False", "CreateFailed")
    w.kube.refuse_create = None
    w.run()
    assert len(w.backups()) == 1 and conditions(w.sched()["status"])["Ready"][0] == "True"


def test_backup_and_cluster_changes_wake_the_schedule() -> None:
    w = World()
    w.schedule()
    (callback,) = w.reg.callbacks
    callback(kinds.BACKUP, {"metadata": {"namespace": NS, "labels": {"percona.com/backup-ancestor": "nightly"}}}, False)
    callback(kinds.BACKUP, {"metadata": {"namespace": NS, "labels": {"percona.com/backup-ancestor": "other"}}}, False)
    callback(kinds.CLUSTER, {"metadata": {"namespace": NS, "name": "c1"}}, False)
    assert w.reg.queued == [(kinds.SCHEDULE, NS, "nightly")] * 2


def test_the_family_index_follows_backups_seen_on_the_watch_label_changes_and_deletions() -> None:
    w = World()
    (callback,) = w.reg.callbacks

    def backup(name: str, ancestor: str) -> dict[str, Any]:
        b = {
            "metadata": {"name": name, "namespace": NS, "labels": {"percona.com/backup-ancestor": ancestor}},
            "spec": {"clusterName": "c1"},
        }
        w.ctx.backups[(NS, name)] = b
        return b

    def family() -> list[str]:
        return [b["metadata"]["name"] for b in w.rec._backups(NS, "nightly", "c1")]

    a, b = backup("a", "nightly"), backup("b", "nightly")
    callback(kinds.BACKUP, a, False)
    callback(kinds.BACKUP, b, False)
    callback(kinds.BACKUP, backup("x", "other"), False)
    assert family() == ["a", "b"]
    callback(kinds.BACKUP, backup("a", "other"), False)  # relabelled: moves to the other family
    assert family() == ["b"] and [o["metadata"]["name"] for o in w.rec._backups(NS, "other", "c1")] == ["x", "a"]
    del w.ctx.backups[(NS, "b")]
    callback(kinds.BACKUP, b, True)
    assert family() == [] and (NS, "nightly") not in w.rec.families
