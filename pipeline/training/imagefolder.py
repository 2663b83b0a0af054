"""A folder of the user's own images (torchvision's ImageFolder layout) as a data set.

Scanned and checked before Ray starts, so a missing root, a folder without classes, a class
without images or an image that cannot be decoded costs one line, not a failed sweep. Files
that are not images by their extension (`.DS_Store`, `notes.txt`, `Thumbs.db`) are skipped and
counted: they are what photo folders hold besides photos. A file with an image extension that
does not decode is refused, naming it: a damaged image means the set is not what its owner
thinks, and training silently on less would hide that.

Decoded once (resized and centre-cropped to `image_size`) into uint8 tensors, a quarter of the
memory of float32, shared with every trial through Ray's object store; a set larger than
`memory_budget_mb` stays on disk and is decoded batch by batch (`LazyImages` in a DataLoader).
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pipeline.config import ConfigError, Data

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm"}
DEFAULT_SIZE = 64
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Listing:
    """The image files of one split and their class indices."""

    paths: list[Path]
    labels: list[int]


@dataclass(frozen=True)
class Layout:
    classes: list[str]
    splits: dict[str, Listing]
    """`train` always; `val` and `test` when the folder has them."""
    skipped: int
    """Files skipped because their extension is not an image's."""


def _class_folders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _list_split(folder: Path, classes: list[str], must_fill: bool) -> tuple[Listing, int]:
    paths, labels, skipped = [], [], 0
    found = {p.name: p for p in _class_folders(folder)}
    unknown = sorted(set(found) - set(classes))
    if unknown:
        raise ConfigError(f"data.root: {folder} has class folder(s) {unknown} that "
                          f"{folder.parent / 'train'} does not")
    for label, name in enumerate(classes):
        if name not in found:
            continue
        files = sorted(p for p in found[name].rglob("*") if p.is_file())
        images = [p for p in files if p.suffix.lower() in IMAGE_EXTENSIONS]
        skipped += len(files) - len(images)
        if not images and must_fill:
            raise ConfigError(f"data.root: class {name!r} ({found[name]}) has no images "
                              f"(extensions: {', '.join(sorted(IMAGE_EXTENSIONS))})")
        paths += images
        labels += [label] * len(images)
    return Listing(paths, labels), skipped


def scan(root: Path | None) -> Layout:
    """The classes and files under root: `root/CLASS/...`, or `root/train/CLASS/...` with
    optional `root/val/` and `root/test/` beside it."""
    if root is None:
        raise ConfigError("data.root: imagefolder needs a folder of images")
    if not root.is_dir():
        raise ConfigError(f"data.root: {root} is not a folder")
    train = root / "train" if (root / "train").is_dir() else root
    classes = [p.name for p in _class_folders(train)]
    if not classes:
        raise ConfigError(f"data.root: no class folders under {train} (expected one "
                          "sub-folder of images per class, as torchvision's ImageFolder)")
    if len(classes) < 2:
        raise ConfigError(f"data.root: only one class folder ({classes[0]}) under {train}; "
                          "a classifier needs at least two")
    splits, skipped = {}, 0
    for split in SPLITS:
        folder = train if split == "train" else root / split
        if split != "train" and (train == root or not folder.is_dir()):
            continue
        splits[split], n = _list_split(folder, classes, must_fill=split == "train")
        skipped += n
    return Layout(classes, splits, skipped)


def stratified_split(labels: np.ndarray, fractions: list[float],
                     seed: int) -> list[np.ndarray]:
    """Indices of len(fractions) held-out parts and the rest (last), each class split by the
    same fractions (at least one example per part for a class of enough examples)."""
    rng = np.random.default_rng(seed)
    parts: list[list[int]] = [[] for _ in range(len(fractions) + 1)]
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        start = 0
        for i, fraction in enumerate(fractions):
            take = max(1, round(len(members) * fraction)) if len(members) > len(fractions) \
                else 0
            parts[i] += members[start:start + take].tolist()
            start += take
        parts[-1] += members[start:].tolist()
    return [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]


def decode(path: Path, size: int) -> torch.Tensor:
    """One image as uint8 (3, size, size): RGB, shorter side resized to size, centre-cropped."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
            scale = size / min(image.size)
            w, h = max(size, round(image.width * scale)), max(size, round(image.height * scale))
            image = image.resize((w, h), Image.Resampling.BILINEAR)
            left, top = (w - size) // 2, (h - size) // 2
            image = image.crop((left, top, left + size, top + size))
            array = np.asarray(image, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise ConfigError(f"data.root: {path} is not a readable image ({error}); remove or "
                          "replace it") from None
    return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()


def check_headers(paths: list[Path]) -> None:
    """Open every file's header (cheap: no pixels decoded), so a streamed set refuses a
    non-image before Ray starts, as the in-memory path does."""
    from PIL import Image, UnidentifiedImageError

    for path in paths:
        try:
            with Image.open(path):
                pass
        except (UnidentifiedImageError, OSError) as error:
            raise ConfigError(f"data.root: {path} is not a readable image ({error}); remove "
                              "or replace it") from None


class LazyImages:
    """Images on disk that index like a uint8 (N, 3, size, size) tensor: `images[i]` decodes
    one, `images[idx]` (tensor, list, slice) stacks several. A DataLoader over it decodes in
    worker processes."""

    def __init__(self, paths: list[Path], size: int) -> None:
        self.paths, self.size = list(paths), size

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.paths), 3, self.size, self.size)

    @property
    def dtype(self) -> torch.dtype:
        return torch.uint8

    def to(self, *args, **kwargs) -> LazyImages:  # stays on disk; batches move instead
        return self

    def __getitem__(self, index: int | slice | list | torch.Tensor) -> torch.Tensor:
        if isinstance(index, int):
            return decode(self.paths[index], self.size)
        if isinstance(index, slice):
            index = range(*index.indices(len(self)))
        return torch.stack([decode(self.paths[int(i)], self.size) for i in index])


def decode_all(paths: list[Path], size: int, threads: int = 4) -> torch.Tensor:
    """Every image decoded into one uint8 tensor (PIL releases the GIL while decoding)."""
    out = torch.empty((len(paths), 3, size, size), dtype=torch.uint8)
    with ThreadPoolExecutor(threads) as pool:
        for i, image in enumerate(pool.map(lambda p: decode(p, size), paths)):
            out[i] = image
    return out


def fits_in_memory(cfg: Data, n_images: int) -> tuple[bool, float]:
    """Whether the decoded set goes to memory, and its size in MB."""
    size = cfg.image_size or DEFAULT_SIZE
    mb = n_images * 3 * size * size / 2**20
    if cfg.cache == "auto":
        return mb <= cfg.memory_budget_mb, mb
    return cfg.cache == "memory", mb
