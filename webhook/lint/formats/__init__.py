"""Output formats of `psmdb-backup lint`.

Every renderer is `(report, rules, *, color=False) -> str` and returns the whole output, ending in a newline
(the github format returns "" when there is nothing to annotate). `rules` is the rule table (normally
`webhook.policy.registry.RULES`) used for titles and rule metadata; findings whose code it does not know still
render. Only the text format uses colour; the caller decides it (TTY, NO_COLOR, --color).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from ...policy.registry import Rule
from ..report import LintReport
from . import github, gitlab, jsonfmt, junit, sarif, text

Renderer = Callable[..., str]

FORMATS: dict[str, Renderer] = {
    "text": text.render,
    "json": jsonfmt.render,
    "sarif": sarif.render,
    "junit": junit.render,
    "github": github.render,
    "gitlab": gitlab.render,
}

DEFAULT_FORMAT = "text"


def render(name: str, report: LintReport, rules: Mapping[str, Rule], *, color: bool = False) -> str:
    try:
        renderer = FORMATS[name]
    except KeyError:
        raise ValueError(f"unknown output format {name!r}: use one of {', '.join(FORMATS)}") from None
    return renderer(report, rules, color=color)


__all__ = ["DEFAULT_FORMAT", "FORMATS", "Renderer", "render"]
