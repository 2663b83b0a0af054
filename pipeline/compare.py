"""Searcher comparison: one experiment under several searchers, the same trial budget, a few
seeds, so "grid < random < Bayesian" can be checked on the user's own data.

How each searcher gets its budget of N trials:
- random and bayes: N samples of the space; `grid:` entries become `choice:` so they cost one
  trial each, not a full grid per sample.
- grid: a grid is derived from the space. `choice:`/`grid:` lists keep all their values (their
  product must fit in N). Each interval domain gets k points at the centres of k equal cells (in
  log space for log domains; rounded and de-duplicated for integers), the k raised round-robin
  over the intervals while the grid's size stays <= N. So N=12 with two intervals: 4 x 3 points.
- bayes: an initial design (random points before the model steers) of more than half the
  budget would leave the model little to do, so it is lowered to N // 3 (at least 1), and
  said so.
- An LR range test runs once, before all sweeps; `lr_range` becomes the loguniform it suggests.
Seeds are seed, seed+1, ...: each seeds both the searcher and the training, so the spread over
seeds is what a user could get on another day.
"""
from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline import context, lr_stage, study
from pipeline.config import LR_RANGE, ConfigError, Experiment
from pipeline.context import SweepContext
from pipeline.execution import stopping, sweeps
from pipeline.results import plots, report, tracking
from pipeline.results.edges import interval
from pipeline.search.space import trial_count
from pipeline.training import data as datasets

SEARCHERS = ("grid", "random", "bayes")


@dataclass(frozen=True)
class Arm:
    """One sweep of the comparison."""

    searcher: str
    seed: int
    outcome: report.Outcome


@dataclass(frozen=True)
class Comparison:
    run_id: str
    table: pd.DataFrame
    """One row per sweep: searcher, seed, trials, best, sweep_wall_s, trial_hours, cost_usd."""
    summary: pd.DataFrame
    """Best-so-far per searcher and trial: median, low, high over seeds."""
    figure: Path | None


def grid_counts(intervals: int, list_cells: int, budget: int) -> list[int]:
    """Points per interval domain: raised round-robin while the grid stays within budget."""
    counts = [1] * intervals
    grew = True
    while grew:
        grew = False
        for i in range(intervals):
            if list_cells * math.prod(counts) // counts[i] * (counts[i] + 1) <= budget:
                counts[i] += 1
                grew = True
    return counts


def grid_points(spec: Any, k: int) -> list[Any]:
    """k values at the centres of k equal cells of an interval domain."""
    span = interval(spec)
    fractions = [(i + 0.5) / k for i in range(k)]
    if span.log:
        points = [span.low * (span.high / span.low) ** f for f in fractions]
    else:
        points = [span.low + f * (span.high - span.low) for f in fractions]
    if next(iter(spec)) in ("randint", "int"):
        return list(dict.fromkeys(round(p) for p in points))
    return [float(p) for p in points]


def grid_space(space: dict[str, Any], budget: int) -> dict[str, Any]:
    """The grid a grid search gets for `budget` trials (see the module docstring)."""
    lists = {path: next(iter(spec.values())) for path, spec in space.items()
             if interval(spec) is None}
    list_cells = math.prod(len(values) for values in lists.values())
    if list_cells > budget:
        raise ConfigError(f"--budget: the lists of search.space make {list_cells} grid cells, "
                          f"more than {budget} trials")
    intervals = [path for path in space if path not in lists]
    counts = dict(zip(intervals, grid_counts(len(intervals), list_cells, budget)))
    return {path: {"grid": lists[path] if path in lists else grid_points(space[path],
                                                                         counts[path])}
            for path in space}


def sampled_space(space: dict[str, Any]) -> dict[str, Any]:
    """The space random and bayes sample: grid lists become choices."""
    return {path: {"choice": spec["grid"]} if "grid" in spec else spec
            for path, spec in space.items()}


