"""Cluster-wide backup rules of a PerconaServerMongoDB: crVersion, PITR and spec.backup settings
(OP v1.23.0@b15af500 pkg/apis/psmdb/v1/psmdb_types.go:1456-1483 BackupSpec, psmdb_defaults.go:569-663 CheckNSetDefaults;
OP v1.23.0@b15af500 pkg/controller/perconaservermongodb/pbm.go:273-565 reconcilePiTRConfig)."""

from __future__ import annotations

from collections.abc import Iterable

from ..findings import Severity
from ..versions import LATEST, OLDEST_MODELLED, V1_22, V1_23, Version
from . import kinds
from .common import backup_spec, mapping, text
from .examples import with_backup
from .lookup import Found
from .registry import Context, Example, Violation, backup_enabled, rule

BACKUP = ("spec", "backup")
PITR = BACKUP + ("pitr",)
S3 = "storages: {s3-main: {type: s3, s3: {bucket: b}}}"


@rule(
    "PSB003",
    title="crVersion outside the modelled range",
    severity=Severity.WARNING,
    kind=kinds.CLUSTER,
    source="OP v1.23.0@b15af500 pkg/apis/psmdb/v1/psmdb_types.go:1602-1609 (hashicorp/go-version comparison)",
    hint=f"use a crVersion from {OLDEST_MODELLED} to {LATEST}",
    bad=[with_backup(S3, cr_version="1.19.1"), with_backup(S3, cr_version="latest")],
    good=[with_backup(S3, cr_version="1.22.0")],
)
def cr_version(ctx: Context) -> Iterable[Violation]:
    """This tool models operator versions 1.20 to 1.23; an empty crVersion becomes the operator's own version."""
    raw = ctx.spec.get("crVersion")
    if raw is None or raw == "":
        return
    version = Version.parse(raw)
    if version is None:
        yield Violation(
            ("spec", "crVersion"),
            f'crVersion "{raw}" is not a version number like 1.23.0: the operator '
            "cannot compare it and its version gates misbehave",
        )
    elif not OLDEST_MODELLED <= version < Version(LATEST.major, LATEST.minor + 1):
        yield Violation(
            ("spec", "crVersion"),
            f"crVersion {version} is outside {OLDEST_MODELLED}..{LATEST}, the "
            "versions these rules model: findings may be incomplete",
            severity=Severity.INFO,
        )


@rule(
    "PSB131",
    title="Backup setting with no effect",
    severity=Severity.WARNING,
    kind=kinds.CLUSTER,
    source="OP v1.23.0@b15af500 pkg/psmdb/backup/job.go:19-85 (only the legacy backup CronJob read them; it is no longer created)",
    hint="remove the field; database pods use replsets[].serviceAccountName and replsets[].runtimeClassName",
    bad=[with_backup(f"{S3}, serviceAccountName: backup-sa")],
    good=[with_backup(S3)],
)
def no_effect_settings(ctx: Context) -> Iterable[Violation]:
    backup = backup_spec(ctx.spec)
    for field in ("annotations", "labels", "serviceAccountName", "podSecurityContext", "runtimeClassName"):
        if backup.get(field) not in (None, "", {}):
            yield Violation(
                BACKUP + (field,),
                f"backup.{field} has no effect with current operators (it only applied to the legacy backup CronJob)",
            )


