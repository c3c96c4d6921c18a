"""Contract of the PBM CLI as the operator stand-in and the companion use it, checked against the simulator
(tools/pbm_sim/bin/pbm) run as a local subprocess, writing into a moto S3 server on 127.0.0.1; and the drivers parsing it
(webhook/controller/pbmread.py reads, tools/operator_standin/pbm.py writes).

The pinned JSON shapes come from PBM 2.15.0's Go structs (PBM v2.15.0@6f9fc3bf cmd/pbm/backup.go:383-427,
restore.go:720-746, list.go:35-45,199-207, status.go): REQUIRED keys must be there, OPTIONAL ones (Go `omitempty`)
may be.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import re
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tools.operator_standin.pbm import CliDriver, backup_type_args, pitr_time_arg  # noqa: E402
from tools.storage_servers import AZURITE_ACCOUNT, AZURITE_KEY, Unavailable, start_azurite, start_moto  # noqa: E402
from webhook.controller.kubeexec import ExecResult, KubeExec, LocalExec, PodRef, parse_exec_status  # noqa: E402
from webhook.controller.pbmread import (  # noqa: E402
    BackupInfo,
    ClusterRef,
    PBMBusy,
    PBMError,
    PBMNotFound,
    PBMOutputError,
    PBMTimeout,
    PBMTransportError,
    RestoreInfo,
)

SIM_DIR = REPO / "tools" / "pbm_sim" / "bin"
PBM = str(SIM_DIR / "pbm")
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
RFC3339NANO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$")
STATUSES = {
    "init",
    "ready",
    "down",
    "starting",
    "cleanupCluster",
    "running",
    "dumpDone",
    "copyReady",
    "copyDone",
    "partlyDone",
    "done",
    "canceled",
    "error",
    "lastTS",
}
PREFIX = "psmdb/cluster1"
CLUSTER = ClusterRef("ns1", "cluster1")

pytestmark = pytest.mark.timeout(90)

# --------------------------------------------------------------------------------------------------- pinned shapes

# command -> (required keys, optional keys); PBM's Go structs, omitempty fields optional
SHAPES: dict[str, tuple[set[str], set[str]]] = {
    "version": ({"Version", "Platform", "GitCommit", "GitBranch", "BuildTime", "GoVersion"}, set()),
    "backup": ({"name", "storagePath"}, {"profile"}),  # backupOut
    "backup external": ({"name", "storage"}, set()),  # externBcpOut (errata 20)
    "describe-backup": (  # bcpDesc
        {
            "name",
            "opid",
            "type",
            "last_write_ts",
            "last_transition_ts",
            "last_write_time",
            "last_transition_time",
            "sel_user_and_roles",
            "mongodb_version",
            "fcv",
            "pbm_version",
            "status",
            "size",
            "size_uncompressed",
            "size_h",
            "size_uncompressed_h",
            "replsets",
        },
        {"profile", "storage_name", "storage_type", "namespaces", "error"},
    ),
    "describe-backup replset": (  # bcpReplDesc
        {
            "name",
            "status",
            "node",
            "size",
            "size_uncompressed",
            "size_uncompressed_h",
            "last_write_ts",
            "last_transition_ts",
            "last_write_time",
            "last_transition_time",
        },
        {"files", "size_h", "configsvr", "configshard", "security", "error", "collections"},
    ),
    "restore": ({"name"}, {"snapshot", "point-in-time"}),  # restoreRet (errata 21)
    "describe-restore": (  # describeRestoreResult
        {"name", "opid", "backup", "type", "status", "last_transition_ts", "last_transition_time", "replsets"},
        {"error", "namespaces", "start_ts", "start", "finish", "ts_to_restore", "time_to_restore"},
    ),
    "describe-restore replset": (
        {"name", "status", "last_transition_ts", "last_transition_time"},
        {"partial_txn", "nodes", "error"},
    ),
    "list": ({"snapshots"}, {"pitr"}),  # backupListOut
    "list snapshot": (
        {"name", "status", "printStatus", "restoreTo", "pbmVersion", "type", "src"},
        {"profile", "storage", "nss", "size", "error"},
    ),  # snapshotStat
    "list pitr": ({"on", "ranges"}, {"rsRanges"}),
    "list --restore entry": (
        {"start", "status", "type"},  # restoreStatus (errata 22)
        {"snapshot", "start-point-in-time", "point-in-time", "name", "namespaces", "error"},
    ),
    "status": ({"backups", "cluster", "pitr", "running"}, set()),
    "status cluster rs": ({"rs", "nodes"}, set()),
    "status node": ({"host", "agent", "role", "prio_pitr", "prio_backup", "ok"}, {"errors"}),
    "status pitr": ({"conf", "run", "nodes"}, {"error"}),
    "status running": (set(), {"type", "opID", "name", "startTS", "status"}),
    "status backups": ({"type", "path", "snapshot", "pitrChunks"}, {"region"}),
    "status pitrChunks": ({"size"}, {"pitrChunks"}),
    "config": ({"storage"}, {"name", "profile", "pitr", "backup", "restore"}),
    "profile list": ({"profiles"}, set()),
    "msg": ({"msg"}, set()),
    "config --set entry": ({"key", "value"}, set()),
}


def assert_shape(obj: Any, shape: str) -> None:
    required, optional = SHAPES[shape]
    assert isinstance(obj, dict), f"{shape}: not an object: {obj!r}"
    keys = set(obj)
    assert required <= keys, f"{shape}: missing {sorted(required - keys)} in {sorted(keys)}"
    assert keys <= required | optional, f"{shape}: unexpected {sorted(keys - required - optional)}"


def assert_describe_backup(d: dict[str, Any]) -> None:
    assert_shape(d, "describe-backup")
    assert RFC3339.match(d["name"])
    assert d["status"] in STATUSES and d["type"] in ("logical", "physical", "incremental", "external")
    for k in ("last_write_ts", "last_transition_ts", "size", "size_uncompressed"):
        assert type(d[k]) is int, k
    for k in ("last_write_time", "last_transition_time"):
        assert RFC3339.match(d[k]), k
    assert isinstance(d["sel_user_and_roles"], bool) and isinstance(d["replsets"], list)
    for rs in d["replsets"]:
        assert_shape(rs, "describe-backup replset")
        assert rs["status"] in STATUSES and type(rs["last_write_ts"]) is int


def assert_describe_restore(d: dict[str, Any]) -> None:
    assert_shape(d, "describe-restore")
    assert RFC3339NANO.match(d["name"]) and d["status"] in STATUSES
    assert type(d["last_transition_ts"]) is int and RFC3339.match(d["last_transition_time"])
    assert d["replsets"] is None or isinstance(d["replsets"], list)  # Go nil slice -> null while starting
    for rs in d["replsets"] or []:
        assert_shape(rs, "describe-restore replset")


def assert_status(d: dict[str, Any]) -> None:
    assert_shape(d, "status")
    assert list(d) == sorted(d), "Go encodes the section map with sorted keys"
    for rs in d["cluster"]:
        assert_shape(rs, "status cluster rs")
        for n in rs["nodes"]:
            assert_shape(n, "status node")
            assert n["role"] in ("P", "S", "A", "H", "D") and isinstance(n["ok"], bool)
    assert_shape(d["pitr"], "status pitr")
    assert_shape(d["running"], "status running")
    assert_shape(d["backups"], "status backups")
    assert_shape(d["backups"]["pitrChunks"], "status pitrChunks")
    for s in d["backups"]["snapshot"] or []:
        assert_shape(s, "list snapshot")


# --------------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def moto_endpoint() -> Any:
    moto = start_moto()
    try:
        yield moto.endpoint
    finally:
        moto.stop()


@pytest.fixture(scope="module")
def s3(moto_endpoint: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=moto_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture
def bucket(s3: Any) -> str:
    name = f"pbm-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PBM_"))}
    e.update(
        {
            "PATH": f"{SIM_DIR}{os.pathsep}{os.environ.get('PATH', '')}",
            "PSMDB_PBM_SIM_PYTHON": sys.executable,
            "PBM_SIM_STATE": str(tmp_path / "state"),
            "PBM_MONGODB_URI": "mongodb://pbm:secret@localhost:27017",
            "PBM_SIM_ADVANCE": "calls",
            "AWS_EC2_METADATA_DISABLED": "true",
        }
    )
    return e


def s3_config(endpoint: str, bucket: str, prefix: str = PREFIX, **pitr: Any) -> dict[str, Any]:
    return {
        "storage": {
            "type": "s3",
            "s3": {
                "region": "us-east-1",
                "bucket": bucket,
                "prefix": prefix,
                "endpointUrl": endpoint,
                "credentials": {"access-key-id": "testing", "secret-access-key": "testing"},
            },
        },
        "pitr": {"enabled": False, **pitr},
    }


def pbm(
    env: dict[str, str], *args: str, stdin: str | None = None, check: bool = True, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    p = subprocess.run(
        [PBM, *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=None if stdin is not None else subprocess.DEVNULL,
    )
    if check and p.returncode != 0:
        raise AssertionError(f"pbm {' '.join(args)} failed ({p.returncode}): {p.stderr}{p.stdout}")
    return p


def pbm_json(env: dict[str, str], *args: str, **kw: Any) -> Any:
    p = pbm(env, *args, "-o", "json", **kw)
    assert p.stdout.endswith("\n") and p.stdout.count("\n") == 1, f"one JSON line expected: {p.stdout!r}"
    return json.loads(p.stdout)


def configure(env: dict[str, str], tmp_path: Path, cfg: dict[str, Any]) -> dict[str, Any]:
    import yaml

    f = tmp_path / f"pbm-{uuid.uuid4().hex[:6]}.yaml"
    f.write_text(yaml.safe_dump(cfg))
    return pbm_json(env, "config", "--file", str(f))


def keys(s3: Any, bucket: str, prefix: str = "") -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(o["Key"] for page in pages for o in page.get("Contents") or [])


def state_dir(env: dict[str, str]) -> Path:
    d = Path(env["PBM_SIM_STATE"])
    return d.joinpath(*env["PBM_SIM_CLUSTER"].split("/")) if env.get("PBM_SIM_CLUSTER") else d


def fail(env: dict[str, str], *points: str) -> None:
    """Fail points through the marker file (a running kwok keeps its env; the file can change any time)."""
    d = state_dir(env)
    d.mkdir(parents=True, exist_ok=True)
    (d / "fail").write_text("\n".join(points))


def poll_backup_statuses(env: dict[str, str], name: str, n: int) -> list[dict[str, Any]]:
    return [pbm_json(env, "describe-backup", name) for _ in range(n)]


# --------------------------------------------------------------------------------------------------- CLI contract


def test_version_and_error_path(env: dict[str, str]) -> None:
    assert_shape(pbm_json(env, "version"), "version")
    assert pbm_json(env, "version", "--short") == {"Version": "2.15.0"}

    # a command error: cobra prints `Error: <msg>` on stderr, exit 1, nothing on stdout, even with -o json
    p = pbm(env, "describe-backup", "2026-01-01T00:00:00Z", "-o", "json", check=False)
    assert (p.returncode, p.stdout, p.stderr) == (1, "", "Error: get backup meta: get backup meta: not found\n")
    p = pbm(env, "describe-restore", "nope", "-o", "json", check=False)
    assert (p.returncode, p.stdout, p.stderr) == (1, "", "Error: get restore meta: not found\n")
    p = pbm(env, "backup", "-o", "json", check=False)
    assert p.returncode == 1 and p.stderr == "Error: no config set. Set config with <pbm config>\n"
    p = pbm(env, "bogus", check=False)
    assert p.returncode == 1 and p.stderr.startswith('Error: unknown command "bogus" for "pbm"')
    p = pbm(env, "status", "--bogus", check=False)
    assert p.returncode == 1 and p.stderr == "Error: unknown flag: --bogus\n"
    no_uri = {k: v for k, v in env.items() if k != "PBM_MONGODB_URI"}
    p = pbm(no_uri, "status", "-o", "json", check=False)
    assert p.returncode == 1 and p.stderr.startswith("Error: no MongoDB connection URI supplied")
    # flags before the command, `--flag=value` and `-ovalue` forms, like cobra/pflag
    assert json.loads(pbm(env, "-o", "json", "version").stdout)["Version"] == "2.15.0"
    assert json.loads(pbm(env, "version", "--out=json").stdout)["Version"] == "2.15.0"


def test_config_profiles_and_status(
    env: dict[str, str], tmp_path: Path, moto_endpoint: str, bucket: str, s3: Any
) -> None:
    p = pbm(env, "status", "-o", "json", check=False)
    assert p.returncode == 1 and "get status of backups: get config:" in p.stderr

    cfg = s3_config(moto_endpoint, bucket, prefix=f"/{PREFIX}/")  # PBM trims the slashes
    out = configure(env, tmp_path, cfg)
    assert_shape(out, "config")
    s3c = out["storage"]["s3"]
    assert s3c["credentials"] == {"access-key-id": "***", "secret-access-key": "***"}  # MaskedString
    assert s3c["prefix"] == PREFIX and s3c["region"] == "us-east-1" and s3c["forcePathStyle"] is True
    assert f"{PREFIX}/.pbm.init" in keys(s3, bucket)  # the storage is initialised

    full = pbm_json(env, "config", "--list")
    assert_shape(full, "config")
    assert full["backup"]["compression"] == "s2" and full["pitr"] == {"enabled": False, "compression": "s2"}
    assert pbm_json(env, "config", "pitr.enabled") == {"key": "pitr.enabled", "value": "false"}
    sets = pbm_json(env, "config", "--set", "pitr.oplogSpanMin=5", "--set", "backup.compression=gzip")
    assert [s["key"] for s in sets] == ["pitr.oplogSpanMin", "backup.compression"]
    for s in sets:
        assert_shape(s, "config --set entry")
    p = pbm(env, "config", "--set", "nope.key=1", check=False)
    assert p.returncode == 1 and p.stderr == "Error: set nope.key: invalid config key\n"

    bad = tmp_path / "bad.yaml"
    bad.write_text("storage:\n  type: tape\n")
    p = pbm(env, "config", "--file", str(bad), check=False)
    assert (
        p.returncode == 1 and p.stderr == "Error: unable to get new config: storage cast: tape: unknown storage type\n"
    )
    bad.write_text("storage:\n  type: s3\nextra: 1\n")
    p = pbm(env, "config", "--file", str(bad), check=False)
    assert p.returncode == 1 and "field extra not found in type config.Config" in p.stderr

    prof = tmp_path / "prof.yaml"
    prof.write_text(json.dumps({"storage": s3_config(moto_endpoint, bucket, prefix="other")["storage"]}))
    assert pbm_json(env, "profile", "add", "second", str(prof)) == {"msg": "OK"}
    lst = pbm_json(env, "profile", "list")
    assert_shape(lst, "profile list")
    assert [x["name"] for x in lst["profiles"]] == ["second"] and lst["profiles"][0]["profile"] is True
    assert_shape(pbm_json(env, "profile", "show", "second"), "config")
    p = pbm(env, "profile", "add", "main", str(prof), check=False)
    assert p.returncode == 1 and p.stderr == 'Error: argument `profile-name` should not be "main"\n'
    assert pbm_json(env, "profile", "remove", "second") == {"msg": "OK"}
    assert pbm_json(env, "profile", "list") == {"profiles": []}
    p = pbm(env, "profile", "remove", "second", check=False)
    assert p.returncode == 1 and p.stderr == 'Error: profile "second" is not found\n'

    st = pbm_json(env, "status")
    assert_status(st)
    assert st["running"] == {} and st["backups"]["snapshot"] is None
    assert st["backups"]["type"] == "S3" and st["backups"]["path"] == f"{moto_endpoint}/{bucket}/{PREFIX}"
    assert [rs["rs"] for rs in st["cluster"]] == ["rs0"] and len(st["cluster"][0]["nodes"]) == 3
    assert set(pbm_json(env, "status", "-s", "cluster", "-s", "pitr")) == {"cluster", "pitr"}


def test_backup_lifecycle_writes_and_deletes_s3_objects(
    env: dict[str, str], tmp_path: Path, moto_endpoint: str, bucket: str, s3: Any
) -> None:
    configure(env, tmp_path, s3_config(moto_endpoint, bucket))
    started = datetime.now(UTC).replace(microsecond=0)
    out = pbm_json(env, "backup", "--type", "logical", "--compression", "gzip", "--compression-level", "6")
    assert_shape(out, "backup")
    name = out["name"]
    assert RFC3339.match(name) and datetime.strptime(name, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC) >= started
    assert out["storagePath"] == f"{moto_endpoint}/{bucket}/{PREFIX}" and "profile" not in out

    # one operation at a time
    p = pbm(env, "backup", "-o", "json", check=False)
    assert p.returncode == 1 and re.fullmatch(
        r"Error: another operation in progress, backup/[0-9a-f]{24} \[rs0/rs0-\d:27017\]\n", p.stderr
    )
    st = pbm_json(env, "status", "-s", "running")
    assert st["running"]["type"] == "backup" and st["running"]["name"] == name

    seen = poll_backup_statuses(env, name, 4)
    for d in seen:
        assert_describe_backup(d)
        assert "storage_name" not in d and "profile" not in d and d["storage_type"] == "s3"  # main storage
    assert [d["status"] for d in seen] == ["running", "dumpDone", "done", "done"]  # the status call above saw starting
    running, dump_done, done = seen[0], seen[1], seen[2]
    assert running["last_write_ts"] == 0 and running["last_write_time"] == "1970-01-01T00:00:00Z"
    assert running["size"] == 0 and running["replsets"][0]["status"] == "running"
    assert dump_done["last_write_ts"] > 0 and dump_done["size"] > 0
    assert done["replsets"][0]["status"] == "done" and done["replsets"][0]["node"] == "rs0-1:27017"
    assert "error" not in done

    objs = keys(s3, bucket, PREFIX + "/")
    assert f"{PREFIX}/{name}.pbm.json" in objs
    assert f"{PREFIX}/{name}/rs0/metadata.json" in objs
    data_files = [k for k in objs if k.startswith(f"{PREFIX}/{name}/rs0/app.")]
    assert data_files == [f"{PREFIX}/{name}/rs0/app.items.gz", f"{PREFIX}/{name}/rs0/app.users.gz"]
    dump = gzip.decompress(s3.get_object(Bucket=bucket, Key=data_files[0])["Body"].read())
    assert json.loads(dump.splitlines()[0])["ns"] == "app.items"
    assert any(k.startswith(f"{PREFIX}/{name}/rs0/oplog/") for k in objs)
    meta = json.loads(s3.get_object(Bucket=bucket, Key=f"{PREFIX}/{name}.pbm.json")["Body"].read())
    assert meta["name"] == name and meta["status"] == "done" and meta["store"]["type"] == "s3"

    lst = pbm_json(env, "list")
    assert_shape(lst, "list")
    assert_shape(lst["pitr"], "list pitr")
    assert [s["name"] for s in lst["snapshots"]] == [name]
    for s in lst["snapshots"]:
        assert_shape(s, "list snapshot")
        assert s["printStatus"] == "success" and s["restoreTo"] == done["last_write_ts"]
    assert_status(pbm_json(env, "status"))

    # deleting: confirmation is required (no tty), then the objects go
    p = pbm(env, "delete-backup", name, check=False)
    assert p.returncode == 1 and p.stderr == "Error: no tty\n"
    p = pbm(env, "delete-backup", name, "--yes")
    assert p.stdout.startswith(f'Snapshots:\n - "{name}" [size: ')
    assert keys(s3, bucket, f"{PREFIX}/{name}") == []
    assert keys(s3, bucket, PREFIX + "/") == [f"{PREFIX}/.pbm.init"]
    p = pbm(env, "describe-backup", name, check=False)
    assert p.returncode == 1 and p.stderr == "Error: get backup meta: get backup meta: not found\n"
    p = pbm(env, "delete-backup", name, "--yes", check=False)
    assert p.returncode == 1 and p.stderr == "Error: get backup metadata: get backup meta: not found\n"


def test_backup_failures(env: dict[str, str], tmp_path: Path, moto_endpoint: str, bucket: str, s3: Any) -> None:
    configure(env, tmp_path, s3_config(moto_endpoint, bucket))

    # fails after the dump: describe-backup shows the error
    fail(env, "backup")
    (state_dir(env) / "fail-message").write_text("upload: connection reset by peer")
    name = pbm_json(env, "backup")["name"]
    seen = poll_backup_statuses(env, name, 4)
    assert [d["status"] for d in seen] == ["starting", "running", "dumpDone", "error"]
    err = seen[-1]
    assert_describe_backup(err)
    assert err["error"] == "upload: connection reset by peer"
    assert err["replsets"][0]["error"] == "upload: connection reset by peer"
    assert f"{PREFIX}/{name}.pbm.json" not in keys(s3, bucket)  # metadata only for done backups
    pbm(env, "delete-backup", name, "--yes")
    assert keys(s3, bucket, f"{PREFIX}/{name}") == []

    # fails during the dump: PBM cannot describe it (size 0, metadata.json missing); status still lists it
    fail(env, "backup-dump")
    name = pbm_json(env, "backup")["name"]
    assert [d["status"] for d in poll_backup_statuses(env, name, 2)] == ["starting", "running"]
    p = pbm(env, "describe-backup", name, "-o", "json", check=False)
    assert (p.returncode, p.stdout, p.stderr) == (1, "", "Error: get snapshot size: missed file\n")
    snap = [s for s in pbm_json(env, "status", "-s", "backups")["backups"]["snapshot"] if s["name"] == name]
    assert snap and snap[0]["status"] == "error" and snap[0]["error"] == "upload: connection reset by peer"
    assert snap[0]["printStatus"] == "failed"
    pbm(env, "delete-backup", name, "--yes")

    # an incremental without a base fails while starting, with PBM's text
    fail(env)
    (state_dir(env) / "fail-message").unlink()
    name = pbm_json(env, "backup", "--type", "incremental")["name"]
    d = poll_backup_statuses(env, name, 2)[-1]
    assert d["status"] == "error" and d["error"] == "define source backup: not found" and d["replsets"] == []

    # a storage that cannot be written: `pbm config` accepts it (the resync runs in the agents), the backup fails
    configure(env, tmp_path, s3_config(moto_endpoint, "no-such-bucket"))
    name = pbm_json(env, "backup")["name"]
    assert pbm_json(env, "describe-backup", name)["status"] == "starting"
    p = pbm(env, "describe-backup", name, "-o", "json", check=False)  # failed with size 0: PBM's quirk again
    assert (p.returncode, p.stderr) == (1, "Error: get snapshot size: missed file\n")
    snap = pbm_json(env, "status", "-s", "backups")["backups"]["snapshot"][0]
    assert snap["name"] == name and snap["status"] == "error"
    assert snap["error"].startswith("dump: upload no-such-bucket/") and "NoSuchBucket" in snap["error"]


def test_time_mode_backup_waits_for_running(
    env: dict[str, str], tmp_path: Path, moto_endpoint: str, bucket: str
) -> None:
    env = {**env, "PBM_SIM_ADVANCE": "time", "PBM_SIM_STARTING_SECONDS": "0.3", "PBM_SIM_BACKUP_SECONDS": "0.6"}
    configure(env, tmp_path, s3_config(moto_endpoint, bucket))
    name = pbm_json(env, "backup")["name"]
    assert pbm_json(env, "describe-backup", name)["status"] in ("running", "dumpDone", "done")
    import time

    deadline = time.monotonic() + 20
    while (d := pbm_json(env, "describe-backup", name))["status"] != "done":
        assert time.monotonic() < deadline, d
        time.sleep(0.2)
    assert d["last_write_ts"] >= d["last_transition_ts"] - 1

    # a backup that fails while starting makes `pbm backup` itself fail (PBM:cmd/pbm/backup.go waitForBcpStatus)
    fail(env, "backup-start")
    (state_dir(env) / "fail-message").write_text("convergeCluster timed out")
    p = pbm(env, "backup", "-o", "json", check=False)
    assert (p.returncode, p.stdout) == (1, "")
    assert p.stderr == "Error: wait for backup status: convergeCluster timed out\n"


def test_restore_lifecycle(env: dict[str, str], tmp_path: Path, moto_endpoint: str, bucket: str, s3: Any) -> None:
    configure(env, tmp_path, s3_config(moto_endpoint, bucket))
    name = pbm_json(env, "backup")["name"]
    poll_backup_statuses(env, name, 4)

    p = pbm(env, "restore", name, "-o", "json", check=False)
    assert p.returncode == 1 and p.stderr == "Error: no tty\n"  # --yes is required when exec'd
    p = pbm(env, "restore", "2000-01-01T00:00:00Z", "--yes", "-o", "json", check=False)
    assert p.returncode == 1 and p.stderr == "Error: backup '2000-01-01T00:00:00Z' not found\n"
    p = pbm(env, "restore", name, "--time", "2026-01-01T00:00:00", "--yes", check=False)
    assert p.returncode == 1 and p.stderr == "Error: backup name and --time cannot be used together\n"

    out = pbm_json(env, "restore", name, "--yes")
    assert_shape(out, "restore")
    assert out["snapshot"] == name and RFC3339NANO.match(out["name"])
    rname = out["name"]
    p = pbm(env, "backup", check=False)
    assert p.returncode == 1 and "another operation in progress, restore/" in p.stderr

    seen = [pbm_json(env, "describe-restore", rname) for _ in range(5)]
    for d in seen:
        assert_describe_restore(d)
        assert d["backup"] == name and d["type"] == "logical"
    assert [d["status"] for d in seen] == ["starting", "running", "dumpDone", "done", "done"]
    assert seen[0]["replsets"] is None and seen[1]["replsets"][0]["name"] == "rs0"
    assert "finish" in seen[3] and "finish" not in seen[1]

    hist = pbm_json(env, "list", "--restore")
    assert isinstance(hist, list) and [h["name"] for h in hist] == [rname]
    assert_shape(hist[0], "list --restore entry")

    # a restore whose backup files vanished from the storage fails in the agents
    for k in keys(s3, bucket, f"{PREFIX}/{name}/"):
        s3.delete_object(Bucket=bucket, Key=k)
    rname = pbm_json(env, "restore", name, "--yes")["name"]
    d = [pbm_json(env, "describe-restore", rname) for _ in range(2)][-1]
    assert d["status"] == "error" and "no such file" in d["error"]

    fail(env, "restore")
    s3.put_object(Bucket=bucket, Key=f"{PREFIX}/{name}/rs0/metadata.json", Body=b"{}")
    rname = pbm_json(env, "restore", name, "--yes")["name"]
    d = [pbm_json(env, "describe-restore", rname) for _ in range(3)][-1]
    assert d["status"] == "error" and d["error"] == "pbm-sim: simulated restore failure"
    assert d["replsets"][0]["error"] == "pbm-sim: simulated restore failure"


def test_resync_imports_backups_of_another_cluster(
    env: dict[str, str], tmp_path: Path, moto_endpoint: str, bucket: str
) -> None:
    cfg = s3_config(moto_endpoint, bucket)
    configure(env, tmp_path, cfg)
    name = pbm_json(env, "backup")["name"]
    poll_backup_statuses(env, name, 4)
    other = {**env, "PBM_SIM_CLUSTER": "ns2/other"}
    configure(other, tmp_path, cfg)
    d = pbm_json(other, "describe-backup", name)
    assert d["status"] == "done" and d["replsets"][0]["name"] == "rs0"
    rname = pbm_json(other, "restore", name, "--yes")["name"]
    assert pbm_json(other, "describe-restore", rname)["backup"] == name
    assert pbm_json(env, "status", "-s", "running")["running"] == {}  # the first cluster is not involved


# --------------------------------------------------------------------------------------------------- the driver


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 60))


def sim_driver(env: dict[str, str], **kw: Any) -> tuple[CliDriver, LocalExec]:
    transport = LocalExec(env=env, **kw)
    return CliDriver(transport, lambda c: PodRef(c.namespace, f"{c.name}-rs0-0"), pbm="pbm"), transport


def test_driver_against_simulator(env: dict[str, str], moto_endpoint: str, bucket: str, s3: Any) -> None:
    env = {**env, "PBM_SIM_CLUSTER": "ns1/cluster1"}
    drv, transport = sim_driver(env)

    async def scenario() -> None:
        main = s3_config(moto_endpoint, bucket, oplogSpanMin=10)
        secret = main["storage"]["s3"]["credentials"]["secret-access-key"]
        res = await drv.apply_config(
            CLUSTER,
            main,
            {
                "west": {"storage": s3_config(moto_endpoint, bucket, prefix="west")["storage"]},
            },
        )
        assert res["profiles_added"] == ["west"] and res["profiles_removed"] == []
        assert res["config"]["storage"]["s3"]["credentials"]["secret-access-key"] == "***"
        # credentials went through stdin into a temp file, never into a command line
        assert all(secret not in " ".join(argv) for _, _, argv in transport.calls)
        assert transport.calls[0][:2] == (PodRef("ns1", "cluster1-rs0-0"), "backup-agent")
        res = await drv.apply_config(CLUSTER, main, {})
        assert res["profiles_removed"] == ["west"]

        out = await drv.start_backup(CLUSTER, "my-backup", "logical", compression="gzip", level=1)
        name = out["name"]
        assert RFC3339.match(name)
        infos = [await drv.backup_status(CLUSTER, name) for _ in range(4)]
        assert [i.status for i in infos] == ["starting", "running", "dumpDone", "done"]
        done = infos[-1]
        assert isinstance(done, BackupInfo) and done.terminal and done.error is None
        assert done.type == "logical" and done.size > 0 and done.storage_name is None
        assert done.last_write_time is not None and infos[1].last_write_time is None
        assert done.last_transition_time is not None and done.last_transition_time.tzinfo is UTC
        assert done.replsets[0].name == "rs0" and done.replsets[0].status == "done"
        assert done.replsets[0].node.startswith("cluster1-rs0-1.cluster1-rs0.ns1.svc.cluster.local")
        assert await drv.backup_status(CLUSTER, "2000-01-01T00:00:00Z") is None

        st = await drv.status(CLUSTER)
        assert_status(st)
        assert [s["name"] for s in st["backups"]["snapshot"]] == [name]

        rname = await drv.start_restore(CLUSTER, name)
        assert RFC3339NANO.match(rname)
        with pytest.raises(PBMBusy, match="another operation in progress, restore/"):
            await drv.start_backup(CLUSTER, "other", "physical")
        rinfos = [await drv.restore_status(CLUSTER, rname) for _ in range(4)]
        assert [r.status for r in rinfos] == ["starting", "running", "dumpDone", "done"]
        assert isinstance(rinfos[-1], RestoreInfo) and rinfos[-1].backup == name and rinfos[-1].finish_time
        assert rinfos[0].start_time is not None and rinfos[-1].error is None
        assert await drv.restore_status(CLUSTER, "2000-01-01T00:00:00.1Z") is None

        assert await drv.delete_backup(CLUSTER, name) is True
        assert keys(s3, bucket, f"{PREFIX}/{name}") == []
        assert await drv.delete_backup(CLUSTER, name) is False

        # failures come back as data (BackupInfo.error) or as PBMError with PBM's text
        fail(env, "backup")
        name = (await drv.start_backup(CLUSTER, "failing", "incremental-base"))["name"]
        infos = [await drv.backup_status(CLUSTER, name) for _ in range(4)]
        assert infos[-1].status == "error" and infos[-1].error == "pbm-sim: simulated backup failure"
        await drv.delete_backup(CLUSTER, name)
        # a dump failure: describe-backup cannot describe it, the driver falls back to `pbm status`
        fail(env, "backup-dump")
        name = (await drv.start_backup(CLUSTER, "failing", "logical"))["name"]
        infos = [await drv.backup_status(CLUSTER, name) for _ in range(3)]
        assert [i.status for i in infos] == ["starting", "running", "error"]
        assert infos[-1].error == "pbm-sim: simulated backup-dump failure" and infos[-1].type == "logical"
        fail(env)
        with pytest.raises(PBMError, match=r"^backup '2000-01-01T00:00:00Z' not found$"):
            await drv.start_restore(CLUSTER, "2000-01-01T00:00:00Z")

    run(scenario())
    argvs = [argv for _, _, argv in transport.calls]
    backup_argv = next(a for a in argvs if a[1] == "backup")
    assert backup_argv == (
        "pbm",
        "backup",
        "--type",
        "logical",
        "--compression",
        "gzip",
        "--compression-level",
        "1",
        "-o",
        "json",
    )
    assert ("pbm", "backup", "--type", "incremental", "--base", "-o", "json") in argvs
    assert next(a for a in argvs if a[1] == "restore")[-3:] == ("--yes", "-o", "json")
    assert next(a for a in argvs if a[1] == "delete-backup")[-1] == "--yes"


def test_driver_with_kwok_style_errors_and_profiles(env: dict[str, str], moto_endpoint: str, bucket: str) -> None:
    drv, _ = sim_driver(env, kwok_style=True)

    async def scenario() -> None:
        with pytest.raises(PBMError) as ei:
            await drv.start_backup(CLUSTER, "b", "logical")
        assert ei.value.message == "no config set. Set config with <pbm config>" and ei.value.exit_code == 1
        await drv.apply_config(
            CLUSTER,
            s3_config(moto_endpoint, bucket),
            {
                "west": {"storage": s3_config(moto_endpoint, bucket, prefix="west")["storage"]},
            },
        )
        out = await drv.start_backup(CLUSTER, "b", "logical", profile="west")
        assert out["profile"] == "west" and out["storagePath"].endswith(f"/{bucket}/west")
        infos = [await drv.backup_status(CLUSTER, out["name"]) for _ in range(4)]
        assert infos[-1].status == "done" and infos[-1].storage_name == "west"
        assert await drv.backup_status(CLUSTER, "x") is None
        with pytest.raises(ValueError):
            await drv.start_backup(CLUSTER, "b", "bogus")

    run(scenario())


# --------------------------------------------------------------------------------------------------- driver errors


class FakeExec:
    """Answers every exec with a fixed result (or sleeps forever)."""

    def __init__(self, result: ExecResult | None = None, *, hang: bool = False) -> None:
        self.result, self.hang = result, hang
        self.calls: list[tuple[PodRef, str, list[str], bytes | None]] = []

    async def __call__(self, pod: PodRef, container: str, argv: Any, stdin: bytes | None = None) -> ExecResult:
        self.calls.append((pod, container, list(argv), stdin))
        if self.hang:
            await asyncio.sleep(3600)
        assert self.result is not None
        return self.result


def driver_with(result: ExecResult | None = None, **kw: Any) -> tuple[CliDriver, FakeExec]:
    fake = FakeExec(result, hang=kw.pop("hang", False))
    return CliDriver(fake, **kw), fake


KWOK_ERR = (
    "Internal error occurred: error executing command in container: cmd wait: pbm describe-backup x: exit status 1"
)


@pytest.mark.timeout(20)
def test_driver_error_handling() -> None:
    # bad JSON on success: the message carries the first 200 characters of the output
    garbage = "Starting backup ...." + "x" * 300
    drv, fake = driver_with(ExecResult(garbage.encode(), b"", True, 0))
    with pytest.raises(PBMOutputError) as ei:
        run(drv.status(CLUSTER))
    assert "cannot parse output as JSON" in ei.value.message and repr(garbage[:200]) in ei.value.message
    assert repr(garbage[:201]) not in ei.value.message
    assert fake.calls[0][:2] == (PodRef("ns1", "cluster1-rs0-0"), "backup-agent")  # default pod and container

    # JSON of the wrong shape
    drv, _ = driver_with(ExecResult(b'{"storagePath":"s3://b"}\n', b"", True, 0))
    with pytest.raises(PBMOutputError, match="no backup name"):
        run(drv.start_backup(CLUSTER, "b", "logical"))
    drv, _ = driver_with(ExecResult(b'{"name": 5}\n', b"", True, 0))
    with pytest.raises(PBMOutputError, match="'name' missing or not a str"):
        run(drv.backup_status(CLUSTER, "x"))
    drv, _ = driver_with(ExecResult(b"", b"", True, 0))
    with pytest.raises(PBMOutputError, match="empty output"):
        run(drv.status(CLUSTER))

    # non-zero exit: PBM's stderr text wins over the transport's message (kubelet or kwok style)
    for transport_msg, code in (("command terminated with non-zero exit code: ... exit code 1", 1), (KWOK_ERR, 1)):
        drv, _ = driver_with(
            ExecResult(b"", b"Error: backup '2026' didn't finish successfully\n", False, code, transport_msg)
        )
        with pytest.raises(PBMError) as ei:
            run(drv.start_restore(CLUSTER, "2026"))
        assert type(ei.value) is PBMError and ei.value.message == "backup '2026' didn't finish successfully"
        assert ei.value.exit_code == 1 and ei.value.argv[-3:] == ("--yes", "-o", "json")

    # multi-line PBM errors are kept whole
    drv, _ = driver_with(
        ExecResult(
            b"",
            b'Error: wait for backup status: boom\n- Backup on replicaset "rs0" in state: error: boom\n',
            False,
            1,
            KWOK_ERR,
        )
    )
    with pytest.raises(PBMError, match=r'boom\n- Backup on replicaset "rs0" in state: error: boom$'):
        run(drv.start_backup(CLUSTER, "b", "logical"))

    # exitErr's JSON on stdout ({"Error": ...}) is understood too
    drv, _ = driver_with(ExecResult(b'{"Error":"connect to mongodb: no reachable servers"}\n', b"", False, 1, KWOK_ERR))
    with pytest.raises(PBMError, match="^connect to mongodb: no reachable servers$"):
        run(drv.status(CLUSTER))

    # kwok's internal error with no output at all: a PBMError carrying the API server's text and exit status
    ok, code, msg = parse_exec_status(
        json.dumps(
            {
                "status": "Failure",
                "message": KWOK_ERR,
                "reason": "InternalError",
                "details": {"causes": [{"message": KWOK_ERR[30:]}]},
                "code": 500,
            }
        )
    )
    assert (ok, code, msg) == (False, 1, KWOK_ERR)
    drv, _ = driver_with(ExecResult(b"", b"", False, code, msg))
    with pytest.raises(PBMError) as ei:
        run(drv.status(CLUSTER))
    assert type(ei.value) is PBMError and "exit status 1" in ei.value.message and ei.value.exit_code == 1

    # not found -> None / False; busy -> PBMBusy
    drv, _ = driver_with(ExecResult(b"", b"Error: get backup meta: get backup meta: not found\n", False, 1, KWOK_ERR))
    assert run(drv.backup_status(CLUSTER, "x")) is None
    drv, _ = driver_with(ExecResult(b"", b"Error: get restore meta: not found\n", False, 1, KWOK_ERR))
    assert run(drv.restore_status(CLUSTER, "x")) is None
    with pytest.raises(PBMNotFound):  # where None is no answer, not-found is an exception of its own
        run(drv.start_backup(CLUSTER, "b", "logical"))
    drv, _ = driver_with(ExecResult(b"", b"Error: get backup metadata: get backup meta: not found\n", False, 1, None))
    assert run(drv.delete_backup(CLUSTER, "x")) is False
    drv, _ = driver_with(ExecResult(b"", b"Error: another operation in progress, backup/abc [rs0/h:27017]\n", False, 1))
    with pytest.raises(PBMBusy):
        run(drv.start_backup(CLUSTER, "b", "logical"))

    # the command never ran (pod gone, no pbm binary): a transport error
    drv, _ = driver_with(ExecResult(b"", b"", False, None, "exec into ns1/cluster1-rs0-0/backup-agent: 404 Not Found"))
    with pytest.raises(PBMTransportError, match="404"):
        run(drv.status(CLUSTER))
    drv, _ = driver_with(
        ExecResult(b"", b"", False, None, 'cmd start: pbm status: exec: "pbm": executable file not found in $PATH')
    )
    with pytest.raises(PBMTransportError, match="executable file not found"):
        run(drv.status(CLUSTER))

    # bounded in time
    drv, _ = driver_with(hang=True, timeout=0.2)
    with pytest.raises(PBMTimeout, match="no answer"):
        run(drv.status(CLUSTER))


def test_argument_mapping() -> None:
    assert backup_type_args("incremental-base") == ["--type", "incremental", "--base"]
    assert backup_type_args("physical") == ["--type", "physical"]
    assert pitr_time_arg(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)) == "2026-01-02T03:04:05"
    assert pitr_time_arg("2026-01-02 03:04:05") == "2026-01-02T03:04:05"
    assert pitr_time_arg(1700000000) == "1700000000,0"

    drv, fake = driver_with(ExecResult(b'{"name":"2026-01-02T03:04:06.5Z"}\n', b"", True, 0))
    name = run(
        drv.start_restore(
            CLUSTER,
            "2026-01-01T00:00:00Z",
            time="2026-01-02 03:04:05",
            namespaces=["app.*"],
            replset_remapping={"rsA": "rs0", "rsB": "rs1"},
            with_users_and_roles=True,
        )
    )
    assert name == "2026-01-02T03:04:06.5Z"
    assert fake.calls[0][2] == [
        "pbm",
        "restore",
        "--time",
        "2026-01-02T03:04:05",
        "--base-snapshot",
        "2026-01-01T00:00:00Z",
        "--ns",
        "app.*",
        "--replset-remapping",
        "rs0=rsA,rs1=rsB",
        "--with-users-and-roles",
        "--yes",
        "-o",
        "json",
    ]
    run(drv.start_restore(CLUSTER, "b1", ns_from="app.a", ns_to="app.b"))
    assert fake.calls[1][2] == ["pbm", "restore", "b1", "--ns-from", "app.a", "--ns-to", "app.b", "--yes", "-o", "json"]
    with pytest.raises(ValueError):
        run(drv.start_restore(CLUSTER, "b1", base_snapshot="b0"))

    # config files travel on stdin; argv holds only the byte count
    drv, fake = driver_with(ExecResult(b'{"storage":{"type":"filesystem"}}\n', b"", True, 0))
    run(drv._json_with_file(CLUSTER, ["config", "--file"], "storage:\n  type: filesystem\n"))
    _, _, argv, stdin = fake.calls[0]
    assert argv[:2] == ["sh", "-c"] and argv[3] == str(len(stdin)) and stdin == b"storage:\n  type: filesystem\n"
    assert argv[4:] == ["pbm", "config", "-o", "json", "--file"]


# --------------------------------------------------------------------------------------------------- KubeExec


class _Msg:
    def __init__(self, data: bytes) -> None:
        import aiohttp

        self.type, self.data = aiohttp.WSMsgType.BINARY, data


class _FakeWs:
    def __init__(self, frames: list[bytes]) -> None:
        self.frames, self.sent = frames, []

    async def __aenter__(self) -> _FakeWs:
        return self

    async def __aexit__(self, *a: Any) -> None:
        return None

    async def send_bytes(self, b: bytes) -> None:
        self.sent.append(b)

    def __aiter__(self) -> Any:
        async def gen() -> Any:
            for f in self.frames:
                yield _Msg(f)

        return gen()


@pytest.mark.timeout(20)
def test_kubeexec_channels(monkeypatch: pytest.MonkeyPatch) -> None:
    import kubernetes_asyncio.client as kclient

    frames: list[bytes] = []
    seen: dict[str, Any] = {}
    ws = _FakeWs(frames)

    class FakeCore:
        def __init__(self, api_client: Any) -> None:
            seen["client"] = api_client

        async def connect_get_namespaced_pod_exec(self, name: str, namespace: str, **kw: Any) -> _FakeWs:
            seen.update(name=name, namespace=namespace, **kw)
            return ws

    monkeypatch.setattr(kclient, "CoreV1Api", FakeCore)
    kx = KubeExec(ws_client="WS")
    pod = PodRef("ns1", "cluster1-rs0-0")

    frames[:] = [
        b"\x01",
        b"\x02",
        b'\x01{"name":',
        b'\x01"x"}\n',
        b"\x02warning\n",
        b'\x03{"metadata":{},"status":"Success"}',
    ]
    res = run(kx(pod, "backup-agent", ["pbm", "status"], b"abc"))
    assert res == ExecResult(b'{"name":"x"}\n', b"warning\n", True, 0, None)
    assert seen["command"] == ["pbm", "status"] and seen["container"] == "backup-agent" and seen["stdin"] is True
    assert seen["_preload_content"] is False and seen["client"] == "WS"
    assert ws.sent == [b"\x00abc"]

    # a real kubelet's non-zero exit
    frames[:] = [
        b"\x02Error: no tty\n",
        b'\x03{"status":"Failure","reason":"NonZeroExitCode","message":"command '
        b'terminated with non-zero exit code: exit 1","details":{"causes":[{"reason":"ExitCode",'
        b'"message":"1"}]}}',
    ]
    res = run(kx(pod, "backup-agent", ["pbm", "restore", "x"], None))
    assert (res.ok, res.exit_code, res.stderr) == (False, 1, b"Error: no tty\n")
    # kwok: InternalError with `exit status N`
    frames[:] = [b"\x02Error: x\n", b"\x03" + json.dumps({"status": "Failure", "message": KWOK_ERR}).encode()]
    res = run(kx(pod, "backup-agent", ["pbm", "describe-backup", "x"], None))
    assert (res.ok, res.exit_code, res.error) == (False, 1, KWOK_ERR)
    # the stream ended without a status
    frames[:] = [b"\x01partial"]
    res = run(kx(pod, "backup-agent", ["pbm", "status"], None))
    assert not res.ok and res.exit_code is None and "without an exit status" in (res.error or "")


# --------------------------------------------------------------------------------------------------- Azure (Azurite)


@pytest.fixture(scope="module")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Azurite's blob service on 127.0.0.1. Outside `make test` the test is skipped when Azurite or the SDK is
    missing; under it (PSMDB_REQUIRE_E2E=1) that fails."""
    try:
        server = start_azurite(tmp_path_factory.mktemp("azurite"))
    except Unavailable as e:
        (pytest.fail if os.environ.get("PSMDB_REQUIRE_E2E") == "1" else pytest.skip)(str(e))
    try:
        yield server.endpoint
    finally:
        server.stop()


