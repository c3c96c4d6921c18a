"""The short form of bench/soak.py (issue 15 item 9): about 35 s of mixed admission traffic through a real
`psmdb-backup serve` while its kube-apiserver is stopped and continued (1, 3 and 6 s) and its serving certificate
rotates. No 5xx answer, none past the deadline (4.5 s, below timeoutSeconds 5), RSS within 10 % of the warm-up's;
the script also fails when a rotation is not seen by new handshakes or the pauses never reached a lookup."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.soak import RSS_LIMIT, Figures  # noqa: E402

RESULT = re.compile(r"^RESULT soak_5xx=(\d+) soak_late=(\d+) soak_rss_growth=(-?[0-9.]+)$")


@pytest.mark.e2e
def test_short_soak_has_no_5xx_no_late_answer_and_bounded_rss() -> None:
    proc = subprocess.run(
        [sys.executable, "bench/soak.py", "--warmup", "10", "--seconds", "25"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    out = proc.stdout + proc.stderr
    lines = proc.stdout.strip().splitlines()
    match = RESULT.match(lines[-1]) if lines else None
    assert match, f"no RESULT line:\n{out}"
    fivexx, late, growth = int(match[1]), int(match[2]), float(match[3])
    assert (fivexx, late) == (0, 0), out
    assert growth <= RSS_LIMIT, out
    assert proc.returncode == 0, out  # rotations seen, lookups failed during pauses, no transport error
    pauses = re.search(r"pauses (\d+) \((\d+) in warm-up\)", out)
    assert pauses and int(pauses[1]) - int(pauses[2]) >= 3, out  # the 1, 3 and 6 s pauses after the warm-up


def _figures(**changes: object) -> Figures:
    good = dict(
        requests=100,
        fivexx=0,
        late=0,
        errors=0,
        lookup_failures=3,
        rss_warm=100,
        rss_end=105,
        p99=0.1,
        max_latency=4.2,
        pauses=3,
        rotations=2,
        rotations_seen=2,
        detail=[],
    )
    return Figures(**{**good, **changes})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "failure"),
    [
        ({"fivexx": 1}, "1 answers of 5xx"),
        ({"late": 2}, "2 answers later than the deadline"),
        ({"errors": 1}, "1 transport errors"),
        ({"rss_end": 111}, "RSS grew 11.0% (limit 10%)"),
        ({"rotations_seen": 1}, "2 certificate rotations, 1 seen by new handshakes"),
        ({"lookup_failures": 0}, "the pauses did not reach the webhook"),
    ],
)
def test_the_soak_verdict_names_each_failure(changes: dict[str, object], failure: str) -> None:
    assert _figures().failures() == []
    assert any(failure in f for f in _figures(**changes).failures()), _figures(**changes).failures()
    assert _figures(**changes).result_line().startswith("RESULT soak_5xx=")
