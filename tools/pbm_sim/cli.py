"""The `pbm` command line of the simulator: cobra/pflag-style parsing and PBM's output shapes (`-o json` / text).

Error path, exactly as PBM 2.15.0 (PBM:cmd/pbm/main.go): a command error is printed by cobra as `Error: <msg>` on
STDERR with exit code 1 and nothing on stdout, whatever `-o` says. (Only the connection errors of
`persistentPreRun` go through `exitErr`, which prints `{"Error":"<msg>"}` on STDOUT in JSON mode; the simulator
prints that shape for its own set-up errors, e.g. a missing PBM_MONGODB_URI.)
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import PBM_VERSION
from .backups import iter_sorted_backups, storage_path_of
from .common import BACKUP_TYPES, COMPRESSIONS, TERMINAL, PBMFail, Settings, byte_count_iec, mask_secrets, rfc3339
from .config import full_config, parse_config
from .sim import Sim
from .state import StateFile

# --------------------------------------------------------------------------------------------------- flags


@dataclass
class Flag:
    name: str
    kind: str = "str"  # bool | str | int | intslice | strmap | strarray
    short: str = ""


GLOBAL_FLAGS = [Flag("mongodb-uri"), Flag("out", "str", "o")]

COMMAND_FLAGS: dict[str, list[Flag]] = {
    "backup": [
        Flag("compression"),
        Flag("type", short="t"),
        Flag("base", "bool"),
        Flag("profile"),
        Flag("compression-level", "intslice"),
        Flag("num-parallel-collections", "int"),
        Flag("num-parallel-files", "int"),
        Flag("ns"),
        Flag("with-users-and-roles", "bool"),
        Flag("wait", "bool", "w"),
        Flag("wait-time"),
        Flag("list-files", "bool", "l"),
    ],
    "backup-finish": [],
    "cancel-backup": [],
    "config": [
        Flag("force-resync", "bool"),
        Flag("include-restores", "bool"),
        Flag("list", "bool"),
        Flag("file"),
        Flag("set", "strmap"),
        Flag("wait", "bool", "w"),
        Flag("wait-time"),
    ],
    "delete-backup": [
        Flag("older-than"),
        Flag("type", short="t"),
        Flag("yes", "bool", "y"),
        Flag("force", "bool", "f"),
        Flag("dry-run", "bool"),
        Flag("profile"),
    ],
    "describe-backup": [Flag("with-collections", "bool")],
    "describe-restore": [Flag("config", short="c")],
    "list": [
        Flag("restore", "bool"),
        Flag("unbacked", "bool"),
        Flag("full", "bool", "f"),
        Flag("size", "int"),
        Flag("profile"),
        Flag("replset-remapping"),
    ],
    "restore": [
        Flag("time"),
        Flag("base-snapshot"),
        Flag("num-parallel-collections", "int"),
        Flag("num-parallel-files", "int"),
        Flag("num-insertion-workers-per-collection", "int"),
        Flag("index-commit-quorum"),
        Flag("ns"),
        Flag("ns-from"),
        Flag("ns-to"),
        Flag("with-users-and-roles", "bool"),
        Flag("yes", "bool", "y"),
        Flag("wait", "bool", "w"),
        Flag("wait-time"),
        Flag("external", "bool", "x"),
        Flag("config", short="c"),
        Flag("ts"),
        Flag("exit", "bool"),
        Flag("fallback-enabled", "bool"),
        Flag("allow-partly-done", "bool"),
        Flag("replset-remapping"),
    ],
    "status": [
        Flag("profile"),
        Flag("replset-remapping"),
        Flag("sections", "strarray", "s"),
        Flag("priority", "bool", "p"),
    ],
    "version": [Flag("short", "bool", "s"), Flag("commit", "bool", "c")],
    "profile": [],
    "profile list": [],
    "profile show": [],
    "profile add": [Flag("sync", "bool"), Flag("wait", "bool", "w"), Flag("wait-time")],
    "profile remove": [Flag("wait", "bool", "w"), Flag("wait-time")],
    "profile sync": [Flag("all", "bool"), Flag("clear", "bool"), Flag("wait", "bool", "w"), Flag("wait-time")],
}
ALIASES = {"s": "status"}
PROFILE_SUBS = ("list", "show", "add", "remove", "sync")


class UsageError(PBMFail):
    pass


@dataclass
class Parsed:
    command: str
    args: list[str]
    values: dict[str, Any] = field(default_factory=dict)
    changed: set[str] = field(default_factory=set)

    def get(self, name: str, default: Any = None) -> Any:
        return self.values.get(name, default)


def _parse_bool(flag: str, v: str) -> bool:
    if v in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if v in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise UsageError(f'invalid argument "{v}" for "--{flag}" flag: strconv.ParseBool: parsing "{v}": invalid syntax')


def _find_command(argv: list[str]) -> tuple[str, list[str]]:
    """cobra's Find: the command path from the non-flag words (global flags may come first)."""
    takes_value = {"--mongodb-uri", "--out", "-o"}
    words: list[int] = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--":
            break
        if a.startswith("-"):
            if a in takes_value:
                i += 1
        else:
            words.append(i)
            if len(words) == 2:
                break
        i += 1
    if not words:
        return "", argv
    cmd = ALIASES.get(argv[words[0]], argv[words[0]])
    rest = argv[: words[0]] + argv[words[0] + 1 :]
    if cmd == "profile" and len(words) > 1 and argv[words[1]] in PROFILE_SUBS:
        sub = argv[words[1]]
        idx = words[1] - 1  # shifted by the removal of the command word
        rest = rest[:idx] + rest[idx + 1 :]
        cmd = f"profile {sub}"
    if cmd not in COMMAND_FLAGS:
        raise UsageError(f'unknown command "{argv[words[0]]}" for "pbm"\nRun \'pbm --help\' for usage.')
    return cmd, rest


