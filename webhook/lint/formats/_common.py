"""Helpers shared by the output formats (not a format itself)."""

from __future__ import annotations

import re
from collections.abc import Mapping

from ...policy.registry import Rule
from ..report import LocatedFinding

STDIN_NAMES = frozenset({"<stdin>", "-"})

# C0/C1 controls other than tab and newline, lone surrogates (file names decoded with surrogateescape), and the
# bidirectional overrides that can make a terminal show text in an order other than its logical one.
_UNPRINTABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """Text for a terminal or a CI log: control characters (ANSI escapes included) shown as `\\xNN` / `\\uNNNN`,
    so that manifest content can neither recolour nor rewrite the output. Tab and newline are kept."""

    def esc(m: re.Match[str]) -> str:
        c = ord(m.group())
        return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"

    return _UNPRINTABLE.sub(esc, text)


_SURROGATE = re.compile("[\ud800-\udfff]")


def no_surrogates(text: str) -> str:
    """Lone surrogates (undecodable bytes in a file name, via surrogateescape) cannot be written as UTF-8:
    replace them with U+FFFD."""
    return _SURROGATE.sub("\ufffd", text)


def is_stdin(file: str) -> bool:
    return file in STDIN_NAMES


def display_file(file: str) -> str:
    """The file as shown to people and to CI tools: forward slashes, no leading `./`."""
    if is_stdin(file):
        return "<stdin>"
    out = file.replace("\\", "/")
    while out.startswith("./"):
        out = out[2:]
    return out or file


def location(lf: LocatedFinding) -> str:
    """`file:line:column`, leaving out what is unknown (0)."""
    loc = display_file(lf.file)
    if lf.line > 0:
        loc += f":{lf.line}"
        if lf.column > 0:
            loc += f":{lf.column}"
    return loc


def rule_title(code: str, rules: Mapping[str, Rule]) -> str:
    r = rules.get(code)
    return r.title if r is not None else ""


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"
