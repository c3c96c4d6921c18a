"""State and behaviour of the simulated PBM: config, profiles, backups, restores, PITR timeline, and the clock that
moves operations through PBM's statuses. The CLI layer (cli.py) parses argv and renders output; everything here
works on plain dicts kept in one JSON file per simulated cluster, guarded by an flock so that concurrent `pbm`
invocations (the controller polls while another exec runs) see a consistent state.

`Sim` is built in layers, each a module that may use the ones below it: `core` (state, fail points, storage
handles, the phase clock), `backups` (and the PITR timeline), `profiles` (config, profiles, resync), `restores`;
`common`, `config` and `state` hold the constants and helpers, the config documents and the state file.

Error texts follow PBM 2.15.0 (PBM:cmd/pbm/*.go at 6f9fc3bf); each raising site names the PBM source it copies.
"""

from __future__ import annotations

from .common import TERMINAL
from .restores import RestoreOps


class Sim(RestoreOps):
    """The whole simulated PBM: each layer (core, backups, profiles, restores) may use the ones below it."""

    def advance(self, *, poll: bool = False) -> None:
        """Move every in-flight operation to where the clock says it is, running each phase's side effects in order.
        `poll` counts this invocation as a status call (PBM_SIM_ADVANCE=calls moves one phase per status call)."""
        self._pitr_tick()
        for b in list(self.data["backups"].values()):
            if b["status"] not in TERMINAL and b.get("phase") is not None:
                self._advance_backup(b)
        for r in list(self.data["restores"].values()):
            if r["status"] not in TERMINAL:
                self._advance_restore(r)
        self._pitr_tick()
