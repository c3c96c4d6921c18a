"""What `lint` reads: streams with broken documents, List documents, Helm templates, kustomize patches, skipped
directories, and what it does when nothing is found."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from webhook.cli import main
from webhook.lint.loader import Document, LoadError, parse, position
from webhook.policy.nulls import prune_nulls

STREAM = """\
kind: A
---
kind: B
bad: "unclosed
---
kind: C
flow: [1
---
# a comment first
kind: D
nested:
  field: 1
---
kind: E
value: .inf
---
kind: F
"""


def test_every_document_after_a_broken_one_is_read_with_its_own_lines() -> None:
    items = list(parse("s.yaml", STREAM))
    kinds = [i.data["kind"] for i in items if isinstance(i, Document)]
    errors = [(i.line, i.message) for i in items if isinstance(i, LoadError)]
    assert kinds == ["A", "D", "F"]
    assert [line for line, _ in errors] == [5, 8, 15]  # each broken document reported once, at its own line
    doc_d = next(i for i in items if isinstance(i, Document) and i.data["kind"] == "D")
    assert position(doc_d.node, ("nested", "field"), doc_d.line_offset) == (12, 3)
    assert [i.index for i in items if isinstance(i, Document)] == [0, 1, 2]


# --- through the CLI ---------------------------------------------------------------------------------------------

CLUSTER = """\
apiVersion: psmdb.percona.com/v1
kind: PerconaServerMongoDB
metadata: {name: c1, namespace: db}
spec:
  crVersion: 1.23.0
  image: percona/percona-server-mongodb:8.0.12-4
  replsets: [{name: rs0, size: 3}]
  backup:
    enabled: true
    image: percona/percona-backup-mongodb:2.15.0
    storages:
    tasks:
"""
RESTORE = """\
apiVersion: psmdb.percona.com/v1
kind: PerconaServerMongoDBRestore
metadata: {name: r1, namespace: db}
spec:
  clusterName: c1
  backupName: 2024-03-07T18:00:21Z
"""


def lint(capsys, *argv: str) -> tuple[int, dict, str]:
    code = main(["lint", "-f", "json", *argv])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if out.strip() else {}), err


def codes(report: dict) -> list[tuple[str, str]]:
    return [(f["rule"], f.get("path", "")) for f in report["findings"]]


def test_empty_storages_and_tasks_are_pruned_nulls_and_timestamps_strings(tmp_path, capsys) -> None:
    (tmp_path / "c.yaml").write_text(CLUSTER + "---\n" + RESTORE)
    code, report, _ = lint(capsys, str(tmp_path / "c.yaml"))
    assert report["summary"]["checked"] == 2
    messages = " ".join(f["message"] for f in report["findings"])
    assert "mapping" not in messages and "must be a list" not in messages and "datetime" not in messages
    assert not [f for f in report["findings"] if f["severity"] == "error"], report["findings"]


def test_prune_nulls_keeps_nullable_fields_and_list_items() -> None:
    schema = {"properties": {"a": {"type": ["string", "null"]}, "b": {"nullable": True}, "c": {"type": "object"}}}
    obj = {"a": None, "b": None, "c": None, "d": {"e": None, "f": [None, {"g": None}]}}
    assert prune_nulls(obj, schema) == {"a": None, "b": None, "d": {"f": [None, {}]}}


def test_list_documents_are_linted_item_by_item_with_positions(tmp_path, capsys) -> None:
    cluster = CLUSTER.replace("enabled: true", "enabled: maybe")
    items = "".join("  - " + "\n    ".join(doc.splitlines()) + "\n" for doc in (cluster, RESTORE))
    f = tmp_path / "list.yaml"
    f.write_text("apiVersion: v1\nkind: List\nitems:\n" + items)
    code, report, _ = lint(capsys, str(f))
    assert report["summary"]["checked"] == 2
    wrong = [(x["line"], x["column"]) for x in report["findings"] if x["rule"] == "PSB001"]
    assert wrong == [(12, 9)]  # spec.backup.enabled of the first item, inside the List


def test_typed_lists_are_linted_too(tmp_path, capsys) -> None:
    f = tmp_path / "typed.yaml"
    f.write_text(
        "apiVersion: psmdb.percona.com/v1\nkind: PerconaServerMongoDBRestoreList\nitems:\n  - "
        + "\n    ".join(RESTORE.splitlines())
        + "\n"
    )
    _, report, _ = lint(capsys, str(f))
    assert report["summary"]["checked"] == 1


def test_no_files_found_is_exit_2_with_a_message(tmp_path, capsys) -> None:
    (tmp_path / "empty").mkdir()
    code, _, _ = lint(capsys, str(tmp_path / "empty"))
    assert code == 2
    code, report, _ = lint(capsys, str(tmp_path / "empty"))
    assert "no .yaml, .yml, .json files found" in report["findings"][0]["message"]
    code, report, _ = lint(capsys, str(tmp_path / "typo*.yaml"))
    assert code == 2 and "no such file" in report["findings"][0]["message"]


def test_node_modules_and_vendor_are_skipped(tmp_path, capsys) -> None:
    for d in ("node_modules/pkg", "vendor/x", "deploy"):
        (tmp_path / d).mkdir(parents=True)
    for d in ("node_modules/pkg", "vendor/x"):
        (tmp_path / d / "bad.yaml").write_text("a: [")
    (tmp_path / "deploy" / "r.yaml").write_text(RESTORE)
    code, report, _ = lint(capsys, str(tmp_path))
    assert report["summary"]["files"] == 1 and code == 0


def test_helm_templates_get_a_hint(tmp_path, capsys) -> None:
    f = tmp_path / "t.yaml"
    f.write_text('kind: PerconaServerMongoDB\nmetadata:\n  name: {{ .Release.Name }}\n  {{- include "x" . }}\n')
    code, report, _ = lint(capsys, str(f))
    assert code == 1 and "helm template" in report["findings"][0]["message"]


def test_kustomize_patches_are_skipped_with_an_info(tmp_path, capsys) -> None:
    (tmp_path / "kustomization.yaml").write_text(
        "resources: [r.yaml]\npatches:\n  - path: p1.yaml\npatchesStrategicMerge:\n  - p2.yaml\n"
    )
    (tmp_path / "r.yaml").write_text(RESTORE)
    for name in ("p1.yaml", "p2.yaml"):
        (tmp_path / name).write_text("kind: PerconaServerMongoDBRestore\nspec:\n  bogus: 1\n")
    code, report, _ = lint(capsys, str(tmp_path))
    skipped = [f for f in report["findings"] if f["severity"] == "info" and "kustomize patch" in f["message"]]
    assert sorted(Path(f["file"]).name for f in skipped) == ["p1.yaml", "p2.yaml"]
    assert code == 0 and report["summary"]["checked"] == 1


@pytest.mark.parametrize(
    "stage",
    ["webhook.lint.run.check_in_run", "webhook.lint.formats.render", "webhook.lint.catalog.all_rules"],
    ids=["checking", "rendering-the-report", "loading-the-rules"],
)
def test_a_crash_is_exit_2_with_a_short_message(tmp_path, capsys, monkeypatch, stage) -> None:
    """Wherever lint crashes, CI sees 2 (internal error), not Python's 1 ("findings found")."""
    (tmp_path / "r.yaml").write_text(RESTORE)

    def boom(*_a, **_k):
        raise KeyError("spec")

    monkeypatch.setattr(stage, boom)
    code = main(["lint", str(tmp_path)])
    _, err = capsys.readouterr()
    assert code == 2 and err.startswith("psmdb-backup lint: internal error: KeyError") and "Traceback" not in err


def test_an_unknown_option_is_exit_2(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["lint", "--no-such-option", "."])
    assert exc.value.code == 2 and "unrecognized arguments" in capsys.readouterr().err


def test_exit_codes_clean_and_findings(tmp_path, capsys) -> None:
    (tmp_path / "r.yaml").write_text(RESTORE)
    assert lint(capsys, str(tmp_path))[0] == 0
    (tmp_path / "r.yaml").write_text(RESTORE.replace("clusterName: c1", "clusterName: 12"))
    assert lint(capsys, str(tmp_path))[0] == 1


def test_lint_k_lints_what_kubectl_kustomize_renders(tmp_path, capsys) -> None:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not on PATH: `lint -k` runs `kubectl kustomize`")
    (tmp_path / "kustomization.yaml").write_text("namespace: db\nresources: [r.yaml]\npatches:\n  - path: p.yaml\n")
    (tmp_path / "r.yaml").write_text(RESTORE.replace("namespace: db", "namespace: x"))
    (tmp_path / "p.yaml").write_text(
        "apiVersion: psmdb.percona.com/v1\nkind: PerconaServerMongoDBRestore\nmetadata: {name: r1, namespace: x}\n"
        "spec:\n  clusterName: 42\n"
    )
    code, report, _ = lint(capsys, "-k", str(tmp_path))
    assert report["summary"]["checked"] == 1
    (bad,) = [f for f in report["findings"] if f["rule"] == "PSB001"]  # the patched clusterName: 42
    assert bad["file"] == f"kustomize:{tmp_path}" and bad["path"] == "spec.clusterName" and code == 1
    code, _, err = lint(capsys, "-k", str(tmp_path / "missing"))
    assert code == 2 and "kubectl kustomize" in err
    assert lint(capsys, "-k", str(tmp_path), str(tmp_path))[0] == 2
