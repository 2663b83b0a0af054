"""search.budget: the guard finishes the search algorithm once the trials have spent it.
(End to end, through a real sweep: tests/test_results.py.)"""
from __future__ import annotations

import pickle
from types import SimpleNamespace

from ray.tune.search import BasicVariantGenerator, ConcurrencyLimiter, Searcher, SearchGenerator

from pipeline.config import load
from pipeline.context import resolve
from pipeline.execution import budget

from ..conftest import write_experiment


class Constant(Searcher):
    """The smallest real Searcher: always the same config."""

    def suggest(self, trial_id: str) -> dict:
        return {"x": 1.0}


def test_without_a_budget_nothing_changes(workdir) -> None:
    exp = load(write_experiment(workdir, "name: b\n"))
    search_alg = BasicVariantGenerator()
    assert budget.guard(exp.search.budget, search_alg, resolve(exp).pricing) == (search_alg, [])


def test_a_searcher_is_wrapped_so_it_can_be_finished(workdir) -> None:
    exp = load(write_experiment(workdir, "name: b\nsearch: {budget: {usd: 1.0}}\n"))
    searcher = ConcurrencyLimiter(Constant(), 1)
    search_alg, (guard,) = budget.guard(exp.search.budget, searcher, resolve(exp).pricing)
    assert isinstance(search_alg, SearchGenerator) and search_alg.searcher is searcher
    assert guard.search_alg is search_alg


def test_the_guard_finishes_the_search_when_trial_hours_are_spent(workdir, capsys) -> None:
    exp = load(write_experiment(workdir, "name: b\nsearch: {budget: {hours: 1.0}}\n"))
    search_alg, (guard,) = budget.guard(exp.search.budget, BasicVariantGenerator(), resolve(exp).pricing)
    running = SimpleNamespace(trial_id="a", status="RUNNING", last_result={})
    guard.on_trial_result(1, [running], running, {"time_total_s": 1800.0})
    assert not search_alg.is_finished()
    running.last_result = {"time_total_s": 1800.0}  # as Tune updates it after the callback
    other = SimpleNamespace(trial_id="b", status="RUNNING", last_result={})
    guard.on_trial_result(2, [running, other], other, {"time_total_s": 1800.0})
    assert search_alg.is_finished()
    assert "Budget reached (budget.hours: 1 of 1 trial-hours spent): no new trials; 2 " \
           "running trial(s) may finish" in capsys.readouterr().out


def test_after_resume_trials_finished_before_the_restart_count(workdir) -> None:
    """`--resume` unpickles the guard with the search algorithm (one pickle, so the link
    holds) in its start-of-sweep state; Tune hands it the restored trials with their results."""
    exp = load(write_experiment(workdir, "name: b\nsearch: {budget: {hours: 1.0}}\n"))
    search_alg, (guard,) = budget.guard(exp.search.budget, BasicVariantGenerator(), resolve(exp).pricing)
    search_alg, guard = pickle.loads(pickle.dumps((search_alg, guard)))
    assert guard.search_alg is search_alg
    before = SimpleNamespace(trial_id="old", status="TERMINATED",
                             last_result={"time_total_s": 3000.0})
    resumed = SimpleNamespace(trial_id="new", status="RUNNING", last_result={})
    guard.on_trial_result(1, [before, resumed], resumed, {"time_total_s": 500.0})
    assert not search_alg.is_finished()  # 3500 s of 3600
    resumed.last_result = {"time_total_s": 500.0}
    guard.on_trial_result(2, [before, resumed], resumed, {"time_total_s": 700.0})
    assert search_alg.is_finished()  # 3700 s
