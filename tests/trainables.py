"""Custom trainables the tests name by `module:function`, as a user would."""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
from ray import tune

from pipeline.execution.placement import placement


def quadratic(config: dict) -> None:
    """Reports `score` (higher is better) for a few steps; its optimum is x = 2."""
    x = config["params"]["x"]
    for step in range(config["params"].get("steps", 2)):
        tune.report({"score": -(x - 2.0) ** 2 + 0.01 * step, "x_seen": x})


def fails_above(config: dict) -> None:
    """Raises once x > 0.5, like a bug that only some configurations hit."""
    if config["params"]["x"] > 0.5:
        raise ValueError(f"x={config['params']['x']:.2f} is out of range")
    tune.report({"score": config["params"]["x"]})


def fails_first_time(config: dict) -> None:
    """Fails on its first attempt only (a marker file remembers), as a flaky node would."""
    marker = Path(config["params"]["marker_dir"]) / f"{config['params']['x']:.6f}"
    if not marker.exists():
        marker.touch()
        raise RuntimeError("transient failure")
    tune.report({"score": config["params"]["x"]})


def one_fails_others_run(config: dict) -> None:
    """The trial of x == `fail_x` fails on its first attempt (`fails_first_time`); the others
    are `slow_steps`: a sweep with a failed trial and a running one."""
    if config["params"]["x"] == config["params"]["fail_x"]:
        fails_first_time(config)
    else:
        slow_steps(config)


def allocates(config: dict) -> None:
    """Asks for `alloc_gb` of memory: a real allocation that fails when it is absurd."""
    block = np.ones(int(config["params"]["alloc_gb"] * 2**30), dtype=np.uint8)
    tune.report({"score": float(block[:10].sum())})


def slow_steps(config: dict) -> None:
    """`steps` reports of `step_s` seconds each, checkpointing every step so it can resume."""
    start = 0
    checkpoint = tune.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as folder:
            start = int((Path(folder) / "step").read_text())
    for step in range(start, config["params"]["steps"]):
        time.sleep(config["params"]["step_s"])
        with tempfile.TemporaryDirectory() as folder:
            (Path(folder) / "step").write_text(str(step + 1))
            # `done_x`: the trial of that x gets its last report delivered as its end, as Ray
            # delivers one the function has already returned from
            last = step + 1 == config["params"]["steps"] and \
                config["params"]["x"] == config["params"].get("done_x")
            tune.report({"score": config["params"]["x"] + step, "step_seen": step + 1,
                         **placement(), **({"done": True} if last else {})},
                        checkpoint=tune.Checkpoint.from_directory(folder))


def crashes_after_first_checkpoint(config: dict) -> None:
    """slow_steps, except that its first attempt (a marker file remembers) dies right after
    the first checkpoint: only a resume from that checkpoint can finish it."""
    marker = Path(config["params"]["marker_dir"]) / f"{config['params']['x']:.6f}"
    if not marker.exists():
        marker.touch()
        slow_steps({**config, "params": {**config["params"], "steps": 1}})
        raise RuntimeError("crashed after the first checkpoint")
    slow_steps(config)


def steps_without_checkpoints(config: dict) -> None:
    """`steps` reports of `step_s` seconds and no checkpoint: an interrupted trial can only
    start again. Marks each step it enters in `marker_dir` (x-step), so a test can stop the
    sweep mid-step."""
    params = config["params"]
    for step in range(params["steps"]):
        if "marker_dir" in params:
            (Path(params["marker_dir"]) / f"{params['x']:.6f}-{step + 1}").touch()
        time.sleep(params["step_s"])
        tune.report({"score": params["x"] + 0.01 * step, "step_seen": step + 1})


def learning_curve(config: dict) -> None:
    """`steps` reports of a falling `loss` (level + 1 / step), `step_s` seconds apart: a
    high `level` is a trial clearly worse than the others at every step."""
    params = config["params"]
    for step in range(1, params["steps"] + 1):
        time.sleep(params["step_s"])
        tune.report({"loss": params["level"] + 1 / step, "step_seen": step})
