"""The three custom resources the rules understand."""

GROUP = "psmdb.percona.com"
CLUSTER = "PerconaServerMongoDB"
BACKUP = "PerconaServerMongoDBBackup"
RESTORE = "PerconaServerMongoDBRestore"
KINDS = (CLUSTER, BACKUP, RESTORE)

# Other objects rules may look up. Cluster-scoped ones are asked for with namespace "".
SNAPSHOT_CLASS = "VolumeSnapshotClass"  # snapshot.storage.k8s.io/v1
CLUSTER_SCOPED = frozenset({"Namespace", SNAPSHOT_CLASS})

# The cluster CRD still serves a few deprecated versions beside v1 (facts, "Sources").
SERVED_API_VERSIONS = {
    CLUSTER: {f"{GROUP}/v1", f"{GROUP}/v1-10-0", f"{GROUP}/v1-11-0", f"{GROUP}/v1-12-0"},
    BACKUP: {f"{GROUP}/v1"},
    RESTORE: {f"{GROUP}/v1"},
}


def is_psmdb_object(obj: object) -> bool:
    return isinstance(obj, dict) and obj.get("kind") in KINDS and str(obj.get("apiVersion", "")).startswith(GROUP + "/")
