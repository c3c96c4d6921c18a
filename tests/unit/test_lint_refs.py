"""Cross-object references in a lint run: the nearest same-named object counts (same file, same directory, rest of
the run); equally near candidates must all give a finding for it to stand; findings name the file used."""

from __future__ import annotations

import json
from pathlib import Path

from webhook.cli import main

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "good"
CLUSTER = (EXAMPLES / "cluster.yaml").read_text()
BACKUP = (EXAMPLES / "backup.yaml").read_text()
OTHER_CLUSTER = CLUSTER.replace("azure-blob", "azure-elsewhere")  # same name, no storage azure-blob


def backup_findings(capsys, root: Path, backup: Path) -> list[dict]:
    main(["lint", "-f", "json", str(root)])
    report = json.loads(capsys.readouterr().out)
    return [f for f in report["findings"] if f["file"] == str(backup) and f["rule"] == "PSB404"]


def test_the_cluster_of_the_same_directory_wins_over_an_unrelated_one(tmp_path, capsys) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "cluster.yaml").write_text(OTHER_CLUSTER)  # read first
    (tmp_path / "b" / "cluster.yaml").write_text(CLUSTER)
    (tmp_path / "b" / "backup.yaml").write_text(BACKUP)
    assert backup_findings(capsys, tmp_path, tmp_path / "b" / "backup.yaml") == []


def test_the_cluster_of_the_same_file_wins_over_the_directory(tmp_path, capsys) -> None:
    (tmp_path / "cluster.yaml").write_text(CLUSTER)
    (tmp_path / "backup.yaml").write_text(OTHER_CLUSTER + "\n---\n" + BACKUP)
    (found,) = backup_findings(capsys, tmp_path, tmp_path / "backup.yaml")
    assert "checked against" not in found["message"]  # the cluster used is in the Backup's own file


def test_equally_near_candidates_must_all_fail_and_are_named(tmp_path, capsys) -> None:
    (tmp_path / "c1.yaml").write_text(CLUSTER)
    (tmp_path / "c2.yaml").write_text(OTHER_CLUSTER)
    (tmp_path / "backup.yaml").write_text(BACKUP)
    assert backup_findings(capsys, tmp_path, tmp_path / "backup.yaml") == []  # fine against c1.yaml
    (tmp_path / "c1.yaml").write_text(OTHER_CLUSTER.replace("s3-us-west", "s3-other"))
    (found,) = backup_findings(capsys, tmp_path, tmp_path / "backup.yaml")
    assert f"checked against {tmp_path / 'c1.yaml'}, {tmp_path / 'c2.yaml'}" in found["message"]


def test_a_finding_from_another_directory_names_its_file(tmp_path, capsys) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "cluster.yaml").write_text(OTHER_CLUSTER)
    (tmp_path / "b" / "backup.yaml").write_text(BACKUP)
    (found,) = backup_findings(capsys, tmp_path, tmp_path / "b" / "backup.yaml")
    assert found["message"].endswith(f"(checked against {tmp_path / 'a' / 'cluster.yaml'})")


RESTORE = """\
apiVersion: psmdb.percona.com/v1
kind: PerconaServerMongoDBRestore
metadata: {name: r1, namespace: %s}
spec: {clusterName: my-cluster, backupName: before-upgrade}
"""


def test_a_restore_naming_a_backup_of_another_namespace_is_its_own_finding(tmp_path, capsys) -> None:
    (tmp_path / "backup.yaml").write_text(BACKUP)  # namespace psmdb
    (tmp_path / "restore.yaml").write_text(RESTORE % "other")
    main(["lint", "-f", "json", str(tmp_path)])
    report = json.loads(capsys.readouterr().out)
    (found,) = [f for f in report["findings"] if f["rule"] == "PSB008"]
    assert found["severity"] == "warning" and found["path"] == "spec.backupName"
    assert f"in namespace psmdb ({tmp_path / 'backup.yaml'})" in found["message"]
    (tmp_path / "restore.yaml").write_text(RESTORE % "psmdb")
    main(["lint", "-f", "json", str(tmp_path)])
    assert not [f for f in json.loads(capsys.readouterr().out)["findings"] if f["rule"] == "PSB008"]


