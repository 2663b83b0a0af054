"""PBT's lineage made readable: a tag per exploit on the clone's child run, the schedule a
trial's weights were trained with (as train.hyperparameter_schedule for best_config.yaml),
and the population plot with the exploits marked.

All of it comes from what the trials reported (`cloned_from`, `cloned_at_epoch`, `hp.*`,
`hp_schedule`, see execution.trainable), so a resumed sweep's lineage is whole: the results
before the restart are in Ray's trial folders and in MLflow.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from mlflow.entities import RunTag

EXPLOIT_TAG = "pbt.exploit"
SCHEDULE_TAG = "pbt.schedule"  # the schedule the clone's weights were trained with so far


def exploit_report(result: dict[str, Any]) -> dict[str, Any]:
    """What exploit_tags reads of a result ({} for all but the first after an exploit), kept
    with the logger's queued records until the tags can be sent."""
    if result.get("cloned_from") is None:
        return {}
    return {key: value for key, value in result.items()
            if key in ("cloned_from", "cloned_at_epoch", "hp_schedule") or key.startswith("hp.")}


def exploit_tags(result: dict[str, Any], run_ids: dict[str, str],
                 run_tags: dict[str, str] | None = None) -> list[RunTag]:
    """For the first result after an exploit: which trial (and child run) was cloned, at which
    epoch, and the perturbed values this trial went on with. `run_tags`: the clone's run's
    tags so far. PBT can clone the same donor checkpoint twice (the donor has not saved a newer
    one yet): the second exploit gets `pbt.exploit.epoch_N.2` where it overwrote the first.
    A record already there (the same result sent again after a stop) is not sent again."""
    donor = result.get("cloned_from")
    if donor is None:
        return []
    epoch = int(result["cloned_at_epoch"])
    values = {key.removeprefix("hp."): value for key, value in result.items()
              if key.startswith("hp.")}
    record = json.dumps({"cloned_trial": donor, "cloned_run": run_ids.get(donor),
                         "at_epoch": epoch, "values": values})[:5000]
    base = f"{EXPLOIT_TAG}.epoch_{epoch}"
    same_epoch = [value for key, value in (run_tags or {}).items()
                  if key == base or key.startswith(f"{base}.")]
    lineage = [RunTag("pbt.cloned_from", donor),
               RunTag(SCHEDULE_TAG, str(result.get("hp_schedule", ""))[:5000])]
    if record in same_epoch:
        return lineage
    key = f"{base}.{len(same_epoch) + 1}" if same_epoch else base
    return [RunTag(key, record), *lineage]


def schedule_experiment(schedule_json: str) -> dict[str, Any]:
    """Dotted-path values that make a rerun follow a PBT trial's schedule: the first stretch's
    values in place, each later change as a train.hyperparameter_schedule step."""
    history = json.loads(schedule_json)
    values: dict[str, Any] = dict(history[0][1])
    steps, previous = [], history[0][1]
    for epoch, current in history[1:]:
        changed = {path: value for path, value in current.items() if previous.get(path) != value}
        if changed:
            steps.append({"epoch": epoch, "values": changed})
        previous = current
    return {**values, "train.hyperparameter_schedule": steps}


def population_frame(results: Any, metric: str) -> pd.DataFrame:
    """Every result of every trial in a ResultGrid, with the columns population_plot reads."""
    columns = ["trial_id", "epoch", metric, "cloned_from", "cloned_at_epoch"]
    frames = [r.metrics_dataframe.reindex(columns=columns) for r in results
              if r.metrics_dataframe is not None and metric in r.metrics_dataframe]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def population_plot(frame: pd.DataFrame, metric: str, path: Path) -> Path | None:
    """The metric by epoch, one line per trial; each exploit a dotted line from the donor at
    the cloned epoch to the clone's next result. `frame`: every result (trial_id, epoch,
    metric, and cloned_from / cloned_at_epoch where a trial was cloned)."""
    if frame.empty or "epoch" not in frame:
        return None
    fig = Figure(figsize=(7, 4.5))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    for i, (trial_id, rows) in enumerate(frame.sort_values("epoch").groupby("trial_id")):
        ax.plot(rows["epoch"], rows[metric], color=f"C{i % 10}", lw=1, marker=".",
                label=str(trial_id))
    exploits = frame[frame["cloned_from"].notna()] if "cloned_from" in frame else frame[:0]
    for _, row in exploits.iterrows():
        donor = frame[(frame["trial_id"] == row["cloned_from"])
                      & (frame["epoch"] == row["cloned_at_epoch"])]
        if not donor.empty:
            ax.plot([row["cloned_at_epoch"], row["epoch"]], [donor[metric].iloc[0], row[metric]],
                    color="k", ls=":", lw=1)
        ax.scatter([row["epoch"]], [row[metric]], color="k", marker="x", zorder=3)
    ax.set(xlabel="epoch", ylabel=metric,
           title=f"PBT population: {len(exploits)} exploit(s) (x: first epoch after a clone)")
    ax.legend(fontsize=6, ncol=2)
    fig.savefig(path, dpi=100)
    return path
