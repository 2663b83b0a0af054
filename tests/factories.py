"""A user's own data set and network, named as `data.factory` / `model.factory` would name
them: the built-in trial trains them, so the LR range test, checkpoints, resume and the
registry work for them too."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from pipeline.training.data import Tensors


def blobs(cfg, seed: int) -> Tensors:
    """Two Gaussian blobs as 1x4x4 'images' (class = which blob), with a test split; as numpy
    float64 and int32, as a loader built on numpy returns them (the pipeline converts)."""
    rng = np.random.default_rng(seed)
    y = (np.arange(240) % 2).astype(np.int32)
    x = rng.normal(size=(240, 1, 4, 4)) * 0.5 + y[:, None, None, None]
    return Tensors(x[:160], y[:160], x[160:200], y[160:200], 2, x[200:], y[200:])


def not_tensors(cfg, seed: int) -> list:
    return [1, 2, 3]


def tiny_net(cfg, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """Flatten + one hidden layer of model.hidden units."""
    return nn.Sequential(nn.Flatten(), nn.Linear(int(torch.tensor(input_shape).prod()),
                                                 cfg.hidden), nn.ReLU(),
                         nn.Linear(cfg.hidden, num_classes))


def unpadded_convs(cfg, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """Four 5x5 convolutions without padding: needs inputs of at least 17x17."""
    return nn.Sequential(nn.Conv2d(input_shape[0], 4, 5), nn.Conv2d(4, 4, 5), nn.Conv2d(4, 4, 5),
                         nn.Conv2d(4, 4, 5), nn.Flatten(), nn.LazyLinear(num_classes))


def not_a_module(cfg, input_shape, num_classes) -> str:
    return "a network"


class _LogitsAndFeatures(nn.Module):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.net(x), x.flatten(1)


def logits_and_features(cfg, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """A network whose forward returns (logits, features), as research code often does."""
    return _LogitsAndFeatures(tiny_net(cfg, input_shape, num_classes))


class _FailsOnce(nn.Module):
    """A network that raises once, on the first training step of its second epoch, while the
    file `marker` does not exist (it creates it): a trial that must resume from a checkpoint."""

    def __init__(self, net: nn.Module, steps_per_epoch: int, marker: Path) -> None:
        super().__init__()
        self.net, self.steps, self.marker, self.calls = net, steps_per_epoch, marker, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.calls += 1
            if self.calls == self.steps + 1 and not self.marker.exists():
                self.marker.touch()
                raise RuntimeError("fails once, in its second epoch")
        return self.net(x)


def fails_once(cfg, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """tiny_net for `blobs` at batch 16 (10 steps per epoch); marker file: $FAILS_ONCE_MARKER."""
    return _FailsOnce(tiny_net(cfg, input_shape, num_classes), 10,
                      Path(os.environ["FAILS_ONCE_MARKER"]))


class _Gated(nn.Module):
    """Doubles its input when its mean is over 0.5: control flow on a tensor's value, which
    torch.export cannot trace (research code is full of it)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.mean() > 0.5:
            x = x * 2
        return self.net(x)


def gated_net(cfg, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    return _Gated(tiny_net(cfg, input_shape, num_classes))


class _HeadFirst(nn.Module):
    """Registers its head before its backbone, as `__init__`s often do."""

    def __init__(self, features: int, num_classes: int) -> None:
        super().__init__()
        self.head = nn.Linear(16, num_classes)
        self.backbone = nn.Sequential(nn.Flatten(), nn.Linear(features, 16), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


def head_first(cfg, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    return _HeadFirst(int(np.prod(input_shape)), num_classes)
