"""Benchmark SkoptSearch against native gp_minimize and random search.

    .venv/bin/python -m bench.bayes_pipeline [--quick] [--simulate]

Branin@30 and Hartmann6@60 over 5 seeds: `searcher: bayes` at concurrency 1 and 4 through the
pipeline (`pipeline.study.run` with the custom trainable `bench.objectives:trial`, real Ray
Tune and MLflow on a SQLite file), skopt's `gp_minimize` with its defaults, and random search.
Reports median [min-max] regret, wall time of Tuner.fit (and of the whole run with MLflow's
summary and plots), the closest pair of points that were running at the same time (unit cube,
Euclidean: near-duplicates show up as ~0), and the searcher's seconds per suggestion at 100
observations. Writes bench/results/bayes_pipeline.md.

`--simulate` replaces Ray Tune with a Ray-free loop through the same searcher methods (keep
k trials pending, complete them in shuffled order): the fast loop for tuning `Bayes` options.
The full run adds a table over 15 seeds from that loop (the 5-seed medians are fragile: a
median lands wherever the runs stuck in a second basin fall). `--quick` runs 1 seed at half
the evaluations (< 2 minutes). The full run takes about 20 minutes on 2 idle cores (most of it
the 20 pipeline sweeps). Run it with OMP_NUM_THREADS=1:
on 2 cores BLAS threads oversubscribe and GP fits get several times slower.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import random
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.objectives import BY_NAME, OBJECTIVES, Objective
from pipeline.config import Bayes
from pipeline.search.skopt_search import SkoptSearch

RESULTS = Path(__file__).parent / "results" / "bayes_pipeline.md"
METRIC = "value"
# Trial length at concurrency > 1. A trial must outlast a worker start (~2 s here), or Tune
# hands each finished trial's reused actor the next one and trials run one at a time.
OVERLAP_S = 2.0


@dataclass
class Run:
    regret: float
    wall_s: float
    closest_running_pair: float = float("nan")
    """Smallest distance between two points evaluated at the same time (NaN at concurrency 1)."""
    best_so_far: list[float] | None = None
    """Regret after each evaluation (Ray-free loop only)."""
    run_s: float = float("nan")
    """Through the pipeline: the whole `study.run` (MLflow runs, summary, plots); wall_s is
    its Tuner.fit alone."""


def unit_point(objective: Objective, config: dict[str, Any]) -> np.ndarray:
    """A trial config as a point of the unit cube, where near-duplicates are measured."""
    x = objective.inputs(config)
    low, high = np.array(objective.bounds).T
    return (x - low) / (high - low)


def closest_pair(points: list[np.ndarray]) -> float:
    pairs = [np.linalg.norm(a - b) for i, a in enumerate(points) for b in points[i + 1:]]
    return min(pairs, default=float("nan"))


def make_searcher(objective: Objective, seed: int, concurrency: int,
                  options: Bayes) -> SkoptSearch:
    return SkoptSearch(objective.space(), options, METRIC, "min", seed, max_concurrent=concurrency)


# ---- ways to run one sweep ---------------------------------------------------------------

def simulate(objective: Objective, evaluations: int, seed: int, concurrency: int,
             options: Bayes, shuffled: bool = True) -> Run:
    """Ray-free sweep: k trials stay pending and finish in a shuffled order, or (`shuffled`
    False) in the order they started, as equal-length trials do in the pipeline."""
    searcher = make_searcher(objective, seed, concurrency, options)
    order = random.Random(seed)
    running: dict[str, dict[str, Any]] = {}
    values, closest, started = [], float("inf"), 0
    start = time.perf_counter()
    while len(values) < evaluations:
        while len(running) < concurrency and started < evaluations:
            running[str(started)] = searcher.suggest(str(started))
            started += 1
        closest = min(closest, closest_pair([unit_point(objective, c) for c in running.values()]))
        trial_id = order.choice(sorted(running)) if shuffled else min(running, key=int)
        values.append(objective(running.pop(trial_id)))
        searcher.on_trial_complete(trial_id, {METRIC: values[-1]})
    return Run(min(values) - objective.minimum, time.perf_counter() - start,
               closest if concurrency > 1 else float("nan"),
               list(np.minimum.accumulate(values) - objective.minimum))


def pipeline_sweep(objective: Objective, evaluations: int, seed: int, concurrency: int,
                   options: Bayes) -> Run:
    """The sweep as users run it: `pipeline.study.run` on an experiment whose custom trainable
    is `bench.objectives:trial`, MLflow on a SQLite file; the distance between running points
    is read back from the MLflow child runs (their values and start/end times)."""
    from pipeline import study
    from pipeline.config import _validate

    folder = Path(tempfile.mkdtemp(prefix="bench-bayes-"))
    exp = _validate({
        "name": f"bench-{objective.name.lower()}-c{concurrency}-s{seed}", "seed": seed,
        "trainable": "bench.objectives:trial",
        "params": {"objective": objective.name, "sleep_s": OVERLAP_S if concurrency > 1 else 0},
        "search": {"searcher": "bayes", "metric": METRIC, "mode": "min",
                   "num_samples": evaluations, "max_concurrent": concurrency,
                   "space": objective.experiment_space(), "bayes": options.model_dump()},
        "resources": {"cpu": 1 / concurrency},  # k trials fit on 1 core
        "lr_range_test": {"enabled": False},
        "tracking": {"uri": f"sqlite:///{folder / 'mlflow.db'}"},
        "storage": {"path": str(folder / "ray_results")}})
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # one line per trial: keep the table
        outcome = study.run(exp, register=False)
    run_s = time.perf_counter() - start
    trials = child_runs(outcome.store.client, outcome.parent_run_id)
    return Run(outcome.best_value - objective.minimum, outcome.fit_s,
               closest_overlapping(objective, trials) if concurrency > 1 else float("nan"),
               run_s)


def child_runs(client: Any, parent_run_id: str) -> list[dict[str, Any]]:
    """Each finished trial's searched values and start/end time, as MLflow recorded them."""
    runs = client.search_runs(
        [client.get_run(parent_run_id).info.experiment_id],
        f"tags.`mlflow.parentRunId` = '{parent_run_id}'", max_results=10_000)
    return [{"params": {k.split(".", 1)[1]: float(v) for k, v in r.data.params.items()
                        if k.startswith("params.x")},
             "started": r.data.metrics["started"], "ended": r.data.metrics["ended"]}
            for r in runs if "started" in r.data.metrics]


