"""The Gaussian-process surrogate: skopt's GP with Optuna GPSampler's hyperparameter priors.

The model stays skopt's GP (Matern-5/2 ARD on inputs normalised to [0, 1], standardised
outputs) with two changes that closed most of the gap to Optuna's GPSampler on the benchmark
(bench/results/bayes.md): Optuna's hyperparameter priors are added to the marginal likelihood
(`PriorGP`), and the noise is fitted under a small-noise prior (`pipeline.config.Bayes.noise`).
`frozen_gp` keeps a fitted kernel fixed, for the believer in `pipeline.search.acquisition`.
"""
from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import yeojohnson
from sklearn.base import clone
from sklearn.preprocessing import PowerTransformer
from skopt.learning import GaussianProcessRegressor
from skopt.learning.gaussian_process.gpr import _param_for_white_kernel_in_Sum
from skopt.learning.gaussian_process.kernels import WhiteKernel
from skopt.space import Categorical, Dimension
from skopt.utils import cook_estimator

from pipeline.config import Bayes


class PriorGP(GaussianProcessRegressor):
    """skopt's GP with Optuna GPSampler's hyperparameter priors added to the marginal
    likelihood it maximises: on each inverse squared length scale t, -(0.1/t + 0.1 t) (a soft
    pull towards length 1 on the unit cube, which keeps a dimension from being switched off
    at length 100), Gamma(2, 1) on the signal variance of the standardised outputs, and
    Gamma(1.1, 30) on a fitted noise variance (mean ~0.04, mode ~0.003)."""

    def log_marginal_likelihood(self, theta: Any = None, eval_gradient: bool = False,
                                clone_kernel: bool = True) -> Any:
        result = super().log_marginal_likelihood(theta, eval_gradient, clone_kernel)
        if theta is None:
            return result
        prior, grad = 0.0, np.zeros_like(theta)
        i = 0
        for h in self.kernel_.hyperparameters:
            if h.fixed:
                continue
            width = h.n_elements
            t = theta[i:i + width]
            if h.name.endswith("length_scale"):  # t = log length; 1/length^2 = exp(-2t)
                inv = np.exp(-2 * t)
                prior -= np.sum(0.1 / inv + 0.1 * inv)
                grad[i:i + width] = -(0.2 / inv - 0.2 * inv)
            elif h.name.endswith("constant_value"):  # Gamma(2, 1) on the variance
                prior += np.sum(t - np.exp(t))
                grad[i:i + width] = 1 - np.exp(t)
            elif h.name.endswith("noise_level"):  # Gamma(1.1, 30) on a fitted noise
                prior += np.sum(0.1 * t - 30 * np.exp(t))
                grad[i:i + width] = 0.1 - 30 * np.exp(t)
            i += width
        if eval_gradient:
            return result[0] + prior, result[1] + grad
        return result + prior


def gp_estimator(dims: list[Dimension], options: Bayes, seed: int | None) -> Any:
    """skopt's GP (Matern-5/2 ARD on the unit cube, standardised outputs) with our noise model
    and hyperparameter restarts, and Optuna's hyperparameter priors unless turned off."""
    estimator = cook_estimator("GP", space=dims, random_state=seed, noise=options.noise,
                               n_restarts_optimizer=options.gp_restarts)
    if options.gp_prior and not all(isinstance(d, Categorical) for d in dims):
        estimator = PriorGP(**estimator.get_params(deep=False))
    return estimator


def warm_gp(template: GaussianProcessRegressor, last: GaussianProcessRegressor | None,
            restart: bool) -> GaussianProcessRegressor:
    """An unfitted GP to refit on the grown data: the hyperparameter search starts from the
    last fit's kernel, without random restarts unless `restart`. One more observation barely
    moves the marginal likelihood's optimum, so the warm start lands where restarts would at a
    fraction of the cost (Optuna's GPSampler refits the same way); the periodic restart keeps
    a fit from staying in a poor local optimum for good."""
    estimator = clone(template)
    if last is None or restart:
        return estimator
    kernel = copy.deepcopy(last.kernel_)
    has_white, white_param = _param_for_white_kernel_in_Sum(kernel)
    if has_white and isinstance(template.noise, int | float):
        # a fixed noise (search.bayes.noise: a number) stays fixed: a free one here made it a
        # fitted one from the second fit on
        kernel.set_params(**{white_param: WhiteKernel(float(template.noise),
                                                      noise_level_bounds="fixed")})
    elif has_white:  # skopt zeroed the fitted noise for prediction: start from its fitted level
        low, high = WhiteKernel().noise_level_bounds  # the bounds skopt's fit gives it
        kernel.set_params(**{white_param: WhiteKernel(float(np.clip(last.noise_ or low, low,
                                                                    high)))})
    return estimator.set_params(kernel=kernel, n_restarts_optimizer=0)


