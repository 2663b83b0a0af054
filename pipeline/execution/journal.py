"""The sweep's journal: Tune's state, saved whole and atomically at every trial event, before
MLflow hears of it.

Ray Tune writes its experiment state (trials, searcher, callbacks) to a local staging folder
every ten seconds or more and copies it to the sweep's storage in the background, file by file
and in place. A kill at an unlucky moment leaves storage behind what MLflow already shows (a
finished trial that Tune then runs again, a running one it forgot) or with a half-copied file.
So, at the end of a step of Tune's loop after a trial started, reported, checkpointed or
ended (the snapshot grows with the sweep, ~15 KB a trial: 40 ms at 300 trials here, so after
a save of d seconds the next waits 19 d, at most 2 s: saving takes at most 5% of the loop,
Tune's own rule for its state, and no record waits on it long; not while a scheduler's STOP
or PAUSE waits for a trial's save to land, when the two disagree):
- `Journal` has Tune write its state to the staging folder (`TuneController.save_to_dir`: Ray
  hands callbacks no controller, so it is found as the caller of the callback), copies those
  files into `journal/<n>/` beside Tune's own and only then points `journal/CURRENT` at them,
  so the journal always holds one complete snapshot, and only then deletes the checkpoints
  Tune's manager let go of (`held_deletions`: the snapshot before named them);
- callbacks after it in the list (the MLflow logger) send what they queued only then, so
  everything MLflow shows is in the journal, and what MLflow may lack (the logger's queue is
  part of the snapshot) is replayed on resume;
- `restore` puts the journal's snapshot back in place before `Tuner.restore` reads it, so
  Tune's own saves are not what a resume reads: the one it adds after every trial checkpoint
  (with `num_to_keep`) is turned off, and its periodic one is left;
- the scheduler's state, which Tune does not save, is saved with the callbacks' state
  (`get_state`) and given back on restore: HyperBand's brackets before the restored trials
  reach it (`set_state`, `search.hyperband`), the other schedulers' decisions once they are
  back, at the first step (`on_step_begin`, `search.scheduler_state`).
"""
from __future__ import annotations

import fnmatch
import json
import logging
import sys
import time
from collections.abc import Callable
from pathlib import PurePosixPath
from typing import Any

import pyarrow.fs
from ray import tune
from ray.tune.schedulers import TrialScheduler

from pipeline.execution import held_deletions
from pipeline.search import scheduler_state

JOURNAL_DIR = "journal"
POINTER = "CURRENT"
STATS = "stats.json"
# The files Tune keeps per session at the top of a sweep folder (Ray 2.60 names).
EXPERIMENT_STATE = "experiment_state-*.json"  # the trials
STATE_FILES = (EXPERIMENT_STATE, "searcher-state-*.pkl", "search_gen_state-*.json",
               "basic-variant-state-*.json", "callback-states-*.pkl")
KEEP_SNAPSHOTS = 2
SAVE_SHARE = 0.05  # of Tune's loop, at most: the gap after a save is 19x its duration
MAX_SAVE_GAP_S = 2.0  # slow storage (S3) saves less often, but no change waits longer
log = logging.getLogger(__name__)


def _is_state_file(name: str) -> bool:
    return any(fnmatch.fnmatch(name, pattern) for pattern in STATE_FILES)


def _files(fs: pyarrow.fs.FileSystem, folder: str) -> list[pyarrow.fs.FileInfo]:
    selector = pyarrow.fs.FileSelector(folder, allow_not_found=True)
    return [info for info in fs.get_file_info(selector) if info.type == pyarrow.fs.FileType.File]


def _write(fs: pyarrow.fs.FileSystem, path: str, data: bytes) -> None:
    with fs.open_output_stream(path) as stream:
        stream.write(data)


def _read(fs: pyarrow.fs.FileSystem, path: str) -> bytes:
    with fs.open_input_stream(path) as stream:
        return stream.read()


def current_snapshot(fs: pyarrow.fs.FileSystem, experiment_path: str) -> str | None:
    """The folder of the journal's latest complete snapshot, or None before the first one."""
    pointer = f"{experiment_path}/{JOURNAL_DIR}/{POINTER}"
    if fs.get_file_info(pointer).type != pyarrow.fs.FileType.File:
        return None
    return f"{experiment_path}/{JOURNAL_DIR}/{_read(fs, pointer).decode().strip()}"


