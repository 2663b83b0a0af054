"""The Ray adapter: one trial = `training.fit` with a report and a checkpoint per epoch; and
what the driver reads back of a trial."""
from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path
from typing import Any

import ray
import torch
from ray import tune

from pipeline.config import Experiment, mutable_paths
from pipeline.training.data import Tensors
from pipeline.training.loop import fit, pick_device

STATE_FILE = "state.pt"


def placement() -> dict[str, str]:
    """Where this trial runs; reported with every result so the tracker can tag the run."""
    return {"node_id": ray.get_runtime_context().get_node_id(),
            "gpu_ids": ",".join(str(g) for g in ray.get_gpu_ids()),
            "device": str(pick_device())}


def load_state(checkpoint: tune.Checkpoint) -> dict[str, Any]:
    with checkpoint.as_directory() as folder:
        return torch.load(Path(folder) / STATE_FILE, weights_only=False)


def restored(state: dict[str, Any] | None, trial_id: str) -> dict[str, Any]:
    """What the first result after a restore says about it: the epoch it continues from, and,
    when the checkpoint is another trial's (a PBT exploit), which trial was cloned."""
    if state is None:
        return {}
    info: dict[str, Any] = {"restored_from_epoch": state["epoch"]}
    if state.get("trial_id", trial_id) != trial_id:
        info.update(cloned_from=state["trial_id"], cloned_at_epoch=state["epoch"])
    return info


def schedule_values(exp: Experiment, history: list) -> dict[str, Any]:
    """With pbt: the current value of each path it perturbs (hp.<path>, a metric per epoch,
    so MLflow charts the schedule) and the whole schedule so far (hp_schedule, JSON)."""
    if exp.search.scheduler != "pbt":
        return {}
    current = history[-1][1]
    return {**{f"hp.{path}": current[path] for path in mutable_paths(exp) if path in current},
            "hp_schedule": json.dumps(history)}


def train_trial(config: dict[str, Any], exp: Experiment, data: Tensors) -> None:
    """Train the trial's resolved experiment; resume from Tune's checkpoint when restored."""
    trial_exp = exp.with_trial_config(config)
    # one INFO line per checkpoint per epoch would drown the progress output
    logging.getLogger("ray.train._internal.storage").setLevel(logging.WARNING)
    torch.set_num_threads(max(1, int(trial_exp.resources.cpu)))
    trial_id = tune.get_context().get_trial_id()
    checkpoint = tune.get_checkpoint()
    state = load_state(checkpoint) if checkpoint else None
    where, first = placement(), restored(state, trial_id)
    done = state["epoch"] if state else 0
    for epoch in fit(trial_exp, data, state=state):
        done += 1
        with tempfile.TemporaryDirectory() as folder:
            torch.save({**epoch.state(), "trial_id": trial_id}, Path(folder) / STATE_FILE)
            tune.report({**epoch.metrics, **where, **first, "epoch": done,
                         **schedule_values(exp, epoch.history)},
                        checkpoint=tune.Checkpoint.from_directory(folder))
        first = {}


def last_error_line(trial: Any) -> str:
    """The last line of a failed trial's traceback: the exception and its message."""
    try:
        lines = [line for line in Path(trial.error_file).read_text().splitlines() if line.strip()]
    except (OSError, TypeError):
        return "trial failed"
    return lines[-1] if lines else "trial failed"
