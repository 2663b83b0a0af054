"""Trainables for the orchestration benchmark: known work, so overhead is what remains."""
from __future__ import annotations

import time

from ray import tune


def sleep_epochs(config: dict) -> None:
    """`epochs` reports, each after `epoch_s` seconds of pretend training."""
    for epoch in range(config["params"]["epochs"]):
        time.sleep(config["params"]["epoch_s"])
        tune.report({"loss": config["params"]["x"] / (epoch + 1)})