def test_azure_storage_via_azurite(env: dict[str, str], tmp_path: Path, azurite: str) -> None:
    from azure.storage.blob import BlobServiceClient

    svc = BlobServiceClient(
        account_url=azurite, credential={"account_name": AZURITE_ACCOUNT, "account_key": AZURITE_KEY}
    )
    container = f"pbm-{uuid.uuid4().hex[:10]}"
    cc = svc.create_container(container)
    cfg = {
        "storage": {
            "type": "azure",
            "azure": {
                "account": AZURITE_ACCOUNT,
                "container": container,
                "prefix": PREFIX,
                "endpointUrl": azurite,
                "credentials": {"key": AZURITE_KEY},
            },
        }
    }
    out = configure(env, tmp_path, cfg)
    assert out["storage"]["azure"]["credentials"] == {"key": "***"}
    b = pbm_json(env, "backup", "--compression", "gzip")
    assert b["storagePath"] == f"{azurite}/{container}/{PREFIX}"
    assert poll_backup_statuses(env, b["name"], 4)[-1]["status"] == "done"
    names = sorted(x.name for x in cc.list_blobs(name_starts_with=PREFIX + "/"))
    assert f"{PREFIX}/.pbm.init" in names and f"{PREFIX}/{b['name']}.pbm.json" in names
    assert f"{PREFIX}/{b['name']}/rs0/app.items.gz" in names and f"{PREFIX}/{b['name']}/rs0/metadata.json" in names
    pbm(env, "delete-backup", b["name"], "--yes")
    assert sorted(x.name for x in cc.list_blobs(name_starts_with=PREFIX + "/")) == [f"{PREFIX}/.pbm.init"]


