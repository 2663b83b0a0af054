"""The LR range test before a sweep: run on a worker with a trial's resources, logged on the
sweep's parent run, and what it suggests applied to the experiment (Leslie Smith's test, as
fastai's `lr_find`)."""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import ray

from pipeline.config import LR_RANGE, Experiment
from pipeline.results import report, tracking
from pipeline.training import data as datasets
from pipeline.training import lr_range, schedules


def run(exp: Experiment, data: datasets.Tensors, store: tracking.Store,
        parent_run_id: str) -> tuple[Experiment, tuple[float, float] | None]:
    """Run the LR range test on a worker with a trial's resources; apply what it suggests."""
    task = ray.remote(num_cpus=exp.resources.cpu, num_gpus=exp.resources.gpu)(
        lr_range.range_test)
    curve = ray.get(task.remote(exp, data))
    suggestion = lr_range.suggest(curve)
    with tempfile.TemporaryDirectory() as folder:
        report.log_lr_range(store, parent_run_id, curve, suggestion, Path(folder))
    if not suggestion.reliable:
        print(f"LR range test: {suggestion.reason}")
    if exp.search.space.get("train.lr") == LR_RANGE:
        bounds = lr_range.search_bounds(suggestion, curve)
        tracking.log_metrics(store, parent_run_id, {"lr_range_low": bounds[0],
                                                    "lr_range_high": bounds[1]})
        print(f"LR range test: searching train.lr in [{bounds[0]:.3g}, {bounds[1]:.3g}]")
        return exp, bounds
    if exp.train.schedule in schedules.CYCLED and "train.lr" not in exp.search.space:
        return _cycle(exp, suggestion, curve, store, parent_run_id), None
    if "train.lr" in exp.search.space:
        return exp, None
    if suggestion.lr is None or not suggestion.reliable:
        # as a cycled schedule does: a curve the test itself does not trust (flat, or too
        # short) suggested lr 1 for a CNN configured at 0.0007, and every trial trained at it
        print(f"LR range test: keeping train.lr {exp.train.lr:.3g}")
        return exp, None
    print(f"LR range test: train.lr set to {suggestion.lr:.3g}")
    return exp.with_values({"train.lr": suggestion.lr}), None


def _cycle(exp: Experiment, suggestion: Any, curve: Any, store: tracking.Store,
           parent_run_id: str) -> Experiment:
    """A cycled schedule (cyclic, sgdr, onecycle) gets both its ends from the range test."""
    bounds = schedules.range_test_bounds(suggestion, curve)
    if bounds is None:
        print(f"LR range test: keeping train.lr and train.min_lr ({suggestion.reason})")
        return exp
    tracking.log_metrics(store, parent_run_id, {"lr_cycle_min": bounds[0],
                                                "lr_cycle_max": bounds[1]})
    store.client.set_tag(parent_run_id, "lr_cycle_rule", schedules.CYCLE_RULE)
    print(f"LR range test: {exp.train.schedule} between {bounds[0]:.3g} and {bounds[1]:.3g}")
    return exp.with_values({"train.min_lr": bounds[0], "train.lr": bounds[1]})