def closest_overlapping(objective: Objective, trials: list[dict[str, Any]]) -> float:
    """Closest pair among trials whose run times overlapped (those ran at the same time)."""
    spans = [(t["started"], t["ended"], unit_point(objective, t)) for t in trials]
    pairs = [np.linalg.norm(a[2] - b[2]) for i, a in enumerate(spans) for b in spans[i + 1:]
             if a[0] < b[1] and b[0] < a[1]]
    return min(pairs, default=float("nan"))


def native_gp_minimize(objective: Objective, evaluations: int, seed: int, *_: Any) -> Run:
    from skopt import gp_minimize

    start = time.perf_counter()
    result = gp_minimize(lambda x: objective.fn(np.array(x)), objective.bounds,
                         n_calls=evaluations, random_state=seed)
    return Run(result.fun - objective.minimum, time.perf_counter() - start)


def random_search(objective: Objective, evaluations: int, seed: int, *_: Any) -> Run:
    start = time.perf_counter()
    low, high = np.array(objective.bounds).T
    points = np.random.default_rng(seed).uniform(low, high, size=(evaluations, len(low)))
    best = min(objective.fn(x) for x in points)
    return Run(best - objective.minimum, time.perf_counter() - start)


def seconds_per_suggestion(objective: Objective, observations: int, concurrency: int,
                           options: Bayes) -> float:
    """Searcher time (tell + ask) per suggestion once `observations` results are in."""
    rng = np.random.default_rng(0)
    low, high = np.array(objective.bounds).T
    known = [{f"params.x{i}": float(v) for i, v in enumerate(x)}
             for x in rng.uniform(low, high, size=(observations, len(low)))]
    for point in known:
        point["_result"] = objective.fn(np.array(list(point.values())))
    searcher = SkoptSearch(objective.space(), options, METRIC, "min", 0, points_to_evaluate=known,
                           max_concurrent=concurrency)
    # Untimed: the first suggestion tells the known points; k - 1 more trials stay running.
    configs = [searcher.suggest(f"running-{i}") for i in range(concurrency)]
    searcher.on_trial_complete("running-0", {METRIC: objective(configs[0])})
    start, rounds = time.perf_counter(), 3
    for i in range(rounds):
        config = searcher.suggest(f"timed-{i}")
        searcher.on_trial_complete(f"timed-{i}", {METRIC: objective(config)})
    return (time.perf_counter() - start) / rounds


# ---- the report ----------------------------------------------------------------------------

def summarise(runs: list[Run]) -> str:
    regrets = [r.regret for r in runs]
    cell = f"{statistics.median(regrets):.2g} [{min(regrets):.2g}–{max(regrets):.2g}]"
    cell += f", {statistics.median(r.wall_s for r in runs):.1f} s"
    if not np.isnan(runs[0].run_s):
        cell += f" ({statistics.median(r.run_s for r in runs):.1f} s with MLflow summary)"
    gaps = [r.closest_running_pair for r in runs if not np.isnan(r.closest_running_pair)]
    return cell + (f", closest running pair {min(gaps):.3f}" if gaps else "")


def methods(simulated: bool) -> dict[str, tuple[Callable[..., Run], int]]:
    ours = simulate if simulated else pipeline_sweep
    where = "simulated" if simulated else "pipeline"
    return {f"SkoptSearch c=1 ({where})": (ours, 1), f"SkoptSearch c=4 ({where})": (ours, 4),
            "skopt gp_minimize defaults": (native_gp_minimize, 1),
            "random search": (random_search, 1)}