def parse_argv(argv: list[str]) -> Parsed:
    cmd, rest = _find_command(argv)
    if not cmd:
        raise UsageError("pbm-sim: no command given (try `pbm version`)")
    flags = GLOBAL_FLAGS + COMMAND_FLAGS[cmd]
    by_name = {f.name: f for f in flags}
    by_short = {f.short: f for f in flags if f.short}
    p = Parsed(cmd, [])
    i = 0

    def store(f: Flag, v: str) -> None:
        p.changed.add(f.name)
        if f.kind == "bool":
            p.values[f.name] = _parse_bool(f.name, v)
        elif f.kind == "int":
            try:
                p.values[f.name] = int(v)
            except ValueError:
                raise UsageError(
                    f'invalid argument "{v}" for "--{f.name}" flag: strconv.ParseInt: parsing "{v}": invalid syntax'
                ) from None
        elif f.kind == "intslice":
            try:
                p.values.setdefault(f.name, []).extend(int(x) for x in v.split(",") if x != "")
            except ValueError:
                raise UsageError(
                    f'invalid argument "{v}" for "--{f.name}" flag: strconv.Atoi: parsing "{v}": invalid syntax'
                ) from None
        elif f.kind == "strmap":
            m = p.values.setdefault(f.name, [])
            for kv in v.split(","):
                k, eq, val = kv.partition("=")
                if not eq:
                    raise UsageError(
                        f'invalid argument "{v}" for "--{f.name}" flag: {kv} must be formatted as key=value'
                    )
                m.append((k, val))
        elif f.kind == "strarray":
            p.values.setdefault(f.name, []).append(v)
        else:
            p.values[f.name] = v

    while i < len(rest):
        a = rest[i]
        if a == "--":
            p.args.extend(rest[i + 1 :])
            break
        if a.startswith("--"):
            name, eq, val = a[2:].partition("=")
            f = by_name.get(name)
            if f is None:
                raise UsageError(f"unknown flag: --{name}")
            if f.kind == "bool":
                store(f, val if eq else "true")
            else:
                if not eq:
                    i += 1
                    if i >= len(rest):
                        raise UsageError(f"flag needs an argument: --{name}")
                    val = rest[i]
                store(f, val)
        elif a.startswith("-") and len(a) > 1:
            ch = a[1]
            f = by_short.get(ch)
            if f is None:
                raise UsageError(f"unknown shorthand flag: '{ch}' in {a}")
            if f.kind == "bool":
                store(f, a[3:] if a[2:3] == "=" else "true")
            else:
                val = a[2:]
                if val.startswith("="):
                    val = val[1:]
                if not val:
                    i += 1
                    if i >= len(rest):
                        raise UsageError(f"flag needs an argument: '{ch}' in {a}")
                    val = rest[i]
                store(f, val)
        else:
            p.args.append(a)
        i += 1
    return p


# --------------------------------------------------------------------------------------------------- output


def go_json(obj: Any) -> str:
    """encoding/json.Encoder: compact, HTML-escaped, newline-terminated."""
    s = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    return s.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026") + "\n"


@dataclass
class Out:
    fmt: str
    stdout: list[str] = field(default_factory=list)

    @property
    def json(self) -> bool:
        return self.fmt in ("json", "json-pretty")

    def write(self, s: str) -> None:
        self.stdout.append(s)

    def emit(self, obj: Any, text: Callable[[], str]) -> None:
        """PBM's printo: JSON of the value, or its String() trimmed."""
        if self.fmt == "json":
            self.write(go_json(obj))
        elif self.fmt == "json-pretty":
            self.write(json.dumps(obj, indent=2, ensure_ascii=False) + "\n")
        else:
            self.write(text().strip() + "\n")


def _yaml(obj: Any) -> str:
    import yaml

    return yaml.safe_dump(obj, sort_keys=False, default_flow_style=False)


def _opt(d: dict[str, Any], key: str, value: Any) -> None:
    """`omitempty`."""
    if value not in (None, "", [], {}, 0, False):
        d[key] = value


