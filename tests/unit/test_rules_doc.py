from pathlib import Path

from webhook.lint.catalog import all_rules
from webhook.lint.rulesdoc import render

DOC = Path(__file__).resolve().parents[2] / "docs" / "rules.md"


def test_docs_rules_md_is_current() -> None:
    assert DOC.read_text(encoding="utf-8") == render(all_rules()), "docs/rules.md is out of date: run `make docs`"


def test_every_rule_has_an_anchor_for_sarif_help_links() -> None:
    text = DOC.read_text(encoding="utf-8")
    for code in all_rules():
        assert f'<a id="{code.lower()}"></a>' in text
