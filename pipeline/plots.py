"""Sweep plots from the results table: pure matplotlib, written as PNG files."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from pipeline.config import LR_RANGE, Experiment  # noqa: E402


def best_so_far(values: pd.Series, mode: str) -> pd.Series:
    return values.cummin() if mode == "min" else values.cummax()


def convergence(table: pd.DataFrame, metric: str, mode: str, path: Path) -> Path:
    """Best-so-far metric against trial number (trials in the order they were created)."""
    ordered = table.sort_values("trial_id")[metric].reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(range(1, len(ordered) + 1), ordered, "o", alpha=0.5, label="trial")
    ax.step(range(1, len(ordered) + 1), best_so_far(ordered, mode), where="post",
            label="best so far")
    ax.set(xlabel="trial", ylabel=metric, title=f"{metric} by trial")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def parameter(table: pd.DataFrame, name: str, metric: str, log_x: bool, path: Path) -> Path:
    """Metric against one searched value; the best trial highlighted."""
    fig, ax = plt.subplots(figsize=(5, 4))
    values = table[name]
    numeric = pd.api.types.is_numeric_dtype(values)
    x = values if numeric else values.astype(str)
    ax.scatter(x, table[metric], alpha=0.6)
    ax.scatter(x.iloc[:1], table[metric].iloc[:1], color="red", label="best")
    if log_x and numeric:
        ax.set_xscale("log")
    ax.set(xlabel=name, ylabel=metric, title=f"{metric} vs {name}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def sweep_plots(table: pd.DataFrame, exp: Experiment, folder: Path) -> list[Path]:
    """Convergence plus one plot per searched field; `table` is sorted best first."""
    s = exp.search
    paths = [convergence(table, s.metric, s.mode, folder / "convergence.png")]
    for name, spec in s.space.items():
        if name in table:
            log_x = spec == LR_RANGE or "loguniform" in spec
            paths.append(parameter(table, name, s.metric, log_x, folder / f"param_{name}.png"))
    return paths
