"""`psmdb-backup lint` end to end in-process: paths, stdin, formats, exit codes, positions, disabling."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

from webhook.cli import main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def run(capsys, *argv: str, stdin: bytes | None = None) -> tuple[int, str, str]:
    if stdin is not None:
        sys.stdin = io.TextIOWrapper(io.BytesIO(stdin))
    try:
        code = main(list(argv))
    finally:
        sys.stdin = sys.__stdin__
    out, err = capsys.readouterr()
    return code, out, err


def test_bundled_good_examples_lint_clean(capsys) -> None:
    code, out, _ = run(capsys, "lint", "--fail-on", "warning", str(EXAMPLES / "good"))
    assert code == 0, out
    assert "0 errors, 0 warnings" in out


def test_bundled_bad_examples_fail_with_positions(capsys) -> None:
    code, out, _ = run(capsys, "lint", "-f", "json", str(EXAMPLES))
    assert code == 1
    report = json.loads(out)
    by_rule = {(Path(f["file"]).name, f["rule"]): f for f in report["findings"]}
    task = by_rule[("cluster.yaml", "PSB203")]
    assert (task["line"], task["column"]) == (35, 9)  # the storageName key of the task in bad/cluster.yaml
    assert task["path"] == "spec.backup.tasks[0].storageName"
    assert by_rule[("backup.yaml", "PSB404")]["message"].startswith(
        'storage "s3-eu" is not defined in cluster my-cluster'
    )
    assert report["summary"]["skipped"] == 3  # the Secrets of good/secrets.yaml


def test_task_referencing_undefined_storage_is_an_error_on_its_line(tmp_path, capsys) -> None:
    f = tmp_path / "cr.yaml"
    f.write_text(
        (EXAMPLES / "good" / "cluster.yaml").read_text().replace("storageName: azure-blob", "storageName: azure")
    )
    code, out, _ = run(capsys, "lint", "--color", "never", str(f))
    assert code == 1
    line = next(l for l in out.splitlines() if "PSB203" in l)
    assert line.startswith(f"{f}:67:9 error PSB203 spec.backup.tasks[1].storageName:")


def test_stdin_and_multi_document(capsys) -> None:
    text = (
        (EXAMPLES / "bad" / "backup.yaml").read_bytes() + b"\n---\n" + (EXAMPLES / "good" / "cluster.yaml").read_bytes()
    )
    code, out, _ = run(capsys, "lint", "-f", "json", "-", stdin=text)
    report = json.loads(out)
    assert code == 1 and report["summary"]["checked"] == 2
    assert {f["file"] for f in report["findings"]} == {"<stdin>"}


def test_invalid_yaml_is_a_finding_and_the_run_goes_on(tmp_path, capsys) -> None:
    (tmp_path / "a.yaml").write_text("spec: {backup: [\n")
    (tmp_path / "b.yaml").write_text((EXAMPLES / "bad" / "backup.yaml").read_text())
    code, out, _ = run(capsys, "lint", "-f", "json", str(tmp_path))
    rules = sorted(f["rule"] for f in json.loads(out)["findings"])
    assert code == 1 and "PSB000" in rules and len(rules) == 1 + 0  # b.yaml alone has no cluster: silent
    syntax = json.loads(out)["findings"][0]
    assert syntax["line"] == 2


def test_missing_path_is_a_usage_error(capsys) -> None:
    code, out, _ = run(capsys, "lint", "/no/such/file.yaml")
    assert code == 2


def test_fail_on_warning_and_disable(tmp_path, capsys) -> None:
    f = tmp_path / "w.yaml"
    f.write_text(
        "apiVersion: psmdb.percona.com/v1\nkind: PerconaServerMongoDBBackup\nmetadata: {name: b}\n"
        "spec: {clusterName: c, storageName: s, typo: 1}\n"
    )
    assert run(capsys, "lint", str(f))[0] == 0
    assert run(capsys, "lint", "--fail-on", "warning", str(f))[0] == 1
    assert run(capsys, "lint", "--fail-on", "warning", "--disable", "psb002", str(f))[0] == 0
    assert run(capsys, "lint", "--disable", "NOPE1", str(f))[0] == 2


def test_disable_annotation_on_the_object(tmp_path, capsys) -> None:
    f = tmp_path / "b.yaml"
    f.write_text(
        "apiVersion: psmdb.percona.com/v1\nkind: PerconaServerMongoDBBackup\nmetadata:\n  name: b\n"
        "  annotations: {psmdb-backup-webhook.io/disable-rules: 'PSB403'}\nspec: {clusterName: c}\n"
    )
    assert run(capsys, "lint", str(f))[0] == 0


def test_other_kinds_are_skipped_and_counted(tmp_path, capsys) -> None:
    f = tmp_path / "cm.yaml"
    f.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n---\n---\n- a list\n")
    code, out, _ = run(capsys, "lint", "-f", "json", str(f))
    assert code == 0 and json.loads(out)["summary"] | {} == json.loads(out)["summary"]
    assert json.loads(out)["summary"]["skipped"] == 2


def test_list_rules_and_explain(capsys) -> None:
    code, out, _ = run(capsys, "lint", "--list-rules")
    assert code == 0 and "PSB203" in out and "PSB000" in out
    code, out, _ = run(capsys, "lint", "--explain", "psb203")
    assert code == 0 and "bad example:" in out and "OP v1.23.0@b15af500 pkg/controller/" in out
    assert run(capsys, "lint", "--explain", "PSB999")[0] == 2


@pytest.mark.parametrize("fmt", ["text", "json", "sarif", "junit", "github"])
def test_every_format_renders_the_bundled_examples(fmt, capsys) -> None:
    code, out, _ = run(capsys, "lint", "-f", fmt, str(EXAMPLES))
    assert code == 1 and (out or fmt == "github")


def test_output_file(tmp_path, capsys) -> None:
    target = tmp_path / "out.sarif"
    code, out, _ = run(capsys, "lint", "-f", "sarif", "-o", str(target), str(EXAMPLES / "bad"))
    assert code == 1 and out == ""
    assert json.loads(target.read_text())["version"] == "2.1.0"


def test_version(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.startswith("psmdb-backup ")
