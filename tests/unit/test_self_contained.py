"""The repository tests itself: nothing under tests/ or tools/ may read the session's shared reference directory
(a plain clone has no shared directory beside it). Data the tests need lives in tests/data/ with its provenance."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Built by concatenation so this file does not match itself.
FORBIDDEN = ("../" + "shared", "/" + "shared/reference")


def _offenders(root: Path) -> list[str]:
    hits = []
    for top in ("tests", "tools"):
        for path in sorted((root / top).rglob("*")):
            if not path.is_file() or "__pycache__" in path.parts:
                continue
            text = path.read_text(encoding="utf-8", errors="ignore")
            hits += [f"{path.relative_to(root)}: {needle}" for needle in FORBIDDEN if needle in text]
    return hits


def test_nothing_under_tests_or_tools_reads_shared_reference() -> None:
    assert _offenders(ROOT) == [], "copy the data into tests/data/ with a provenance note instead"


def test_the_check_finds_an_offender(tmp_path: Path) -> None:
    (tmp_path / "tools").mkdir()
    (tmp_path / "tests").mkdir()
    (tmp_path / "tools" / "x.py").write_text('open("../' + 'shared/reference/a.json")\n')
    assert _offenders(tmp_path) == ["tools/x.py: ../" + "shared", "tools/x.py: /" + "shared/reference"]


def test_cron_vectors_are_in_the_repository() -> None:
    assert (ROOT / "tests/data/cron/cron-vectors.jsonl").is_file()
    assert (ROOT / "tests/data/cron/README.md").is_file()


# The session's reference document is not shipped: sources are cited as operator/PBM file:line instead.
UNSHIPPED_CITATIONS = ("facts " + "§", "psmdb-backup-" + "facts")


def _unshipped_citations(root: Path) -> list[str]:
    paths = [root / "README.md", *(p for top in ("webhook", "docs", "tools") for p in sorted((root / top).rglob("*")))]
    hits = []
    for path in paths:
        if not path.is_file() or "__pycache__" in path.parts:
            continue
        text = path.read_text(encoding="utf-8", errors="ignore")
        hits += [f"{path.relative_to(root)}: {needle}" for needle in UNSHIPPED_CITATIONS if needle in text]
    return hits


def test_no_citation_of_the_unshipped_reference_document() -> None:
    assert _unshipped_citations(ROOT) == [], 'cite "OP v1.23.0@b15af500 path:line" or "PBM v2.15.0@6f9fc3bf path:line"'


def test_the_citation_check_finds_one(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("see facts " + "§4.1\n")
    assert _unshipped_citations(tmp_path) == ["README.md: facts " + "§"]
