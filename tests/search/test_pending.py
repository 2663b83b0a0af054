"""Expected improvement over running trials' fantasised outcomes: plain EI where they are
far, never above it, smaller but not zero next to a running trial."""
from __future__ import annotations

import numpy as np
import pytest
from skopt.space import Real

from pipeline.config import Bayes
from pipeline.search.improvement import log_ei
from pipeline.search.pending import PendingLogEI, posterior_cross
from pipeline.search.posterior import Posterior
from pipeline.search.surrogate import gp_estimator


@pytest.fixture(scope="module")
def gp():
    rng = np.random.default_rng(0)
    X = rng.uniform(size=(25, 2))
    y = ((X - 0.6) ** 2).sum(1) + 0.3 * np.sin(9 * X[:, 0])
    return gp_estimator([Real(0, 1)] * 2, Bayes(noise=1e-6), 0).fit(X, y)


def test_posterior_covariance_on_the_diagonal_is_the_variance(gp) -> None:
    X = np.random.default_rng(1).uniform(size=(6, 2))
    _, std = Posterior(gp)(X)
    assert np.diag(posterior_cross(gp, X, X)) == pytest.approx(std ** 2, rel=1e-6)


def test_running_trials_far_away_leave_ei_as_it_is(gp) -> None:
    y_best = float(gp.y_train_.min() * gp.y_train_std_ + gp.y_train_mean_)
    far = np.array([[0.0, 0.0]])  # its outcome is almost surely worse than the best
    acquisition = PendingLogEI(gp, far, y_best, 0.0, seed=0)
    X = np.array([[0.6, 0.6], [0.9, 0.2]])
    assert acquisition(X) == pytest.approx(log_ei(gp, X, y_best, 0.0), abs=0.05)


def test_next_to_a_promising_running_trial_ei_shrinks_but_stays_positive(gp) -> None:
    post = Posterior(gp)
    grid = np.stack(np.meshgrid(np.linspace(0, 1, 41), np.linspace(0, 1, 41)), -1).reshape(-1, 2)
    y_best = float(post(gp.X_train_)[0].min())
    running = grid[[int(np.argmax(log_ei(gp, grid, y_best, 0.0)))]]  # where EI goes first
    acquisition = PendingLogEI(gp, running, y_best, 0.0, seed=0)
    plain, pending = log_ei(gp, grid, y_best, 0.0), acquisition(grid)
    assert np.all(pending <= plain + 0.05)  # a lower bar to beat can only cost improvement
    near = running + [[0.03, 0.0]]
    drop = log_ei(gp, near, y_best, 0.0)[0] - acquisition(near)[0]
    assert drop > 0.5 and np.isfinite(acquisition(near)[0])
    assert acquisition(running)[0] < acquisition(near)[0]  # the running point itself: least


def test_it_is_seeded(gp) -> None:
    pending = np.array([[0.5, 0.5], [0.2, 0.8]])
    X = np.random.default_rng(3).uniform(size=(5, 2))
    a = PendingLogEI(gp, pending, 0.0, 0.0, seed=4)(X)
    assert np.array_equal(a, PendingLogEI(gp, pending, 0.0, 0.0, seed=4)(X))
