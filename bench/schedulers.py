"""Schedulers and LR policies on the digits CNN, through the real pipeline.

    .venv/bin/python -m bench schedulers        (about 5-8 minutes on 2 shared cores)

1. Schedulers: fifo + random, asha + random, hyperband, pbt and bayes on one space (train.lr,
   model.dropout), 3 seeds, each arm sized to ~16 trial-epochs (4 trials x 4 epochs for fifo,
   pbt, bayes; 8 trials for asha and 6 for hyperband, which stop or pause some). Best val_loss,
   trial-epochs actually spent, and seconds from the sweep's start until a trial first
   reached val_acc >= TARGET (from the child runs' metric timestamps in MLflow).
2. LR policies at the same epochs, in-process (no Ray; the default cnn at batch 64, where the
   range test is reliable): a fixed LR set by the range test vs
   onecycle, cyclic and sgdr with both ends from the range test (schedules.range_test_bounds).
Results go to bench/results/schedulers.md and docs/schedulers.png.
"""
from __future__ import annotations

import math
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from mlflow.tracking import MlflowClient

from pipeline import study
from pipeline.config import Experiment
from pipeline.training import lr_range, schedules
from pipeline.training.data import load
from pipeline.training.loop import fit

ROOT = Path(__file__).parent
RESULTS, PLOT = ROOT / "results" / "schedulers.md", ROOT.parent / "docs" / "schedulers.png"
SEEDS, EPOCHS, TARGET = (0, 1, 2), 4, 0.9
BASE = {"data": {"batch_size": 32}, "model": {"arch": "cnn", "channels": 8, "hidden": 32},
        "train": {"epochs": EPOCHS}}
SPACE = {"train.lr": {"loguniform": [1e-3, 0.5]}, "model.dropout": {"uniform": [0.0, 0.3]}}
ARMS: dict[str, dict[str, Any]] = {
    "fifo + random": {"searcher": "random", "num_samples": 4},
    "asha + random": {"searcher": "random", "scheduler": "asha", "num_samples": 8,
                      "asha": {"grace_period": 1, "reduction_factor": 2}},
    "hyperband": {"searcher": "random", "scheduler": "hyperband", "num_samples": 6,
                  "hyperband": {"reduction_factor": 2}},
    "pbt": {"searcher": "random", "scheduler": "pbt", "num_samples": 4,
            "pbt": {"perturbation_interval": 1, "quantile_fraction": 0.5}},
    "bayes": {"searcher": "bayes", "num_samples": 4, "bayes": {"n_initial_points": 2}},
}
POLICY_EPOCHS = 7  # sgdr periods 1 + 2 + 4 end with the run; cyclic: 2 cycles of 3.5 epochs
# bench/lr_range.py's setting: on the narrower cnn at batch 32 the curve stayed flat (the range
# test said so, and no bounds would be set)
POLICY_BASE = {"data": {"batch_size": 64}, "model": {"arch": "cnn"}}


def sweep(arm: str, seed: int, folder: Path) -> dict[str, float]:
    exp = Experiment.model_validate({
        **BASE, "name": f"bench-sched-{seed}-{arm.split()[0]}", "seed": seed,
        "search": {**ARMS[arm], "max_concurrent": 2, "space": SPACE},
        "tracking": {"uri": f"sqlite:///{folder}/mlflow.db"},
        "storage": {"path": str(folder / "ray_results")}})
    outcome = study.run(exp, register=False)
    client = MlflowClient(outcome.store.uri)
    start = client.get_run(outcome.parent_run_id).info.start_time
    kids = client.search_runs([outcome.store.experiment_id],
                              f"tags.`mlflow.parentRunId` = '{outcome.parent_run_id}'")
    epochs, reached = 0, []
    for kid in kids:
        acc = client.get_metric_history(kid.info.run_id, "val_acc")
        epochs += len(acc)
        reached += [(m.timestamp - start) / 1000 for m in acc if m.value >= TARGET]
    return {"best": outcome.best_value, "epochs": epochs,
            "to_target": min(reached) if reached else float("nan"), "fit_s": outcome.fit_s}


