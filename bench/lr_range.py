"""LR range test against a dense grid on digits: how far is each rule from the grid's best LR?

    .venv/bin/python -m bench.lr_range        (about 2-3 minutes on 2 cores)

For the mlp and the cnn (SGD momentum 0.9, batch 64, 10 epochs), the grid trains 13 log-spaced LRs
over [1e-4, 3] with 3 seeds each and takes the LR of the lowest median val_loss. The range test
runs with 3 seeds; each rule's suggestion is reported as suggested / best (1.0 is perfect), as the
median over seeds with [min-max]. Two range-test budgets: the default (1e-7 -> 10 in 100 steps)
and one epoch of steps (1e-5 -> 10), the cost goal. Writes bench/results/lr_range.md.

A second part, a sweep with `lr_range` bounds against wide bounds through the full pipeline, is
to be added once pipeline/study.py exists.
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch

from pipeline.config import Data, Experiment, LRRangeTest, Model, Train
from pipeline.training import loop as training
from pipeline.training import lr_range
from pipeline.training.data import Tensors, load

GRID_LRS = np.geomspace(1e-4, 3.0, 13)
SEEDS = (0, 1, 2)
MODELS = {"mlp": Model(arch="mlp", hidden=128, dropout=0.1),
          "cnn": Model(arch="cnn", hidden=128, dropout=0.1)}
RESULTS = Path(__file__).parent / "results" / "lr_range.md"


def experiment(model: Model, seed: int, lr: float = 0.01,
               test: LRRangeTest | None = None) -> Experiment:
    return Experiment(name="bench-lr-range", seed=seed, model=model,
                      lr_range_test=test or LRRangeTest(),
                      data=Data(batch_size=64), train=Train(lr=lr, momentum=0.9, epochs=10))


def final_val_loss(exp: Experiment, data: Tensors) -> float:
    try:
        return [epoch.metrics["val_loss"] for epoch in training.fit(exp, data)][-1]
    except training.Diverged:
        return math.inf


def grid_best(model: Model, data: Tensors) -> tuple[float, float]:
    """(LR with the lowest median val_loss over seeds, seconds per trained epoch)."""
    started = time.perf_counter()
    medians = [np.median([final_val_loss(experiment(model, seed, float(lr)), data)
                          for seed in SEEDS]) for lr in GRID_LRS]
    epochs = len(GRID_LRS) * len(SEEDS) * 10
    return float(GRID_LRS[int(np.argmin(medians))]), (time.perf_counter() - started) / epochs


def spread(ratios: list[float | None]) -> str:
    """Median [min-max] of suggested / best over seeds; a rule that gave nothing counts as '-'."""
    found = [r for r in ratios if r is not None]
    missing = "" if len(found) == len(ratios) else f" ({len(ratios) - len(found)} none)"
    if not found:
        return "-"
    return f"{np.median(found):.2f} [{min(found):.2f}-{max(found):.2f}]{missing}"


def range_tests(model: Model, data: Tensors, test: LRRangeTest, best: float) -> dict[str, str]:
    """One table row: every rule's ratio to `best` over the seeds, and what the test cost."""
    ratios: dict[str, list[float | None]] = {name: [] for name in
                                             ("valley", "steepest", "min_loss", "geo_vs")}
    combined, inside, reliable, seconds, iterations = [], 0, 0, [], []
    for seed in SEEDS:
        started = time.perf_counter()
        curve = lr_range.range_test(experiment(model, seed, test=test), data)
        seconds.append(time.perf_counter() - started)
        iterations.append(curve.iterations)
        s = lr_range.suggest(curve)
        rules = {**s.rules, "geo_vs": None if None in (s.rules["valley"], s.rules["steepest"])
                 else math.sqrt(s.rules["valley"] * s.rules["steepest"])}
        for name, found in ratios.items():
            found.append(None if rules[name] is None else rules[name] / best)
        combined.append(None if s.lr is None else s.lr / best)
        low, high = lr_range.search_bounds(s, curve)
        inside += low <= best <= high
        reliable += s.reliable
    return {**{name: spread(r) for name, r in ratios.items()}, "combined": spread(combined),
            "within_2x": str(sum(r is not None and 0.5 <= r <= 2 for r in combined)),
            "reliable": str(reliable), "best_in_bounds": str(inside),
            "iterations": f"{np.median(iterations):.0f}", "seconds": f"{np.median(seconds):.2f}"}


def main() -> str:
    torch.set_num_threads(1)
    data = load(Data())
    per_epoch = math.ceil(len(data.x_train) / 64)
    budgets = {"default 1e-7..10, 100 steps": LRRangeTest(),
               f"1 epoch 1e-5..10, {per_epoch} steps": LRRangeTest(start_lr=1e-5,
                                                                   num_iter=per_epoch)}
    n = len(SEEDS)
    lines = [
        (f"# LR range test vs a {len(GRID_LRS)}-LR grid (digits, SGD momentum 0.9, batch 64, "
         f"10 epochs, {n} seeds)"), "",
        ("Ratios are suggested LR / grid-best LR: median over seeds [min-max]. `combined` is "
         "`lr_range.suggest` (median of the three rules); `geo_vs` is the geometric mean of "
         f"valley and steepest, for comparison. Counts are out of {n} seeds. Cost: range-test "
         f"steps against the {per_epoch} batches of one epoch, and seconds against the grid's "
         "seconds per trained epoch."), "",
        ("| model | budget | grid best | valley | steepest | min_loss | geo_vs | **combined** "
         "| within 2x | reliable | best in bounds | steps (epochs) | seconds (epochs) |"),
        "|" + " --- |" * 13,
    ]
    for name, model in MODELS.items():
        best, epoch_s = grid_best(model, data)
        for budget, test in budgets.items():
            row = range_tests(model, data, test, best)
            steps, seconds = int(row["iterations"]), float(row["seconds"])
            lines.append(
                f"| {name} | {budget} | {best:.3g} | {row['valley']} | {row['steepest']} "
                f"| {row['min_loss']} | {row['geo_vs']} | **{row['combined']}** "
                f"| {row['within_2x']} | {row['reliable']} | {row['best_in_bounds']} "
                f"| {steps} ({steps / per_epoch:.1f}) | {seconds:.2f} ({seconds / epoch_s:.1f}) |")
    table = "\n".join(lines) + "\n"
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(table)
    return table


if __name__ == "__main__":
    print(main())
