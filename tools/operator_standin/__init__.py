"""The operator stand-in: plays the stock Percona operator's backup side in tests, the demo and benches (never part
of the product; it may import `webhook`, never the reverse).

It runs the operator's Backup and Restore state machines over PBM (the simulator in tools/pbm_sim under kwok), the
per-cluster lock Lease `psmdb-<cluster>-backup-lock`, the PBM configuration apply, and the operator's in-memory task
cron with its retention. Run: `python -m tools.operator_standin --kubeconfig K [--namespace NS ...]`.
"""
