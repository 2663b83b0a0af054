"""The acquisition step: which point to evaluate next, with or without trials still running.

- **Log EI, maximised locally** (`LogEIOptimizer`): log expected improvement stays finite and
  ordered where EI underflows; it is maximised by L-BFGS-B (analytic gradient through
  `pipeline.search.posterior`) from the best of 2000 random candidates and 500 perturbations
  of the 5 best points (random candidates alone rarely land close enough to refine the
  incumbent). The GP sees the observations warped (`surrogate.warp_outputs`). The initial design is max(10, 2.5 x dimensions) LHS
  points: 10 suits 2-d Branin, while 6-d Hartmann6 needs ~15 to find its global basin.
- **Running trials: kriging believer with a frozen kernel** (`LogEIOptimizer.ask_pending`,
  `believer` for the other estimators). A throwaway model holds the real observations plus
  each pending point at the last real model's posterior mean, with the GP hyperparameters
  fitted on real data only. The near-noiseless GP's variance collapses at pending points and
  the incumbent includes the believed values, so expected improvement there is ~0: no
  (near-)duplicates. Refitting hyperparameters on lies (skopt's `ask(n_points)`, or telling
  the minimum) distorts length scales and let a noisy GP re-suggest pending points: the 2-40x
  losses in BASELINES.md. With a fitted noise the believer gives real points their noise and
  pending ones none (per-point `alpha`), so the variance still collapses at pending points; as
  log EI still ranks their immediate neighbours in a converged sweep, a suggestion also keeps
  `MIN_GAP` from running points. Tried and dropped (Ray-free loop of bench/bayes.py, Branin
  c=4, median regret against the believer's): the constant liar at the minimum (0.63 vs
  0.005, 5 seeds), believed values capped at the minimum (0.32), Thompson sampling from the
  believer (0.047), local penalisation (0.025); no change over 15 seeds: an incumbent from
  real values only, believed points keeping the fitted noise, one or two running "exploit"
  points at the posterior mean's minimum, a larger or smaller design.
"""
from __future__ import annotations

import copy
import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import minimize
from sklearn.base import clone
from skopt import Optimizer
from skopt.learning import GaussianProcessRegressor
from skopt.space import Categorical, Dimension

from pipeline.config import Bayes
from pipeline.search.improvement import log_ei, log_ei_with_gradient
from pipeline.search.pending import PendingLogEI
from pipeline.search.posterior import Posterior
from pipeline.search.surrogate import Refits, Warping, frozen_gp, gp_estimator


