"""A folder of the user's own images (torchvision's ImageFolder layout) as a data set.

Scanned and checked before Ray starts, so a missing root, a folder without classes, a class
without images or an image that cannot be decoded costs one line, not a failed sweep.

What counts as an image of a class: a file under its folder, at any depth, whose extension
(any case: `.JPG`, `.JpEg`) is an image's. Skipped and counted instead: files that are not
images by their extension (`notes.txt`, `Thumbs.db`), and hidden files and folders (a name
starting with '.') with macOS's and NASes' junk folders (`__MACOSX`, `@eaDir`): `.DS_Store`, and
the AppleDouble `._photo.jpg` that macOS leaves beside every photo on a foreign disk, which has
an image's extension but is not one. They are counted by kind (extension, `hidden`, `no
extension`) and the Data line names the kinds: a count alone did not show that half a set was
in a format not read here. Links to folders and files are followed (a folder reached twice, or
a link loop, is read once). Class names are compared in Unicode NFC form, so a
`val/` folder written on Linux matches a `train/` folder written on macOS (which stores names
decomposed). A file with an image extension that does not decode is refused, naming it
(`image_decode`): a damaged image means the set is not what its owner thinks, and training
silently on less would hide that.

Decoded once (centre square resized to `image_size`) into uint8 tensors, a quarter of the
memory of float32, shared with every trial through Ray's object store; a set larger than
`memory_budget_mb` stays on disk and is decoded batch by batch (`LazyImages` in a DataLoader).
"""
from __future__ import annotations

import os
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.config import ConfigError, Data

# what decodes the files, part of this module's API as before it moved out
from pipeline.training.image_decode import (  # noqa: F401
    LazyImages,
    check_decodable,
    decode,
    decode_all,
)

# torchvision ImageFolder's IMG_EXTENSIONS (.pgm among them), JPEG's other names (.jfif,
# .jpe) and the rest of netpbm (.pbm, .pnm): every one opens in PIL
IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".jpe", ".jfif", ".bmp", ".gif", ".webp", ".tif",
                    ".tiff", ".ppm", ".pgm", ".pbm", ".pnm"}
JUNK_FOLDERS = {"__MACOSX", "@eaDir"}  # macOS zip resource forks; Synology thumbnails
DEFAULT_SIZE = 64
SPLITS = ("train", "val", "test")
SPLIT_FOLDERS = {"train": ("train",), "val": ("val", "valid", "validation"), "test": ("test",)}
"""The folder names each split is read from: Kaggle and Roboflow exports call it `valid/`."""


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
    skipped: Counter[str] = field(default_factory=Counter)
    """Files under the class folders that are not images, by kind: their extension in lower
    case (`.txt`), `hidden` (also any file in a hidden or junk folder) or `no extension`."""
    loose: int = 0
    """Images beside the class folders, in no class: ignored, as ImageFolder does, and said."""


def _hidden(name: str) -> bool:
    return name.startswith(".") or name in JUNK_FOLDERS


def _skipped_kind(name: str, in_hidden_folder: bool) -> str | None:
    """Why a file is no image of its class (the kind it is counted under); None: an image.
    Hidden first: `._photo.jpg` has an image's extension but is macOS's metadata."""
    if in_hidden_folder or _hidden(name):
        return "hidden"
    suffix = Path(name).suffix.lower()
    if suffix in IMAGE_EXTENSIONS:
        return None
    return suffix or "no extension"


def skipped_summary(skipped: Counter[str], kinds: int = 5) -> str:
    """`12 non-image file(s) skipped (.txt x10, hidden x2)`: the commonest `kinds` named, so a
    user sees which of their files were left out (a format missing here, or junk)."""
    total = sum(skipped.values())
    commonest = sorted(skipped.items(), key=lambda kind_n: (-kind_n[1], kind_n[0]))
    named = [f"{kind} x{n}" for kind, n in commonest]
    more = f", {len(named) - kinds} more kind(s)" if len(named) > kinds else ""
    listed = f" ({', '.join(named[:kinds])}{more})" if named else ""
    return f"{total} non-image file(s) skipped{listed}"


def _class_folders(folder: Path) -> dict[str, Path]:
    """Class name (NFC) -> folder, in name order."""
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if not path.is_dir() or _hidden(path.name):
            continue
        name = unicodedata.normalize("NFC", path.name)
        if name in found:  # one name twice (composed and decomposed): one would be lost
            raise ConfigError(f"data.root: {found[name]} and {path} are one class name written "
                              "two ways (Unicode composed and decomposed); merge them")
        found[name] = path
    return dict(sorted(found.items()))


def _unreadable(error: OSError) -> None:
    raise ConfigError(f"data.root: cannot read {error.filename} ({error.strerror})")