def describe_backup_json(sim: Sim, b: dict[str, Any], with_collections: bool) -> dict[str, Any]:
    """PBM:cmd/pbm/backup.go bcpDesc / bcpReplDesc, field order and omitempty as in the Go structs."""
    sim.legacy_size_check(b, with_collections)
    store_name = b["store"].get("name") or ""
    d: dict[str, Any] = {"name": b["name"]}
    _opt(d, "profile", store_name)
    _opt(d, "storage_name", store_name)
    _opt(d, "storage_type", b["store"].get("type") or "")
    d.update(
        {
            "opid": b["opid"],
            "type": b["type"],
            "last_write_ts": b["last_write_ts"],
            "last_transition_ts": b["last_transition_ts"],
            "last_write_time": rfc3339(b["last_write_ts"]),
            "last_transition_time": rfc3339(b["last_transition_ts"]),
        }
    )
    _opt(d, "namespaces", b["nss"])
    d.update(
        {
            "sel_user_and_roles": bool(b["users_and_roles"]),
            "mongodb_version": sim.settings.mongo_version,
            "fcv": sim.settings.fcv,
            "pbm_version": b["pbm_version"],
            "status": b["status"],
            "size": b["size"],
            "size_uncompressed": b["size_uncompressed"],
            "size_h": byte_count_iec(b["size"]),
            "size_uncompressed_h": byte_count_iec(b["size_uncompressed"]),
        }
    )
    _opt(d, "error", b["error"])
    reps = []
    for rs in b["replsets"]:
        r: dict[str, Any] = {"name": rs["name"], "status": rs["status"], "node": rs["node"]}
        if b["type"] == "external":
            _opt(r, "files", rs["files"])
        r.update({"size": rs["size"], "size_uncompressed": rs["size_uncompressed"]})
        _opt(r, "size_h", byte_count_iec(rs["size"]) if rs["size"] > 0 else "")
        r["size_uncompressed_h"] = byte_count_iec(rs["size_uncompressed"]) if rs["size_uncompressed"] > 0 else ""
        r.update(
            {
                "last_write_ts": rs["last_write_ts"],
                "last_transition_ts": rs["last_transition_ts"],
                "last_write_time": rfc3339(rs["last_write_ts"]),
                "last_transition_time": rfc3339(rs["last_transition_ts"]),
            }
        )
        if rs.get("configsvr"):
            r["configsvr"] = True
        _opt(r, "error", rs.get("error") or "")
        if with_collections and b["type"] == "logical":
            r["collections"] = sorted(c for c in sim.settings.collections)
        reps.append(r)
    d["replsets"] = reps
    return d


def describe_restore_json(r: dict[str, Any]) -> dict[str, Any]:
    """PBM:cmd/pbm/restore.go describeRestoreResult (start_ts is never filled by the CLI, so it never shows)."""
    d: dict[str, Any] = {
        "name": r["name"],
        "opid": r["opid"],
        "backup": r["backup"],
        "type": r["type"],
        "status": r["status"],
    }
    if r["status"] == "error":
        d["error"] = r["error"]
    _opt(d, "namespaces", r["nss"])
    d["start"] = rfc3339(r["start_ts"])
    if r["status"] == "done":
        d["finish"] = rfc3339(r["last_transition_ts"])
    if r["pitr"]:
        d["ts_to_restore"] = r["pitr"]
        d["time_to_restore"] = rfc3339(r["pitr"])
    d["last_transition_ts"] = r["last_transition_ts"]
    d["last_transition_time"] = rfc3339(r["last_transition_ts"])
    reps = []
    for rs in r["replsets"]:
        e: dict[str, Any] = {
            "name": rs["name"],
            "status": rs["status"],
            "last_transition_ts": rs["last_transition_ts"],
            "last_transition_time": rfc3339(rs["last_transition_ts"]),
        }
        nodes = []
        for n in rs.get("nodes") or []:
            ne: dict[str, Any] = {"name": n["name"], "status": n["status"]}
            if n["status"] == "error":
                ne["error"] = n.get("error") or ""
            ne["last_transition_ts"] = n["last_transition_ts"]
            ne["last_transition_time"] = rfc3339(n["last_transition_ts"])
            nodes.append(ne)
        _opt(e, "nodes", nodes)
        if rs["status"] == "error":
            e["error"] = rs.get("error") or ""
        reps.append(e)
    d["replsets"] = reps or None
    return d


def _snapshot_stat(b: dict[str, Any], *, for_status: bool) -> dict[str, Any]:
    """PBM:cmd/pbm/main.go snapshotStat as `pbm list` (done only) and `pbm status` (all) fill it."""
    s: dict[str, Any] = {"name": b["name"]}
    _opt(s, "profile", b["store"].get("name") or "")
    if for_status:
        _opt(s, "storage", b["store"].get("name") or "")
    _opt(s, "nss", b["nss"])
    if for_status:
        _opt(s, "size", b["size"])
    s["status"] = b["status"]
    s["printStatus"] = {"done": "success", "canceled": "failed", "error": "failed"}.get(b["status"], "ongoing")
    if for_status:
        _opt(s, "error", b["error"])
    restore_to = b["last_write_ts"] if (b["status"] == "done" or not for_status) else b["last_transition_ts"]
    s.update({"restoreTo": restore_to, "pbmVersion": b["pbm_version"], "type": b["type"], "src": b["src_backup"]})
    return s


def _pitr_ranges_json(sim: Sim) -> list[dict[str, Any]] | None:
    ranges = [{"range": {"start": a, "end": e}} for a, e in sim.pitr_ranges()]
    return ranges or None


def list_json(sim: Sim, profile: str | None) -> dict[str, Any]:
    """PBM:cmd/pbm/list.go backupListOut."""
    snaps = [
        _snapshot_stat(b, for_status=False)
        for b in iter_sorted_backups(sim, newest_first=False)
        if b["status"] == "done" and (profile is None or (b["store"].get("name") or "") == profile)
    ]
    out: dict[str, Any] = {"snapshots": snaps or None}
    if profile in (None, ""):
        cfg = sim.config or {}
        out["pitr"] = {"on": bool((cfg.get("pitr") or {}).get("enabled")), "ranges": _pitr_ranges_json(sim)}
    return out


