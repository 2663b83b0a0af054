"""Which sweep a `tune` command means: a new one, or with `--resume` the experiment's latest,
where it is kept and whether Tune can restore it; and what to say about the last one when a
new one starts."""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, replace
from typing import Any

from ray import tune

from pipeline.config import ConfigError, Experiment
from pipeline.context import SweepContext
from pipeline.execution import journal, storage, sweep_lock
from pipeline.results import tracking

SWEEP_TAG = "pipeline.sweep"
ARM_TAG = "pipeline.compare_arm"
"""On a sweep `pipeline compare` ran (the comparison's run id): never the sweep a `tune --resume`
of its experiment means."""


class NothingToResume(ConfigError):
    """--resume found no earlier sweep of this experiment."""


class AlreadyFinished(Exception):
    """--resume of a sweep that finished, summary and all: nothing is left to run or log."""


@dataclass(frozen=True)
class Sweep:
    """Names one sweep: its Ray Tune folder and its parent MLflow run."""

    name: str
    storage_path: str
    parent_run_id: str | None = None
    restorable: bool = False
    """Tune saved state for it (a sweep stopped before that starts again in the same run)."""

    @property
    def path(self) -> str:
        return f"{self.storage_path.rstrip('/')}/{self.name}"


def _latest_sweep(name: str, store: tracking.Store) -> Any:
    """The parent run of the latest sweep of experiment `name` itself: `LIKE 'name-%'` alone
    also matched the sweeps of an experiment `name-bar` sharing the MLflow experiment, and the
    sweeps `pipeline compare` ran, so a resume was refused for settings it never had and the
    stopped sweep could not be resumed at all."""
    own = re.compile(rf"{re.escape(name)}-\d{{8}}-\d{{6}}(-[0-9a-f]+)?")  # storage.claim's names
    for run in store.client.search_runs(
            [store.experiment_id], f"tags.`{SWEEP_TAG}` LIKE '{name}-%'",
            order_by=["attributes.start_time DESC"], max_results=200):
        if own.fullmatch(run.data.tags[SWEEP_TAG]) and ARM_TAG not in run.data.tags:
            return run
    return None


def _moved(sweep: Sweep, storage_path: str, store: tracking.Store) -> Sweep:
    """The sweep under this run's storage.path when it was moved there; else where it started
    (a resume from another folder, where a relative storage.path means another place), said,
    as a changed storage.path was ignored without a word."""
    if storage_path.rstrip("/") == sweep.storage_path.rstrip("/"):
        return sweep
    moved = replace(sweep, storage_path=storage_path)
    if tune.Tuner.can_restore(*storage.tune_location(moved.path)):
        store.client.set_tag(sweep.parent_run_id, "storage_path", storage_path)
        print(f"Sweep {sweep.name}: found under storage.path {storage_path} (it started under "
              f"{sweep.storage_path})")
        return moved
    print(f"Sweep {sweep.name}: not under storage.path {storage_path}; resuming it where it "
          f"started, under {sweep.storage_path}")
    return sweep


def _note_unfinished(name: str, store: tracking.Store) -> None:
    """A new sweep while the last one of the experiment never finished: said, since
    `--resume` would continue it. One left RUNNING by a SIGKILLed driver (no process holds its
    lock) is marked KILLED: it stayed RUNNING for good, the UI showing it as live."""
    run = _latest_sweep(name, store)
    if run is None or run.info.status not in ("RUNNING", "KILLED"):
        return
    tags = run.data.tags
    path = f"{tags['storage_path'].rstrip('/')}/{tags[SWEEP_TAG]}"
    if run.info.status == "RUNNING":
        try:
            with sweep_lock.held(tags[SWEEP_TAG], path):
                store.client.set_terminated(run.info.run_id, "KILLED")
        except ConfigError:  # its driver runs now
            print(f"Note: sweep {tags[SWEEP_TAG]} of {name!r} is running now; this starts "
                  "another beside it")
            return
    print(f"Note: sweep {tags[SWEEP_TAG]} (MLflow run {run.info.run_id}) stopped before it "
          "finished; this starts a new sweep (--resume would continue that one)")


def locate(exp: Experiment, ctx: SweepContext, store: tracking.Store, resume: bool) -> Sweep:
    """A new sweep, or (with resume) the latest one of this experiment with its parent run."""
    if not resume:
        _note_unfinished(exp.name, store)
        name = storage.claim(ctx.storage_path, f"{exp.name}-{time.strftime('%Y%m%d-%H%M%S')}")
        return Sweep(name, ctx.storage_path)
    run = _latest_sweep(exp.name, store)
    if run is None:
        raise NothingToResume(f"--resume: no earlier sweep of {exp.name!r} in {store.uri}")
    tags = run.data.tags
    if run.info.status == "FINISHED":  # closed after its summary: resumed, it logged it twice
        best = {k: v for k, v in run.data.metrics.items() if k == f"best_{exp.search.metric}"}
        raise AlreadyFinished(
            f"sweep {tags[SWEEP_TAG]} already finished (MLflow run {run.info.run_id}"
            + "".join(f", {k} {v:.4g}" for k, v in best.items())
            + "): nothing to resume; start a new sweep without --resume")
    sweep = _moved(Sweep(tags[SWEEP_TAG], tags["storage_path"], run.info.run_id),
                   ctx.storage_path, store)
    restorable = (tune.Tuner.can_restore(*storage.tune_location(sweep.path))
                  and journal.has_trials(*storage.filesystem(sweep.path)))
    return replace(sweep, restorable=restorable)
