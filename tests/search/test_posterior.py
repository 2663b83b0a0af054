"""The fast posterior: the same numbers as skopt's GP, gradients that match finite
differences, and log EI's gradient built on them."""
from __future__ import annotations

import numpy as np
import pytest
from skopt.learning import GaussianProcessRegressor
from skopt.learning.gaussian_process.kernels import RBF
from skopt.space import Real

from pipeline.config import Bayes
from pipeline.search.improvement import log_ei, log_ei_with_gradient
from pipeline.search.posterior import Posterior
from pipeline.search.surrogate import frozen_gp, gp_estimator


def _fitted(noise: str | float = "gaussian"):
    rng = np.random.default_rng(0)
    X = rng.uniform(size=(40, 3))
    y = np.sin(5 * X).sum(1) + 0.05 * rng.normal(size=40)
    return gp_estimator([Real(0, 1)] * 3, Bayes(noise=noise), 0).fit(X, y), X, y


@pytest.mark.parametrize("noise", ["gaussian", 1e-6])
def test_fast_path_matches_skopts_predict(noise) -> None:
    gp, _, _ = _fitted(noise)
    post = Posterior(gp)
    Xs = np.random.default_rng(1).uniform(size=(30, 3))
    mean, std = gp.predict(Xs, return_std=True)
    assert post.fast
    assert np.allclose(post(Xs)[0], mean) and np.allclose(post(Xs)[1], std, atol=1e-9)


def test_a_frozen_gp_is_read_as_its_kernel_says() -> None:
    """The believer's GP (kernel fixed, noise as fitted): the variance of its kernel."""
    gp, X, y = _fitted()
    frozen = frozen_gp(gp).fit(X, y)
    Xs = np.random.default_rng(2).uniform(size=(10, 3))
    ours = Posterior(frozen)(Xs)
    assert Posterior(frozen).fast
    k = frozen.kernel_(Xs, frozen.X_train_)
    var = frozen.kernel_.diag(Xs) - np.einsum("ij,ij->i", k @ frozen.K_inv_, k)
    assert np.allclose(ours[1], np.sqrt(var) * frozen.y_train_std_)


def test_gradients_match_finite_differences() -> None:
    gp, _, _ = _fitted()
    post = Posterior(gp)
    x, h = np.array([0.3, 0.6, 0.1]), 1e-6
    mean, std, mean_grad, std_grad = post.with_gradient(x)
    steps = [post(x + h * e) for e in np.eye(3)]
    assert mean_grad == pytest.approx([(m[0] - mean) / h for m, _ in steps], rel=1e-3)
    assert std_grad == pytest.approx([(s[0] - std) / h for _, s in steps], rel=1e-3)


@pytest.mark.parametrize("y_best", [-2.0, 0.0, -40.0])  # near, at, and far below the mean
def test_log_ei_gradient_matches_finite_differences(y_best) -> None:
    gp, _, _ = _fitted()
    post = Posterior(gp)
    x, h = np.array([0.45, 0.2, 0.8]), 1e-6
    value, grad = log_ei_with_gradient(post, x, y_best, 0.0)
    assert value == pytest.approx(log_ei(post, x[None], y_best, 0.0)[0])
    numeric = [(log_ei(post, (x + h * e)[None], y_best, 0.0)[0] - value) / h
               for e in np.eye(3)]
    assert np.all(np.isfinite(grad)) and grad == pytest.approx(numeric, rel=1e-3, abs=1e-6)


def test_other_kernels_go_through_the_estimator() -> None:
    gp = GaussianProcessRegressor(kernel=RBF(0.5), normalize_y=True)
    X = np.array([[0.0], [0.4], [1.0]])
    gp.fit(X, np.array([1.0, 2.0, 3.0]))
    post = Posterior(gp)
    assert not post.fast
    mean, std = gp.predict(X, return_std=True)
    assert np.allclose(post(X)[0], mean) and np.allclose(post(X)[1], std, atol=1e-9)


def test_log_ei_gradient_stays_finite_where_the_variance_collapses() -> None:
    """At an observed point of a noiseless GP the std is ~0 and z ~ -1e10: the difference of
    log Phi and log h there is rounding noise (it overflowed exp() in a 300-trial sweep)."""
    from pipeline.search.improvement import phi_over_h
    assert phi_over_h(-1e10) == pytest.approx(1e10)
    assert phi_over_h(-30.0 - 1e-9) == pytest.approx(phi_over_h(-30.0 + 1e-9), rel=1e-5)
    gp, X, _ = _fitted(noise=1e-10)
    post = Posterior(gp)
    y_best = float(post(X)[0].min()) - 1e5  # z ~ -1e10 at a training point
    value, grad = log_ei_with_gradient(post, X[3], y_best, 0.0)
    assert np.isfinite(value) and np.all(np.isfinite(grad))
