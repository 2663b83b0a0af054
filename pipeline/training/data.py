"""Datasets as compact tensors, loaded once per sweep and shared with every trial.

What the built-in sets and most image folders hold fits in memory, and indexing tensors
directly is ~1.7x faster than a DataLoader here (BASELINES.md), so a dataset is a few tensors
and its shape. 8-bit sources stay uint8 (a quarter of float32); an image folder too big for
the memory budget is a `LazyImages` that indexes like a tensor and decodes from disk.
"""
from __future__ import annotations

import gzip
import importlib.util
import pickle
import struct
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.config import ConfigError, Data
from pipeline.training import factory_data, imagefolder
from pipeline.training.normalize import channel_stats


@dataclass(frozen=True)
class Tensors:
    """Train/validation (and optional test) splits: inputs (N, C, H, W) as floats in [0, 1]
    or uint8 0..255 (the loop scales them), int64 labels."""

    x_train: Any
    """A tensor, or `imagefolder.LazyImages` (streamed from disk)."""
    y_train: torch.Tensor
    x_val: Any
    y_val: torch.Tensor
    num_classes: int
    x_test: Any = None
    """The test split, or None; trials never see it (the best model is scored on it once)."""
    y_test: torch.Tensor | None = None
    mean: tuple[float, ...] | None = None
    """Per-channel statistics the loop standardises by (data.normalize), else None."""
    std: tuple[float, ...] | None = None
    source: str = ""
    """One line saying what was loaded and how it is held (memory or streamed)."""
    classes: tuple[str, ...] | None = None
    """The class names by label index (an image folder's folder names), None when unknown:
    the registered model records them, or its outputs could not be told apart."""

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def streamed(self) -> bool:
        return not isinstance(self.x_train, torch.Tensor)


Arrays = tuple[np.ndarray, np.ndarray]


def _digits(cfg: Data) -> tuple[Arrays, Arrays | None]:
    """scikit-learn's bundled digits (1797 8x8 images, values 0..16), read from the CSV it
    ships, as `load_digits` does: importing scikit-learn to call it took 1.1 s of every
    built-in sweep's start."""
    sklearn = importlib.util.find_spec("sklearn")  # installed with scikit-optimize
    table = np.loadtxt(Path(sklearn.submodule_search_locations[0], "datasets", "data",
                            "digits.csv.gz"), delimiter=",", dtype=np.float32)
    images = table[:, :-1].reshape(-1, 1, 8, 8) / 16.0
    return (images, table[:, -1].astype(np.int64)), None


MNIST_FOLDERS = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST"}
CLASS_NAMES = {
    "digits": tuple(str(i) for i in range(10)), "mnist": tuple(str(i) for i in range(10)),
    "fashion_mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                      "Sneaker", "Bag", "Ankle boot"),
    "cifar10": ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                "truck")}
"""The built-in sets' class names (torchvision's), by label."""


def _idx_file(folder: Path, name: str) -> Path | None:
    """`name` in folder, as it is or gzipped (as the files are published)."""
    for path in (folder / name, folder / f"{name}.gz"):
        if path.is_file():
            return path
    return None


def _read_idx(path: Path) -> np.ndarray:
    """An IDX file of bytes (MNIST's format): a big-endian header (0, type 0x08, the number
    of dimensions, each dimension), then the data."""
    try:
        with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as f:
            raw = f.read()
        zero, type_code, ndim = struct.unpack(">HBB", raw[:4])
        shape = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
        if zero != 0 or type_code != 0x08:
            raise ValueError("not an IDX file of bytes")
        # writable (a bytearray): torch warns about tensors over read-only memory
        return np.frombuffer(bytearray(raw), np.uint8, offset=4 + 4 * ndim).reshape(shape)
    except (OSError, EOFError, ValueError, struct.error) as error:
        raise ConfigError(f"data.root: {path} is not a readable IDX file ({error})") from None


