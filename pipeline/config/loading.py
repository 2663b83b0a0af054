"""Reading an experiment file: YAML, `--set` overrides, checks that span sections.

`load()` is the only way in; every problem becomes one `ConfigError` line naming the field.
"""
from __future__ import annotations

import copy
import difflib
import importlib
import math
import traceback
from collections.abc import Hashable
from pathlib import Path
from typing import Any

import yaml

from pipeline.config.base import ConfigError
from pipeline.config.domains import domain_values
from pipeline.config.paths import set_path
from pipeline.config.schema import MUTABLE_PATHS, Experiment, mutable_paths, validate
from pipeline.config.search_options import trial_count
from pipeline.config.space_checks import check_space
from pipeline.config.trial_options import is_weights_file


def _check_schedule(exp: Experiment) -> None:
    """Every value of train.hyperparameter_schedule is valid where it lands."""
    for i, change in enumerate(exp.train.hyperparameter_schedule):
        try:
            exp.with_values(change.values)
        except ConfigError as error:
            raise ConfigError(f"train.hyperparameter_schedule[{i}]: {error}") from None


def hyperband_fills(trials: int, max_t: int, eta: float) -> list[int]:
    """Trial counts up to `trials` + one band that fill every pausing bracket of Ray's
    HyperBand (same sizes as HyperBandScheduler). A bracket left part-full waits forever for
    the trials it lacks; only the first of a band (milestone max_t) never pauses."""
    s_max_1 = round(math.log(max_t) / math.log(eta)) + 1
    sizes = [math.ceil(s_max_1 / (s + 1) * eta ** s) for s in range(s_max_1)
             if int(max_t * eta ** -s) > 0]
    fills, total = [], 0
    while total <= trials + sum(sizes):
        for s, size in enumerate(sizes):
            fills += range(total + 1, total + size + 1) if s == 0 else [total + size]
            total += size
    return sorted(set(fills))


def _check_scheduler(exp: Experiment) -> None:
    """What each scheduler needs of the rest of the experiment."""
    s, epochs = exp.search, exp.train.epochs
    if "train.epochs" in s.space and s.scheduler != "fifo":
        # they stop trials by epochs up to train.epochs: a searched 4 was cut at the file's 2
        raise ConfigError(f"search.space.train.epochs: not searchable with scheduler "
                          f"{s.scheduler}, which stops trials by epoch up to train.epochs "
                          f"({epochs}); set train.epochs, or use scheduler: fifo")
    grace = {"asha": s.asha.grace_period, "median": s.median.grace_period}.get(s.scheduler)
    if grace is not None and grace > epochs:
        raise ConfigError(f"search.{s.scheduler}.grace_period: longer than train.epochs")
    if s.scheduler == "hyperband" and s.searcher == "bayes":
        raise ConfigError("search.searcher: hyperband cannot take a bayes searcher (it asks "
                          "for trials one by one, so brackets never fill); use searcher: "
                          "random or grid, or scheduler: asha with bayes")
    if s.scheduler == "hyperband":
        fills = hyperband_fills(trial_count(s), epochs, s.hyperband.reduction_factor)
        if trial_count(s) not in fills:
            near = [n for n in fills if n > trial_count(s) - 8][:6]
            raise ConfigError(
                f"search.num_samples: hyperband ({epochs} epochs, reduction_factor "
                f"{s.hyperband.reduction_factor:g}) needs trial counts that fill its brackets, "
                f"e.g. {', '.join(map(str, near))}; {trial_count(s)} leaves one waiting forever")
    if s.scheduler != "pbt":
        return
    if s.searcher == "bayes":
        raise ConfigError("search.searcher: pbt cannot take a bayes searcher (Ray's PBT "
                          "refuses custom searchers); use searcher: random or grid")
    if s.pbt.perturbation_interval >= epochs:
        raise ConfigError("search.pbt.perturbation_interval: must be below train.epochs, "
                          "or no trial ever exploits")
    if not mutable_paths(exp):
        raise ConfigError(f"search.space: pbt needs a value it may change mid-run (one of "
                          f"{', '.join(MUTABLE_PATHS)}, or params.* for your trainable)")


def raised_line(error: BaseException) -> str:
    """`Type: first line of the message (at file:line)` of an error in the user's own code:
    the innermost frame is theirs, not this package's call. A SyntaxError comes from the
    import machinery; the error itself knows the line."""
    frames = traceback.extract_tb(error.__traceback__)
    where = (f"{error.filename}:{error.lineno}" if isinstance(error, SyntaxError)
             else f"{frames[-1].filename}:{frames[-1].lineno}" if frames else "")
    message = (str(error).splitlines() or [""])[0]
    return (f"{type(error).__name__}{': ' + message if message else ''}"
            f"{f' (at {where})' if where else ''}")


def check_callable(field: str, spec: str | None) -> None:
    """Import a function the user named in `field` (never anything they did not name)."""
    if spec is None:
        return
    module_name, _, attr = spec.partition(":")
    try:
        fn = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as error:
        raise ConfigError(f"{field}: cannot import {spec!r} ({error})") from None
    # the module's own code failed as it ran (a NameError at module level, a file it reads):
    # theirs to fix, so the line says where; Ctrl-C and SystemExit are no Exception
    except Exception as error:  # noqa: BLE001
        raise ConfigError(f"{field}: importing {spec!r} raised {raised_line(error)}") from None
    if not callable(fn):
        raise ConfigError(f"{field}: {spec!r} is not callable")


