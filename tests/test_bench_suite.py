"""The Bayesian benchmark suite's problems and runs: a wrong minimum or a broken method
would silently turn the README's table into fiction."""
from __future__ import annotations

import numpy as np
import pytest

from bench import problems
from bench.problems import BY_NAME, SUITE
from bench.suite_runs import noise_rng, ours, random_search, regret_curve, skopt_defaults
from pipeline.config import Bayes

KNOWN_OPTIMA = {
    "Branin": {"x0": np.pi, "x1": 2.275},
    "Hartmann6": {f"x{i}": v for i, v in enumerate(
        [0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573])},
    "Rosenbrock4": {f"x{i}": 1.0 for i in range(4)},
    "Ackley5": {f"x{i}": problems.ACKLEY_SHIFT for i in range(5)},
    "Rastrigin3": {f"x{i}": problems.RASTRIGIN_SHIFT for i in range(3)},
    "Schwefel2": {f"x{i}": 420.9687 for i in range(2)},
    "StyblinskiTang8": {f"x{i}": -2.903534 for i in range(8)},
    "Shekel4": {f"x{i}": 4.00075 for i in range(4)},
    "Ellipsoid20": {f"x{i}": problems.ELLIPSOID_CENTRE for i in range(20)},
    "Plateau4": {f"x{i}": v for i, v in enumerate(problems.PLATEAU_CENTRE)},
    "Mixed4": {"optimizer": "adam", "layers": 7, "x0": np.pi, "x1": 2.275},
    # held out (bench.bayes_heldout)
    "Levy5": {f"x{i}": 1.0 for i in range(5)},
    "Griewank6": {f"x{i}": 2.0 for i in range(6)},
    "Michalewicz5": {f"x{i}": v for i, v in enumerate(
        [2.202906, 1.570796, 1.284992, 1.923058, 1.720470])},
    "SixHumpCamel": {"x0": 0.0898, "x1": -0.7126},
    "GoldsteinPrice": {"x0": 0.0, "x1": -1.0},
    "DixonPrice6": {f"x{i}": 2.0 ** (-(2 ** (i + 1) - 2) / 2 ** (i + 1)) for i in range(6)},
    "Eggholder": {"x0": 512.0, "x1": 404.2319},
    "Powell8": {f"x{i}": 0.0 for i in range(8)},
    "Quadratic3": {"x0": 0.9, "x1": 0.05, "x2": 0.3},
}


def test_the_suite_is_broad():
    assert len(SUITE) >= 12
    dims = [len(p.params) for p in SUITE]
    assert min(dims) == 2 and max(dims) == 20
    kinds = {param.kind for p in SUITE for param in p.params}
    assert kinds == {"real", "log", "int", "cat"}
    assert sum("noisy" in p.tags for p in SUITE) >= 2 and sum("real" in p.tags for p in SUITE) >= 2


@pytest.mark.parametrize("name", sorted(KNOWN_OPTIMA))
def test_known_minimum_is_attained_at_the_optimum_and_undercut_nowhere(name):
    problem = BY_NAME[name]
    assert problem.fn(KNOWN_OPTIMA[name]) == pytest.approx(problem.minimum, abs=1e-3)
    run = random_search(problem, seed=0)
    assert min(problem.fn(v) for v in run.points) > problem.minimum


def test_the_lattice_minimum_is_the_enumerated_one():
    problem = BY_NAME["IntHartmann3"]
    assert problem.minimum == pytest.approx(-3.86, abs=0.01)  # Hartmann3's -3.8628 off-grid


def test_noisy_regret_is_the_true_value_of_the_best_observed_point():
    problem = BY_NAME["NoisyBranin"]
    run = random_search(problem, seed=3)
    assert run.observed != [problem.fn(v) for v in run.points]  # noise was added
    best = int(np.argmin(run.observed))
    assert regret_curve(problem, run)[-1] == pytest.approx(
        problem.fn(run.points[best]) - problem.minimum)
    # every method at one seed sees the same noise for its i-th evaluation
    assert noise_rng(3, 5).normal() == noise_rng(3, 5).normal()


def test_every_method_runs_the_budget_on_a_mixed_space_and_beats_nothing_impossible():
    problem = BY_NAME["Mixed4"]
    fast = Bayes(n_initial_points=5, n_points=200, n_restarts_optimizer=1, gp_restarts=0)
    small = type(problem)(**{**problem.__dict__, "budget": 12})
    for run in (ours(small, 0, 1, fast), ours(small, 0, 4, fast), skopt_defaults(small, 0),
                random_search(small, 0)):
        assert len(run.observed) == 12
        assert {v["optimizer"] for v in run.points} <= set(problems.MIXED_SCALE)
        assert all(isinstance(v["layers"], int) for v in run.points)
        assert min(run.observed) >= problem.minimum


def test_the_cache_key_follows_the_code_not_its_docstrings(tmp_path):
    from bench.bayes_suite import code_digest

    source = tmp_path / "searcher.py"

    def digest(text: str) -> str:
        source.write_text(text)
        return code_digest([source])

    base = digest('"""Module."""\ndef f(x):\n    """Why."""\n    return x + 1  # note\n')
    assert digest('"""Other."""\ndef f(x):\n    """Reworded."""\n    return x + 1\n') == base
    assert digest('def f(x):\n    return x + 2\n') != base
    assert digest('def f(x):\n    """Only a docstring."""\n') != digest('def f(x):\n    return\n')
