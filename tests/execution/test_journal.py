"""The journal's snapshots on a real filesystem: complete or not current, and put back whole."""
from __future__ import annotations

import json
import pickle
import time
from pathlib import Path
from types import SimpleNamespace

import pyarrow.fs
import pytest
from ray.train._internal import checkpoint_manager
from ray.train._internal.storage import _FilesystemSyncer

from pipeline import study
from pipeline.config import load
from pipeline.execution import held_deletions, journal

from ..conftest import write_experiment

STATE = {"experiment_state-s1.json": "{trials: 1}", "searcher-state-s1.pkl": "searcher 1",
         "callback-states-s1.pkl": "queue 1"}


def storage(tmp_path: Path) -> SimpleNamespace:
    """The parts of Ray's StorageContext the journal reads."""
    (tmp_path / "staging").mkdir()
    (tmp_path / "sweep").mkdir()
    return SimpleNamespace(storage_filesystem=pyarrow.fs.LocalFileSystem(),
                           experiment_fs_path=str(tmp_path / "sweep"),
                           experiment_driver_staging_path=str(tmp_path / "staging"))


def stage(where: SimpleNamespace, files: dict[str, str]) -> None:
    for name, text in files.items():
        (Path(where.experiment_driver_staging_path) / name).write_text(text)


def test_each_save_is_a_complete_snapshot_made_current_last(tmp_path: Path) -> None:
    where, saver = storage(tmp_path), journal.Journal()
    stage(where, {**STATE, "tmp-callback-states-s1.pkl": "half", "trial_dir_file": "x"})
    saver.save(where)
    folder = Path(where.experiment_fs_path) / "journal"
    assert (folder / "CURRENT").read_text() == "00000001"
    assert sorted(p.name for p in (folder / "00000001").iterdir()) == sorted(STATE)
    for n in (2, 3, 4):
        stage(where, {"experiment_state-s1.json": f"{{trials: {n}}}"})
        saver.save(where)
    assert (folder / "CURRENT").read_text() == "00000004"
    assert sorted(p.name for p in folder.iterdir() if p.is_dir()) == ["00000003", "00000004"]
    assert saver.saves == 4


def test_after_a_save_the_next_waits_nineteen_times_as_long(tmp_path: Path) -> None:
    """Saving every changed step cost a 300-trial sweep 38 s of Tune's loop (900 saves of a
    growing snapshot); Tune's own rule for its state: at most 5% of the loop."""
    where, saver = storage(tmp_path), journal.Journal()

    def slow_stage() -> None:
        stage(where, STATE)
        time.sleep(0.1)

    saver.save(where, slow_stage)
    saver.on_trial_result(0, [], None, {})
    saver.on_step_end(1, ["a trial"])  # 1.9 s not passed: deferred (Tune's loop not needed)
    assert saver.unsaved and saver.saves == 1
    gap_s = saver._next_save_at - time.monotonic()
    assert 1.5 < gap_s <= journal.MAX_SAVE_GAP_S
    saver.save(where)  # the sweep's end saves whatever waits
    assert not saver.unsaved and saver.saves == 2


def test_a_save_that_waited_on_a_pending_decision_records_how_long(tmp_path: Path) -> None:
    """`make bench ARGS=journal` reports the longest wait (a PBT population on few slots has
    a PAUSE pending after nearly every report); a resumed sweep starts its own count."""
    where, saver = storage(tmp_path), journal.Journal()
    stage(where, STATE)
    saver._deferred_since = time.monotonic() - 0.5  # on_step_end: due, a decision pending
    saver.save(where)
    assert saver.deferred_max_s >= 0.5 and saver._deferred_since is None
    saver.save(where)  # not deferred: the longest stays
    assert 0.5 <= saver.deferred_max_s < 1.0
    assert pickle.loads(pickle.dumps(saver)).deferred_max_s == 0.0


def test_restore_puts_the_current_snapshot_in_place_of_tunes_files(tmp_path: Path) -> None:
    where = storage(tmp_path)
    stage(where, STATE)
    journal.Journal().save(where)
    sweep, fs = Path(where.experiment_fs_path), where.storage_filesystem
    # Tune's own copies: newer than MLflow knows, from a later session, or cut off mid-copy;
    # and a snapshot that was being written when the sweep died (never made current)
    (sweep / "experiment_state-s1.json").write_text("{tri")
    (sweep / "experiment_state-s2.json").write_text("{trials: 9}")
    (sweep / "tuner.pkl").write_text("tuner")
    (sweep / "journal" / "00000002").mkdir()
    (sweep / "journal" / "00000002" / "experiment_state-s0.json").write_text("{trials: 2}")
    assert journal.restore(fs, str(sweep))
    files = {p.name: p.read_text() for p in sweep.iterdir() if p.is_file()}
    assert files == {**STATE, "tuner.pkl": "tuner"}
    stage(where, {"experiment_state-s1.json": "{trials: 3}"})
    journal.Journal().save(where)  # the next save replaces the half-written folder whole
    assert sorted(p.name for p in (sweep / "journal" / "00000002").iterdir()) == sorted(STATE)


