"""`make demo`: lint the bundled examples and show one good and one bad result."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def lint(*args: str) -> int:
    cmd = [sys.executable, "-m", "webhook.cli", "lint", "--color", "always" if sys.stdout.isatty() else "never", *args]
    print(f"\n$ psmdb-backup lint {' '.join(args)}", flush=True)
    return subprocess.call(cmd, cwd=ROOT)


def main() -> int:
    good = lint("examples/good")
    bad = lint("examples/good", "examples/bad")
    print(f"\nexamples/good: exit {good} (clean); examples/bad: exit {bad} (each finding names the field, its line "
          "and how to fix it)")
    return 0 if (good, bad) == (0, 1) else 1


if __name__ == "__main__":
    sys.exit(main())