def restore_list_json(sim: Sim, size: int) -> list[dict[str, Any]] | None:
    """PBM:cmd/pbm/list.go restoreStatus (the `--restore` shape is an array)."""
    rs = sorted(sim.data["restores"].values(), key=lambda r: r["start_ts"])
    if size > 0:
        rs = rs[-size:]
    out = []
    for r in rs:
        e: dict[str, Any] = {"start": r["start_ts"], "status": r["status"], "type": "pitr" if r["pitr"] else "snapshot"}
        _opt(e, "snapshot", r["backup"])
        _opt(e, "point-in-time", r["pitr"])
        _opt(e, "name", r["name"])
        _opt(e, "namespaces", r["nss"])
        _opt(e, "error", r["error"])
        out.append(e)
    return out or None


def status_json(sim: Sim, sections: list[str], priority: bool) -> dict[str, Any]:
    """PBM:cmd/pbm/status.go statusOut: a map (so Go sorts the keys) of the requested sections."""
    want = set(sections) if sections else {"cluster", "pitr", "running", "backups"}
    out: dict[str, Any] = {}
    fails = sim.fail_points()
    if "backups" in want:
        cfg = sim.config
        if cfg is None:
            raise PBMFail("get status of backups: get config: get: mongo: no documents in result")
        stg = cfg["storage"]
        typ = stg.get("type")
        b: dict[str, Any] = {
            "type": {
                "s3": "S3",
                "minio": "Minio",
                "azure": "Azure",
                "gcs": "GCS",
                "oss": "OSS",
                "oci": "OCI",
                "filesystem": "FS",
                "blackhole": "blackhole",
            }.get(typ, "Unknown"),
            "path": storage_path_of(stg),
        }
        if typ in ("s3", "minio", "oss", "oci"):
            _opt(b, "region", (stg.get(typ) or {}).get("region") or "")
        b["snapshot"] = [
            _snapshot_stat(x, for_status=True) for x in iter_sorted_backups(sim, newest_first=True)
        ] or None
        ranges = _pitr_ranges_json(sim)
        chunks: dict[str, Any] = {}
        _opt(chunks, "pitrChunks", ranges)
        chunks["size"] = 0
        b["pitrChunks"] = chunks
        out["backups"] = b
    if "cluster" in want:
        cl = []
        for rs in sim.settings.replsets:
            nodes = []
            for i, host in enumerate(sim.settings.hosts(rs)):
                n: dict[str, Any] = {
                    "host": host,
                    "agent": f"v{PBM_VERSION}",
                    "role": "P" if i == 0 else "S",
                    "prio_pitr": "",
                    "prio_backup": "",
                }
                if priority:
                    n["prio_pitr"] = n["prio_backup"] = "0.5" if i == 0 else "1.0"
                if "agents" in fails:
                    n["ok"] = False
                    n["errors"] = [f"lost agent, last heartbeat: {int(sim.now) - 120}"]
                else:
                    n["ok"] = True
                nodes.append(n)
            cl.append({"rs": rs, "nodes": nodes})
        out["cluster"] = cl
    if "pitr" in want:
        cfg = sim.config or {}
        conf = bool((cfg.get("pitr") or {}).get("enabled"))
        run = sim.data["pitr"]["open"] is not None
        pitr_nodes = [f"{rs}/{sim.settings.hosts(rs)[-1]}" for rs in sim.settings.replsets] if conf and run else None
        out["pitr"] = {"conf": conf, "run": run, "nodes": pitr_nodes}
    if "running" in want:
        cur: dict[str, Any] = {}
        op = sim.in_flight()
        if op:
            kind, rec = op
            cur = {"type": kind, "opID": rec["opid"]}
            if kind == "backup":
                cur["name"] = rec["name"]
                cur["startTS"] = rec["start_ts"]
                cur["status"] = {"running": "snapshot backup", "dumpDone": "oplog backup"}.get(
                    rec["status"], rec["status"]
                )
            else:
                _opt(cur, "name", rec["backup"])
                cur["startTS"] = rec["start_ts"]
                cur["status"] = {"running": "snapshot restore", "dumpDone": "oplog restore"}.get(
                    rec["status"], rec["status"]
                )
        out["running"] = cur
    return dict(sorted(out.items()))


def config_json(cfg: dict[str, Any]) -> dict[str, Any]:
    """config.Config as JSON: name/profile omitempty, storage, pitr/backup/restore when set, credentials masked."""
    out: dict[str, Any] = {}
    _opt(out, "name", cfg.get("name") or "")
    _opt(out, "profile", bool(cfg.get("profile")))
    out["storage"] = cfg.get("storage") or {"type": ""}
    for k in ("pitr", "backup", "restore"):
        if cfg.get(k) is not None:
            out[k] = cfg[k]
    return mask_secrets(out)


# --------------------------------------------------------------------------------------------------- commands


def _settings_state(settings: Settings) -> StateFile:
    return StateFile(settings.state_dir)


def _parse_ns(ns: str) -> list[str]:
    """PBM:cmd/pbm/ns.go parseCLINSOption (simplified: `db.coll`, `db.*`, `*.*`)."""
    ns = ns.strip()
    if ns in ("", "*", "*.*"):
        return []
    out = []
    for n in ns.split(","):
        n = n.strip()
        db, dot, coll = n.partition(".")
        if not dot or not db or not coll:
            raise PBMFail(f"parse --ns option: invalid namespace: {n}")
        out.append(n)
    return out


