"""Pure transforms between a cluster's `spec.backup.tasks` and PerconaServerMongoDBBackupSchedule objects, for
`psmdb-backup schedules import|export`. No API: callers send the objects and the JSON Patch.

Import: one schedule per enabled task, and a JSON Patch (RFC 6902) that sets those tasks `enabled: false` in the
same change, so nothing fires twice (the operator drops the cron entry of a disabled task,
OP v1.23.0@b15af500 pkg/controller/perconaservermongodb/backup.go:74-101,135-184). Every
disabled task is guarded by a `test` of the whole task as it was read: if anyone changed the task list meanwhile,
the API server refuses the patch (422) and the caller reads the cluster again, instead of disabling the wrong task.
A task that cannot become a schedule is reported in `errors` and stays enabled, running under the operator.

Names: a schedule is named after its task, so its Backups keep the task's `percona.com/backup-ancestor` label and
the operator-made Backups of that task stay under the schedule's retention. A task name that is not a DNS-1123
label (the schedule name also goes into label values, so at most 63 characters) is lower-cased, other characters
become `-`; that renamed schedule's Backups no longer share the task's ancestor label (a warning says so). Two
tasks that end up with one name (duplicates, which the operator itself lets overwrite each other, or `Daily` and
`daily`) and a task whose name is taken by an existing schedule are errors: guessing which one is meant could
double or drop backups.

Export: the inverse. `suspend` becomes `enabled: false`; fields the operator has no equivalent for (maxAge,
keepDaily/Weekly/Monthly, concurrencyPolicy Forbid, a startingDeadlineSeconds other than the cluster's) are
returned as warnings, never dropped silently. Retention is written as the cluster's crVersion reads it: `retention`
from 1.21, else `keep` (`GetRetention`, OP v1.23.0@b15af500 pkg/apis/psmdb/v1/psmdb_types.go:1242-1251).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .. import cron
from ..versions import V1_21, Version

GROUP_VERSION = "psmdb-backup-webhook.io/v1alpha1"
KIND = "PerconaServerMongoDBBackupSchedule"
TASKS_PATH = "/spec/backup/tasks"
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_COPIED = ("storageName", "type", "compressionType", "compressionLevel")  # same name and meaning in both kinds
_READ = {"name", "enabled", "schedule", "keep", "retention", *_COPIED}  # every other task field is reported


@dataclass
class Result:
    """schedules (import) or tasks (export), the JSON Patch for the cluster, and what the user must know."""

    objects: list[dict[str, Any]] = field(default_factory=list)
    patch: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _cr_version(cluster: Mapping[str, Any]) -> Version:
    """An empty crVersion is the operator's own, i.e. the newest (it patches it in on first reconcile)."""
    return Version.parse((cluster.get("spec") or {}).get("crVersion")) or Version(99)


def _backup(cluster: Mapping[str, Any]) -> Mapping[str, Any]:
    return (cluster.get("spec") or {}).get("backup") or {}


def schedule_name(task_name: object) -> str | None:
    """The schedule name for a task name: itself when it is a DNS-1123 label, else lower-cased with every other
    character turned into `-` (trimmed to 63); None when nothing usable is left."""
    text = task_name if isinstance(task_name, str) else ""
    if _DNS_LABEL.fullmatch(text):
        return text
    name = re.sub(r"[^a-z0-9-]+", "-", text.lower())[:63].strip("-")
    return name if name and _DNS_LABEL.fullmatch(name) else None


def _retention(task: Mapping[str, Any], cr_version: Version, label: str, warnings: list[str]) -> dict[str, Any]:
    """The schedule retention that keeps what the operator's `GetRetention` keeps for this task."""
    ret = task.get("retention")
    if isinstance(ret, Mapping) and cr_version >= V1_21:
        if task.get("keep"):
            warnings.append(f"{label}: keep {task['keep']} is ignored because retention is set (as the operator does)")
        if ret.get("type", "count") != "count":
            warnings.append(f"{label}: retention type {ret.get('type')!r} is not count: the operator deletes nothing")
            return {k: ret[k] for k in ("deleteFromStorage",) if k in ret}
        return {k: ret[k] for k in ("count", "deleteFromStorage") if k in ret}
    if isinstance(ret, Mapping):
        warnings.append(f"{label}: retention needs crVersion 1.21; keep is used instead (as the operator does)")
    return {"count": task["keep"]} if task.get("keep") else {}