RESTART_EVERY = 10
"""Every this many hyperparameter fits start afresh with the configured random restarts; in
between, one warm-started local fit (`warm_gp`)."""
TUNE_ON_AT_MOST = 200
"""Beyond this many observations the hyperparameters are fitted on a random subset of this
size and the GP then conditioned on all of them: the marginal likelihood's gradient costs
O(n^3 + n^2 d) per step, 0.45 s at n = 500 in 6-d (~100 steps a fit), one conditioning O(n^3)
once. Length scales and noise are global properties that 200 points pin down."""
RETUNE_FROM = 60
"""Up to this many observations the hyperparameters are refitted after every result; beyond
it only once the data grew RETUNE_GROWTH since the last fit (every 5 results at n = 100, 25
at n = 500), the kernel kept as fitted in between. A warm refit per result was a third of
the searcher's time in a 300-trial sweep at concurrency 16. The suite's budgets are at most
60 results, so its figures are those of a refit after every result; the suite run with this
set to 10 (refits on 5% growth from 10 results on) came out at 0.98 of that geometric mean
of regret (16 problems x 10 seeds, per problem 0.63 to 1.33 either way): no visible cost."""
RETUNE_GROWTH = 0.05


@dataclass
class Refits:
    """When and on what the GP's hyperparameters are refitted, one tell after another."""
    fits: int = 0
    tuned_at: int = 0
    """Observations at the last hyperparameter fit."""

    def fit(self, template: Any, last: Any, X: np.ndarray, y: np.ndarray,
            rng: np.random.RandomState) -> Any:
        """`template` fitted to (X, y): a GP by the schedule above, anything else afresh."""
        n = len(y)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # sklearn's convergence notes, skopt's variances
            if not isinstance(template, GaussianProcessRegressor):
                return clone(template).fit(X, y)
            if last is not None and n > RETUNE_FROM \
                    and n < self.tuned_at * (1 + RETUNE_GROWTH):
                return frozen_gp(last).fit(X, y)
            gp = warm_gp(template, last, restart=self.fits % RESTART_EVERY == 0)
            self.fits, self.tuned_at = self.fits + 1, n
            if n <= TUNE_ON_AT_MOST:
                return gp.fit(X, y)
            rows = rng.choice(n, TUNE_ON_AT_MOST, replace=False)
            return frozen_gp(gp.fit(X[rows], y[rows])).fit(X, y)


def warp_outputs(y: np.ndarray, method: str, power: float | None = None) -> np.ndarray:
    """The values the GP is fitted to: standardised and Yeo-Johnson transformed (the power
    fitted by maximum likelihood, as HEBO does, or `power` when given), or as observed for
    "none".

    A GP with one output scale models the whole range of the metric at once: a loss that
    spans 0.4 to 300 (Branin), or a diverged run next to a good one, spends its variance on
    the bad region and flattens the basin where the optimum is. The transform stretches the
    low end and compresses the tail, and is monotone, so the ranking of the observations,
    the incumbent and the point a user gets back are unchanged. On the 16-problem suite
    (bench/results/bayes_suite.md) it took the geometric mean of our regret over skopt's
    from 0.74 to about 0.5, Hartmann6 from 0.060 to 0.0008 and Mixed4 from 0.76 to 0.06."""
    y = np.asarray(y, dtype=float)
    if method == "none" or len(y) < 3 or np.ptp(y) == 0:
        return y
    y = tame_outliers(y)
    z = ((y - y.mean()) / y.std())[:, None]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy's overflow notes on extreme powers
        transform = PowerTransformer(method="yeo-johnson")
        if power is None:
            return transform.fit_transform(z)[:, 0]
        warped = yeojohnson(z[:, 0], power)
    return (warped - warped.mean()) / (warped.std() or 1.0)


