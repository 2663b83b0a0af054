"""Every trial's reported results as tables: the sweep's summary reads them from here.

Ray Tune keeps each trial's results in files (result.json) that it copies to storage in the
background; a sweep stopped by a kill and resumed can lose those of trials that finished before
the kill. MLflow has them all (the journal saw to that), so a trial without Ray's files is read
back from its child run instead, and Ray's "Could not fetch metrics" warning is kept quiet.
"""
from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
from ray import tune

from pipeline.config import Search, get_path
from pipeline.results import tracking

EXTRA_METRICS = ("val_acc", "val_loss", "train_loss")
RAY_MISSING_FILE_LOGGERS = (
    "ray.tune.analysis.experiment_analysis",  # reading results back
    "ray.tune.logger.logger",  # copying them into place for a trial restored after a kill
)


def _from_mlflow(store: tracking.Store, run_id: str, last: dict[str, Any],
                 metrics: list[str]) -> pd.DataFrame:
    """A trial's results rebuilt from its child run's metric histories (step = epoch)."""
    rows: dict[int, dict[str, float]] = {}
    for key in metrics:
        for point in store.client.get_metric_history(run_id, key):
            row = rows.setdefault(point.step, {"training_iteration": point.step})
            row[key], row["timestamp"] = point.value, point.timestamp / 1000
    frame = pd.DataFrame(sorted(rows.values(), key=lambda r: r["training_iteration"]))
    if frame.empty:
        return frame
    # per-epoch run time is not in MLflow: count it back from the trial's last result
    end = frame["timestamp"].iloc[-1]
    frame["time_total_s"] = float(last.get("time_total_s") or 0.0) - (end - frame["timestamp"])
    return frame


def quiet_missing_files() -> None:
    """Keep Ray from warning about trial files this module reads back from MLflow (it warns
    when `Tuner.restore` and `Tuner.fit` read them, and when a trial killed before its
    progress.csv reached storage restores: "Remote file not found", found by the soak; so call
    this before either)."""
    for name in RAY_MISSING_FILE_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)


def trial_frames(results: tune.ResultGrid, store: tracking.Store, parent_run_id: str,
                 metric: str) -> dict[str, tuple[pd.DataFrame, dict[str, Any]]]:
    """Trial id -> (its results, one row per report; its config)."""
    run_ids: dict[str, str] | None = None
    frames = {}
    for result in results:
        trial_id = result.metrics.get("trial_id")
        if trial_id is None:
            continue  # never reported anything
        frame = result.metrics_dataframe
        if frame is None or frame.empty or metric not in frame:
            run_ids = run_ids if run_ids is not None else tracking.child_run_ids(store,
                                                                                parent_run_id)
            if trial_id not in run_ids:
                continue
            keys = [metric, *(m for m in EXTRA_METRICS if m in result.metrics and m != metric)]
            frame = _from_mlflow(store, run_ids[trial_id], result.metrics, keys)
        if metric in frame and frame[metric].notna().any():
            frames[trial_id] = (frame, result.config)
    return frames


def trials_table(frames: dict[str, tuple[pd.DataFrame, dict[str, Any]]],
                 search: Search) -> pd.DataFrame:
    """One row per trial at its best epoch: searched values and metrics, best trial first."""
    rows = []
    for trial_id, (frame, config) in frames.items():
        # NaN or inf is no score (a diverged trial's): `inf` under mode max was the best
        values = pd.to_numeric(frame[search.metric], errors="coerce")
        values = values.where(np.isfinite(values))
        scored = values.notna().any()
        best = frame.loc[(values.idxmin() if search.mode == "min" else values.idxmax())
                         if scored else frame.index[-1]]
        row: dict[str, Any] = {"trial_id": trial_id}
        row.update({path: get_path(config, path) for path in search.space})
        row[search.metric] = float(values[best.name]) if scored else float("nan")
        row["best_epoch"] = int(best["training_iteration"])
        row["time_total_s"] = float(frame["time_total_s"].iloc[-1])
        row.update({m: float(best[m]) for m in EXTRA_METRICS
                    if m in best and m != search.metric and pd.notna(best[m])})
        rows.append(row)
    if not rows:
        return pd.DataFrame()
    table = pd.DataFrame(rows)
    return table.sort_values(search.metric, ascending=search.mode == "min",
                             na_position="last").reset_index(drop=True)


def history(frames: dict[str, tuple[pd.DataFrame, dict[str, Any]]], metric: str) -> pd.DataFrame:
    """Every result every trial reported: trial_id, timestamp, time_total_s and the metric."""
    columns = ["trial_id", "timestamp", "time_total_s", metric]
    parts = [frame.assign(trial_id=trial_id)[columns] for trial_id, (frame, _) in frames.items()]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)
