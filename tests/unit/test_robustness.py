"""Bad input never crashes the loader or the engine (hypothesis + hand-picked nasties)."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from webhook.findings import Finding
from webhook.lint.loader import LoadError, parse, read_text
from webhook.lint.run import LintRun
from webhook.policy import check
from webhook.policy.kinds import CHECKED_KINDS, api_version

# Field names the schemas and rules look at, so generated objects reach deep into the rules.
NAMES = [
    "spec",
    "backup",
    "storages",
    "tasks",
    "pitr",
    "enabled",
    "image",
    "type",
    "main",
    "s3",
    "minio",
    "gcs",
    "azure",
    "oss",
    "filesystem",
    "bucket",
    "path",
    "credentialsSecret",
    "endpointUrl",
    "schedule",
    "name",
    "storageName",
    "retention",
    "count",
    "keep",
    "compressionType",
    "compressionLevel",
    "crVersion",
    "date",
    "selective",
    "nsFrom",
    "nsTo",
    "backupSource",
    "destination",
    "clusterName",
    "backupName",
    "replsets",
    "sharding",
    "serverSideEncryption",
    "sseAlgorithm",
    "sseCustomerKey",
    "retryer",
    "backoffInitial",
    "volumeMounts",
    "mountPath",
    "replsetRemapping",
    "status",
    "state",
    "metadata",
    "annotations",
]
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True),
    st.text(max_size=12),
    st.sampled_from(
        ["s3", "gzip", "external", "1.21.0", "0 0 * * *", "@every 1h", "date", "latest", "s3://b/2026-01-01T00:00:00Z"]
    ),
)
VALUES = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(NAMES), st.text(max_size=6)), children, max_size=5),
    ),
    max_leaves=40,
)


def _obj(kind: str, spec: object) -> dict:
    return {"apiVersion": api_version(kind), "kind": kind, "metadata": {"name": "x"}, "spec": spec}


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(CHECKED_KINDS), spec=VALUES)
def test_engine_never_raises(kind: str, spec: object) -> None:
    findings = check(_obj(kind, spec))
    assert all(isinstance(f, Finding) and f.message for f in findings)


@settings(max_examples=300, deadline=None)
@given(kind=st.sampled_from(CHECKED_KINDS), backup=VALUES)
def test_engine_never_raises_inside_backup(kind: str, backup: object) -> None:
    spec = {"backup": backup, "clusterName": "c", "backupSource": backup, "pitr": backup}
    check(_obj(kind, {**spec, "schedule": backup, "retention": backup}))


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=300))
def test_loader_never_raises_on_text(text: str) -> None:
    for item in parse("f.yaml", text):
        assert isinstance(item, LoadError) or item.node is not None


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=200))
def test_lint_never_raises_on_bytes(tmp_path_factory, data: bytes) -> None:
    f = tmp_path_factory.mktemp("b") / "x.yaml"
    f.write_bytes(data)
    LintRun().lint_paths([str(f)])


NASTIES = {
    "empty": b"",
    "only separators": b"---\n---\n",
    "binary": bytes(range(256)),
    "latin1": "caf\xe9: 1".encode("latin-1"),
    "list where mapping": b"apiVersion: psmdb.percona.com/v1\nkind: PerconaServerMongoDB\nmetadata: {name: x}\n"
    b"spec: {backup: [1, 2], replsets: {a: b}}\n",
    "huge numbers": b"apiVersion: psmdb.percona.com/v1\nkind: PerconaServerMongoDBBackup\nmetadata: {name: x}\n"
    b"spec: {clusterName: c, storageName: s, startingDeadlineSeconds: 1" + b"0" * 400 + b"}\n",
    "non-string keys": b"apiVersion: psmdb.percona.com/v1\nkind: PerconaServerMongoDB\nmetadata: {name: x}\n"
    b"spec: {backup: {enabled: true, image: i, storages: {1: {type: s3}, true: {type: s3}, "
    b"null: {type: s3}}, tasks: [{name: 5, enabled: true, schedule: 5}]}}\n",
    "unhashable key": b"? [a, b]\n: c\n",
    "deep nesting": b"a: " + b"[" * 5000 + b"]" * 5000 + b"\n",
    "anchors": b"a: &x [*x]\n",
    "tabs": b"a:\n\t- b\n",
    "json": json.dumps(
        {
            "apiVersion": "psmdb.percona.com/v1",
            "kind": "PerconaServerMongoDBRestore",
            "metadata": {"name": "r"},
            "spec": {"pitr": {"type": "date", "date": 5}},
        }
    ).encode(),
}


def test_nasty_files_are_reported_not_crashed(tmp_path) -> None:
    for name, data in NASTIES.items():
        f = tmp_path / f"{name.replace(' ', '_')}.yaml"
        f.write_bytes(data)
    run = LintRun()
    report = run.lint_paths([str(tmp_path)])
    assert report.files == len(NASTIES)
    by_file = {}
    for f in report.findings:
        by_file.setdefault(f.file.rsplit("/", 1)[-1], []).append(f.code)
    assert "PSB000" in by_file["binary.yaml"]
    assert "PSB000" in by_file["latin1.yaml"]
    assert "PSB001" in by_file["list_where_mapping.yaml"]
    assert "PSB001" in by_file["huge_numbers.yaml"]
    assert "PSB000" in by_file["unhashable_key.yaml"]
    assert "empty.yaml" not in by_file


def test_read_text_of_missing_file_is_unreadable(tmp_path) -> None:
    result = read_text(str(tmp_path / "nope.yaml"))
    assert isinstance(result, LoadError) and result.unreadable


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1", True),
        ("TRUE", True),
        (" on ", True),
        ("yes", True),
        ("0", False),
        ("off", False),
        ("False", False),
        ("", False),
        ("2", None),
        ("enable", None),
    ],
)
def test_one_boolean_spelling_for_environment_variables(raw: str, expected: bool | None) -> None:
    from webhook.cliutil import parse_bool

    assert parse_bool(raw) is expected


def test_a_non_boolean_on_off_variable_stops_the_command(monkeypatch, capsys) -> None:
    from webhook.cliutil import env_bool

    monkeypatch.setenv("PSMDB_BACKUP_NO_CLUSTER", "ture")
    with pytest.raises(SystemExit) as exc:
        env_bool("NO_CLUSTER", False)
    assert exc.value.code == 2 and "PSMDB_BACKUP_NO_CLUSTER='ture' is not a boolean" in capsys.readouterr().err
    monkeypatch.setenv("PSMDB_BACKUP_NO_CLUSTER", "true")
    assert env_bool("NO_CLUSTER", False) is True