def test_objects_read_after_a_reference_count_as_if_read_first(tmp_path, capsys) -> None:
    """The run is streamed, so a Backup can be checked before its cluster is read: it is checked again once the
    nearer cluster is known, and its findings keep their place in the report (input order)."""
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "1-backup.yaml").write_text(BACKUP)  # read first: no cluster known yet
    (tmp_path / "a" / "2-cluster.yaml").write_text(OTHER_CLUSTER.replace("psmdb-backups", "b: [x"))  # no azure-blob
    (tmp_path / "a" / "3-cluster.yaml").write_text(OTHER_CLUSTER)  # the same cluster again, equally near
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "cluster.yaml").write_text(CLUSTER)  # farther away: never the one used
    main(["lint", "-f", "json", str(tmp_path)])
    findings = json.loads(capsys.readouterr().out)["findings"]
    files = [Path(f["file"]).relative_to(tmp_path).as_posix() for f in findings]
    assert files == sorted(files, key=lambda f: (f != "a/2-cluster.yaml", f))  # syntax error first, then input order
    (found,) = [f for f in findings if f["rule"] == "PSB404"]
    assert found["file"] == str(tmp_path / "a" / "1-backup.yaml")
    assert found["message"].endswith(f"(checked against {tmp_path / 'a' / '3-cluster.yaml'})")


def test_streaming_keeps_facts_not_documents(tmp_path) -> None:
    """What the run keeps of an object for the references of others: no node tree, no Secret values."""
    from webhook.lint.loader import parse
    from webhook.lint.refs import Fact

    (doc,) = parse("s.yaml", "kind: Secret\nmetadata: {name: s}\nstringData: {AWS_ACCESS_KEY_ID: secret-value}\n")
    fact = Fact.of(7, doc)
    assert fact is not None and fact.ref == ("Secret", "default", "s") and fact.seq == 7
    assert fact.obj == {"kind": "Secret", "metadata": {"name": "s"}, "stringData": {"AWS_ACCESS_KEY_ID": ""}}
    assert b"secret-value" not in bytes(fact.blob)  # type: ignore[arg-type]


def test_a_cluster_checked_before_its_secret_is_read_is_checked_again(tmp_path, capsys) -> None:
    """Clusters are checked as they are read; a Secret read later that changes a finding gets it checked again
    from its kept values, the finding placed as a first check would place it."""
    secrets = (EXAMPLES / "secrets.yaml").read_text().replace(", AWS_SECRET_ACCESS_KEY: REPLACE_ME", "")
    (tmp_path / "a-cluster.yaml").write_text(CLUSTER)
    (tmp_path / "b-secrets.yaml").write_text(secrets)
    main(["lint", "-f", "json", str(tmp_path)])
    findings = json.loads(capsys.readouterr().out)["findings"]
    found = [f for f in findings if f["rule"] == "PSB121"]  # the s3 and the minio storage use these keys
    assert len(found) == 2 and all(f["file"] == str(tmp_path / "a-cluster.yaml") for f in found)
    assert all("has no AWS_SECRET_ACCESS_KEY" in f["message"] for f in found)
    (tmp_path / "0-secrets.yaml").write_text(secrets)  # read first: the same findings, the same places
    (tmp_path / "b-secrets.yaml").unlink()
    main(["lint", "-f", "json", str(tmp_path)])
    again = [f for f in json.loads(capsys.readouterr().out)["findings"] if f["rule"] == "PSB121"]
    assert [(f["line"], f["column"]) for f in again] == [(f["line"], f["column"]) for f in found]
