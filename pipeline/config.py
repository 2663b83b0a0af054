"""The experiment file: typed, validated once at the edge, frozen afterwards.

Every field is documented where it is declared. `load()` is the only way in: it reads YAML
safely, applies `--set` overrides, and turns every problem into one `ConfigError` line that
names the field, so nothing downstream has to re-check anything.
"""
from __future__ import annotations

import copy
import importlib
import math
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

# Metrics the built-in trainable reports, with the direction that makes each one better.
BUILTIN_METRICS: dict[str, Literal["min", "max"]] = {
    "val_loss": "min",
    "val_acc": "max",
    "train_loss": "min",
}
LR_RANGE = "lr_range"  # space entry whose bounds come from the LR range test


class ConfigError(ValueError):
    """Bad experiment input; its message is one line naming the field or the cause."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Data(_Strict):
    dataset: Literal["digits", "mnist", "fashion_mnist", "cifar10", "fake"] = "digits"
    """`digits` ships with scikit-learn (no download); the torchvision sets read `root`."""
    root: Path | None = None
    """Folder holding torchvision's files for mnist/fashion_mnist/cifar10."""
    download: bool = False
    """Let torchvision fetch missing files into `root` (off: a missing file is an error)."""
    batch_size: int = Field(64, ge=1)
    """Mini-batch size for training and evaluation."""
    val_fraction: float = Field(0.2, gt=0.0, lt=1.0)
    """Share of the training set held out for validation (seeded split)."""
    fake_size: int = Field(512, ge=10)
    """Number of images for `fake` (torchvision FakeData, 3x32x32, 10 classes)."""
    limit: int | None = Field(None, ge=10)
    """Use only the first `limit` training examples (smoke tests, quick looks)."""


class Model(_Strict):
    arch: Literal["mlp", "cnn", "resnet18"] = "mlp"
    """`mlp`, a small `cnn`, or torchvision's `resnet18` adapted to small inputs."""
    hidden: int = Field(128, ge=1)
    """Width of the hidden layers (mlp) or of the classifier layer (cnn)."""
    depth: int = Field(1, ge=1, le=8)
    """Number of hidden layers of the mlp."""
    channels: int = Field(16, ge=1)
    """Channels of the cnn's first conv layer (the second has twice as many)."""
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    """Dropout before every classifier layer."""


class Train(_Strict):
    epochs: int = Field(10, ge=1)
    """Epochs per trial (ASHA may stop a trial sooner)."""
    optimizer: Literal["sgd", "adamw"] = "sgd"
    """`sgd` (with `momentum`, `nesterov`) or `adamw`."""
    lr: float = Field(0.01, gt=0.0)
    """Peak learning rate."""
    momentum: float = Field(0.9, ge=0.0, lt=1.0)
    """SGD momentum (AdamW's beta1)."""
    nesterov: bool = False
    """Nesterov momentum for SGD."""
    weight_decay: float = Field(0.0, ge=0.0)
    """Decoupled for AdamW, L2 for SGD."""
    schedule: Literal["constant", "cosine", "onecycle"] = "constant"
    """LR schedule over the whole run, stepped per batch."""
    amp: bool = False
    """Mixed precision (bf16 autocast) when training on CUDA; ignored on CPU."""


class LRRangeTest(_Strict):
    enabled: bool = False
    """Run Leslie Smith's range test before the sweep and use its suggestion."""
    start_lr: float = Field(1e-7, gt=0.0)
    end_lr: float = Field(10.0, gt=0.0)
    num_iter: int = Field(100, ge=5)
    """Mini-batches over which the LR rises from start_lr to end_lr."""
    mode: Literal["exp", "linear"] = "exp"
    smooth_beta: float = Field(0.98, ge=0.0, lt=1.0)
    """EMA factor for the loss curve (bias-corrected); 0 disables smoothing."""
    diverge_threshold: float = Field(4.0, gt=1.0)
    """Stop once the smoothed loss exceeds this multiple of the best loss seen."""
    val_loss: bool = False
    """Also record the validation loss at every step (slower, less noisy)."""

    @model_validator(mode="after")
    def _ordered(self) -> LRRangeTest:
        if self.end_lr <= self.start_lr:
            raise ValueError("end_lr must be greater than start_lr")
        return self


