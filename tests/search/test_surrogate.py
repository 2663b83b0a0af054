"""The GP surrogate: Optuna-style priors in the marginal likelihood, and frozen kernels."""
from __future__ import annotations

import numpy as np
import pytest
from skopt.learning import GaussianProcessRegressor
from skopt.space import Categorical, Real

from pipeline.config import Bayes
from pipeline.search.surrogate import PriorGP, frozen_gp, gp_estimator

DIMS = [Real(0.0, 1.0, name="a"), Real(1e-4, 1e-1, prior="log-uniform", name="b")]


def fitted(n: int = 12, seed: int = 0) -> GaussianProcessRegressor:
    rng = np.random.default_rng(seed)
    X = rng.uniform(size=(n, 2))
    gp = gp_estimator(DIMS, Bayes(gp_restarts=0), seed)
    return gp.fit(X, np.sin(6 * X[:, 0]) + X[:, 1] ** 2 + 0.01 * rng.normal(size=n))


def fitted_theta(gp: GaussianProcessRegressor) -> np.ndarray:
    """kernel_.theta, whose last entry is log(0): skopt zeroes the fitted noise in kernel_
    for prediction (numpy would warn of the log on every read)."""
    with np.errstate(divide="ignore"):
        return gp.kernel_.theta.copy()


def test_estimator_has_the_priors_unless_turned_off_or_all_categorical():
    assert type(gp_estimator(DIMS, Bayes(), 0)) is PriorGP
    assert type(gp_estimator(DIMS, Bayes(gp_prior=False), 0)) is GaussianProcessRegressor
    assert type(gp_estimator([Categorical(["x", "y"])], Bayes(), 0)) is not PriorGP


def test_prior_gradient_matches_finite_differences():
    """The optimiser climbs this gradient; a wrong sign or factor would fit nonsense."""
    gp = fitted()
    theta = fitted_theta(gp)
    # skopt zeroes the fitted noise in kernel_ for prediction; put a noise level back, and
    # move off the optimum, where the gradient is not ~0
    assert gp.kernel_.hyperparameters[-1].name.endswith("noise_level")
    theta[-1] = np.log(gp.noise_)
    theta += 0.3
    value, grad = gp.log_marginal_likelihood(theta, eval_gradient=True)
    assert value == pytest.approx(gp.log_marginal_likelihood(theta))
    step = 1e-6
    numeric = [(gp.log_marginal_likelihood(theta + step * e) - value) / step
               for e in np.eye(len(theta))]
    assert grad == pytest.approx(numeric, rel=1e-3, abs=1e-3)


def test_priors_add_a_data_free_penalty_to_the_likelihood():
    """Each prior term is a log density at most ~-0.2 (length), -1 (variance), -0.7 (noise):
    the priors lower the likelihood, by an amount that depends on theta, not on the data."""
    gp, other = fitted(seed=0), fitted(seed=1)
    theta = np.append(fitted_theta(gp)[:-1], np.log(0.01))  # with a noise level (see above)

    def prior_terms(model: PriorGP) -> float:
        return (model.log_marginal_likelihood(theta)
                - GaussianProcessRegressor.log_marginal_likelihood(model, theta))

    assert prior_terms(gp) < -1
    assert prior_terms(gp) == pytest.approx(prior_terms(other))


def test_frozen_gp_keeps_the_fitted_kernel_and_noise():
    gp = fitted()
    frozen = frozen_gp(gp)
    rng = np.random.default_rng(5)
    X = rng.uniform(size=(20, 2))
    frozen.fit(X, rng.normal(size=20))  # other data: a refit would move the length scales
    assert np.allclose(fitted_theta(frozen), fitted_theta(gp))
    assert frozen.noise_ == pytest.approx(gp.noise_)


def test_posterior_matches_skopts_predict():
    from pipeline.search.posterior import Posterior
    rng = np.random.default_rng(0)
    X, Xs = rng.uniform(size=(40, 3)), rng.uniform(size=(25, 3))
    gp = gp_estimator([Real(0, 1)] * 3, Bayes(), 0).fit(X, np.sin(5 * X).sum(1))
    mean, std = gp.predict(Xs, return_std=True)
    ours = Posterior(gp)(Xs)
    assert np.allclose(ours[0], mean) and np.allclose(ours[1], std, atol=1e-9)


def test_beyond_200_results_hyperparameters_are_fitted_on_a_subset_and_refitted_on_growth():
    from pipeline.search.surrogate import TUNE_ON_AT_MOST, Refits
    rng = np.random.RandomState(0)
    X = rng.uniform(size=(270, 2))
    y = np.sin(4 * X).sum(1)
    template, refits = gp_estimator([Real(0, 1)] * 2, Bayes(), 0), Refits()
    tuned = refits.fit(template, None, X[:250], y[:250], rng)
    assert refits.tuned_at == 250 and len(tuned.X_train_) == 250  # conditioned on all
    assert tuned.optimizer is None  # the kernel came from the subset fit, kept fixed
    held = refits.fit(template, tuned, X[:255], y[:255], rng)  # < 5% growth: no refit
    assert refits.tuned_at == 250 and held.kernel_ == tuned.kernel_
    refits.fit(template, held, X[:TUNE_ON_AT_MOST + 70], y[:TUNE_ON_AT_MOST + 70], rng)
    assert refits.tuned_at == 270


