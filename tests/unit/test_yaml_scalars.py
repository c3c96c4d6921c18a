"""The loader reads scalars as kubectl does: compared, document by document, with sigs.k8s.io/yaml itself
(tools/yamlscalars, built from the Go module proxy; `make test` builds it)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from webhook.lint.loader import Document, LoadError, parse

ROOT = Path(__file__).resolve().parents[2]
TABLE = ROOT / "tests" / "data" / "yaml-scalars.yaml"


@pytest.fixture(scope="module")
def kubectl_reading() -> list[dict]:
    if shutil.which("go") is None:
        pytest.skip("Go is not installed: cannot build tools/yamlscalars (sigs.k8s.io/yaml) to compare against")
    built = subprocess.run(
        ["bash", str(ROOT / "tools" / "build-yamlscalars.sh")], capture_output=True, text=True, timeout=600
    )
    assert built.returncode == 0, built.stderr
    binary = built.stdout.strip().splitlines()[-1]
    out = subprocess.run([binary], input=TABLE.read_bytes(), capture_output=True, timeout=60, check=True)
    return [json.loads(line) for line in out.stdout.decode().splitlines()]


def same(a: Any, b: Any) -> bool:
    """Equal with equal JSON types (True is not 1, 1.0 is not 1)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def test_every_scalar_reads_as_kubectl_reads_it(kubectl_reading: list[dict]) -> None:
    ours = list(parse(str(TABLE), TABLE.read_text()))
    assert len(ours) == len(kubectl_reading) >= 60
    wrong = []
    for mine, theirs in zip(ours, kubectl_reading, strict=True):
        if "error" in theirs:
            ok = isinstance(mine, LoadError)
        else:
            ok = isinstance(mine, Document) and same(mine.data, theirs["json"])
        if not ok:
            wrong.append((getattr(mine, "data", mine), theirs))
    assert not wrong, "\n".join(f"ours {a!r} != kubectl {b!r}" for a, b in wrong)


def test_unquoted_timestamps_stay_strings_with_positions() -> None:
    text = "kind: PerconaServerMongoDBRestore\nspec:\n  backupName: 2024-03-07T18:00:21Z\n"
    (doc,) = parse("r.yaml", text)
    assert doc.data["spec"]["backupName"] == "2024-03-07T18:00:21Z"


def _full_and_fast(path: Path) -> list[tuple[Any, Any]]:
    """(full PyYAML-based construction, fast construction or None when it defers) for every document of `path`."""
    from webhook.lint import construct
    from webhook.lint.loader import _Loader

    loader = _Loader(path.read_text())
    pairs = []
    try:
        while loader.check_node():
            node = loader.get_node()
            try:
                fast = construct.build(node)
            except construct.Unsupported:
                fast = None
            try:
                full = loader.construct_document(node)
            except Exception as exc:  # the table has documents kubectl refuses: the fast path must defer on those
                full = exc
            pairs.append((full, fast))
    finally:
        loader.dispose()
    return pairs


@pytest.mark.parametrize(
    "path",
    [
        TABLE,
        *sorted((ROOT / "examples").rglob("*.yaml")),
        *sorted((ROOT / "tests" / "data" / "lint-bench").glob("*.y*ml")),
    ],
    ids=lambda p: p.name,
)
def test_fast_construction_equals_the_full_loader(path: Path) -> None:
    """webhook/lint/construct.py builds values straight from the nodes; whatever it builds must be what the full
    loader (PyYAML's constructor with the kubectl rules above) builds, and it must defer on everything else."""
    pairs = _full_and_fast(path)
    built = [(full, fast) for full, fast in pairs if fast is not None]
    assert all(not isinstance(full, Exception) and same(fast, full) for full, fast in built), path
    if path != TABLE:
        assert len(built) == len(pairs)  # real manifests take the fast path
    else:
        assert 0 < len(built) < len(pairs)  # the table also has tags, merge keys and errors, which defer
