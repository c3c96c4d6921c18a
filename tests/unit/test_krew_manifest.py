"""The krew plugin manifest (plugins/psmdb-backup.yaml) and tools/gen_krew_manifest.py, which builds the archive it
pins and writes it: krew's v1alpha2 Plugin structure, the version of pyproject.toml, a reproducible archive whose
sha256 is the manifest's, and the launcher as krew installs it (through a symlink)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tarfile
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
import gen_krew_manifest as gen  # noqa: E402

VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
COMMITTED = ROOT / "plugins" / "psmdb-backup.yaml"


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return gen.build_archive(tmp_path_factory.mktemp("dist"))


def test_committed_manifest_structure() -> None:
    m = yaml.safe_load(COMMITTED.read_text())
    assert m["apiVersion"] == "krew.googlecontainertools.github.com/v1alpha2" and m["kind"] == "Plugin"
    assert m["metadata"]["name"] == COMMITTED.stem == "psmdb-backup"  # krew: the name is the file's
    spec = m["spec"]
    assert spec["version"] == f"v{VERSION}", "regenerate with python tools/gen_krew_manifest.py"
    assert spec["shortDescription"] and spec["homepage"].startswith("https://")
    selectors = [(p["selector"]["matchLabels"]["os"], p["selector"]["matchLabels"]["arch"]) for p in spec["platforms"]]
    assert len(set(selectors)) == len(selectors) and ("linux", "amd64") in selectors
    assert all(os_ in {"linux", "darwin"} for os_, _ in selectors), "the launcher is a POSIX shell script"
    for p in spec["platforms"]:
        assert re.fullmatch(r"[0-9a-f]{64}", p["sha256"]), p["sha256"]
        assert p["uri"].startswith("https://") and p["uri"].endswith(
            f"/v{VERSION}/kubectl-psmdb_backup-v{VERSION}.tar.gz"
        )
        assert p["bin"] == "kubectl-psmdb_backup"  # what kubectl looks for: `kubectl psmdb-backup`


def test_committed_manifest_is_the_generators_output() -> None:
    m = yaml.safe_load(COMMITTED.read_text())
    assert COMMITTED.read_text() == gen.render(VERSION, m["spec"]["platforms"][0]["sha256"]), "do not edit by hand"


def test_archive_is_reproducible_and_pinned_by_the_manifest(archive: Path, tmp_path: Path) -> None:
    assert gen.build_archive(tmp_path / "again").read_bytes() == archive.read_bytes()
    out = tmp_path / "psmdb-backup.yaml"
    assert gen.main(["--archive", str(archive), "-o", str(out)]) == 0
    platforms = yaml.safe_load(out.read_text())["spec"]["platforms"]
    assert {p["sha256"] for p in platforms} == {gen.sha256(archive)}
    renamed = tmp_path / "other.tar.gz"
    renamed.write_bytes(archive.read_bytes())
    assert gen.main(["--archive", str(renamed), "-o", str(out)]) == 2


def test_archive_holds_the_launcher_and_an_installable_source_tree(archive: Path) -> None:
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
        launcher = tar.getmember("kubectl-psmdb_backup")
        assert launcher.mode & 0o111 and launcher.mtime == gen.MTIME
        assert {"pyproject.toml", "constraints.txt", "webhook/cli.py", "schemas/perconaservermongodb.json"} <= names
        assert not [n for n in names if "__pycache__" in n]
        assert tar.getmember("webhook/schemas").issym()


def _install(archive: Path, tmp_path: Path) -> Path:
    """As krew does: unpack into its store, link the bin into a PATH directory."""
    store, bindir = tmp_path / "store", tmp_path / "bin"
    store.mkdir()
    bindir.mkdir()
    with tarfile.open(archive) as tar:
        tar.extractall(store, filter="tar")
    (bindir / "kubectl-psmdb_backup").symlink_to(store / "kubectl-psmdb_backup")
    return bindir / "kubectl-psmdb_backup"


def test_launcher_execs_the_installed_venv_through_krews_symlink(archive: Path, tmp_path: Path) -> None:
    plugin = _install(archive, tmp_path)
    venv = tmp_path / "cache" / "psmdb-backup-webhook" / f"krew-venv-{VERSION}"
    (venv / "bin").mkdir(parents=True)
    script = venv / "bin" / "kubectl-psmdb_backup"
    script.write_text('#!/bin/sh\necho "venv: $*"\n')
    script.chmod(0o755)
    (venv / ".complete").touch()
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"), "PSMDB_BACKUP_PYTHON": sys.executable}
    proc = subprocess.run([str(plugin), "lint", "a b"], capture_output=True, text=True, env=env, timeout=30)
    assert proc.returncode == 0 and proc.stdout == "venv: lint a b\n", proc.stderr


def test_launcher_without_python_says_so(archive: Path, tmp_path: Path) -> None:
    plugin = _install(archive, tmp_path)
    env = {**os.environ, "PSMDB_BACKUP_PYTHON": "no-such-python3"}
    proc = subprocess.run([str(plugin), "--version"], capture_output=True, text=True, env=env, timeout=30)
    assert proc.returncode == 2 and "needs python3" in proc.stderr
