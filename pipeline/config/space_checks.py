"""The search space checked against the experiment: every searched path is a value a trial
trains with, every domain (and a fractional draw of a continuous one) fits its field, and
every point to evaluate first lies in its domain. Part of `load()`'s checks.
"""
from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel

from pipeline.config.base import ConfigError
from pipeline.config.domains import LR_RANGE, domain_values
from pipeline.config.schema import Experiment


def _field_exists(path: str) -> bool:
    parts = path.split(".")
    if parts[0] == "params":
        return len(parts) == 2 and bool(parts[1])
    model: type[BaseModel] | None = Experiment
    for part in parts:
        if model is None or part not in model.model_fields:
            return False
        annotation = model.model_fields[part].annotation
        model = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) \
            else None
    return model is None  # the path must end at a value, not a section



SEARCHABLE = ("seed", "data", "model", "train", "params")
"""What a trial trains with. The rest is the sweep's own (search, tracking, storage, cluster),
or fixed per sweep (resources: Ray places every trial alike): searched, it was a column that
changed nothing."""


PER_TRIAL_DATA = ("batch_size", "augment", "crop_padding", "workers")
"""The data fields a trial reads itself; the rest shape the data set, which is loaded once
per sweep and shared, so searched they were a column that changed nothing."""
MODEL_FIELDS_USED = {"mlp": {"hidden", "depth", "dropout"}, "cnn": {"hidden", "channels", "dropout"},
                     "resnet18": {"dropout"}}
"""The size fields each built-in network reads; a torchvision model reads none of them (a
factory may read any)."""
ARCH_SIZE_FIELDS = ("hidden", "depth", "channels", "dropout")


def _unused(path: str, exp: Experiment) -> str | None:
    """Why a searched path cannot change what a trial trains, or None."""
    section, _, field = path.partition(".")
    if section == "data" and field not in PER_TRIAL_DATA:
        return (f"the data set is loaded once per sweep and shared by every trial, so each would "
                f"train on the file's {path}; searchable data fields: "
                f"{', '.join(f'data.{f}' for f in PER_TRIAL_DATA)} (run one sweep per {path})")
    if section != "model" or field not in ARCH_SIZE_FIELDS or exp.model.factory is not None:
        return None
    archs = exp.search.space.get("model.arch")
    values = domain_values(archs) if archs is not None else [exp.model.arch]
    pretrained = exp.model.weights is not None or "model.weights" in exp.search.space
    if any(field in MODEL_FIELDS_USED.get(arch, set())
           and not (arch == "resnet18" and pretrained) for arch in values):
        return None
    return (f"model.arch {', '.join(map(str, values))} does not read {field} (mlp reads hidden, "
            "depth, dropout; cnn hidden, channels, dropout; resnet18 without weights dropout; "
            "torchvision models none)")


def _fractional(domain: Any) -> float | None:
    """A value inside a uniform or loguniform domain that is not a whole number."""
    if not isinstance(domain, dict) or len(domain) != 1:
        return None
    (kind, args), = domain.items()
    if kind not in ("uniform", "loguniform"):
        return None
    low, high = args
    value = low + (high - low) / math.pi
    return value if not float(value).is_integer() else value + (high - value) / 2


def _check_point(where: str, path: str, value: Any, exp: Experiment) -> None:
    """A value to evaluate first: valid for its field and inside its domain (Ray warned and
    failed the trial, skopt failed the whole sweep behind a journal error)."""
    try:
        exp.with_values({path: value})
    except ConfigError as error:
        raise ConfigError(f"{where}: value {value!r} is invalid ({error})") from None
    domain = exp.search.space[path]
    if domain == LR_RANGE:
        return
    (kind, args), = domain.items()
    inside = value in args if kind in ("choice", "grid") else (
        isinstance(value, int | float) and args[0] <= value <= args[1])
    if not inside:
        raise ConfigError(f"{where}: value {value!r} is outside {kind} {args}")


def check_space(exp: Experiment) -> None:
    """Every space path names a field a trial trains with, and every domain value (and a
    fractional draw of a continuous domain) is valid for that field."""
    for path, domain in exp.search.space.items():
        if not _field_exists(path):
            raise ConfigError(f"search.space.{path}: names no field of the experiment")
        if path.split(".")[0] not in SEARCHABLE:
            raise ConfigError(f"search.space.{path}: not a value a trial trains with "
                              f"(searchable: {', '.join(f'{s}.*' for s in SEARCHABLE[1:])} "
                              "and seed)")
        unused = _unused(path, exp)
        if unused:
            raise ConfigError(f"search.space.{path}: {unused}")
        draw = _fractional(domain)
        if draw is not None:
            try:
                exp.with_values({path: draw})
            except ConfigError:
                (kind, _), = domain.items()
                raise ConfigError(f"search.space.{path}.{kind}: draws fractional values, and "
                                  f"{path} takes whole numbers; use randint: [low, high] or "
                                  "choice") from None
        labels = [str(value) for value in domain_values(domain)] \
            if isinstance(domain, dict) and ("choice" in domain or "grid" in domain) else []
        if len(set(labels)) != len(labels):  # the searcher tells choices apart by their text
            raise ConfigError(f"search.space.{path}: choices {domain_values(domain)} do not "
                              "print distinctly (1 and '1'?); keep one of each")
        for value in domain_values(domain):
            try:
                exp.with_values({path: value})
            except ConfigError as error:
                raise ConfigError(f"search.space.{path}: value {value!r} is invalid "
                                  f"({error})") from None
    if exp.search.space.get("train.lr") == LR_RANGE and (
            not exp.lr_range_test.enabled or exp.trainable is not None):
        raise ConfigError("search.space.train.lr: lr_range needs lr_range_test.enabled: true "
                          "(and the built-in trial, which the range test trains)")
    for i, point in enumerate(exp.search.points_to_evaluate):
        for path, value in point.items():
            if path == "_result":  # a known score: a number (a string was a silent failure)
                if isinstance(value, bool) or not isinstance(value, int | float) or \
                        not math.isfinite(value):
                    raise ConfigError(f"search.points_to_evaluate[{i}]._result: the known "
                                      f"score of that point, a finite number; got {value!r}")
                continue
            where = f"search.points_to_evaluate[{i}].{path}"
            if path not in exp.search.space:
                raise ConfigError(f"{where}: not in search.space")
            _check_point(where, path, value, exp)
    searcher, space = exp.search.searcher, exp.search.space
    is_grid = [isinstance(d, dict) and "grid" in d for d in space.values()]
    if searcher in ("grid", "bayes") and not space:
        raise ConfigError(f"search.space: searcher {searcher} needs a non-empty space")
    if searcher == "grid" and not all(is_grid):
        raise ConfigError("search.space: searcher grid takes only {grid: [...]} domains")
    if searcher == "bayes" and all(is_grid):
        raise ConfigError("search.space: a bayes search needs at least one non-grid domain")