def import_tasks(cluster: Mapping[str, Any], *, existing: Collection[str] = ()) -> Result:
    """Schedules for the enabled tasks of `cluster`, and the patch disabling them. `existing`: names of the
    schedules already in the cluster's namespace."""
    meta, backup = cluster.get("metadata") or {}, _backup(cluster)
    cluster_name, namespace = str(meta.get("name") or ""), meta.get("namespace")
    tasks = backup.get("tasks") or []
    out, version = Result(), _cr_version(cluster)
    enabled = [(i, t) for i, t in enumerate(tasks) if isinstance(t, Mapping) and t.get("enabled") is True]
    names = {i: schedule_name(t.get("name")) for i, t in enabled}
    taken = [n for n in names.values() if n]
    for i, task in enabled:
        label, name = f"task {task.get('name')!r} (spec.backup.tasks[{i}])", names[i]
        if name is None:
            out.errors.append(f"{label}: no schedule name can be made of its name; left enabled")
            continue
        if taken.count(name) > 1:
            others = [repr(t.get("name")) for j, t in enabled if names[j] == name and j != i]
            out.errors.append(
                f"{label}: becomes schedule {name!r} like task {', '.join(others)}; left enabled, rename one"
            )
            continue
        if name in existing:
            out.errors.append(f"{label}: a schedule named {name!r} already exists; left enabled")
            continue
        if task.get("type") == "external":
            out.errors.append(f"{label}: snapshot (external) backups cannot be scheduled by a schedule; left enabled")
            continue
        try:
            cron.parse(task.get("schedule") or "")
        except cron.CronError as e:
            out.errors.append(f"{label}: schedule {task.get('schedule')!r} does not parse ({e}); left enabled")
            continue
        if name != task.get("name"):
            out.warnings.append(
                f"{label}: becomes schedule {name!r}; the task's older Backups keep the ancestor label "
                f"{task.get('name')!r} and are not under the schedule's retention"
            )
        dropped = sorted(k for k in task if k not in _READ)
        if dropped:
            out.warnings.append(f"{label}: {', '.join(dropped)} has no schedule equivalent and is not imported")
        spec: dict[str, Any] = {"clusterName": cluster_name, "schedule": task["schedule"]}
        spec.update({k: task[k] for k in _COPIED if task.get(k) is not None})
        if backup.get("startingDeadlineSeconds") is not None:
            spec["startingDeadlineSeconds"] = backup["startingDeadlineSeconds"]
        retention = _retention(task, version, label, out.warnings)
        if retention:
            spec["retention"] = retention
        metadata = {"name": name, **({"namespace": namespace} if namespace else {})}
        out.objects.append({"apiVersion": GROUP_VERSION, "kind": KIND, "metadata": metadata, "spec": spec})
        out.patch += [
            {"op": "test", "path": f"{TASKS_PATH}/{i}", "value": task},
            {"op": "replace", "path": f"{TASKS_PATH}/{i}/enabled", "value": False},
        ]
    return out


def _task(schedule: Mapping[str, Any], cluster: Mapping[str, Any], warnings: list[str]) -> dict[str, Any]:
    spec, name = schedule.get("spec") or {}, (schedule.get("metadata") or {}).get("name")
    label = f"schedule {name!r}"
    task: dict[str, Any] = {"name": name, "enabled": not spec.get("suspend", False), "schedule": spec.get("schedule")}
    task.update({k: spec[k] for k in _COPIED if spec.get(k) is not None})
    ret = spec.get("retention") or {}
    lost = [f"{k} {ret[k]}" for k in ("maxAge", "keepDaily", "keepWeekly", "keepMonthly") if ret.get(k)]
    if lost:
        warnings.append(f"{label}: the operator has no {', '.join(lost)}: only the count retention is exported")
    if "count" in ret or "deleteFromStorage" in ret:
        if _cr_version(cluster) >= V1_21:
            task["retention"] = {"type": "count", **{k: ret[k] for k in ("count", "deleteFromStorage") if k in ret}}
        else:
            if ret.get("deleteFromStorage") is False:
                warnings.append(
                    f"{label}: deleteFromStorage false needs crVersion 1.21: the task's Backups delete their data"
                )
            if ret.get("count"):
                task["keep"] = ret["count"]
    if spec.get("concurrencyPolicy", "Forbid") == "Forbid":
        warnings.append(
            f"{label}: the operator has no concurrencyPolicy Forbid: its task creates every slot's Backup, "
            "which waits for the previous one"
        )
    deadline, cluster_deadline = spec.get("startingDeadlineSeconds"), _backup(cluster).get("startingDeadlineSeconds")
    if deadline is not None and deadline != cluster_deadline:
        warnings.append(
            f"{label}: startingDeadlineSeconds {deadline} has no task equivalent (the operator does not catch up slots)"
        )
    return task


def export_schedules(schedules: Iterable[Mapping[str, Any]], cluster: Mapping[str, Any]) -> Result:
    """Tasks for the schedules of `cluster` (others are ignored) and the patch that puts them into
    spec.backup.tasks: a task of the same name (the one an import disabled) is replaced, guarded by a test of its
    current value, else the task is appended. Deleting the schedules afterwards is the caller's job."""
    cluster_name = (cluster.get("metadata") or {}).get("name")
    out = Result()
    mine = sorted(
        (s for s in schedules if (s.get("spec") or {}).get("clusterName") == cluster_name),
        key=lambda s: str((s.get("metadata") or {}).get("name")),
    )
    if not mine:
        return out
    if not (cluster.get("spec") or {}).get("backup"):
        out.errors.append(f"cluster {cluster_name!r} has no spec.backup to hold tasks")
        return out
    tasks = list(_backup(cluster).get("tasks") or [])
    index = {t.get("name"): i for i, t in enumerate(tasks) if isinstance(t, Mapping)}
    if not isinstance(_backup(cluster).get("tasks"), list):  # absent or null: `add` creates (or replaces) it
        out.patch.append({"op": "add", "path": TASKS_PATH, "value": []})
    for s in mine:
        task = _task(s, cluster, out.warnings)
        out.objects.append(task)
        i = index.get(task["name"])
        if i is None:
            out.patch.append({"op": "add", "path": f"{TASKS_PATH}/-", "value": task})
        else:
            out.patch += [
                {"op": "test", "path": f"{TASKS_PATH}/{i}", "value": tasks[i]},
                {"op": "replace", "path": f"{TASKS_PATH}/{i}", "value": task},
            ]
    return out
