"""Datasets: the bundled default, torchvision's file layouts written by the test, clear errors."""
from __future__ import annotations

import gzip
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
    assert a.classes == tuple("0123456789")
    assert len(a.x_train) + len(a.x_val) == 1797
    assert len(a.x_val) == round(1797 * 0.2)
    assert torch.equal(a.y_val, b.y_val)
    assert not torch.equal(a.y_val, load(Data(), seed=4).y_val)
    assert 0.0 <= float(a.x_train.min()) and float(a.x_train.max()) <= 1.0


def test_digits_are_scikit_learns_own() -> None:
    """Read from the CSV scikit-learn ships, without importing it: the same images and
    labels as its load_digits, scaled to [0, 1]."""
    from sklearn.datasets import load_digits

    from pipeline.training.data import _digits

    (images, labels), test = _digits(Data())
    reference = load_digits()
    assert test is None
    np.testing.assert_array_equal(images, reference.images[:, None].astype(np.float32) / 16)
    np.testing.assert_array_equal(labels, reference.target)


def _write_idx(path: Path, array: np.ndarray) -> None:
    """MNIST's IDX format (big-endian header), gzipped when the name ends in .gz."""
    type_code = 0x08
    header = struct.pack(">HBB", 0, type_code, array.ndim)
    header += b"".join(struct.pack(">I", d) for d in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)


def _write_mnist(folder: Path, suffix: str = "", test: bool = True) -> np.ndarray:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", 50), ("t10k", 10))[:2 if test else 1]:
        images = rng.integers(0, 256, (n, 28, 28))
        _write_idx(folder / f"{split}-images-idx3-ubyte{suffix}", images)
        _write_idx(folder / f"{split}-labels-idx1-ubyte{suffix}", np.arange(n) % 10)
    return images


@pytest.mark.parametrize(("dataset", "folder", "suffix"), [
    ("mnist", "MNIST/raw", ""),  # torchvision's layout
    ("fashion_mnist", "FashionMNIST/raw", ""),
    ("mnist", "MNIST/raw", ".gz"),  # as published
    ("fashion_mnist", ".", ".gz"),  # the files straight under data.root
])
def test_mnist_layout_from_local_files(tmp_path: Path, dataset: str, folder: str,
                                       suffix: str) -> None:
    test_images = _write_mnist(tmp_path / folder, suffix)
    tensors = load(Data(dataset=dataset, root=tmp_path, val_fraction=0.2))
    assert tensors.input_shape == (1, 28, 28) and tensors.x_train.dtype == torch.uint8
    assert len(tensors.x_train) == 40 and len(tensors.x_val) == 10
    assert tensors.num_classes == 10 and tensors.y_train.dtype == torch.int64
    assert tensors.classes[9] == ("Ankle boot" if dataset == "fashion_mnist" else "9")
    assert torch.equal(tensors.x_test[:, 0], torch.from_numpy(test_images.astype(np.uint8)))


def test_mnist_without_t10k_has_no_test_split_and_a_damaged_file_is_one_line(
        tmp_path: Path) -> None:
    _write_mnist(tmp_path / "MNIST" / "raw", test=False)
    assert load(Data(dataset="mnist", root=tmp_path)).x_test is None
    labels = tmp_path / "MNIST" / "raw" / "train-labels-idx1-ubyte"
    labels.write_bytes(labels.read_bytes()[:3])
    with pytest.raises(ConfigError, match=f"^data.root: {labels} is not a readable IDX file"):
        load(Data(dataset="mnist", root=tmp_path))
    _write_idx(labels, np.arange(49) % 10)
    with pytest.raises(ConfigError, match=r"holds \(50, 28, 28\) images and .* \(49,\) labels"):
        load(Data(dataset="mnist", root=tmp_path))


def test_every_split_counts_its_labels_and_a_test_split_of_other_images_is_refused(
        tmp_path: Path) -> None:
    """A subset whose training files lack class 9 (or a data.limit cutting it off) trained a
    9-class model: the test split's label 9 then failed the summary after the whole sweep."""
    folder = tmp_path / "MNIST" / "raw"
    _write_mnist(folder)
    _write_idx(folder / "train-labels-idx1-ubyte", np.arange(50) % 9)
    assert load(Data(dataset="mnist", root=tmp_path)).num_classes == 10
    _write_idx(folder / "train-labels-idx1-ubyte", np.r_[np.arange(20) % 9, np.full(30, 9)])
    assert load(Data(dataset="mnist", root=tmp_path, limit=20)).num_classes == 10
    _write_idx(folder / "t10k-images-idx3-ubyte", np.zeros((10, 32, 32)))
    with pytest.raises(ConfigError, match=r"^data.root: mnist's test images are 1x32x32 and "
                                          r"its training images 1x28x28"):
        load(Data(dataset="mnist", root=tmp_path))


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
