"""A simulator of the `pbm` CLI (Percona Backup for MongoDB 2.15.0) for the controller's tests.

The operator stand-in drives PBM only through `pbm ... -o json` run in the `backup-agent` container
(tools/operator_standin/pbm.py; the companion only reads, webhook/controller/pbmread.py). In tests, kwok runs those exec'd commands as local processes, looked up on the kwok
process's PATH: put `tools/pbm_sim/bin/` (SIM_DIR) first on it (`ControlPlane(extra_path=[...])`) and `pbm` is this simulator.
Unit tests run it as a plain subprocess (webhook/controller/kubeexec.py `LocalExec`).

How it runs
    `tools/pbm_sim/bin/pbm` is a POSIX sh wrapper: it execs `python -m pbm_sim "$@"` with `<repo>/tools` and `<repo>`
    on PYTHONPATH, using `$PSMDB_PBM_SIM_PYTHON`, else `<repo>/.venv/bin/python`, else `python3`. A venv Python is
    needed because the simulator writes real objects with boto3 (s3, minio) or azure-storage-blob (azure); both
    are imported only when a storage of that type is touched.

What it follows exactly (PBM v2.15.0@6f9fc3bf cmd/pbm/*.go: main.go, backup.go:64-74,383-427, restore.go:227-263,720-746, list.go:35-45)
    * commands: backup, backup-finish, cancel-backup, describe-backup, describe-restore, list [--restore],
      restore, delete-backup, config (--file/--set/--list/KEY/--force-resync), profile list/show/add/remove/sync,
      status [-s SECTION], version; cobra-style flags (`--f v`, `--f=v`, `-o json`, flags anywhere).
    * JSON shapes and key order of `-o json`, with Go's omitempty rules: e.g. describe-backup omits
      `profile`/`storage_name` for the main storage; `list` gives `"snapshots": null` when empty.
    * the error path: `Error: <msg>` on STDERR, exit status 1, nothing on stdout (cobra), with PBM's texts:
      `get backup meta: get backup meta: not found`, `get restore meta: not found`,
      `another operation in progress, backup/<opid> [rs0/<node>]`, `no config set. Set config with <pbm config>`,
      `backup '<x>' not found`, `backup '<x>' didn't finish successfully`, `no tty` (restore/delete without
      --yes), `backup cannot be deleted: backup is in progress`, ...; a missing PBM_MONGODB_URI fails like PBM.
    * names: backups are named with the UTC second (RFC3339), restores with RFC3339Nano; one operation at a time.
    * `pbm backup` returns once the backup is `running` (or fails with `wait for backup status: <err>` when it
      fails while starting), like the real CLI; `pbm restore -o json` returns at once (`{"name","snapshot"}`).
    * PBM's describe-backup quirk: a logical backup that failed during the dump (size 0, no metadata.json on the
      storage) cannot be described: `Error: get snapshot size: missed file`; `pbm status -s backups` still lists it.

What it writes to the storage (PBM's layout, PBM:pbm/defs/defs.go, pbm/backup/logical.go)
    `.pbm.init` (on config/profile set), `<name>/<rs>/<db>.<coll><ext>` and `<name>/<rs>/meta.pbm` when the
    backup starts running, `<name>/<rs>/metadata.json` and `<name>/<rs>/oplog/<chunk><ext>` at dumpDone,
    `<name>.pbm.json` (BackupMeta JSON) at done; physical/incremental: `<name>/<rs>/WiredTiger<ext>`, ...
    `delete-backup` removes `<name>/...` and `<name>.pbm.json`. Storage types: s3, minio (both through boto3),
    azure (azure-storage-blob, e.g. Azurite), filesystem, blackhole; gcs/oss/oci make the backup fail with a clear
    `not simulated` error. gzip/pgzip data is real gzip; other compressions store the raw bytes under PBM's suffix.
    A config whose storage changed triggers a resync: backups found as `*.pbm.json` on the new storage appear in
    `list`/`describe-backup` (so a second simulated cluster can restore a first one's backup).

What it does not simulate
    MongoDB itself (no data is dumped or restored), PITR chunk objects (the PITR timeline is bookkeeping only: it
    runs while `pitr.enabled` and a base snapshot exists, from that snapshot's last write), sharded-cluster
    balancer handling, physical-restore restarts (describe-restore `-c` is accepted and ignored), `logs`,
    `diagnostic`, `oplog-replay`, `delete-pitr`, `cleanup`.

Environment (set them in the ClusterExec/Exec `envs` under kwok, or in the subprocess env)
    PBM_SIM_STATE      directory of the simulated state (required except for `version`).
    PBM_SIM_CLUSTER    optional `<namespace>/<cluster>`: state lives in `$PBM_SIM_STATE/<namespace>/<cluster>`, and
                       member hosts are named like the operator's pods (`<cluster>-rs0-0.<cluster>-rs0.<ns>.svc...`).
                       kwok passes no pod identity to exec'd commands, so give each pod an `Exec` with its cluster
                       (see `kwok_exec_docs`).
    PBM_MONGODB_URI    required like the real CLI (any value; the sidecar sets it in real pods).
    PBM_SIM_REPLSETS   comma list, default `rs0` (a replset named `cfg` is flagged configsvr).
    PBM_SIM_MEMBERS    members per replset, default 3.
    PBM_SIM_ADVANCE    `time` (default): statuses follow the wall clock; `calls`: each status call (describe-backup,
                       describe-restore, list, status) shows the next status: starting -> running -> dumpDone -> done.
    PBM_SIM_STARTING_SECONDS (0.5), PBM_SIM_BACKUP_SECONDS (2), PBM_SIM_RESTORE_SECONDS (2): time mode durations.
    PBM_SIM_BACKUP_WAIT_SECONDS (60): how long `pbm backup` waits for `running` before failing.
    PBM_SIM_FAIL       comma list of fail points, also read from the file `<state dir>/fail` (one per line) so a
                       test can change it while kwok runs: `backup-start` (fails while starting; `pbm backup` itself
                       errors in time mode), `backup-dump` (fails during the dump: the describe-backup quirk),
                       `backup` (fails after the dump), `restore`, `delete`, `config`, `agents` (status shows
                       agents not ok). Fail points are read when an operation starts.
    PBM_SIM_FAIL_MESSAGE (or the file `<state dir>/fail-message`): the error text of a failure.
    PBM_SIM_AZURE_ENDPOINT: the account URL of an Azure storage without endpointUrl (default Azure's own,
                       `https://<account>.blob.core.windows.net`); e.g. Azurite's. S3 storages without endpointUrl
                       follow boto3's AWS_ENDPOINT_URL_S3 the same way.
    PBM_SIM_COLLECTIONS  namespaces in the simulated dump, default `app.items,app.users`.
    PBM_SIM_MONGODB_VERSION (8.0.12-4), PBM_SIM_FCV (8.0).
    Every invocation appends `{"ts","argv","exit","error"}` to `<state dir>/calls.log`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

PBM_VERSION = "2.15.0"

SIM_DIR = Path(__file__).resolve().parent / "bin"  # the `pbm` wrapper: put this on kwok's PATH


def kwok_exec_docs(
    pods: Iterable[tuple[str, str, str]],
    *,
    state_root: str | os.PathLike[str],
    work_dir: str | os.PathLike[str],
    extra_env: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """kwok `Exec` objects (for `ControlPlane(kwok_extra_docs=...)`) that tell the simulator which cluster a pod
    belongs to: one per `(namespace, pod, cluster)`. An `Exec` for a pod replaces the `ClusterExec` for it, so it
    carries the whole environment (HOME, PBM_MONGODB_URI, PBM_SIM_*)."""
    docs = []
    for namespace, pod, cluster in pods:
        envs = {
            "HOME": os.environ.get("HOME", "/"),
            "PBM_MONGODB_URI": "mongodb://pbm-sim@localhost:27017",
            "PBM_SIM_STATE": str(state_root),
            "PBM_SIM_CLUSTER": f"{namespace}/{cluster}",
            **dict(extra_env or {}),
        }
        docs.append(
            {
                "apiVersion": "kwok.x-k8s.io/v1alpha1",
                "kind": "Exec",
                "metadata": {"name": pod, "namespace": namespace},
                "spec": {
                    "execs": [
                        {
                            "local": {
                                "workDir": str(work_dir),
                                "envs": [{"name": k, "value": v} for k, v in envs.items()],
                            }
                        }
                    ]
                },
            }
        )
    return docs
