"""Kustomize patch files: partial objects that only make sense merged onto their base, so linting them alone gives
false findings. A file is a patch when a kustomization next to it lists it under `patches:`,
`patchesStrategicMerge:` or `patchesJson6902:`."""

from __future__ import annotations

import os
from functools import cache

import yaml

KUSTOMIZATIONS = ("kustomization.yaml", "kustomization.yml", "Kustomization")
PATCH_FIELDS = ("patches", "patchesStrategicMerge", "patchesJson6902")


@cache
def _patches_in(directory: str) -> dict[str, str]:
    """Real paths of the patch files listed by the kustomization of `directory` -> that kustomization's path."""
    for name in KUSTOMIZATIONS:
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            break
    else:
        return {}
    try:
        with open(path, encoding="utf-8") as f:
            spec = yaml.safe_load(f)
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return {}  # the kustomization itself is linted (and reported) like any other file
    found: dict[str, str] = {}
    for field in PATCH_FIELDS:
        entries = spec.get(field) if isinstance(spec, dict) else None
        for entry in entries if isinstance(entries, list) else ():
            rel = entry.get("path") if isinstance(entry, dict) else entry
            if isinstance(rel, str) and "\n" not in rel:  # a string with newlines is an inline patch
                found[os.path.realpath(os.path.join(directory, rel))] = path
    return found


@cache
def _real_dir(directory: str) -> str:
    return os.path.realpath(directory)


def patch_of(file: str) -> str | None:
    """The kustomization that lists `file` as a patch, if any."""
    # realpath() stats every component of the path; a file that is not a symlink resolves through its directory,
    # which is resolved once per directory (a measurable share of a lint run over thousands of small files).
    real = (
        os.path.realpath(file)
        if os.path.islink(file)
        else os.path.join(_real_dir(os.path.dirname(file)), os.path.basename(file))
    )
    return _patches_in(os.path.dirname(real)).get(real)


class KustomizeError(Exception):
    """`kubectl kustomize` could not render: a usage error (exit 2)."""


def render(directory: str, kubectl: str = "kubectl", timeout: float = 120.0) -> str:
    """What `kubectl kustomize DIR` renders; KustomizeError when it cannot."""
    import shutil
    import subprocess

    binary = shutil.which(kubectl)
    if binary is None:
        raise KustomizeError(f"-k needs {kubectl} on PATH (it runs `kubectl kustomize {directory}`)")
    try:
        done = subprocess.run(
            [binary, "kustomize", directory], capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        raise KustomizeError(f"`kubectl kustomize {directory}` did not finish in {timeout:.0f} s") from None
    if done.returncode != 0:
        raise KustomizeError(f"`kubectl kustomize {directory}` failed: {done.stderr.strip() or done.returncode}")
    return done.stdout
