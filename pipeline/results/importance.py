"""Which searched hyperparameters the metric depends on, from the sweep's own trials.

A random forest is fitted to (searched values -> metric) and each column is shuffled in turn
(permutation importance): the fit it loses is that column's importance. Unlike the forest's
impurity importance this does not favour columns with many distinct values. With a handful of
trials it is a rough guide, which is why fewer than MIN_TRIALS give no answer.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from pipeline.config import LR_RANGE

MIN_TRIALS = 5


def _is_log(spec: Any) -> bool:
    return spec == LR_RANGE or (isinstance(spec, dict) and "loguniform" in spec)


def features(table: pd.DataFrame, space: dict[str, Any]) -> pd.DataFrame:
    """Searched values as numbers: log10 for log domains, the position in the domain's list
    for non-numeric choices."""
    columns = {}
    for path, spec in space.items():
        if path not in table:
            continue
        values = table[path]
        if pd.api.types.is_numeric_dtype(values):
            numbers = values.astype(float)
            columns[path] = np.log10(numbers) if _is_log(spec) else numbers
        else:
            order = [str(v) for v in next(iter(spec.values()))]
            columns[path] = values.astype(str).map(order.index).astype(float)
    return pd.DataFrame(columns, index=table.index)


def importances(table: pd.DataFrame, space: dict[str, Any], metric: str,
                seed: int = 0) -> dict[str, float] | None:
    """Searched path -> share of the explained variance it carries (shares sum to 1, or are all
    0 when nothing is explained); None with fewer than MIN_TRIALS finished trials."""
    rows = table[table[metric].map(lambda v: isinstance(v, (int, float)) and math.isfinite(v))]
    x = features(rows, space)
    if len(rows) < MIN_TRIALS or x.empty:
        return None
    y = rows[metric].astype(float)
    if y.nunique() < 2:
        return dict.fromkeys(x.columns, 0.0)
    # imported only now: scikit-learn takes 1.5-3 s to import, and a small sweep needs none
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.inspection import permutation_importance

    forest = RandomForestRegressor(n_estimators=200, random_state=seed).fit(x, y)
    found = permutation_importance(forest, x, y, n_repeats=20, random_state=seed)
    raw = np.clip(found.importances_mean, 0.0, None)
    total = raw.sum()
    return {path: float(value / total) if total > 0 else 0.0
            for path, value in zip(x.columns, raw)}
