"""How a sweep stops on a signal: SIGINT, SIGTERM and SIGHUP all end it the way Ctrl-C does.

Ray Tune catches the first SIGINT, saves its state and returns from `fit` normally, with the
interrupted trials TERMINATED like finished ones; its handler puts the previous one back only
when it fired, which is what tells the two apart. SIGTERM (`ray job stop`, a container or spot
shutdown, systemd) and SIGHUP (a closed terminal) would otherwise kill the driver through
Ray's own handler, with a C-level stack dump and nothing saved: here they go through Tune's
SIGINT handler instead. A second signal during that shutdown ends the process at once, still
without a dump; the journal (`pipeline.execution.journal`) makes that safe too.
"""
from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from typing import Any

from ray import tune

STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


def exit_code(signum: int) -> int:
    """The shell's convention: 128 + the signal number (130 Ctrl-C, 143 TERM, 129 HUP)."""
    return 128 + signum


def _forward_to_tune(received: list[int]) -> Callable[[int, Any], None]:
    def handler(signum: int, frame: Any) -> None:
        if received:  # a second signal: stop now
            os._exit(exit_code(received[0]))
        received.append(signum)
        tune_handler = signal.getsignal(signal.SIGINT)
        if callable(tune_handler):
            tune_handler(signal.SIGINT, frame)
    return handler


def fit_until_signal(tuner: tune.Tuner) -> tuple[tune.ResultGrid, int | None]:
    """Tuner.fit, and the signal that stopped it (None when it ran to the end)."""
    if threading.current_thread() is not threading.main_thread() \
            or os.environ.get("TUNE_DISABLE_SIGINT_HANDLER", "0") != "0":
        return tuner.fit(), None
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, *STOP_SIGNALS)}
    received: list[int] = []
    forward = _forward_to_tune(received)
    for signum in STOP_SIGNALS:
        signal.signal(signum, forward)
    try:
        results = tuner.fit()
        if signal.getsignal(signal.SIGINT) is before[signal.SIGINT] and not received:
            received.append(signal.SIGINT)  # Tune's handler fired and put ours back
        return results, received[0] if received else None
    finally:
        for signum, handler in before.items():  # Tune leaves its own SIGINT handler installed
            signal.signal(signum, handler)