def _settle(storage: Any) -> None:
    """Wait for Tune's background copy of the staging folder to finish before Tune writes
    it again: Tune stages each file as a temporary one renamed into place, and a copy that
    listed the temporary file fails when it is gone (a FileNotFoundError traceback in the
    terminal). Tune itself stages every ten seconds or more; the journal stages at every
    step, well inside one copy."""
    syncer = getattr(storage, "syncer", None)
    if syncer is None:
        return
    try:
        syncer.wait()
    except Exception as error:  # that copy is lost; the journal's own copy follows now
        log.warning("Tune's copy of the sweep state to storage failed (%s: %s); "
                    "the journal keeps its own copy", type(error).__name__, error)


def _controller() -> Any:
    """The Ray Tune controller whose loop called this callback."""
    from ray.tune.execution.tune_controller import TuneController

    frame = sys._getframe(1)
    while frame is not None:
        if isinstance(frame.f_locals.get("self"), TuneController):
            return frame.f_locals["self"]
        frame = frame.f_back
    raise RuntimeError("Journal: called from outside Ray Tune's controller")


def _decision_pending(controller: Any) -> bool:
    """A scheduler's STOP or PAUSE that Tune carries out only once the trial's save in flight
    lands: the scheduler's state has it, the trial's state not yet. Saved then, a resume ran
    the stopped trial again (the median rule fails on that: `assert not self._hard_stop`)."""
    return any(decision in (TrialScheduler.STOP, TrialScheduler.PAUSE)
               for decision in controller._cached_trial_decisions.values())


