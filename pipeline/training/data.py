"""Datasets as in-memory tensors, loaded once per sweep and shared with every trial.

Everything these models train on fits in memory, and indexing tensors directly is ~1.7x faster
than a DataLoader here (BASELINES.md), so a dataset is just four tensors and its shape.
"""
from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pipeline.config import ConfigError, Data


@dataclass(frozen=True)
class Tensors:
    """Train/validation split: float inputs (N, C, H, W) scaled to [0, 1], int64 labels."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    num_classes: int

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])


def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return bunch.images[:, None].astype(np.float32) / 16.0, bunch.target


def _mnist_like(cfg: Data) -> tuple[np.ndarray, np.ndarray]:
    from torchvision import datasets

    cls = datasets.MNIST if cfg.dataset == "mnist" else datasets.FashionMNIST
    try:
        ds = cls(str(cfg.root), train=True, download=cfg.download)
    except RuntimeError:
        raise ConfigError(f"data.root: no {cfg.dataset} files under {cfg.root}/{cls.__name__}/raw "
                          "(set data.download: true to fetch them)") from None
    return ds.data.numpy()[:, None].astype(np.float32) / 255.0, ds.targets.numpy()


def _cifar10(cfg: Data) -> tuple[np.ndarray, np.ndarray]:
    # Read torchvision's pickled batches directly: its loader insists on the official md5 sums,
    # which would also refuse a user's own subset written in the same layout.
    folder = Path(cfg.root) / "cifar-10-batches-py"
    if cfg.download and not folder.exists():
        from torchvision import datasets

        datasets.CIFAR10(str(cfg.root), train=True, download=True)
    batches = sorted(folder.glob("data_batch_*"))
    if not batches:
        raise ConfigError(f"data.root: no cifar10 files under {folder} "
                          "(set data.download: true to fetch them)")
    images, labels = [], []
    for batch in batches:
        with open(batch, "rb") as f:
            entry = pickle.load(f, encoding="latin1")
        images.append(np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        labels.extend(entry["labels"])
    return np.concatenate(images).astype(np.float32) / 255.0, np.asarray(labels)


def _fake(cfg: Data, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from torchvision import datasets, transforms

    ds = datasets.FakeData(size=cfg.fake_size, image_size=(3, 32, 32), num_classes=10,
                           transform=transforms.ToTensor(), random_offset=seed)
    xs, ys = zip(*(ds[i] for i in range(len(ds))))
    return torch.stack(xs).numpy(), np.asarray(ys)


def load(cfg: Data, seed: int = 0) -> Tensors:
    """Load `cfg.dataset` and split off a seeded, stratification-free validation set."""
    if cfg.dataset in ("mnist", "fashion_mnist", "cifar10") and cfg.root is None:
        raise ConfigError(f"data.root: {cfg.dataset} needs a folder with its files")
    if cfg.dataset == "digits":
        x, y = _digits()
    elif cfg.dataset == "cifar10":
        x, y = _cifar10(cfg)
    elif cfg.dataset == "fake":
        x, y = _fake(cfg, seed)
    else:
        x, y = _mnist_like(cfg)
    if cfg.limit is not None:
        x, y = x[: cfg.limit], y[: cfg.limit]
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    n_val = max(1, round(len(x) * cfg.val_fraction))
    val, train = order[:n_val], order[n_val:]
    x_t, y_t = torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(np.asarray(y, np.int64))
    return Tensors(x_t[train], y_t[train], x_t[val], y_t[val], num_classes=int(y.max()) + 1)
