"""Sweeps on Ray clusters: placement over several nodes, an autoscaler that grows GPU workers
from zero and removes them when idle, and requests no node could ever satisfy.

Every cluster here is real Ray on this machine, started by the test in its own processes (see
services.py); fake GPUs are declared resources, so trials train on the CPU.
"""
from __future__ import annotations

import functools
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient
from ray.autoscaler._private.node_provider_availability_tracker import (
    NodeAvailabilityRecord,
    NodeAvailabilitySummary,
    UnavailableNodeInformation,
)
from ray.autoscaler._private.resource_demand_scheduler import get_nodes_for
from ray.autoscaler.v2.sdk import get_cluster_status
from ray.exceptions import RpcError

from pipeline import study
from pipeline.config import ConfigError, load
from pipeline.context import resolve
from pipeline.execution import cluster, node_scorer

from ..conftest import ROOT, local_store, write_experiment
from ..services import VENV_BIN, free_port, process_group, ray_tmpdir, wait_until  # noqa: F401

SWEEP = """
name: {name}
data: {{limit: 300, batch_size: 32}}
model: {{hidden: 16}}
train: {{epochs: 2}}
resources: {{cpu: {cpu}, gpu: {gpu}}}
search:
  searcher: grid
  num_samples: 1
  max_concurrent: 4
  space:
    train.lr: {{grid: {lrs}}}
"""


def children(client: MlflowClient, name: str) -> list:
    experiment = client.get_experiment_by_name(name)
    return client.search_runs([experiment.experiment_id], "tags.`mlflow.parentRunId` != ''")


def most_at_once(runs: list) -> int:
    """The most runs that were running at the same moment."""
    events = sorted([(r.info.start_time, 1) for r in runs] + [(r.info.end_time, -1) for r in runs])
    running = most = 0
    for _, change in events:  # at equal times an end (-1) sorts before a start
        running += change
        most = max(most, running)
    return most


def tune_cli(workdir: Path, env: dict[str, str], *args: str,
             timeout_s: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline", "tune", "exp.yaml", *args],
                          cwd=workdir, env=env, capture_output=True, text=True, timeout=timeout_s,
                          check=False)


@pytest.mark.parametrize("address", [None, "auto", "127.0.0.1:6379", "localhost:6379",
                                     "ray://127.0.0.1:10001", f"{socket.gethostname()}:6379"])
def test_a_cluster_on_this_machine_is_not_remote(address: str | None) -> None:
    assert not cluster.is_remote(address)


@pytest.mark.parametrize("address", ["10.255.255.1:6379", "ray://10.255.255.1:10001"])
def test_a_cluster_elsewhere_is_remote(address: str) -> None:
    assert cluster.is_remote(address)


def test_a_remote_cluster_needs_a_tracking_server(workdir: Path) -> None:
    write_experiment(workdir, SWEEP.format(name="far", cpu=1, gpu=0, lrs=[0.1]))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = tune_cli(workdir, env, "--set", "cluster.address=10.255.255.1:6379", timeout_s=120)
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("error: tracking.uri: sqlite:///") and "10.255.255.1:6379 is remote; " \
        "use an MLflow tracking server (http://...)" in line
    assert sorted(p.name for p in workdir.iterdir()) == ["exp.yaml"]
    exp = load(workdir / "exp.yaml", ["cluster.address=10.255.255.1:6379"])
    cluster.check_tracking(resolve(exp).ray_address, "http://127.0.0.1:5000")  # a server is fine


def test_a_gpu_request_no_node_can_satisfy_fails_fast(workdir: Path, ray_local) -> None:
    exp = load(write_experiment(workdir, SWEEP.format(name="greedy", cpu=1, gpu=4, lrs=[0.1])))
    started = time.monotonic()
    with pytest.raises(ConfigError, match=r"^resources: no node can run a trial needing cpu=1, "
                                          r"gpu=4 \(largest node: cpu=2, gpu=0; node types the "
                                          r"autoscaler can add: none\)"):
        study.run(exp)
    assert time.monotonic() - started < 60
    # the store's schema was being built meanwhile: refused, nothing of it is left
    assert not list(workdir.glob("mlflow.db*"))


@pytest.mark.slow
def test_fractional_gpu_trials_run_concurrently_on_both_nodes(
        workdir: Path, ray_tmpdir: Path) -> None:  # noqa: F811
    write_experiment(workdir, SWEEP.format(name="two-nodes", cpu=0.5, gpu=0.5,
                                           lrs=[0.01, 0.03, 0.1, 0.3]))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_TMPDIR": str(ray_tmpdir)}
    done = subprocess.run([sys.executable, "-m", "tests.two_node_cluster", "tune", "exp.yaml"],
                          cwd=workdir, env=env, capture_output=True, text=True, timeout=300,
                          start_new_session=True, check=False)
    assert done.returncode == 0, done.stderr[-3000:]

    client = MlflowClient(local_store())
    kids = children(client, "two-nodes")
    assert len(kids) == 4
    tags = [kid.data.tags for kid in kids]
    assert len({t["node_id"] for t in tags}) == 2  # both GPU nodes, never the GPU-less head
    assert len({t["node_ip"] for t in tags}) == 1  # one machine
    assert {t["gpu_ids"] for t in tags} == {"0"} and {t["device"] for t in tags} == {"cpu"}
    assert most_at_once(kids) >= 3  # more trials at once than GPUs: they shared them

    worker_env = json.loads(done.stdout.strip().splitlines()[-1])
    assert worker_env == {"MLFLOW_TRACKING_URI": local_store(),
                          "MLFLOW_EXPERIMENT_NAME": "two-nodes",
                          "unraisablehook": "pipeline.execution.worker_setup"}


