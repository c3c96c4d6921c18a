"""Lint time against kubeconform v0.8.0 (the schema-only linter users compare us with), in the same run.

    python bench/lint.py [--docs N] [--rounds R] [--cpu C] [--quick]

Corpus: the documents of examples/ and tests/data/lint-bench/ (real manifests of the Percona operator: deploy/cr.yaml
and e2e-tests confs, block style, comments, full cluster specs), one file per template in its source's directory
layout as people keep them, replicated into directories of copies with varied names (`-<copy>` appended to metadata.name, clusterName and
backupName, so references still resolve inside each copy) up to N documents. Two corpora: every template ("with
findings", most real repositories look like this) and only the templates that lint without findings ("clean").

Each tool runs as its own process, pinned to one core with `taskset -c`, both on the same core, alternating rounds;
the time of a run is its user + system CPU time (robust to the other load on a shared machine; wall time is printed
too). kubeconform gets the schemas of `psmdb-backup schemas export --format kubeconform`, `-strict`, and skips the
Secrets it has no schema for. Target: ratio = kubeconform time / lint time >= 1.0 (aim 1.5) on both corpora.
The last line is machine-readable (the lower ratio of the two corpora, lint's rate on the corpus with findings):
RESULT lint_vs_kubeconform=<x> docs_per_s=<n>
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from webhook.lint.loader import parse  # noqa: E402
from webhook.lint.run import LintRun  # noqa: E402
from webhook.schemas_export import LOCATIONS, export  # noqa: E402

SOURCES = (ROOT / "examples", ROOT / "tests" / "data" / "lint-bench")
# The object's own name and the names it refers to (two-space indent: directly under metadata: or spec:).
_NAMES = re.compile(r"^(  (?:name|clusterName|backupName): *)([\"']?)([A-Za-z0-9][-A-Za-z0-9.]*)\2[ \t]*$", re.M)


@dataclass(frozen=True)
class Template:
    name: str  # path of the copy inside a copy's directory: the source's directory layout
    text: str
    docs: int


def templates() -> list[Template]:
    found = []
    for src in SOURCES:
        for path in sorted(p for p in src.rglob("*") if p.suffix in (".yaml", ".yml")):
            text = path.read_text()
            docs = sum(1 for d in parse(str(path), text) if getattr(d, "data", None) is not None)
            # tests/data/lint-bench/ spells the operator's paths with "--" for "/" (deploy--backup--backup.yaml)
            found.append(
                Template(f"{path.parent.name}/{path.name}".replace("lint-bench/", "").replace("--", "/"), text, docs)
            )
    return found


def clean_subset(found: list[Template]) -> list[Template]:
    """The templates without findings when linted together (references between them resolve), to a fixed point."""
    chosen = found
    while True:
        with tempfile.TemporaryDirectory() as tmp:
            for t in chosen:
                (Path(tmp) / t.name).parent.mkdir(parents=True, exist_ok=True)
                (Path(tmp) / t.name).write_text(t.text)
            dirty = {os.path.relpath(f.file, tmp) for f in LintRun().lint_paths([tmp]).findings}
        if not dirty:
            return chosen
        chosen = [t for t in chosen if t.name not in dirty]


def renamed(text: str, copy: int) -> str:
    return _NAMES.sub(lambda m: f"{m[1]}{m[2]}{m[3]}-{copy}{m[2]}", text)


def write_corpus(root: Path, chosen: list[Template], n_docs: int) -> int:
    """Copies of the templates, one directory per copy, until n_docs documents; returns the bytes written."""
    total = size = copy = 0
    while total < n_docs:
        folder = root / f"copy-{copy:05d}"
        for t in chosen:
            if total + t.docs > n_docs and total:
                break
            text = renamed(t.text, copy)
            (folder / t.name).parent.mkdir(parents=True, exist_ok=True)
            (folder / t.name).write_text(text)
            total, size = total + t.docs, size + len(text)
        copy += 1
    return size


@dataclass
class Timing:
    cpu: list[float]
    wall: list[float]

    def add(self, cpu: float, wall: float) -> None:
        self.cpu.append(cpu)
        self.wall.append(wall)


def timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float, int]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, check=False)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{cmd[2:5]} failed ({proc.returncode}): {proc.stderr.decode()[-500:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall, proc.returncode


def kubeconform_binary() -> str:
    proc = subprocess.run(["bash", str(ROOT / "tools" / "build-kubeconform.sh")], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"tools/build-kubeconform.sh failed: {proc.stderr[-500:]}")
    return proc.stdout.strip().splitlines()[-1]


def compare(
    label: str, corpus: Path, n: int, kc: list[str], lint: list[str], rounds: int, env: dict
) -> tuple[float, float]:
    """(kubeconform / lint CPU time, lint's docs/s), medians of the rounds."""
    k, m = Timing([], []), Timing([], [])
    codes = set()
    for _ in range(rounds):  # alternating, so a burst of load elsewhere hits both
        cpu, wall, _ = timed([*kc, str(corpus)])
        k.add(cpu, wall)
        cpu, wall, code = timed([*lint, str(corpus)], env)
        m.add(cpu, wall)
        codes.add(code)
    kt, lt = statistics.median(k.cpu), statistics.median(m.cpu)
    print(
        f"{label}: kubeconform {kt:.2f} s CPU ({statistics.median(k.wall):.2f} s wall), "
        f"lint {lt:.2f} s CPU ({statistics.median(m.wall):.2f} s wall, exit {sorted(codes)}), "
        f"{n / lt:,.0f} docs/s, ratio {kt / lt:.2f}"
    )
    return kt / lt, n / lt


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--cpu", type=int, default=0, help="the core both tools are pinned to")
    ap.add_argument("--quick", action="store_true", help="3 rounds")
    args = ap.parse_args()
    rounds = 3 if args.quick else args.rounds
    if shutil.which("taskset") is None:
        raise SystemExit("bench/lint.py needs taskset (util-linux) to pin each tool to one core")
    pin = ["taskset", "-c", str(args.cpu)]
    found = templates()
    clean = clean_subset(found)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    lint = [*pin, sys.executable, "-m", "webhook.cli", "lint", "--format", "text"]
    with tempfile.TemporaryDirectory() as tmp:
        schemas = Path(tmp) / "schemas"
        export(schemas, "kubeconform")
        location = f"{schemas}/{LOCATIONS['kubeconform']}"
        kc = [*pin, kubeconform_binary(), "-strict", "-summary", "-skip", "Secret", "-schema-location", location]
        ratios, rate = [], 0.0
        for label, chosen in (("with findings", found), ("clean", clean)):
            corpus = Path(tmp) / label.replace(" ", "-")
            size = write_corpus(corpus, chosen, args.docs)
            report = LintRun().lint_paths([str(corpus)])
            assert report.documents == args.docs, (report.documents, args.docs)
            assert bool(report.findings) == (label != "clean"), f"{label}: {len(report.findings)} findings"
            print(
                f"{label}: {args.docs} documents in {report.files} files, {size / 1e6:.1f} MB "
                f"({size / args.docs:,.0f} bytes/doc) from {len(chosen)} templates; {len(report.findings)} findings"
            )
            ratio, docs_per_s = compare(label, corpus, args.docs, kc, lint, rounds, env)
            ratios.append(ratio)
            rate = rate or docs_per_s
    ratio = min(ratios)
    print(f"target: ratio >= 1.0 ({'met' if ratio >= 1 else 'MISSED'}; aim 1.5)")
    print(f"RESULT lint_vs_kubeconform={ratio:.2f} docs_per_s={rate:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
