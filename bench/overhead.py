"""Orchestration overhead and in-trial throughput, through the real pipeline.

    .venv/bin/python -m bench.overhead        (about 2 minutes on 2 cores)

1. Overhead: 12 trials of 5 s (5 reports of 1 s) on 2 slots with MLflow (SQLite) logging every
   report: Tuner.fit wall time / ideal (12 x 5 s / 2 slots = 30 s). Goal <= 1.10.
2. Throughput: digits MLP (batch 64, 1 thread), samples/s of the training loop bare (in this
   process) and inside a Ray Tune trial of the pipeline (median over epochs). Goal >= 0.95.
Results go to bench/results/overhead.md.
"""
from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from mlflow.tracking import MlflowClient

from bench.trainables import sleep_sweep
from pipeline import study
from pipeline.config import Experiment
from pipeline.training import loop as training
from pipeline.training.data import load

RESULTS = Path(__file__).parent / "results" / "overhead.md"
TRIALS, EPOCH_S, EPOCHS, SLOTS = 12, 1.0, 5, 2


def overhead(folder: Path) -> tuple[float, float]:
    """(Tuner.fit wall s, whole run s) for the sleep sweep."""
    exp = sleep_sweep("bench-overhead", folder, TRIALS, EPOCHS, EPOCH_S, SLOTS)
    started = time.perf_counter()
    outcome = study.run(exp, register=False)
    return outcome.fit_s, time.perf_counter() - started


def bare_samples_per_s(exp: Experiment) -> float:
    torch.set_num_threads(1)
    return statistics.median(e.metrics["samples_per_s"] for e in training.fit(exp, load(exp.data)))


def trial_samples_per_s(exp: Experiment, folder: Path,
                        summary: Callable[[list[float]], float] = statistics.median
                        ) -> list[float]:
    """Each trial's samples/s (`summary` of its epochs, in epoch order), trials in start
    order."""
    exp = exp.with_values({"tracking.uri": f"sqlite:///{folder}/mlflow.db",
                           "storage.path": str(folder / "ray_results")})
    outcome = study.run(exp, register=False)
    client = MlflowClient(outcome.store.uri)
    kids = client.search_runs([outcome.store.experiment_id],
                              f"tags.`mlflow.parentRunId` = '{outcome.parent_run_id}'",
                              order_by=["attributes.start_time ASC"])
    return [summary([m.value for m in sorted(
        client.get_metric_history(k.info.run_id, "samples_per_s"), key=lambda m: m.step)])
        for k in kids]


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        fit_s, whole_s = overhead(folder)
        exp = Experiment.model_validate({
            "name": "bench-throughput", "model": {"hidden": 128, "dropout": 0.1},
            "train": {"epochs": 10, "lr": 0.05},
            "search": {"searcher": "random", "num_samples": 3, "max_concurrent": 1,
                       "space": {"train.lr": {"loguniform": [0.01, 0.1]}}}})
        bare = bare_samples_per_s(exp)
        in_trial = trial_samples_per_s(exp, folder)
    ideal = TRIALS * EPOCHS * EPOCH_S / SLOTS
    ratios = [t / bare for t in in_trial]
    text = "\n".join([
        "# Orchestration overhead and throughput (`make bench ARGS=overhead`)",
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M')} on this machine (2 cores, no GPU).",
        "",
        "| measure | value | goal |",
        "| --- | --- | --- |",
        (f"| {TRIALS} trials x {EPOCHS * EPOCH_S:.0f} s on {SLOTS} slots, MLflow on: "
         f"Tuner.fit wall / ideal ({ideal:.0f} s) | {fit_s / ideal:.3f} ({fit_s:.1f} s) | <= 1.10 |"),
        f"| same, whole process incl. Ray start and summary | {whole_s:.1f} s | |",
        f"| digits MLP samples/s, bare loop | {bare:,.0f} | |",
        (f"| same inside a trial (median of {len(in_trial)} trials) | "
         f"{statistics.median(in_trial):,.0f} | |"),
        (f"| in-trial / bare | {statistics.median(ratios):.2f} "
         f"[{min(ratios):.2f}-{max(ratios):.2f}] | >= 0.95 |"),
        ""])
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