def _parse_rs_map(s: str) -> dict[str, str]:
    """PBM:cmd/pbm/ns.go parseRSNamesMapping: `to=from,...` -> {from: to}."""
    out: dict[str, str] = {}
    if not s:
        return out
    targets = set()
    for pair in s.split(","):
        to, eq, frm = pair.partition("=")
        if not eq or not to or not frm:
            raise PBMFail(f'cannot parse replset mapping: malformatted: "{pair}"')
        if frm in out:
            raise PBMFail(f'cannot parse replset mapping: source "{frm}" is duplicated')
        if to in targets:
            raise PBMFail(f'cannot parse replset mapping: target "{to}" is duplicated')
        out[frm] = to
        targets.add(to)
    return out


def _parse_time(t: str) -> int:
    """PBM:cmd/pbm/restore.go parseTS: `T,I` or `2006-01-02T15:04:05` / `2006-01-02` (UTC)."""
    if "," in t:
        a, _, b = t.partition(",")
        try:
            return int(a)
        except ValueError:
            raise PBMFail(f'parse clusterTime T: strconv.ParseInt: parsing "{a}": invalid syntax') from None
    import calendar

    for fmt in ("%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"):
        if len(t) == len(time.strftime(fmt, time.gmtime(0))):
            try:
                return calendar.timegm(time.strptime(t, fmt))
            except ValueError as e:
                raise PBMFail(f"parse date: {e}") from None
    raise PBMFail("parse date: invalid format")


def cmd_version(p: Parsed, out: Out, settings: Settings) -> None:
    if p.get("commit"):
        out.emit({"GitCommit": "pbm-sim"}, lambda: "pbm-sim")
    elif p.get("short"):
        out.emit({"Version": PBM_VERSION}, lambda: PBM_VERSION)
    else:
        info = {
            "Version": PBM_VERSION,
            "Platform": "linux/amd64",
            "GitCommit": "pbm-sim",
            "GitBranch": "sim",
            "BuildTime": "",
            "GoVersion": "go1.25.0",
        }
        out.emit(info, lambda: "\n".join(f"{k + ':':<10} {v}" for k, v in info.items()))


def cmd_backup(p: Parsed, out: Out, settings: Settings) -> None:
    comp = p.get("compression") or ""
    typ = p.get("type") or "logical"
    if comp and comp not in COMPRESSIONS:
        raise PBMFail(f'invalid compression value: "{comp}" (must be one of [{" ".join(COMPRESSIONS)}])')
    if typ not in BACKUP_TYPES:
        valid = ["physical", "logical", "incremental", "external"]
        raise PBMFail(f'invalid type value: "{typ}" (must be one of [{" ".join(valid)}])')
    nss = _parse_ns(p.get("ns") or "")
    if nss and typ != "logical":
        raise PBMFail("--ns flag is only allowed for logical backup")
    if p.get("with-users-and-roles") and not nss:
        raise PBMFail(
            "parse --with-users-and-roles option: Including users and roles are only allowed for "
            "selected database (use --ns flag for selective backup)"
        )
    profile = p.get("profile")
    if "profile" in p.changed and not profile:
        raise PBMFail('invalid argument "" for "--profile" flag: empty profile name')
    profile = "" if profile in (None, "main") else profile
    levels = p.get("compression-level") or []
    with _settings_state(settings) as st:
        sim = Sim(settings, st)
        sim.advance()
        b = sim.start_backup(
            typ=typ,
            base=bool(p.get("base")),
            compression=comp or None,
            level=levels[0] if levels else None,
            profile=profile,
            nss=nss,
            users_and_roles=bool(p.get("with-users-and-roles")),
        )
        name, mode = b["name"], b["mode"]
        storage_conf = {k: v for k, v in b["store"].items() if k not in ("name", "profile")}
    if not out.json:
        out.write(f'Starting backup "{name}"' + (f' (profile: "{profile}")' if profile else ""))
    # like the real CLI, wait until the agents report the backup running (or failed); PBM_SIM_ADVANCE=calls
    # makes the status move only on status calls, so there is nothing to wait for
    if mode == "time":
        wait_for = ("copyReady",) if typ == "external" else ("running", "dumpDone", "done", "canceled")
        deadline = time.monotonic() + settings.backup_wait_s
        while True:
            with _settings_state(settings) as st:
                sim = Sim(settings, st)
                sim.advance()
                b = sim.data["backups"].get(name) or {}
            status = b.get("status")
            if status == "error":
                rs = "".join(
                    f'\n- Backup on replicaset "{r["name"]}" in state: {r["status"]}'
                    + (f": {r['error']}" if r.get("error") else "")
                    for r in b.get("replsets") or []
                )
                prefix = "waiting for the `copyReady` status" if typ == "external" else "wait for backup status"
                raise PBMFail(f"{prefix}: {b.get('error')}{rs}")
            if status in wait_for or (typ == "external" and status in TERMINAL):
                break
            if time.monotonic() > deadline:
                raise PBMFail(
                    f'wait for backup status: backup stuck at "{status}" status, last heartbeat: {b.get("hb", 0)}'
                )
            if not out.json:
                out.write(".")
            time.sleep(0.1)
    if not out.json:
        out.write("\n")
    if typ == "external":
        nodes = [
            {"name": rs["node"], "files": [f["filename"] for f in rs["files"]] if p.get("list-files") else None}
            for rs in b.get("replsets") or []
        ]
        out.emit(
            {"name": name, "storage": nodes or None},
            lambda: (
                "Ready to copy data from:\n"
                + "".join(f"\t- {n['name']}\n" for n in nodes)
                + f"After the copy is done, run: pbm backup-finish {name}\n"
            ),
        )
        return
    res: dict[str, Any] = {"name": name}
    _opt(res, "profile", profile)
    res["storagePath"] = storage_path_of(storage_conf)
    text = (
        f'Backup "{name}" saved to remote store (path: "{res["storagePath"]}")'
        if not profile
        else f'Backup "{name}" saved to remote store (profile: "{profile}", path: "{res["storagePath"]}")'
    )
    out.emit(res, lambda: text)


