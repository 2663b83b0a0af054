"""Datasets: the bundled default, torchvision's file layouts written by the test, clear errors."""
from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.config import ConfigError, Data
from pipeline.training.data import load


def test_digits_is_split_reproducibly() -> None:
    a, b = load(Data(), seed=3), load(Data(), seed=3)
    assert a.input_shape == (1, 8, 8) and a.num_classes == 10
    assert len(a.x_train) + len(a.x_val) == 1797
    assert len(a.x_val) == round(1797 * 0.2)
    assert torch.equal(a.y_val, b.y_val)
    assert not torch.equal(a.y_val, load(Data(), seed=4).y_val)
    assert 0.0 <= float(a.x_train.min()) and float(a.x_train.max()) <= 1.0


def _write_idx(path: Path, array: np.ndarray) -> None:
    """torchvision's MNIST reader takes the raw idx files (big-endian header)."""
    type_code = 0x08
    header = struct.pack(">HBB", 0, type_code, array.ndim)
    header += b"".join(struct.pack(">I", d) for d in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


@pytest.mark.parametrize(("dataset", "folder"), [("mnist", "MNIST"),
                                                 ("fashion_mnist", "FashionMNIST")])
def test_mnist_layout_from_local_files(tmp_path: Path, dataset: str, folder: str) -> None:
    raw = tmp_path / folder / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", 50), ("t10k", 10)):
        _write_idx(raw / f"{split}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)))
        _write_idx(raw / f"{split}-labels-idx1-ubyte", np.arange(n) % 10)
    tensors = load(Data(dataset=dataset, root=tmp_path, val_fraction=0.2))
    assert tensors.input_shape == (1, 28, 28)
    assert len(tensors.x_train) == 40 and len(tensors.x_val) == 10
    assert tensors.num_classes == 10


def test_cifar10_layout_from_local_files(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in (1, 2):
        batch = {"data": rng.integers(0, 256, (20, 3072)).astype(np.uint8),
                 "labels": [j % 10 for j in range(20)]}
        (folder / f"data_batch_{i}").write_bytes(pickle.dumps(batch))
    tensors = load(Data(dataset="cifar10", root=tmp_path, val_fraction=0.25))
    assert tensors.input_shape == (3, 32, 32)
    assert len(tensors.x_train) == 30 and len(tensors.x_val) == 10


@pytest.mark.parametrize("dataset", ["mnist", "fashion_mnist", "cifar10"])
def test_missing_files_name_the_root(tmp_path: Path, dataset: str) -> None:
    with pytest.raises(ConfigError, match=f"data.root: no {dataset} files under"):
        load(Data(dataset=dataset, root=tmp_path))


def test_torchvision_sets_need_a_root() -> None:
    with pytest.raises(ConfigError, match="data.root: mnist needs a folder"):
        load(Data(dataset="mnist"))


def test_fake_data_and_limit() -> None:
    tensors = load(Data(dataset="fake", fake_size=40, val_fraction=0.25))
    assert tensors.input_shape == (3, 32, 32)
    assert len(tensors.x_train) == 30
    assert len(load(Data(limit=100)).x_train) == 80
