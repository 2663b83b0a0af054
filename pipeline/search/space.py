"""Search-space entries of an experiment -> the nested Ray Tune param space a trial receives."""
from __future__ import annotations

import copy
from typing import Any

from ray import tune

from pipeline.config import LR_RANGE, Experiment, Search, set_path
from pipeline.config.search_options import trial_count

__all__ = ["points_to_configs", "to_domain", "to_tune", "trial_count"]


def to_domain(spec: Any, lr_bounds: tuple[float, float] | None = None) -> Any:
    """One validated space entry -> a Ray Tune domain (grid entries -> tune.grid_search)."""
    if spec == LR_RANGE:
        if lr_bounds is None:
            raise ValueError("train.lr: lr_range needs lr_range_test.enabled: true")
        return tune.loguniform(*lr_bounds)
    (kind, args), = spec.items()
    if kind == "loguniform":
        return tune.loguniform(*args)
    if kind == "uniform":
        return tune.uniform(*args)
    if kind in ("randint", "int"):
        return tune.randint(int(args[0]), int(args[1]) + 1)  # both ends inclusive for users
    if kind == "choice":
        return tune.choice(args)
    return tune.grid_search(args)


def to_tune(exp: Experiment, lr_bounds: tuple[float, float] | None = None) -> dict[str, Any]:
    """The trial config with every searched field replaced by its domain."""
    space = copy.deepcopy(exp.trial_config())
    for path, spec in exp.search.space.items():
        set_path(space, path, to_domain(spec, lr_bounds))
    return space


def points_to_configs(search: Search) -> list[dict[str, Any]]:
    """points_to_evaluate (dotted paths) -> nested partial configs, as Ray's searchers take."""
    configs = []
    for point in search.points_to_evaluate:
        nested: dict[str, Any] = {}
        for path, value in point.items():
            if path != "_result":
                set_path(nested, path, value)
        configs.append(nested)
    return configs