def cmd_backup_finish(p: Parsed, out: Out, settings: Settings) -> None:
    name = p.args[0] if p.args else ""
    with _settings_state(settings) as st:
        sim = Sim(settings, st)
        sim.advance()
        sim.finish_external(name)
    msg = f"Command sent. Check `pbm describe-backup {name}` for the result."
    out.emit({"msg": msg}, lambda: msg)


def cmd_cancel_backup(p: Parsed, out: Out, settings: Settings) -> None:
    with _settings_state(settings) as st:
        sim = Sim(settings, st)
        sim.advance()
        sim.cancel_backup()
    out.emit({"msg": "Backup cancellation has started"}, lambda: "Backup cancellation has started")


def cmd_describe_backup(p: Parsed, out: Out, settings: Settings) -> None:
    name = p.args[0] if p.args else ""
    if len(p.args) > 1:
        raise PBMFail(f"accepts at most 1 arg(s), received {len(p.args)}")
    with _settings_state(settings) as st:
        sim = Sim(settings, st)
        sim.advance()
        try:
            d = describe_backup_json(sim, sim.get_backup(name), bool(p.get("with-collections")))
        finally:
            sim.count_poll()
    out.emit(d, lambda: _yaml({k: v for k, v in d.items() if not k.endswith("_ts") and k not in ("size",)}))


def cmd_describe_restore(p: Parsed, out: Out, settings: Settings) -> None:
    name = p.args[0] if p.args else ""
    with _settings_state(settings) as st:
        sim = Sim(settings, st)
        sim.advance()
        try:
            d = describe_restore_json(sim.get_restore(name))
        finally:
            sim.count_poll()
    out.emit(d, lambda: _yaml({k: v for k, v in d.items() if not k.endswith("ts") and k != "ts_to_restore"}))


def _list_text(data: dict[str, Any]) -> str:
    s = "Backup snapshots:\n"
    for b in data.get("snapshots") or []:
        s += f"  {b['name']:<24}  {b['type']:<12}  {b.get('profile', ''):<20}  {rfc3339(b['restoreTo'])[:-1]}\n"
    if "pitr" in data:
        s += f"\nPITR <{'on' if data['pitr']['on'] else 'off'}>:\n"
        for r in data["pitr"]["ranges"] or []:
            s += f"  {rfc3339(r['range']['start'])[:-1]} - {rfc3339(r['range']['end'])[:-1]}\n"
    return s


def cmd_list(p: Parsed, out: Out, settings: Settings) -> None:
    with _settings_state(settings) as st:
        sim = Sim(settings, st)
        sim.advance()
        try:
            profile = p.get("profile")
            if "profile" in p.changed:
                if not profile:
                    raise PBMFail('invalid argument "" for "--profile" flag: empty profile name')
                if sim.config is None:
                    raise PBMFail("no config set. Set config with <pbm config>")
                if profile != "main" and profile not in sim.data["profiles"]:
                    raise PBMFail(f'profile "{profile}" is not found')
                profile = "" if profile == "main" else profile
            if p.get("restore"):
                rl = restore_list_json(sim, int(p.get("size") or 0))
                out.emit(
                    rl,
                    lambda: (
                        "Restores history:\n"
                        + "".join(
                            f"  {r.get('name', '')} [backup: {r.get('snapshot', '')}]\t{r['status']}\n"
                            for r in rl or []
                        )
                    ),
                )
                return
            data = list_json(sim, profile)
        finally:
            sim.count_poll()
    out.emit(data, lambda: _list_text(data))


def cmd_status(p: Parsed, out: Out, settings: Settings) -> None:
    sections = p.get("sections") or []
    for s in sections:
        if s not in ("cluster", "pitr", "running", "backups"):
            raise PBMFail(f'invalid sections value: "{s}" (must be one of [cluster pitr running backups])')
    with _settings_state(settings) as st:
        sim = Sim(settings, st)
        sim.advance()
        try:
            data = status_json(sim, sections, bool(p.get("priority")))
        finally:
            sim.count_poll()
    out.emit(data, lambda: _yaml(data))


