"""One image file -> uint8 (3, size, size) pixels, the same way for every kind of file.

What photo folders hold, and what each becomes:
- palette, grey and RGB images with transparency (P with a tRNS chunk, LA, PA, RGBA): laid
  over white, as a page shows them; dropping the alpha instead would show whatever colour the
  editor left under transparent pixels.
- 16-bit grey (PNG/TIFF, modes I;16* and I, the latter read as 16-bit too: PIL opens a
  16-bit PGM as I): scaled 0..65535 -> 0..255; PIL's own conversion clips every value above
  255 to white.
- 32-bit float grey (TIFF, mode F): values all within [0, 1] (a normalised image) scaled to
  0..255, any other range clipped to 0..255 (NaN black); PIL's own conversion truncates, so
  a [0, 1] image came out black.
- CMYK JPEGs (Adobe's inverted ones too) and the rest: PIL's conversion to RGB.
- a photo with an EXIF orientation tag is turned the way its camera held it; a broken EXIF
  block leaves the image as stored.
- an animated GIF/WebP/PNG: its first frame.
- shape: the centre square (the shorter side) resized to size; the box is cut before
  resizing, so a 1x100000 strip costs no more than a square. JPEGs are decoded at 1/2-1/8
  scale (libjpeg's draft mode) when that still leaves size pixels a side.
- larger than PIL's decompression-bomb limit (2 x PIL.Image.MAX_IMAGE_PIXELS, 179 MP by
  default): refused with one line. Below it PIL only warns (from 89 MP), about a guard meant
  for files from strangers; a user's own 100 MP photo is decoded, silently.
- a file that does not decode (empty, truncated, not an image): refused with one line naming
  it, on both paths, before Ray starts.

PIL warns about files it decodes fine (palette transparency, EXIF it cannot parse, the size
above); those are about PIL, not the data set, so decoding runs inside `quiet()`: `decode`
enters it per call (so also in a DataLoader worker process, forked outside any quiet()),
`decode_all` once around its threads (Python's warning filters are process-wide: entered and
left by several threads at once, they would be left wrong).
"""
from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from pipeline.config import ConfigError

BACKGROUND = (255, 255, 255)  # what transparent pixels become
SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N", "I")


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Library warnings raised while decoding stay here (see the module doc)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _grey(values: np.ndarray):
    """Grey values on the 0..255 scale -> RGB, rounded and clipped."""
    from PIL import Image

    return Image.fromarray(values.round().clip(0, 255).astype(np.uint8)).convert("RGB")


def _float_to_bytes(values: np.ndarray) -> np.ndarray:
    """A float image's values on the 0..255 scale. Floats within [0, 1] are a normalised
    image (what numpy and scientific tools write); anything else is taken as 0..255 already,
    the scale PIL itself uses for F, and clipped by _grey. NaN (no data) becomes black."""
    values = np.nan_to_num(values, nan=0.0)
    if values.size and values.min() >= 0.0 and values.max() <= 1.0:
        return values * 255.0
    return values


def _to_rgb(image):
    """Any PIL mode -> RGB, as the module doc describes."""
    from PIL import Image

    if image.mode in SIXTEEN_BIT:
        return _grey(np.asarray(image, dtype=np.float64) / 257.0)
    if image.mode == "F":
        return _grey(_float_to_bytes(np.asarray(image, dtype=np.float64)))
    if image.has_transparency_data:
        # via RGBA: converting a palette with byte transparency straight to RGB makes PIL warn
        background = Image.new("RGBA", image.size, BACKGROUND)
        return Image.alpha_composite(background, image.convert("RGBA")).convert("RGB")
    return image.convert("RGB")


def _upright(image):
    from PIL import ImageOps

    try:
        return ImageOps.exif_transpose(image)
    except Exception:  # noqa: BLE001 - EXIF of any shape: the pixels are still good
        return image


def _pixels(path: Path, size: int) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        image.draft(None, (size, size))  # JPEG only: decode straight at a reduced scale
        image.load()
        image = _to_rgb(_upright(image))
    w, h = image.size
    side = min(w, h)
    box = ((w - side) / 2, (h - side) / 2, (w + side) / 2, (h + side) / 2)
    image = image.resize((size, size), Image.Resampling.BILINEAR, box=box)
    return np.asarray(image, dtype=np.uint8)


def decode(path: Path, size: int) -> torch.Tensor:
    """One image as uint8 (3, size, size): RGB, centre square resized to size."""
    with quiet():
        return _decode(path, size)


def _decode(path: Path, size: int) -> torch.Tensor:
    """decode() without quiet(), for threads inside one quiet() (see the module doc)."""
    from PIL import Image

    try:
        array = _pixels(path, size)
    except Image.DecompressionBombError as error:
        raise ConfigError(f"data.root: {path} is too large to decode ({error}); downscale it, "
                          "or raise PIL.Image.MAX_IMAGE_PIXELS if you trust it") from None
    # PIL's plugins raise OSError, SyntaxError, struct.error, EOFError, ValueError... on a
    # damaged file: whatever it is, the file cannot be used, and the user must hear which.
    except Exception as error:  # noqa: BLE001
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ConfigError(f"data.root: {path} is not a readable image ({message}); remove or "
                          "replace it") from None
    return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()


def _decode_each(paths: list[Path], size: int, threads: int,
                 keep: Callable[[int, torch.Tensor], None]) -> None:
    """keep(i, decode(paths[i])) for every path, decoded on `threads` threads (PIL releases
    the GIL), all inside one quiet(): left only once no thread decodes any more."""
    with quiet(), ThreadPoolExecutor(threads) as pool:
        try:
            for i, image in enumerate(pool.map(lambda p: _decode(p, size), paths)):
                keep(i, image)
        finally:  # a refused file ends the decoding of the rest at once
            pool.shutdown(cancel_futures=True)


def decode_all(paths: list[Path], size: int, threads: int = 4) -> torch.Tensor:
    """Every image decoded into one uint8 tensor."""
    out = torch.empty((len(paths), 3, size, size), dtype=torch.uint8)
    _decode_each(paths, size, threads, out.__setitem__)
    return out


def check_decodable(paths: list[Path], size: int, threads: int = 4) -> None:
    """Decode every image once and drop the pixels, so a streamed set refuses a damaged
    file before Ray starts, as the in-memory path does: a header alone passes a truncated
    JPEG, which would then fail every trial in its DataLoader workers. Costs one epoch's
    decoding, once per sweep."""
    _decode_each(paths, size, threads, lambda i, image: None)


class LazyImages:
    """Images on disk that index like a uint8 (N, 3, size, size) tensor: `images[i]` decodes
    one, `images[idx]` (tensor, list, slice) stacks several. A DataLoader over it decodes in
    worker processes."""

    def __init__(self, paths: list[Path], size: int) -> None:
        # absolute: it is decoded in trials, whose working folder is not the driver's
        self.paths, self.size = [Path(p).absolute() for p in paths], size

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
        # decode() is quiet() per call: in a DataLoader worker too (see the module doc)
        if isinstance(index, int):
            return decode(self.paths[index], self.size)
        if isinstance(index, slice):
            index = range(*index.indices(len(self)))
        return torch.stack([decode(self.paths[int(i)], self.size) for i in index])
