"""`python -m tests.kill_at tune ...`: the CLI SIGKILLed (or sent SIGTERM) the first time the
program reaches the moment named by $KILL_AT, every time (a timed kill finds these rarely, or on
a loaded machine never):

- `checkpoint-drop`: Ray Tune's checkpoint manager has just let go of a surplus checkpoint
  (`num_to_keep`), inside the step that registered a newer one, before the journal's save at
  that step's end.
- `scheduler-stop-pending`: at the end of a step of Ray Tune's loop (the journal's save
  included, made at every changed step here) in which a scheduler's STOP or PAUSE waits for
  the trial's save to land: the scheduler has decided, the trial still runs.
- `model-upload-cut`: the summary has uploaded the best model's files, not yet marked it READY.
- `model-version-made`: the summary has registered the model's version, not yet moved the alias.
- `sigterm-as-fit-starts`: SIGTERM as `Tuner.fit` starts Tune's run: Tune has written the
  Tuner (`tuner.pkl`), not yet its own SIGINT handler nor any experiment state.
- `sigterm-loading-data`: SIGTERM while the sweep's data loads, before Ray starts.
- `sigterm-in-ray-init`: SIGTERM inside `ray.init`, once it has started the raylet (and put in
  its own SIGTERM handler).
- `sigterm-as-ray-connects`: SIGTERM inside `ray.init`, once the driver has connected (and Ray's
  C++ core put in its handler).

test_kill_matrix.py runs it in a process of its own.
"""
from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable

import ray._private.services
import ray._private.worker
from mlflow.tracking import MlflowClient
from ray.train._internal.checkpoint_manager import _CheckpointManager
from ray.tune.execution.tune_controller import TuneController
from ray.tune.impl import tuner_internal

from pipeline.cli import main
from pipeline.execution import journal
from pipeline.results import registry
from pipeline.training import data as datasets


def die() -> None:
    os.killpg(os.getpgrp(), signal.SIGKILL)


def die_on_a_drop(register: Callable) -> Callable:
    def register_then_die(self: _CheckpointManager, result) -> None:
        kept = len(self._checkpoint_results)
        register(self, result)
        if len(self._checkpoint_results) <= kept:  # one or more left the manager's list
            die()
    return register_then_die


def die_before_ready(finalize: Callable) -> Callable:
    def finalize_or_die(self: MlflowClient, model_id: str, status, *args, **kwargs):
        if str(status) == "READY":
            die()
        return finalize(self, model_id, status, *args, **kwargs)
    return finalize_or_die


def die_after_a_step_with_a_stop_pending(step: Callable) -> Callable:
    def step_then_die(self: TuneController) -> None:
        step(self)
        if journal._decision_pending(self):
            die()
    return step_then_die


def die_instead(*_, **__) -> None:
    die()


def sigterm_before(step: Callable) -> Callable:
    def sigterm_then_step(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        return step(*args, **kwargs)
    return sigterm_then_step


def sigterm_after(step: Callable) -> Callable:
    def step_then_sigterm(*args, **kwargs):
        done = step(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGTERM)
        return done
    return step_then_sigterm


if __name__ == "__main__":
    moment = os.environ["KILL_AT"]
    if moment == "checkpoint-drop":
        _CheckpointManager.register_checkpoint = die_on_a_drop(
            _CheckpointManager.register_checkpoint)
    elif moment == "scheduler-stop-pending":
        journal.MAX_SAVE_GAP_S = 0.0  # the worst case: a save at every step that changed
        TuneController.step = die_after_a_step_with_a_stop_pending(TuneController.step)
    elif moment == "model-upload-cut":
        MlflowClient.finalize_logged_model = die_before_ready(MlflowClient.finalize_logged_model)
    elif moment == "model-version-made":
        registry.promote = die_instead
    elif moment == "sigterm-as-fit-starts":
        tuner_internal.run = sigterm_before(tuner_internal.run)
    elif moment == "sigterm-loading-data":
        datasets.load = sigterm_after(datasets.load)
    elif moment == "sigterm-in-ray-init":
        ray._private.services.start_raylet = sigterm_after(ray._private.services.start_raylet)
    elif moment == "sigterm-as-ray-connects":
        ray._private.worker.connect = sigterm_after(ray._private.worker.connect)
    else:
        raise SystemExit(f"KILL_AT: unknown moment {moment!r}")
    sys.exit(main(sys.argv[1:]))
