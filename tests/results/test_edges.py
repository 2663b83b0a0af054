"""Edge warnings: where the best value lies in its interval."""
from __future__ import annotations

import pytest

from pipeline.results.edges import Interval, edge, edge_warnings, interval


def test_position_is_measured_in_log_space_for_log_domains() -> None:
    assert Interval(1e-4, 1e-2, log=True).position(1e-3) == pytest.approx(0.5)
    assert Interval(0.0, 10.0, log=False).position(2.5) == 0.25
    assert interval({"loguniform": [1e-4, 1e-2]}) == Interval(1e-4, 1e-2, log=True)
    assert interval({"int": [1, 8]}) == Interval(1.0, 8.0, log=False)
    assert interval({"choice": [1, 2, 3]}) is None
    assert interval("lr_range") is None
    assert interval("lr_range", (1e-3, 1e-1)) == Interval(1e-3, 1e-1, log=True)


def test_edges_are_the_outer_five_percent() -> None:
    span = Interval(1e-4, 1e-2, log=True)
    assert edge(1e-4 * 10 ** 0.09, span) == "low"   # 4.5% of two decades
    assert edge(1e-4 * 10 ** 0.11, span) is None    # 5.5%
    assert edge(1e-2, span) == "high"
    assert edge(0.5, Interval(0.0, 1.0, log=False)) is None


def test_warnings_name_the_field_and_skip_lists() -> None:
    space = {"train.lr": {"loguniform": [1e-4, 1e-1]}, "model.dropout": {"uniform": [0, 0.5]},
             "model.hidden": {"choice": [16, 64]}, "train.momentum": "lr_range"}
    best = {"train.lr": 0.099, "model.dropout": 0.2, "model.hidden": 64}
    warnings = edge_warnings(best, space)
    assert list(warnings) == ["train.lr"]
    assert warnings["train.lr"].startswith("train.lr: the best value 0.099 is at the high edge "
                                           "of [0.0001, 0.1]")