class Bayes(_Strict):
    """skopt.Optimizer settings. Defaults were picked on bench/bayes.py (Branin@30,
    Hartmann6@60, 5 seeds, median regret, Ray-free loop at concurrency 1 unless said); the
    numbers quoted are from that tuning loop, bench/results/bayes.md has the final ones.
    Over 15 seeds, fixed noise (1e-6) and designs of 6, 8 or 14 points were within the
    seed-to-seed spread of these defaults, so the 5-seed differences are weak evidence."""
    acq_func: Literal["EI", "PI", "LCB", "gp_hedge"] = "EI"
    """Acquisition function. EI: LCB (kappa 1.96 or 3) and gp_hedge were no better on
    Hartmann6 (~0.12, stuck in the second basin) and gp_hedge costs three optimisations.
    Only EI gets the `local` optimiser (as log EI); the others fall back to skopt's L-BFGS."""
    n_initial_points: int | None = Field(None, ge=1)
    """Design points before the surrogate takes over; null: max(10, 2.5 x searched
    dimensions). A fixed count cannot serve both benchmarks: Branin (2-d) 0.0003 with 10 and
    0.014 with 20; Hartmann6 (6-d) ends in its second basin (0.12) in 3 of 5 seeds with 10,
    median 0.0007 with 15 and 0.0009 with 20."""
    initial_point_generator: Literal["random", "sobol", "lhs", "halton"] = "lhs"
    """Space-filling design. lhs: at 20 points Sobol was worse on Hartmann6 (0.12 vs 0.007)
    and skopt warns that Sobol's balance needs a power of two."""
    base_estimator: Literal["GP", "RF", "ET"] = "GP"
    """Surrogate model. GBRT and dummy are left out: they fail on scikit-learn 1.9."""
    xi: float = Field(0.0, ge=0.0)
    """Exploration margin of EI/PI, in the metric's units. 0 (as Optuna): with the settings
    below Hartmann6 0.0009 against 0.0031 with 0.01; Branin unchanged (0.0003)."""
    kappa: float = Field(1.96, ge=0.0)
    """Exploration weight of LCB (skopt's default)."""
    noise: Literal["gaussian"] | float = "gaussian"
    """GP noise: "gaussian" fits it (under `gp_prior` a Gamma(1.1, 30) prior keeps it small),
    a number fixes it. Fitted: Hartmann6 0.0031 against 0.0056 at 1e-10, Branin 0.0004
    against 0.0069; a little noise smooths the fit. Running trials still never coincide: the
    believer (`pipeline.acquisition` module doc) gives pending points no noise."""
    gp_restarts: int = Field(2, ge=0)
    """Random restarts of the GP's kernel hyperparameter fit (skopt's default): more cost
    every refit, and the fits were not the weak point."""
    gp_prior: bool = True
    """Add Optuna GPSampler's priors to the GP's marginal likelihood (length scales pulled
    towards 1 on the unit cube, signal variance Gamma(2, 1), fitted noise Gamma(1.1, 30)).
    Without them a dimension's length scale runs to skopt's bound 100 (ignored) and
    Hartmann6 went 0.0056 -> 0.0081 (20 design points, noise 1e-10); refits are also ~2x
    faster."""
    acq_optimizer: Literal["sampling", "lbfgs", "local"] = "local"
    """How the acquisition is maximised. local (GP + EI only): log EI at `n_points` random
    candidates plus `n_local` around the best points seen, L-BFGS-B from the
    `n_restarts_optimizer` best. skopt's lbfgs (plain EI from random candidates only) with
    the previous defaults left Hartmann6 at 0.028 and Branin at 0.0054 (not re-measured
    against the final GP settings). Trees have no gradient and always use sampling."""
    n_points: int = Field(2000, ge=10)
    """Random candidates the acquisition is evaluated at. 2000: 10000 (skopt's default) with
    20 restarts gave the same Hartmann6 regret (0.12 vs 0.13) at 4x the searcher time."""
    n_restarts_optimizer: int = Field(5, ge=1)
    """L-BFGS restarts of the acquisition optimiser (skopt's default; 20 did not help)."""
    n_local: int = Field(500, ge=0)
    """`local` only: candidates drawn around the 5 best points seen (Gaussian steps of
    `local_scale`, 1/10 or 1/100 of it): they find the incumbent's basin, which random
    candidates rarely hit closely enough to refine it."""
    local_scale: float = Field(0.1, gt=0.0)
    """`local` only: the largest step of those candidates, as a fraction of each range."""
    log_ei: bool = True
    """`local` only: maximise log EI, which stays finite and ordered where EI underflows to
    0 (far from the incumbent, or next to a pending point). EI itself: Hartmann6 0.0077 vs
    0.0056 (20 design points, priors, noise 1e-10); without priors Branin preferred EI
    (0.0013 vs 0.012), with priors and fitted noise log EI reaches 0.0003."""


