"""Custom trainables the tests name by `module:function`, as a user would."""
from __future__ import annotations

from ray import tune


def quadratic(config: dict) -> None:
    """Reports `score` (higher is better) for a few steps; its optimum is x = 2."""
    x = config["params"]["x"]
    for step in range(config["params"].get("steps", 2)):
        tune.report({"score": -(x - 2.0) ** 2 + 0.01 * step, "x_seen": x})