CUSTOM_SWEEP = """
name: {name}
trainable: tests.trainables:steps_without_checkpoints
params: {{x: 0.5, steps: 2, step_s: 1.0}}
resources: {{cpu: 0.5, gpu: 0.5}}
search:
  searcher: grid
  metric: score
  mode: max
  num_samples: 1
  max_concurrent: 4
  space:
    params.x: {{grid: [0.1, 0.2, 0.3, 0.4]}}
"""


@pytest.mark.slow
def test_a_custom_trainables_runs_get_placement_tags(workdir: Path,
                                                     ray_tmpdir: Path) -> None:  # noqa: F811
    """Its function reports only `score` and `step_seen`; the node and GPU tags come from
    the pipeline, as they do for the built-in trial."""
    write_experiment(workdir, CUSTOM_SWEEP.format(name="placed"))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_TMPDIR": str(ray_tmpdir)}
    done = subprocess.run([sys.executable, "-m", "tests.two_node_cluster", "tune", "exp.yaml"],
                          cwd=workdir, env=env, capture_output=True, text=True, timeout=300,
                          start_new_session=True, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    kids = children(MlflowClient(local_store()), "placed")
    assert len(kids) == 4
    tags = [kid.data.tags for kid in kids]
    assert len({t["node_id"] for t in tags}) == 2  # both GPU nodes
    assert all(t["node_ip"] for t in tags)
    assert {t["gpu_ids"] for t in tags} == {"0"} and {t["device"] for t in tags} == {"cpu"}
    assert all("node_id" not in kid.data.metrics for kid in kids)


FAKE_GPU_CLUSTER = {
    "cluster_name": "fake-gpus",
    "max_workers": 2,
    "idle_timeout_minutes": 0.1,
    "upscaling_speed": 1.0,
    "provider": {"type": "fake_multinode", "use_node_id_as_ip": True, "launch_multiple": True,
                 "disable_node_updaters": True, "disable_launch_config_check": True},
    "available_node_types": {
        "ray.head.default": {"resources": {"CPU": 1}, "node_config": {}, "max_workers": 0},
        # twins: Ray's default scorer would take gpu_standard (names break its ties)
        "gpu_spot": {"resources": {"CPU": 1, "GPU": 1}, "min_workers": 0, "max_workers": 2,
                     "node_config": {"InstanceMarketOptions": {"MarketType": "spot"}}},
        "gpu_standard": {"resources": {"CPU": 1, "GPU": 1}, "min_workers": 0,
                         "max_workers": 2, "node_config": {}},
    },
    "head_node_type": "ray.head.default",
    "auth": {"ssh_user": "ray"},
    **{key: {} for key in ("file_mounts",)},
    **{key: [] for key in ("cluster_synced_files", "rsync_exclude", "rsync_filter",
                           "initialization_commands", "setup_commands", "head_setup_commands",
                           "worker_setup_commands", "head_start_ray_commands",
                           "worker_start_ray_commands")},
    "file_mounts_sync_continuously": False,
}


# The head listens on 127.0.0.1 only. Without this, whether Ray wants a token would depend on
# test order: ray.init() in this process exports RAY_AUTH_MODE=token to later subprocesses.
LOOPBACK_ONLY_AUTH = {"RAY_AUTH_MODE": "disabled"}


def node_types(gcs_address: str) -> list[str]:
    status = get_cluster_status(gcs_address)
    return sorted(n.ray_node_type_name for n in status.active_nodes + status.idle_nodes)


@pytest.fixture(scope="module")
def autoscaling_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A head whose autoscaler adds fake GPU nodes, set up as `ray up` leaves a head: its config
    in ~/ray_bootstrap_config.yaml (HOME is a temp dir) and the spot-first scorer loaded."""
    home = tmp_path_factory.mktemp("head-home")
    temp_dir = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # short: Ray's sockets live there
    port = free_port()
    config = {**FAKE_GPU_CLUSTER, "provider": {**FAKE_GPU_CLUSTER["provider"],
                                               "gcs_address": f"127.0.0.1:{port}"}}
    (home / "ray_bootstrap_config.yaml").write_text(yaml.safe_dump(config))
    env = {**os.environ, "HOME": str(home), "RAY_TMPDIR": temp_dir, "RAY_FAKE_CLUSTER": "1",
           "PYTHONPATH": str(ROOT), **LOOPBACK_ONLY_AUTH,
           "RAY_AUTOSCALER_UTILIZATION_SCORER": "pipeline.execution.node_scorer.prefer_spot"}
    command = [str(VENV_BIN / "ray"), "start", "--head", "--block", f"--port={port}",
               "--node-ip-address=127.0.0.1", f"--temp-dir={temp_dir}", "--num-cpus=1",
               "--num-gpus=0", "--include-dashboard=false", f"--dashboard-port={free_port()}",
               "--autoscaling-config=~/ray_bootstrap_config.yaml"]
    try:
        with process_group(command, env, home / "head.log"):
            address = f"127.0.0.1:{port}"
            wait_until(lambda: _answers(address), 60, "the Ray head")
            yield {"address": address, "home": str(home), "temp_dir": temp_dir}
    finally:
        shutil.rmtree(temp_dir, ignore_errors=True)


def _answers(gcs_address: str) -> bool:
    try:
        return bool(node_types(gcs_address))
    except RpcError:  # not up yet
        return False


def _driver_env(autoscaling_cluster: dict[str, str]) -> dict[str, str]:
    """A driver on the head: same HOME (so the bootstrap config is found), RAY_ADDRESS set."""
    return {**os.environ, "PYTHONPATH": str(ROOT), "HOME": autoscaling_cluster["home"],
            "RAY_ADDRESS": autoscaling_cluster["address"],
            "RAY_TMPDIR": autoscaling_cluster["temp_dir"], **LOOPBACK_ONLY_AUTH}


@pytest.mark.slow
def test_autoscaler_node_types_that_cannot_fit_are_refused(workdir: Path,
                                                           autoscaling_cluster) -> None:
    write_experiment(workdir, SWEEP.format(name="too-big", cpu=1, gpu=4, lrs=[0.1]))
    done = tune_cli(workdir, _driver_env(autoscaling_cluster), timeout_s=120)
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.strip().splitlines()[-1] == (
        "error: resources: no node can run a trial needing cpu=1, gpu=4 (largest node: cpu=1, "
        "gpu=0; node types the autoscaler can add: gpu_spot (cpu=1, gpu=1), gpu_standard "
        "(cpu=1, gpu=1))")


@pytest.mark.slow
def test_autoscaler_adds_gpu_workers_for_a_sweep_and_removes_them_when_idle(
        workdir: Path, autoscaling_cluster) -> None:
    address = autoscaling_cluster["address"]
    wait_until(lambda: len(node_types(address)) == 1, 60, "a head without workers")
    write_experiment(workdir, SWEEP.format(name="grows", cpu=1, gpu=1, lrs=[0.03, 0.1]))
    seen: set[str] = set()
    with subprocess.Popen([sys.executable, "-m", "pipeline", "tune", "exp.yaml"], cwd=workdir,
                          env=_driver_env(autoscaling_cluster), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True) as sweep:
        while sweep.poll() is None:
            seen.update(node_types(address))
            time.sleep(1.0)
        output = sweep.stdout.read()
    assert sweep.returncode == 0, output[-3000:]
    assert {"gpu_spot"} <= seen and "gpu_standard" not in seen  # spot first, by prefer_spot

    kids = children(MlflowClient(local_store()), "grows")
    assert len(kids) == 2 and all(k.info.status == "FINISHED" for k in kids)
    assert all(k.data.tags["node_id"] != "f" * 51 + "00000" for k in kids)  # not the head
    assert {k.data.tags["gpu_ids"] for k in kids} == {"0"}
    started = time.monotonic()
    wait_until(lambda: len(node_types(address)) == 1, 90, "scale-down to the head alone",
               poll_s=2)
    print(f"idle workers removed {time.monotonic() - started:.0f} s after the sweep")


def _availability(**available: bool) -> NodeAvailabilitySummary:
    return NodeAvailabilitySummary({
        name: NodeAvailabilityRecord(name, ok, time.time(), None if ok else
                                     UnavailableNodeInformation("InsufficientInstanceCapacity",
                                                                "no spot capacity"))
        for name, ok in available.items()})


def test_prefer_spot_falls_back_to_on_demand_when_a_spot_launch_failed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "ray_bootstrap_config.yaml").write_text(
        (ROOT / "cluster" / "aws.yaml").read_text())
    node_scorer._cluster_spot_types.cache_clear()
    aws = yaml.safe_load((ROOT / "cluster" / "aws.yaml").read_text())
    types, demand = aws["available_node_types"], [{"CPU": 1, "GPU": 1}]

    def pick(summary: NodeAvailabilitySummary) -> dict[str, int]:
        scorer = functools.partial(node_scorer.prefer_spot, node_availability_summary=summary)
        chosen, _ = get_nodes_for(types, {}, "head", 1, demand, utilization_scorer=scorer)
        return dict(chosen)

    try:
        assert pick(_availability()) == {"gpu1_spot": 1}
        assert pick(_availability(gpu1_spot=False)) == {"gpu1_on_demand": 1}
        assert pick(_availability(gpu1_spot=True)) == {"gpu1_spot": 1}
        assert node_scorer.spot_types(aws) == {"gpu1_spot", "gpu4_spot"}
    finally:
        node_scorer._cluster_spot_types.cache_clear()
