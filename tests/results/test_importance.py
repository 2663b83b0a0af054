"""Hyperparameter importance on hand-made trial tables."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.results.importance import MIN_TRIALS, features, importances

SPACE = {"train.lr": {"loguniform": [1e-4, 1e-1]}, "model.dropout": {"uniform": [0.0, 0.5]},
         "data.name": {"choice": ["a", "b"]}}


def trials(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    lr = 10 ** rng.uniform(-4, -1, n)
    dropout = rng.uniform(0, 0.5, n)
    return pd.DataFrame({"train.lr": lr, "model.dropout": dropout,
                         "data.name": rng.choice(["a", "b"], n),
                         "val_loss": (np.log10(lr) + 2.5) ** 2 + 0.01 * dropout})


def test_features_use_log10_for_log_domains_and_list_positions_for_labels() -> None:
    table = pd.DataFrame({"train.lr": [1e-3, 1e-2], "model.dropout": [0.1, 0.2],
                          "data.name": ["b", "a"]})
    x = features(table, SPACE)
    assert x["train.lr"].tolist() == pytest.approx([-3.0, -2.0])
    assert x["model.dropout"].tolist() == [0.1, 0.2]
    assert x["data.name"].tolist() == [1.0, 0.0]


def test_the_parameter_the_metric_depends_on_dominates() -> None:
    shares = importances(trials(30), SPACE, "val_loss")
    assert set(shares) == set(SPACE)
    assert sum(shares.values()) == pytest.approx(1.0)
    assert shares["train.lr"] > 0.8


def test_too_few_trials_give_no_answer() -> None:
    assert importances(trials(MIN_TRIALS - 1), SPACE, "val_loss") is None
    flat = trials(MIN_TRIALS).assign(val_loss=1.0)
    assert importances(flat, SPACE, "val_loss") == dict.fromkeys(SPACE, 0.0)
