"""search.budget: start no new trial once the sweep has spent its dollars or trial-hours.

A Ray Tune `Stopper` would stop the running trials too; this finishes the search algorithm
instead, so Tune creates no more trials and lets the running ones end normally.
The spend is recomputed from every trial Tune passes in, not accumulated in the callback: after
`--resume` the callback comes back from the pickled run config with its state at the start of
the sweep, while Tune's trials (finished ones included) come back with their last results.
"""
from __future__ import annotations

from typing import Any

from ray import tune
from ray.tune.search import SearchAlgorithm, Searcher, SearchGenerator

from pipeline.config import Budget
from pipeline.execution import cost


class BudgetGuard(tune.Callback):
    """Recomputes what all trials have spent at every result (running ones included) and
    finishes the search algorithm once a limit is reached."""

    def __init__(self, budget: Budget, pricing: cost.Pricing, search_alg: SearchAlgorithm):
        self.budget, self.pricing, self.search_alg = budget, pricing, search_alg
        self.reason: str | None = None

    def spent(self, trials: list, latest: dict[str, dict[str, Any]]) -> cost.Totals:
        """All trials' spend from their last results, `latest` (trial id -> result) first:
        Tune calls back before it updates a trial's last result."""
        results = {t.trial_id: latest.get(t.trial_id, t.last_result or {}) for t in trials}
        return cost.totals(self.pricing.trial(r) for r in results.values())

    def _check(self, trials: list, latest: dict[str, dict[str, Any]]) -> None:
        if self.reason is not None:
            return
        self.reason = cost.over_budget(self.spent(trials, latest), self.budget)
        if self.reason is not None:
            self.search_alg.set_finished()
            running = sum(1 for t in trials if t.status == "RUNNING")
            print(f"Budget reached ({self.reason}): no new trials; {running} running "
                  "trial(s) may finish", flush=True)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict,
                        **info: Any) -> None:
        self._check(trials, {trial.trial_id: result})

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._check(trials, {})


def guard(budget: Budget, search_alg: SearchAlgorithm | Searcher,
          pricing: cost.Pricing) -> tuple[SearchAlgorithm | Searcher, list[tune.Callback]]:
    """The search algorithm (a Searcher wrapped as Tune would, so it can be finished) and the
    callback that finishes it; unchanged and no callback without a budget."""
    if budget.usd is None and budget.hours is None:
        return search_alg, []
    if budget.usd is not None and pricing.free:
        print("search.budget.usd: trials are priced at $0 here; set cluster.node_type (and "
              "cluster.autoscaler_config) to bill them at a node type's price", flush=True)
    if isinstance(search_alg, Searcher):
        search_alg = SearchGenerator(search_alg)
    return search_alg, [BudgetGuard(budget, pricing, search_alg)]
