"""`make demo` runs end to end: examples rejected and accepted by the real API server, the sidecar injected, and the
operator stand-in's scheduled backup in S3."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.e2e
def test_demo_runs_and_shows_rejections_acceptances_and_the_sidecar() -> None:
    result = subprocess.run(
        [sys.executable, "tools/demo.py", "--no-wait"], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    out = result.stdout
    assert result.returncode == 0, out[-3000:] + result.stderr[-3000:]
    assert "accepted examples/good/cluster.yaml" in out
    assert "rejected examples/bad/backup.yaml" in out and 'PSB404 spec.storageName: storage "s3-eu"' in out
    assert "rejected examples/bad/cluster.yaml" in out and "PSB104" in out
    assert "pod my-cluster-rs0-0 containers: ['mongod', 'backup-agent']" in out
    # step 5: the operator stand-in's cron made the task's Backup and ran it through PBM into S3
    assert re.search(r"the operator stand-in's cron created cron-my-cluster-\d{14}-[a-z0-9]{5} and ran it", out)
    assert re.search(r"objects in s3://psmdb-backups/\S+\*:\n  \S+", out)
