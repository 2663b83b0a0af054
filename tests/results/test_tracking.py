"""The parent run against a real SQLite store: what a stop right after it was created leaves is
completed, not duplicated, when the sweep resumes."""
from __future__ import annotations

from pathlib import Path

from mlflow.tracking import MlflowClient

from pipeline.config.schema import Experiment
from pipeline.results import tracking


def test_a_parent_run_cut_off_after_create_run_gets_its_config_on_resume(tmp_path: Path) -> None:
    store = tracking.connect(f"sqlite:///{tmp_path / 'mlflow.db'}", "t", str(tmp_path))
    exp = Experiment(name="t")
    exp_file = tmp_path / "t.yaml"
    exp_file.write_text("name: t\n")
    parent = tracking.open_sweep(store, exp, "t-1", exp_file, {"pipeline.sweep": "t-1"})
    client = MlflowClient(store.uri)
    assert client.get_run(parent).data.tags["pipeline.sweep"] == "t-1"  # resume finds it
    wanted = {p.key: p.value for p in tracking.safe_params(exp.model_dump(mode="json"))}
    assert client.get_run(parent).data.params == wanted

    # what a stop just after create_run leaves: the run and its tags, nothing else
    cut = client.create_run(store.experiment_id, tags={"pipeline.sweep": "t-2"}).info.run_id
    for _ in range(2):  # the first resume completes it, a second changes nothing
        tracking.record_sweep_config(store, cut, exp, exp_file)
        assert client.get_run(cut).data.params == wanted
        assert [a.path for a in client.list_artifacts(cut)] == ["t.yaml"]
