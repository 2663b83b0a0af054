"""Bayesian search at scale: searcher time per suggestion, and a 300-trial sweep at c=16.

    .venv/bin/python -m bench.bayes_scale [--trials 300]

1. Seconds per suggestion (tell + ask) on Hartmann6 with 100 and 500 observations at c=1,
   and with 16 trials running (the believer holds 16 pending points).
2. 300 trials of 1 s, `max_concurrent: 16`, `resources.cpu: 0.125`, one parameter, run as a
   user runs it (`python -m pipeline tune FILE` in a subprocess, MLflow on SQLite): random
   and bayes, and the same random sweep in plain Ray Tune (no MLflow, no pipeline). Wall time
   is the sweep's Tuner.fit ("sweep took"); every line of the terminal is kept and library
   warnings are counted (goal: none). Goals (issue 12): bayes <= 1.15x random; pipeline
   random <= 1.10x plain Ray Tune; a suggestion <= 1 s at 500 observations and at 16 pending.
Writes bench/results/bayes_scale.md.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import yaml

from bench.objectives import HARTMANN6
from pipeline.config import Bayes
from pipeline.search.skopt_search import SkoptSearch

RESULTS = Path(__file__).parent / "results" / "bayes_scale.md"
WARNING = re.compile(r"\b\w+Warning\b|warnings\.warn")  # ours say "Warning: ..."


def seconds_per_suggestion(observations: int, running: int, rounds: int = 3) -> float:
    """Median seconds of one tell + suggest once `observations` results are known and
    `running` other trials are pending."""
    rng = np.random.default_rng(0)
    known = []
    for x in rng.uniform(0, 1, size=(observations, 6)):
        known.append({f"params.x{i}": float(v) for i, v in enumerate(x)}
                     | {"_result": HARTMANN6.fn(x)})
    searcher = SkoptSearch(HARTMANN6.space(), Bayes(), "value", "min", 0,
                           points_to_evaluate=known, max_concurrent=running + 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i in range(running):  # untimed: the first one tells the known points
            searcher.suggest(f"running-{i}")
        times = []
        for i in range(rounds):
            start = time.perf_counter()
            config = searcher.suggest(f"timed-{i}")
            searcher.on_trial_complete(f"timed-{i}", {"value": HARTMANN6(config)})
            times.append(time.perf_counter() - start)
    return float(np.median(times))


def experiment(folder: Path, searcher: str, trials: int) -> Path:
    path = folder / f"{searcher}.yaml"
    path.write_text(yaml.safe_dump({
        "name": f"scale-{searcher}", "seed": 0, "trainable": "bench.trainables:sleep_epochs",
        "params": {"x": 0.5, "epochs": 1, "epoch_s": 1.0},
        "search": {"searcher": searcher, "metric": "loss", "mode": "min",
                   "num_samples": trials, "max_concurrent": 16,
                   "space": {"params.x": {"uniform": [0.0, 1.0]}}},
        "resources": {"cpu": 0.125}, "lr_range_test": {"enabled": False},
        "tracking": {"uri": f"sqlite:///{folder}/mlflow-{searcher}.db"},
        "storage": {"path": str(folder / "ray_results")}}))
    return path


def pipeline_sweep(folder: Path, searcher: str, trials: int) -> tuple[float, list[str]]:
    """(Tuner.fit seconds, the lines of the terminal that look like library warnings)."""
    done = subprocess.run([sys.executable, "-m", "pipeline", "tune",
                           str(experiment(folder, searcher, trials))],
                          capture_output=True, text=True, env=os.environ | {"NO_COLOR": "1"})
    output = done.stdout + done.stderr
    took = re.search(r"sweep took (\d+) s", output)
    if done.returncode or not took:
        raise RuntimeError(f"{searcher} sweep failed:\n{output[-3000:]}")
    return float(took.group(1)), [line for line in output.splitlines() if WARNING.search(line)]


def plain_tune(folder: Path, trials: int) -> float:
    """The same random sweep in Ray Tune alone, in a subprocess as the pipeline runs."""
    script = f"""
import time, ray
from ray import tune
from bench.trainables import sleep_epochs
ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
tuner = tune.Tuner(tune.with_resources(sleep_epochs, {{"cpu": 0.125}}),
    param_space={{"params": {{"x": tune.uniform(0, 1), "epochs": 1, "epoch_s": 1.0}}}},
    tune_config=tune.TuneConfig(metric="loss", mode="min", num_samples={trials},
                                max_concurrent_trials=16, reuse_actors=True),
    run_config=tune.RunConfig(storage_path="{folder}/plain", verbose=0))
start = time.perf_counter(); tuner.fit(); print("took", time.perf_counter() - start)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    took = re.search(r"took ([\d.]+)", done.stdout)
    if not took:
        raise RuntimeError(f"plain Ray Tune failed:\n{done.stderr[-3000:]}")
    return float(took.group(1))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench.bayes_scale", description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=300)
    args = parser.parse_args(argv or [])
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    lines = ["# Bayesian search at scale", "", "| searcher time per suggestion | seconds | goal |",
             "| --- | --- | --- |"]
    for observations, running in ((100, 0), (500, 0), (100, 16), (500, 16)):
        per = seconds_per_suggestion(observations, running)
        goal = "≤ 1 s" if observations == 500 or running == 16 else ""
        lines.append(f"| Hartmann6, {observations} observations, {running} running | "
                     f"{per:.2f} | {goal} |")
        print(lines[-1], flush=True)
    folder = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    plain = plain_tune(folder, args.trials)
    random_s, random_warnings = pipeline_sweep(folder, "random", args.trials)
    bayes_s, bayes_warnings = pipeline_sweep(folder, "bayes", args.trials)
    ideal = args.trials / 16 * 1.0
    lines += ["", f"{args.trials} trials of 1 s, 16 at a time (ideal {ideal:.2f} s):", "",
              "| sweep | Tuner.fit s | ratio | library warnings in the terminal |",
              "| --- | --- | --- | --- |",
              f"| plain Ray Tune, random | {plain:.1f} | 1.00 | - |",
              f"| pipeline, random | {random_s:.0f} | {random_s / plain:.2f} of plain "
              f"(goal ≤ 1.10) | {len(random_warnings)} |",
              f"| pipeline, bayes | {bayes_s:.0f} | {bayes_s / random_s:.2f} of random "
              f"(goal ≤ 1.15) | {len(bayes_warnings)} |"]
    for line in (random_warnings + bayes_warnings)[:5]:
        lines.append(f"\n    {line}")
    text = "\n".join(lines) + "\n"
    RESULTS.write_text(text)
    print(text)


if __name__ == "__main__":
    main(sys.argv[1:])