def variant(exp: Experiment, searcher: str, seed: int, budget: int) -> Experiment:
    """The experiment one sweep of the comparison runs (its space has no lr_range left)."""
    if LR_RANGE in exp.search.space.values():
        raise ConfigError("search.space.train.lr: lr_range needs lr_range_test.enabled: true")
    values: dict[str, Any] = {"seed": seed, "search.searcher": searcher,
                              "search.points_to_evaluate": [], "lr_range_test.enabled": False}
    if searcher == "grid":
        values |= {"search.space": grid_space(exp.search.space, budget),
                   "search.num_samples": 1}
    else:
        values |= {"search.space": sampled_space(exp.search.space),
                   "search.num_samples": budget}
    if searcher == "bayes" and bayes_design(exp) > budget // 2:
        values["search.bayes.n_initial_points"] = max(1, budget // 3)
    return exp.with_values(values)


def bayes_design(exp: Experiment) -> int:
    """How many initial design points the bayes searcher would take for this space."""
    from pipeline.search.acquisition import initial_points

    # reads only the count of dimensions
    return initial_points(list(exp.search.space), exp.search.bayes, trial_count(exp.search))


def best_so_far_curves(arms: list[Arm], mode: str) -> pd.DataFrame:
    """Best-so-far per searcher and trial number: median, low and high over the seeds."""
    rows = []
    for arm in arms:
        table = arm.outcome.table
        if table.empty:
            continue
        ordered = table.sort_values("trial_id")[arm.outcome.metric].reset_index(drop=True)
        for trial, best in enumerate(plots.best_so_far(ordered, mode), start=1):
            rows.append({"searcher": arm.searcher, "seed": arm.seed, "trial": trial,
                         "best": best})
    curves = pd.DataFrame(rows, columns=["searcher", "seed", "trial", "best"])
    grouped = curves.groupby(["searcher", "trial"], sort=False)["best"]
    return grouped.agg(median="median", low="min", high="max", seeds="count").reset_index()


def arms_table(arms: list[Arm]) -> pd.DataFrame:
    return pd.DataFrame([{
        "searcher": a.searcher, "seed": a.seed, "trials": len(a.outcome.table),
        "best": a.outcome.best_value, "sweep_wall_s": a.outcome.fit_s,
        "trial_hours": a.outcome.spent.trial_hours if a.outcome.spent else None,
        "cost_usd": a.outcome.spent.usd if a.outcome.spent else None,
        "run_id": a.outcome.parent_run_id} for a in arms])


def _resolve_lr(exp: Experiment, ctx: SweepContext, store: tracking.Store,
                run_id: str) -> Experiment:
    """Run the LR range test once (logged on the comparison run) and apply what it says."""
    if not exp.lr_range_test.enabled or exp.trainable is not None:
        return exp
    study.init_ray(ctx)
    exp, bounds = lr_stage.run(exp, datasets.load(exp.data, exp.seed), store, run_id)
    if bounds is None:
        return exp
    space = {path: {"loguniform": list(bounds)} if spec == LR_RANGE else spec
             for path, spec in exp.search.space.items()}
    return exp.with_values({"search.space": space})


def check_searchers(exp: Experiment, searchers: list[str], budget: int) -> None:
    """Refuse unknown searchers and budgets a searcher cannot use, before anything runs."""
    if not searchers:
        raise ConfigError(f"--searchers: name at least one (of {SEARCHERS})")
    for name in searchers:
        if name not in SEARCHERS:
            raise ConfigError(f"--searchers: unknown searcher {name!r} (one of {SEARCHERS})")
    if not exp.search.space:
        raise ConfigError("search.space: a comparison needs a non-empty space")
    resolved = {path: {"loguniform": [1e-4, 1e-1]} if spec == LR_RANGE else spec
                for path, spec in exp.search.space.items()}  # stand-in bounds, for checks
    probe = exp.with_values({"search.space": resolved, "lr_range_test.enabled": False})
    for name in searchers:
        variant(probe, name, exp.seed, budget)


def run(exp: Experiment, exp_file: Path | None, searchers: list[str], budget: int, seeds: int,
        figure: Path | None = None) -> Comparison:
    """Run every (searcher, seed) sweep, then log the comparison on a parent run of its own."""
    check_searchers(exp, searchers, budget)
    ctx = context.resolve(exp)
    store = tracking.connect(ctx.tracking_uri, ctx.mlflow_experiment, ctx.storage_path)
    run_id = report.open_comparison(store, exp, searchers, budget, seeds)
    try:
        resolved = _resolve_lr(exp, ctx, store, run_id)
        arms = []
        for searcher in searchers:
            for seed in range(exp.seed, exp.seed + seeds):
                print(f"\n=== compare: {searcher}, seed {seed}, {budget} trials ===", flush=True)
                arm_exp = variant(resolved, searcher, seed, budget)
                if arm_exp.search.bayes != resolved.search.bayes:
                    print(f"bayes: an initial design of {bayes_design(resolved)} points is "
                          f"over half the budget; {arm_exp.search.bayes.n_initial_points} here",
                          flush=True)
                outcome = study.run(arm_exp, exp_file, register=False,
                                    tags={sweeps.ARM_TAG: run_id})
                report.nest(store, outcome.parent_run_id, run_id)
                arms.append(Arm(searcher, seed, outcome))
    except stopping.Interrupted as stop:
        tracking.close_sweep(store, run_id, "KILLED")
        # the arm's own line said "continue it with --resume", which compare does not take
        raise stopping.Interrupted("compare stopped; its sweeps cannot be resumed: run compare "
                                   "again", stop.signum) from None
    except BaseException:
        tracking.close_sweep(store, run_id, "FAILED")
        raise
    table, summary = arms_table(arms), best_so_far_curves(arms, exp.search.mode)
    with tempfile.TemporaryDirectory() as folder:
        png = plots.comparison(summary, exp.search.metric, Path(folder) / "compare.png")
        table.to_csv(Path(folder) / "compare.csv", index=False)
        report.log_comparison(store, run_id, table, [png, png.with_suffix(".csv")])
        if figure is not None:
            figure.parent.mkdir(parents=True, exist_ok=True)
            figure.write_bytes(png.read_bytes())
    return Comparison(run_id, table, summary, figure)