def check_trainable(spec: str | None) -> None:
    check_callable("trainable", spec)


BUILTIN_ARCHS = ("mlp", "cnn", "resnet18")


def _check_arch(exp: Experiment) -> None:
    """model.arch (and every model.arch the search tries) names a built-in or a torchvision
    classification model; else the closest names. torchvision is imported only when an arch
    is not a built-in, so this room stays free of torch otherwise."""
    if exp.model.factory is not None:
        return
    space = exp.search.space.get("model.arch")
    archs = [exp.model.arch, *(domain_values(space) if space is not None else [])]
    if all(arch in BUILTIN_ARCHS for arch in archs):
        return
    import torchvision.models

    # dict: the built-in resnet18 and torchvision's are one name, offered once
    known = list(dict.fromkeys([*BUILTIN_ARCHS,
                                *torchvision.models.list_models(module=torchvision.models)]))
    for arch in archs:
        if arch not in known:
            close = difflib.get_close_matches(str(arch), known, n=3, cutoff=0.4)
            raise ConfigError(f"model.arch: unknown model {arch!r} (built-ins "
                              f"{', '.join(BUILTIN_ARCHS)} or a torchvision classification "
                              f"model){'; closest: ' + ', '.join(close) if close else ''}")


def parse_override(text: str) -> tuple[str, Any]:
    """`a.b=c` -> ("a.b", value parsed as YAML, so numbers and lists get their types)."""
    path, sep, value = text.partition("=")
    if not sep or not path.strip():
        raise ConfigError(f"--set {text!r}: expected key.path=value")
    try:
        return path.strip(), yaml.safe_load(value)
    except yaml.YAMLError:
        raise ConfigError(f"--set {path}: value {value!r} is not valid YAML") from None


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML that refuses a key given twice in one mapping: PyYAML keeps the last silently, so
    a second `train:` section replaced the first one whole."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, Hashable) and key in seen:
                raise ConfigError(f"key {key!r} appears twice in one section "
                                  f"(line {key_node.start_mark.line + 1})")
            if isinstance(key, Hashable):
                seen.add(key)
        return super().construct_mapping(node, deep)


def _refuse_setting_searched(raw: dict, key: str) -> None:
    """`--set train.lr=0.5` with train.lr in search.space: the search sets it in every trial,
    so the override was silently lost."""
    space = (raw.get("search") or {}).get("space") or {}
    if isinstance(space, dict) and key in space:
        raise ConfigError(f"--set {key}: {key} is searched (search.space.{key}), so every "
                          f"trial's value comes from the search; set its domain instead, e.g. "
                          f"--set 'search.space.{key}={{choice: [VALUE]}}'")


def load(path: str | Path, overrides: list[str] = ()) -> Experiment:
    """Read, override and validate an experiment file; raise ConfigError on any problem."""
    path = Path(path)
    try:
        raw = yaml.load(path.read_text(), Loader=_UniqueKeyLoader)  # a SafeLoader
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such experiment file") from None
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{where}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of sections, got {type(raw).__name__}")
    raw = copy.deepcopy(raw)
    for text in overrides:
        key, value = parse_override(text)
        set_path(raw, key, value)
    for text in overrides:
        _refuse_setting_searched(raw, parse_override(text)[0])
    exp = validate(raw)
    _check_arch(exp)  # first: the space checks ask what an arch reads of the model section
    check_space(exp)
    _check_schedule(exp)
    _check_scheduler(exp)
    check_trainable(exp.trainable)
    check_callable("data.factory", exp.data.factory)
    check_callable("model.factory", exp.model.factory)
    return exp


def _absolute(path: str, value: Any) -> Any:
    """value, if a relative file path at `path` (data.root, a model.weights file), made absolute."""
    if path == "data.root" and value is not None and not Path(value).is_absolute():
        return Path(value).absolute()
    if path == "model.weights" and isinstance(value, str) and is_weights_file(value) \
            and not Path(value).is_absolute():
        return str(Path(value).absolute())
    return value


def with_absolute_paths(exp: Experiment) -> Experiment:
    """The experiment with its relative file paths (data.root, a model.weights file, as set or
    searched) made absolute against the working folder they were written for. Trials run in
    Ray's workers, whose working folder is their own: there `imgs` or `w.pt` named nothing,
    and a streamed image folder or a weights file failed every trial. Done once the checks
    have passed, so their messages name the paths as the user wrote them."""
    data = exp.data.model_copy(update={"root": _absolute("data.root", exp.data.root)})
    model = exp.model.model_copy(update={"weights": _absolute("model.weights",
                                                              exp.model.weights)})
    space = dict(exp.search.space)
    for path in ("data.root", "model.weights"):
        domain = space.get(path)
        if isinstance(domain, dict) and len(domain) == 1:
            (kind, members), = domain.items()
            if kind in ("choice", "grid"):
                space[path] = {kind: [_absolute(path, v) for v in members]}
    search = exp.search.model_copy(update={"space": space})
    return exp.model_copy(update={"data": data, "model": model, "search": search})