@rule(
    "PSB132",
    title="Sidecar option needs a newer crVersion",
    severity=Severity.WARNING,
    kind=kinds.CLUSTER,
    until=V1_23,
    source="OP v1.23.0@b15af500 pkg/psmdb/statefulset.go:47-73,406,550,682-690 (gates 1.22.0 hookScript, 1.23.0 probes and /tmp)",
    hint="raise spec.crVersion, or remove the option",
    bad=[with_backup(f"{S3}, livenessProbe: {{exec: {{command: [pbm, status]}}}}", cr_version="1.22.0")],
    good=[with_backup(f"{S3}, livenessProbe: {{exec: {{command: [pbm, status]}}}}", cr_version="1.23.0")],
)
def sidecar_option_too_new(ctx: Context) -> Iterable[Violation]:
    backup = backup_spec(ctx.spec)
    gates = {"livenessProbe": V1_23, "readinessProbe": V1_23, "hookScript": V1_22}
    for field, since in gates.items():
        if backup.get(field) and ctx.cr_version < since:
            yield Violation(
                BACKUP + (field,),
                f"backup.{field} needs crVersion {since} or newer; with "
                f"{ctx.cr_version} the backup-agent sidecar ignores it",
            )
    if mapping(backup.get("containerSecurityContext")).get("readOnlyRootFilesystem") is True and ctx.cr_version < V1_23:
        yield Violation(
            BACKUP + ("containerSecurityContext", "readOnlyRootFilesystem"),
            "with crVersion "
            f"{ctx.cr_version} the sidecar gets no writable /tmp, so pbm-entry.sh cannot write /tmp/tls.pem "
            "and TLS connections to mongod fail",
        )


@rule(
    "PSB133",
    title="Backups configured but disabled",
    severity=Severity.WARNING,
    kind=kinds.CLUSTER,
    source="OP v1.23.0@b15af500 pkg/controller/perconaservermongodb/backup.go:38-40; OP v1.23.0@b15af500 pkg/apis/psmdb/v1/psmdb_defaults.go:657-659",
    hint="set spec.backup.enabled: true, or disable the tasks and PITR",
    bad=[
        with_backup(
            f"{S3}, tasks: [{{name: daily, enabled: true, schedule: '0 0 * * *', storageName: s3-main}}]", enabled=False
        )
    ],
    good=[with_backup(f"{S3}, tasks: [{{name: daily, enabled: true, schedule: '0 0 * * *', storageName: s3-main}}]")],
)
def configured_but_disabled(ctx: Context) -> Iterable[Violation]:
    """With backups disabled there is no backup-agent, PITR is forced off and tasks are not (re)scheduled."""
    if backup_enabled(ctx.obj) or not isinstance(ctx.spec.get("backup"), dict):
        return
    for i, task in ctx.tasks:
        if task.get("enabled") is True:
            yield Violation(
                BACKUP + ("tasks", i, "enabled"),
                "the task is enabled but spec.backup.enabled is false: no "
                "new schedule is registered (and one the operator already registered keeps firing until it "
                "restarts)",
            )
    if mapping(backup_spec(ctx.spec).get("pitr")).get("enabled") is True:
        yield Violation(PITR + ("enabled",), "pitr.enabled is forced to false while spec.backup.enabled is false")


@rule(
    "PSB134",
    title="PITR without a storage",
    severity=Severity.WARNING,
    kind=kinds.CLUSTER,
    needs_backup_enabled=True,
    source="OP v1.23.0@b15af500 pkg/controller/perconaservermongodb/pbm.go:294-320 (PITR runs on the main storage)",
    hint="define a storage (marked main: true when there are several)",
    bad=[with_backup("pitr: {enabled: true}")],
    good=[with_backup(f"{S3}, pitr: {{enabled: true}}")],
)
def pitr_without_storage(ctx: Context) -> Iterable[Violation]:
    if mapping(backup_spec(ctx.spec).get("pitr")).get("enabled") is True and not ctx.storages:
        yield Violation(
            PITR + ("enabled",), "pitr.enabled is true but spec.backup.storages is empty: no oplog is ever saved"
        )


