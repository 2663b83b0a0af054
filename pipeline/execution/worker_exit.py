"""A worker of a sweep's ends when SIGTERM tells it to, quietly.

The raylet ends a worker it has no more use for (a trial's actor as a sweep ends or stops, a
job's workers as its driver leaves) with SIGTERM, and Ray's handler in the worker raises
SystemExit wherever its main thread next runs Python. Where that is a weakref callback or a
`__del__`, Python cannot raise: it prints "Exception ignored in ..." with the traceback, which
Ray forwards to the sweep's terminal, and the worker lives on until the raylet's SIGKILL.
`install` runs in every worker before it takes a task (Ray's `worker_process_setup_hook`, so it
must stay cheap to import) and ends such a worker at once instead, as the exit asked.
"""
from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

SETUP_HOOK = f"{__name__}.install"
"""What `runtime_env["worker_process_setup_hook"]` names."""


def install() -> None:
    sys.unraisablehook = exiting_on_swallowed_exit(sys.unraisablehook)


def exiting_on_swallowed_exit(report: Callable[[Any], None]) -> Callable[[Any], None]:
    """An unraisable-exception hook: a SystemExit Python had to swallow ends the process with
    its code; anything else goes to `report` as before."""
    def hook(unraisable: Any) -> None:
        exit_request = unraisable.exc_value
        if not isinstance(exit_request, SystemExit):
            report(unraisable)
            return
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()  # what the worker printed before still reaches its log
            except (AttributeError, OSError, ValueError):
                pass
        code = exit_request.code
        os._exit(code if isinstance(code, int) else 1)
    return hook
