"""A sweep as a user runs it, in a process of its own: `python -m pipeline tune ...`, and the
MLflow runs it leaves, for tests that stop it from outside."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mlflow.tracking import MlflowClient

from .conftest import ROOT, local_store


def child_runs(uri: str | None = None, name: str = "rel") -> list:
    client = MlflowClient(uri or local_store())
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        return []
    runs = client.search_runs([experiment.experiment_id])
    return [r for r in runs if "mlflow.parentRunId" in r.data.tags]


def parent_run(uri: str | None = None, name: str = "rel"):
    client = MlflowClient(uri or local_store())
    runs = client.search_runs([client.get_experiment_by_name(name).experiment_id],
                              order_by=["attributes.start_time DESC"])
    return next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)


class Cli:
    """`python -m pipeline tune ...` in its own process group, output to files (a full pipe
    would block it); `module`: another entry point that wraps pipeline's (tests/*.py), `env`
    what it reads, `nohup`: started as `nohup python ...` (SIGHUP ignored)."""

    def __init__(self, workdir: Path, *args: str, module: str = "pipeline",
                 env: dict[str, str] | None = None, nohup: bool = False):
        # Ray's socket paths must stay under 108 bytes: a short folder of its own
        self.ray_tmp = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))
        env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_TMPDIR": str(self.ray_tmp),
               **(env or {})}
        self.out, self.err = (workdir / f"cli_{time.monotonic_ns()}.{s}" for s in ("out", "err"))
        with open(self.out, "w") as out, open(self.err, "w") as err:
            self.process = subprocess.Popen(
                [*(["nohup"] if nohup else []), sys.executable, "-m", module, "tune", *args],
                cwd=workdir, env=env,
                stdout=out, stderr=err, start_new_session=True)

    def finish(self, timeout_s: float = 300) -> tuple[int, str, str]:
        try:
            code = self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:  # hung: it must not outlive the test
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            raise AssertionError(f"still running after {timeout_s} s, killed: "
                                 f"{self.err.read_text()[-2000:]}") from None
        self.ray_started = any(self.ray_tmp.iterdir())
        shutil.rmtree(self.ray_tmp, ignore_errors=True)
        return code, self.out.read_text(), self.err.read_text()

    def signal(self, sig: int, group: bool = False) -> None:
        """To the CLI's process alone (`kill PID`, a container stop), or with `group` to its
        whole process group (a terminal's Ctrl-C or hang-up, `timeout`); SIGKILL always to the
        group, as a lost machine takes every process."""
        if group or sig == signal.SIGKILL:
            os.killpg(self.process.pid, sig)
        else:
            self.process.send_signal(sig)

    def leftovers(self, wait_s: float = 15.0) -> list[str]:
        """Command lines of processes of this CLI's Ray (its temp folder in them) still
        running after up to `wait_s`: they should die with the CLI."""
        deadline = time.monotonic() + wait_s
        while True:
            found = []
            for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
                try:
                    text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
                except OSError:  # gone meanwhile
                    continue
                if str(self.ray_tmp) in text:
                    found.append(text)
            if not found or time.monotonic() > deadline:
                return found
            time.sleep(0.5)

    def running(self) -> bool:
        return self.process.poll() is None


def wait_for(condition, timeout_s: float = 120.0, every_s: float = 0.5,
             while_running: Cli | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if while_running is not None and not while_running.running():
            raise AssertionError(f"the sweep ended early: {while_running.err.read_text()[-2000:]}")
        try:
            if condition():
                return
        except Exception:  # the store may not exist yet
            pass
        time.sleep(every_s)
    raise AssertionError("condition not reached in time")