def cmd_restore(p: Parsed, out: Out, settings: Settings) -> None:
    bcp = p.args[0] if p.args else ""
    t = p.get("time") or ""
    external = bool(p.get("external"))
    if bcp and t:
        raise PBMFail("backup name and --time cannot be used together")
    if not external and not bcp and not t:
        raise PBMFail("specify a backup name, --time, or --external")
    nss = _parse_ns(p.get("ns") or "")
    ns_from, ns_to = p.get("ns-from") or "", p.get("ns-to") or ""
    if ns_from or ns_to:
        if not ns_from:
            raise PBMFail("parse --ns-from and --ns-to options: --ns-from should be specified as the cloning source")
        if not ns_to:
            raise PBMFail("parse --ns-from and --ns-to options: --ns-to should be specified as the cloning destination")
        if nss:
            raise PBMFail(
                "parse --ns-from and --ns-to options: cloning with selective restore is not possible "
                "(remove --ns option)"
            )
        if p.get("with-users-and-roles"):
            raise PBMFail(
                "parse --ns-from and --ns-to options: cloning with restoring users and rolles is not possible"
            )
        if "*" in ns_from or "*" in ns_to:
            raise PBMFail("parse --ns-from and --ns-to options: cloning with wild-cards is not possible")
    if p.get("with-users-and-roles") and not nss:
        raise PBMFail(
            "parse --with-users-and-roles option: Including users and roles are only allowed for "
            "selected database (use --ns flag for selective backup)"
        )
    rs_map = _parse_rs_map(p.get("replset-remapping") or os.environ.get("PBM_REPLSET_REMAPPING", ""))
    pitr_ts = _parse_time(t) if t else 0
    with _settings_state(settings) as st:
        sim = Sim(settings, st)
        sim.advance()
        if not p.get("yes"):
            # doRestore asks for confirmation on a tty; the exec'd CLI has none (PBM:cmd/pbm/common.go)
            sim.check_no_other_operation()
            if not sys.stdin.isatty():
                desc = (bcp and f" from '{bcp}'") or ""
                out.write(f"Restore: <new>{f' to point-in-time {t}' if t else ''}{desc}\n")
                raise PBMFail("no tty")
        r = sim.start_restore(
            backup=bcp,
            pitr_ts=pitr_ts,
            base_snapshot=p.get("base-snapshot") or "",
            nss=nss,
            ns_from=ns_from,
            ns_to=ns_to,
            users_and_roles=bool(p.get("with-users-and-roles")),
            rs_map=rs_map,
            external=external,
        )
    res: dict[str, Any] = {}
    _opt(res, "name", r["name"])
    _opt(res, "snapshot", bcp)
    out.emit(
        res,
        lambda: (
            f"Restore of the snapshot from '{bcp}' has started"
            if bcp
            else f"Restore to the point in time '{t}' has started"
        ),
    )


def cmd_delete_backup(p: Parsed, out: Out, settings: Settings) -> None:
    name = p.args[0] if p.args else ""
    older = p.get("older-than") or ""
    if not name and not older:
        raise PBMFail("either [name] or --older-than should be set")
    if name and older:
        raise PBMFail("cannot use [name] and --older-than at the same command")
    if name and "profile" in p.changed:
        raise PBMFail("cannot use [name] with --profile")
    if p.get("type") and not older:
        raise PBMFail("cannot use --type without --older-than")
    with _settings_state(settings) as st:
        sim = Sim(settings, st)
        sim.advance()
        if older:
            ts = _parse_time(older) if not older.endswith("d") else int(sim.now) - int(older[:-1]) * 86400
            victims = [
                b
                for b in iter_sorted_backups(sim, newest_first=False)
                if b["status"] == "done"
                and b["last_write_ts"] < ts
                and (not p.get("type") or b["type"] == p.get("type"))
                and not sim._is_pitr_base(b)
                and not b["src_backup"]
            ]
        else:
            victims = [sim.data["backups"].get(name)] if name in sim.data["backups"] else []
        if victims:
            out.write(
                "Snapshots:\n"
                + "".join(
                    f' - "{b["name"]}" [size: {byte_count_iec(b["size"])} type: <{b["type"]}>, restore time: '
                    f"{rfc3339(b['last_write_ts'])}]\n"
                    for b in victims
                )
            )
        if p.get("dry-run"):
            out.emit({"msg": ""}, lambda: "")
            return
        if not p.get("yes") and not p.get("force"):
            if name:
                sim.get_backup(name)
            raise PBMFail("no tty")
        if name:
            sim.delete_backup(name)
        else:
            for b in victims:
                sim.delete_backup(b["name"])
        out.write("Waiting for delete to be done .[done]\n")
        data = list_json(sim, None)
    out.emit(data, lambda: _list_text(data))


