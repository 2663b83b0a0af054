"""What a finished sweep leaves for people to read: plots, edge warnings, importance, cost,
and a budget that stops new trials. Real Ray, real MLflow (SQLite)."""
from __future__ import annotations

import pytest
import yaml
from mlflow.tracking import MlflowClient

from pipeline import study
from pipeline.config import load

from ..conftest import local_store, write_experiment

# A $3600/h node of which a 1-CPU trial takes a quarter: $0.25 per trial-second.
CLUSTER = {"available_node_types": {"big": {"resources": {"CPU": 4}, "node_config": {}}},
           "metadata": {"prices_usd_per_hour": {"big": {"on_demand": 3600.0, "spot": 1.0}}}}
SWEEP = """
name: results
data: {limit: 300, batch_size: 32}
model: {hidden: 16}
train: {epochs: 2}
cluster: {autoscaler_config: cluster.yaml, node_type: big}
search:
  searcher: random
  num_samples: 6
  points_to_evaluate: [{train.lr: 0.05}]
  space:
    train.lr: {loguniform: [1.0e-4, 0.05]}
    model.dropout: {uniform: [0.0, 0.5]}
"""


def children(client: MlflowClient, experiment_id: str, parent_id: str) -> list:
    return client.search_runs([experiment_id], f"tags.`mlflow.parentRunId` = '{parent_id}'")


@pytest.fixture
def priced(workdir):
    (workdir / "cluster.yaml").write_text(yaml.safe_dump(CLUSTER))
    return workdir


@pytest.mark.slow
def test_sweep_leaves_plots_warnings_importance_and_cost(priced, ray_local, capsys) -> None:
    exp_file = write_experiment(priced, SWEEP)
    outcome = study.run(load(exp_file), exp_file)
    out = capsys.readouterr().out
    client = MlflowClient(local_store())
    parent = client.get_run(outcome.parent_run_id)
    plots = {a.path for a in client.list_artifacts(outcome.parent_run_id, "plots")}
    assert plots == {f"plots/{name}.png" for name in (
        "convergence", "convergence_time", "importance", "param_train.lr",
        "param_model.dropout")}
    # the best lr is the range's top: warned on the terminal and tagged on the run
    assert outcome.searched["train.lr"] == 0.05
    warning = parent.data.tags["edge_warning.train.lr"]
    assert warning.startswith("train.lr: the best value 0.05 is at the high edge")
    assert f"Warning: {warning}" in out
    assert "edge_warning.model.dropout" not in parent.data.tags
    shares = {k: v for k, v in parent.data.metrics.items() if k.startswith("importance_")}
    assert set(shares) == {"importance_train.lr", "importance_model.dropout"}
    assert sum(shares.values()) == pytest.approx(1.0)
    assert shares["importance_train.lr"] > shares["importance_model.dropout"]
    # cost: per child, and the totals on the parent
    kids = children(client, outcome.store.experiment_id, outcome.parent_run_id)
    assert len(kids) == 6
    for kid in kids:
        m = kid.data.metrics
        assert m["trial_wall_s"] > 0 and m["gpu_s"] == 0
        assert m["cost_usd"] == pytest.approx(m["trial_wall_s"] * 0.25)
        assert m["best_val_loss"] <= m["val_loss"] + 1e-12  # for MLflow's compare view
        assert "train.lr" in kid.data.params
    total_s = sum(k.data.metrics["trial_wall_s"] for k in kids)
    assert parent.data.metrics["trial_hours"] == pytest.approx(total_s / 3600)
    assert parent.data.metrics["cost_usd"] == pytest.approx(total_s * 0.25)
    assert parent.data.metrics["gpu_hours"] == 0


@pytest.mark.slow
def test_budget_stops_launching_new_trials(priced, ray_local, capsys) -> None:
    exp_file = write_experiment(priced, SWEEP.replace(
        "num_samples: 6", "num_samples: 6\n  max_concurrent: 1\n  budget: {usd: 0.01}"))
    outcome = study.run(load(exp_file), exp_file)
    out = capsys.readouterr().out
    assert "Budget reached (budget.usd: $" in out and "no new trials" in out
    client = MlflowClient(local_store())
    kids = children(client, outcome.store.experiment_id, outcome.parent_run_id)
    assert 1 <= len(kids) < 6
    note = client.get_run(outcome.parent_run_id).data.tags["budget_stop"]
    assert note.endswith(f"{len(kids)} of 6 trials started")
    assert all(k.info.status == "FINISHED" for k in kids)  # the running trial was let finish
