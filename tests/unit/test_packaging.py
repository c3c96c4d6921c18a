"""The package as users install it: a wheel built from the files the Dockerfile copies, installed into a venv outside
the checkout with the dependencies pinned in constraints.txt, and its console script run from elsewhere.

Kept fast and offline-safe after the first run: the pinned dependencies are downloaded once into a wheelhouse keyed
by constraints.txt, and the venv is cached keyed by the wheel's RECORD (the sha256 of every file it ships) and the
pins, both under ~/.cache/psmdb-backup-webhook/packaging/ ($PSMDB_BACKUP_CACHE). Only the newest venv and wheelhouse
are kept."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
CACHE = Path(os.environ.get("PSMDB_BACKUP_CACHE") or Path.home() / ".cache" / "psmdb-backup-webhook") / "packaging"
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
# What the Dockerfile's build stage copies: if the wheel builds and works from these alone, so does the image.
SOURCES = ("pyproject.toml", "README.md", "LICENSE", "webhook", "schemas")


def _pip(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "pip", *args], capture_output=True, text=True, env=env, timeout=timeout
    )
    assert result.returncode == 0, f"pip {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def _pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[_canonical(name)] = version
    return pins


def _canonical(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


class _Lock:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)

    def __enter__(self) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


def _prune(keep: Path) -> None:
    prefix = keep.name.split("-")[0] + "-"
    for old in keep.parent.glob(prefix + "*"):
        if old != keep and old.is_dir():
            shutil.rmtree(old, ignore_errors=True)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("src")
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(path, src / name)
    out = tmp_path_factory.mktemp("dist")
    _pip("wheel", "--no-deps", "--no-cache-dir", "--wheel-dir", str(out), str(src))
    (built,) = out.glob("*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel: Path) -> Path:
    """A venv with only the wheel and its pinned dependencies (no --system-site-packages)."""
    constraints = (ROOT / "constraints.txt").read_bytes()
    with zipfile.ZipFile(wheel) as z:
        record = z.read(next(n for n in z.namelist() if n.endswith(".dist-info/RECORD")))
    deps_key = hashlib.sha256(constraints + sys.version.encode()).hexdigest()[:16]
    key = hashlib.sha256(record + constraints + sys.version.encode()).hexdigest()[:16]
    wheelhouse = CACHE / f"wheelhouse-{deps_key}"
    target = CACHE / f"venv-{key}"
    with _Lock(CACHE / ".lock"):
        if not (wheelhouse / ".ok").exists():
            shutil.rmtree(wheelhouse, ignore_errors=True)
            _pip(
                "download",
                "--only-binary=:all:",
                "--no-deps",
                "--dest",
                str(wheelhouse),
                *(f"{name}=={version}" for name, version in _pins().items()),
            )
            (wheelhouse / ".ok").touch()
            _prune(wheelhouse)
        if not (target / ".ok").exists():
            shutil.rmtree(target, ignore_errors=True)
            subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(target)], check=True)
            # --no-index: every dependency must come from the pins (a missing pin fails here, not in the image build)
            _pip(
                "--python",
                str(target / "bin" / "python"),
                "install",
                "--no-index",
                "--find-links",
                str(wheelhouse),
                "--constraint",
                str(ROOT / "constraints.txt"),
                str(wheel),
            )
            (target / ".ok").touch()
            _prune(target)
    return target


def run(venv: Path, cwd: Path, *argv: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env["PATH"] = f"{venv / 'bin'}:/usr/bin:/bin"
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_the_wheel_ships_every_module_and_data_file_of_the_package(wheel: Path) -> None:
    """Every file under webhook/ (the schemas through the symlink included): a subpackage setuptools does not find, or
    a data file not declared in package-data, would be missing only from installed copies, never from the checkout."""
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        metadata = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
        entry_points = z.read(next(n for n in names if n.endswith(".dist-info/entry_points.txt"))).decode()
    expected = set()
    for dirpath, dirnames, filenames in os.walk(ROOT / "webhook", followlinks=True):
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        for f in filenames:
            if not f.endswith(".pyc"):
                expected.add((Path(dirpath) / f).relative_to(ROOT).as_posix())
    assert {f"webhook/schemas/{p.name}" for p in (ROOT / "schemas").glob("*.json")} <= expected
    assert expected - names == set(), "files of the package missing from the wheel"
    assert {n for n in names if not n.startswith(("webhook/", "psmdb_backup_webhook-"))} == set()
    dist_info = f"psmdb_backup_webhook-{PROJECT['version']}.dist-info"
    assert f"{dist_info}/licenses/LICENSE" in names
    assert "License-Expression: Apache-2.0" in metadata.splitlines()
    assert "psmdb-backup = webhook.cli:main" in entry_points


def test_the_installed_console_script_works_outside_the_checkout(venv: Path, tmp_path: Path) -> None:
    assert (
        not (venv / "lib")
        .joinpath(
            f"python{sys.version_info.major}.{sys.version_info.minor}",
            "site-packages",
            "_psmdb_backup_webhook_editable.pth",
        )
        .exists()
    )
    result = run(venv, tmp_path, "psmdb-backup", "--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"psmdb-backup {PROJECT['version']}"

    # imported from the venv, not from the checkout (cwd is elsewhere, no PYTHONPATH, no system site-packages)
    where = run(
        venv,
        tmp_path,
        "python",
        "-c",
        "import sys, webhook; print(webhook.__file__); "
        "print(any('site-packages' in p and not p.startswith(sys.prefix) for p in sys.path))",
    )
    assert where.returncode == 0, where.stderr
    module_file, foreign_site = where.stdout.split()
    assert module_file.startswith(str(venv)) and foreign_site == "False", where.stdout

    good = run(venv, tmp_path, "psmdb-backup", "lint", "--fail-on", "warning", str(EXAMPLES / "good"))
    assert good.returncode == 0, good.stdout + good.stderr
    assert "0 errors, 0 warnings" in good.stdout

    bad = run(venv, tmp_path, "psmdb-backup", "lint", "-f", "json", str(EXAMPLES / "bad" / "cluster.yaml"))
    assert bad.returncode == 1, bad.stdout + bad.stderr
    rules = {(f["rule"], f["line"]) for f in json.loads(bad.stdout)["findings"]}
    assert {("PSB104", 16), ("PSB107", 22), ("PSB206", 34), ("PSB203", 35)} <= rules, rules

    unreadable = run(venv, tmp_path, "psmdb-backup", "lint", str(tmp_path / "missing.yaml"))
    assert unreadable.returncode == 2, unreadable.stdout + unreadable.stderr


def test_the_venv_holds_exactly_the_pinned_closure(venv: Path) -> None:
    listed = _pip("--python", str(venv / "bin" / "python"), "list", "--format", "json").stdout
    installed = {_canonical(d["name"]): d["version"] for d in json.loads(listed)}
    assert installed.pop("psmdb-backup-webhook") == PROJECT["version"]
    assert installed == _pins(), "constraints.txt and the dependency closure of the package disagree"
    _pip("--python", str(venv / "bin" / "python"), "check")