def _images_under(folder: Path) -> tuple[list[Path], Counter[str]]:
    """The image files under a class folder, and the other files it holds by kind."""
    images, skipped, seen = [], Counter(), set()
    for top, dirs, files in os.walk(folder, followlinks=True, onerror=_unreadable):
        real = os.path.realpath(top)
        if real in seen:  # a second link to a folder already read, or a link loop
            dirs[:] = []
            continue
        seen.add(real)
        hidden = any(_hidden(part) for part in Path(top).relative_to(folder).parts)
        for name in files:
            kind = _skipped_kind(name, hidden)
            if kind is None:
                images.append(Path(top) / name)
            else:
                skipped[kind] += 1
    return sorted(images), skipped


def _list_split(folder: Path, classes: list[str], must_fill: bool
                ) -> tuple[Listing, Counter[str]]:
    paths, labels, skipped = [], [], Counter()
    found = _class_folders(folder)
    if not found:
        raise ConfigError(f"data.root: {folder} has no class folders; put its images in "
                          f"{folder}/CLASS/ as in train/, or remove it")
    unknown = sorted(set(found) - set(classes))
    if unknown:
        raise ConfigError(f"data.root: {folder} has class folder(s) {unknown} that "
                          f"{folder.parent / 'train'} does not")
    for label, name in enumerate(classes):
        if name not in found:
            continue
        images, n = _images_under(found[name])
        skipped.update(n)
        if not images and must_fill:
            raise ConfigError(f"data.root: class {name!r} ({found[name]}) has no images "
                              f"(extensions: {', '.join(sorted(IMAGE_EXTENSIONS))}; hidden "
                              "files skipped)")
        paths += images
        labels += [label] * len(images)
    return Listing(paths, labels), skipped


def _loose_images(folder: Path) -> int:
    return sum(1 for p in folder.iterdir() if p.is_file() and not _hidden(p.name)
               and p.suffix.lower() in IMAGE_EXTENSIONS)


def _split_folder(root: Path, split: str) -> Path | None:
    """The folder of `split` under root, by any of its names; None without one."""
    found = [root / name for name in SPLIT_FOLDERS[split] if (root / name).is_dir()]
    if len(found) > 1:
        raise ConfigError(f"data.root: {root} has both {found[0].name}/ and {found[1].name}/ "
                          f"for the {split} split; keep one")
    return found[0] if found else None


def _refuse_splits_without_train(root: Path, folders: dict[str, Path | None]) -> None:
    """A val/ or test/ of class folders beside no train/ is a split layout missing its
    training images, not classes named 'val' and 'test' (what ImageFolder would make of it)."""
    for split in ("val", "test"):
        folder = folders[split]
        if folder is not None and _class_folders(folder) and not _loose_images(folder):
            raise ConfigError(f"data.root: {root} has {folder.name}/ with class folders but "
                              f"no train/; put the training images in {root / 'train'}/CLASS/")


def scan(root: Path | None) -> Layout:
    """The classes and files under root: `root/CLASS/...`, or `root/train/CLASS/...` with
    optional `root/val/` (or `valid/`, `validation/`) and `root/test/` beside it."""
    if root is None:
        raise ConfigError("data.root: imagefolder needs a folder of images")
    if not root.is_dir():
        raise ConfigError(f"data.root: {root} is not a folder")
    folders = {split: _split_folder(root, split) for split in SPLITS}
    train = folders["train"] or root
    if train == root:
        _refuse_splits_without_train(root, folders)
    classes = list(_class_folders(train))
    if not classes:
        raise ConfigError(f"data.root: no class folders under {train} (expected one "
                          "sub-folder of images per class, as torchvision's ImageFolder)")
    if len(classes) < 2:
        raise ConfigError(f"data.root: only one class folder ({classes[0]}) under {train}; "
                          "a classifier needs at least two")
    splits, skipped = {}, Counter()
    for split in SPLITS:
        folder = train if split == "train" else folders[split]
        if folder is None:
            continue
        splits[split], n = _list_split(folder, classes, must_fill=split == "train")
        skipped.update(n)
    loose = sum(_loose_images(folder) for folder in {train, *(f for f in folders.values() if f)})
    return Layout(classes, splits, skipped, loose)


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


def fits_in_memory(cfg: Data, n_images: int) -> tuple[bool, float]:
    """Whether the decoded set goes to memory, and its size in MB."""
    size = cfg.image_size or DEFAULT_SIZE
    mb = n_images * 3 * size * size / 2**20
    if cfg.cache == "auto":
        return mb <= cfg.memory_budget_mb, mb
    return cfg.cache == "memory", mb