OUTLIER_FENCE = 20.0
"""Bad-side values beyond the median plus this many scales (`tame_outliers`) are pulled in;
the scale is twice the median's distance to the first quartile (the interquartile range of
a symmetric set). The warping alone copes with a value 10 scales out and fails at 1000; at
5 the fence also caught the upper tail of Branin-like objectives once a search had gathered
its trials in the basin, and the suite's geometric mean of regret over skopt's went from
0.52 to 0.57 (Mixed4 0.058 to 0.115, NoisyBranin 0.09 to 0.22)."""


def tame_outliers(y: np.ndarray) -> np.ndarray:
    """y with bad-side (high) values beyond the OUTLIER_FENCE pulled in: fence + scale x
    log(1 + log(1 + excess / scale)), monotone, so the ranking is kept, and at most ~6.5
    scales out even for 1e300.

    Standardising first let one diverged value (1e6 against losses ~1) take all the
    variance: the good values became equal to 1e-6 of a unit, no power fitted to them
    separates them again, and the GP saw a flat landscape with one spike (best after 16
    trials 0.08-0.48 against ~1e-6 without the outlier). The fence stands on the good half
    (median and first quartile) because a diverging region can hold a quarter of the trials
    or more, which put the third quartile itself among the outliers; one log left 1e100 at
    230 scales, still enough to flatten the rest. The good side is never touched: it is where
    the optimum is. On a plateau (the first quartile at the median) the scale is the median
    distance of the other values from it."""
    q25, median = np.percentile(y, [25, 50])
    scale = 2 * (median - q25)
    if scale <= 0:
        off = np.abs(y - median)
        off = off[off > 0]
        if not len(off):
            return y
        scale = float(np.median(off))
    fence = median + OUTLIER_FENCE * scale
    far = y > fence
    if not far.any():
        return y
    tamed = y.copy()
    tamed[far] = fence + scale * np.log1p(np.log1p((y[far] - fence) / scale))
    return tamed


def fit_power(y: np.ndarray) -> float | None:
    """The Yeo-Johnson power `warp_outputs` would fit to y (None where it fits none)."""
    y = np.asarray(y, dtype=float)
    if len(y) < 3 or np.ptp(y) == 0:
        return None
    y = tame_outliers(y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(PowerTransformer(method="yeo-johnson").fit(
            ((y - y.mean()) / y.std())[:, None]).lambdas_[0])


@dataclass
class Warping:
    """`warp_outputs` for a growing list of results, its power refitted once the results
    grew by RETUNE_GROWTH (as the GP's hyperparameters are beyond RETUNE_FROM): the
    maximum-likelihood fit of the power took half the searcher's time in a 300-trial sweep,
    and one more result barely moves it."""
    method: str
    power: float | None = None
    fitted_at: int = 0
    cached: tuple[int, np.ndarray] | None = None

    def __call__(self, y: list[float]) -> np.ndarray:
        if self.cached is not None and self.cached[0] == len(y):
            return self.cached[1]
        if self.method != "none" and (self.power is None
                                      or len(y) >= self.fitted_at * (1 + RETUNE_GROWTH)):
            self.power, self.fitted_at = fit_power(y), len(y)
        warped = warp_outputs(y, self.method, self.power)
        self.cached = (len(y), warped)
        return warped


def frozen_gp(gp: GaussianProcessRegressor) -> GaussianProcessRegressor:
    """An unfitted copy of `gp` whose kernel is the fitted one and is never re-optimised."""
    kernel = copy.deepcopy(gp.kernel_)
    has_white, white_param = _param_for_white_kernel_in_Sum(kernel)
    if has_white and gp.noise_:  # skopt zeroes the fitted noise for prediction: restore it
        kernel.set_params(**{white_param: WhiteKernel(gp.noise_, noise_level_bounds="fixed")})
    return clone(gp).set_params(kernel=kernel, optimizer=None)
