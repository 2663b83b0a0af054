"""A scheduler's decision state survives save / load into a fresh scheduler with the restored
Trial objects (new objects, same ids), as after `Tuner.restore`. End to end, killed and resumed
through real Ray and MLflow: `tests/test_schedulers.py`."""
from __future__ import annotations

import math

from ray.train._internal.session import _FutureTrainingResult, _TrainingResult
from ray.tune import Checkpoint
from ray.tune.experiment import Trial
from ray.tune.schedulers import (
    ASHAScheduler,
    FIFOScheduler,
    MedianStoppingRule,
    PopulationBasedTraining,
    TrialScheduler,
)
from ray.tune.schedulers.pbt import _PBTTrialState

from pipeline.search import scheduler_state


def trials(*ids: str) -> list[Trial]:
    return [Trial("__fake", config={}, stub=True, trial_id=i) for i in ids]


def asha() -> ASHAScheduler:
    return ASHAScheduler(time_attr="it", metric="score", mode="max", max_t=4, grace_period=1,
                         reduction_factor=2)


def report(scheduler, trial: Trial, it: int, score: float) -> str:
    return scheduler.on_trial_result(None, trial, {"it": it, "score": score})


def test_asha_restored_stops_what_the_first_one_would() -> None:
    before = asha()
    for trial, score in zip(trials("a", "b", "c"), [0.5, 0.9, 0.8]):
        before.on_trial_add(None, trial)
        report(before, trial, 1, score)
    saved = scheduler_state.save(before)

    restored, forgetful = asha(), asha()
    back = trials("a", "b", "c", "d")
    for trial in back[:-1]:  # Tune adds the restored trials, then the state is loaded
        restored.on_trial_add(None, trial)
        forgetful.on_trial_add(None, trial)
    scheduler_state.load(restored, saved, back[:-1])
    for scheduler in (restored, forgetful, before):  # a trial the searcher adds after
        scheduler.on_trial_add(None, back[-1])

    # d's first report, 0.6, is below the median of a, b and c's (0.8)
    assert report(before, back[-1], 1, 0.6) == TrialScheduler.STOP
    assert report(restored, back[-1], 1, 0.6) == TrialScheduler.STOP
    assert report(forgetful, back[-1], 1, 0.6) == TrialScheduler.CONTINUE  # what was wrong
    assert restored._brackets[0]._rungs == before._brackets[0]._rungs


def test_the_median_rule_gets_its_results_back_keyed_by_the_restored_trials() -> None:
    rule = MedianStoppingRule(time_attr="it", metric="score", mode="max", grace_period=1)
    first = trials("a", "b")
    for trial, score in zip(first, [0.5, 0.9]):
        for it in (1, 2):
            rule._results[trial].append({"it": it, "score": score + it, "config": {"big": 1}})
    rule._stopped_trials.add(first[0])
    rule._last_pause[first[1]] = 2

    fresh = MedianStoppingRule(time_attr="it", metric="score", mode="max", grace_period=1)
    back = trials("a", "b")
    scheduler_state.load(fresh, scheduler_state.save(rule), back)

    assert fresh._results == {back[0]: [{"it": 1, "score": 1.5}, {"it": 2, "score": 2.5}],
                              back[1]: [{"it": 1, "score": 1.9}, {"it": 2, "score": 2.9}]}
    assert fresh._stopped_trials == {back[0]}
    assert fresh._last_pause[back[1]] == 2
    assert fresh._last_pause[Trial("__fake", stub=True)] == -math.inf  # still a defaultdict
    assert fresh._running_mean(back[1], 2) == 2.4


def test_pbt_keeps_scores_and_perturbation_times_and_a_pending_save_becomes_the_latest(
        tmp_path) -> None:
    pbt = PopulationBasedTraining(time_attr="it", metric="score", mode="max",
                                  perturbation_interval=2, hyperparam_mutations={"x": [1, 2]})
    done, saving = trials("a", "b")
    checkpoint = Checkpoint.from_directory(tmp_path)
    saving.run_metadata.checkpoint_manager.register_checkpoint(
        _TrainingResult(checkpoint=checkpoint, metrics={"it": 4}))
    for trial, score, checkpoint_now in [(done, 0.7, checkpoint),
                                         (saving, 0.9, _FutureTrainingResult(None))]:
        state = pbt._trial_state[trial] = _PBTTrialState(trial)
        state.last_score, state.last_perturbation_time = score, 4
        state.last_checkpoint = checkpoint_now
    pbt._num_perturbations = 3

    fresh = PopulationBasedTraining(time_attr="it", metric="score", mode="max",
                                    perturbation_interval=2, hyperparam_mutations={"x": [1, 2]})
    back = trials("a", "b")
    scheduler_state.load(fresh, scheduler_state.save(pbt), back)

    assert [fresh._trial_state[t].last_score for t in back] == [0.7, 0.9]
    assert [fresh._trial_state[t].last_perturbation_time for t in back] == [4, 4]
    assert fresh._trial_state[back[0]].last_checkpoint.path == checkpoint.path
    assert fresh._trial_state[back[1]].last_checkpoint.path == checkpoint.path
    assert fresh._num_perturbations == 3
    # the live scheduler still waits for its own save
    assert isinstance(pbt._trial_state[saving].last_checkpoint, _FutureTrainingResult)


def test_a_scheduler_without_decisions_saves_nothing() -> None:
    assert scheduler_state.save(FIFOScheduler()) is None
