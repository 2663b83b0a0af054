"""Where a trial runs, added to every result any trainable reports (built-in or custom), so
the tracker can tag its run with the node and GPU.

Free of torch: a custom trainable's driver and workers never import it (1.6 s a process here).
"""
from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

import ray


def placement() -> dict[str, str]:
    """The trial's node, GPU ids and the device it trains on: the CPU without a GPU (Ray hides
    them all then); with one, what torch finds (a node can declare GPUs it cannot drive), and
    only such a trial pays torch's import here."""
    gpu_ids = ray.get_gpu_ids()
    device = "cpu"
    if gpu_ids:
        from pipeline.training.loop import pick_device

        device = str(pick_device())
    return {"node_id": ray.get_runtime_context().get_node_id(),
            "gpu_ids": ",".join(str(g) for g in gpu_ids), "device": device}


def with_placement(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The trainable `fn` with placement() added to every result it reports, so a custom
    trainable's child runs get the node and GPU tags too, without its code doing anything.
    Ray Tune offers no hook on a trial's reports; `tune.report` goes through the trial's
    session object, whose `report` is replaced for the duration of the trial."""
    @functools.wraps(fn)
    def placed(config: dict[str, Any], **parameters: Any) -> Any:
        from ray.train._internal.session import get_session

        # one INFO line per checkpoint would drown the progress output
        logging.getLogger("ray.train._internal.storage").setLevel(logging.WARNING)
        session, where = get_session(), placement()
        report = session.report

        def report_placed(metrics: dict[str, Any], **kwargs: Any) -> None:
            report({**where, **metrics}, **kwargs)

        session.report = report_placed
        try:
            return fn(config, **parameters)
        finally:
            del session.report  # the class's method again (the session outlives the trial)
    return placed
