"""Bayesian search for Ray Tune over scikit-optimize (Ray >= 2.11 dropped its SkOptSearch).

The searcher keeps the bookkeeping; the surrogate (`pipeline.search.surrogate`), the
acquisition step and the handling of running trials (`pipeline.search.acquisition`) and the
space mapping (`pipeline.search.skopt_space`) live apart. Decisions made here, and why:
- **Grid x Bayes: one `skopt.Optimizer` per grid cell, served balanced** (the cell with the
  fewest started trials goes next). A grid axis is usually a structural choice (architecture,
  dropout on/off) that moves the optimum of the other knobs; a surrogate per cell keeps each
  model honest, and "every cell gets its share", the promise of a grid, holds by construction.
  The price: cells share no observations, so each needs its own initial design.
- **Failures.** An errored trial, a missing metric or a NaN/inf value is told the worst finite
  value seen in its cell: a diverged learning rate marks its region bad without stretching
  the GP's output scale. Before a cell has any finite value such points wait as "unscored"
  and are treated like pending ones, so the initial design never repeats them.
- **Library warnings stay inside.** scikit-optimize and scikit-learn warn from Tune's control
  loop (a repeated point, negative predicted variances, GP convergence): hundreds of lines in
  a long sweep. Every searcher call records them (`_quiet`); the one that means something to
  a user, skopt replacing a repeated suggestion by a random point (the search has converged,
  or a discrete space is used up), becomes one line of ours, once per sweep.
"""
from __future__ import annotations

import fnmatch
import itertools
import math
import numbers
import pickle
import warnings
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow.fs
from matplotlib.figure import Figure
from ray.tune.search import Searcher, sample
from skopt import Optimizer
from skopt.learning import GaussianProcessRegressor
from skopt.space import Space

from pipeline.config import Bayes
from pipeline.search.acquisition import LogEIOptimizer, believer, make_optimizer
from pipeline.search.skopt_space import decode, encode, every_point, flatten, nest, to_dimension

RESULT_KEY = "_result"  # a points_to_evaluate entry with this key is told, not run
REPEAT_NOTE = ("bayes: the searcher began to propose points it has already evaluated (it has "
               "converged, or the space has few distinct points); repeats are replaced by "
               "random points")


@contextmanager
def _quiet(searcher: SkoptSearch) -> Iterator[None]:
    """Record the warnings of one searcher call; print our line for a repeated point once."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    # a small discrete space is used up point by point first (`_unvisited`), which says so
    if not searcher._noted_repeat and any("has been evaluated at point" in str(w.message)
                                          for w in caught) \
            and every_point(searcher._dims) is None:
        searcher._note_repeat()


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
                 points_to_evaluate: list[dict[str, Any]] = (), max_concurrent: int = 1,
                 budget: int | None = None):
        super().__init__(metric=metric, mode=mode)
        self._options = options or Bayes()
        self._rng = np.random.RandomState(seed)  # seeds for believers and missing values
        self._max_concurrent = max_concurrent
        self._budget = budget  # trials in all; each grid cell's design is sized to its share
        self._pending: dict[str, tuple[int, list[Any]]] = {}  # trial id -> (cell, point)
        self._points = list(points_to_evaluate)
        self._queue: deque[dict[str, Any]] = deque()  # points to run, first in first out
        self._known: list[dict[str, Any]] = []  # points with a result, told on first suggest
        self._cells: list[Cell] = []
        self._noted_repeat = False
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
        share = self._budget // len(combos) if getattr(self, "_budget", None) else None
        self._cells = [Cell(combo, make_optimizer(self._dims, self._options, int(s), share))
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
        with _quiet(self):
            return self._suggest(trial_id)

    def _suggest(self, trial_id: str) -> dict[str, Any] | None:
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
        with _quiet(self):
            self._observe(index, [point], [value])

    def add_evaluated_point(self, parameters: dict[str, Any], value: float, error: bool = False,
                            pruned: bool = False, intermediate_values: Any = None) -> None:
        """Tell a result obtained outside this sweep (a pruned one counts with its value)."""
        index, point = self._locate(flatten(parameters))
        with _quiet(self):
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
        """Next point of a cell, away from its pending and unscored points, and new while its
        (discrete) space has points left."""
        cell = self._cells[index]
        others = [p for i, p in self._pending.values() if i == index] + cell.unscored
        if not others:
            point = cell.optimizer.ask()
        elif isinstance(cell.optimizer, LogEIOptimizer) and cell.optimizer.models:
            point = cell.optimizer.ask_pending(others, int(self._rng.randint(2 ** 31)))
        else:
            point = believer(cell.optimizer, others, int(self._rng.randint(2 ** 31))).ask()
        return self._unvisited(point, [*cell.optimizer.Xi, *others])

    def _unvisited(self, point: list[Any], seen: list[list[Any]]) -> list[Any]:
        """`point`, or a random point not yet seen when it was and the space is small and
        discrete (choices, integers): the believer and the GP proposed a running trial's
        point again (6 points, 4 trials: the 4th repeated the 3rd). Once every point has
        been seen a repeat is all there is, and REPEAT_NOTE says so."""
        if point not in seen:
            return point
        every = every_point(self._dims)
        if every is None:  # a continuous space: skopt replaces an evaluated point itself
            return point
        taken = {tuple(p) for p in seen}
        left = [p for p in every if tuple(p) not in taken]
        if left:
            return left[self._rng.randint(len(left))]
        self._note_repeat()
        return point

    def _note_repeat(self) -> None:
        """REPEAT_NOTE, once per sweep."""
        if not self._noted_repeat:
            self._noted_repeat = True
            print(REPEAT_NOTE, flush=True)

    def _sign(self) -> float:
        return 1.0 if self._mode == "min" else -1.0  # skopt minimises

    def _observe(self, index: int, points: list[list[Any]], values: list[Any]) -> None:
        """Tell a cell's results in one GP refit; failures get the worst finite value."""
        cell = self._cells[index]
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


def load_saved(experiment_path: str, filesystem: pyarrow.fs.FileSystem) -> SkoptSearch | None:
    """The searcher as Tune last saved it in a sweep's folder (local or S3), for the summary's
    plots: after `--resume` Tune restores its own copy and the study holds no handle to it.
    None when the folder has no saved searcher."""
    pattern = Searcher.CKPT_FILE_TMPL.format("*")  # the session timestamp sorts them
    saved = sorted(info.path for info in filesystem.get_file_info(
        pyarrow.fs.FileSelector(experiment_path)) if fnmatch.fnmatch(info.base_name, pattern))
    if not saved:
        return None
    with filesystem.open_input_stream(saved[-1]) as stream:
        state = pickle.loads(stream.read())
    searcher = SkoptSearch(space={})
    searcher.__dict__.update(state)
    return searcher


def _finite(value: Any) -> bool:
    return isinstance(value, numbers.Real) and math.isfinite(value)
