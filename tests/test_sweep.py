"""End-to-end sweeps through real Ray and a real MLflow SQLite store."""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from pipeline import study
from pipeline.config import load

from .conftest import ROOT, local_store, write_experiment

GRID = """
name: smoke
data: {limit: 300, batch_size: 32}
model: {hidden: 16}
train: {epochs: 2, lr: 0.05}
search:
  searcher: grid
  num_samples: 1
  max_concurrent: 2
  space:
    train.lr: {grid: [0.01, 0.1]}
"""


def children(client: MlflowClient, experiment_id: str, parent_id: str) -> list:
    return client.search_runs([experiment_id], f"tags.`mlflow.parentRunId` = '{parent_id}'")


def parent_runs(client: MlflowClient, experiment_id: str) -> list:
    runs = client.search_runs([experiment_id])
    return [r for r in runs if "mlflow.parentRunId" not in r.data.tags]


@pytest.mark.slow
def test_cli_grid_sweep_leaves_the_mlflow_layout(workdir: Path) -> None:
    exp_file = write_experiment(workdir, GRID)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "pipeline", "tune", str(exp_file),
                           "--set", "seed=3"],
                          cwd=workdir, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Best val_loss:" in done.stdout
    # the reproduce line keeps the command's own --set (it dropped them: another config)
    (line,) = [li for li in done.stdout.splitlines() if li.startswith("Reproduce: ")]
    words = shlex.split(line)
    again = load(exp_file, words[words.index(str(exp_file)) + 2::2])
    assert again.seed == 3 and again.search.num_samples == 1 and not again.search.space
    # nothing from the libraries reaches the terminal: not Ray's, MLflow's or torch's logs
    assert not [line for line in done.stderr.splitlines() if line.strip()], done.stderr[-3000:]
    assert not re.search(r"\bWARNING\b|\bINFO\b|Warning\b", done.stdout), done.stdout[-3000:]
    # Ray's own experiment box and TensorBoard hint: our progress lines say it already
    assert not re.search(r"View detailed results|Configuration for experiment|tensorboard",
                         done.stdout), done.stdout[-3000:]

    client = MlflowClient(local_store())
    experiment = client.get_experiment_by_name("smoke")
    (parent,) = parent_runs(client, experiment.experiment_id)
    kids = children(client, experiment.experiment_id, parent.info.run_id)
    assert len(kids) == 2
    assert {k.data.params["train.lr"] for k in kids} == {"0.01", "0.1"}
    for kid in kids:
        assert kid.info.status == "FINISHED"
        assert {"trial_id", "node_id", "node_ip"} <= set(kid.data.tags)
        history = client.get_metric_history(kid.info.run_id, "val_loss")
        assert [m.step for m in history] == [1, 2]
        assert kid.data.params["model.hidden"] == "16"
    best_child = min(kid.data.metrics["val_loss"] for kid in kids)
    assert parent.data.metrics["best_val_loss"] <= best_child + 1e-12
    assert parent.info.status == "FINISHED"
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"exp.yaml", "best_config.yaml", "results.csv", "plots", "best_checkpoint"} <= artifacts
    plots = {a.path for a in client.list_artifacts(parent.info.run_id, "plots")}
    assert "plots/convergence.png" in plots and "plots/param_train.lr.png" in plots
    ckpt = {a.path for a in client.list_artifacts(parent.info.run_id, "best_checkpoint")}
    assert ckpt == {"best_checkpoint/state.pt"}
    assert (workdir / "mlartifacts" / "smoke").is_dir()


@pytest.mark.slow
def test_custom_trainable_gets_the_resolved_config(workdir: Path, ray_local) -> None:
    exp_file = write_experiment(workdir, """
name: custom
trainable: tests.trainables:quadratic
params: {x: 0.0, steps: 3}
search:
  searcher: random
  metric: score
  mode: max
  num_samples: 3
  space:
    params.x: {uniform: [0.0, 4.0]}
""")
    outcome = study.run(load(exp_file), exp_file)
    assert outcome.best_config is not None
    client = MlflowClient(local_store())
    kids = children(client, outcome.store.experiment_id, outcome.parent_run_id)
    assert len(kids) == 3
    for kid in kids:
        x = float(kid.data.params["params.x"])
        assert kid.data.metrics["x_seen"] == pytest.approx(x)
        assert len(client.get_metric_history(kid.info.run_id, "score")) == 3
    assert outcome.best_value == max(k.data.metrics["score"] for k in kids)