def _read_file(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as e:
        raise PBMFail(f'unable to get new config: open "{path}": {e.strerror}') from None


def cmd_config(p: Parsed, out: Out, settings: Settings) -> None:
    if p.get("include-restores") and not p.get("force-resync"):
        raise PBMFail("--include-restores cannot be used without --force-resync")
    with _settings_state(settings) as st:
        sim = Sim(settings, st)
        sim.advance()
        pairs = p.get("set") or []
        if pairs:
            res = sim.set_config_vars(pairs)
            out.emit(res, lambda: "".join(f"[{kv['key']}={kv['value']}]\n" for kv in res))
            return
        if p.args:
            key = p.args[0]
            v = sim.get_config_var(key)
            if isinstance(v, bool):
                sv = "true" if v else "false"
            elif v is None:
                sv = ""
            elif isinstance(v, (dict, list)):
                sv = str(mask_secrets(v))
            else:
                sv = str(v)
            out.emit({"key": key, "value": sv}, lambda: sv)
            return
        if p.get("force-resync"):
            sim.check_no_other_operation()
            sim.resync_main()
            msg = "Storage resync finished" if p.get("wait") else "Storage resync started"
            out.emit({"msg": msg}, lambda: msg)
            return
        if p.get("file"):
            try:
                cfg = parse_config(_read_file(p.get("file")))
            except PBMFail as e:
                if str(e).startswith("unable to get new config"):
                    raise
                raise PBMFail(f"unable to get new config: {e}") from None
            sim.set_config(cfg)
            data = config_json(cfg)
            out.emit(data, lambda: _yaml(data))
            return
        if sim.config is None:
            raise PBMFail("get: mongo: no documents in result")
        data = config_json(full_config(sim.config))
        out.emit(data, lambda: _yaml(data))


def cmd_profile(p: Parsed, out: Out, settings: Settings) -> None:
    sub = p.command.split(" ", 1)[1] if " " in p.command else "list"
    with _settings_state(settings) as st:
        sim = Sim(settings, st)
        sim.advance()
        if sub == "list":
            if p.args:
                raise PBMFail(f"parse command line parameters: unexpected {p.args[0]}")
            profiles = [config_json(x) for x in sim.data["profiles"].values()]
            out.emit({"profiles": profiles}, lambda: "---\n".join(_yaml(x) for x in profiles))
            return
        if sub in ("show", "remove", "add") and not p.args:
            raise PBMFail(f"accepts {2 if sub == 'add' else 1} arg(s), received 0")
        if sub == "show":
            name = p.args[0]
            if name == "main":
                raise PBMFail('argument `profile-name` should not be "main"')
            prof = sim.data["profiles"].get(name)
            if prof is None:
                raise PBMFail(f'profile "{name}" is not found')
            data = config_json(prof)
            out.emit(data, lambda: _yaml(data))
            return
        if sub == "add":
            if len(p.args) != 2:
                raise PBMFail(f"accepts 2 arg(s), received {len(p.args)}")
            name, path = p.args
            try:
                with open(path, encoding="utf-8") as f:
                    text = f.read()
            except OSError as e:
                raise PBMFail(f"open config file: open {path}: {e.strerror}") from None
            if name == "main":
                raise PBMFail('argument `profile-name` should not be "main"')
            sim.check_no_other_operation()
            if sim.config is None:
                raise PBMFail("PBM is not configured")
            try:
                cfg = parse_config(text)
            except PBMFail as e:
                raise PBMFail(f"parse config: {e}") from None
            sim.add_profile(name, cfg, sync=bool(p.get("sync")))
            out.emit({"msg": "OK"}, lambda: "OK")
            return
        if sub == "remove":
            sim.remove_profile(p.args[0])
            out.emit({"msg": "OK"}, lambda: "OK")
            return
        if sub == "sync":
            profile = p.args[0] if p.args else None
            if not p.get("all") and not profile:
                raise PBMFail("<profile-name> or --all must be provided")
            if p.get("all") and profile:
                raise PBMFail("ambiguous: <profile-name> and --all are provided")
            sim.sync_profile(profile, all_=bool(p.get("all")), clear=bool(p.get("clear")))
            out.emit({"msg": "OK"}, lambda: "OK")


COMMANDS: dict[str, Callable[[Parsed, Out, Settings], None]] = {
    "version": cmd_version,
    "backup": cmd_backup,
    "backup-finish": cmd_backup_finish,
    "cancel-backup": cmd_cancel_backup,
    "describe-backup": cmd_describe_backup,
    "describe-restore": cmd_describe_restore,
    "list": cmd_list,
    "status": cmd_status,
    "restore": cmd_restore,
    "delete-backup": cmd_delete_backup,
    "config": cmd_config,
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    settings = Settings.from_env()
    out = Out("text")
    code = 0
    err = ""
    try:
        try:
            p = parse_argv(argv)
        finally:
            # -o is read even when parsing fails later, like viper reading the bound flag
            for i, a in enumerate(argv):
                if a in ("-o", "--out") and i + 1 < len(argv):
                    out.fmt = argv[i + 1]
                elif a.startswith("--out="):
                    out.fmt = a[6:]
                elif a.startswith("-o") and len(a) > 2:
                    out.fmt = a[2:].lstrip("=")
        out.fmt = p.get("out") or "text"
        if p.command != "version" and not (p.get("mongodb-uri") or os.environ.get("PBM_MONGODB_URI")):
            # persistentPreRun returns this error to cobra (PBM:cmd/pbm/main.go)
            raise PBMFail(
                "no MongoDB connection URI supplied\n"
                "       Usual practice is the set it by the PBM_MONGODB_URI environment variable. "
                "It can also be set with commandline argument --mongodb-uri."
            )
        handler = COMMANDS.get(p.command) or (cmd_profile if p.command.startswith("profile") else None)
        if handler is None:  # pragma: no cover - parse_argv rejects unknown commands
            raise PBMFail(f'unknown command "{p.command}" for "pbm"')
        handler(p, out, settings)
    except PBMFail as e:
        code, err = 1, str(e)
    except Exception as e:  # a simulator bug must still look like a failed command, with a usable message
        code, err = 1, f"pbm-sim internal error: {type(e).__name__}: {e}"
    sys.stdout.write("".join(out.stdout))
    sys.stdout.flush()
    if err:
        sys.stderr.write(f"Error: {err}\n")
        sys.stderr.flush()
    _record_call(settings, argv, code, err)
    return code


def _record_call(settings: Settings, argv: list[str], code: int, err: str) -> None:
    """Append one JSON line per invocation to `<state_dir>/calls.log` (tests assert the argv a driver sends)."""
    try:
        d = settings.state_dir
    except PBMFail:
        return
    try:
        d.mkdir(parents=True, exist_ok=True)
        with open(d / "calls.log", "a", encoding="utf-8") as f:
            f.write(json.dumps({"ts": time.time(), "argv": argv, "exit": code, "error": err}) + "\n")
    except OSError:
        pass
