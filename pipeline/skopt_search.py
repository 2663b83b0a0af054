"""Bayesian search for Ray Tune over scikit-optimize (Ray >= 2.11 dropped its SkOptSearch).

Decisions, and why:
- **Space.** The searcher takes the whole nested trial config: constants stay in place, Ray
  domains become skopt dimensions named by their dotted path ("train.lr"), and
  `tune.grid_search` entries are crossed outside the optimizer.
- **Grid x Bayes: one `skopt.Optimizer` per grid cell, served balanced** (the cell with the
  fewest started trials goes next). A grid axis is usually a structural choice (architecture,
  dropout on/off) that moves the optimum of the other knobs; a surrogate per cell keeps each
  model honest, and "every cell gets its share", the promise of a grid, holds by construction.
  The price: cells share no observations, so each needs its own initial design.
- **Surrogate and acquisition (what closes the gap to Optuna's GPSampler).** The model stays
  skopt's GP (Matern-5/2 ARD on inputs normalised to [0, 1], standardised outputs) with two
  changes: Optuna's hyperparameter priors are added to the marginal likelihood (`PriorGP`)
  and the noise is fitted under a small-noise prior. The acquisition step is ours
  (`LogEIOptimizer`): log EI, which stays finite and ordered where EI underflows, maximised
  by L-BFGS-B from the best of 2000 random candidates and 500 perturbations of the 5 best
  points (random candidates alone rarely land close enough to refine the incumbent). The
  design is max(10, 2.5 x dimensions) LHS points: 10 suits 2-d Branin, while 6-d Hartmann6
  needs ~15 to find its global basin. Numbers are in `pipeline.config.Bayes` and
  bench/results/bayes.md.
- **Running trials: kriging believer with a frozen kernel.** With trials pending, a throwaway
  optimizer holds the real observations plus each pending point at the last real model's
  posterior mean, with the GP hyperparameters fitted on real data only. The near-noiseless
  GP's variance collapses at pending points and the incumbent includes the believed values,
  so expected improvement there is ~0: no (near-)duplicates. Refitting hyperparameters on
  lies (skopt's `ask(n_points)`, or telling the minimum) distorts length scales and let a
  noisy GP re-suggest pending points: the 2-40x losses in BASELINES.md. With a fitted noise
  the believer gives real points their noise and pending ones none (per-point `alpha`), so
  the variance still collapses at pending points; as log EI still ranks their immediate
  neighbours in a converged sweep, a suggestion also keeps `MIN_GAP` from running points.
- **Failures.** An errored trial, a missing metric or a NaN/inf value is told the worst finite
  value seen in its cell: a diverged learning rate marks its region bad without stretching
  the GP's output scale. Before a cell has any finite value such points wait as "unscored"
  and are treated like pending ones, so the initial design never repeats them.
"""
from __future__ import annotations

import copy
import itertools
import math
import numbers
import pickle
import warnings
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from ray.tune.search import Searcher, sample
from scipy.optimize import minimize
from scipy.special import erfcx, ndtr
from sklearn.base import clone
from skopt import Optimizer
from skopt.learning import GaussianProcessRegressor
from skopt.learning.gaussian_process.gpr import _param_for_white_kernel_in_Sum
from skopt.learning.gaussian_process.kernels import WhiteKernel
from skopt.space import Categorical, Dimension, Integer, Real, Space
from skopt.utils import cook_estimator

from pipeline.config import Bayes, set_path

RESULT_KEY = "_result"  # a points_to_evaluate entry with this key is told, not run


# ---- space: nested Ray config <-> flat skopt points -------------------------------------