class Asha(_Strict):
    grace_period: int = Field(1, ge=1)
    """Epochs every trial runs before it may be stopped."""
    reduction_factor: float = Field(3.0, gt=1.0)


class Budget(_Strict):
    """What a sweep may spend. Once either limit is reached no new trial starts; running trials
    finish (what they spent is not refunded). Both null: no limit."""
    usd: float | None = Field(None, gt=0.0)
    """Estimated dollars: trial hours x the hourly price of their node type (cluster.node_type,
    priced by the cluster config's metadata.prices_usd_per_hour); null: no limit."""
    hours: float | None = Field(None, gt=0.0)
    """Trial-hours: the trials' wall time summed (two trials running for an hour: 2); null:
    no limit."""


class Search(_Strict):
    searcher: Literal["grid", "random", "bayes"] = "random"
    scheduler: Literal["fifo", "asha"] = "fifo"
    metric: str = "val_loss"
    """Reported metric the sweep optimises."""
    mode: Literal["min", "max"] = "min"
    num_samples: int = Field(8, ge=1)
    """Trials per grid cell: with `grid:` entries, every searcher runs num_samples x cells
    trials (grid and random repeat the whole grid, bayes searches each cell)."""
    max_concurrent: int = Field(2, ge=1)
    """Trials running at once (also capped by the cluster's free resources)."""
    max_failures: int = Field(0, ge=0)
    """Retries of a trial that raised, before it is marked failed."""
    space: dict[str, Any] = Field(default_factory=dict)
    """Dotted field path -> domain: {loguniform|uniform|randint|int: [lo, hi]},
    {choice: [...]}, {grid: [...]}, or the string `lr_range`."""
    points_to_evaluate: list[dict[str, Any]] = Field(default_factory=list)
    """Configs (dotted path -> value) to try first; bayes also accepts `_result`."""
    bayes: Bayes = Bayes()
    asha: Asha = Asha()
    budget: Budget = Budget()

    @field_validator("space")
    @classmethod
    def _domains(cls, space: dict[str, Any]) -> dict[str, Any]:
        for path, domain in space.items():
            check_domain(path, domain)
        return space


class Resources(_Strict):
    cpu: float = Field(1.0, gt=0.0)
    """CPUs per trial (also the trial's torch threads, at least one)."""
    gpu: float = Field(0.0, ge=0.0)
    """GPUs per trial; fractions pack several trials on one GPU."""


class Tracking(_Strict):
    uri: str | None = None
    """MLflow tracking URI; null: MLFLOW_TRACKING_URI, else sqlite:///mlflow.db."""
    experiment: str | None = None
    """MLflow experiment name; null: the experiment's `name`."""


class Storage(_Strict):
    path: str = "ray_results"
    """Where Ray Tune keeps results and checkpoints: a folder or s3://bucket/prefix. With
    s3:// the MLflow artifacts of a local store go there too, under `mlartifacts/`."""

    @field_validator("path")
    @classmethod
    def _s3_bucket(cls, path: str) -> str:
        if path.startswith("s3://") and len(path[5:].split("/")[0]) < 3:
            raise ValueError(f"{path!r} names no bucket (expected s3://bucket/prefix)")
        return path