@pytest.mark.slow
def test_asha_stops_poor_trials_early(workdir: Path, ray_local) -> None:
    exp_file = write_experiment(workdir, """
name: asha
data: {limit: 300}
model: {hidden: 16}
train: {epochs: 6}
search:
  searcher: random
  scheduler: asha
  asha: {grace_period: 1, reduction_factor: 2}
  num_samples: 6
  space:
    train.lr: {loguniform: [1.0e-4, 0.3]}
""")
    outcome = study.run(load(exp_file), exp_file)
    client = MlflowClient(local_store())
    kids = children(client, outcome.store.experiment_id, outcome.parent_run_id)
    epochs = sorted(len(client.get_metric_history(k.info.run_id, "val_loss")) for k in kids)
    assert len(kids) == 6
    assert epochs[0] < 6 and epochs[-1] == 6


def test_bad_input_exits_2_with_one_line_and_writes_nothing(workdir: Path) -> None:
    exp_file = write_experiment(workdir, GRID.replace("lr: 0.05", "lr: -1"))
    done = subprocess.run([sys.executable, "-m", "pipeline", "tune", str(exp_file)],
                          cwd=workdir, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: train.lr: Input should be greater than 0"]
    assert sorted(p.name for p in workdir.iterdir()) == ["exp.yaml"]


@pytest.mark.slow
def test_secrets_never_reach_mlflow_or_the_terminal(workdir: Path) -> None:
    token = "tok-9f8e7d6c5b4a"
    exp_file = write_experiment(workdir, """
name: secrets
trainable: tests.trainables:quadratic
params: {x: 1.0, password: hunter2hunter2, endpoint_note: TOKEN_VALUE, key: AKIAABCDEFGHIJKLMNOP}
search:
  searcher: random
  metric: score
  mode: max
  num_samples: 1
  space:
    params.x: {uniform: [0.0, 4.0]}
""".replace("TOKEN_VALUE", token))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MY_API_TOKEN": token}
    done = subprocess.run([sys.executable, "-m", "pipeline", "tune", str(exp_file)],
                          cwd=workdir, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    client = MlflowClient(local_store())
    experiment = client.get_experiment_by_name("secrets")
    logged = []
    for run in client.search_runs([experiment.experiment_id]):
        logged += [*run.data.params.items(), *run.data.tags.items()]
        for name in ("exp.yaml", "best_config.yaml"):
            if "mlflow.parentRunId" not in run.data.tags:
                text = Path(client.download_artifacts(run.info.run_id, name, str(workdir)))
                logged.append((name, text.read_text()))
    assert ("params.x" in dict(logged)) and logged
    for secret in ("hunter2hunter2", token, "AKIAABCDEFGHIJKLMNOP"):
        assert all(secret not in f"{k}={v}" for k, v in logged)
        assert secret not in done.stdout and secret not in done.stderr


@pytest.mark.slow
def test_cli_bayes_sweep_with_a_grid_axis(workdir: Path) -> None:
    """`searcher: bayes` end to end: the grid crossed outside the optimizer, every trial in
    MLflow with values of the right type, running trials apart, the surrogate's plot."""
    exp_file = write_experiment(workdir, """
name: bayes-smoke
trainable: tests.trainables:quadratic
params: {x: 0.0, steps: 1, width: 1}
search:
  searcher: bayes
  metric: score
  mode: max
  num_samples: 4
  max_concurrent: 2
  space:
    params.x: {uniform: [-5.0, 5.0]}
    params.width: {randint: [1, 4]}
    params.steps: {grid: [1, 2]}
  bayes: {n_initial_points: 2, n_points: 200, n_local: 50}
resources: {cpu: 0.5}
""")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "pipeline", "tune", str(exp_file)],
                          cwd=workdir, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "bayes search, 8 trial(s)" in done.stdout

    client = MlflowClient(local_store())
    experiment = client.get_experiment_by_name("bayes-smoke")
    (parent,) = parent_runs(client, experiment.experiment_id)
    kids = children(client, experiment.experiment_id, parent.info.run_id)
    assert len(kids) == 8 and {k.info.status for k in kids} == {"FINISHED"}
    steps = [k.data.params["params.steps"] for k in kids]
    assert steps.count("1") == steps.count("2") == 4  # each grid cell its share
    points = {(k.data.params["params.steps"], float(k.data.params["params.x"]),
               k.data.params["params.width"]) for k in kids}
    assert len(points) == 8 and all(-5 <= x <= 5 for _, x, _ in points)
    assert {k.data.params["params.width"] for k in kids} <= {"1", "2", "3", "4"}  # ints
    assert parent.data.metrics["best_score"] == max(k.data.metrics["score"] for k in kids)
    plots = {a.path for a in client.list_artifacts(parent.info.run_id, "plots")}
    assert {"plots/convergence.png", "plots/surrogate_objective.png"} <= plots
