"""Progress on the terminal: a line per finished trial and a status line while trials run.

Ray's own reporter prints each trial's whole config (secrets in `params` included) in wide
tables; this prints only the searched values, the metric and the best so far.
"""
from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

from ray import tune

from pipeline.config import get_path
from pipeline.config.secrets import looks_secret


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


class _TrialTracebacks(logging.Filter):
    """Tune logs every failed trial's whole traceback (40-odd lines of Ray's frames; a sweep
    over learning rates fails several trials by design) and a list of them at the end. The
    FAILED line says the error and where its traceback is kept."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        return not message.startswith(("Trial task failed for trial",
                                        "Trials did not complete"))


def _quiet(logger: logging.Logger) -> None:
    if not any(isinstance(f, _TrialTracebacks) for f in logger.filters):
        logger.addFilter(_TrialTracebacks())


def _kept_traceback(trial: Any) -> Path:
    """Where the trial's traceback is kept: its folder in the sweep's storage (Ray's own
    error_file is a staging copy under /tmp/ray), relative to here when below it."""
    path = Path(trial.path, trial.run_metadata.error_filename)
    return path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path


class Progress(tune.Callback):
    def __init__(self, metric: str, mode: str, searched: list[str], total: int,
                 interval_s: float = 20.0):
        self.metric, self.mode, self.searched, self.total = metric, mode, searched, total
        self.interval_s = interval_s
        self.best: float | None = None
        self.finished = self.failed = 0
        self._last_status = time.monotonic()
        self._caught_up = False

    def _values(self, trial: Any) -> str:
        shown = []
        for path in self.searched:
            value = get_path(trial.config, path)
            value = "***" if looks_secret(path, value) else _short(value)
            shown.append(f"{path}={value}")
        return " ".join(shown)

    def _trial_best(self, trial: Any) -> float | None:
        stats = trial.metric_analysis.get(self.metric)
        return None if stats is None else stats[self.mode]

    def _count_best(self, trial: Any) -> float | None:
        value = self._trial_best(trial)
        if value is not None and math.isfinite(value) and (  # inf: diverged, never the best
                self.best is None or (value < self.best) == (self.mode == "min")):
            self.best = value
        return value

    def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
        """A resumed sweep's trials that ended before the stop count too: its first lines read
        "0 finished" and "best: none yet", numbered from 1 again, and never reached the total."""
        if self._caught_up or not trials:
            return
        self._caught_up = True
        for trial in trials:
            if trial.status == "TERMINATED":
                self.finished += 1
                self._count_best(trial)
            elif trial.status == "ERROR":
                self.failed += 1
        if self.finished or self.failed:
            best = "none yet" if self.best is None else _short(self.best)
            print(f"Before the stop: {self.finished} finished, {self.failed} failed of "
                  f"{self.total}; best {self.metric} so far: {best}", flush=True)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.finished += 1
        value = self._count_best(trial)
        epochs = trial.last_result.get("training_iteration", 0)
        print(f"[{self.finished + self.failed}/{self.total}] {trial.trial_id} done after "
              f"{epochs} epoch(s): {self.metric}={_short(value)} (best {_short(self.best)}) "
              f"{self._values(trial)}", flush=True)

    def setup(self, **info: Any) -> None:
        _quiet(logging.getLogger("ray.tune.execution.tune_controller"))
        _quiet(logging.getLogger("ray.tune.tune"))

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.failed += 1
        where = f"(traceback: {_kept_traceback(trial)})" if trial.error_file else ""
        told = " ".join(part for part in (last_error_line(trial), self._values(trial), where)
                        if part)
        print(f"[{self.finished + self.failed}/{self.total}] {trial.trial_id} FAILED: {told}",
              flush=True)

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        if time.monotonic() - self._last_status < self.interval_s:
            return
        self._last_status = time.monotonic()
        running = sum(1 for t in trials if t.status == "RUNNING")
        best = "none yet" if self.best is None else _short(self.best)
        print(f"... {running} running, {self.finished} finished, {self.failed} failed of "
              f"{self.total}; best {self.metric} so far: {best}", flush=True)


def last_error_line(trial: Any) -> str:
    """The last line of a failed trial's traceback: the exception and its message."""
    try:
        lines = [line for line in Path(trial.error_file).read_text().splitlines() if line.strip()]
    except (OSError, TypeError):
        return "trial failed"
    return lines[-1] if lines else "trial failed"
