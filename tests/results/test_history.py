"""The trials table the summary ranks: a non-finite score is no score."""
from __future__ import annotations

import math

import pandas as pd

from pipeline.config import Search
from pipeline.results.history import trials_table


def frame(scores: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"score": scores, "training_iteration": range(1, len(scores) + 1),
                         "time_total_s": [1.0] * len(scores)})


def test_inf_and_nan_never_rank_first() -> None:
    """A trial reporting inf under mode max was the sweep's best (`Best score: inf`), and its
    point the Reproduce line's (found from outside)."""
    search = Search(metric="score", mode="max", space={"params.x": {"uniform": [0, 1]}})
    config = {"params": {"x": 0.5}}
    table = trials_table({"a": (frame([1.0, math.inf]), config), "b": (frame([2.0, 3.0]), config),
                          "c": (frame([math.nan, -math.inf]), config)}, search)
    assert list(table["trial_id"]) == ["b", "a", "c"]
    assert list(table["score"])[:2] == [3.0, 1.0] and math.isnan(table["score"][2])
    assert list(table["best_epoch"])[:2] == [2, 1]
