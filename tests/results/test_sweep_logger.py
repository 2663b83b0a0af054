"""The MLflow callback against a real SQLite store: updates wait for the end of Tune's step, and
records replayed after a resume (the journal keeps the unsent ones) change nothing."""
from __future__ import annotations

import pickle
import threading
from pathlib import Path
from types import SimpleNamespace

import pyarrow.fs
from mlflow.tracking import MlflowClient

from pipeline.execution import journal
from pipeline.results import tracking
from pipeline.results.sweep_logger import SweepLogger


class Trial:
    """What the callback reads of a Ray Tune Trial."""

    def __init__(self, trial_id: str, x: float):
        self.trial_id, self.config = trial_id, {"params": {"x": x}}

    def __str__(self) -> str:
        return f"t_{self.trial_id}"


def logger(folder: Path) -> SweepLogger:
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    store = tracking.connect(uri, "log", str(folder))
    parent = store.client.create_run(store.experiment_id).info.run_id
    return SweepLogger(store, parent)


def end_step(sweep: SweepLogger, iteration: int) -> None:
    """The end of a step of Tune's loop, and the sender thread done with its records."""
    sweep.on_step_end(iteration, [])
    assert sweep.wait_sent(timeout_s=10)


def logged_scores(sweep: SweepLogger) -> list[tuple[int, float]]:
    """(step, value) of the one trial's `score` in MLflow."""
    (run_id,) = tracking.child_run_ids(sweep.store, sweep.parent_run_id).values()
    history = MlflowClient(sweep.store.uri).get_metric_history(run_id, "score")
    return sorted((m.step, m.value) for m in history)


def test_updates_wait_for_the_end_of_the_step(tmp_path: Path) -> None:
    sweep = logger(tmp_path)
    trial = Trial("a", 0.5)
    sweep.on_trial_start(0, [], trial)
    sweep.on_trial_result(0, [], trial, {"score": 1.0, "training_iteration": 1})
    assert sweep.flush()  # the sender thread has nothing before the step ends
    assert tracking.child_run_ids(sweep.store, sweep.parent_run_id) == {}
    end_step(sweep, 1)
    (run_id,) = tracking.child_run_ids(sweep.store, sweep.parent_run_id).values()
    assert [m.step for m in MlflowClient(sweep.store.uri).get_metric_history(run_id,
                                                                             "score")] == [1]


def test_records_wait_until_the_journal_has_saved_them(tmp_path: Path) -> None:
    """The journal saves every few steps: a step it skipped is not in any snapshot yet, so a
    kill then would resume without it, and MLflow must not have it either."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    store = tracking.connect(uri, "log", str(tmp_path))
    saver = journal.Journal()
    sweep = SweepLogger(store, store.client.create_run(store.experiment_id).info.run_id, saver)
    staging = tmp_path / "staging"
    staging.mkdir()
    (staging / "experiment_state-s.json").write_text("{}")
    where = SimpleNamespace(storage_filesystem=pyarrow.fs.LocalFileSystem(),
                            experiment_fs_path=str(tmp_path), experiment_driver_staging_path=
                            str(staging))
    trial = Trial("a", 0.5)
    for callback in (saver, sweep):
        callback.on_trial_start(0, [], trial)
    end_step(sweep, 1)  # the journal deferred its save
    assert tracking.child_run_ids(store, sweep.parent_run_id) == {}
    saver.save(where)
    end_step(sweep, 2)
    assert len(tracking.child_run_ids(store, sweep.parent_run_id)) == 1


def test_tune_s_loop_does_not_wait_for_mlflow(tmp_path: Path) -> None:
    """A busy sender (a slow server, a long batch) must not hold up the step; what it has not
    sent yet stays in the journal's snapshot."""
    sweep = logger(tmp_path)
    trial = Trial("s", 0.5)
    with sweep._send_lock:  # the sender thread is busy
        sweep.on_trial_start(0, [], trial)
        ended = threading.Thread(target=sweep.on_step_end, args=(1, []))
        ended.start()
        ended.join(timeout=5)
        assert not ended.is_alive()
        assert [r[0] for r in sweep.get_state()["pending"]] == ["start"]
    assert sweep.wait_sent(timeout_s=10)
    assert list(tracking.child_run_ids(sweep.store, sweep.parent_run_id)) == ["s"]
    assert sweep.get_state()["pending"] == []


