"""The Ray adapter: one trial = `training.fit` with a report and a checkpoint per epoch; and
what the driver reads back of a trial."""
from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import ray
import torch
from ray import tune

from pipeline.config import Experiment
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


def train_trial(config: dict[str, Any], exp: Experiment, data: Tensors) -> None:
    """Train the trial's resolved experiment; resume from Tune's checkpoint when restored."""
    trial_exp = exp.with_trial_config(config)
    # one INFO line per checkpoint per epoch would drown the progress output
    logging.getLogger("ray.train._internal.storage").setLevel(logging.WARNING)
    torch.set_num_threads(max(1, int(trial_exp.resources.cpu)))
    checkpoint = tune.get_checkpoint()
    state = load_state(checkpoint) if checkpoint else None
    where = placement()
    for epoch in fit(trial_exp, data, state=state):
        with tempfile.TemporaryDirectory() as folder:
            torch.save(epoch.state(), Path(folder) / STATE_FILE)
            tune.report({**epoch.metrics, **where},
                        checkpoint=tune.Checkpoint.from_directory(folder))


def last_error_line(trial: Any) -> str:
    """The last line of a failed trial's traceback: the exception and its message."""
    try:
        lines = [line for line in Path(trial.error_file).read_text().splitlines() if line.strip()]
    except (OSError, TypeError):
        return "trial failed"
    return lines[-1] if lines else "trial failed"
