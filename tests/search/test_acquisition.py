"""The acquisition step: log EI, its maximiser, and points chosen while trials still run."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm
from skopt.space import Real

from pipeline.config import Bayes
from pipeline.search.acquisition import (
    MIN_GAP,
    LogEIOptimizer,
    believer,
    initial_points,
    make_optimizer,
)
from pipeline.search.improvement import log_ei, log_h

FAST = Bayes(n_initial_points=5, n_points=300, n_local=100, n_restarts_optimizer=2,
             gp_restarts=0)
DIMS = [Real(-2.0, 2.0, name="x"), Real(-2.0, 2.0, name="y")]


def bowl(point: list[float]) -> float:
    return (point[0] - 0.7) ** 2 + 2 * (point[1] + 0.4) ** 2


def run(optimizer, steps: int) -> None:
    for _ in range(steps):
        point = optimizer.ask()
        optimizer.tell(point, bowl(point))


def test_log_h_is_accurate_where_ei_is_representable_and_finite_beyond():
    z = np.linspace(-30, 5, 200)
    direct = np.log(z * norm.cdf(z) + norm.pdf(z))
    assert log_h(z) == pytest.approx(direct, rel=1e-6)
    far = log_h(np.array([-40.0, -1e3, -1e5, -1e7]))
    assert np.all(np.isfinite(far)) and np.all(np.diff(far) < 0)  # still ordered


def test_log_ei_equals_the_log_of_expected_improvement():
    class Known:  # a "model" with a known posterior: EI has a closed form to compare with
        def predict(self, X, return_std=False):
            return X[:, 0], np.full(len(X), 0.5)

    X = np.array([[0.0], [1.0], [3.0]])
    z = (0.2 - X[:, 0]) / 0.5
    ei = (0.2 - X[:, 0]) * norm.cdf(z) + 0.5 * norm.pdf(z)
    assert np.exp(log_ei(Known(), X, y_best=0.2, xi=0.0)) == pytest.approx(ei)
    assert log_ei(Known(), X, 0.2, 0.0, log=False) == pytest.approx(ei)


def test_design_size_is_the_option_or_scales_with_dimensions():
    assert initial_points(DIMS, Bayes()) == 10
    assert initial_points(DIMS * 5, Bayes()) == 25
    assert initial_points(DIMS, Bayes(n_initial_points=3)) == 3
    # a known budget caps the design at a quarter of it, never under 10
    assert initial_points(DIMS * 5, Bayes(), budget=60) == 15
    assert initial_points(DIMS * 5, Bayes(), budget=20) == 10
    assert initial_points(DIMS * 5, Bayes(), budget=200) == 25
    assert initial_points(DIMS * 5, Bayes(n_initial_points=30), budget=60) == 30


def test_each_grid_cell_sizes_its_design_to_its_share_of_the_budget():
    from ray import tune

    from pipeline.search.skopt_search import SkoptSearch
    space = {f"x{i}": tune.uniform(0, 1) for i in range(10)} | {"g": tune.grid_search([1, 2])}
    search = SkoptSearch(space, Bayes(), "v", "min", 0, budget=120)
    assert [c.optimizer.n_initial_points_ for c in search._cells] == [15, 15]
    assert SkoptSearch(space, Bayes(), "v", "min", 0)._cells[0].optimizer.n_initial_points_ == 25


def test_options_pick_the_optimizer():
    assert type(make_optimizer(DIMS, FAST, 0)) is LogEIOptimizer
    assert type(make_optimizer(DIMS, FAST.model_copy(update={"acq_func": "LCB"}), 0)) \
        is not LogEIOptimizer
    trees = make_optimizer(DIMS, FAST.model_copy(update={"base_estimator": "RF"}), 0)
    assert type(trees) is not LogEIOptimizer and trees.acq_optimizer == "sampling"


def test_log_ei_optimizer_homes_in_on_a_bowl():
    optimizer = make_optimizer(DIMS, FAST, 0)
    run(optimizer, 20)
    assert min(optimizer.yi) < 1e-3  # random search at 20 points: ~0.05


@pytest.mark.parametrize("pending_mode", ["believer", "fantasies"])
def test_pending_points_are_avoided_and_the_optimizer_is_left_alone(pending_mode):
    optimizer = make_optimizer(DIMS, FAST.model_copy(update={"pending": pending_mode}), 0)
    run(optimizer, 12)
    told = (list(optimizer.Xi), list(optimizer.yi))
    best = optimizer.Xi[int(np.argmin(optimizer.yi))]
    pending = [best, [0.7, -0.4]]  # where plain EI would go next
    point = optimizer.ask_pending(pending, seed=1)
    unit = np.array(optimizer.space.transform([point] + pending))
    assert min(np.linalg.norm(unit[0] - unit[1:], axis=1)) >= MIN_GAP
    assert (optimizer.Xi, optimizer.yi) == told
    assert optimizer.ask_pending(pending, seed=1) == point  # seeded


def test_believer_is_a_copy_that_also_holds_the_pending_points():
    optimizer = make_optimizer(DIMS, FAST.model_copy(update={"base_estimator": "RF"}), 0)
    run(optimizer, 8)
    pending = [[1.0, 1.0]]
    fantasy = believer(optimizer, pending, seed=3)
    assert fantasy.Xi == optimizer.Xi + pending and len(optimizer.Xi) == 8
    assert math.isfinite(fantasy.yi[-1])
    assert fantasy.ask() not in optimizer.Xi + pending