def test_warping_keeps_the_order_and_evens_out_a_long_tail():
    from scipy.stats import skew

    from pipeline.search.surrogate import warp_outputs
    y = np.exp(np.random.default_rng(0).normal(0, 2, size=60))  # a loss with a long tail
    warped = warp_outputs(y, "yeo-johnson")
    assert np.array_equal(np.argsort(warped), np.argsort(y))
    assert abs(warped.mean()) < 1e-9 and warped.std() == pytest.approx(1.0)
    assert skew(y) > 3 and abs(skew(warped)) < 1.0
    assert np.array_equal(warp_outputs(y, "none"), y)
    assert np.array_equal(warp_outputs(np.ones(5), "yeo-johnson"), np.ones(5))  # no spread


@pytest.mark.parametrize("outlier", [1e3, 1e6, 1e30, 1e300])
@pytest.mark.parametrize("count", [1, 5])
def test_huge_bad_values_do_not_flatten_the_good_ones(outlier: float, count: int):
    """One diverged trial (or a diverging region, a quarter of the trials) at 1e3-1e300
    against losses 0-1: standardising first squeezed the good values to within 1e-3 of each
    other and the search lost its basin."""
    from pipeline.search.surrogate import tame_outliers, warp_outputs
    good = np.linspace(0.0, 1.0, 15)
    y = np.concatenate([good, np.full(count, outlier), [outlier * 0.5]])
    warped = warp_outputs(y, "yeo-johnson")
    assert np.all(np.diff(warped[:15]) > 0) and warped[15] > warped[14]  # order kept
    assert np.ptp(warped[:15]) > 0.1 * np.ptp(warped)  # the good values keep their spread
    assert warped[-1] < warped[15]  # outliers stay ordered among themselves
    assert np.array_equal(tame_outliers(good), good)  # nothing far: untouched
    tail = np.exp(np.random.default_rng(0).normal(0, 1, size=60))  # lognormal: mild tail
    assert np.mean(tame_outliers(tail) != tail) < 0.05


def test_the_gp_is_fitted_to_the_warped_observations():
    from pipeline.search.acquisition import make_optimizer
    from pipeline.search.surrogate import warp_outputs
    dims = [Real(0, 1), Real(0, 1)]
    for warping in ("yeo-johnson", "none"):
        opt = make_optimizer(dims, Bayes(n_initial_points=6, gp_restarts=0,
                                         output_warping=warping), 0)
        for x in opt.ask(8):
            opt.tell(x, float(np.exp(8 * x[0]) + x[1]))
        fitted = opt.models[-1]
        targets = fitted.y_train_ * fitted.y_train_std_ + fitted.y_train_mean_
        power = opt.warping.power
        assert targets == pytest.approx(warp_outputs(opt.yi, warping, power))
        assert (power is None) == (warping == "none")


def test_the_warping_power_is_refitted_on_growth_and_matches_a_fresh_fit():
    from pipeline.search.surrogate import RETUNE_GROWTH, Warping, fit_power, warp_outputs
    y = list(np.exp(np.random.default_rng(1).normal(0, 2, size=120)))
    warping = Warping("yeo-johnson")
    assert warping(y[:100]) == pytest.approx(warp_outputs(y[:100], "yeo-johnson"))
    assert warping.power == pytest.approx(fit_power(y[:100]))
    grown = int(100 * (1 + RETUNE_GROWTH))
    warping(y[:grown - 1])
    assert warping.fitted_at == 100  # under 5% more: the power stays
    warping(y[:grown])
    assert warping.fitted_at == grown and warping.power == pytest.approx(fit_power(y[:grown]))


def test_beyond_retune_from_hyperparameters_wait_for_growth():
    from pipeline.search.surrogate import RETUNE_FROM, RETUNE_GROWTH, Refits
    rng = np.random.RandomState(0)
    X = rng.uniform(size=(RETUNE_FROM + 20, 2))
    y = np.sin(4 * X).sum(1)
    template, refits = gp_estimator([Real(0, 1)] * 2, Bayes(), 0), Refits()
    last = None
    for n in range(RETUNE_FROM - 2, RETUNE_FROM + 1):  # every result up to RETUNE_FROM
        last = refits.fit(template, last, X[:n], y[:n], rng)
        assert refits.tuned_at == n
    held = refits.fit(template, last, X[:RETUNE_FROM + 1], y[:RETUNE_FROM + 1], rng)
    assert refits.tuned_at == RETUNE_FROM and held.kernel_ == last.kernel_
    assert len(held.X_train_) == RETUNE_FROM + 1  # conditioned on the new result all the same
    grown = int(np.ceil(RETUNE_FROM * (1 + RETUNE_GROWTH)))
    refits.fit(template, held, X[:grown], y[:grown], rng)
    assert refits.tuned_at == grown


@pytest.mark.parametrize("gp_prior", [True, False])
def test_a_fixed_noise_stays_fixed_through_warm_refits(gp_prior: bool):
    """search.bayes.noise: 0.5 held for the first fit only: the warm refits freed it (0.5,
    then 0.0035, 0.0031, ... as if "gaussian"; found from outside)."""
    from pipeline.search.surrogate import warm_gp

    template = gp_estimator(DIMS, Bayes(noise=0.5, gp_prior=gp_prior), 0)
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(16, len(DIMS)))
    y = np.sin(6 * x[:, 0]) + x[:, 1]
    last = None
    for n in (8, 12, 16):
        gp = warm_gp(template, last, restart=False)
        gp.fit(x[:n], y[:n])
        assert gp.noise_ == pytest.approx(0.5)
        last = gp