def test_without_a_journal_tunes_files_stay(tmp_path: Path) -> None:
    where = storage(tmp_path)
    sweep = Path(where.experiment_fs_path)
    (sweep / "experiment_state-s1.json").write_text("{trials: 1}")
    assert not journal.restore(where.storage_filesystem, str(sweep))
    assert (sweep / "experiment_state-s1.json").read_text() == "{trials: 1}"


class SlowCopySyncer(_FilesystemSyncer):
    """Tune's own syncer, its background copy made to take half a second (as on S3)."""

    def _sync_up_command(self, local_path, uri, exclude=None):
        upload, kwargs = super()._sync_up_command(local_path, uri, exclude)

        def slow_upload(**args):
            time.sleep(0.5)
            upload(**args)
        return slow_upload, kwargs


def test_tune_stages_again_only_once_its_background_copy_is_done(tmp_path: Path) -> None:
    """Tune stages files as temporary ones renamed into place; a copy still listing the folder
    meanwhile fails on the vanished temporary file (seen as a FileNotFoundError traceback)."""
    where = storage(tmp_path)
    where.syncer = SlowCopySyncer(storage_filesystem=pyarrow.fs.LocalFileSystem(), sync_period=0)
    stage(where, STATE)
    copy = tmp_path / "copy"
    assert where.syncer.sync_up(where.experiment_driver_staging_path, str(copy))
    copying_while_staged = []

    def write_staged() -> None:
        process = where.syncer._sync_process
        copying_while_staged.append(bool(process and process.is_running))
        stage(where, {"experiment_state-s1.json": "{trials: 2}"})

    journal.Journal().save(where, write_staged)
    assert copying_while_staged == [False]
    assert sorted(p.name for p in copy.iterdir()) == sorted(STATE)  # that copy completed


def test_a_dropped_checkpoint_is_deleted_only_once_a_snapshot_no_longer_names_it(
        tmp_path: Path) -> None:
    """Tune's manager deletes a surplus checkpoint mid-step; the journal saves at the step's end.
    Deleted at once, a kill in between left the journal naming a missing checkpoint."""
    where, fs = storage(tmp_path), pyarrow.fs.LocalFileSystem()
    old, newer = tmp_path / "checkpoint_000000", tmp_path / "checkpoint_000001"
    old.mkdir(), newer.mkdir()
    stage(where, STATE)
    saver = journal.Journal()
    with held_deletions.held():
        checkpoint_manager._delete_fs_path(fs=fs, fs_path=str(old))  # as the manager calls it
        assert old.is_dir()  # the current snapshot may still name it

        def write_staged() -> None:  # a drop while staging: not covered by this snapshot
            checkpoint_manager._delete_fs_path(fs=fs, fs_path=str(newer))

        saver.save(where, write_staged)
        assert not old.exists() and newer.is_dir()
        saver.save(where)
        assert not newer.exists()
    assert checkpoint_manager._delete_fs_path is held_deletions._ray_delete


def test_drops_still_held_when_the_sweep_stops_stay_on_storage(tmp_path: Path) -> None:
    fs, old = pyarrow.fs.LocalFileSystem(), tmp_path / "checkpoint_000000"
    old.mkdir()
    try:
        with held_deletions.held():
            checkpoint_manager._delete_fs_path(fs=fs, fs_path=str(old))
            raise KeyboardInterrupt  # stopped before the journal saved
    except KeyboardInterrupt:
        pass
    assert old.is_dir() and held_deletions.queued() == 0
    assert checkpoint_manager._delete_fs_path is held_deletions._ray_delete


@pytest.mark.slow
def test_tune_saves_its_state_on_its_own_period_not_after_every_checkpoint(
        workdir: Path, ray_local, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every step checkpoints, and the sweep keeps one checkpoint per trial: Tune then saved
    its whole state after every checkpoint (12 here), on top of the journal's saves."""
    from ray.tune.execution.tune_controller import TuneController

    tune_saves = []
    save_to_dir = TuneController.save_to_dir
    monkeypatch.setattr(TuneController, "save_to_dir",
                        lambda self: (tune_saves.append(1), save_to_dir(self))[1])
    exp_file = write_experiment(workdir, """
name: tune-saves
trainable: tests.trainables:slow_steps
params: {steps: 4, step_s: 0.05}
search:
  searcher: random
  metric: score
  num_samples: 3
  space:
    params.x: {uniform: [0.0, 1.0]}
""")
    study.run(load(exp_file), exp_file, register=False)
    [stats] = workdir.glob(f"**/{journal.JOURNAL_DIR}/{journal.STATS}")
    journal_saves = json.loads(stats.read_text())["saves"]
    # Tune's own: its first save, its last, and its periodic one (every 10 s or more)
    assert len(tune_saves) - journal_saves <= 4, (len(tune_saves), journal_saves)
