"""How a sweep stops on a signal: SIGINT, SIGTERM and SIGHUP all end it the way Ctrl-C does.

Ray Tune catches the first SIGINT, saves its state and returns from `fit` normally, with the
interrupted trials TERMINATED like finished ones; its handler puts the previous one back only
when it fired, which is what tells the two apart. SIGTERM (`ray job stop`, a container or spot
shutdown, systemd) and SIGHUP (a closed terminal) would otherwise kill the driver through
Ray's own handler, with a C-level stack dump and nothing saved: here they go through Tune's
SIGINT handler instead (in fit's first moments, before Tune has put that in, they stop it as
they do outside fit, with their own exit code). A second signal during that shutdown ends the
process at once, still without a dump; the journal (`pipeline.execution.journal`) makes that
safe too.

A terminal's Ctrl-C and hang-up, `timeout` and `kill -TERM -PGID` signal the whole process
group, and Ray starts its local processes (GCS, raylet, and through it the workers) in the
driver's: a SIGTERM or SIGHUP killed the GCS under the driver as it saved, which then waited
60 s for it and died in C++. `own_sessions` starts them in sessions of their own, so the
signal reaches only the driver; they still die with it (Ray's kernel fate-sharing, the
condition for doing this at all). `ray_starting` keeps Ray's start from replacing our
handlers: it holds SIGTERM and SIGHUP until the start is done. Tune's two warnings about a
stop (one naming `Tuner.restore`, which is not how a sweep here goes on) become one line of
ours.
"""
from __future__ import annotations

import contextlib
import faulthandler
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import ray
from ray import tune

STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
STOPPING = "stopping: saving the sweep's state for --resume (a second signal stops at once)"


def exit_code(signum: int) -> int:
    """The shell's convention: 128 + the signal number (130 Ctrl-C, 143 TERM, 129 HUP)."""
    return 128 + signum


class Interrupted(KeyboardInterrupt):
    """A signal stopped the sweep (its state saved first); --resume continues it."""

    def __init__(self, message: str, signum: int = signal.SIGINT):
        super().__init__(message)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return exit_code(self.signum)


@contextlib.contextmanager
def _stop_signals_to(handler: Callable[[int, Any], None]) -> Iterator[None]:
    """SIGTERM and SIGHUP go to `handler` in here, unless the process was started with them
    ignored (`nohup` ignores SIGHUP so that a sweep outlives its terminal); every stop
    signal's handler (SIGINT's too, which Tune replaces during fit and leaves installed) is
    put back after."""
    before = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, *STOP_SIGNALS)}
    for signum in STOP_SIGNALS:
        if before[signum] != signal.SIG_IGN:
            signal.signal(signum, handler)
    try:
        yield
    finally:
        for signum, previous in before.items():
            signal.signal(signum, previous)


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()  # where signals are handled


@contextlib.contextmanager
def signals_interrupt() -> Iterator[list[int]]:
    """SIGTERM and SIGHUP raise `Interrupted` as Ctrl-C raises KeyboardInterrupt, so a stop
    outside Tuner.fit (the LR range test, the summary) unwinds through the code that marks the
    sweep's runs, instead of Ray's handler's C-level stack dump. Yields the signals received:
    what Ray raises out of an interrupted `ray.get` is a new KeyboardInterrupt, which does not
    say which signal it was, and a stop Python dropped in a finaliser, which
    `raise_if_stopped` raises again."""
    received: list[int] = []

    def interrupt(signum: int, frame: Any) -> None:
        received.append(signum)
        raise Interrupted("", signum)

    if not _in_main_thread():
        yield received
        return
    with _stop_signals_to(interrupt), _stops_where_python_cannot_raise(received):
        yield received


@contextlib.contextmanager
def _stops_where_python_cannot_raise(received: list[int]) -> Iterator[None]:
    """A signal's handler runs wherever the main thread is, and in a finaliser (`__del__`, a
    weakref or garbage-collector callback: Ray's and MLflow's objects have them) the stop it
    raises cannot propagate: Python prints "Exception ignored in ..." with a traceback and
    goes on, and a Ctrl-C during the summary ended with exit 0. Such a stop is kept in
    `received` (printed nowhere), for the caller to act on: `raise_if_stopped`."""
    previous = sys.unraisablehook

    def keep_stops(unraisable: Any) -> None:
        if not isinstance(unraisable.exc_value, KeyboardInterrupt):
            previous(unraisable)
        elif not isinstance(unraisable.exc_value, Interrupted):  # ours recorded it already
            received.append(signal.SIGINT)  # Python's own Ctrl-C handler raised it

    sys.unraisablehook = keep_stops
    try:
        yield
    finally:
        sys.unraisablehook = previous


def raise_if_stopped(received: list[int]) -> None:
    """Raise the stop a signal asked for where Python could not (see
    `_stops_where_python_cannot_raise`); nothing when no signal came."""
    if received:
        raise Interrupted("", received[0])


def _forward_to_tune(received: list[int], ours: Any) -> Callable[[int, Any], None]:
    def handler(signum: int, frame: Any) -> None:
        if received:  # a second signal: stop now
            os._exit(exit_code(received[0]))
        received.append(signum)
        tune_handler = signal.getsignal(signal.SIGINT)
        if tune_handler is ours:  # fit has not put Tune's in yet: nothing of Tune's to save
            raise Interrupted("", signum)
        if callable(tune_handler):
            tune_handler(signal.SIGINT, frame)
    return handler