def policies(seed: int) -> dict[str, tuple[float, float, list[float]]]:
    """policy -> (best val_loss, best val_acc, lr per epoch)."""
    torch.set_num_threads(1)
    exp = Experiment.model_validate({**POLICY_BASE, "name": "policies", "seed": seed,
                                     "train": {"epochs": POLICY_EPOCHS,
                                               "cyclic": {"step_size_epochs": 1.75}},
                                     "lr_range_test": {"enabled": True}})
    data = load(exp.data, seed)
    curve = lr_range.range_test(exp, data)
    suggestion = lr_range.suggest(curve)
    bounds = schedules.range_test_bounds(suggestion, curve)
    if bounds is None:
        raise RuntimeError(f"seed {seed}: the range test is not to be trusted here "
                           f"({suggestion.reason}); the comparison would be meaningless")
    low, high = bounds
    runs = {"fixed (range-test lr)": {"train.lr": suggestion.lr}}
    for name in ("onecycle", "cyclic", "sgdr"):
        runs[f"{name} (range-test bounds)"] = {"train.schedule": name, "train.lr": high,
                                               "train.min_lr": low}
    out = {}
    for name, values in runs.items():
        metrics = [e.metrics for e in fit(exp.with_values(values), data)]
        out[name] = (min(m["val_loss"] for m in metrics), max(m["val_acc"] for m in metrics),
                     [m["lr"] for m in metrics])
    print(f"seed {seed}: range test lr {suggestion.lr:.3g}, cycle bounds [{low:.3g}, "
          f"{high:.3g}]", flush=True)
    return out


def fmt(values: list[float], digits: int = 3) -> str:
    good = [v for v in values if not math.isnan(v)]
    if not good:
        return "never"
    text = f"{statistics.median(good):.{digits}g} [{min(good):.{digits}g}-{max(good):.{digits}g}]"
    return text + (f" ({len(values) - len(good)} seed(s) never)" if len(good) < len(values) else "")


def plot(sched: dict[str, list[dict]], pols: dict[str, list[tuple]]) -> None:
    fig = Figure(figsize=(11, 4.2))
    FigureCanvasAgg(fig)
    left, right = fig.subplots(1, 2)
    for i, (arm, rows) in enumerate(sched.items()):
        left.scatter([i] * len(rows), [r["best"] for r in rows], color=f"C{i}")
    left.set_xticks(range(len(sched)), list(sched), rotation=20, fontsize=8)
    left.set(ylabel="best val_loss (3 seeds)", title=f"Schedulers, ~16 trial-epochs, {EPOCHS} "
             "epochs each")
    for i, (name, rows) in enumerate(pols.items()):
        right.plot(range(1, POLICY_EPOCHS + 1), rows[0][2], marker=".", color=f"C{i}",
                   label=f"{name}: val_loss {statistics.median(r[0] for r in rows):.3f}")
    right.set(yscale="log", xlabel="epoch", ylabel="lr at the epoch's start (seed 0)",
              title="LR policies from one range test")
    right.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(PLOT, dpi=100)


def main() -> None:
    started = time.perf_counter()
    sched: dict[str, list[dict]] = {arm: [] for arm in ARMS}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in SEEDS:
            for arm in ARMS:
                sched[arm].append(sweep(arm, seed, Path(tmp)))
                print(arm, seed, sched[arm][-1], flush=True)
    pols: dict[str, list[tuple]] = {}
    for seed in SEEDS:
        for name, row in policies(seed).items():
            pols.setdefault(name, []).append(row)
    plot(sched, pols)
    lines = [
        "# Schedulers and LR policies (digits CNN; `python -m bench schedulers`)", "",
        (f"Measured {time.strftime('%Y-%m-%d')} on 2 cores shared with two other engineers' "
         f"work (wall times are noisy); whole benchmark {time.perf_counter() - started:.0f} s."),
        f"Seeds {SEEDS}; median [min-max]. Space: {SPACE}.", "",
        f"| arm | best val_loss | trial-epochs spent | s to val_acc >= {TARGET} | Tuner.fit s |",
        "| --- | --- | --- | --- | --- |"]
    for arm, rows in sched.items():
        lines.append(f"| {arm} | {fmt([r['best'] for r in rows])} | "
                     f"{fmt([r['epochs'] for r in rows])} | {fmt([r['to_target'] for r in rows])}"
                     f" | {fmt([r['fit_s'] for r in rows])} |")
    lines += ["", (f"LR policies, {POLICY_EPOCHS} epochs, {POLICY_BASE}, one range test per "
                   "seed (fixed: its suggestion; the others: schedules.range_test_bounds):"), "",
              "| policy | best val_loss | best val_acc |", "| --- | --- | --- |"]
    for name, rows in pols.items():
        lines.append(f"| {name} | {fmt([r[0] for r in rows])} | {fmt([r[1] for r in rows])} |")
    RESULTS.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