def _mnist_like(cfg: Data) -> tuple[Arrays, Arrays | None]:
    """torchvision's layout (`ROOT/MNIST/raw/train-images-idx3-ubyte`...), the files plain or
    gzipped, read here: torchvision's reader wants them unpacked and would unpack them only
    after checking the official md5 sums, which a user's own subset fails. The folder may also
    be given directly. No t10k files: no test split."""
    name = MNIST_FOLDERS[cfg.dataset]
    raw = Path(cfg.root) / name / "raw"
    if cfg.download and _idx_file(raw, "train-images-idx3-ubyte") is None:
        from torchvision import datasets

        getattr(datasets, name)(str(cfg.root), train=True, download=True)
    splits: list[Arrays | None] = []
    for split in ("train", "t10k"):
        for folder in (raw, Path(cfg.root) / name, Path(cfg.root)):
            images = _idx_file(folder, f"{split}-images-idx3-ubyte")
            labels = _idx_file(folder, f"{split}-labels-idx1-ubyte")
            if images is not None and labels is not None:
                x, y = _read_idx(images), _read_idx(labels)
                if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
                    raise ConfigError(f"data.root: {images} holds {x.shape} images and "
                                      f"{labels} {y.shape} labels; expected (N, H, W) and (N,)")
                splits.append((x[:, None], y.astype(np.int64)))
                break
        else:
            if split == "train":
                raise ConfigError(f"data.root: no {cfg.dataset} files under {raw} "
                                  "(set data.download: true to fetch them)")
            splits.append(None)
    return splits[0], splits[1]


def _cifar_batches(paths: list[Path]) -> Arrays:
    images, labels = [], []
    for batch in paths:
        with open(batch, "rb") as f:
            entry = pickle.load(f, encoding="latin1")
        images.append(np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        labels.extend(entry["labels"])
    return np.concatenate(images), np.asarray(labels)


def _cifar10(cfg: Data) -> tuple[Arrays, Arrays | None]:
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
    test = folder / "test_batch"
    return _cifar_batches(batches), _cifar_batches([test]) if test.exists() else None


def _fake(cfg: Data, seed: int) -> tuple[Arrays, Arrays | None]:
    from torchvision import datasets, transforms

    ds = datasets.FakeData(size=cfg.fake_size, image_size=(3, 32, 32), num_classes=10,
                           transform=transforms.ToTensor(), random_offset=seed)
    xs, ys = zip(*(ds[i] for i in range(len(ds))))
    return (torch.stack(xs).numpy(), np.asarray(ys)), None


def _tensor(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x))


def _builtin(cfg: Data, seed: int) -> Tensors:
    """A built-in set with a seeded validation split (and test split: the official one, or
    `test_fraction` of the training set when there is none)."""
    if cfg.dataset in ("mnist", "fashion_mnist", "cifar10") and cfg.root is None:
        raise ConfigError(f"data.root: {cfg.dataset} needs a folder with its files")
    readers = {"digits": _digits, "cifar10": _cifar10, "mnist": _mnist_like,
               "fashion_mnist": _mnist_like}
    (x, y), test = _fake(cfg, seed) if cfg.dataset == "fake" else readers[cfg.dataset](cfg)
    # every label of every split counts: a subset whose training files lack the last class,
    # or a data.limit cutting it off, built a model too small for the test split's labels
    # (IndexError after the whole sweep)
    num_classes = int(max(np.max(y), np.max(test[1], initial=0) if test else 0)) + 1
    if test is not None and test[0].shape[1:] != x.shape[1:]:
        raise ConfigError(f"data.root: {cfg.dataset}'s test images are "
                          f"{'x'.join(map(str, test[0].shape[1:]))} and its training images "
                          f"{'x'.join(map(str, x.shape[1:]))}; every split needs the same")
    if cfg.limit is not None:
        x, y = x[: cfg.limit], y[: cfg.limit]
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    n_val = max(1, round(len(x) * cfg.val_fraction))
    n_test = round(len(x) * cfg.test_fraction) if test is None else 0
    val, held, train = order[:n_val], order[n_val:n_val + n_test], order[n_val + n_test:]
    x_t, y_t = _tensor(x), torch.from_numpy(np.asarray(y, np.int64))
    if test is not None:
        x_test, y_test = _tensor(test[0]), torch.from_numpy(np.asarray(test[1], np.int64))
    elif n_test:
        x_test, y_test = x_t[held], y_t[held]
    else:
        x_test = y_test = None
    names = CLASS_NAMES.get(cfg.dataset)
    return Tensors(x_t[train], y_t[train], x_t[val], y_t[val], num_classes, x_test, y_test,
                   source=f"{cfg.dataset}: {len(train)} train / {n_val} val / "
                          f"{0 if y_test is None else len(y_test)} test",
                   classes=names[:num_classes] if names else None)


