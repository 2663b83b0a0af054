"""Trainables for the orchestration benchmark: known work, so overhead is what remains."""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

from ray import tune

from pipeline.config import Experiment


def sleep_epochs(config: dict) -> None:
    """`epochs` reports, each after `epoch_s` seconds of pretend training."""
    for epoch in range(config["params"]["epochs"]):
        time.sleep(config["params"]["epoch_s"])
        tune.report({"loss": config["params"]["x"] / (epoch + 1)})


def sleep_checkpoints(config: dict) -> None:
    """sleep_epochs with a checkpoint at every report, as the built-in trial has, carrying
    `checkpoint_mb` of payload (0: a tiny one) as a model's weights would; it goes on from
    its checkpoint (or, under PBT, a cloned one)."""
    params, checkpoint, done = config["params"], tune.get_checkpoint(), 0
    if checkpoint:
        with checkpoint.as_directory() as folder:
            done = int((Path(folder) / "epoch").read_text())
    payload = bytes(int(params.get("checkpoint_mb", 0) * 2**20))
    for epoch in range(done, params["epochs"]):
        time.sleep(params["epoch_s"])
        with tempfile.TemporaryDirectory() as folder:
            (Path(folder) / "epoch").write_text(str(epoch + 1))
            (Path(folder) / "weights").write_bytes(payload)
            tune.report({"loss": params["x"] / (epoch + 1)},
                        checkpoint=tune.Checkpoint.from_directory(folder))


def sleep_sweep(name: str, folder: Path, trials: int, epochs: int, epoch_s: float,
                slots: int, trainable: str = "sleep_epochs") -> Experiment:
    """A random search of `trials` sleep_epochs (or `trainable`) trials, `slots` at a time,
    MLflow and Ray's results in `folder`."""
    return Experiment.model_validate({
        "name": name, "trainable": f"bench.trainables:{trainable}",
        "params": {"x": 1.0, "epochs": epochs, "epoch_s": epoch_s},
        "search": {"searcher": "random", "metric": "loss", "mode": "min",
                   "num_samples": trials, "max_concurrent": slots,
                   "space": {"params.x": {"uniform": [0.0, 1.0]}}},
        "tracking": {"uri": f"sqlite:///{folder}/mlflow.db"},
        "storage": {"path": str(folder / "ray_results")}})