def fit_until_signal(tuner: tune.Tuner) -> tuple[tune.ResultGrid, int | None]:
    """Tuner.fit, and the signal that stopped it (None when it ran to the end)."""
    if not _in_main_thread() or os.environ.get("TUNE_DISABLE_SIGINT_HANDLER", "0") != "0":
        return tuner.fit(), None
    say_stops_our_way()
    ours = signal.getsignal(signal.SIGINT)
    received: list[int] = []
    with _stop_signals_to(_forward_to_tune(received, ours)):
        results = tuner.fit()
        if signal.getsignal(signal.SIGINT) is ours and not received:
            received.append(signal.SIGINT)  # Tune's handler fired and put ours back
    return results, received[0] if received else None


@contextlib.contextmanager
def own_sessions() -> Iterator[None]:
    """Processes Ray starts in here (a local cluster's) start with the stop signals unblocked
    (`ray_starting` holds them in the driver, and a child inherits that) and, where Ray's
    fate-sharing makes it safe, lead sessions of their own."""
    from ray._private import services, utils

    if sys.platform == "win32":  # no preexec_fn there, and no signal masks
        yield
        return
    # without fate-sharing Ray's reaper cleans up by process group: leave them in it
    own_session = sys.platform.startswith("linux") and utils.detect_fate_sharing_support()
    popen = services.ConsolePopen

    class OurWay(popen):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, preexec_fn: Callable[[], None] | None = None,
                     **kwargs: Any) -> None:
            def preexec() -> None:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
                if preexec_fn is not None:
                    preexec_fn()  # Ray's: SIGINT blocked, fate-sharing
            if own_session:
                kwargs["start_new_session"] = True
            super().__init__(*args, preexec_fn=preexec, **kwargs)

    services.ConsolePopen = OurWay
    try:
        yield
    finally:
        services.ConsolePopen = popen


@contextlib.contextmanager
def ray_starting() -> Iterator[None]:
    """Around `ray.init`, which puts in stop handlers of its own: the driver's for SIGTERM
    (`sys.exit(15)`: a silent exit 15) and, in its C++ core, a failure handler that catches
    SIGTERM too (a stack dump, then an abort as the process exits). In here SIGTERM and SIGHUP
    are held, Ray's Python handler is not installed, and the driver's C++ one is left out
    (Python's `faulthandler` reports a crash in its place); a signal held meanwhile then stops
    the sweep as it would have before. Ctrl-C is not held, so a start that hangs can still be
    stopped (Ray leaves SIGINT alone). Ray's processes: `own_sessions`."""
    from ray._private import ray_constants, utils

    if not _in_main_thread():
        with own_sessions():
            yield
        return  # Ray's handlers win here, as before this existed
    before = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    held: list[int] = []
    set_sigterm_handler = utils.set_sigterm_handler
    failure_handler_off = ray_constants.RAY_DISABLE_FAILURE_SIGNAL_HANDLER
    utils.set_sigterm_handler = lambda handler: None
    ray_constants.RAY_DISABLE_FAILURE_SIGNAL_HANDLER = True  # read as the core worker starts
    if not faulthandler.is_enabled():
        faulthandler.enable()
    try:
        with _stop_signals_to(lambda signum, frame: held.append(signum)), own_sessions():
            yield
    finally:
        utils.set_sigterm_handler = set_sigterm_handler
        ray_constants.RAY_DISABLE_FAILURE_SIGNAL_HANDLER = failure_handler_off
    if held:
        handler = before[held[0]]
        if callable(handler):
            handler(held[0], None)
        elif handler == signal.SIG_DFL:
            os.kill(os.getpid(), held[0])


class _OurStopLines(logging.Filter):
    """Tune's SIGINT handler is the one place that knows a stop began, and it says so only
    through this warning: the filter prints our line in its place."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        if message.startswith("Stop signal received"):
            print(STOPPING, file=sys.stderr, flush=True)
            return False
        return not message.startswith("Experiment has been interrupted")


def say_stops_our_way() -> None:
    """Tune's warnings about a stop give way to `STOPPING` and, at the end, the CLI's line."""
    tune_logger = logging.getLogger("ray.tune.tune")
    if not any(isinstance(f, _OurStopLines) for f in tune_logger.filters):
        tune_logger.addFilter(_OurStopLines())


def shut_down_ray(code: int) -> None:
    """Stop the local Ray now rather than at exit, where a Ctrl-C during its seconds of
    shutdown printed a traceback; a signal now ends the process with the command's code
    (the work is done and saved, and Ray's processes die with it)."""
    if not ray.is_initialized():
        return
    sys.stdout.flush()
    sys.stderr.flush()
    for signum in (signal.SIGINT, *STOP_SIGNALS):
        signal.signal(signum, lambda *_: os._exit(code))
    # The command has said all it says. Ray's teardown can still print from C++ and its log
    # thread (a task cut off by a stop: "task_manager.cc: Failed to push error to driver",
    # "(raylet) A worker died ..."), after our last line: its output goes nowhere.
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), sys.stdout.fileno())
        os.dup2(devnull.fileno(), sys.stderr.fileno())
    _kill_autoscaler_monitor()
    ray.shutdown()


def _kill_autoscaler_monitor() -> None:
    """A local Ray's autoscaler monitor, killed before `ray.shutdown`: Ray stops it after the
    GCS, and on SIGTERM it first reports its end to the GCS that is gone, so every sweep
    waited a second (Ray's grace period) before Ray killed it anyway. It keeps no state. Ray
    only joined (`cluster.address`): no process of ours to stop."""
    from ray._private import ray_constants, worker

    node = worker._global_node
    for info in node.all_processes.get(ray_constants.PROCESS_TYPE_MONITOR, []) if node else []:
        info.process.kill()
        info.process.wait()
