"""What every worker of a sweep does before its first task (Ray's `worker_process_setup_hook`,
named in the sweep's runtime_env; it runs in each worker process, so it stays cheap to import).

- It ends when SIGTERM tells it to, quietly. The raylet ends a worker it has no more use for (a
  trial's actor as a sweep ends or stops, a job's workers as its driver leaves) with SIGTERM,
  and Ray's handler raises SystemExit wherever the worker's main thread next runs Python. Where
  that is a weakref callback or a `__del__`, Python cannot raise: it printed "Exception ignored
  in ..." with the traceback, which Ray forwards to the sweep's terminal, and the worker lived
  on until the raylet's SIGKILL. Now such a worker ends at once, as the exit asked.
- Ray Tune's and Ray Train's INFO lines stay in the worker's log file: forwarded, they reached
  the terminal on every resume ("Restored on ... from checkpoint"), which our progress lines
  already say. Their warnings and errors still reach it.
"""
from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from typing import Any

SETUP_HOOK = f"{__name__}.install"
"""What `runtime_env["worker_process_setup_hook"]` names."""

QUIET_LOGGERS = ("ray.tune", "ray.train")


def install() -> None:
    sys.unraisablehook = exiting_on_swallowed_exit(sys.unraisablehook)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


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
