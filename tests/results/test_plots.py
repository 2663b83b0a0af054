"""Plot data and files: hand-made tables in, exact curves and real PNG files out."""
from __future__ import annotations

import pandas as pd

from pipeline.results import plots


def test_best_over_time_counts_from_the_first_trial_start() -> None:
    history = pd.DataFrame({"trial_id": ["a", "b", "a", "b"],
                            "timestamp": [105, 107, 110, 112],
                            "time_total_s": [5.0, 4.0, 10.0, 9.0],
                            "val_loss": [2.0, 1.5, 1.8, 1.0]})
    curve = plots.best_over_time(history, "val_loss", "min")
    assert curve["wall_s"].tolist() == [5, 7, 10, 12]
    assert curve["best"].tolist() == [2.0, 1.5, 1.5, 1.0]
    assert plots.best_over_time(history, "val_loss", "max")["best"].tolist() == [2.0] * 4


def test_plots_are_written(tmp_path) -> None:
    summary = pd.DataFrame({"searcher": ["grid", "grid", "random", "random"],
                            "trial": [1, 2, 1, 2], "median": [2.0, 1.5, 1.8, 1.2],
                            "low": [1.9, 1.4, 1.7, 1.0], "high": [2.1, 1.6, 1.9, 1.4],
                            "seeds": [2, 2, 2, 2]})
    paths = [plots.comparison(summary, "val_loss", tmp_path / "compare.png"),
             plots.importance_bars({"train.lr": 0.8, "model.dropout": 0.2},
                                   tmp_path / "importance.png")]
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert path.stat().st_size > 10_000
