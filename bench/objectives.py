"""Benchmark objectives with known minima, and the custom trainable that evaluates them.

Each objective reads its inputs from a trial config (`config["params"]["x0"]`, ...), as the
pipeline hands them to a custom trainable, so the same function serves `trial` (run through
`pipeline.study`) and the Ray-free ask/tell loop.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from ray import tune


@dataclass(frozen=True)
class Objective:
    name: str
    bounds: list[tuple[float, float]]
    minimum: float
    """Known global minimum; regret = best value found - minimum."""
    evaluations: int
    """Budget the goals are stated at (Branin@30, Hartmann6@60)."""
    fn: Callable[[np.ndarray], float]

    def space(self) -> dict[str, Any]:
        """Nested param space as the study builds it, with constants to carry through."""
        domains = {f"x{i}": tune.uniform(lo, hi) for i, (lo, hi) in enumerate(self.bounds)}
        return {"params": {**domains, "objective": self.name}, "seed": 0}

    def experiment_space(self) -> dict[str, Any]:
        """The same space as an experiment file's `search.space`."""
        return {f"params.x{i}": {"uniform": [lo, hi]} for i, (lo, hi) in enumerate(self.bounds)}

    def inputs(self, config: dict[str, Any]) -> np.ndarray:
        return np.array([config["params"][f"x{i}"] for i in range(len(self.bounds))])

    def __call__(self, config: dict[str, Any]) -> float:
        return float(self.fn(self.inputs(config)))


def branin(x: np.ndarray) -> float:
    a, b, c = 1.0, 5.1 / (4 * math.pi ** 2), 5 / math.pi
    r, s, t = 6.0, 10.0, 1 / (8 * math.pi)
    return a * (x[1] - b * x[0] ** 2 + c * x[0] - r) ** 2 + s * (1 - t) * math.cos(x[0]) + s


_H6_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])
_H6_A = np.array([[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14],
                  [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]])
_H6_P = 1e-4 * np.array([[1312, 1696, 5569, 124, 8283, 5886], [2329, 4135, 8307, 3736, 1004, 9991],
                         [2348, 1451, 3522, 2883, 3047, 6650], [4047, 8828, 8732, 5743, 1091, 381]])


def hartmann6(x: np.ndarray) -> float:
    return float(-_H6_ALPHA @ np.exp(-(_H6_A * (x - _H6_P) ** 2).sum(axis=1)))


BRANIN = Objective("Branin", [(-5.0, 10.0), (0.0, 15.0)], 0.397887357729738, 30, branin)
HARTMANN6 = Objective("Hartmann6", [(0.0, 1.0)] * 6, -3.322368011391339, 60, hartmann6)
OBJECTIVES = (BRANIN, HARTMANN6)
BY_NAME = {o.name: o for o in OBJECTIVES}


def trial(config: dict[str, Any]) -> None:
    """Custom trainable (`trainable: bench.objectives:trial`): evaluates `params.objective`
    after `params.sleep_s` seconds (so that concurrent trials overlap in time) and reports
    the value with the trial's start and end times."""
    started = time.time()
    time.sleep(config["params"].get("sleep_s", 0.0))
    value = BY_NAME[config["params"]["objective"]](config)
    tune.report({"value": value, "started": started, "ended": time.time()})
