"""How the CLI's Ray stops: its local processes out of the terminal's process group, and a
signal while Ray shuts down at the end ending the process quietly. Real Ray, in a process of
its own (these change process-wide state: signal handlers, sessions)."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from ..conftest import ROOT

SCRIPT = """
import os, signal, threading, time
import ray
from pipeline.execution import stopping

with stopping.own_sessions():
    ray.init(num_cpus=1, include_dashboard=False, logging_level="ERROR")

def session_of(pid):
    with open(f"/proc/{pid}/stat") as stat:  # the fields after the name: state ppid pgrp sid
        return stat.read().rsplit(")", 1)[1].split()[3]

children = [int(p) for p in os.listdir("/proc") if p.isdigit()
            and open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()[1] == str(os.getpid())]
print("children", len(children))
print("in the driver's session", sum(session_of(p) == session_of(os.getpid()) for p in children))

# Ray stops its autoscaler monitor last, a second after SIGTERM: it should be gone by then
monitor = ray._private.worker._global_node.all_processes["monitor"][0].process
shutdown = ray.shutdown
def shutdown_saying_if_the_monitor_runs():
    with open("monitor-state", "w") as state:  # the terminal hears nothing from here on
        state.write(f"monitor running as ray.shutdown starts {monitor.poll() is None}")
    os.write(1, b"ray's teardown on stdout")  # as Ray's C++ and log thread write
    os.write(2, b"ray's teardown on stderr")
    # Ctrl-C while Ray shuts down at the end (some 0.3 s)
    threading.Timer(0.1, os.kill, (os.getpid(), signal.SIGINT)).start()
    shutdown()
ray.shutdown = shutdown_saying_if_the_monitor_runs

stopping.shut_down_ray(7)
time.sleep(5)  # the signal ends the process (exit 7) before this does (exit 0)
"""


@pytest.mark.slow
def test_ray_leaves_the_terminal_group_and_a_stop_during_its_shutdown_is_quiet() -> None:
    with tempfile.TemporaryDirectory(prefix="ray", dir="/tmp") as ray_tmp:
        done = subprocess.run(
            [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120, check=False,
            env={**os.environ, "PYTHONPATH": str(ROOT), "RAY_TMPDIR": ray_tmp},
            cwd=Path(ray_tmp), start_new_session=True)
        monitor = (Path(ray_tmp) / "monitor-state").read_text()
    lines = done.stdout.splitlines()
    assert lines[0].startswith("children ") and int(lines[0].split()[1]) >= 2, done.stderr
    # the GCS, raylet... would get the SIGTERM / SIGHUP meant for the driver
    assert lines[1] == "in the driver's session 0"
    assert monitor == "monitor running as ray.shutdown starts False"
    # the command's own lines end it: Ray's teardown prints nothing after them
    assert "ray's teardown" not in done.stdout + done.stderr
    assert done.returncode == 7  # the Ctrl-C during the shutdown ended it, with its code
    assert "Traceback" not in done.stderr and "KeyboardInterrupt" not in done.stderr


FINALISER_SCRIPT = """
import os, signal, sys
from pipeline.execution import stopping

# Python's Ctrl-C handler, as in a terminal (a shell's background job starts with SIGINT ignored)
signal.signal(signal.SIGINT, signal.default_int_handler)

class SignalsWhenCollected:
    def __init__(self, signum):
        self.signum = signum

    def __del__(self):  # the handler runs in here, where Python cannot raise
        os.kill(os.getpid(), self.signum)
        for _ in range(100_000):
            pass

for signum in (signal.SIGTERM, signal.SIGINT):
    with stopping.signals_interrupt() as signals:
        SignalsWhenCollected(signum)  # collected at once
        print("went on", signals == [signum])
    try:
        stopping.raise_if_stopped(signals)
    except stopping.Interrupted as stop:
        print("raised", stop.exit_code)
stopping.raise_if_stopped([])
print("no signal: nothing raised")
"""


def test_a_stop_that_lands_in_a_finaliser_is_kept_and_raised_after() -> None:
    """Python drops an exception raised in a `__del__` with an "Exception ignored" traceback:
    a Ctrl-C there during the summary ended the sweep with exit 0."""
    done = subprocess.run([sys.executable, "-c", FINALISER_SCRIPT], capture_output=True,
                          text=True, timeout=60, check=False, cwd=ROOT)
    assert done.stdout.splitlines() == ["went on True", "raised 143", "went on True",
                                        "raised 130", "no signal: nothing raised"], done.stderr
    assert "Exception ignored" not in done.stderr and "Traceback" not in done.stderr


TEARDOWN_SCRIPT = """
import os, runpy, signal, time
import ray  # a command that used Ray
import pipeline.cli

class SignalsInTeardown:
    def __del__(self):  # Python's teardown would run this, its default handlers back in place
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(1)

pipeline.cli.main = lambda argv=None: 0  # a command that finished its work
kept_until_teardown = SignalsInTeardown()
runpy.run_module("pipeline", run_name="__main__")
"""


def test_a_finished_command_ends_with_its_code_without_pythons_teardown() -> None:
    """A Ctrl-C or SIGTERM in the second and a half of Python's teardown after a finished
    sweep ended it with -2 / -15 (the soak saw three); the teardown is skipped now."""
    done = subprocess.run([sys.executable, "-c", TEARDOWN_SCRIPT], capture_output=True,
                          text=True, timeout=60, check=False, cwd=ROOT)
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
