"""Which sweep `--resume` continues, against a real SQLite store: the latest of the experiment
itself, never one of an experiment whose name starts the same, nor one `compare` ran."""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipeline.config import Experiment
from pipeline.execution import sweeps
from pipeline.results import tracking

STORED = "/tmp/no-such-ray-results"


@dataclass
class Where:
    """What `locate` reads of the sweep's context."""

    storage_path: str


STARTS = itertools.count(1_700_000_000_000, 1000)  # ms


def sweep_run(store: tracking.Store, sweep: str, **tags: str) -> str:
    """A sweep's parent run, started after every earlier one (the order resume goes by)."""
    return store.client.create_run(store.experiment_id, start_time=next(STARTS), tags={
        sweeps.SWEEP_TAG: sweep, "storage_path": STORED, **tags}).info.run_id


def test_resume_finds_the_experiment_s_own_latest_sweep(tmp_path: Path) -> None:
    store = tracking.connect(f"sqlite:///{tmp_path / 'mlflow.db'}", "shared", str(tmp_path))
    own = sweep_run(store, "foo-20261204-101010")
    sweep_run(store, "foo-bar-20261204-101011")  # another experiment in the same MLflow one
    sweep_run(store, "foo-20261204-101012", **{sweeps.ARM_TAG: "compare-run"})
    assert sweeps._latest_sweep("foo", store).info.run_id == own
    later = sweep_run(store, "foo-20261204-101013-2")  # two sweeps started in one second
    assert sweeps._latest_sweep("foo", store).info.run_id == later
    assert sweeps._latest_sweep("foo-bar", store).data.tags[sweeps.SWEEP_TAG] == \
        "foo-bar-20261204-101011"
    assert sweeps._latest_sweep("fo", store) is None


def test_resume_of_a_finished_sweep_has_nothing_to_do(tmp_path: Path) -> None:
    """It ran the whole summary again, every value logged twice and the test split scored
    again (found from outside)."""
    store = tracking.connect(f"sqlite:///{tmp_path / 'mlflow.db'}", "shared", str(tmp_path))
    run_id = sweep_run(store, "foo-20261204-101010")
    tracking.log_metrics(store, run_id, {"best_val_loss": 0.25})
    tracking.close_sweep(store, run_id, "FINISHED")
    exp = Experiment(name="foo")
    with pytest.raises(sweeps.AlreadyFinished, match=r"foo-20261204-101010 already finished "
                       rf"\(MLflow run {run_id}, best_val_loss 0.25\): nothing to resume"):
        sweeps.locate(exp, Where(STORED), store, resume=True)
    store.client.update_run(run_id, status="KILLED")  # stopped in its summary: resumed
    assert sweeps.locate(exp, Where(STORED), store, resume=True).parent_run_id == run_id


def test_a_sweep_moved_to_another_storage_path_is_resumed_there(tmp_path: Path, capsys) -> None:
    """--set storage.path was ignored without a word (found from outside)."""
    store = tracking.connect(f"sqlite:///{tmp_path / 'mlflow.db'}", "shared", str(tmp_path))
    run_id = sweep_run(store, "foo-20261204-101010")
    exp = Experiment(name="foo")
    moved = tmp_path / "moved"
    (moved / "foo-20261204-101010").mkdir(parents=True)
    (moved / "foo-20261204-101010" / "tuner.pkl").write_bytes(b"")  # what Tune looks for
    assert sweeps.locate(exp, Where(str(moved)), store, resume=True).storage_path == str(moved)
    assert "found under storage.path" in capsys.readouterr().out
    assert store.client.get_run(run_id).data.tags["storage_path"] == str(moved)
    elsewhere = str(tmp_path / "elsewhere")
    assert sweeps.locate(exp, Where(elsewhere), store, resume=True).storage_path == str(moved)
    assert f"not under storage.path {elsewhere}; resuming it where it started" in \
        capsys.readouterr().out


def test_a_new_sweep_says_when_the_last_one_never_finished(tmp_path: Path, capsys) -> None:
    """A SIGKILLed sweep stayed RUNNING for good once a new one started, and nothing said that
    --resume would have continued it (found from outside)."""
    from pipeline.execution import sweep_lock

    store = tracking.connect(f"sqlite:///{tmp_path / 'mlflow.db'}", "shared", str(tmp_path))
    where, exp = Where(str(tmp_path / "ray_results")), Experiment(name="foo")
    killed = sweep_run(store, "foo-20261204-101010")  # its driver SIGKILLed: left RUNNING
    sweeps.locate(exp, where, store, resume=False)
    assert store.client.get_run(killed).info.status == "KILLED"
    assert "Note: sweep foo-20261204-101010 (MLflow run" in capsys.readouterr().out
    live = sweep_run(store, "foo-20261204-101011")
    with sweep_lock.held("foo-20261204-101011", f"{STORED}/foo-20261204-101011"):
        sweeps.locate(exp, where, store, resume=False)
    assert store.client.get_run(live).info.status == "RUNNING"
    assert "is running now; this starts another beside it" in capsys.readouterr().out
    tracking.close_sweep(store, live, "FINISHED")
    sweeps.locate(exp, where, store, resume=False)
    assert capsys.readouterr().out == ""
