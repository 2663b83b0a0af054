"""The Ray adapter: one trial = `training.fit` with a report and a checkpoint per epoch; the
sweep's data shared with the trials (once per worker, no per-trial copy); and what the driver
reads back of a trial."""
from __future__ import annotations

import logging
import tempfile
import warnings
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import numpy as np
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


def share(data: Tensors) -> tuple[ray.ObjectRef]:
    """Put the sweep's data in the object store once, its tensors as numpy arrays: Ray maps
    those into every worker of a node without a copy, where it would copy torch tensors on
    every `ray.get` (RAY_ENABLE_ZERO_COPY_TORCH_TENSORS is off by default). Wrapped in a tuple
    so that `tune.with_parameters` passes the reference, not the data."""
    arrays = {f.name: getattr(data, f.name).numpy() for f in fields(data)
              if isinstance(getattr(data, f.name), torch.Tensor)}
    return (ray.put(replace(data, **arrays)),)


_WORKER_DATA: dict[str, Tensors] = {}


def shared(ref: ray.ObjectRef) -> Tensors:
    """The sweep's data in this worker process: fetched on its first trial, found again by
    every later trial of a reused actor (no per-trial copy, nothing left over per trial), as
    read-only views of the object store's memory."""
    key = ref.hex()
    if key not in _WORKER_DATA:
        _WORKER_DATA.clear()  # another sweep's data
        data = ray.get(ref)
        with warnings.catch_warnings():  # read-only: the loop never writes into its data
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            _WORKER_DATA[key] = replace(data, **{
                f.name: torch.from_numpy(getattr(data, f.name)) for f in fields(data)
                if isinstance(getattr(data, f.name), np.ndarray)})
    return _WORKER_DATA[key]


def train_trial(config: dict[str, Any], exp: Experiment,
                data: Tensors | tuple[ray.ObjectRef]) -> None:
    """Train the trial's resolved experiment; resume from Tune's checkpoint when restored.
    `data`: the Tensors, or `share(...)` of them."""
    data = shared(data[0]) if isinstance(data, tuple) else data
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
