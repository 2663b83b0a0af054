"""The progress lines of a resumed sweep count the trials that ended before the stop."""
from __future__ import annotations

from dataclasses import dataclass, field

from pipeline.execution.progress import Progress


@dataclass
class Trial:
    """What the progress callback reads of a Ray Tune Trial."""

    trial_id: str
    status: str
    best: float | None = None
    config: dict = field(default_factory=lambda: {"train": {"lr": 0.1}})
    last_result: dict = field(default_factory=lambda: {"training_iteration": 3})

    @property
    def metric_analysis(self) -> dict:
        return {} if self.best is None else {"val_loss": {"min": self.best, "max": self.best}}


def test_a_resumed_sweep_counts_and_ranks_the_trials_that_ended_before_the_stop(capsys) -> None:
    progress = Progress("val_loss", "min", ["train.lr"], total=4)
    running = Trial("d", "RUNNING")
    trials = [Trial("a", "TERMINATED", 0.5), Trial("b", "TERMINATED", 0.3), Trial("c", "ERROR"),
              running]
    progress.on_step_begin(0, trials)
    progress.on_step_begin(1, trials)  # counted once
    running.best, running.status = 0.4, "TERMINATED"
    progress.on_trial_complete(1, trials, running)
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["Before the stop: 2 finished, 1 failed of 4; best val_loss so far: 0.3",
                     "[4/4] d done after 3 epoch(s): val_loss=0.4 (best 0.3) train.lr=0.1"]


def test_a_new_sweep_prints_nothing_before_its_first_trial(capsys) -> None:
    progress = Progress("val_loss", "min", ["train.lr"], total=2)
    progress.on_step_begin(0, [Trial("a", "PENDING"), Trial("b", "RUNNING")])
    assert capsys.readouterr().out == ""


def test_an_infinite_score_is_never_the_best_so_far(capsys) -> None:
    progress = Progress("val_loss", "max", ["train.lr"], total=2)
    progress.on_step_begin(0, [Trial("a", "TERMINATED", float("inf")),
                               Trial("b", "TERMINATED", 0.5)])
    assert capsys.readouterr().out.strip().endswith("best val_loss so far: 0.5")
