"""HyperBand whose brackets survive a restart.

Ray's HyperBandScheduler keeps its brackets in memory only, and `Tuner.restore` hands every
restored trial, finished ones included, to a fresh scheduler: they fill new brackets, and a
finished trial there never reports again, so its bracket waits for it forever. This one can
`snapshot()` its brackets with trials named by id (the journal saves that with Tune's state)
and, after `load_snapshot()`, puts each restored trial back where it was: in its bracket, with
its last result, at its milestone, paused if it was waiting there for the others.
"""
from __future__ import annotations

import copy
from typing import Any

from ray.tune.experiment import Trial
from ray.tune.schedulers import HyperBandScheduler
from ray.tune.schedulers.hyperband import _Bracket


def _bracket_state(bracket: _Bracket, metric: str) -> dict[str, Any]:
    state = {k: v for k, v in vars(bracket).items()
             if k not in ("_live_trials", "_all_trials", "trials_to_unpause")}
    keep = (bracket._time_attr, metric)  # all a bracket reads of a result
    state["live"] = {t.trial_id: None if r is None else {k: r[k] for k in keep if k in r}
                     for t, r in bracket._live_trials.items()}
    state["all"] = [t.trial_id for t in bracket._all_trials]
    state["unpause"] = sorted(t.trial_id for t in bracket.trials_to_unpause)
    return state


def _bracket(state: dict[str, Any]) -> _Bracket:
    """A bracket whose trials are still ids; `_swap` puts in each restored Trial."""
    bracket = _Bracket.__new__(_Bracket)
    vars(bracket).update({k: v for k, v in state.items() if k not in ("live", "all", "unpause")})
    bracket._live_trials = dict(state["live"])
    bracket._all_trials = list(state["all"])
    bracket.trials_to_unpause = set(state["unpause"])
    return bracket


def _swap(bracket: _Bracket, trial: Trial) -> None:
    tid = trial.trial_id
    bracket._live_trials = {(trial if k == tid else k): v
                            for k, v in bracket._live_trials.items()}
    bracket._all_trials = [trial if t == tid else t for t in bracket._all_trials]
    if tid in bracket.trials_to_unpause:
        bracket.trials_to_unpause = (bracket.trials_to_unpause - {tid}) | {trial}


class ResumableHyperBand(HyperBandScheduler):
    """Ray's synchronous HyperBand, plus `snapshot` / `load_snapshot` of its brackets."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._restoring: dict[str, tuple[int, int, int]] = {}
        self._to_stop: list[Trial] = []

    def snapshot(self) -> dict[str, Any]:
        where = {id(b): (i, j) for i, band in enumerate(self._hyperbands)
                 for j, b in enumerate(band) if b is not None}
        current = self._state["bracket"]
        return {
            "bands": [[None if b is None else _bracket_state(b, self._metric) for b in band]
                      for band in self._hyperbands],
            "trials": {t.trial_id: (*where[id(b)], band_idx)
                       for t, (b, band_idx) in self._trial_info.items()},
            "current": None if current is None else where[id(current)],
            "band_idx": self._state["band_idx"],
            "num_stopped": self._num_stopped,
        }

    def load_snapshot(self, state: dict[str, Any]) -> None:
        """Take a snapshot's brackets; the trials come back one by one through on_trial_add."""
        state = copy.deepcopy(state)
        self._hyperbands = [[None if b is None else _bracket(b) for b in band]
                            for band in state["bands"]]
        current = state["current"]
        self._state = {"bracket": None if current is None
                       else self._hyperbands[current[0]][current[1]],
                       "band_idx": state["band_idx"]}
        self._num_stopped = state["num_stopped"]
        self._trial_info = {}
        self._restoring = dict(state["trials"])

    def on_trial_add(self, tune_controller: Any, trial: Trial) -> None:
        if trial.trial_id not in self._restoring:
            return super().on_trial_add(tune_controller, trial)
        band, position, band_idx = self._restoring.pop(trial.trial_id)
        bracket = self._hyperbands[band][position]
        _swap(bracket, trial)
        self._trial_info[trial] = bracket, band_idx
        if trial.status != Trial.PENDING:
            return
        # Tune requeues every unfinished trial as PENDING, and starts every PENDING trial.
        # One the brackets had dropped (halved away, its stop under way at the kill) is
        # stopped now; one that had reached its milestone waits there, paused, until its
        # bracket halves, as before the restart
        if trial not in bracket._live_trials:
            trial.set_status(Trial.PAUSED)
            self._to_stop.append(trial)
        elif not bracket.continue_trial(trial) and trial not in bracket.trials_to_unpause:
            trial.set_status(Trial.PAUSED)

    def choose_trial_to_run(self, tune_controller: Any) -> Trial | None:
        while self._to_stop:
            tune_controller.stop_trial(self._to_stop.pop())
        for band in self._hyperbands:
            for bracket in band:
                if bracket is not None and _stuck(bracket):
                    self._process_bracket(tune_controller, bracket)
        return super().choose_trial_to_run(tune_controller)


def _stuck(bracket: _Bracket) -> bool:
    """Every live trial of the bracket waits, paused, at the milestone, and none is to go on.

    Ray halves a bracket (or stops its trials at max_t) when the last of its live trials
    reports the milestone. A trial whose last report Tune receives as its end (`done`: Ray
    marks it so when the function has returned before Tune fetched it, which is common after
    a restore, with one step left) goes to `on_trial_complete` instead, which does not process
    a finished bracket, nor one halved before: the others waited for good (found by the
    soak: a resumed HyperBand sweep hung with one trial paused at max_t). Processing it then
    is what that last report would have done."""
    live = bracket.current_trials()
    return bool(live) and bracket.cur_iter_done() and all(
        t.status == Trial.PAUSED and t not in bracket.trials_to_unpause for t in live)
