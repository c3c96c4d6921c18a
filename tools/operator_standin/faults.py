"""The stock operator's known faults, reproduced on demand (`--fault NAME`, repeatable) so that the companion's
watchdog is tested against each. Without a flag the stand-in behaves as the operator should. Each entry says where
the operator does it (OP = OP v1.23.0@b15af500, the operator's source)."""

from __future__ import annotations

LOSE_SLOTS = "lose-slots-on-restart"
LEAVE_LEASE = "leave-lease-of-deleted-backup"
CANCELED_RUNNING = "canceled-left-running"
RESTORE_RESETS = "restore-resets-running-backup"

FAULTS = {
    # the task cron is robfig's in-memory registry (OP pkg/controller/perconaservermongodb/
    # psmdb_controller.go:191-219); an entry added at start fires at its next slot, so slots that passed while the
    # operator was down are never run. Without the fault the stand-in runs the latest missed slot once on start.
    LOSE_SLOTS: "the task cron loses the slots that pass while the stand-in is down",
    # OP pkg/naming/backup.go:16-22, pkg/k8s/lease.go: the Lease is acquired first and the release-lock finalizer added
    # after; the Lease is never stolen and has no duration. A Backup deleted without that finalizer (deleted in between,
    # or the finalizer patch failed) leaves its Lease for good. With the fault the finalizer is never added and the lock
    # is never stolen.
    LEAVE_LEASE: "a Backup deleted while it holds the cluster's lock Lease leaves the Lease behind",
    # PBM `canceled` falls to the default branch of the status switch (OP pkg/controller/
    # perconaservermongodbbackup/backup.go:271-272) and maps to `running`, forever.
    CANCELED_RUNNING: "a backup canceled in PBM stays `running` on the Backup",
    # HasActiveJobs runs in every non-terminal state (OP pkg/controller/
    # perconaservermongodbbackup/psmdb_backup_controller.go:263-277): a requested/running Backup goes back to
    # `waiting` while a Restore of the cluster is new, requested or running, and later starts a second PBM backup.
    RESTORE_RESETS: "a Restore of the cluster sends a running Backup back to `waiting` (then a second PBM backup)",
}
