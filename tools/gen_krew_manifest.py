#!/usr/bin/env python3
"""Build the krew archive of the `kubectl psmdb-backup` plugin and write its manifest, plugins/psmdb-backup.yaml.

    python tools/gen_krew_manifest.py                  # build dist/kubectl-psmdb_backup-vX.tar.gz, write the manifest
    python tools/gen_krew_manifest.py --archive FILE   # write the manifest for an archive built before

The archive is the package's source (pyproject.toml, webhook/, schemas/, constraints.txt) plus a POSIX launcher,
`kubectl-psmdb_backup`: on its first run it installs the package with the pinned dependencies into a venv of its own
(python3 >= 3.11 on PATH, or $PSMDB_BACKUP_PYTHON), then execs the package's console script. The dependencies carry
native code (aiohttp, cryptography, pyyaml, ...), so shipping them would need one archive per platform and Python;
this way one archive serves every Unix platform, and krew's sha256 pins it. The archive is reproducible (sorted
entries, fixed times and owners), so a release rebuilt from the same tree gets the same sha256 as its manifest.
Release: build, upload the archive to the release URL below, commit the manifest (or submit it to a krew index).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import sys
import tarfile
import tomllib
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
MANIFEST = REPO_ROOT / "plugins" / "psmdb-backup.yaml"
NAME = "psmdb-backup"
BIN = "kubectl-psmdb_backup"  # kubectl maps the - of a plugin name to _ in the executable's name
HOMEPAGE = "https://github.com/psmdb-backup-webhook/psmdb-backup-webhook"
PLATFORMS = [("linux", "amd64"), ("linux", "arm64"), ("darwin", "amd64"), ("darwin", "arm64")]
SOURCES = ("pyproject.toml", "README.md", "LICENSE", "constraints.txt", "webhook", "schemas")
MTIME = 946684800  # 2000-01-01: any fixed time keeps the archive reproducible

LAUNCHER = """#!/bin/sh
# kubectl psmdb-backup as krew installs it: the first run installs the package (this archive's source, dependencies
# pinned by constraints.txt) into a venv of its own, later runs exec it directly.
set -eu
py=${PSMDB_BACKUP_PYTHON:-python3}
command -v "$py" >/dev/null 2>&1 || { echo "kubectl psmdb-backup: needs python3 (>= 3.11) on PATH" >&2; exit 2; }
here=$("$py" -c 'import os, sys; print(os.path.dirname(os.path.realpath(sys.argv[1])))' "$0")
venv=${XDG_CACHE_HOME:-$HOME/.cache}/psmdb-backup-webhook/krew-venv-@VERSION@
if [ ! -f "$venv/.complete" ]; then
  echo "kubectl psmdb-backup: first run: installing into $venv" >&2
  rm -rf "$venv"
  "$py" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -c "$here/constraints.txt" "$here"
  touch "$venv/.complete"
fi
exec "$venv/bin/kubectl-psmdb_backup" "$@"
"""


def version() -> str:
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["version"]


def archive_name(ver: str) -> str:
    return f"{BIN}-v{ver}.tar.gz"


def _members(root: Path) -> list[Path]:
    out = []
    for name in SOURCES:
        path = root / name
        if path.is_dir() and not path.is_symlink():
            out += [p for p in path.rglob("*") if "__pycache__" not in p.parts and not p.name.endswith(".pyc")]
        out.append(path)
    return sorted(out, key=lambda p: p.relative_to(root).as_posix())


def _info(name: str, *, size: int = 0, mode: int = 0o644, kind: bytes = tarfile.REGTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.type, info.mtime = size, mode, kind, MTIME
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def build_archive(out_dir: Path, root: Path = REPO_ROOT) -> Path:
    """The reproducible plugin archive, written into out_dir."""
    ver = version()
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        launcher = LAUNCHER.replace("@VERSION@", ver).encode()
        tar.addfile(_info(BIN, size=len(launcher), mode=0o755), io.BytesIO(launcher))
        for path in _members(root):
            name = path.relative_to(root).as_posix()
            if path.is_symlink():  # webhook/schemas -> ../schemas
                info = _info(name, kind=tarfile.SYMTYPE)
                info.linkname = path.readlink().as_posix()
                tar.addfile(info)
            elif path.is_dir():
                tar.addfile(_info(name, mode=0o755, kind=tarfile.DIRTYPE))
            else:
                data = path.read_bytes()
                tar.addfile(_info(name, size=len(data)), io.BytesIO(data))
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / archive_name(ver)
    with open(target, "wb") as f, gzip.GzipFile(fileobj=f, mode="wb", mtime=0, filename="") as gz:
        gz.write(raw.getvalue())
    return target


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def manifest(ver: str, digest: str) -> dict[str, Any]:
    uri = f"{HOMEPAGE}/releases/download/v{ver}/{archive_name(ver)}"
    return {
        "apiVersion": "krew.googlecontainertools.github.com/v1alpha2",
        "kind": "Plugin",
        "metadata": {"name": NAME},
        "spec": {
            "version": f"v{ver}",
            "homepage": HOMEPAGE,
            "shortDescription": "Lint, audit and run Percona MongoDB backups and restores",
            "description": "Checks PerconaServerMongoDB, PerconaServerMongoDBBackup and PerconaServerMongoDBRestore\n"
            "manifests, or the objects already in a cluster (lint --cluster), against the rules the\n"
            "operator and PBM enforce; also injects the backup-agent sidecar offline and exports\n"
            "JSON Schemas for kubeconform. `status` shows a cluster's backups, schedules, lock and\n"
            "findings; `backup` and `restore` start checked on-demand operations and follow them.\n",
            "caveats": "Needs python3 (3.11 or later) on PATH: the first run installs the plugin's Python\n"
            "dependencies into a venv under ~/.cache/psmdb-backup-webhook.\n",
            "platforms": [
                {
                    "selector": {"matchLabels": {"os": os_, "arch": arch}},
                    "uri": uri,
                    "sha256": digest,
                    "bin": BIN,
                    "files": [{"from": "*", "to": "."}],
                }
                for os_, arch in PLATFORMS
            ],
        },
    }


class _Dumper(yaml.SafeDumper):
    """Multi-line strings as literal blocks, as krew's own manifests write them."""


_Dumper.add_representer(
    str, lambda d, s: d.represent_scalar("tag:yaml.org,2002:str", s, style="|" if "\n" in s else None)
)


def render(ver: str, digest: str) -> str:
    header = "# Generated by tools/gen_krew_manifest.py from the release archive; do not edit.\n"
    return header + yaml.dump(manifest(ver, digest), Dumper=_Dumper, sort_keys=False, width=120)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archive", type=Path, help="an archive built before (default: build one into --dist)")
    parser.add_argument("--dist", type=Path, default=REPO_ROOT / "dist", help="where to build the archive")
    parser.add_argument("-o", "--output", type=Path, default=MANIFEST, help="manifest file to write")
    args = parser.parse_args(argv)
    ver = version()
    archive = args.archive or build_archive(args.dist)
    if archive.name != archive_name(ver):
        print(f"gen_krew_manifest: {archive} is not named {archive_name(ver)} (version {ver})", file=sys.stderr)
        return 2
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(render(ver, sha256(archive)))
    print(f"wrote {args.output} for {archive}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