class Cluster(_Strict):
    address: str | None = None
    """Ray address to join; null: RAY_ADDRESS, else a local Ray."""
    autoscaler_config: Path | None = None
    """The cluster's autoscaler YAML (e.g. cluster/aws.yaml), read to learn which node types
    it can add; null: ~/ray_bootstrap_config.yaml when it exists (where `ray up` leaves it on
    the head). Used when joining a cluster, and for cost estimates (its price table)."""
    node_type: str | None = None
    """Node type trials are billed at in cost estimates and search.budget.usd: a key of the
    autoscaler config's metadata.prices_usd_per_hour. null: on a local Ray `local` ($0); on a
    cluster, each trial's node matched by its CPU/GPU count (spot types first)."""


class Experiment(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    """Names the sweep and, unless tracking.experiment is set, the MLflow experiment."""
    seed: int = 0
    data: Data = Data()
    model: Model = Model()
    train: Train = Train()
    lr_range_test: LRRangeTest = LRRangeTest()
    search: Search = Search()
    resources: Resources = Resources()
    tracking: Tracking = Tracking()
    storage: Storage = Storage()
    cluster: Cluster = Cluster()
    trainable: str | None = Field(None, pattern=r"^[\w.]+:\w+$")
    """`package.module:function`, a Ray Tune function trainable; null: the built-in one."""
    params: dict[str, Any] = Field(default_factory=dict)
    """Free-form values for a custom trainable; searchable as params.<key>."""

    @model_validator(mode="after")
    def _consistent(self) -> Experiment:
        if self.trainable is None:
            natural = BUILTIN_METRICS.get(self.search.metric)
            if natural is None:
                raise ValueError(
                    f"search.metric: {self.search.metric!r} is not reported by the built-in "
                    f"trainable (one of {sorted(BUILTIN_METRICS)})")
            if natural != self.search.mode:
                raise ValueError(
                    f"search.mode: {self.search.metric} is better when {natural}, not "
                    f"{self.search.mode}")
        if self.search.scheduler == "asha" and self.search.asha.grace_period > self.train.epochs:
            raise ValueError("search.asha.grace_period: longer than train.epochs")
        return self

    def trial_config(self) -> dict[str, Any]:
        """The nested dict a trial receives (search, tracking and storage left out)."""
        return self.model_dump(mode="json", include=TRIAL_SECTIONS)

    def with_values(self, values: dict[str, Any]) -> Experiment:
        """A copy with dotted-path values applied and re-validated."""
        raw = self.model_dump(mode="json")
        for path, value in values.items():
            set_path(raw, path, value)
        return _validate(raw)

    def with_trial_config(self, config: dict[str, Any]) -> Experiment:
        """A copy with a trial's nested config (sampled values in place) swapped in."""
        return _validate({**self.model_dump(mode="json"), **config})


TRIAL_SECTIONS = {"name", "seed", "data", "model", "train", "resources", "params"}
_INTERVALS = ("loguniform", "uniform", "randint", "int")
_LISTS = ("choice", "grid")


def check_domain(path: str, domain: Any) -> None:
    """Raise ValueError naming `path` unless `domain` is a well-formed search domain."""
    where = f"search.space.{path}"
    if domain == LR_RANGE:
        if path != "train.lr":
            raise ValueError(f"{where}: lr_range only applies to train.lr")
        return
    if not isinstance(domain, dict) or len(domain) != 1:
        raise ValueError(f"{where}: expected one of {_INTERVALS + _LISTS} or 'lr_range'")
    (kind, args), = domain.items()
    if kind in _LISTS:
        if not isinstance(args, list) or not args:
            raise ValueError(f"{where}.{kind}: expected a non-empty list")
        return
    if kind not in _INTERVALS:
        raise ValueError(f"{where}: unknown domain {kind!r} (one of {_INTERVALS + _LISTS})")
    if (not isinstance(args, list) or len(args) != 2
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in args)
            or not all(math.isfinite(v) for v in args)):
        raise ValueError(f"{where}.{kind}: expected [low, high] numbers")
    low, high = args
    if low >= high:
        raise ValueError(f"{where}.{kind}: low {low} must be below high {high}")
    if kind == "loguniform" and low <= 0:
        raise ValueError(f"{where}.loguniform: bounds must be positive")
    if kind in ("randint", "int") and not all(float(v).is_integer() for v in args):
        raise ValueError(f"{where}.{kind}: bounds must be integers")