def test_replayed_records_leave_one_run_and_no_duplicate_metric(tmp_path: Path) -> None:
    sweep = logger(tmp_path)
    trial = Trial("a", 0.5)
    sweep.on_trial_start(0, [], trial)
    for step in (1, 2):
        sweep.on_trial_result(0, [], trial, {"score": float(step), "training_iteration": step,
                                             "node_id": "n1"})
    sweep.on_trial_complete(0, [], trial)
    saved = pickle.loads(pickle.dumps(sweep.get_state()))  # what the journal holds
    end_step(sweep, 1)

    resumed = pickle.loads(pickle.dumps(sweep))  # as Tune unpickles it from tuner.pkl
    resumed.set_state(saved)
    resumed.setup()
    assert resumed.flush()
    client = MlflowClient(sweep.store.uri)
    (run_id,) = tracking.child_run_ids(sweep.store, sweep.parent_run_id).values()
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.tags["node_id"] == "n1"
    assert [(m.step, m.value) for m in client.get_metric_history(run_id, "score")] == \
        [(1, 1.0), (2, 2.0)]


def test_a_trial_that_ends_without_starting_still_gets_a_run(tmp_path: Path) -> None:
    sweep = logger(tmp_path)
    trial = Trial("b", 0.1)
    trial.error_file = None
    sweep.on_trial_error(0, [], trial)
    end_step(sweep, 1)
    (run_id,) = tracking.child_run_ids(sweep.store, sweep.parent_run_id).values()
    run = MlflowClient(sweep.store.uri).get_run(run_id)
    assert run.info.status == "FAILED" and run.data.tags["error"] == "trial failed"


def test_a_result_with_a_checkpoint_waits_until_tune_registered_it(tmp_path: Path) -> None:
    """Sent before, a kill would make the trial start from its previous checkpoint and
    report the same epoch twice; held results are not among the journal's pending records."""
    sweep = logger(tmp_path)
    trial = Trial("c", 0.3)
    sweep.on_trial_start(0, [], trial)
    sweep.on_trial_result(0, [], trial, {"score": 1.0, "training_iteration": 1,
                                         "should_checkpoint": True})
    end_step(sweep, 1)
    assert [r[0] for r in sweep.get_state()["pending"]] == []
    (run_id,) = tracking.child_run_ids(sweep.store, sweep.parent_run_id).values()
    client = MlflowClient(sweep.store.uri)
    assert client.get_metric_history(run_id, "score") == []
    sweep.on_trial_save(2, [], trial)
    end_step(sweep, 2)
    assert [m.step for m in client.get_metric_history(run_id, "score")] == [1]


def test_a_stopped_trial_s_unregistered_result_is_not_sent(tmp_path: Path) -> None:
    """Stopped by a signal between a report and the registration of its checkpoint (found by
    the soak): the trial resumes from its previous checkpoint and reports that epoch again,
    so the first report must not reach MLflow (it did: the same step twice)."""
    sweep = logger(tmp_path)
    trial = Trial("k", 0.9)
    sweep.on_trial_start(0, [], trial)
    sweep.on_trial_result(0, [], trial, {"score": 1.0, "training_iteration": 1,
                                         "should_checkpoint": True})
    sweep.on_trial_save(1, [], trial)
    sweep.on_trial_result(1, [], trial, {"score": 2.0, "training_iteration": 2,
                                         "should_checkpoint": True})
    sweep.on_experiment_end([trial])
    (run_id,) = tracking.child_run_ids(sweep.store, sweep.parent_run_id).values()
    client = MlflowClient(sweep.store.uri)
    assert [m.step for m in client.get_metric_history(run_id, "score")] == [1]
    assert client.get_run(run_id).info.status == "KILLED"


def test_a_retried_trial_reports_each_epoch_once(tmp_path: Path) -> None:
    """A trial that failed after a report whose checkpoint Tune had not registered is retried
    from the checkpoint before it and reports that epoch again."""
    sweep = logger(tmp_path)
    trial = Trial("r", 0.1)
    sweep.on_trial_start(0, [], trial)
    for step in (1, 2):
        sweep.on_trial_result(0, [], trial, {"score": float(step), "training_iteration": step,
                                             "should_checkpoint": True})
        if step == 1:
            sweep.on_trial_save(0, [], trial)
    sweep.on_trial_recover(1, [], trial)
    sweep.on_trial_result(2, [], trial, {"score": 2.5, "training_iteration": 2,
                                         "should_checkpoint": True})
    sweep.on_trial_save(2, [], trial)
    sweep.on_trial_complete(2, [], trial)
    end_step(sweep, 2)
    assert logged_scores(sweep) == [(1, 1.0), (2, 2.5)]


