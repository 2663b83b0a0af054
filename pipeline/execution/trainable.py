"""The built-in trial on Ray: one trial = `training.fit` with a report and a checkpoint per
epoch, and the sweep's data shared with the trials (once per worker, no per-trial copy).
Every trial's node and GPU tags: `execution.placement`."""
from __future__ import annotations

import json
import tempfile
import warnings
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import ray
import torch
from ray import tune

from pipeline.config import Experiment, mutable_paths
from pipeline.training.data import Tensors
from pipeline.training.loop import fit

STATE_FILE = "state.pt"


def load_state(checkpoint: tune.Checkpoint) -> dict[str, Any] | None:
    """A checkpoint's training state; None when its folder is gone (a sweep stopped between
    Tune deleting an older checkpoint and saving the state that forgets it)."""
    try:
        with checkpoint.as_directory() as folder:
            return torch.load(Path(folder) / STATE_FILE, weights_only=False)
    except (FileNotFoundError, OSError) as error:
        print(f"checkpoint {checkpoint.path} unreadable ({type(error).__name__}); the trial "
              "starts from its first epoch", flush=True)
        return None


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


def train_trial(config: dict[str, Any], exp: Experiment,
                data: Tensors | tuple[ray.ObjectRef]) -> None:
    """Train the trial's resolved experiment; resume from Tune's checkpoint when restored.
    `data`: the Tensors, or `share(...)` of them."""
    data = shared(data[0]) if isinstance(data, tuple) else data
    trial_exp = exp.with_trial_config(config)
    torch.set_num_threads(max(1, int(trial_exp.resources.cpu)))
    trial_id = tune.get_context().get_trial_id()
    checkpoint = tune.get_checkpoint()
    state = load_state(checkpoint) if checkpoint else None
    first = restored(state, trial_id)
    done = state["epoch"] if state else 0
    for epoch in fit(trial_exp, data, state=state):
        done += 1
        with tempfile.TemporaryDirectory() as folder:
            torch.save({**epoch.state(), "trial_id": trial_id}, Path(folder) / STATE_FILE)
            tune.report({**epoch.metrics, **first, "epoch": done,
                         **schedule_values(exp, epoch.history)},
                        checkpoint=tune.Checkpoint.from_directory(folder))
        first = {}
