"""In-trial throughput in one reused Ray worker: does the 10th trial train as fast as the 1st,
and as fast as the same loop outside Ray?

    .venv/bin/python -m bench.reuse            (about 2-3 minutes on 2 cores)

Two models, each trained bare (in this process, 1 torch thread) and in TRIALS trials of one
sweep with max_concurrent 1 and a whole machine's CPUs per trial, so every trial runs in the
same reused actor one after the other. Figures: samples/s of the training loop (median over
epochs, first epoch left out: it pays for warm-up), per trial in start order.
Results go to bench/results/reuse.md.
"""
from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import ray
import torch

from bench.overhead import trial_samples_per_s
from pipeline.config import Experiment
from pipeline.training import loop as training
from pipeline.training.data import load

RESULTS = Path(__file__).parent / "results" / "reuse.md"
TRIALS, EPOCHS = 10, 4
BARE_RUNS = 3
"""Bare runs before the sweep and again after it; the reference is their median."""
CASES = {
    "cnn, batch 256 (fake 3x32x32)": {
        "data": {"dataset": "fake", "fake_size": 1536, "batch_size": 256},
        "model": {"arch": "cnn", "channels": 16, "hidden": 64}},
    "tiny mlp, batch 64 (digits)": {
        "data": {"dataset": "digits", "batch_size": 64}, "model": {"arch": "mlp", "hidden": 32}},
}


def _steady(values: list[float]) -> float:
    return statistics.median(values[1:] if len(values) > 1 else values)


def bare(exp: Experiment) -> float:
    torch.set_num_threads(1)
    data = load(exp.data, exp.seed)
    return _steady([e.metrics["samples_per_s"] for e in training.fit(exp, data)])


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, sections in CASES.items():
            exp = Experiment.model_validate({
                "name": "bench-reuse", **sections, "train": {"epochs": EPOCHS, "lr": 0.01},
                "resources": {"cpu": 1},
                "search": {"searcher": "random", "num_samples": TRIALS, "max_concurrent": 1,
                           "space": {"train.lr": {"loguniform": [0.005, 0.02]}}}})
            # Bare before and after the sweep: on this VM the same loop moves by up to 2x
            # between back-to-back runs (CPU time tracks wall time: the core itself is
            # slower, not preempted), so one bare figure is no reference.
            before = [bare(exp) for _ in range(BARE_RUNS)]
            per_trial = trial_samples_per_s(exp, Path(tmp), _steady)
            after = [bare(exp) for _ in range(BARE_RUNS)]
            rows.append((name, before + after, per_trial))
    ray.shutdown()
    lines = ["# In-trial throughput in one reused worker (`python -m bench.reuse`)", "",
             (f"Measured {time.strftime('%Y-%m-%d %H:%M')} on this machine (2 cores, no GPU); the "
              "bare loop was run 3 times before and 3 times after the sweep."), "",
             ("| model | bare samples/s, median (range of 6 runs) | in-trial / bare, median | 1st trial | 10th / 1st | "
              "per trial (in-trial / bare, start order) |"), "| --- | --- | --- | --- | --- | --- |"]
    for name, references, per_trial in rows:
        reference = statistics.median(references)
        ratios = [t / reference for t in per_trial]
        lines.append(f"| {name} | {reference:,.0f} ({min(references):,.0f}-"
                     f"{max(references):,.0f}) | {statistics.median(ratios):.2f} | "
                     f"{ratios[0]:.2f} | {per_trial[-1] / per_trial[0]:.2f} | "
                     + " ".join(f"{r:.2f}" for r in ratios) + " |")
    text = "\n".join(lines) + "\n"
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
