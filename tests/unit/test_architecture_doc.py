"""docs/architecture.md lists the import-linter contracts of pyproject.toml: every contract by name, with the modules
it constrains, so the page cannot drift from what `make check` enforces."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _contracts() -> list[dict]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return list(config["tool"]["importlinter"]["contracts"])


def _section() -> str:
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    start = text.index("## Layers and contracts")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def _doc_rows(section: str) -> dict[str, str]:
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and len(cells) == 2 and cells[0] not in ("Contract", "---"):
            rows[cells[0]] = cells[1]
    return rows


def test_every_contract_is_documented_with_the_modules_it_constrains() -> None:
    rows = _doc_rows(_section())
    contracts = _contracts()
    assert sorted(rows) == sorted(c["name"] for c in contracts)
    for contract in contracts:
        modules = contract.get("source_modules") or contract.get("modules") or []
        for module in modules:
            short = module.removeprefix("webhook.")
            assert short.split(".")[-1] in rows[contract["name"]], (contract["name"], module)


def test_the_check_notices_an_undocumented_contract() -> None:
    rows = _doc_rows("## Layers and contracts\n\n| Contract | What it forbids |\n|---|---|\n| A | b |\n")
    assert rows == {"A": "b"}
    assert sorted(rows) != sorted(c["name"] for c in _contracts())
