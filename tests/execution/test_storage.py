"""Results, checkpoints and MLflow artifacts on S3, against a real S3-compatible server (moto)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
from mlflow.tracking import MlflowClient

from pipeline.config import ConfigError, load
from pipeline.execution import storage

from ..conftest import ROOT, local_store, write_experiment
from ..services import aws_env, free_port, moto_endpoint, ray_tmpdir  # noqa: F401  (fixtures)
from ..sweep_process import wait_for


@pytest.fixture
def s3(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch):  # noqa: F811
    for name, value in aws_env(moto_endpoint).items():
        monkeypatch.setenv(name, value)
    return boto3.client("s3")


def test_a_missing_bucket_is_refused_naming_storage_path(s3) -> None:
    with pytest.raises(ConfigError, match=r"^storage\.path: bucket 'no-such-bucket' .* does not "
                                          r"exist"):
        storage.check("s3://no-such-bucket/results")
    s3.create_bucket(Bucket="present-bucket")
    storage.check("s3://present-bucket/results")  # no error


def test_an_unreachable_endpoint_is_refused_naming_storage_path(
        monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in aws_env(f"http://127.0.0.1:{free_port()}").items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=r"^storage\.path: cannot reach S3 for s3://b3t/x"):
        storage.check("s3://b3t/x", timeout_s=1.0)


def test_an_s3_path_without_a_bucket_is_a_config_error(workdir: Path) -> None:
    exp_file = write_experiment(workdir, "name: x\nstorage: {path: 's3://'}\n")
    with pytest.raises(ConfigError, match=r"^storage\.path: 's3://' names no bucket"):
        load(exp_file)


def test_ray_gets_the_custom_endpoint_explicitly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("MLFLOW_S3_ENDPOINT_URL", "http://127.0.0.1:9000")
    path, filesystem = storage.tune_location("s3://bucket/a/b")
    assert path == "bucket/a/b"
    options = filesystem.__reduce__()[1][0]  # what travels to the trials
    assert (options["endpoint_override"], options["scheme"]) == ("127.0.0.1:9000", "http")
    assert options["access_key"] is None  # credentials stay on each node
    assert storage.tune_location("/tmp/results") == ("/tmp/results", None)


def _tune(workdir: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline", "tune", "exp.yaml", *args],
                          cwd=workdir, env=env, capture_output=True, text=True, timeout=300,
                          check=False)


@pytest.mark.slow
def test_sweep_on_s3_keeps_results_checkpoints_and_artifacts_there_and_resumes(
        workdir: Path, s3, moto_endpoint: str, ray_tmpdir: Path) -> None:  # noqa: F811
    s3.create_bucket(Bucket="sweeps")
    write_experiment(workdir, """
name: on-s3
trainable: tests.trainables:slow_steps
params: {x: 0.0, steps: 6, step_s: 1.0}
storage: {path: s3://sweeps/results}
search:
  searcher: grid
  num_samples: 1
  metric: score
  mode: max
  space:
    params.x: {grid: [1.0, 2.0]}
""")
    env = {**os.environ, **aws_env(moto_endpoint), "PYTHONPATH": str(ROOT),
           "RAY_TMPDIR": str(ray_tmpdir)}
    first = subprocess.Popen([sys.executable, "-m", "pipeline", "tune", "exp.yaml"], cwd=workdir,
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def keys() -> list[str]:
        return [o["Key"] for o in s3.list_objects_v2(Bucket="sweeps").get("Contents", [])]

    try:  # stopped once both trials have a checkpoint on S3
        wait_for(lambda: sum("/checkpoint_000000/step" in k for k in keys()) == 2,
                 timeout_s=180, every_s=0.2)
    finally:
        first.send_signal(signal.SIGTERM)
        _, err = first.communicate(timeout=120)
    assert first.returncode == 143, err[-3000:]
    assert not (workdir / "ray_results").exists()
    (sweep,) = {k.split("/")[1] for k in keys() if k.startswith("results/on-s3-")}
    assert any(k.startswith(f"results/{sweep}/experiment_state") for k in keys())

    resumed = _tune(workdir, env, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"Resuming sweep {sweep}" in resumed.stdout

    client = MlflowClient(local_store())
    experiment = client.get_experiment_by_name("on-s3")
    assert experiment.artifact_location == "s3://sweeps/results/mlartifacts/on-s3"
    kids = client.search_runs([experiment.experiment_id], "tags.`mlflow.parentRunId` != ''")
    assert len(kids) == 2
    for kid in kids:
        assert kid.info.status == "FINISHED"
        steps = [m.value for m in client.get_metric_history(kid.info.run_id, "step_seen")]
        assert steps == [1, 2, 3, 4, 5, 6]  # each once: resumed from its S3 checkpoint
    (parent,) = client.search_runs([experiment.experiment_id], f"tags.`pipeline.sweep` = '{sweep}'")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="sweeps", Prefix="results/mlartifacts/")
            ["Contents"]]
    artifacts = f"results/mlartifacts/on-s3/{parent.info.run_id}/artifacts/"
    assert f"{artifacts}best_config.yaml" in keys and f"{artifacts}exp.yaml" in keys
    assert {a.path for a in client.list_artifacts(parent.info.run_id)} >= {
        "best_config.yaml", "results.csv", "best_checkpoint"}
