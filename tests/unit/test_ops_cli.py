"""`psmdb-backup status` (build, text and JSON) and `backup`/`restore` (objects, PITR base, following) without an
API server; tests/e2e/test_ops_cli_e2e.py runs the commands against a real one."""

from __future__ import annotations

import argparse
import asyncio
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from webhook.cli import build_parser
from webhook.controller import ondemand, status
from webhook.controller.kubeapi import KubeError
from webhook.kube import KubeTimeout

NOW = datetime(2026, 12, 3, 8, 0, 0, tzinfo=UTC)
NS = "db"


def ts(minutes_ago: float) -> str:
    return (NOW - timedelta(minutes=minutes_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def cluster(name: str = "c1", **backup: Any) -> dict[str, Any]:
    return {
        "kind": "PerconaServerMongoDB",
        "metadata": {"name": name, "namespace": NS, "creationTimestamp": ts(60 * 24 * 3), "uid": "c-uid"},
        "spec": {
            "backup": {
                "enabled": True,
                "storages": {
                    "s3-main": {"type": "s3", "main": True, "s3": {"bucket": "b", "prefix": "/c1/"}},
                    "az": {"type": "azure", "azure": {"container": "k"}},
                    "fs": {"type": "filesystem", "filesystem": {"path": "/mnt/b"}},
                },
                "tasks": [
                    {"name": "nightly", "enabled": True, "schedule": "0 3 * * *", "storageName": "s3-main"},
                    {"name": "often", "enabled": True, "schedule": "@every 1h", "storageName": "az"},
                    {"name": "broken", "enabled": False, "schedule": "61 * * * *"},
                ],
                "pitr": {"enabled": True},
                **backup,
            }
        },
        "status": {"state": "ready"},
    }


def backup(name: str, state: str, created_ago: float, ancestor: str = "", **status_: Any) -> dict[str, Any]:
    labels = {"percona.com/backup-ancestor": ancestor} if ancestor else {}
    return {
        "kind": "PerconaServerMongoDBBackup",
        "metadata": {
            "name": name,
            "namespace": NS,
            "uid": f"{name}-uid",
            "labels": labels,
            "creationTimestamp": ts(created_ago),
        },
        "spec": {"clusterName": "c1", "storageName": status_.pop("storage", "s3-main")},
        "status": {"state": state, **status_},
    }


def schedule(name: str, expr: str, **spec: Any) -> dict[str, Any]:
    return {
        "kind": "PerconaServerMongoDBBackupSchedule",
        "metadata": {"name": name, "namespace": NS, "creationTimestamp": ts(30)},
        "spec": {"clusterName": "c1", "schedule": expr, **spec},
    }


def test_storages_schedules_and_tasks_with_last_runs_and_next_runs() -> None:
    backups = [
        backup("n-1", "ready", 60 * 29, "nightly", completed=ts(60 * 29 - 5)),
        backup("n-2", "error", 60 * 5, "nightly", error="boom"),
        backup("o-1", "ready", 100, "often", completed=ts(95), storage="az"),
        backup("o-2", "ready", 40, "often", completed=ts(38), storage="az"),
    ]
    inputs = status.Inputs(
        [cluster()],
        backups,
        schedules=[
            schedule("hourly", "0 * * * *", storageName="s3-main"),
            schedule("paused", "0 * * * *", suspend=True),
            {**schedule("with-status", "0 * * * *"), "status": {"nextScheduleTime": "2026-12-03T09:00:00Z"}},
            {**schedule("other-cluster", "0 * * * *"), "spec": {"clusterName": "c2", "schedule": "0 * * * *"}},
        ],
    )
    doc = status.build(inputs, NOW, last=3)
    assert doc["format"] == "psmdb-backup/status/v1" and doc["generatedAt"] == "2026-12-03T08:00:00Z"
    c = doc["clusters"][0]
    assert c["storages"] == [
        {"name": "az", "type": "azure", "main": False, "location": "azure://k"},
        {"name": "fs", "type": "filesystem", "main": False, "location": "filesystem:/mnt/b"},
        {"name": "s3-main", "type": "s3", "main": True, "location": "s3://b/c1"},
    ]
    rows = {s["name"]: s for s in c["schedules"]}
    assert list(rows) == ["hourly", "paused", "with-status", "nightly", "often", "broken"]  # schedules, then tasks
    assert rows["hourly"]["nextRun"] == "2026-12-03T09:00:00Z" and rows["hourly"]["lastRun"] is None
    assert rows["paused"]["active"] is False and rows["paused"]["nextRun"] is None
    assert rows["with-status"]["nextRun"] == "2026-12-03T09:00:00Z"
    nightly = rows["nightly"]
    assert nightly["source"] == "task" and nightly["nextRun"] == "2026-12-04T03:00:00Z"
    assert nightly["lastRun"] == {"backup": "n-2", "time": ts(60 * 5), "state": "error"}
    assert nightly["lastSuccess"] == {"backup": "n-1", "time": ts(60 * 29 - 5), "state": "ready"}
    # @every counts from the operator's last run: 40 minutes ago + 1h
    assert rows["often"]["nextRun"] == ts(40 - 60) and rows["often"]["lastSuccess"]["backup"] == "o-2"
    assert rows["broken"]["active"] is False and rows["broken"]["nextRun"] is None
    assert rows["broken"]["problem"].startswith("invalid schedule: ")
    # newest first, limited, with the total
    assert [b["name"] for b in c["backups"]] == ["o-2", "o-1", "n-2"] and c["backupCount"] == 4
    assert c["backups"][2]["error"] == "boom" and c["backups"][0]["storage"] == "az"
    # the failed slot Backup is a watchdog finding
    assert [f["code"] for f in c["findings"]] == ["WD002"]
    assert c["findings"][0]["object"] == {"kind": "PerconaServerMongoDBBackup", "name": "n-2"}


def test_running_operations_lock_holder_and_pitr_window() -> None:
    running = backup("b-run", "running", 3, lastTransition=ts(1))
    backups = [
        backup("base-old", "ready", 300, completed=ts(290), lastWriteAt=ts(291)),
        backup("base-az", "ready", 200, completed=ts(190), lastWriteAt=ts(191), storage="az"),
        backup("base-new", "ready", 100, completed=ts(90), lastWriteAt=ts(91), latestRestorableTime=ts(2)),
        running,
    ]
    restore = {
        "kind": "PerconaServerMongoDBRestore",
        "metadata": {"name": "r1", "namespace": NS, "uid": "r1-uid", "creationTimestamp": ts(2)},
        "spec": {"clusterName": "c1", "backupName": "base-new"},
        "status": {"state": "waiting"},
    }
    lease = {
        "kind": "Lease",
        "metadata": {"name": "psmdb-c1-backup-lock", "namespace": NS},
        "spec": {"holderIdentity": "b-run-b-run-uid", "acquireTime": ts(3)},
    }
    inputs = status.Inputs([cluster()], backups, [restore], leases={(NS, "c1"): lease})
    c = status.build(inputs, NOW)["clusters"][0]
    assert c["running"] == [
        {"kind": "Backup", "name": "b-run", "state": "running", "since": ts(1), "storage": "s3-main"},
        {"kind": "Restore", "name": "r1", "state": "waiting", "since": ts(2), "storage": ""},
    ]
    assert c["lock"] == {
        "lease": "psmdb-c1-backup-lock",
        "holder": "b-run-b-run-uid",
        "heldBy": {"kind": "Backup", "name": "b-run", "state": "running"},
        "since": ts(3),
    }
    # from the oldest base on the main storage (PITR chunks live there) to the operator's latestRestorableTime
    assert c["pitr"] == {"enabled": True, "from": ts(291), "to": ts(2)}
    off = status.build(status.Inputs([cluster(pitr={"enabled": False})], backups), NOW)["clusters"][0]
    assert off["pitr"] == {"enabled": False, "from": ts(291), "to": ts(2)}  # chunks written while it was on


def test_text_is_aligned_and_coloured_only_when_asked() -> None:
    inputs = status.Inputs([cluster()], [backup("n-1", "error", 60, "nightly", error="boom")])
    doc = status.build(inputs, NOW)
    plain = status.render_text(doc)
    assert "\x1b[" not in plain
    lines = plain.splitlines()
    assert lines[0] == "Cluster db/c1  (ready, backups enabled)"
    head = next(i for i, line in enumerate(lines) if "LOCATION" in line)
    assert lines[head].index("LOCATION") == lines[head + 1].index("azure://k")
    assert lines[head + 3].split() == ["s3-main", "s3", "*", "s3://b/c1"]
    assert "    error   WD002 BackupFailed: Backup n-1" in plain.replace("ERROR  ", "error  ")
    assert "PITR: on; no restorable time reported yet (the operator writes it" in plain and "Lock: free" in plain
    coloured = status.render_text(doc, color=True)
    assert "\x1b[31merror\x1b[0m" in coloured and "\x1b[1mCluster db/c1\x1b[0m" in coloured
    # colour codes do not shift the columns: stripped of them, the text is the plain one
    import re

    assert re.sub(r"\x1b\[\d+m", "", coloured) == plain
    assert status.render_text(status.build(status.Inputs([]), NOW)) == "no PerconaServerMongoDB clusters found\n"


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_colour_needs_a_terminal_and_no_NO_COLOR(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert status.use_color(Tty()) and not status.use_color(io.StringIO())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not status.use_color(Tty())


def test_errors_name_the_verb_the_resource_and_the_server() -> None:
    e = status.explain(KubeError(403, "Forbidden", "nope"), "list", "perconaservermongodbs.psmdb.percona.com", "db")
    assert str(e) == (
        "no permission to list perconaservermongodbs.psmdb.percona.com in namespace db: nope "
        "(check: kubectl auth can-i list perconaservermongodbs.psmdb.percona.com -n db)"
    )
    assert "-A)" in str(status.explain(KubeError(403, "Forbidden", "x"), "list", "r", None))
    gone = status.explain(ConnectionRefusedError("connection refused"), "list", "r", "db", "https://10.0.0.1:6443")
    assert str(gone) == "cannot reach the API server at https://10.0.0.1:6443: connection refused"
    late = status.explain(KubeTimeout(15), "list", "r", "db", "https://10.0.0.1:6443")
    assert str(late) == "cannot reach the API server at https://10.0.0.1:6443: timed out after 15s"


def test_the_default_namespace_is_the_kubeconfig_contexts(tmp_path: Any) -> None:
    cfg = tmp_path / "config"
    cfg.write_text(
        "current-context: a\ncontexts:\n- name: a\n  context: {namespace: team-a}\n- name: b\n  context: {}\n"
    )
    assert status.default_namespace(str(cfg), None) == "team-a"
    assert status.default_namespace(str(cfg), "b") in ("default", open_sa_namespace())


def open_sa_namespace() -> str:
    try:
        with open("/var/run/secrets/kubernetes.io/serviceaccount/namespace") as f:
            return f.read().strip()
    except OSError:
        return "default"


# --------------------------------------------------------------------------------------------------- on demand


def test_backup_and_restore_objects() -> None:
    b = ondemand.backup_object(NS, "c1", "s3", type="physical", compression="zstd", level=3)
    assert b == {
        "apiVersion": "psmdb.percona.com/v1",
        "kind": "PerconaServerMongoDBBackup",
        "metadata": {"namespace": NS, "generateName": "c1-backup-", "finalizers": ["percona.com/delete-backup"]},
        "spec": {
            "clusterName": "c1",
            "storageName": "s3",
            "type": "physical",
            "compressionType": "zstd",
            "compressionLevel": 3,
        },
    }
    assert ondemand.backup_object(NS, "c1", "s3", name="mine")["metadata"]["name"] == "mine"
    r = ondemand.restore_object(NS, "c1", "b1", pitr="2026-12-01 10:00:00")
    assert r["metadata"] == {"namespace": NS, "generateName": "c1-restore-"}
    assert r["spec"] == {
        "clusterName": "c1",
        "backupName": "b1",
        "pitr": {"type": "date", "date": "2026-12-01 10:00:00"},
    }
    assert ondemand.restore_object(NS, "c1", "b1", pitr="latest")["spec"]["pitr"] == {"type": "latest"}


def test_the_pitr_base_is_the_newest_ready_backup_written_before_the_target() -> None:
    backups = [
        backup("old", "ready", 300, lastWriteAt="2026-12-01T09:00:00Z"),
        backup("fits", "ready", 200, lastWriteAt="2026-12-01T09:59:00Z"),
        backup("same-time", "ready", 150, lastWriteAt="2026-12-01T10:00:00Z"),
        backup("failed", "error", 120),
        {
            **backup("snap", "ready", 110, lastWriteAt="2026-12-01T09:59:30Z"),
            "spec": {"clusterName": "c1", "type": "external"},
        },
        {**backup("other", "ready", 100, lastWriteAt="2026-12-01T09:00:00Z"), "spec": {"clusterName": "c2"}},
    ]
    assert ondemand.pitr_base(backups, "c1", "2026-12-01 10:00:00")["metadata"]["name"] == "fits"
    assert ondemand.pitr_base(backups, "c1", "latest")["metadata"]["name"] == "same-time"
    assert ondemand.pitr_base(backups, "c1", "2026-12-01 08:00:00") is None


@pytest.mark.parametrize("value", ["latest", "2026-12-01 10:00:00"])
def test_pitr_target_accepts(value: str) -> None:
    assert ondemand.pitr_target(value) == value


@pytest.mark.parametrize("value", ["now", "2026-12-01T10:00:00", "2026-13-01 10:00:00", "2026-12-01 10:00"])
def test_pitr_target_refuses(value: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="YYYY-MM-DD HH:MM:SS"):
        ondemand.pitr_target(value)


@pytest.mark.parametrize(
    "argv",
    [
        ["status", "-n", "a", "-A"],
        ["backup", "c1", "--type", "snapshot"],
        ["backup", "c1", "--wait", "--timeout", "0"],
        ["restore", "c1", "--pitr", "tomorrow"],
    ],
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(argv)
    assert exc.value.code == 2


def test_restore_needs_a_backup_or_a_pitr_target(capsys: pytest.CaptureFixture[str]) -> None:
    args = build_parser().parse_args(["restore", "c1", "-n", NS])
    assert args.func(args) == 2
    assert "give --backup NAME, --pitr TIME|latest, or both" in capsys.readouterr().err


class FakeKube:
    """Watch streams served from a script; GETs from a dict."""

    def __init__(self, streams: list[list[dict[str, Any]]], objects: dict[str, dict[str, Any] | None]) -> None:
        self.streams, self.objects = streams, objects
        self.watched: list[dict[str, Any]] = []

    async def watch(self, path: str, **kw: Any) -> AsyncIterator[dict[str, Any]]:
        self.watched.append({"path": path, **kw})
        for event in self.streams.pop(0) if self.streams else []:
            yield event

    async def get(self, path: str) -> dict[str, Any] | None:
        return self.objects.get(path.rsplit("/", 1)[1])


def obj(state: str, rv: str, **status_: Any) -> dict[str, Any]:
    return {
        "kind": "PerconaServerMongoDBBackup",
        "metadata": {"name": "b1", "namespace": NS, "resourceVersion": rv},
        "status": {"state": state, **status_} if state else {},
    }


def follow(kube: FakeKube, out: io.StringIO, tty: bool = False) -> dict[str, Any]:
    api = status.Api(kube)  # type: ignore[arg-type]
    progress = ondemand.Progress(out, tty, "Backup db/b1")
    return asyncio.run(ondemand.follow(api, obj("", "1"), progress))


def test_follow_watches_the_one_object_to_a_final_state_with_a_line_per_state() -> None:
    kube = FakeKube(
        [
            [{"type": "MODIFIED", "object": obj("requested", "2")}, {"type": "BOOKMARK", "object": obj("", "3")}],
            [
                {"type": "MODIFIED", "object": obj("running", "4")},
                {"type": "MODIFIED", "object": obj("running", "5", size="1.00MB")},
                {"type": "MODIFIED", "object": obj("ready", "6", size="2.00MB")},
            ],
        ],
        {"b1": obj("requested", "3")},
    )
    out = io.StringIO()
    final = follow(kube, out)
    assert final["status"]["state"] == "ready"
    assert kube.watched[0]["field_selector"] == "metadata.name=b1" and kube.watched[0]["resource_version"] == "1"
    assert kube.watched[1]["resource_version"] == "3"  # after the stream ended: re-read, then watch from there
    states = [line.split(": ")[1].split(" (")[0] for line in out.getvalue().splitlines()]
    assert states == ["new", "requested", "running", "ready"]
    assert "size 2.00MB" in out.getvalue().splitlines()[-1]


def test_follow_on_a_terminal_rewrites_one_line() -> None:
    kube = FakeKube([[{"type": "MODIFIED", "object": obj("error", "2", error="boom")}]], {})
    out = io.StringIO()
    assert follow(kube, out, tty=True)["status"]["error"] == "boom"
    assert out.getvalue().count("\r\x1b[K") == 2 and "\n" not in out.getvalue()


def test_follow_says_when_the_object_is_deleted_and_survives_a_410() -> None:
    kube = FakeKube([[{"type": "DELETED", "object": obj("running", "2")}]], {})
    with pytest.raises(status.OpsError, match="Backup db/b1 was deleted while waiting for it"):
        follow(kube, io.StringIO())
    kube = FakeKube([[{"type": "ERROR", "object": {"code": 410}}], []], {"b1": obj("ready", "9")})
    assert follow(kube, io.StringIO())["metadata"]["resourceVersion"] == "9"


def test_the_krew_plugin_runs_the_same_commands() -> None:
    """krew installs the console script as kubectl-psmdb_backup: `kubectl psmdb-backup status` is this parser."""
    from webhook.cli import prog_name

    parser = build_parser(prog_name("/home/u/.krew/bin/kubectl-psmdb_backup"))
    args = parser.parse_args(["status", "my-cluster", "-n", "db", "-o", "json"])
    assert args.func.__name__ == "cmd_status" and (args.cluster, args.namespace, args.output) == (
        "my-cluster",
        "db",
        "json",
    )
    assert parser.prog == "kubectl psmdb-backup"


def test_a_task_replaced_by_its_schedule_shows_no_runs_of_its_own() -> None:
    c = cluster()
    c["spec"]["backup"]["tasks"][0]["enabled"] = False  # `schedules import` disabled it; schedule nightly took over
    inputs = status.Inputs(
        [c], [backup("s-1", "ready", 30, "nightly", completed=ts(25))], schedules=[schedule("nightly", "0 3 * * *")]
    )
    rows = {(s["source"], s["name"]): s for s in status.build(inputs, NOW)["clusters"][0]["schedules"]}
    assert rows[("schedule", "nightly")]["lastSuccess"]["backup"] == "s-1"
    assert rows[("task", "nightly")]["lastRun"] is None and rows[("task", "nightly")]["lastSuccess"] is None
    text = status.render_text(status.build(inputs, NOW))
    assert "30m ago s-1 [ready]" in text and "25m ago s-1" in text


def test_status_judges_findings_with_the_controllers_thresholds() -> None:
    """`--watchdog-threshold lock-grace=5`: a Lease of a gone holder taken 30 s ago is stale for it, not by default."""
    lease = {
        "kind": "Lease",
        "metadata": {"name": "psmdb-c1-backup-lock", "namespace": NS},
        "spec": {"holderIdentity": "gone-0f8fad5b-d9cb-469f-a165-70867728950e", "acquireTime": ts(0.5)},
    }
    inputs = status.Inputs([cluster(tasks=[])], leases={(NS, "c1"): lease})
    assert status.build(inputs, NOW)["clusters"][0]["findings"] == []
    args = build_parser().parse_args(["status", "--watchdog-threshold", "lock-grace=5"])
    assert args.watchdog_threshold == [("lock-grace", 5.0)]
    from webhook.controller.watchdog_run import thresholds

    judged = status.build(inputs, NOW, thresholds=thresholds(dict(args.watchdog_threshold)))
    assert [f["code"] for f in judged["clusters"][0]["findings"]] == ["WD006"]
