"""Lint memory and time on one big multi-document file of cluster CRs, at 1x, 2x and 4x its size.

    python bench/lint_memory.py [--mb 50] [--quick]

The file: every PerconaServerMongoDB document of examples/ and tests/data/lint-bench/ (bench/lint.py's templates),
renamed per copy, joined with `---` until the size is reached. Each size is linted by its own
`python -m webhook.cli lint FILE -f json` process; its peak RSS and CPU time come from the kernel's accounting of
that child (os.wait4). Targets on the base size: peak RSS <= 3x the input + 80 MB, and time linear in the input (the
CPU time per MB at 4x within 25% of 1x). The last line is machine-readable (peak RSS / input size at the base size):
RESULT lint_peak_rss_ratio=<x>
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.lint import renamed, templates  # noqa: E402

MB = 1_000_000


def cluster_file(path: Path, size: int) -> int:
    """Writes cluster CRs to `path` until `size` bytes; returns the number of documents."""
    clusters = [t.text for t in templates() if "kind: PerconaServerMongoDB\n" in t.text and t.docs == 1]
    written = docs = 0
    with path.open("w") as out:
        while written < size:
            for text in clusters:
                chunk = ("---\n" if docs else "") + renamed(text, docs)
                out.write(chunk)
                written, docs = written + len(chunk), docs + 1
                if written >= size:
                    break
    return docs


def measure(path: Path) -> tuple[float, float, int]:
    """(peak RSS in bytes, CPU seconds, exit code) of one lint process."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "webhook.cli", "lint", str(path), "-f", "json", "-o", os.devnull]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode not in (0, 1):
        raise SystemExit(f"lint failed ({proc.returncode}): {err[-500:]}")
    return usage.ru_maxrss * 1024, usage.ru_utime + usage.ru_stime, proc.returncode


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, default=50.0, help="base size in MB (the 1x input)")
    ap.add_argument("--quick", action="store_true", help="a 10 MB base")
    args = ap.parse_args()
    base = int((10.0 if args.quick else args.mb) * MB)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for factor in (1, 2, 4):
            path = Path(tmp) / f"clusters-{factor}x.yaml"
            docs = cluster_file(path, base * factor)
            size = path.stat().st_size
            rss, cpu, code = measure(path)
            path.unlink()
            rows.append((factor, size, rss, cpu))
            print(
                f"{factor}x: {size / MB:.1f} MB, {docs:,} cluster CRs: peak RSS {rss / MB:.0f} MB "
                f"({rss / size:.2f}x the input), {cpu:.1f} s CPU ({cpu / (size / MB):.3f} s/MB), exit {code}"
            )
    _, size1, rss1, cpu1 = rows[0]
    _, size4, _, cpu4 = rows[-1]
    limit = 3 * size1 + 80 * MB
    linear = (cpu4 / size4) / (cpu1 / size1)
    print(
        f"targets: peak RSS {rss1 / MB:.0f} MB <= 3x input + 80 MB = {limit / MB:.0f} MB "
        f"({'met' if rss1 <= limit else 'MISSED'}); CPU per MB at 4x / at 1x = {linear:.2f} "
        f"({'met' if linear <= 1.25 else 'MISSED'}: <= 1.25)"
    )
    print(f"RESULT lint_peak_rss_ratio={rss1 / size1:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
