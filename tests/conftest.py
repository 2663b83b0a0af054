"""Shared fixtures: a real local Ray (started once), and a clean working folder per test so
mlflow.db, mlartifacts and ray_results never leak between tests."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.pop("MLFLOW_TRACKING_URI", None)
os.environ.pop("RAY_ADDRESS", None)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="session")
def ray_local():
    """One local Ray for the session (starting it costs ~5 s); tests must not shut it down."""
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING",
                 runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}})
    yield ray
    ray.shutdown()


def write_experiment(folder: Path, text: str, name: str = "exp.yaml") -> Path:
    path = folder / name
    path.write_text(text)
    return path


def local_store() -> str:
    """The default store of the current folder, by absolute path (MLflow caches by URI)."""
    return f"sqlite:///{Path.cwd() / 'mlflow.db'}"


def tiny_sweep(name: str, space: str, *, epochs: int = 1, searcher: str = "grid",
               num_samples: int = 1) -> str:
    """A built-in-trainable sweep small enough for an end-to-end test (300 digits, 16 units);
    `space`: the YAML lines under search.space, indented four spaces."""
    return f"""
name: {name}
data: {{limit: 300, batch_size: 32}}
model: {{hidden: 16}}
train: {{epochs: {epochs}}}
search:
  searcher: {searcher}
  num_samples: {num_samples}
  space:
{space}"""
