"""What the sweep's journal costs (pipeline/execution/journal.py), through the real pipeline.

    .venv/bin/python -m bench journal        (about 1.5 minutes on 2 cores)

Three sweeps, MLflow on SQLite: 24 trials x 4 reports of 0.25 s on 2 slots (every trial start,
report and end is a trial event, and a step of Tune's loop after one saves a snapshot once
19x the last save's time has passed), 120 trials x 5 reports of 0.1 s on 4 slots with a
checkpoint at every report, as the built-in trial makes one per epoch (the sweep keeps one
per trial), and a PBT population of 16 on 4 slots (8 reports of 0.2 s, a 4 MB checkpoint at
each). Reports the journal's saves, their mean cost and the cost per trial event, the
times Ray Tune saved its own state (it did after every checkpoint: see the journal's
`on_step_begin`), the longest a due save waited on a scheduler's pending decision, and
Tuner.fit's wall time against the ideal. Results go to bench/results/journal.md.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

from ray.tune.execution.tune_controller import TuneController

from bench.trainables import sleep_sweep
from pipeline import study
from pipeline.execution.journal import JOURNAL_DIR, STATS

RESULTS = Path(__file__).parent / "results" / "journal.md"
# PBT with more members than slots: after every report of every trial a PAUSE (to yield the
# slot) or an exploit waits on that trial's save of 4 MB, so one is nearly always pending,
# and the journal does not save while one is
POPULATION = {"search.scheduler": "pbt", "search.pbt.perturbation_interval": 1,
              "search.pbt.quantile_fraction": 0.5, "params.checkpoint_mb": 4,
              "train.epochs": 8}
SWEEPS = [  # (trials, reports, seconds a report, slots, trainable, other values)
    (24, 4, 0.25, 2, "sleep_epochs", {}),  # reports only
    (120, 5, 0.1, 4, "sleep_checkpoints", {}),  # a checkpoint at every report
    (16, 8, 0.2, 4, "sleep_checkpoints", POPULATION),
]


def _sweep(folder: Path, trials: int, reports: int, report_s: float, slots: int,
           trainable: str, values: dict) -> str:
    """One sweep's table row."""
    tune_saves: list[float] = []  # Tune's own, not the journal's (which calls it too)
    save_to_dir = TuneController.save_to_dir

    def timed(self: TuneController) -> None:
        started = time.perf_counter()
        save_to_dir(self)
        if not sys._getframe(1).f_code.co_filename.endswith("journal.py"):
            tune_saves.append(time.perf_counter() - started)

    exp = sleep_sweep("bench-journal", folder, trials, reports, report_s, slots, trainable)
    # `slots` trials at once on any machine (the sleeps need no CPU)
    exp = exp.with_values({"resources.cpu": min(1.0, (os.cpu_count() or 1) / slots),
                           **values})
    TuneController.save_to_dir = timed  # counted, not changed
    try:
        outcome = study.run(exp, register=False)
    finally:
        TuneController.save_to_dir = save_to_dir
    stats = json.loads((folder / "ray_results" / outcome.sweep_name / JOURNAL_DIR
                        / STATS).read_text())
    events = trials * (reports + 2)  # a start, the reports and an end per trial
    ideal_s = trials * reports * report_s / slots
    mean_ms = 1000 * stats["save_s"] / max(1, stats["saves"])
    kind = f"{trainable}, pbt" if values.get("search.scheduler") == "pbt" else trainable
    return (f"| {trials} x {reports} x {report_s} s, {slots} slots, {kind} | "
            f"{stats['saves']} | {mean_ms:.2f} ms | {1000 * stats['save_s'] / events:.2f} ms | "
            f"{len(tune_saves)} ({sum(tune_saves):.1f} s) | "
            f"{stats['deferred_max_s']:.2f} s | "
            f"{outcome.fit_s:.1f} s / {ideal_s:.0f} s = {outcome.fit_s / ideal_s:.2f} |")


def main() -> None:
    rows = []
    for shape in SWEEPS:
        with tempfile.TemporaryDirectory() as tmp:
            rows.append(_sweep(Path(tmp), *shape))
    lines = [
        "# Journal cost (bench/journal.py)", "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M')}; MLflow on SQLite, local storage.", "",
        ("| sweep | journal saves | mean per save | journal time per trial event | "
         "Tune's own state saves (their time) | longest a due save waited on a scheduler's "
         "pending STOP/PAUSE | Tuner.fit / ideal |"),
        "| --- | --- | --- | --- | --- | --- | --- |", *rows, ""]
    RESULTS.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
