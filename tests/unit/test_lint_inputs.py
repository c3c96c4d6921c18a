"""What `lint` reads: streams with broken documents, List documents, Helm templates, kustomize patches, skipped
directories, and what it does when nothing is found."""

from __future__ import annotations

from webhook.lint.loader import Document, LoadError, parse, position

STREAM = """\
kind: A
---
kind: B
bad: "unclosed
---
kind: C
flow: [1
---
# a comment first
kind: D
nested:
  field: 1
---
kind: E
value: .inf
---
kind: F
"""


def test_every_document_after_a_broken_one_is_read_with_its_own_lines() -> None:
    items = list(parse("s.yaml", STREAM))
    kinds = [i.data["kind"] for i in items if isinstance(i, Document)]
    errors = [(i.line, i.message) for i in items if isinstance(i, LoadError)]
    assert kinds == ["A", "D", "F"]
    assert [line for line, _ in errors] == [5, 8, 15]  # each broken document reported once, at its own line
    doc_d = next(i for i in items if isinstance(i, Document) and i.data["kind"] == "D")
    assert position(doc_d.node, ("nested", "field"), doc_d.line_offset) == (12, 3)
    assert [i.index for i in items if isinstance(i, Document)] == [0, 1, 2]
