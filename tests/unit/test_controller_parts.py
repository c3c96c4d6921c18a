"""The companion controller's parts: lease expiry, the informer's handling of watch events (410 Gone, bookmarks),
the work queue, how reconcilers register with the manager, and the read-only PBM reader."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from webhook.controller.informer import Informer
from webhook.controller.kubeexec import ExecResult, PodRef
from webhook.controller.leases import expired
from webhook.controller.manager import Controller, Options, WorkQueue
from webhook.controller.pbmread import ClusterRef, PBMReader
from webhook.controller.runtime import Ctx


def test_lease_expiry() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    lease = {"spec": {"holderIdentity": "a", "leaseDurationSeconds": 10, "renewTime": "2026-01-01T00:00:00.000000Z"}}
    assert not expired(lease, now + timedelta(seconds=9))
    assert expired(lease, now + timedelta(seconds=11))
    assert expired({"spec": {}}, now)
    assert not expired({"spec": {"holderIdentity": "op-lock"}}, now + timedelta(days=9))  # the operator's: no expiry


def test_informer_relists_after_410_and_follows_bookmarks() -> None:
    seen: list[tuple[str, bool]] = []
    restarts: list[str] = []
    inf = Informer(
        None,
        "K",
        "/x",
        lambda k, o, d: seen.append((o["metadata"]["name"], d)),  # type: ignore[arg-type]
        on_restart=restarts.append,
    )
    obj = {"metadata": {"namespace": "n", "name": "a", "resourceVersion": "5", "managedFields": [{"manager": "m"}]}}
    assert inf._apply({"type": "ADDED", "object": obj})
    assert "managedFields" not in inf.store[("n", "a")]["metadata"]  # dropped: nothing reads it, it costs memory
    cached = Ctx(kube=None).remember({"metadata": {"namespace": "n", "name": "b", "managedFields": []}}, "K")  # type: ignore[arg-type]
    assert "managedFields" not in cached["metadata"]
    assert inf._apply({"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "9"}}})
    assert inf.resource_version == "9" and seen == [("a", False)]
    assert not inf._apply({"type": "ERROR", "object": {"code": 410, "message": "too old resource version"}})
    assert inf.resource_version == "" and restarts == ["expired"]
    assert inf._apply({"type": "DELETED", "object": obj}) and ("a", True) in seen and not inf.store


def test_work_queue_runs_a_key_once_at_a_time_and_again_when_added_meanwhile() -> None:
    async def scenario() -> list[str]:
        calls: list[str] = []
        gate = asyncio.Event()

        async def handler(key: Any) -> None:
            calls.append(key[2])
            if len(calls) == 1:
                await gate.wait()

        q = WorkQueue(handler, lambda key: None)
        workers = [asyncio.create_task(q.worker()) for _ in range(3)]
        q.add(("K", "n", "a"))
        await asyncio.sleep(0.01)
        q.add(("K", "n", "a"))  # while in flight: once more afterwards, not concurrently
        q.add(("K", "n", "a"))
        await asyncio.sleep(0.01)
        assert calls == ["a"]
        gate.set()
        await asyncio.sleep(0.05)
        for w in workers:
            w.cancel()
        return calls

    assert asyncio.run(scenario()) == ["a", "a"]


def test_registered_handlers_get_their_kinds_objects_only_while_acting() -> None:
    async def scenario() -> list[Any]:
        ctx = Ctx(kube=None)  # type: ignore[arg-type]
        controller = Controller(Options(namespaces=["a", "b"]), ctx)
        seen: list[Any] = []

        async def on_backup(obj: dict[str, Any]) -> float | None:
            seen.append(obj["metadata"]["name"])
            return None

        controller.handle("PerconaServerMongoDBBackup", on_backup)
        with pytest.raises(ValueError, match="already registered"):
            controller.handle("PerconaServerMongoDBBackup", on_backup)
        controller.on_change(lambda kind, obj, deleted: seen.append((kind, deleted)))
        assert len(controller.informers) == 6  # 3 kinds x 2 namespaces
        worker = asyncio.create_task(controller.queue.worker())
        b = {"metadata": {"namespace": "a", "name": "b1"}}
        controller._changed("PerconaServerMongoDBBackup", b, False)
        controller._changed("PerconaServerMongoDB", {"metadata": {"namespace": "a", "name": "c1"}}, False)
        await asyncio.sleep(0.01)
        assert ctx.backups == {("a", "b1"): b} and "b1" not in seen  # not the leader yet: cached, not handled
        controller.acting = True
        controller.enqueue("PerconaServerMongoDBBackup", "a", "b1")
        controller.enqueue("PerconaServerMongoDB", "a", "c1")  # no handler: not queued
        await asyncio.sleep(0.01)
        worker.cancel()
        return seen

    seen = asyncio.run(scenario())
    assert seen == [("PerconaServerMongoDBBackup", False), ("PerconaServerMongoDB", False), "b1"]


def test_periodic_ticks_survive_a_failing_pass() -> None:
    async def scenario() -> int:
        controller = Controller(Options(), Ctx(kube=None))  # type: ignore[arg-type]
        calls = 0

        async def tick() -> None:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise RuntimeError("boom")

        controller.every(0.01, tick)
        (loop,) = controller.loops
        task = asyncio.create_task(loop())
        await asyncio.sleep(0.05)
        task.cancel()
        return calls

    assert asyncio.run(scenario()) >= 2


def test_the_pbm_reader_runs_reads_and_refuses_every_write() -> None:
    ran: list[list[str]] = []

    async def exec(pod: PodRef, container: str, argv: list[str], stdin: bytes | None) -> ExecResult:
        ran.append(argv)
        return ExecResult(stdout=b'{"cluster": []}', stderr=b"", ok=True, exit_code=0)

    reader = PBMReader(exec)  # type: ignore[arg-type]
    ref = ClusterRef("ns", "c1")
    assert asyncio.run(reader.status(ref)) == {"cluster": []}
    assert ran == [["pbm", "status", "-o", "json"]]
    for args in (["backup"], ["restore", "x"], ["delete-backup", "x"], ["config", "--set", "a=b"], ["cancel-backup"]):
        with pytest.raises(ValueError, match="not a read-only PBM command"):
            asyncio.run(reader._run(ref, args))
    assert len(ran) == 1


class _SharedLease:
    """An in-memory Lease with the API server's rule (a holder keeps it until `duration` passes without renewal),
    reached through per-replica handles whose calls can be made to hang, as behind a stalled proxy."""

    def __init__(self) -> None:
        self.holder: str | None = None
        self.renewed = 0.0

    def handle(self) -> Any:
        lease = self

        class Handle:
            hang = False

            async def acquire(self, namespace: str, name: str, identity: str, duration: int) -> str | None:
                if self.hang:
                    await asyncio.sleep(3600)
                now = asyncio.get_running_loop().time()
                if lease.holder in (None, identity) or now - lease.renewed > duration:
                    lease.holder, lease.renewed = identity, now
                    return None
                return lease.holder

        return Handle()


def test_leader_election_rejects_a_renew_deadline_not_below_the_lease_duration() -> None:
    from webhook.controller.leases import LeaderElector

    with pytest.raises(ValueError, match="renew deadline"):
        LeaderElector(_SharedLease().handle(), "ns", "l", "a", duration=3, renew_deadline=3.0, retry=1.0)


def test_a_hanging_renewal_is_cancelled_at_the_deadline_so_two_leaders_never_act_at_once() -> None:
    from webhook.controller.leases import LeaderElector

    async def scenario() -> tuple[float, bool]:
        lease = _SharedLease()
        a_handle, b_handle = lease.handle(), lease.handle()
        a = LeaderElector(a_handle, "ns", "l", "a", duration=1, renew_deadline=0.5, retry=0.1)
        b = LeaderElector(b_handle, "ns", "l", "b", duration=1, renew_deadline=0.5, retry=0.1)
        loop = asyncio.get_running_loop()
        tasks = [asyncio.create_task(a.run())]
        await asyncio.wait_for(a.leading.wait(), 2)
        tasks.append(asyncio.create_task(b.run()))
        await asyncio.sleep(0.3)
        hung_at = loop.time()
        a_handle.hang = True  # every later call of the leader hangs for an hour
        overlap = False
        while not b.leading.is_set() and loop.time() - hung_at < 5:
            overlap |= a.leading.is_set() and b.leading.is_set()
            await asyncio.sleep(0.005)
        overlap |= a.leading.is_set() and b.leading.is_set()
        b_leads = loop.time()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return b_leads - hung_at, overlap or not a.lost.is_set()

    b_after, bad = asyncio.run(scenario())
    assert not bad, "the old leader still acted when the new one took over"
    assert b_after < 2.5  # the standby took over after about one lease duration


class _EventKube:
    """Records Event creates; each one waits for `gate` so a test can see whether `emit` waited for it."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.created: list[str] = []

    async def create(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        await self.gate.wait()
        self.created.append(body["reason"])
        return body


def test_events_are_sent_in_the_background_in_order_and_drained_on_stop() -> None:
    from webhook.controller.kubeapi import Events

    async def go() -> None:
        kube = _EventKube()
        events = Events(kube, queue_size=2)  # type: ignore[arg-type]
        obj = {"kind": "X", "metadata": {"name": "o", "namespace": "ns"}}
        sender = asyncio.create_task(events.run())
        await asyncio.sleep(0)
        await asyncio.wait_for(events.emit(obj, "A", "m"), 1)  # queued: returns with the API call blocked
        await asyncio.wait_for(events.emit(obj, "B", "m"), 1)
        assert kube.created == []
        kube.gate.set()
        await asyncio.sleep(0.01)
        assert kube.created == ["A", "B"]
        kube.gate.clear()
        await events.emit(obj, "C", "m")
        await events.emit(obj, "D", "m")
        sender.cancel()  # stop with C and D still queued: both are written
        kube.gate.set()
        await asyncio.gather(sender, return_exceptions=True)
        assert kube.created == ["A", "B", "C", "D"]
        kube.gate.clear()
        inline = asyncio.create_task(events.emit(obj, "E", "m"))  # no sender: written before emit returns
        await asyncio.sleep(0.01)
        assert not inline.done()
        kube.gate.set()
        await inline
        assert kube.created[-1] == "E"

    asyncio.run(go())
