"""The experiment file's schema: every section typed, every field documented where declared.

Validated once at the edge (`pipeline.config.loading`), frozen afterwards, so nothing
downstream re-checks anything.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from pipeline.config.base import ConfigError, Strict
from pipeline.config.paths import set_path
from pipeline.config.search_options import Search

# Metrics the built-in trainable reports, with the direction that makes each one better.
BUILTIN_METRICS: dict[str, Literal["min", "max"]] = {
    "val_loss": "min",
    "val_acc": "max",
    "train_loss": "min",
}


class Data(Strict):
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


class Model(Strict):
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


class Cyclic(Strict):
    """Smith's cyclical learning rates (arXiv:1506.01186): the LR runs linearly from
    train.min_lr (base_lr) up to train.lr (max_lr) and back, over and over."""
    mode: Literal["triangular", "triangular2", "exp_range"] = "triangular"
    """triangular: every cycle alike; triangular2: the height halves each cycle; exp_range:
    the height shrinks by `gamma` per epoch."""
    step_size_epochs: float = Field(2.0, gt=0.0)
    """Half a cycle, in epochs (Smith: 2-10 epochs' worth of iterations)."""
    gamma: float = Field(0.9, gt=0.0, le=1.0)
    """exp_range only: the cycle's height is multiplied by this once per epoch."""


class Sgdr(Strict):
    """Cosine annealing with warm restarts (Loshchilov & Hutter, arXiv:1608.03983): from
    train.lr down to train.min_lr, then back up at once."""
    t0_epochs: float = Field(1.0, gt=0.0)
    """Length of the first period, in epochs."""
    t_mult: int = Field(2, ge=1)
    """Each period is this many times longer than the one before."""


class Change(Strict):
    """A step of a hyperparameter schedule: from `epoch` on, `values` apply."""
    epoch: int = Field(ge=0)
    values: dict[str, Any]
    """Dotted path -> value, for paths that may change mid-run (MUTABLE_PATHS)."""


# What may change while a model trains: the optimizer's knobs, the LR's ends and dropout.
# Everything else (widths, the optimizer's kind, the data) shapes the weights or the run.
MUTABLE_PATHS = ("train.lr", "train.min_lr", "train.momentum", "train.weight_decay",
                 "model.dropout")


class Train(Strict):
    epochs: int = Field(10, ge=1)
    """Epochs per trial (ASHA may stop a trial sooner)."""
    optimizer: Literal["sgd", "adamw"] = "sgd"
    """`sgd` (with `momentum`, `nesterov`) or `adamw`."""
    lr: float = Field(0.01, gt=0.0)
    """Peak learning rate (max_lr of cyclic and onecycle, the restart LR of sgdr)."""
    min_lr: float | None = Field(None, ge=0.0)
    """Low end of cosine/onecycle/cyclic/sgdr (cyclic's base_lr); null: each schedule's
    usual one: cyclic lr/4 (Smith), onecycle lr/25 (PyTorch's OneCycleLR), cosine and sgdr 0."""
    momentum: float = Field(0.9, ge=0.0, lt=1.0)
    """SGD momentum (AdamW's beta1)."""
    nesterov: bool = False
    """Nesterov momentum for SGD."""
    weight_decay: float = Field(0.0, ge=0.0)
    """Decoupled for AdamW, L2 for SGD."""
    schedule: Literal["constant", "cosine", "onecycle", "cyclic", "sgdr"] = "constant"
    """LR schedule over the whole run, set per batch (pipeline.training.schedules)."""
    cyclic: Cyclic = Cyclic()
    sgdr: Sgdr = Sgdr()
    hyperparameter_schedule: list[Change] = Field(default_factory=list)
    """Values that change mid-run, e.g. what PBT found (best_config.yaml of a pbt sweep):
    [{epoch: 4, values: {train.lr: 0.03}}]; epochs ascending, each below train.epochs."""
    amp: bool = False
    """Mixed precision (bf16 autocast) when training on CUDA; ignored on CPU."""

    @model_validator(mode="after")
    def _consistent(self) -> Train:
        if self.min_lr is not None and self.min_lr >= self.lr:
            raise ValueError(f"train.min_lr: {self.min_lr} must be below train.lr {self.lr}")
        epochs = [change.epoch for change in self.hyperparameter_schedule]
        for i, change in enumerate(self.hyperparameter_schedule):
            where = f"train.hyperparameter_schedule[{i}]"
            if change.epoch >= self.epochs or (i and change.epoch <= epochs[i - 1]):
                raise ValueError(f"{where}.epoch: {change.epoch} must be above the previous "
                                 f"step's and below train.epochs ({self.epochs})")
            for path in change.values:
                if path not in MUTABLE_PATHS:
                    raise ValueError(f"{where}.values.{path}: cannot change mid-run (one of "
                                     f"{', '.join(MUTABLE_PATHS)})")
        return self


class LRRangeTest(Strict):
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


class Resources(Strict):
    cpu: float = Field(1.0, gt=0.0)
    """CPUs per trial (also the trial's torch threads, at least one)."""
    gpu: float = Field(0.0, ge=0.0)
    """GPUs per trial; fractions pack several trials on one GPU."""


class Tracking(Strict):
    uri: str | None = None
    """MLflow tracking URI; null: MLFLOW_TRACKING_URI, else sqlite:///mlflow.db."""
    experiment: str | None = None
    """MLflow experiment name; null: the experiment's `name`."""


class Storage(Strict):
    path: str = "ray_results"
    """Where Ray Tune keeps results and checkpoints: a folder or s3://bucket/prefix. With
    s3:// the MLflow artifacts of a local store go there too, under `mlartifacts/`."""

    @field_validator("path")
    @classmethod
    def _s3_bucket(cls, path: str) -> str:
        if path.startswith("s3://") and len(path[5:].split("/")[0]) < 3:
            raise ValueError(f"{path!r} names no bucket (expected s3://bucket/prefix)")
        return path


class Cluster(Strict):
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


class Experiment(Strict):
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
        return self

    def trial_config(self) -> dict[str, Any]:
        """The nested dict a trial receives (search, tracking and storage left out)."""
        return self.model_dump(mode="json", include=TRIAL_SECTIONS)

    def with_values(self, values: dict[str, Any]) -> Experiment:
        """A copy with dotted-path values applied and re-validated."""
        raw = self.model_dump(mode="json")
        for path, value in values.items():
            set_path(raw, path, value)
        return validate(raw)

    def with_trial_config(self, config: dict[str, Any]) -> Experiment:
        """A copy with a trial's nested config (sampled values in place) swapped in."""
        return validate({**self.model_dump(mode="json"), **config})


def mutable_paths(exp: Experiment) -> list[str]:
    """Searched paths PBT may change mid-run: MUTABLE_PATHS for the built-in trainable, any
    params.* for a custom one. Other searched values are drawn once and, on an exploit,
    copied from the trial cloned along with its weights."""
    return [path for path in exp.search.space
            if (path in MUTABLE_PATHS if exp.trainable is None else path.startswith("params."))]


TRIAL_SECTIONS = {"name", "seed", "data", "model", "train", "resources", "params"}


def format_error(error: ValidationError) -> str:
    """The first of pydantic's errors as one line: `field.path: message`."""
    first = error.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    if first["type"] == "extra_forbidden":
        message = "unknown key"
    else:
        message = first["msg"].removeprefix("Value error, ")
    if not where or message.startswith(where.split(".")[0] + "."):
        return message  # the validator already named the field
    return f"{where}: {message}"


def validate(raw: dict[str, Any]) -> Experiment:
    """A raw nested dict -> Experiment, or one ConfigError line naming the field."""
    try:
        return Experiment.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(format_error(error)) from None

