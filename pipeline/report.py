"""A finished sweep -> what people read: the best config, the results table, plots, in MLflow."""
from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from ray import tune

from pipeline import plots, tracking
from pipeline.config import Experiment


@dataclass(frozen=True)
class Outcome:
    """What the CLI prints after a sweep."""

    sweep_name: str
    parent_run_id: str
    store: tracking.Store
    metric: str
    best_value: float | None
    best_config: dict[str, Any] | None
    searched: dict[str, Any]
    table: pd.DataFrame
    failed: int
    fit_s: float = 0.0
    """Wall seconds of Tuner.fit (the sweep itself, without Ray start-up and summary)."""


def best_experiment(exp: Experiment, trial_config: dict[str, Any]) -> Experiment:
    """The winning trial as an experiment file that reruns exactly that one trial."""
    best = exp.with_trial_config(trial_config)
    return best.with_values({"search.space": {}, "search.searcher": "random",
                             "search.num_samples": 1, "search.points_to_evaluate": [],
                             "lr_range_test.enabled": False})


def trials_table(results: tune.ResultGrid, exp: Experiment) -> pd.DataFrame:
    """One row per trial at its best epoch: searched values, metrics, status, start order."""
    s = exp.search
    frame = results.get_dataframe(filter_metric=s.metric, filter_mode=s.mode)
    if frame.empty:
        return frame
    columns = {f"config/{path.replace('.', '/')}": path for path in s.space}
    keep = ["trial_id", *columns, s.metric, "training_iteration", "time_total_s"]
    keep += [c for c in ("val_acc", "val_loss", "train_loss") if c in frame and c not in keep]
    table = frame[[c for c in keep if c in frame]].rename(columns=columns)
    table = table.rename(columns={"training_iteration": "best_epoch"})
    return table.sort_values(s.metric, ascending=s.mode == "min").reset_index(drop=True)


def summarise(exp: Experiment, sweep_name: str, parent_run_id: str, store: tracking.Store,
              results: tune.ResultGrid, fit_s: float) -> Outcome:
    """Log the sweep's summary on the parent run and return it for printing."""
    s = exp.search
    failed = sum(1 for r in results if r.error is not None)
    table = trials_table(results, exp)
    outcome = Outcome(sweep_name, parent_run_id, store, s.metric, None, None, {}, table, failed,
                      fit_s)
    if table.empty:
        return outcome
    best = results.get_best_result(s.metric, s.mode, scope="all")
    best_row = table.iloc[0]
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder)
        table.to_csv(out / "results.csv", index=False)
        best_exp = best_experiment(exp, best.config)
        (out / "best_config.yaml").write_text(
            yaml.safe_dump(tracking.redact(best_exp.model_dump(mode="json")), sort_keys=False))
        tracking.log_files(store, parent_run_id, [out / "results.csv", out / "best_config.yaml"])
        tracking.log_files(store, parent_run_id, plots.sweep_plots(table, exp, out), "plots")
        checkpoint = best.get_best_checkpoint(s.metric, s.mode) if best.checkpoint else None
        if checkpoint is not None:
            with checkpoint.as_directory() as ckpt:
                tracking.log_files(store, parent_run_id, sorted(Path(ckpt).iterdir()),
                                   "best_checkpoint")
    tracking.log_metrics(store, parent_run_id, {f"best_{s.metric}": float(best_row[s.metric]),
                                                "trials_failed": failed,
                                                "trials_total": len(results),
                                                "sweep_wall_s": fit_s})
    store.client.set_tag(parent_run_id, "best_trial_id", str(best_row["trial_id"]))
    searched = {path: best_row[path] for path in s.space if path in best_row}
    return Outcome(sweep_name, parent_run_id, store, s.metric, float(best_row[s.metric]),
                   best_exp.trial_config(), searched, table, failed, fit_s)


def log_lr_range(store: tracking.Store, run_id: str, curve: Any, suggestion: Any,
                 folder: Path) -> list[Path]:
    """Write the LR range test's curve (CSV) and plot (PNG) to `folder` and log them, with
    each rule's suggestion as metrics, on the given run."""
    from pipeline import lr_range

    paths = [folder / "lr_range_test.csv", folder / "lr_range_test.png"]
    curve.to_csv(paths[0])
    lr_range.plot(curve, suggestion, paths[1])
    tracking.log_files(store, run_id, paths)
    values = {f"lr_{name}": lr for name, lr in suggestion.rules.items() if lr is not None}
    if suggestion.lr is not None:
        values["lr_suggested"] = suggestion.lr
    values["lr_agreement_decades"] = suggestion.agreement_decades
    tracking.log_metrics(store, run_id, values)
    store.client.set_tag(run_id, "lr_range_reliable", str(suggestion.reliable))
    store.client.set_tag(run_id, "lr_range_note", suggestion.reason)
    return paths
