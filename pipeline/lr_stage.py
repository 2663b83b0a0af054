"""The LR range test before a sweep: run on a worker with a trial's resources, logged on the
sweep's parent run, and what it suggests applied to the experiment (Leslie Smith's test, as
fastai's `lr_find`); and `lr-find`, the test alone."""
from __future__ import annotations

import signal
import tempfile
from pathlib import Path
from typing import Any

import ray

from pipeline import context, study
from pipeline.config import LR_RANGE, ConfigError, Experiment
from pipeline.execution import stopping
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


def find_lr(exp: Experiment, out_dir: Path = Path("lr_find")) -> Any:
    """`lr-find`: the range test alone, in-process, as its own MLflow run; files in out_dir."""
    if exp.trainable is not None:
        raise ConfigError("trainable: lr-find needs the built-in trainable")
    data = study.load_checked(exp)
    ctx = context.resolve(exp)
    store = tracking.connect(ctx.tracking_uri, ctx.mlflow_experiment, ctx.storage_path)
    # a stop (Ctrl-C, SIGTERM, SIGHUP) or a failure closes the run: it was left RUNNING. Ours
    # from before the run exists (a stop as it appeared went to the default handler), and
    # one Python dropped in a finaliser is raised after the test (it ran on to its end)
    with stopping.signals_interrupt() as signals:
        run_id = store.client.create_run(store.experiment_id, run_name=f"lr-find-{exp.name}",
                                         tags={"pipeline.kind": "lr-find"}).info.run_id
        try:
            tracking.log_params(store.client, run_id, tracking.safe_params(
                exp.model_dump(mode="json", include={"data", "model", "train",
                                                     "lr_range_test"})))
            curve = lr_range.range_test(exp, data)
            suggestion = lr_range.suggest(curve)
            folder = out_dir / exp.name
            folder.mkdir(parents=True, exist_ok=True)
            paths = report.log_lr_range(store, run_id, curve, suggestion, folder)
            stopping.raise_if_stopped(signals)
        except KeyboardInterrupt as stop:
            tracking.close_sweep(store, run_id, "KILLED")
            raise stopping.Interrupted(f"lr-find stopped; its MLflow run {run_id} is KILLED",
                                       getattr(stop, "signum", signal.SIGINT)) from None
        except BaseException:
            tracking.close_sweep(store, run_id, "FAILED")
            raise
    tracking.close_sweep(store, run_id)
    for name, lr in suggestion.rules.items():
        print(f"  {name:<9} {lr:.3g}" if lr is not None else f"  {name:<9} none")
    low, high = lr_range.search_bounds(suggestion, curve)
    print(f"{curve.iterations} steps; rules agree within {suggestion.agreement_decades:.2f} "
          f"decades; {suggestion.reason}\nlr_range search bounds: [{low:.3g}, {high:.3g}]\n"
          f"plot: {paths[1]}  curve: {paths[0]}  MLflow run {run_id}")
    return suggestion
