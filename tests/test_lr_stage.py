"""The LR range test as a stage: `lr-find` on its own, and before a sweep."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from mlflow.tracking import MlflowClient

from pipeline import cli, lr_stage, study
from pipeline.config import load

from .conftest import ROOT, local_store, write_experiment
from .sweep_process import wait_for

SWEEP = """
name: lrs
data: {limit: 400}
model: {hidden: 32}
train: {epochs: 1}
lr_range_test: {enabled: true, num_iter: 60}
search:
  searcher: random
  num_samples: 3
  space:
    train.lr: lr_range
"""
LR_METRICS = {"lr_suggested", "lr_min_loss", "lr_steepest", "lr_valley"}


def test_lr_find_logs_its_own_run_and_prints_the_suggestion(workdir, capsys) -> None:
    exp_file = write_experiment(workdir, SWEEP)
    assert cli.main(["lr-find", str(exp_file)]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("suggested lr: ")
    suggested = float(last.removeprefix("suggested lr: "))
    assert (workdir / "lr_find" / "lrs" / "lr_range_test.png").stat().st_size > 1000
    client = MlflowClient(local_store())
    (run,) = client.search_runs([client.get_experiment_by_name("lrs").experiment_id])
    assert run.data.tags["pipeline.kind"] == "lr-find"
    assert LR_METRICS <= set(run.data.metrics)
    assert run.data.metrics["lr_suggested"] == pytest.approx(suggested)
    assert {a.path for a in client.list_artifacts(run.info.run_id)} == {
        "lr_range_test.csv", "lr_range_test.png"}


def test_a_stopped_lr_find_closes_its_run(workdir) -> None:
    """SIGTERM (or Ctrl-C) left the lr-find run RUNNING for good (found from outside)."""
    exp_file = write_experiment(workdir, SWEEP.replace("num_iter: 60", "num_iter: 100000"))
    finder = subprocess.Popen([sys.executable, "-m", "pipeline", "lr-find", str(exp_file)],
                              cwd=workdir, env={**os.environ, "PYTHONPATH": str(ROOT)},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    client = MlflowClient(local_store())

    def lr_find_run():
        experiment = client.get_experiment_by_name("lrs")
        runs = client.search_runs([experiment.experiment_id]) if experiment else []
        return runs[0] if runs else None

    wait_for(lambda: lr_find_run() is not None)
    time.sleep(1.0)  # into the range test
    finder.send_signal(signal.SIGTERM)
    _, err = finder.communicate(timeout=60)
    assert finder.returncode == 128 + signal.SIGTERM, err
    assert err.strip().splitlines()[-1].startswith("interrupted: lr-find stopped; its MLflow run")
    assert lr_find_run().info.status == "KILLED"


@pytest.mark.slow
def test_lr_range_in_the_space_becomes_the_logged_bounds(workdir, ray_local) -> None:
    exp_file = write_experiment(workdir, SWEEP)
    outcome = study.run(load(exp_file), exp_file)
    client = MlflowClient(local_store())
    parent = client.get_run(outcome.parent_run_id)
    low, high = parent.data.metrics["lr_range_low"], parent.data.metrics["lr_range_high"]
    assert LR_METRICS <= set(parent.data.metrics)
    assert low < parent.data.metrics["lr_suggested"] < high
    assert {"lr_range_test.csv", "lr_range_test.png"} <= {
        a.path for a in client.list_artifacts(outcome.parent_run_id)}
    kids = client.search_runs([outcome.store.experiment_id],
                              f"tags.`mlflow.parentRunId` = '{outcome.parent_run_id}'")
    assert len(kids) == 3
    assert all(low <= float(k.data.params["train.lr"]) <= high for k in kids)


@pytest.mark.slow
def test_a_fixed_lr_is_set_to_the_suggestion(workdir, ray_local) -> None:
    exp_file = write_experiment(workdir, SWEEP.replace("train.lr: lr_range",
                                                       "model.hidden: {choice: [16, 32]}"))
    outcome = study.run(load(exp_file), exp_file)
    client = MlflowClient(local_store())
    suggested = client.get_run(outcome.parent_run_id).data.metrics["lr_suggested"]
    kids = client.search_runs([outcome.store.experiment_id],
                              f"tags.`mlflow.parentRunId` = '{outcome.parent_run_id}'")
    assert len(kids) == 3
    assert [float(k.data.params["train.lr"]) for k in kids] == pytest.approx([suggested] * 3)


@pytest.mark.slow
@pytest.mark.parametrize("schedule", ["cyclic", "sgdr", "onecycle"])
def test_a_cycled_schedule_gets_both_ends_from_the_range_test(workdir, ray_local,
                                                              schedule) -> None:
    from pipeline.results import tracking
    from pipeline.training import data as datasets
    from pipeline.training import schedules

    exp_file = write_experiment(workdir, SWEEP.replace(
        "train.lr: lr_range", "model.hidden: {choice: [16, 32]}").replace(
        "train: {epochs: 1}", f"train: {{epochs: 1, schedule: {schedule}}}"))
    exp = load(exp_file)
    store = tracking.connect(local_store(), "lrs", "ray_results")
    parent = store.client.create_run(store.experiment_id).info.run_id
    applied, bounds = lr_stage.run(exp, datasets.load(exp.data, exp.seed), store, parent)
    metrics = store.client.get_run(parent).data.metrics
    assert bounds is None
    assert applied.train.lr == metrics["lr_cycle_max"] == min(
        metrics["lr_steepest"], 3 * metrics["lr_suggested"])
    assert applied.train.min_lr == pytest.approx(applied.train.lr / 4)
    assert store.client.get_run(parent).data.tags["lr_cycle_rule"] == schedules.CYCLE_RULE


@pytest.mark.slow
def test_a_curve_the_test_does_not_trust_keeps_the_configured_lr(workdir, ray_local,
                                                                 capsys) -> None:
    """A flat curve (the range too low to move the loss) still set train.lr to its
    suggestion: lr 1 for a network configured at 0.0007."""
    from pipeline.results import tracking
    from pipeline.training import data as datasets

    exp = load(write_experiment(workdir, SWEEP.replace(
        "train.lr: lr_range", "model.hidden: {choice: [16, 32]}").replace(
        "train: {epochs: 1}", "train: {epochs: 1, lr: 0.0007}").replace(
        "num_iter: 60}", "num_iter: 20, start_lr: 1.0e-9, end_lr: 1.0e-8}")))
    store = tracking.connect(local_store(), "lrs", "ray_results")
    parent = store.client.create_run(store.experiment_id).info.run_id
    applied, bounds = lr_stage.run(exp, datasets.load(exp.data, exp.seed), store, parent)
    assert applied.train.lr == 0.0007 and bounds is None
    out = capsys.readouterr().out
    assert "LR range test: keeping train.lr 0.0007" in out and "set to" not in out
