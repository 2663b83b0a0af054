"""One run of one method on one suite problem: the points it evaluated, in completion order.

Methods: our `SkoptSearch` through the same searcher calls Ray Tune makes (Ray-free, so the
suite fits in minutes), skopt's `gp_minimize` with its defaults, random search, and Optuna's
GPSampler and TPESampler (the `bench` extra). At concurrency k the run keeps k trials
running and they finish in the order they started (equal-length trials), Optuna's running
trials left RUNNING so its samplers see them as pending, as ours sees Tune's.
"""
from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.problems import Param, Problem
from pipeline.config import Bayes
from pipeline.search.skopt_search import SkoptSearch

METRIC = "value"


@dataclass
class Evaluated:
    points: list[dict[str, Any]]
    observed: list[float]
    searcher_s: float
    """Seconds the method spent choosing points (everything but the objective)."""


def noise_rng(seed: int, index: int) -> np.random.Generator:
    """The same noise for the i-th evaluation of every method at one seed."""
    return np.random.default_rng([seed, index, 7])


def ray_domain(param: Param) -> Any:
    from ray import tune
    if param.kind == "real":
        return tune.uniform(param.low, param.high)
    if param.kind == "log":
        return tune.loguniform(param.low, param.high)
    if param.kind == "int":
        return tune.randint(int(param.low), int(param.high) + 1)  # Ray's upper is exclusive
    return tune.choice(list(param.choices))


def ours(problem: Problem, seed: int, concurrency: int = 1,
         options: Bayes | None = None) -> Evaluated:
    space = {"params": {p.name: ray_domain(p) for p in problem.params}}
    searcher = SkoptSearch(space, options or Bayes(), METRIC, "min", seed,
                           max_concurrent=concurrency, budget=problem.budget)
    running: dict[int, dict[str, Any]] = {}
    points, observed, spent, started = [], [], 0.0, 0
    while len(observed) < problem.budget:
        tick = time.perf_counter()
        while len(running) < concurrency and started < problem.budget:
            running[started] = searcher.suggest(str(started))["params"]
            started += 1
        spent += time.perf_counter() - tick
        first = min(running)
        values = running.pop(first)
        points.append(values)
        observed.append(problem.observe(values, noise_rng(seed, len(observed))))
        tick = time.perf_counter()
        searcher.on_trial_complete(str(first), {METRIC: observed[-1]})
        spent += time.perf_counter() - tick
    return Evaluated(points, observed, spent)


def skopt_defaults(problem: Problem, seed: int, concurrency: int = 1, **_: Any) -> Evaluated:
    from skopt import gp_minimize
    from skopt.space import Categorical, Integer, Real

    dims = [Real(p.low, p.high, name=p.name) if p.kind == "real"
            else Real(p.low, p.high, prior="log-uniform", name=p.name) if p.kind == "log"
            else Integer(int(p.low), int(p.high), name=p.name) if p.kind == "int"
            else Categorical(list(p.choices), name=p.name) for p in problem.params]
    points, observed = [], []
    objective_s = 0.0

    def evaluate(x: list[Any]) -> float:
        nonlocal objective_s
        tick = time.perf_counter()
        values = {p.name: _plain(v) for p, v in zip(problem.params, x)}
        points.append(values)
        observed.append(problem.observe(values, noise_rng(seed, len(observed))))
        objective_s += time.perf_counter() - tick
        return observed[-1]

    start = time.perf_counter()
    gp_minimize(evaluate, dims, n_calls=problem.budget, random_state=seed)
    return Evaluated(points, observed, time.perf_counter() - start - objective_s)


def random_search(problem: Problem, seed: int, concurrency: int = 1, **_: Any) -> Evaluated:
    rng = np.random.default_rng(seed)
    points = [{p.name: _draw(p, rng) for p in problem.params} for _ in range(problem.budget)]
    observed = [problem.observe(v, noise_rng(seed, i)) for i, v in enumerate(points)]
    return Evaluated(points, observed, 0.0)


def optuna_run(sampler_name: str) -> Callable[..., Evaluated]:
    def run(problem: Problem, seed: int, concurrency: int = 1, **_: Any) -> Evaluated:
        import optuna
        optuna.logging.set_verbosity(optuna.logging.ERROR)
        sampler = (optuna.samplers.GPSampler(seed=seed) if sampler_name == "gp"
                   else optuna.samplers.TPESampler(seed=seed))
        study = optuna.create_study(sampler=sampler)
        running: list[Any] = []
        points, observed, spent, asked = [], [], 0.0, 0
        while len(observed) < problem.budget:
            tick = time.perf_counter()
            while len(running) < concurrency and asked < problem.budget:
                trial = study.ask()
                running.append((trial, {p.name: _suggest(trial, p) for p in problem.params}))
                asked += 1
            spent += time.perf_counter() - tick
            trial, values = running.pop(0)
            points.append(values)
            observed.append(problem.observe(values, noise_rng(seed, len(observed))))
            tick = time.perf_counter()
            study.tell(trial, observed[-1])
            spent += time.perf_counter() - tick
        return Evaluated(points, observed, spent)
    return run


def _suggest(trial: Any, p: Param) -> Any:
    if p.kind in ("real", "log"):
        return trial.suggest_float(p.name, p.low, p.high, log=p.kind == "log")
    if p.kind == "int":
        return trial.suggest_int(p.name, int(p.low), int(p.high))
    return trial.suggest_categorical(p.name, list(p.choices))


def _draw(p: Param, rng: np.random.Generator) -> Any:
    if p.kind == "real":
        return float(rng.uniform(p.low, p.high))
    if p.kind == "log":
        return float(np.exp(rng.uniform(np.log(p.low), np.log(p.high))))
    if p.kind == "int":
        return int(rng.integers(int(p.low), int(p.high) + 1))
    return str(p.choices[rng.integers(len(p.choices))])


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


METHODS: dict[str, Callable[..., Evaluated]] = {
    "ours": ours, "skopt": skopt_defaults, "random": random_search,
    "optuna-gp": optuna_run("gp"), "optuna-tpe": optuna_run("tpe")}


def regret_curve(problem: Problem, run: Evaluated) -> list[float]:
    """True regret of the best-observed point after each evaluation (noise-free problems:
    the best value so far). Real problems: the raw value, offset later by the run's best."""
    curve, best_i = [], 0
    for i, value in enumerate(run.observed):
        if value < run.observed[best_i]:
            best_i = i
        true = problem.fn(run.points[best_i]) if problem.noise_sd else run.observed[best_i]
        curve.append(true - (problem.minimum or 0.0))
    return curve


def execute(job: tuple[str, str, int, int, Bayes | None]) -> tuple[list[float], float]:
    """(regret curve, searcher seconds) of one job; for a process pool."""
    from bench.problems import BY_NAME
    name, method, seed, concurrency, options = job
    warnings.filterwarnings("ignore")
    problem = BY_NAME[name]
    kwargs = {"options": options} if method == "ours" else {}
    run = METHODS[method](problem, seed, concurrency, **kwargs)
    return regret_curve(problem, run), run.searcher_s
