"""`python -m pipeline tune ...` killed (SIGKILL, its whole process group) the moment Ray Tune's
checkpoint manager first lets go of a surplus checkpoint (`num_to_keep`): inside the step that
registered a newer one, before the journal's save at that step's end.

test_kill_matrix.py runs it in its own process. A timed kill finds this moment about one time
in four on a loaded machine; this one lands there every time.
"""
from __future__ import annotations

import os
import signal
import sys

from ray.train._internal.checkpoint_manager import _CheckpointManager

from pipeline.cli import main

_register = _CheckpointManager.register_checkpoint


def register_then_die_on_a_drop(self: _CheckpointManager, result) -> None:
    kept = len(self._checkpoint_results)
    _register(self, result)
    if len(self._checkpoint_results) <= kept:  # one or more left the manager's list
        os.killpg(os.getpgrp(), signal.SIGKILL)


if __name__ == "__main__":
    _CheckpointManager.register_checkpoint = register_then_die_on_a_drop
    sys.exit(main(sys.argv[1:]))