def _imagefolder(cfg: Data, seed: int) -> Tensors:
    layout = imagefolder.scan(cfg.root)
    train = layout.splits["train"]
    paths, labels = np.asarray(train.paths, dtype=object), np.asarray(train.labels)
    if cfg.limit is not None and cfg.limit < len(paths):
        keep = np.sort(np.random.default_rng(seed).permutation(len(paths))[: cfg.limit])
        paths, labels = paths[keep], labels[keep]
    holdout = [s for s in ("val", "test") if s not in layout.splits
               and (s == "val" or cfg.test_fraction > 0)]
    fractions = {"val": cfg.val_fraction, "test": cfg.test_fraction}
    parts = imagefolder.stratified_split(labels, [fractions[s] for s in holdout], seed)
    listings = {s: (list(paths[p]), labels[p]) for s, p in zip([*holdout, "train"], parts)}
    listings.update({s: (v.paths, np.asarray(v.labels)) for s, v in layout.splits.items()
                     if s != "train"})
    for split, (split_paths, _) in listings.items():
        if not split_paths:
            raise ConfigError(f"data.root: no images left for the {split} split of {cfg.root} "
                              f"({len(paths)} training images; add images or change the "
                              "fractions)")
    size = cfg.image_size or imagefolder.DEFAULT_SIZE
    total = sum(len(p) for p, _ in listings.values())
    in_memory, mb = imagefolder.fits_in_memory(cfg, total)
    if in_memory:
        xs = {s: imagefolder.decode_all(p, size) for s, (p, _) in listings.items()}
        how = f"decoded once into memory as uint8 ({mb:.1f} MB)"
    else:
        for p, _ in listings.values():
            imagefolder.check_decodable(p, size)
        xs = {s: imagefolder.LazyImages(p, size) for s, (p, _) in listings.items()}
        why = (f"over memory_budget_mb {cfg.memory_budget_mb:g}" if cfg.cache == "auto"
               else "cache: stream")
        how = (f"streamed from disk by {cfg.workers} DataLoader worker(s) ({mb:.0f} MB "
               f"decoded, {why})")
    ys = {s: torch.from_numpy(np.asarray(y, np.int64)) for s, (_, y) in listings.items()}
    counts = " / ".join(f"{len(ys[s]) if s in ys else 0} {s}" for s in imagefolder.SPLITS)
    loose = f", {layout.loose} image(s) outside class folders ignored" if layout.loose else ""
    return Tensors(xs["train"], ys["train"], xs["val"], ys["val"], len(layout.classes),
                   xs.get("test"), ys.get("test"), classes=tuple(layout.classes),
                   source=f"imagefolder {cfg.root}: {len(layout.classes)} classes, {counts}, "
                          f"{size}x{size}, {imagefolder.skipped_summary(layout.skipped)}"
                          f"{loose}; {how}")


def _from_factory(cfg: Data, seed: int) -> Tensors:
    data = factory_data.call("data.factory", cfg.factory, cfg, seed)
    if not isinstance(data, Tensors):
        raise ConfigError(f"data.factory: {cfg.factory} returned {type(data).__name__}, not "
                          "pipeline.training.data.Tensors")
    data = factory_data.checked(data, cfg.factory)
    return replace(data, source=data.source or f"data.factory {cfg.factory}")


def load(cfg: Data, seed: int = 0) -> Tensors:
    """Load the configured data set, split it, and attach normalisation statistics."""
    if cfg.factory is not None:
        data = _from_factory(cfg, seed)
    elif cfg.dataset == "imagefolder":
        data = _imagefolder(cfg, seed)
    else:
        data = _builtin(cfg, seed)
    if not cfg.normalize:
        return data
    if cfg.mean is not None:
        if len(cfg.mean) != data.input_shape[0]:
            raise ConfigError(f"data.mean: {len(cfg.mean)} values for "
                              f"{data.input_shape[0]} channel(s)")
        return replace(data, mean=tuple(cfg.mean), std=tuple(cfg.std))
    mean, std = channel_stats(data.x_train, seed)
    return replace(data, mean=mean, std=std)
