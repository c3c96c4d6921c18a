"""`psmdb-backup completion SHELL`: a static completion script generated from the argparse parser by shtab.

Subcommands, flags and `choices` (such as the `--format` values) come from the parser, so the script cannot drift
from the CLI. Arguments whose metavar names a file (FILE, PATH) complete file names, DIR ones directories: that
convention is the only thing the parser has to follow.
"""

from __future__ import annotations

import argparse

# shtab's shells that matter for a Kubernetes CLI; shtab is imported only when a script is generated (it costs
# ~50 ms, which every `lint` would otherwise pay).
SHELLS = ("bash", "zsh", "fish", "tcsh")

FILE_METAVARS = frozenset({"FILE", "PATH"})
DIR_METAVARS = frozenset({"DIR"})


def _parsers(parser: argparse.ArgumentParser):
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):  # aliases map to the same parser
                yield from _parsers(sub)


def script(parser: argparse.ArgumentParser, shell: str) -> str:
    import shtab

    for p in _parsers(parser):
        for action in p._actions:
            if action.metavar in FILE_METAVARS:
                action.complete = shtab.FILE
            elif action.metavar in DIR_METAVARS:
                action.complete = shtab.DIRECTORY
    return shtab.complete(parser, shell=shell)