def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dict -> {dotted path: leaf}; a grid_search dict and an empty dict are leaves.
    Kept apart from `pipeline.tracking.flatten`, which would split `{"grid_search": [...]}`
    into a "grid_search" path."""
    flat = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value and "grid_search" not in value:
            flat.update(flatten(value, path + "."))
        else:
            flat[path] = value
    return flat


def nest(flat: dict[str, Any]) -> dict[str, Any]:
    """{dotted path: value} -> nested dict (the inverse of `flatten`), by the config's own
    `set_path` rule (so a dotted key under `params` stays one key, as in the experiment)."""
    tree: dict[str, Any] = {}
    for path, value in flat.items():
        set_path(tree, path, copy.deepcopy(value))
    return tree


def to_dimension(path: str, domain: sample.Domain) -> Dimension:
    """A Ray domain as a skopt dimension; Categorical gets string labels (see `decode`)."""
    sampler = domain.get_sampler()
    prior = "log-uniform" if isinstance(sampler, sample.LogUniform) else "uniform"
    if not isinstance(sampler, (sample.Uniform, sample.LogUniform, sample.Grid)):
        raise TypeError(f"{path}: {type(sampler).__name__} sampling has no skopt dimension")
    if isinstance(domain, sample.Float):
        return Real(domain.lower, domain.upper, prior=prior, name=path)
    if isinstance(domain, sample.Integer):  # Ray's upper bound is exclusive, skopt's inclusive
        return Integer(domain.lower, domain.upper - 1, prior=prior, name=path)
    if isinstance(domain, sample.Categorical):
        # Labels, not the objects: skopt needs hashable categories, and plots read labels.
        labels = [str(c) for c in domain.categories]
        if len(set(labels)) != len(labels):
            raise ValueError(f"{path}: choices {domain.categories} do not print distinctly")
        return Categorical(labels, name=path)
    raise TypeError(f"{path}: unsupported domain {type(domain).__name__}")


def decode(dim: Dimension, value: Any, choices: list[Any] | None) -> Any:
    """A skopt value as the Python value a trial expects (int, float, or the chosen object)."""
    if isinstance(dim, Categorical):
        return copy.deepcopy(choices[list(dim.categories).index(value)])
    return int(value) if isinstance(dim, Integer) else float(value)


def encode(dim: Dimension, value: Any, choices: list[Any] | None) -> Any:
    """A trial's value as skopt's: the inverse of `decode`."""
    if isinstance(dim, Categorical):
        return dim.categories[choices.index(value)]
    return int(value) if isinstance(dim, Integer) else float(value)


# ---- optimizers ----------------------------------------------------------------------------

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


def initial_points(dims: list[Dimension], options: Bayes) -> int:
    """The design size: the option, or max(10, 2.5 x dimensions) when it is unset."""
    if options.n_initial_points is not None:
        return options.n_initial_points
    return max(10, round(2.5 * len(dims)))


def make_optimizer(dims: list[Dimension], options: Bayes, seed: int | None) -> Optimizer:
    """An skopt.Optimizer configured from the experiment's `search.bayes` options: a
    `LogEIOptimizer` for a GP with EI and the `local` acquisition optimiser."""
    is_gp = options.base_estimator == "GP"
    estimator = gp_estimator(dims, options, seed) if is_gp else options.base_estimator
    local = is_gp and options.acq_optimizer == "local" and options.acq_func == "EI" \
        and not all(isinstance(d, Categorical) for d in dims)  # skopt samples those
    acq_optimizer = "sampling" if not is_gp else "lbfgs" if options.acq_optimizer == "local" \
        else options.acq_optimizer  # trees have no gradient
    optimizer = (LogEIOptimizer if local else Optimizer)(
        dims, estimator, n_initial_points=initial_points(dims, options),
        initial_point_generator=options.initial_point_generator, acq_func=options.acq_func,
        acq_optimizer=acq_optimizer, random_state=seed,
        acq_func_kwargs={"xi": options.xi, "kappa": options.kappa},
        model_queue_size=1,  # only the last model is used; keeps save() small
        acq_optimizer_kwargs={"n_points": options.n_points,
                              "n_restarts_optimizer": options.n_restarts_optimizer})
    if local:
        optimizer.local = LocalSearch(options.n_local, options.local_scale, options.xi,
                                      options.log_ei)
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


MIN_GAP = 0.02
"""Least Euclidean distance, in the normalised space, between a suggestion and a running
point. The believer alone makes EI ~0 at running points but log EI still ranks their close
neighbours when the model is confident everywhere else (a converged sweep): 0.004 apart."""

_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


def log_h(z: np.ndarray) -> np.ndarray:
    """log(z * Phi(z) + phi(z)), accurate where EI underflows (z << 0)."""
    z = np.asarray(z, dtype=float)
    out = np.empty_like(z)
    high, mid, low = z > -1, (z <= -1) & (z > -1e4), z <= -1e4
    zh = z[high]
    out[high] = np.log(zh * ndtr(zh) + np.exp(-0.5 * zh ** 2 - _LOG_SQRT_2PI))
    zm = z[mid]  # Phi/phi = sqrt(pi/2) erfcx(-z/sqrt 2): no underflow
    out[mid] = -0.5 * zm ** 2 - _LOG_SQRT_2PI + np.log1p(
        zm * math.sqrt(math.pi / 2) * erfcx(-zm / math.sqrt(2)))
    zl = z[low]
    out[low] = -0.5 * zl ** 2 - _LOG_SQRT_2PI - 2 * np.log(-zl)
    return out


def log_ei(model: Any, X: np.ndarray, y_best: float, xi: float, log: bool = True) -> np.ndarray:
    """log expected improvement (minimisation) of `model` at the rows of X."""
    mu, std = model.predict(X, return_std=True)
    std = np.maximum(std, 1e-12)
    value = np.log(std) + log_h((y_best - xi - mu) / std)
    return value if log else np.exp(value)


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
        est = clone(self.base_estimator_)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est.fit(self.space.transform(self.Xi), self.yi)
        if len(self.models) >= (self.max_model_queue_size or math.inf):
            self.models.pop(0)
        self.models.append(est)
        x = self._maximise(est, np.asarray(self.yi, dtype=float), self.rng)
        self._next_x = self.space.inverse_transform(x.reshape(1, -1))[0]
        result.models = self.models
        return result

    def ask_pending(self, pending: list[list[Any]], seed: int) -> list[Any]:
        """The next point with `pending` held at the last model's posterior mean (kriging
        believer, kernel frozen: see the module doc); the optimizer itself is not changed."""
        model = self.models[-1]
        Xt = self.space.transform(self.Xi + pending)
        y = np.concatenate([self.yi, model.predict(Xt[len(self.Xi):])])
        # Kernel frozen; real points keep the fitted noise, believed ones get none, so the
        # variance (and EI) collapses at every pending point even under a fitted noise.
        alpha = np.full(len(y), float(model.alpha))
        alpha[:len(self.Xi)] += model.noise_ or 0.0
        fantasy = clone(model).set_params(kernel=copy.deepcopy(model.kernel_), optimizer=None,
                                          noise=None, alpha=alpha)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fantasy.fit(Xt, y)
        x = self._maximise(fantasy, y, np.random.RandomState(seed), avoid=Xt[len(self.Xi):])
        return self.space.inverse_transform(x.reshape(1, -1))[0]

    def _maximise(self, est: Any, y: np.ndarray, rng: np.random.RandomState,
                  avoid: np.ndarray | None = None) -> np.ndarray:
        """The (transformed) point of highest acquisition, at least MIN_GAP from `avoid`."""

        def far(P: np.ndarray) -> np.ndarray:  # rows at least MIN_GAP from every avoided one
            if avoid is None or not len(avoid):
                return np.ones(len(P), dtype=bool)
            return (np.linalg.norm(P[:, None] - avoid[None], axis=2) >= MIN_GAP).all(axis=1)

        bounds = np.array(self.space.transformed_bounds, dtype=float)
        low, high = bounds[:, 0], bounds[:, 1]
        y_best, xi = float(np.min(y)), self.local.xi
        X = self.space.transform(self.space.rvs(n_samples=self.n_points, random_state=rng))
        best = self.space.transform([self.Xi[i] for i in np.argsort(y[:len(self.Xi)])[:5]])
        pick = best[rng.randint(len(best), size=self.local.n_local)]
        scales = self.local.scale * 10.0 ** -rng.randint(0, 3, size=(len(pick), 1))
        near = np.clip(pick + rng.normal(size=pick.shape) * scales * (high - low),
                       low, high)
        candidates = np.vstack([X, near])
        values = np.where(far(candidates), log_ei(est, candidates, y_best, xi, self.local.log),
                          -np.inf)
        starts = candidates[np.argsort(-values)[:self.n_restarts_optimizer]]
        step = 1e-6 * (high - low)

        def negative(x: np.ndarray) -> tuple[float, np.ndarray]:
            """-log EI and its forward-difference gradient, in one batched prediction."""
            h = np.where(x + step <= high, step, -step)
            v = log_ei(est, np.vstack([x, x + np.diag(h)]), y_best, xi, self.local.log)
            return -float(v[0]), -(v[1:] - v[0]) / h

        found = [(values.max(), candidates[np.argmax(values)])]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for x0 in starts:
                r = minimize(negative, x0, jac=True, method="L-BFGS-B",
                             bounds=list(zip(low, high)), options={"maxiter": 50})
                found.append((-r.fun, np.clip(r.x, low, high)))
        points = np.array([x for _, x in found])
        rounded = self.space.transform(self.space.inverse_transform(points))
        scores = np.where(far(rounded), [v for v, _ in found], -np.inf)
        return points[int(np.argmax(scores))]


def frozen_gp(gp: GaussianProcessRegressor) -> GaussianProcessRegressor:
    """An unfitted copy of `gp` whose kernel is the fitted one and is never re-optimised."""
    kernel = copy.deepcopy(gp.kernel_)
    has_white, white_param = _param_for_white_kernel_in_Sum(kernel)
    if has_white and gp.noise_:  # skopt zeroes the fitted noise for prediction: restore it
        kernel.set_params(**{white_param: WhiteKernel(gp.noise_, noise_level_bounds="fixed")})
    return clone(gp).set_params(kernel=kernel, optimizer=None)


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


@dataclass
class Cell:
    """One grid cell: its grid values and the optimizer that searches the rest."""
    grid_values: dict[str, Any]
    optimizer: Optimizer
    started: int = 0
    unscored: list[list[Any]] = field(default_factory=list)
    """Failed points waiting for a first finite value to be penalised with."""


class SkoptSearch(Searcher):
    """Ray Tune searcher over skopt.Optimizer: grid x Bayes, parallel-aware, resumable."""

    def __init__(self, space: dict[str, Any], options: Bayes | None = None,
                 metric: str | None = None, mode: str | None = None, seed: int | None = None,
                 points_to_evaluate: list[dict[str, Any]] = (), max_concurrent: int = 1):
        super().__init__(metric=metric, mode=mode)
        self._options = options or Bayes()
        self._rng = np.random.RandomState(seed)  # seeds for believers and missing values
        self._max_concurrent = max_concurrent
        self._pending: dict[str, tuple[int, list[Any]]] = {}  # trial id -> (cell, point)
        self._history: list[float] = []  # metric per completed trial, NaN for failures
        self._points = list(points_to_evaluate)
        self._queue: deque[dict[str, Any]] = deque()  # points to run, first in first out
        self._known: list[dict[str, Any]] = []  # points with a result, told on first suggest
        self._cells: list[Cell] = []
        if space:
            self._set_space(space)

    def _set_space(self, space: dict[str, Any]) -> None:
        flat = flatten(space)
        domains = {p: d for p, d in flat.items() if isinstance(d, sample.Domain)}
        grids = {p: v["grid_search"] for p, v in flat.items()
                 if isinstance(v, dict) and "grid_search" in v}
        if not domains:
            raise ValueError("SkoptSearch: the space has no domain to search")
        self._constants = {p: v for p, v in flat.items() if p not in domains and p not in grids}
        self._dims = [to_dimension(p, d) for p, d in domains.items()]
        self._choices = {p: list(d.categories) for p, d in domains.items()
                         if isinstance(d, sample.Categorical)}
        combos = [dict(zip(grids, values)) for values in itertools.product(*grids.values())]
        cell_seeds = self._rng.randint(2 ** 31, size=len(combos))
        self._cells = [Cell(combo, make_optimizer(self._dims, self._options, int(s)))
                       for combo, s in zip(combos, cell_seeds)]
        for point in self._points:
            (self._known if RESULT_KEY in point else self._queue).append(point)

    def _tell_known(self) -> None:
        """Tell the points that came with a result, one refit per cell; deferred to the first
        suggestion because Tune may only set `mode` (the sign) after construction."""
        by_cell: dict[int, tuple[list, list]] = {}
        for flat in self._known:
            index, point = self._locate(flat)
            by_cell.setdefault(index, ([], []))[0].append(point)
            by_cell[index][1].append(flat[RESULT_KEY])
        for index, (points, values) in by_cell.items():
            self._observe(index, points, values)
        self._known = []

    # ---- Ray Tune Searcher interface ----------------------------------------------------

    def set_search_properties(self, metric: str | None, mode: str | None,
                              config: dict[str, Any], **spec: Any) -> bool:
        """Take metric/mode where the constructor left them unset; a space given to the
        constructor wins, a Tune param_space is used only when there was none."""
        self._metric = self._metric or metric
        self._mode = self._mode or mode
        if config and not self._cells:
            self._set_space(config)
        return True

    def set_max_concurrency(self, max_concurrent: int) -> bool:
        self._max_concurrent = max_concurrent
        return True  # suggest() enforces it, so Tune's ConcurrencyLimiter stands aside

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        if not (self._metric and self._mode and self._cells):
            raise RuntimeError("SkoptSearch: set space, metric and mode before suggesting")
        if len(self._pending) >= self._max_concurrent:
            return None
        self._tell_known()
        if self._queue:
            index, point = self._locate(self._queue.popleft())
        else:
            index = self._least_started_cell()
            point = self._ask(index)
        self._pending[trial_id] = (index, point)
        self._cells[index].started += 1
        return self._config(index, point)

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None,
                          error: bool = False) -> None:
        """Tell the trial's last result (an early-stopped trial counts with its last value)."""
        if trial_id not in self._pending:
            return
        index, point = self._pending.pop(trial_id)
        value = None if error or not result else result.get(self._metric)
        self._observe(index, [point], [value])

    def add_evaluated_point(self, parameters: dict[str, Any], value: float, error: bool = False,
                            pruned: bool = False, intermediate_values: Any = None) -> None:
        """Tell a result obtained outside this sweep (a pruned one counts with its value)."""
        index, point = self._locate(flatten(parameters))
        self._observe(index, [point], [None if error else value])

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as file:
            pickle.dump(self.__dict__, file)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as file:
            self.__dict__.update(pickle.load(file))

    # ---- internals -----------------------------------------------------------------------

    def _least_started_cell(self) -> int:
        return min(range(len(self._cells)), key=lambda i: self._cells[i].started)

    def _ask(self, index: int) -> list[Any]:
        """Next point of a cell, away from its pending and unscored points."""
        cell = self._cells[index]
        others = [p for i, p in self._pending.values() if i == index] + cell.unscored
        if not others:
            return cell.optimizer.ask()
        if isinstance(cell.optimizer, LogEIOptimizer) and cell.optimizer.models:
            return cell.optimizer.ask_pending(others, int(self._rng.randint(2 ** 31)))
        return believer(cell.optimizer, others, int(self._rng.randint(2 ** 31))).ask()

    def _sign(self) -> float:
        return 1.0 if self._mode == "min" else -1.0  # skopt minimises

    def _observe(self, index: int, points: list[list[Any]], values: list[Any]) -> None:
        """Tell a cell's results in one GP refit; failures get the worst finite value."""
        cell = self._cells[index]
        self._history += [float(v) if _finite(v) else math.nan for v in values]
        scored = [(p, self._sign() * float(v)) for p, v in zip(points, values) if _finite(v)]
        cell.unscored += [p for p, v in zip(points, values) if not _finite(v)]
        known = cell.optimizer.yi + [y for _, y in scored]
        if not known:
            return  # nothing to penalise with yet: the failures wait as unscored
        told = scored + [(p, max(known)) for p in cell.unscored]
        cell.unscored = []
        cell.optimizer.tell([p for p, _ in told], [y for _, y in told])

    def _locate(self, flat: dict[str, Any]) -> tuple[int, list[Any]]:
        """(cell, skopt point) of a flat config; missing grid values pick the balanced cell,
        missing searched values are drawn at random."""
        matching = [i for i, c in enumerate(self._cells)
                    if all(flat.get(p, v) == v for p, v in c.grid_values.items())]
        if not matching:
            raise ValueError(f"SkoptSearch: {flat} matches no grid cell")
        index = min(matching, key=lambda i: self._cells[i].started)
        drawn = Space(self._dims).rvs(random_state=self._rng)[0]
        point = [encode(d, flat[d.name], self._choices.get(d.name)) if d.name in flat else x
                 for d, x in zip(self._dims, drawn)]
        return index, point

    def _config(self, index: int, point: list[Any]) -> dict[str, Any]:
        sampled = {d.name: decode(d, v, self._choices.get(d.name))
                   for d, v in zip(self._dims, point)}
        return nest({**self._constants, **self._cells[index].grid_values, **sampled})

    # ---- plots ---------------------------------------------------------------------------

    def convergence_figure(self) -> Figure | None:
        """Best value so far against completed trial; None before any finite value."""
        values = np.array(self._history, dtype=float)
        if not np.isfinite(values).any():
            return None
        best = (np.fmin if self._mode == "min" else np.fmax).accumulate(values)
        figure = Figure(figsize=(6, 4))
        ax = figure.subplots()
        ax.plot(np.arange(1, len(values) + 1), values, "o", alpha=0.4, label="trial")
        ax.step(np.arange(1, len(values) + 1), best, where="post", label="best so far")
        ax.set(xlabel="completed trial", ylabel=self._metric, title="Convergence")
        ax.legend()
        return figure

    def objective_figure(self) -> Figure | None:
        """skopt's partial dependence plot of the GP surrogate of the cell holding the best
        trial; None when no cell has a fitted GP (trees' surrogates are too coarse to read)."""
        cells = [c for c in self._cells if c.optimizer.models
                 and isinstance(c.optimizer.models[-1], GaussianProcessRegressor)]
        if not cells:
            return None
        best = min(cells, key=lambda c: min(c.optimizer.yi))
        import matplotlib
        matplotlib.use("Agg")  # skopt.plots draws through pyplot: keep it headless
        import matplotlib.pyplot as plt
        from skopt.plots import plot_objective
        figure = np.ravel(plot_objective(best.optimizer.get_result()))[0].figure
        plt.close(figure)  # pyplot would keep it alive; savefig still works on it
        return figure


def _finite(value: Any) -> bool:
    return isinstance(value, numbers.Real) and math.isfinite(value)
