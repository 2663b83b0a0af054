"""search.searcher -> the Ray Tune search algorithm, and the param space Tune gets beside it."""
from __future__ import annotations

import contextlib
import importlib
import threading
from typing import Any

from ray.tune.search import BasicVariantGenerator, ConcurrencyLimiter, SearchAlgorithm, Searcher

from pipeline.config import Search
from pipeline.search.space import points_to_configs, trial_count

BAYES_MODULE = "pipeline.search.skopt_search"


def import_meanwhile(search: Search) -> None:
    """Start importing the Bayesian searcher (scikit-optimize and scikit-learn: a second) on a
    thread, for `make_search` to find loaded: called as Ray starts, which mostly waits on its
    processes (1 s off every bayes sweep's start here)."""
    if search.searcher != "bayes":
        return

    def load() -> None:
        with contextlib.suppress(Exception):  # make_search's own import says what failed
            importlib.import_module(BAYES_MODULE)

    threading.Thread(target=load, name="searcher-import", daemon=True).start()


def make_search(search: Search, space: dict[str, Any],
                seed: int) -> tuple[SearchAlgorithm | Searcher, dict[str, Any]]:
    """The search algorithm, and the param space Tune gets alongside it (empty for bayes: the
    searcher owns the space)."""
    if search.searcher == "bayes":
        from pipeline.search.skopt_search import SkoptSearch

        searcher = SkoptSearch(space=space, options=search.bayes, metric=search.metric,
                               mode=search.mode, seed=seed,
                               points_to_evaluate=search.points_to_evaluate,
                               max_concurrent=search.max_concurrent,
                               budget=trial_count(search))
        # The limiter keeps Tune from asking for more than k points; the searcher itself
        # accounts for the ones pending.
        return ConcurrencyLimiter(searcher, search.max_concurrent), {}
    # PBT's population and HyperBand's brackets need every trial at once: they take turns
    # when resources run short (a paused trial counts as live, so a cap would shrink the
    # population, or leave a bracket part-full: it then pauses nothing, or waits forever).
    limit = 0 if search.scheduler in ("pbt", "hyperband") else search.max_concurrent
    return BasicVariantGenerator(points_to_evaluate=points_to_configs(search) or None,
                                 max_concurrent=limit, random_state=seed), space
