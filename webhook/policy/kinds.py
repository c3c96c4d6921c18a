"""The custom resources the rules understand: the operator's three kinds and this project's schedule kind."""

GROUP = "psmdb.percona.com"
CLUSTER = "PerconaServerMongoDB"
BACKUP = "PerconaServerMongoDBBackup"
RESTORE = "PerconaServerMongoDBRestore"
KINDS = (CLUSTER, BACKUP, RESTORE)  # the operator's kinds (the controller's informers watch these)

# The companion's own kind (issue 17): a CronJob-like schedule of operator Backups.
SCHEDULE_GROUP = "psmdb-backup-webhook.io"
SCHEDULE_VERSION = "v1alpha1"
SCHEDULE = "PerconaServerMongoDBBackupSchedule"
CHECKED_KINDS = (*KINDS, SCHEDULE)  # every kind the rule engine checks (lint, admission, lint --cluster)

PLURALS = {
    CLUSTER: "perconaservermongodbs",
    BACKUP: "perconaservermongodbbackups",
    RESTORE: "perconaservermongodbrestores",
    SCHEDULE: "perconaservermongodbbackupschedules",
}

# Other objects rules may look up. Cluster-scoped ones are asked for with namespace "".
SNAPSHOT_CLASS = "VolumeSnapshotClass"  # snapshot.storage.k8s.io/v1
CLUSTER_SCOPED = frozenset({"Namespace", SNAPSHOT_CLASS})

# The cluster CRD still serves a few deprecated versions beside v1 (OP v1.23.0@b15af500 deploy/crd.yaml,
# config/crd/patches/deprecated-1.*.json).
SERVED_API_VERSIONS = {
    CLUSTER: {f"{GROUP}/v1", f"{GROUP}/v1-10-0", f"{GROUP}/v1-11-0", f"{GROUP}/v1-12-0"},
    BACKUP: {f"{GROUP}/v1"},
    RESTORE: {f"{GROUP}/v1"},
    SCHEDULE: {f"{SCHEDULE_GROUP}/{SCHEDULE_VERSION}"},
}


def group_of(kind: str) -> str:
    return SCHEDULE_GROUP if kind == SCHEDULE else GROUP


def api_version(kind: str) -> str:
    """The version this project reads and writes a kind in."""
    return f"{SCHEDULE_GROUP}/{SCHEDULE_VERSION}" if kind == SCHEDULE else f"{GROUP}/v1"


def is_psmdb_object(obj: object) -> bool:
    """An object of a kind the rules check, in that kind's API group."""
    if not isinstance(obj, dict):
        return False
    kind = obj.get("kind")
    return kind in CHECKED_KINDS and str(obj.get("apiVersion", "")).startswith(group_of(str(kind)) + "/")
