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


FACTORY = r"^[\w.]+:\w+$"


class Data(Strict):
    dataset: Literal["digits", "mnist", "fashion_mnist", "cifar10", "fake", "imagefolder"] = \
        "digits"
    """`digits` ships with scikit-learn (no download); the torchvision sets and `imagefolder`
    read `root`."""
    root: Path | None = None
    """Folder holding torchvision's files for mnist/fashion_mnist/cifar10; for `imagefolder`
    one sub-folder per class (or `train/`, and optionally `val/` and `test/`, each so)."""
    download: bool = False
    """Let torchvision fetch missing files into `root` (off: a missing file is an error)."""
    batch_size: int = Field(64, ge=1)
    """Mini-batch size for training and evaluation."""
    val_fraction: float = Field(0.2, gt=0.0, lt=1.0)
    """Share of the training set held out for validation (seeded split; stratified by class
    for `imagefolder`, used only when it has no `val/` folder)."""
    test_fraction: float = Field(0.0, ge=0.0, lt=1.0)
    """`imagefolder` without a `test/` folder: share held out as the test split (seeded,
    stratified); 0: no test split. Trials never see it; the best model is scored on it once."""
    image_size: int | None = Field(None, ge=8)
    """`imagefolder`: every image resized (shorter side) and centre-cropped to this square size;
    null: 64."""
    fake_size: int = Field(512, ge=10)
    """Number of images for `fake` (torchvision FakeData, 3x32x32, 10 classes)."""
    limit: int | None = Field(None, ge=10)
    """Use only the first `limit` training examples (smoke tests, quick looks)."""
    augment: list[Literal["crop", "resized_crop", "flip"]] = Field(default_factory=list)
    """Training-batch augmentation on the trial's device, seeded per epoch: `crop` (random
    crop after `crop_padding` zero padding), `resized_crop` (random area 35-100%, aspect 3/4-4/3,
    resized back), `flip` (horizontal, p=0.5); [] is none."""
    crop_padding: int = Field(4, ge=0)
    """Padding (pixels per side) of the `crop` augmentation."""
    normalize: bool = False
    """Standardise inputs per channel by `mean`/`std` (computed on the training split unless
    given). The registered model takes unnormalised [0, 1] inputs and standardises itself."""
    mean: list[float] | None = None
    """Per-channel means for `normalize` (null: computed on the training split)."""
    std: list[float] | None = None
    """Per-channel standard deviations for `normalize` (null: computed on the training split)."""
    cache: Literal["auto", "memory", "stream"] = "auto"
    """`imagefolder`: `memory` decodes every image once into a uint8 tensor shared with all
    trials; `stream` decodes batches from disk in DataLoader workers; `auto`: memory when the
    decoded set fits `memory_budget_mb`."""
    memory_budget_mb: float = Field(2048, gt=0)
    """Largest decoded uint8 image set (all splits) that `cache: auto` keeps in memory."""
    workers: int = Field(2, ge=0)
    """DataLoader worker processes when streaming."""
    factory: str | None = Field(None, pattern=FACTORY)
    """`package.module:function` called as `function(data_section, seed)`, returning a
    `pipeline.training.data.Tensors`: your own data set with the built-in trial."""

    @model_validator(mode="after")
    def _consistent(self) -> Data:
        if (self.mean is None) != (self.std is None):
            raise ValueError("data.mean and data.std: give both or neither")
        if self.mean is not None and (len(self.mean) != len(self.std)
                                      or any(s <= 0 for s in self.std)):
            raise ValueError("data.std: one positive value per channel, as many as data.mean")
        if self.mean is not None and not self.normalize:
            raise ValueError("data.mean: set data.normalize: true to use it")
        if self.val_fraction + self.test_fraction >= 1.0:
            raise ValueError("data.test_fraction: val_fraction + test_fraction must be below 1")
        return self


class Model(Strict):
    arch: str = Field("mlp", min_length=1)
    """`mlp`, a small `cnn`, `resnet18` adapted to small inputs, or any torchvision
    classification model by name (`torchvision.models.list_models(module=torchvision.models)`)."""
    hidden: int = Field(128, ge=1)
    """Width of the hidden layers (mlp) or of the classifier layer (cnn)."""
    depth: int = Field(1, ge=1, le=8)
    """Number of hidden layers of the mlp."""
    channels: int = Field(16, ge=1)
    """Channels of the cnn's first conv layer (the second has twice as many)."""
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    """Dropout before every classifier layer (mlp, cnn, resnet18; torchvision models keep
    their own)."""
    weights: str | None = None
    """Pretrained weights for a torchvision model: a weights name (`ResNet18_Weights.DEFAULT`,
    `IMAGENET1K_V1`) read from the local torch hub cache, or a path to a state-dict file. The
    classifier head is replaced for the data set's classes."""
    freeze: Literal["none", "backbone"] = "none"
    """`backbone`: train only the classifier head (with `weights`)."""
    factory: str | None = Field(None, pattern=FACTORY)
    """`package.module:function` called as `function(model_section, input_shape, num_classes)`
    returning an `nn.Module`: your own network with the built-in trial (`arch` is ignored)."""

    @model_validator(mode="after")
    def _frozen_needs_weights(self) -> Model:
        if self.freeze == "backbone" and self.weights is None:
            raise ValueError("model.freeze: backbone needs model.weights (a random backbone "
                             "would stay random)")
        return self


class Train(Strict):
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
    compile: bool = False
    """`torch.compile` the model (worth it for long trials on a GPU; the first epoch pays
    for compiling)."""


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
    trainable: str | None = Field(None, pattern=FACTORY)
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
        return validate(raw)

    def with_trial_config(self, config: dict[str, Any]) -> Experiment:
        """A copy with a trial's nested config (sampled values in place) swapped in."""
        return validate({**self.model_dump(mode="json"), **config})


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