def test_pitr_timeline_and_point_in_time_restore_on_filesystem(env: dict[str, str], tmp_path: Path) -> None:
    import time

    fs = tmp_path / "backups"
    fs.mkdir()
    drv, _ = sim_driver(env)

    async def scenario() -> None:
        await drv.apply_config(
            CLUSTER,
            {
                "storage": {"type": "filesystem", "filesystem": {"path": str(fs)}},
                "pitr": {"enabled": True, "oplogSpanMin": 1},
            },
            {},
        )
        name = (await drv.start_backup(CLUSTER, "b", "physical"))["name"]
        while not (await drv.backup_status(CLUSTER, name)).terminal:
            pass
        assert (fs / f"{name}.pbm.json").is_file() and (fs / name / "rs0" / "WiredTiger.wt.s2").is_file()
        time.sleep(1.1)
        st = await drv.status(CLUSTER, ["pitr", "backups"])
        assert st["pitr"]["conf"] and st["pitr"]["run"]
        ranges = st["backups"]["pitrChunks"]["pitrChunks"]
        assert ranges[0]["range"]["start"] == (await drv.backup_status(CLUSTER, name)).raw["last_write_ts"]
        # the only base snapshot of a running PITR timeline cannot be deleted
        with pytest.raises(PBMError, match="cannot delete the last PITR base snapshot while PITR is enabled"):
            await drv.delete_backup(CLUSTER, name)

        target = datetime.fromtimestamp(ranges[0]["range"]["end"], tz=UTC)
        rname = await drv.start_restore(CLUSTER, name, time=target)
        infos = [await drv.restore_status(CLUSTER, rname) for _ in range(3)]
        assert [i.status for i in infos] == ["starting", "running", "done"]  # physical: no dumpDone
        assert infos[-1].point_in_time == target and infos[-1].type == "physical"
        assert infos[-1].raw["replsets"][0]["nodes"][0]["status"] == "done"
        st = await drv.status(CLUSTER, ["pitr"])
        assert st["pitr"] == {"conf": False, "run": False, "nodes": None}  # the restore switched PITR off

        # a target beyond the oplog fails in the agents
        rname = await drv.start_restore(CLUSTER, "", time=int(time.time()) + 3600)
        infos = [await drv.restore_status(CLUSTER, rname) for _ in range(2)]
        assert infos[-1].status == "error" and "no chunk with the target time" in (infos[-1].error or "")
        assert await drv.delete_backup(CLUSTER, name) is True
        assert not (fs / name).exists() and not (fs / f"{name}.pbm.json").exists()

    run(scenario())