def initial_points(dims: list[Dimension], options: Bayes, budget: int | None = None) -> int:
    """The design size: the option, or when it is unset max(10, 2.5 x dimensions), capped
    at a quarter of the trial budget (never under 10) when the budget is known. Without the
    cap a 20-d space spent 50 of 60 trials on the design (bench/results/bayes_suite.md:
    Ellipsoid20 median regret 2.5 with 50, 0.37 with 10); 6-d Hartmann6 still gets its 15."""
    if options.n_initial_points is not None:
        return options.n_initial_points
    design = max(10, round(2.5 * len(dims)))
    return design if budget is None else min(design, max(10, budget // 4))


def make_optimizer(dims: list[Dimension], options: Bayes, seed: int | None,
                   budget: int | None = None) -> Optimizer:
    """An skopt.Optimizer configured from the experiment's `search.bayes` options: a
    `LogEIOptimizer` for a GP with EI and the `local` acquisition optimiser."""
    is_gp = options.base_estimator == "GP"
    estimator = gp_estimator(dims, options, seed) if is_gp else options.base_estimator
    categorical = all(isinstance(d, Categorical) for d in dims)
    local = is_gp and options.acq_optimizer == "local" and options.acq_func == "EI" \
        and not categorical
    # Trees have no gradient, and skopt refuses L-BFGS on a space of choices alone (a
    # `choice:`-only bayes sweep failed at its first trial): both sample.
    acq_optimizer = "sampling" if not is_gp or categorical else \
        "lbfgs" if options.acq_optimizer == "local" else options.acq_optimizer
    optimizer = (LogEIOptimizer if local else Optimizer)(
        dims, estimator, n_initial_points=initial_points(dims, options, budget),
        initial_point_generator=options.initial_point_generator, acq_func=options.acq_func,
        acq_optimizer=acq_optimizer, random_state=seed,
        acq_func_kwargs={"xi": options.xi, "kappa": options.kappa},
        model_queue_size=1,  # only the last model is used; keeps save() small
        acq_optimizer_kwargs={"n_points": options.n_points,
                              "n_restarts_optimizer": options.n_restarts_optimizer})
    if local:
        optimizer.local = LocalSearch(options.n_local, options.local_scale, options.xi,
                                      options.log_ei, options.output_warping, options.pending)
    return optimizer


@dataclass(frozen=True)
class LocalSearch:
    """Settings of `LogEIOptimizer`'s acquisition step (see `Bayes`)."""
    n_local: int
    """Candidates drawn around the 5 best observed points."""
    scale: float
    """Their largest standard deviation, as a fraction of each (normalised) dimension."""
    xi: float
    log: bool = True
    """Maximise log EI (False: EI itself)."""
    warping: str = "yeo-johnson"
    """What the GP is fitted to (`surrogate.warp_outputs`)."""
    pending: str = "believer"
    """How running trials count (`Bayes.pending`)."""


MIN_GAP = 0.02
"""Least Euclidean distance, in the normalised space, between a suggestion and a running
point. The believer alone makes EI ~0 at running points but log EI still ranks their close
neighbours when the model is confident everywhere else (a converged sweep): 0.004 apart."""

class LogEIOptimizer(Optimizer):
    """skopt.Optimizer whose acquisition step maximises log-EI from the best of random
    candidates and of perturbations of the best points seen, refined by L-BFGS-B.

    skopt's own step (EI from its best random candidates) loses the incumbent's basin once EI
    underflows away from it, and its random candidates rarely land close enough to refine it.
    """
    local: LocalSearch

    def _tell(self, x: Any, y: Any, fit: bool = True) -> Any:
        result = super()._tell(x, y, fit=False)
        if not fit or self._n_initial_points > 0 or self.base_estimator_ is None:
            return result
        if not hasattr(self, "fitting"):
            self.fitting = Refits()  # optimizers pickled before refits were scheduled
        est = self.fitting.fit(self.base_estimator_, self.models[-1] if self.models else None,
                               self.space.transform(self.Xi), self._y(), self.rng)
        if len(self.models) >= (self.max_model_queue_size or math.inf):
            self.models.pop(0)
        self.models.append(est)
        # The next point is found when asked for: with trials running, `ask_pending` is
        # asked instead, and maximising here too would double the searcher's time.
        self._next_x = None
        result.models = self.models
        return result

    def _y(self) -> np.ndarray:
        """The observations as the GP sees them (`surrogate.Warping`)."""
        if not hasattr(self, "warping"):  # an optimizer pickled before outputs were warped
            self.warping = Warping(getattr(self.local, "warping", "none"))
        return self.warping(self.yi)

    def _ask(self) -> list[Any]:
        if self._n_initial_points <= 0 and self.models and getattr(self, "_next_x", 1) is None:
            y = self._y()
            acquisition = LogEI(Posterior(self.models[-1]), float(np.min(y)), self.local.xi,
                                self.local.log)
            x = self._maximise(acquisition, self.rng)
            self._next_x = self.space.inverse_transform(x.reshape(1, -1))[0]
        return super()._ask()

    def ask_pending(self, pending: list[list[Any]], seed: int) -> list[Any]:
        """The next point while `pending` trials run (`pipeline.search.pending`, or the
        kriging believer of the module doc); the optimizer itself is not changed."""
        model, y = self.models[-1], self._y()
        rng = np.random.RandomState(seed)
        Xp = self.space.transform(pending)
        if getattr(self.local, "pending", "believer") == "fantasies":
            acquisition = PendingLogEI(model, Xp, float(np.min(y)), self.local.xi,
                                       int(rng.randint(2 ** 31)))
            x = self._maximise(acquisition, rng, avoid=Xp)
            return self.space.inverse_transform(x.reshape(1, -1))[0]
        y = np.concatenate([y, model.predict(Xp)])
        # Kernel frozen; real points keep the fitted noise, believed ones get none, so the
        # variance (and EI) collapses at every pending point even under a fitted noise.
        alpha = np.full(len(y), float(model.alpha))
        alpha[:len(self.Xi)] += model.noise_ or 0.0
        fantasy = clone(model).set_params(kernel=copy.deepcopy(model.kernel_), optimizer=None,
                                          noise=None, alpha=alpha)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fantasy.fit(self.space.transform(self.Xi + pending), y)
        acquisition = LogEI(Posterior(fantasy), float(np.min(y)), self.local.xi, self.local.log)
        x = self._maximise(acquisition, rng, avoid=Xp)
        return self.space.inverse_transform(x.reshape(1, -1))[0]

    def _maximise(self, acquisition: Any, rng: np.random.RandomState,
                  avoid: np.ndarray | None = None) -> np.ndarray:
        """The (transformed) point of highest acquisition, at least MIN_GAP from `avoid`."""

        seen = self.space.transform(self.Xi) if self.Xi else np.empty((0, len(self.space)))

        def far(P: np.ndarray) -> np.ndarray:
            """Rows at least MIN_GAP from every avoided point and not at an evaluated one (an
            optimum on a bound or an integer grid comes back exactly, and skopt would then
            swap in a random point)."""
            ok = nearest(P, seen) > 1e-6
            return ok if avoid is None else ok & (nearest(P, avoid) >= MIN_GAP)

        bounds = np.array(self.space.transformed_bounds, dtype=float)
        low, high = bounds[:, 0], bounds[:, 1]
        X = self.space.transform(self.space.rvs(n_samples=self.n_points, random_state=rng))
        best = self.space.transform([self.Xi[i] for i in np.argsort(self.yi)[:5]])
        pick = best[rng.randint(len(best), size=self.local.n_local)]
        scales = self.local.scale * 10.0 ** -rng.randint(0, 3, size=(len(pick), 1))
        near = np.clip(pick + rng.normal(size=pick.shape) * scales * (high - low),
                       low, high)
        candidates = np.vstack([X, near])
        values = np.where(far(candidates), acquisition(candidates), -np.inf)
        starts = candidates[np.argsort(-values)[:self.n_restarts_optimizer]]
        step = 1e-6 * (high - low)
        gradient = getattr(acquisition, "with_gradient", None)

        def negative(x: np.ndarray) -> tuple[float, np.ndarray]:
            """-acquisition and its gradient: analytic where the acquisition has one, else a
            forward difference in one batched evaluation."""
            if gradient is not None:
                value, grad = gradient(x)
                return -value, -grad
            h = np.where(x + step <= high, step, -step)
            v = acquisition(np.vstack([x, x + np.diag(h)]))
            return -float(v[0]), -(v[1:] - v[0]) / h

        found = [(values.max(), candidates[np.argmax(values)])]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for x0 in starts:
                r = minimize(negative, x0, jac=True, method="L-BFGS-B",
                             bounds=list(zip(low, high)), options=LBFGS_OPTIONS)
                found.append((-r.fun, np.clip(r.x, low, high)))
        points = np.array([x for _, x in found])
        rounded = self.space.transform(self.space.inverse_transform(points))
        scores = np.where(far(rounded), [v for v, _ in found], -np.inf)
        return points[int(np.argmax(scores))]


LBFGS_OPTIONS = {"maxiter": 50, "maxls": 5}
"""maxls 5 (scipy's default 20): near dense or pending points the posterior variance is a
difference of nearly equal numbers, log EI is rough at the 1e-8 scale, and a line search
there fails after all its evaluations (ABNORMAL in 57% of the runs of a 1-d sweep of 150
trials at concurrency 16, 24% on Hartmann6 at 4). Capped, a failed search costs 5
evaluations: 20% less searcher time per suggestion in the 1-d sweep, and the suite's
searcher time per run went from 3.5 s to 1.3 s (median) with its geometric mean of regret
against skopt 0.51 -> 0.52 (within the seeds' spread; bench/results/bayes_suite.md)."""


@dataclass(frozen=True)
class LogEI:
    """log EI of a posterior (EI itself when `log` is off), with the analytic gradient
    where the posterior has one."""
    post: Posterior
    y_best: float
    xi: float
    log: bool = True

    def __call__(self, X: np.ndarray) -> np.ndarray:
        return log_ei(self.post, X, self.y_best, self.xi, self.log)

    @property
    def with_gradient(self) -> Any:
        if not (self.post.fast and self.log):
            return None
        return lambda x: log_ei_with_gradient(self.post, x, self.y_best, self.xi)


def nearest(P: np.ndarray, Q: np.ndarray) -> np.ndarray:
    """Distance from each row of P to its nearest row of Q (inf when Q is empty), without
    the |P| x |Q| x d array a broadcast would build (2500 x 500 x 20 doubles is 200 MB)."""
    if not len(Q):
        return np.full(len(P), np.inf)
    squared = (P ** 2).sum(1)[:, None] + (Q ** 2).sum(1)[None] - 2 * P @ Q.T
    return np.sqrt(np.maximum(squared.min(axis=1), 0.0))


def believer(opt: Optimizer, pending: list[list[Any]], seed: int) -> Optimizer:
    """A throwaway copy of `opt` that also holds `pending` at believed values (module doc)."""
    model = opt.models[-1] if opt.models else None
    if model is not None:
        lies = list(model.predict(opt.space.transform(pending)))
    else:  # still in the initial design: the values only advance it past pending points
        lies = [float(np.mean(opt.yi)) if opt.yi else 0.0] * len(pending)
    estimator = frozen_gp(model) if isinstance(model, GaussianProcessRegressor) \
        else opt.base_estimator_
    fantasy = type(opt)(**{**opt.specs["args"], "base_estimator": estimator,
                           "random_state": seed})
    if hasattr(opt, "local"):
        fantasy.local = opt.local
    fantasy._initial_samples = opt._initial_samples  # as Optimizer.copy does
    if hasattr(opt, "gains_"):
        fantasy.gains_ = np.copy(opt.gains_)
    fantasy.tell(opt.Xi + pending, opt.yi + lies)
    return fantasy
