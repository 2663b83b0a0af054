"""What a trial scheduler has decided from, carried across a restart.

Ray Tune saves its trials and its searcher but not its scheduler (`TuneController.__getstate__`
leaves `_scheduler_alg` out), and `Tuner.restore` hands the restored trials to a fresh one. A
resumed sweep then is not the sweep that was stopped: ASHA's rungs forget every report recorded
before the stop, so trials it would have stopped at a rung run to the end; the median rule
forgets the trials it compares against and stops nothing until new ones finish; PBT forgets
each trial's last score and perturbation, so every trial is due to perturb at once.

`save` pickles the attributes those decisions come from, each Trial in them replaced by its
id; `load` unpickles them with each id replaced by the restored Trial of that id. The journal
saves this with Tune's state and loads it at the first step of Tune's loop after a restore,
once the trials are back and before any decision (`pipeline.execution.journal`). HyperBand's
brackets also pause restored trials as they come back, so it restores itself
(`pipeline.search.hyperband`).
"""
from __future__ import annotations

import collections
import copy
import io
import pickle
from typing import Any

import cloudpickle
from ray.train._internal.session import _FutureTrainingResult
from ray.tune.experiment import Trial
from ray.tune.schedulers import ASHAScheduler, MedianStoppingRule, PopulationBasedTraining


def _decisions(scheduler: Any) -> dict[str, Any] | None:
    """The attributes of `scheduler` its decisions come from; None for one without any
    (FIFO) or one that restores itself."""
    if isinstance(scheduler, ASHAScheduler):
        # rungs keyed by trial id: the reports recorded at each milestone
        return {name: getattr(scheduler, name)
                for name in ("_trial_info", "_brackets", "_counter", "_num_stopped")}
    if isinstance(scheduler, MedianStoppingRule):
        keep = (scheduler._time_attr, scheduler._metric)  # all the rule reads of a result
        return {
            "_results": {trial: [{k: r[k] for k in keep if k in r} for r in results]
                         for trial, results in scheduler._results.items()},
            "_stopped_trials": scheduler._stopped_trials,
            "_last_pause": dict(scheduler._last_pause),
        }
    if isinstance(scheduler, PopulationBasedTraining):
        return {"_trial_state": {trial: _settled(trial, state)
                                 for trial, state in scheduler._trial_state.items()},
                **{name: getattr(scheduler, name) for name in (
                    "_next_perturbation_sync", "_num_checkpoints", "_num_perturbations")}}
    return None


def _settled(trial: Trial, state: Any) -> Any:
    """A PBT trial state whose checkpoint is one that exists: a save PBT asked for and Tune
    has not finished is a future, which cannot outlive the process; the trial's latest
    registered checkpoint stands in for it (PBT itself uses that for a paused trial)."""
    if not isinstance(state.last_checkpoint, _FutureTrainingResult):
        return state
    state = copy.copy(state)
    state.last_checkpoint = trial.checkpoint
    return state


class _TrialsAsIds(cloudpickle.Pickler):
    def persistent_id(self, obj: Any) -> str | None:
        return obj.trial_id if isinstance(obj, Trial) else None


class _IdsAsTrials(pickle.Unpickler):
    def __init__(self, data: bytes, trials: dict[str, Trial]) -> None:
        super().__init__(io.BytesIO(data))
        self._trials = trials

    def persistent_load(self, trial_id: str) -> Trial:
        if trial_id not in self._trials:
            raise RuntimeError(f"the scheduler's saved state names trial {trial_id}, "
                               "which the restored sweep does not have")
        return self._trials[trial_id]


def save(scheduler: Any) -> bytes | None:
    decisions = _decisions(scheduler)
    if decisions is None:
        return None
    buffer = io.BytesIO()
    _TrialsAsIds(buffer).dump(decisions)
    return buffer.getvalue()


def load(scheduler: Any, saved: bytes, trials: list[Trial]) -> None:
    """Put what `save` took back into a fresh scheduler of the same kind, with `trials` (the
    restored ones) where it had trials."""
    decisions = _IdsAsTrials(saved, {t.trial_id: t for t in trials}).load()
    for name, value in decisions.items():
        current = getattr(scheduler, name)
        if isinstance(current, collections.defaultdict):  # saved as a dict: see _decisions
            value = collections.defaultdict(current.default_factory, value)
        setattr(scheduler, name, value)