@rule(
    "PSB135",
    title="PITR waits for a full backup",
    severity=Severity.INFO,
    kind=kinds.CLUSTER,
    needs_backup_enabled=True,
    source="OP v1.23.0@b15af500 pkg/controller/perconaservermongodb/pbm.go:307-320",
    hint="take a full backup to the main storage after enabling PITR (or set oplogOnly: true)",
    bad=[with_backup(f"{S3}, pitr: {{enabled: true}}")],
    good=[
        with_backup(f"{S3}, pitr: {{enabled: true, oplogOnly: true}}"),
        with_backup(
            f"{S3}, pitr: {{enabled: true}}, tasks: [{{name: daily, enabled: true, "
            "schedule: '0 0 * * *', storageName: s3-main}]"
        ),
    ],
)
def pitr_needs_base(ctx: Context) -> Iterable[Violation]:
    pitr = mapping(backup_spec(ctx.spec).get("pitr"))
    if pitr.get("enabled") is not True or pitr.get("oplogOnly") is True or not ctx.storages:
        return
    if not any(t.get("enabled") is True and text(t.get("type")) != "external" for _, t in ctx.tasks):
        yield Violation(
            PITR + ("enabled",),
            "oplog slicing starts only after a full backup exists on the main "
            "storage, and no enabled task makes one: take an on-demand backup first",
        )


@rule(
    "PSB136",
    title="Starting deadline shorter than PBM's own start timeout",
    severity=Severity.WARNING,
    kind=kinds.CLUSTER,
    source="OP v1.23.0@b15af500 pkg/controller/perconaservermongodbbackup/backup.go:257-271; PBM v2.15.0@6f9fc3bf pbm/defs/defs.go "
    "WaitBackupStart (33 s)",
    hint="keep spec.backup.startingDeadlineSeconds above configuration.backupOptions.timeouts.startingStatus",
    bad=[with_backup(f"{S3}, startingDeadlineSeconds: 20")],
    good=[with_backup(f"{S3}, startingDeadlineSeconds: 300")],
)
def starting_deadline(ctx: Context) -> Iterable[Violation]:
    """The operator fails a backup still `starting` in PBM after this many seconds; PBM itself allows 33 s by default."""
    backup = backup_spec(ctx.spec)
    deadline = backup.get("startingDeadlineSeconds")
    pbm_timeout = (
        mapping(mapping(mapping(backup.get("configuration")).get("backupOptions")).get("timeouts")).get(
            "startingStatus"
        )
        or 33
    )
    if isinstance(deadline, int) and isinstance(pbm_timeout, int) and 0 < deadline < pbm_timeout:
        yield Violation(
            BACKUP + ("startingDeadlineSeconds",),
            f"startingDeadlineSeconds {deadline} is shorter than "
            f"PBM's start timeout ({pbm_timeout} s): backups that start slowly fail with \"backup did not "
            "progress from 'starting' state within the allowed timeout\"",
        )


@rule(
    "PSB137",
    title="Hook script ConfigMap without hook.sh",
    severity=Severity.WARNING,
    kind=kinds.CLUSTER,
    since=V1_22,
    source="OP v1.23.0@b15af500 build/pbm-entry.sh:16 (sources /opt/percona/pbm-hookscript/hook.sh)",
    hint='add a key "hook.sh" to the ConfigMap',
    bad=[
        Example(
            with_backup(f"{S3}, hookScript: {{configMapRef: {{name: hooks}}}}"),
            others=(
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: hooks, namespace: default}\n"
                "data: {script.sh: 'echo hi'}",
            ),
        )
    ],
    good=[
        Example(
            with_backup(f"{S3}, hookScript: {{configMapRef: {{name: hooks}}}}"),
            others=(
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: hooks, namespace: default}\n"
                "data: {hook.sh: 'echo hi'}",
            ),
        )
    ],
)
def hook_script_key(ctx: Context) -> Iterable[Violation]:
    name = mapping(mapping(backup_spec(ctx.spec).get("hookScript")).get("configMapRef")).get("name")
    found = ctx.get("ConfigMap", name)
    if isinstance(found, Found) and "hook.sh" not in mapping(found.obj.get("data")):
        yield Violation(
            BACKUP + ("hookScript", "configMapRef", "name"),
            f'ConfigMap "{name}" has no key hook.sh: the backup-agent runs without the hook',
        )