def domain_values(domain: Any) -> list[Any]:
    """Representative values of a domain (its ends or members), to type-check the field."""
    if domain == LR_RANGE:
        return []
    (_, args), = domain.items()
    return list(args)


_FREE_FORM = (("search", "space"), ("params",))  # mappings whose keys may hold dots


def set_path(tree: dict[str, Any], path: str, value: Any) -> None:
    """Set `tree[a][b][c] = value` for path `a.b.c`; under search.space and params the rest
    of the path is one key (`search.space.train.lr` sets space["train.lr"])."""
    parts = path.split(".")
    for i in range(1, len(parts)):
        if tuple(parts[:i]) in _FREE_FORM:
            parts = parts[:i] + [".".join(parts[i:])]
            break
    node = tree
    for key in parts[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{path}: {key} is a value, not a section")
    node[parts[-1]] = value


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


def _format(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    if first["type"] == "extra_forbidden":
        message = "unknown key"
    else:
        message = first["msg"].removeprefix("Value error, ")
    if not where or message.startswith(where.split(".")[0] + "."):
        return message  # the validator already named the field
    return f"{where}: {message}"


def _validate(raw: dict[str, Any]) -> Experiment:
    try:
        return Experiment.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(_format(error)) from None


def _check_space(exp: Experiment) -> None:
    """Every space path names a field, and every domain value is valid for that field."""
    for path, domain in exp.search.space.items():
        if not _field_exists(path):
            raise ConfigError(f"search.space.{path}: names no field of the experiment")
        for value in domain_values(domain):
            try:
                exp.with_values({path: value})
            except ConfigError as error:
                raise ConfigError(f"search.space.{path}: value {value!r} is invalid "
                                  f"({error})") from None
    for i, point in enumerate(exp.search.points_to_evaluate):
        for path in point:
            if path != "_result" and path not in exp.search.space:
                raise ConfigError(f"search.points_to_evaluate[{i}].{path}: not in search.space")
    searcher, space = exp.search.searcher, exp.search.space
    is_grid = [isinstance(d, dict) and "grid" in d for d in space.values()]
    if searcher in ("grid", "bayes") and not space:
        raise ConfigError(f"search.space: searcher {searcher} needs a non-empty space")
    if searcher == "grid" and not all(is_grid):
        raise ConfigError("search.space: searcher grid takes only {grid: [...]} domains")
    if searcher == "bayes" and all(is_grid):
        raise ConfigError("search.space: a bayes search needs at least one non-grid domain")


def check_trainable(spec: str | None) -> None:
    """Import a custom trainable named by the user (never anything they did not name)."""
    if spec is None:
        return
    module_name, _, attr = spec.partition(":")
    try:
        fn = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as error:
        raise ConfigError(f"trainable: cannot import {spec!r} ({error})") from None
    if not callable(fn):
        raise ConfigError(f"trainable: {spec!r} is not callable")


def parse_override(text: str) -> tuple[str, Any]:
    """`a.b=c` -> ("a.b", value parsed as YAML, so numbers and lists get their types)."""
    path, sep, value = text.partition("=")
    if not sep or not path.strip():
        raise ConfigError(f"--set {text!r}: expected key.path=value")
    try:
        return path.strip(), yaml.safe_load(value)
    except yaml.YAMLError:
        raise ConfigError(f"--set {path}: value {value!r} is not valid YAML") from None


def load(path: str | Path, overrides: list[str] = ()) -> Experiment:
    """Read, override and validate an experiment file; raise ConfigError on any problem."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
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
    exp = _validate(raw)
    _check_space(exp)
    check_trainable(exp.trainable)
    return exp
