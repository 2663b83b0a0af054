"""The parent run against a real SQLite store: what a stop right after it was created leaves is
completed, not duplicated, when the sweep resumes."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from pipeline.config import ConfigError
from pipeline.config.schema import Experiment
from pipeline.results import tracking

from ..conftest import ROOT


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


KILLED_WHILE_BUILDING = """
import os, signal, sys
from alembic.operations import ops
from pipeline.results import tracking

create_table, made = ops.CreateTableOp.create_table.__func__, []

def create_table_or_die(cls, operations, *args, **kwargs):
    made.append(args[0])
    if len(made) > int(sys.argv[2]):
        os.kill(os.getpid(), signal.SIGKILL)
    return create_table(cls, operations, *args, **kwargs)

ops.CreateTableOp.create_table = classmethod(create_table_or_die)
tracking.connect(sys.argv[1], "t", "unused")
"""


@pytest.mark.parametrize("tables_made", [3, 12, 45])  # of ~60; at each of these, old code failed
def test_a_store_killed_while_mlflow_builds_it_is_built_again(tmp_path: Path,
                                                            tables_made: int) -> None:
    """Killed in the middle of MLflow's schema migrations, the new SQLite file was left
    half-built and every later sweep failed (`table registered_models already exists`)."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    died = subprocess.run([sys.executable, "-c", KILLED_WHILE_BUILDING, uri, str(tables_made)],
                          cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, check=False)
    assert died.returncode == -signal.SIGKILL, died.stderr[-2000:]  # it died building

    store = tracking.connect(uri, "t", str(tmp_path))
    run = MlflowClient(uri).create_run(store.experiment_id)
    assert MlflowClient(uri).get_run(run.info.run_id).info.experiment_id == store.experiment_id
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mlflow.db", "mlflow.db.lock"]


@pytest.mark.parametrize(("where", "cause"), [
    ("sqlite:///{tmp}/afile/x.db", r"FileExistsError"),   # a path through a file
    ("sqlite:///{tmp}/notes.db", r"DatabaseError: .*file is not a database"),
    ("bogus://x", r"UnsupportedModelRegistryStoreURIException"),
])
def test_a_store_mlflow_cannot_open_names_tracking_uri(tmp_path: Path, where: str,
                                                        cause: str) -> None:
    """Each was `failed: <library exception>`, exit 1, after Ray had started."""
    (tmp_path / "afile").write_text("x")
    (tmp_path / "notes.db").write_text("not a database")
    uri = where.format(tmp=tmp_path)
    with pytest.raises(ConfigError, match=rf"^tracking.uri: cannot open an MLflow store at "
                                          rf"{re.escape(uri)} \({cause}"):
        tracking.connect(uri, "x", str(tmp_path / "ray_results"))


def test_a_deleted_experiment_says_how_to_restore_it(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path}/m.db"
    store = tracking.connect(uri, "gone", str(tmp_path / "ray_results"))
    store.client.delete_experiment(store.experiment_id)
    with pytest.raises(ConfigError, match=rf"tracking.experiment: MLflow experiment 'gone' \(id "
                                          rf"{store.experiment_id}\) is deleted; restore it"):
        tracking.connect(uri, "gone", str(tmp_path / "ray_results"))
