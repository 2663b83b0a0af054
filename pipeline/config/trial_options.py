"""What a trial trains: the `data`, `model`, `train` and `lr_range_test` sections.

Every field is documented where it is declared; `pipeline.config.schema` assembles them into
the experiment.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from pipeline.config.base import Strict

FACTORY = r"^[\w.]+:\w+$"


WEIGHTS_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".tar")
"""Endings of state-dict files: PyTorch's, Lightning's `.ckpt`, the reference scripts'
`checkpoint.pth.tar`. torchvision's weights names (`IMAGENET1K_V1`, `Enum.MEMBER`) end in none."""


def is_weights_file(weights: str) -> bool:
    """A model.weights value that names a state-dict file: a path with a folder in it, a name
    with a state-dict file's ending, or any file that exists (relative to the working folder:
    `r18_weights` too). The driver asks first, in the user's working folder, and
    `with_absolute_paths` makes such a path absolute for the trials, which run in folders of
    their own. A missing file with a state-dict ending is still a file: refused as missing."""
    return (os.sep in weights or weights.lower().endswith(WEIGHTS_SUFFIXES)
            or os.path.isfile(weights))


class Data(Strict):
    dataset: Literal["digits", "mnist", "fashion_mnist", "cifar10", "fake", "imagefolder"] = \
        "digits"
    """`digits` ships with scikit-learn (no download); the torchvision sets and `imagefolder`
    read `root`."""
    root: Path | None = None
    """Folder holding torchvision's files for mnist/fashion_mnist/cifar10 (MNIST's IDX files
    in `MNIST/raw/` or `FashionMNIST/raw/` or straight in root, plain or `.gz`; CIFAR-10's
    `cifar-10-batches-py/`); for `imagefolder` one sub-folder per class (or `train/`, and
    optionally `val/` and `test/`, each so)."""
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
    """DataLoader worker processes when streaming (at most as many as the CPUs a trial may
    use: more would only queue for the same cores)."""
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
    `IMAGENET1K_V1`) read from the local torch hub cache, or a path to a state-dict file (any
    existing file, relative to the working folder, or one with a folder in it or ending .pt,
    .pth, .bin, .ckpt or .tar). The classifier head is replaced for the data set's classes."""
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

    @property
    def weights_file(self) -> bool:
        """Whether `weights` names a file rather than torchvision weights."""
        return self.weights is not None and is_weights_file(self.weights)


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
    compile: bool = False
    """`torch.compile` the model (worth it for long trials on a GPU; the first epoch pays
    for compiling)."""

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
