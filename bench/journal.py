"""What the sweep's journal costs (pipeline/execution/journal.py), through the real pipeline.

    .venv/bin/python -m bench journal        (about 1 minute on 2 cores)

A sweep of 24 trials x 4 reports of 0.25 s on 2 slots, MLflow on SQLite: every trial start,
report, checkpoint and end is a trial event, and a step of Tune's loop after one saves a
snapshot (Tune writing its state, then the copy into the journal) once 19x the last save's
time has passed. Reports the saves, their
mean cost, the cost per trial event, and Tuner.fit's wall time against the ideal
(24 x 1 s / 2 slots = 12 s). Results go to bench/results/journal.md.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

from bench.trainables import sleep_sweep
from pipeline import study
from pipeline.execution.journal import JOURNAL_DIR, STATS

RESULTS = Path(__file__).parent / "results" / "journal.md"
TRIALS, REPORTS, REPORT_S, SLOTS = 24, 4, 0.25, 2


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        exp = sleep_sweep("bench-journal", folder, TRIALS, REPORTS, REPORT_S, SLOTS)
        outcome = study.run(exp, register=False)
        stats = json.loads((folder / "ray_results" / outcome.sweep_name / JOURNAL_DIR
                            / STATS).read_text())
    events = TRIALS * (REPORTS + 2)  # a start, the reports and an end per trial
    ideal_s = TRIALS * REPORTS * REPORT_S / SLOTS
    mean_ms = 1000 * stats["save_s"] / max(1, stats["saves"])
    lines = [
        "# Journal cost (bench/journal.py)", "",
        f"{TRIALS} trials x {REPORTS} reports of {REPORT_S} s on {SLOTS} slots, MLflow on "
        "SQLite, local storage.", "",
        "| saves | mean per save | journal time per trial event | Tuner.fit / ideal |",
        "| --- | --- | --- | --- |",
        f"| {stats['saves']} | {mean_ms:.2f} ms | {1000 * stats['save_s'] / events:.2f} ms | "
        f"{outcome.fit_s:.1f} s / {ideal_s:.0f} s = {outcome.fit_s / ideal_s:.2f} |", ""]
    RESULTS.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
