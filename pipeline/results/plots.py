"""Sweep plots from the results table: pure matplotlib, written as PNG files."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.ticker import MaxNLocator

from pipeline.config import Experiment
from pipeline.results.edges import interval


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
    return _save(fig, path)


def parameter(table: pd.DataFrame, name: str, metric: str, path: Path, log_x: bool = False,
              bounds: tuple[float, float] | None = None) -> Path:
    """Metric against one searched value; the best trial highlighted, the interval's bounds
    dashed (a best value on one of them means the range may be too narrow)."""
    fig, ax = plt.subplots(figsize=(5, 4))
    values = table[name]
    numeric = pd.api.types.is_numeric_dtype(values)
    x = values if numeric else values.astype(str)
    ax.scatter(x, table[metric], alpha=0.6)
    ax.scatter(x.iloc[:1], table[metric].iloc[:1], color="red", label="best")
    if bounds is not None and numeric:
        for bound in bounds:
            ax.axvline(bound, color="grey", linestyle="--", linewidth=1)
    if log_x and numeric:
        ax.set_xscale("log")
    ax.set(xlabel=name, ylabel=metric, title=f"{metric} vs {name}")
    ax.legend()
    return _save(fig, path)


def best_over_time(history: pd.DataFrame, metric: str, mode: str) -> pd.DataFrame:
    """Every reported result (columns trial_id, timestamp, time_total_s, metric) -> the best
    value known at each moment, in seconds since the first trial started."""
    started = (history["timestamp"] - history["time_total_s"]).min()
    ordered = history.sort_values("timestamp")
    return pd.DataFrame({"wall_s": (ordered["timestamp"] - started).to_numpy(),
                         "value": ordered[metric].to_numpy(),
                         "best": best_so_far(ordered[metric], mode).to_numpy()})


def convergence_over_time(history: pd.DataFrame, metric: str, mode: str, path: Path) -> Path:
    """Best-so-far metric against the sweep's wall time: what waiting longer buys."""
    curve = best_over_time(history, metric, mode)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(curve["wall_s"], curve["value"], "o", alpha=0.3, label="reported (any epoch)")
    ax.step(curve["wall_s"], curve["best"], where="post", label="best so far")
    ax.set(xlabel="wall time since the first trial started (s)", ylabel=metric,
           title=f"best {metric} over time")
    ax.legend()
    return _save(fig, path)


def importance_bars(shares: dict[str, float], path: Path) -> Path:
    """Hyperparameter importance as horizontal bars, most important on top."""
    names = sorted(shares, key=shares.get)
    fig, ax = plt.subplots(figsize=(6, 1.2 + 0.5 * len(names)))
    ax.barh(names, [shares[n] for n in names])
    ax.set(xlabel="share of explained variance (permutation importance)", xlim=(0, 1),
           title="hyperparameter importance")
    return _save(fig, path)


def comparison(summary: pd.DataFrame, metric: str, path: Path) -> Path:
    """Best-so-far per searcher against trial number: the median over seeds, and a band from
    the best to the worst seed (columns searcher, trial, median, low, high, seeds)."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for searcher, rows in summary.groupby("searcher", sort=False):
        line, = ax.plot(rows["trial"], rows["median"], marker="o", markersize=3,
                        label=f"{searcher} (median of {int(rows['seeds'].max())})")
        ax.fill_between(rows["trial"], rows["low"], rows["high"], alpha=0.2,
                        color=line.get_color())
    ax.set(xlabel="trial", ylabel=f"best {metric} so far",
           title=f"searchers compared: best {metric} by trial")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend()
    return _save(fig, path)


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def sweep_plots(table: pd.DataFrame, exp: Experiment, folder: Path, history: pd.DataFrame,
                lr_bounds: tuple[float, float] | None = None) -> list[Path]:
    """Best-so-far by trial and by wall time, plus one plot per searched field; `table` is
    sorted best first, `history` holds every reported result."""
    s = exp.search
    paths = [convergence(table, s.metric, s.mode, folder / "convergence.png"),
             convergence_over_time(history, s.metric, s.mode, folder / "convergence_time.png")]
    for name, spec in s.space.items():
        if name in table:
            span = interval(spec, lr_bounds)
            paths.append(parameter(table, name, s.metric, folder / f"param_{name}.png",
                                   log_x=span is not None and span.log,
                                   bounds=(span.low, span.high) if span else None))
    return paths
