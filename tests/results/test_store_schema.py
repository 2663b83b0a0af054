"""A new SQLite store's schema, built on a thread while Ray starts: published whole when the
store is opened, gone when a check before that refuses the sweep."""
from __future__ import annotations

import threading
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from pipeline.results import store_schema, tracking


def files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_the_schema_built_meanwhile_is_the_store_opened(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with store_schema.built_meanwhile(uri):
        (thread,) = [t for t in threading.enumerate() if t.name == store_schema.SCHEMA_THREAD]
    thread.join()
    assert files(tmp_path) == [store_schema._partial(tmp_path / "mlflow.db").name]  # not yet
    store = tracking.connect(uri, "t", str(tmp_path))
    assert files(tmp_path) == ["mlflow.db", "mlflow.db.lock"]
    run = MlflowClient(uri).create_run(store.experiment_id)
    assert MlflowClient(uri).get_run(run.info.run_id).info.experiment_id == store.experiment_id


def test_a_check_that_refuses_leaves_nothing(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with pytest.raises(KeyboardInterrupt), store_schema.built_meanwhile(uri):
        raise KeyboardInterrupt  # a refusal or a stop while Ray starts
    assert files(tmp_path) == []


def test_an_existing_store_is_left_alone_and_stray_partials_are_removed(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    stray = tmp_path / "mlflow.db.partial-1"  # left by a sweep killed while it built one
    stray.write_text("half a schema")
    tracking.connect(uri, "t", str(tmp_path))
    assert files(tmp_path) == ["mlflow.db", "mlflow.db.lock"]
    with store_schema.built_meanwhile(uri):
        pass
    tracking.connect(uri, "t", str(tmp_path))
    assert files(tmp_path) == ["mlflow.db", "mlflow.db.lock"]
    assert MlflowClient(uri).get_experiment_by_name("t") is not None
