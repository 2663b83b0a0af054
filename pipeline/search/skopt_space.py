"""Ray Tune's nested trial config <-> scikit-optimize's flat points.

The searcher takes the whole nested trial config: constants stay in place, Ray domains become
skopt dimensions named by their dotted path ("train.lr"), and `tune.grid_search` entries are
left for the searcher to cross outside the optimizer. Values reach trials with the types Ray's
own searchers give them (int for an Integer, the chosen object for a Categorical).
"""
from __future__ import annotations

import copy
import itertools
import math
from typing import Any

from ray.tune.search import sample
from skopt.space import Categorical, Dimension, Integer, Real

from pipeline.config import set_path


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dict -> {dotted path: leaf}; a grid_search dict and an empty dict are leaves.
    Kept apart from `pipeline.results.tracking.flatten`, which would split `{"grid_search": [...]}`
    into a "grid_search" path."""
    flat = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value and "grid_search" not in value:
            flat.update(flatten(value, path + "."))
        else:
            flat[path] = value
    return flat


def nest(flat: dict[str, Any]) -> dict[str, Any]:
    """{dotted path: value} -> nested dict (the inverse of `flatten`), by the config's own
    `set_path` rule (so a dotted key under `params` stays one key, as in the experiment)."""
    tree: dict[str, Any] = {}
    for path, value in flat.items():
        set_path(tree, path, copy.deepcopy(value))
    return tree


def to_dimension(path: str, domain: sample.Domain) -> Dimension:
    """A Ray domain as a skopt dimension; Categorical gets string labels (see `decode`)."""
    sampler = domain.get_sampler()
    prior = "log-uniform" if isinstance(sampler, sample.LogUniform) else "uniform"
    if not isinstance(sampler, (sample.Uniform, sample.LogUniform, sample.Grid)):
        raise TypeError(f"{path}: {type(sampler).__name__} sampling has no skopt dimension")
    if isinstance(domain, sample.Float):
        return Real(domain.lower, domain.upper, prior=prior, name=path)
    if isinstance(domain, sample.Integer):  # Ray's upper bound is exclusive, skopt's inclusive
        return Integer(domain.lower, domain.upper - 1, prior=prior, name=path)
    if isinstance(domain, sample.Categorical):
        # Labels, not the objects: skopt needs hashable categories, and plots read labels.
        labels = [str(c) for c in domain.categories]
        if len(set(labels)) != len(labels):
            raise ValueError(f"{path}: choices {domain.categories} do not print distinctly")
        return Categorical(labels, name=path)
    raise TypeError(f"{path}: unsupported domain {type(domain).__name__}")


def decode(dim: Dimension, value: Any, choices: list[Any] | None) -> Any:
    """A skopt value as the Python value a trial expects (int, float, or the chosen object)."""
    if isinstance(dim, Categorical):
        return copy.deepcopy(choices[list(dim.categories).index(value)])
    return int(value) if isinstance(dim, Integer) else float(value)


def encode(dim: Dimension, value: Any, choices: list[Any] | None) -> Any:
    """A trial's value as skopt's: the inverse of `decode`."""
    if isinstance(dim, Categorical):
        return dim.categories[choices.index(value)]
    return int(value) if isinstance(dim, Integer) else float(value)


def every_point(dims: list[Any], limit: int = 10_000) -> list[list[Any]] | None:
    """Every point of a space of choices and integers, if it has at most `limit`."""
    values = []
    for dim in dims:
        if isinstance(dim, Categorical):
            values.append(list(dim.categories))
        elif isinstance(dim, Integer):
            values.append(list(range(int(dim.low), int(dim.high) + 1)))
        else:
            return None
    if math.prod(len(v) for v in values) > limit:
        return None
    return [list(p) for p in itertools.product(*values)]
