"""search.budget: start no new trial once the sweep has spent its dollars or trial-hours.

A Ray Tune `Stopper` would stop the running trials too; this finishes the search algorithm
instead, so Tune creates no more trials and lets the running ones end normally.
Limitation: `--resume` restores this callback from Tune's saved state, apart from the restored
search algorithm, so a resumed sweep reports its spending (and `budget_stop`) but is not stopped.
"""
from __future__ import annotations

from typing import Any

from ray import tune
from ray.tune.search import SearchAlgorithm, Searcher, SearchGenerator

from pipeline import cost
from pipeline.config import Experiment


class BudgetGuard(tune.Callback):
    """Recomputes what all trials have spent at every result (running ones included) and
    finishes the search algorithm once a limit is reached."""

    def __init__(self, exp: Experiment, pricing: cost.Pricing, search_alg: SearchAlgorithm):
        self.budget, self.pricing, self.search_alg = exp.search.budget, pricing, search_alg
        self.last_results: dict[str, dict[str, Any]] = {}
        self.reason: str | None = None

    def spent(self) -> cost.Totals:
        return cost.totals(self.pricing.trial(r) for r in self.last_results.values())

    def _check(self, trials: list) -> None:
        if self.reason is not None:
            return
        self.reason = cost.over_budget(self.spent(), self.budget)
        if self.reason is not None:
            self.search_alg.set_finished()
            running = sum(1 for t in trials if t.status == "RUNNING")
            print(f"Budget reached ({self.reason}): no new trials; {running} running "
                  "trial(s) may finish", flush=True)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict,
                        **info: Any) -> None:
        self.last_results[trial.trial_id] = result
        self._check(trials)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.last_results[trial.trial_id] = trial.last_result or {}
        self._check(trials)


def guard(exp: Experiment, search_alg: SearchAlgorithm | Searcher,
          pricing: cost.Pricing) -> tuple[SearchAlgorithm | Searcher, list[tune.Callback]]:
    """The search algorithm (a Searcher wrapped as Tune would, so it can be finished) and the
    callback that finishes it; unchanged and no callback without a budget."""
    b = exp.search.budget
    if b.usd is None and b.hours is None:
        return search_alg, []
    if b.usd is not None and pricing.free:
        print("search.budget.usd: trials are priced at $0 here; set cluster.node_type (and "
              "cluster.autoscaler_config) to bill them at a node type's price", flush=True)
    if isinstance(search_alg, Searcher):
        search_alg = SearchGenerator(search_alg)
    return search_alg, [BudgetGuard(exp, pricing, search_alg)]