class Journal(tune.Callback):
    """Saves Tune's staged state to the sweep's journal at the end of a step after one that
    changed a trial (see the module doc for how often); `saves` and `save_s` say what that
    cost. `unsaved`: a change is not in the journal yet (the MLflow logger holds its records)."""

    def __init__(self) -> None:
        self._dirty = False
        self._next_save_at = 0.0  # time.monotonic()
        self._scheduler_to_load: bytes | None = None
        self._sequence = 0
        self._deferred_since: float | None = None  # time.monotonic(): a due save waits
        self.saves = 0
        self.save_s = 0.0
        self.deferred_max_s = 0.0  # the longest a due save waited on a pending decision

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_dirty": False, "saves": 0, "save_s": 0.0,
                "deferred_max_s": 0.0, "_deferred_since": None,
                "_scheduler_to_load": None, "_next_save_at": 0.0}

    @property
    def unsaved(self) -> bool:
        return self._dirty

    def get_state(self) -> dict[str, Any] | None:
        """The scheduler's state, which Tune does not save, staged with the rest of Tune's."""
        scheduler = _controller()._scheduler_alg
        snapshot = getattr(scheduler, "snapshot", None)  # restores itself: ResumableHyperBand
        saved = snapshot() if snapshot else scheduler_state.save(scheduler)
        return None if saved is None else {"scheduler": saved}

    def set_state(self, state: dict[str, Any]) -> None:
        """On restore, before Tune hands the restored trials to the scheduler."""
        saved = state.get("scheduler")
        if saved is None:
            return
        scheduler = _controller()._scheduler_alg
        if hasattr(scheduler, "load_snapshot"):
            scheduler.load_snapshot(saved)
        else:  # needs the restored trials: at the first step
            self._scheduler_to_load = saved

    def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
        controller = _controller()
        # Tune saves its whole state again after every trial checkpoint when num_to_keep is
        # set (its guard against naming a checkpoint it has deleted; held_deletions is ours).
        # Resume reads the journal, so that save only cost: a re-encoding of every trial at
        # every epoch of every trial, and its copy to storage on a driver thread, ~15% of a
        # 10 ms epoch's speed in the trial. Tune's periodic save (5% of its loop) stays.
        controller._checkpoint_manager._sync_every_n_trial_checkpoints = None
        if self._scheduler_to_load is not None:
            scheduler_state.load(controller._scheduler_alg, self._scheduler_to_load, trials)
            self._scheduler_to_load = None

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._dirty = True

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict,
                        **info: Any) -> None:
        self._dirty = True

    def on_trial_save(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._dirty = True  # a checkpoint registered

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._dirty = True

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._dirty = True

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        if self._dirty and trials and time.monotonic() >= self._next_save_at:
            controller = _controller()  # its storage: the one whose syncer copies the staging
            if not _decision_pending(controller):
                self.save(controller._storage, controller.save_to_dir)
            elif self._deferred_since is None:
                self._deferred_since = time.monotonic()

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        """A last save, and what saving cost this session (`stats.json`, read by `make bench`).
        Tune staged its final state itself, before it stopped the trials still running: staged
        again now, those would look finished and a resume would not continue them."""
        if not trials:
            return
        self.save(trials[0].storage)
        stats = {"saves": self.saves, "save_s": self.save_s, "trials": len(trials),
                 "deferred_max_s": self.deferred_max_s}
        storage = trials[0].storage
        _write(storage.storage_filesystem,
               f"{storage.experiment_fs_path}/{JOURNAL_DIR}/{STATS}",
               json.dumps(stats).encode())

    def save(self, storage: Any, write_staged: Callable[[], None] = lambda: None) -> None:
        """Have Tune stage its state (`write_staged`), copy the staged files into a new
        snapshot folder, then point at it."""
        started = time.perf_counter()
        _settle(storage)
        covered = held_deletions.queued()  # Tune's deletions this snapshot no longer needs
        write_staged()
        fs, root = storage.storage_filesystem, storage.experiment_fs_path
        staged = [info for info in _files(pyarrow.fs.LocalFileSystem(),
                                          storage.experiment_driver_staging_path)
                  if _is_state_file(info.base_name)]
        if not staged:
            return
        self._sequence = max(self._sequence, self._last_sequence(fs, root)) + 1
        folder = f"{root}/{JOURNAL_DIR}/{self._sequence:08d}"
        if fs.get_file_info(folder).type == pyarrow.fs.FileType.Directory:
            fs.delete_dir(folder)  # left half-written by a stopped sweep, never made current
        fs.create_dir(folder)
        local = pyarrow.fs.LocalFileSystem()
        for info in staged:
            _write(fs, f"{folder}/{info.base_name}", _read(local, info.path))
        pointer = f"{root}/{JOURNAL_DIR}/{POINTER}"
        # Local: write aside, then rename over the pointer (atomic). S3: one PUT is atomic.
        _write(fs, f"{pointer}.tmp", f"{self._sequence:08d}".encode())
        fs.move(f"{pointer}.tmp", pointer)
        held_deletions.release(covered)
        for old in range(self._sequence - KEEP_SNAPSHOTS, 0, -1):
            old_folder = f"{root}/{JOURNAL_DIR}/{old:08d}"
            if fs.get_file_info(old_folder).type != pyarrow.fs.FileType.Directory:
                break
            fs.delete_dir(old_folder)
        self._dirty = False
        if self._deferred_since is not None:
            self.deferred_max_s = max(self.deferred_max_s,
                                      time.monotonic() - self._deferred_since)
            self._deferred_since = None
        self.saves += 1
        took_s = time.perf_counter() - started
        self.save_s += took_s
        self._next_save_at = time.monotonic() + min(took_s * (1 / SAVE_SHARE - 1),
                                                    MAX_SAVE_GAP_S)

    @staticmethod
    def _last_sequence(fs: pyarrow.fs.FileSystem, root: str) -> int:
        current = current_snapshot(fs, root)
        return int(PurePosixPath(current).name) if current else 0


def has_trials(fs: pyarrow.fs.FileSystem, experiment_path: str) -> bool:
    """Whether Tune can restore the sweep's trials: the journal has a snapshot, or Tune wrote
    its experiment state itself. A stop after Tune wrote the Tuner (`tuner.pkl`, which is all
    `Tuner.can_restore` looks for) and before either leaves nothing to restore: Tune would
    start again from the pickled Tuner, which lacks the param_space, and every trial fail."""
    if current_snapshot(fs, experiment_path) is not None:
        return True
    return any(fnmatch.fnmatch(info.base_name, EXPERIMENT_STATE)
               for info in _files(fs, experiment_path))


def restore(fs: pyarrow.fs.FileSystem, experiment_path: str) -> bool:
    """Put the journal's latest snapshot in place of Tune's own state files (which may be
    older, newer than what MLflow saw, or half-copied); False when there is no journal yet,
    and Tune's own files, then consistent with an MLflow that saw nothing, stay."""
    snapshot = current_snapshot(fs, experiment_path)
    if snapshot is None:
        return False
    for info in _files(fs, experiment_path):
        if _is_state_file(info.base_name):
            fs.delete_file(info.path)
    for info in _files(fs, snapshot):
        _write(fs, f"{experiment_path}/{info.base_name}", _read(fs, info.path))
    return True