def test_a_run_whose_params_were_cut_off_gets_the_rest_when_its_trial_starts_again(
        tmp_path: Path) -> None:
    """Params go in batches of 100 after create_run: a stop in between leaves a run with
    some. The resumed sweep continues that run, so it must complete them."""
    sweep = logger(tmp_path)
    trial = Trial("d", 0.25)
    trial.config = {"params": {"x": 0.25}, "many": {f"p{i:03d}": i for i in range(150)}}
    client = MlflowClient(sweep.store.uri)
    run_id = client.create_run(sweep.store.experiment_id, tags={
        tracking.PARENT_TAG: sweep.parent_run_id, "trial_id": "d"}).info.run_id
    every = tracking.safe_params(trial.config)
    tracking.log_params(client, run_id, every[:100])  # the stop: after the first batch

    resumed = pickle.loads(pickle.dumps(sweep))
    resumed.setup()
    trial.config["many"]["p000"] = -1  # changed since (PBT): the logged value stays
    resumed.on_trial_start(0, [], trial)
    end_step(resumed, 1)
    assert tracking.child_run_ids(sweep.store, sweep.parent_run_id) == {"d": run_id}
    params = client.get_run(run_id).data.params
    assert params == {p.key: p.value for p in every}


def stopped_with_a_result_held(folder: Path) -> tuple[SweepLogger, Trial, dict]:
    """A trial stopped by a signal after its epoch-2 report, before Tune registered that
    report's checkpoint; and the journal's snapshot of that step."""
    sweep = logger(folder)
    trial = Trial("h", 0.2)
    sweep.on_trial_start(0, [], trial)
    for step in (1, 2):
        sweep.on_trial_result(step, [], trial, {"score": float(step),
                                                "training_iteration": step,
                                                "should_checkpoint": True})
        if step == 1:
            sweep.on_trial_save(1, [], trial)
        end_step(sweep, step)
    saved = pickle.loads(pickle.dumps(sweep.get_state()))
    sweep.on_experiment_end([trial])
    return sweep, trial, saved


def resumed_from(sweep: SweepLogger, saved: dict) -> SweepLogger:
    resumed = pickle.loads(pickle.dumps(sweep))  # as Tune unpickles it from tuner.pkl
    resumed.set_state(saved)
    resumed.setup()
    return resumed


def test_a_held_result_is_sent_when_the_resumed_trial_ends_without_reporting_it(
        tmp_path: Path) -> None:
    """A scheduler that acted on the held result (HyperBand halving its bracket at epoch 2)
    stops the restored trial without running it again: the epoch must reach MLflow then
    (found by the soak: it was dropped at the stop and lost)."""
    sweep, trial, saved = stopped_with_a_result_held(tmp_path)
    resumed = resumed_from(sweep, saved)
    resumed.on_trial_complete(0, [], trial)
    end_step(resumed, 0)
    assert logged_scores(sweep) == [(1, 1.0), (2, 2.0)]
    (run_id,) = tracking.child_run_ids(sweep.store, sweep.parent_run_id).values()
    assert MlflowClient(sweep.store.uri).get_run(run_id).info.status == "FINISHED"


def test_a_held_result_reported_again_after_a_resume_is_sent_once(tmp_path: Path) -> None:
    sweep, trial, saved = stopped_with_a_result_held(tmp_path)
    resumed = resumed_from(sweep, saved)
    resumed.on_trial_start(0, [], trial)
    resumed.on_trial_result(1, [], trial, {"score": 2.5, "training_iteration": 2,
                                           "should_checkpoint": True})  # from epoch 1's
    resumed.on_trial_save(1, [], trial)
    resumed.on_trial_complete(1, [], trial)
    end_step(resumed, 1)
    assert logged_scores(sweep) == [(1, 1.0), (2, 2.5)]
