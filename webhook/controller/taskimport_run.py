"""`psmdb-backup schedules import|export CLUSTER`: apply the transforms of taskimport.py to a live cluster.

Import creates the schedules suspended (the webhook refuses an active schedule named like an enabled task, PSB606),
disables the imported tasks with one JSON Patch (guarded by `test` ops), then resumes the schedules: until the tasks
are disabled nothing fires twice, and a refused create or patch deletes the schedules again (nothing changed); a
failed resume says how to finish. Export goes the other way for the same reason: the tasks are written first, then the schedules deleted.
Their Backups stay (schedules own none of them); the operator's task retention takes them over by ancestor label.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

import yaml

from ..kube import KubeError
from ..policy import kinds
from . import taskimport
from .kubeapi import Kube, psmdb_path

JSON_PATCH = "application/json-patch+json"


@dataclass
class Out:
    stdout: TextIO
    stderr: TextIO
    output: str  # text, yaml, json

    def say(self, line: str) -> None:
        """Progress for people: stdout in text mode, stderr when stdout carries yaml or json."""
        print(line, file=self.stdout if self.output == "text" else self.stderr)

    def report(self, result: taskimport.Result) -> None:
        for w in result.warnings:
            print(f"warning: {w}", file=self.stderr)
        for e in result.errors:
            print(f"error: {e}", file=self.stderr)

    def objects(self, items: Sequence[Mapping[str, Any]]) -> None:
        if self.output == "json":
            print(json.dumps({"apiVersion": "v1", "kind": "List", "items": list(items)}, indent=2), file=self.stdout)
        elif self.output == "yaml":
            print(yaml.safe_dump_all(list(items), sort_keys=False), end="", file=self.stdout)


async def _cluster(kube: Kube, ns: str, name: str, out: Out) -> dict[str, Any] | None:
    cluster = await kube.get(psmdb_path(kinds.CLUSTER, ns, name))
    if cluster is None:
        print(f"error: no PerconaServerMongoDB {name!r} in namespace {ns!r}", file=out.stderr)
    return cluster


async def _schedules(kube: Kube, ns: str) -> list[dict[str, Any]]:
    items = (await kube.request("GET", psmdb_path(kinds.SCHEDULE, ns))).get("items") or []
    return [i for i in items if isinstance(i, dict)]


RESUME_ATTEMPTS, RESUME_PAUSE = 8, 2.0  # the webhook caches the cluster it read for a few seconds (serve: 5 s)


async def _resume(kube: Kube, ns: str, name: str) -> None:
    """Back to the imported value (unset: not suspended). A webhook that still has the cluster with the task enabled
    in its lookup cache refuses it (PSB606) until that entry expires: retried meanwhile."""
    for attempt in range(RESUME_ATTEMPTS):
        try:
            await kube.patch(psmdb_path(kinds.SCHEDULE, ns, name), {"spec": {"suspend": None}})
            return
        except KubeError as e:
            if e.status != 422 or "PSB606" not in e.message or attempt == RESUME_ATTEMPTS - 1:
                raise
            await asyncio.sleep(RESUME_PAUSE)


async def run_import(kube: Kube, ns: str, name: str, *, dry_run: bool, out: Out) -> int:
    cluster = await _cluster(kube, ns, name, out)
    if cluster is None:
        return 1
    existing = {s["metadata"]["name"] for s in await _schedules(kube, ns)}
    result = taskimport.import_tasks(cluster, existing=existing)
    out.report(result)
    tasks = [op["path"].rsplit("/", 2)[1] for op in result.patch if op["op"] == "replace"]
    names = [s["metadata"]["name"] for s in result.objects]
    if not result.objects:
        out.say(f"cluster {name}: no enabled task to import")
        return 1 if result.errors else 0
    if dry_run:
        for s, i in zip(names, tasks, strict=True):
            out.say(f"would create schedule {ns}/{s} and disable spec.backup.tasks[{i}] of cluster {name}")
        out.say(f"cluster patch: {json.dumps(result.patch)}")
        out.objects(result.objects)
        return 1 if result.errors else 0
    created: list[dict[str, Any]] = []
    for obj in result.objects:
        try:
            suspended = {**obj, "spec": {**obj["spec"], "suspend": True}}  # resumed once the task is disabled
            created.append(await kube.create(psmdb_path(kinds.SCHEDULE, ns), suspended))
        except KubeError as e:  # nothing disabled yet: take back what we created, so nothing fires twice
            undone = [c["metadata"]["name"] for c in created]
            for c in undone:
                await kube.delete(psmdb_path(kinds.SCHEDULE, ns, c))
            print(
                f"error: creating schedule {obj['metadata']['name']} failed: {e}. No task was disabled"
                + (f"; the schedules created before it were deleted again ({', '.join(undone)})" if undone else "")
                + ". Nothing changed.",
                file=out.stderr,
            )
            return 1
        out.say(f"created schedule {ns}/{obj['metadata']['name']} (schedule {obj['spec']['schedule']!r}), suspended")
    try:
        await kube.request("PATCH", psmdb_path(kinds.CLUSTER, ns, name), result.patch, content_type=JSON_PATCH)
    except KubeError as e:
        changed = "the task list changed since it was read" if e.status == 422 else str(e)
        for c in names:
            await kube.delete(psmdb_path(kinds.SCHEDULE, ns, c))
        print(
            f"error: disabling the tasks in cluster {name} failed ({changed}); the schedules {', '.join(names)} were "
            "deleted again. Nothing changed: run the import again.",
            file=out.stderr,
        )
        return 1
    stuck = []
    for obj in result.objects:
        try:
            await _resume(kube, ns, obj["metadata"]["name"])
        except KubeError as e:
            stuck.append(obj["metadata"]["name"])
            print(f"error: resuming schedule {obj['metadata']['name']} failed: {e}", file=out.stderr)
    if stuck:
        print(
            f"error: the tasks are disabled, but the schedules {', '.join(stuck)} are still suspended: nothing backs "
            f"them up. Finish with: kubectl -n {ns} patch psmdb-schedule {' '.join(stuck)} --type=merge "
            """-p '{"spec":{"suspend":false}}'""",
            file=out.stderr,
        )
        return 1
    for s, i in zip(names, tasks, strict=True):
        out.say(f"disabled spec.backup.tasks[{i}] of cluster {name} (now schedule {s}, resumed)")
    out.objects([{**c, "spec": {k: v for k, v in c["spec"].items() if k != "suspend"}} for c in created])
    return 1 if result.errors else 0


async def run_export(kube: Kube, ns: str, name: str, *, dry_run: bool, out: Out) -> int:
    cluster = await _cluster(kube, ns, name, out)
    if cluster is None:
        return 1
    schedules = [s for s in await _schedules(kube, ns) if (s.get("spec") or {}).get("clusterName") == name]
    result = taskimport.export_schedules(schedules, cluster)
    out.report(result)
    if result.errors:
        return 1
    names = sorted(s["metadata"]["name"] for s in schedules)
    if not names:
        out.say(f"cluster {name}: no schedule to export")
        return 0
    if dry_run:
        for t in result.objects:
            out.say(f"would write task {t['name']} (enabled: {str(t['enabled']).lower()}) into cluster {name}")
        out.say(f"cluster patch: {json.dumps(result.patch)}")
        out.say(f"would delete schedules {', '.join(names)} (their Backups stay)")
        out.objects(result.objects)
        return 0
    try:
        await kube.request("PATCH", psmdb_path(kinds.CLUSTER, ns, name), result.patch, content_type=JSON_PATCH)
    except KubeError as e:
        changed = "the task list changed since it was read; run the export again" if e.status == 422 else str(e)
        print(f"error: writing the tasks into cluster {name} failed ({changed}). Nothing changed.", file=out.stderr)
        return 1
    out.say(f"wrote tasks {', '.join(t['name'] for t in result.objects)} into cluster {name}")
    left = []
    for s in names:
        try:
            await kube.delete(psmdb_path(kinds.SCHEDULE, ns, s))
            out.say(f"deleted schedule {ns}/{s} (its Backups stay)")
        except KubeError as e:
            left.append(s)
            print(f"error: deleting schedule {s} failed: {e}", file=out.stderr)
    if left:
        print(
            f"error: the tasks are enabled in cluster {name}, and the schedules {', '.join(left)} still exist: "
            f"both make a Backup per slot. Finish with: kubectl -n {ns} delete psmdb-schedule {' '.join(left)}",
            file=out.stderr,
        )
        return 1
    out.objects(result.objects)
    return 0