def _simulated_curve(job: tuple[str, int, int, int, Bayes, bool]) -> list[float]:
    name, evaluations, seed, concurrency, options, shuffled = job
    warnings.filterwarnings("ignore")
    return simulate(BY_NAME[name], evaluations, seed, concurrency, options,
                    shuffled).best_so_far


def robustness(seeds: range, budgets: dict[str, int], options: Bayes) -> list[str]:
    """Medians over more seeds, Ray-free (same searcher calls): with 5 seeds a median lands
    wherever the one or two runs stuck in a second basin fall. At c=4 trials finish in start
    order (equal-length trials: the pipeline rows above) or shuffled (uneven trials)."""
    lines = ["", (f"Seeds {seeds.start}-{seeds.stop - 1} (Ray-free ask/tell loop): median "
                  "[min–max] regret."), "",
             "| concurrency | " + " | ".join(f"{o.name} @{budgets[o.name]}" for o in OBJECTIVES)
             + " |", "| --- |" + " --- |" * len(OBJECTIVES)]
    rows = {"1": (1, True), "4, finishing in start order": (4, False),
            "4, finishing in shuffled order": (4, True)}
    medians: dict[tuple[str, str], float] = {}
    serial_curves: dict[str, np.ndarray] = {}  # c=1's median regret after each evaluation
    with ProcessPoolExecutor(os.cpu_count()) as pool:
        for row, (concurrency, shuffled) in rows.items():
            cells = []
            for o in OBJECTIVES:
                jobs = [(o.name, budgets[o.name], s, concurrency, options, shuffled)
                        for s in seeds]
                curves = np.array(list(pool.map(_simulated_curve, jobs)))
                serial_curves.setdefault(o.name, np.median(curves, axis=0))
                regrets = list(curves[:, -1])
                medians[o.name, row] = statistics.median(regrets)
                cells.append(f"{medians[o.name, row]:.2g} [{min(regrets):.2g}–{max(regrets):.2g}]")
            lines.append(f"| {row} | " + " | ".join(cells) + " |")
            print(lines[-1], flush=True)
    ratios = "; ".join(f"{row}: " + ", ".join(
        f"{o.name} {medians[o.name, row] / medians[o.name, '1']:.1f}x" for o in OBJECTIVES)
        for row in list(rows)[1:])
    # what c=4 loses, in evaluations: c=1's median reaches c=4's final median after n of them
    same_as = "; ".join(f"{row}: " + ", ".join(
        f"{o.name} {1 + int(np.argmax(serial_curves[o.name] <= medians[o.name, row]))}"
        for o in OBJECTIVES) for row in list(rows)[1:])
    return [*lines, "", f"Median regret at c=4 over c=1 ({ratios}).",
            f"c=1 reaches c=4's median final regret after this many evaluations ({same_as})."]


def report(seeds: range, scale: float, simulated: bool, options: Bayes,
           robust_seeds: range | None = None) -> str:
    budgets = {o.name: max(5, round(o.evaluations * scale)) for o in OBJECTIVES}
    head = " | ".join(f"{o.name} @{budgets[o.name]}" for o in OBJECTIVES)
    lines = [f"Seeds {list(seeds)}; median [min–max] regret, median wall time.", "",
             f"| method | {head} |", "| --- |" + " --- |" * len(OBJECTIVES)]
    for name, (run, concurrency) in methods(simulated).items():
        cells = [summarise([run(o, budgets[o.name], s, concurrency, options) for s in seeds])
                 for o in OBJECTIVES]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
        print(lines[-1], flush=True)
    if robust_seeds:
        lines += robustness(robust_seeds, budgets, options)
    observations = round(100 * scale)
    lines.append("")
    for concurrency in (1, 4):
        per = seconds_per_suggestion(OBJECTIVES[-1], observations, concurrency, options)
        lines.append(f"Searcher time per suggestion at {observations} observations "
                     f"(Hartmann6, c={concurrency}): {per:.2f} s")
    lines.append(f"\nOptions: `{options!r}`")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark; options come only from `argv` (none: the full run), so
    `python -m bench bayes_pipeline` can call main() whatever its own command line holds."""
    parser = argparse.ArgumentParser(prog="bench.bayes_pipeline",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 seed, half the evaluations")
    parser.add_argument("--simulate", action="store_true", help="no Ray: the ask/tell loop")
    args = parser.parse_args(argv or [])
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    warnings.filterwarnings("ignore")  # skopt's "evaluated before" and sklearn convergence
    if not args.simulate:
        import ray
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    seeds, scale = (range(1), 0.5) if args.quick else (range(5), 1.0)
    robust_seeds = None if args.quick else range(15)
    text = "# Bayesian search benchmark\n\n" + report(seeds, scale, args.simulate, Bayes(),
                                                       robust_seeds)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)
    print(text)


if __name__ == "__main__":
    main(sys.argv[1:])
