"""The real-world corpus (tests/data/realworld, see its README for sources): manifests written outside this project,
linted as a user lints a directory of related manifests. Every finding must be one pinned in expected.yaml with its
reason; documents the operator accepts give no error. Below it, the regression tests of the false positives the
corpus showed."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import pytest
import yaml

from webhook.lint.run import LintRun
from webhook.policy import check
from webhook.policy.examples import example_object, lookup_for

CORPUS = Path(__file__).resolve().parents[1] / "data" / "realworld"
EXPECTED = CORPUS / "expected.yaml"


def _groups() -> dict[Path, list[str]]:
    """The corpus by directory: each directory is linted as one run (one e2e test, one docs page, one chart)."""
    groups: dict[Path, list[str]] = defaultdict(list)
    for path in sorted(CORPUS.rglob("*.y*ml")):
        if path != EXPECTED:
            groups[path.parent].append(str(path))
    return groups


def _actual() -> dict[str, list[str]]:
    found: dict[str, list[str]] = defaultdict(list)
    for files in _groups().values():
        for f in LintRun().lint_paths(files).findings:
            found[str(Path(f.file).relative_to(CORPUS))].append(f"{f.code} {f.severity.label} {f.finding.path_str}")
    return {k: sorted(v) for k, v in found.items()}


def _expected() -> dict[str, list[str]]:
    pinned = yaml.safe_load(EXPECTED.read_text())
    return {file: sorted(f for group in reasons.values() for f in group) for file, reasons in pinned.items()}


def test_corpus_findings_are_exactly_the_pinned_ones() -> None:
    actual, expected = _actual(), _expected()
    new = {f: sorted(set(v) - set(expected.get(f, []))) for f, v in actual.items()}
    gone = {f: sorted(set(v) - set(actual.get(f, []))) for f, v in expected.items()}
    assert not {f: v for f, v in new.items() if v}, "findings not pinned in expected.yaml (a false positive?)"
    assert not {f: v for f, v in gone.items() if v}, "pinned findings no longer reported"
    assert actual == expected  # counts too


def test_documents_the_operator_accepts_give_no_error() -> None:
    """The operator's own example cluster and the chart with its default values are accepted and run as meant: no
    finding at all. Errors are pinned only on e2e templates, placeholders and mistakes the reason names."""
    pinned = yaml.safe_load(EXPECTED.read_text())
    assert "operator/deploy/cr.yaml" not in pinned and "psmdb-db/rendered-default.yaml" not in pinned
    for file, reasons in pinned.items():
        for reason, findings in reasons.items():
            if any(" error " in f for f in findings):
                assert reason.startswith(
                    ("e2e template", "placeholder", "docs bug", "fragment", "deploy/cr.yaml", "true:")
                ), (file, reason)


def test_corpus_size_and_provenance() -> None:
    """Every file has its line in README.md (repository, path, commit, licence), and the corpus stays real-sized."""
    readme = (CORPUS / "README.md").read_text()
    listed = set(re.findall(r"^\| `([^`]+)` \|", readme, re.M))
    files = {str(p.relative_to(CORPUS)) for p in CORPUS.rglob("*.y*ml")} - {
        "expected.yaml",
        "psmdb-db/values-documented.yaml",
    }
    assert files == listed
    assert len(files) >= 300
    for row in re.findall(r"^\| `[^`]+` \|.*$", readme, re.M):
        assert re.search(r"\| `[0-9a-f]{12}` \| (Apache-2\.0|CC-BY-4\.0) \|$", row), row


# --- regression tests of the false positives the corpus showed ------------------------------------------------------

TARGET = """\
apiVersion: psmdb.percona.com/v1
kind: PerconaServerMongoDB
metadata: {name: target, namespace: default}
spec:
  crVersion: 1.23.0
  replsets:
  - name: rs0
    size: 3
    configuration: |
      replication:
        replSetName: replset0
  sharding:
    enabled: true
    configsvrReplSet:
      size: 3
      configuration: |
        replication:
          replSetName: csReplSet
  backup: {enabled: true, image: percona/percona-backup-mongodb:2.15.0,
           storages: {s3: {type: s3, s3: {bucket: b}}}}
"""


@pytest.mark.parametrize(
    "remap,fires",
    [
        ("{rs0: replset0, cfg: csReplSet}", False),  # custom names from `configuration` (e2e replset-remapping-sharded)
        ("{rs0: rs0, x: cfg}", False),  # the spec name, and "cfg" of a sharded cluster
        ("{rs0: rsX}", True),
    ],
)
def test_replset_remapping_knows_custom_and_config_server_names(remap: str, fires: bool) -> None:
    restore = f"spec: {{clusterName: target, backupName: b1, replsetRemapping: {remap}}}"
    findings = check(example_object(("PerconaServerMongoDBRestore",), restore), lookup=lookup_for((TARGET,)))
    assert any(f.code == "PSB516" for f in findings) is fires
