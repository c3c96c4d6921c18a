"""`make demo` runs end to end: every example accepted or rejected by the real API server (the bad ones with the
webhook's findings), the sidecar injected, the tasks imported into schedules, the companion's scheduled Backup run by
the operator stand-in into S3, and `psmdb-backup status`."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def documents(folder: str) -> int:
    return sum(1 for p in (ROOT / "examples" / folder).glob("*.yaml") for d in yaml.safe_load_all(p.read_text()) if d)


@pytest.mark.e2e
def test_demo_runs_and_shows_rejections_acceptances_the_sidecar_the_schedules_and_status() -> None:
    result = subprocess.run(
        [sys.executable, "tools/demo.py", "--no-wait"], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    out = result.stdout
    assert result.returncode == 0, out[-3000:] + result.stderr[-3000:]
    # every example as written: all good ones accepted, all bad ones rejected with the webhook's own findings
    good, bad = documents("good"), documents("bad")
    assert (
        f"examples/good: {good} of {good} accepted; examples/bad: {bad} of {bad} rejected, each with the webhook's "
        "findings" in out
    )
    assert "accepted examples/good/cluster.yaml: PerconaServerMongoDB my-cluster\n" in out  # not rewritten
    assert "accepted examples/good/schedule.yaml" in out and "rejected examples/bad/schedule.yaml" in out
    assert "rejected examples/bad/backup.yaml" in out and 'PSB404 spec.storageName: storage "s3-eu"' in out
    assert "rejected examples/bad/cluster.yaml" in out
    assert "the webhook's own findings:\n    PerconaServerMongoDB psmdb/broken-cluster is rejected" in out
    assert re.search(r"^    - PSB104 spec\.backup\.storages: ", out, re.M)
    assert "pod my-cluster-rs0-0 containers: ['mongod', 'backup-agent']" in out
    # step 5: the tasks became schedules, and the companion's schedule made a Backup the stand-in ran into S3
    assert "disabled spec.backup.tasks[0] of cluster my-cluster (now schedule daily-s3, resumed)" in out
    assert re.search(r"the companion's schedule demo-every-20s created demo-every-20s-\d{14}-[0-9a-f]{6}; ", out)
    assert re.search(r"objects in s3://psmdb-backups/\S+\*:\n  \S+\.pbm\.json", out)
    # step 6: psmdb-backup status
    assert "Cluster psmdb/my-cluster  (ready, backups enabled)" in out
    assert re.search(r"^    demo-every-20s +schedule +@every 20s +s3-us-west +yes ", out, re.M)
    assert re.search(r"^    before-upgrade +logical +ready +azure-blob ", out, re.M)  # the good Backup, via Azurite
    # step 7: the stand-in's operator fault (a deleted Backup leaves its lock Lease) found by the companion's watchdog
    fault = out.split("== 7.", 1)[1]
    assert "the companion's watchdog found it: Event Warning StaleLock on Lease psmdb-my-cluster-backup-lock" in fault
    assert "names demo-interrupted (holder demo-interrupted-" in fault and "which no longer exists" in fault
    assert re.search(
        r"^  Lock: psmdb-my-cluster-backup-lock held by demo-interrupted-\S+ \(no such object\)", fault, re.M
    )
    assert re.search(r"^    ERROR +WD006 StaleLock: ", fault, re.M)
