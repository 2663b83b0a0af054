"""Image files as photo folders hold them, each written here with PIL: what its pixels become,
the same on the in-memory and the streamed path, and no library warning on the terminal."""
from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pipeline.config import ConfigError, Data
from pipeline.training.data import load
from pipeline.training.image_decode import decode
from tests.conftest import ROOT

RED, BLUE, WHITE = (255, 0, 0), (0, 0, 255), (255, 255, 255)


def _save(path: Path, image: Image.Image, **options) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **options)
    return path


def _palette_with_byte_transparency(path: Path) -> Path:
    """Left half index 0 (red, transparent), right half index 1 (blue, opaque), bottom rows
    index 2 (green, half transparent): PIL keeps the tRNS chunk as bytes and warns on RGB."""
    image = Image.new("P", (16, 16), 0)
    image.putpalette([*RED, *BLUE, 0, 255, 0])
    image.paste(1, (8, 0, 16, 16))
    image.paste(2, (0, 14, 16, 16))
    return _save(path, image, transparency=bytes([0, 255, 128]))


def _exif_rotated(path: Path) -> Path:
    """Stored 40x20, red left and blue right, tagged 'turn 90 degrees clockwise' (orientation
    6, as phones save a portrait photo): upright it is 20x40, red on top."""
    image = Image.new("RGB", (40, 20), RED)
    image.paste(BLUE, (20, 0, 40, 20))
    exif = Image.Exif()
    exif[0x0112] = 6
    return _save(path, image, exif=exif, quality=95)


def _corrupt_exif_jpeg(path: Path) -> Path:
    """A photo whose EXIF block says more than it holds: PIL warns "Corrupt EXIF data"."""
    exif = Image.Exif()
    exif[0x0112] = 1
    _save(path, Image.new("RGB", (16, 16), BLUE), exif=exif)
    data = bytearray(path.read_bytes())
    at = data.find(b"Exif\0\0") + 6
    data[at:at + 10] = b"MM\x00\x2a\x00\x00\x00\x08\x00\x05"  # 5 entries, room for fewer
    path.write_bytes(bytes(data))
    return path


WRITERS = {
    "grey.png": (lambda p: _save(p, Image.new("L", (20, 12), 90)), (90, 90, 90)),
    "grey_alpha.png": (lambda p: _save(p, Image.new("LA", (12, 12), (0, 0))), WHITE),
    "half_alpha.png": (lambda p: _save(p, Image.new("RGBA", (12, 12), (0, 0, 255, 128))),
                       (127, 127, 255)),
    "rgba_opaque.png": (lambda p: _save(p, Image.new("RGBA", (12, 12), (*RED, 255))), RED),
    "palette.png": (_palette_with_byte_transparency, BLUE),  # the centre: index 1
    "sixteen_bit.png": (lambda p: _save(p, Image.fromarray(np.full((9, 9), 51400, np.uint16))),
                        (200, 200, 200)),
    # PIL opens a 16-bit PGM as mode I (32-bit int), read as 16-bit like I;16
    "sixteen_bit.pgm": (lambda p: _save(p, Image.fromarray(np.full((9, 9), 51400, np.uint16))),
                        (200, 200, 200)),
    # float TIFFs (mode F): PIL's conversion truncated a [0, 1] image to black
    "float.tif": (lambda p: _save(p, Image.fromarray(np.full((9, 9), 0.5, np.float32))),
                  (128, 128, 128)),
    "float_bytes.tiff": (lambda p: _save(p, Image.fromarray(np.full((9, 9), 200, np.float32))),
                         (200, 200, 200)),
    "cmyk.jpg": (lambda p: _save(p, Image.new("CMYK", (16, 16), (0, 255, 255, 0))), RED),
    "upper.JPG": (lambda p: _save(p, Image.new("RGB", (16, 16), BLUE)), BLUE),
    "mixed.JpEg": (lambda p: _save(p, Image.new("RGB", (16, 16), RED)), RED),
    "wide.png": (lambda p: _save(p, Image.new("RGB", (400, 4), RED)), RED),
    "strip.PNG": (lambda p: _save(p, Image.new("RGB", (1, 3000), BLUE)), BLUE),
    "tiny.png": (lambda p: _save(p, Image.new("RGB", (2, 2), RED)), RED),
    "animated.gif": (lambda p: _save(p, Image.new("RGB", (16, 16), RED), save_all=True,
                                     append_images=[Image.new("RGB", (16, 16), BLUE)]), RED),
    "corrupt_exif.jpg": (_corrupt_exif_jpeg, BLUE),
}


def _pixel(x: torch.Tensor, row: int = 8, col: int = 8) -> tuple[int, ...]:
    return tuple(x[:, row, col].tolist())


@pytest.mark.parametrize("name", WRITERS)
def test_each_kind_of_file_decodes_to_what_it_shows(name: str, tmp_path: Path) -> None:
    write, colour = WRITERS[name]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        x = decode(write(tmp_path / name), 16)
    assert [str(w.message) for w in caught] == []
    assert x.shape == (3, 16, 16) and x.dtype == torch.uint8
    assert _pixel(x) == pytest.approx(colour, abs=8)


def test_sixteen_bit_grey_keeps_its_gradient_and_the_palette_its_colours(
        tmp_path: Path) -> None:
    ramp = np.tile(np.linspace(0, 65535, 16).round().astype(np.uint16), (16, 1))
    x = decode(_save(tmp_path / "ramp.png", Image.fromarray(ramp)), 16)
    assert x[0, 8].tolist() == (ramp[0] / 257).round().astype(int).tolist()  # 0, 17, ... 255
    p = decode(_palette_with_byte_transparency(tmp_path / "p.png"), 16)
    assert _pixel(p, 4, 4) == WHITE and _pixel(p, 4, 12) == BLUE
    assert _pixel(p, 15, 4) == (127, 255, 127)  # green, half transparent, over white


def test_float_images_are_scaled_from_zero_to_one_else_clipped(tmp_path: Path) -> None:
    """A float TIFF of values in [0, 1] (numpy's `rand`, a normalised scan) decoded black:
    PIL's conversion truncates it to 0..1 of 255."""
    ramp = np.tile(np.linspace(0, 1, 16, dtype=np.float32), (16, 1))
    x = decode(_save(tmp_path / "unit.tif", Image.fromarray(ramp)), 16)
    assert x[0, 8].tolist() == (ramp[0].astype(np.float64) * 255).round().astype(int).tolist()
    wide = np.tile(np.linspace(-100, 400, 16, dtype=np.float32), (16, 1))
    wide[0, 0] = np.nan
    y = decode(_save(tmp_path / "wide.tif", Image.fromarray(wide)), 16)
    assert y[0, 8].tolist() == wide[8].astype(np.float64).round().clip(0, 255).astype(int).tolist()
    assert y[0, 0, 0] == 0  # NaN: black
    noise = np.random.default_rng(0).random((16, 16)).astype(np.float32)
    z = decode(_save(tmp_path / "noise.tif", Image.fromarray(noise)), 16)
    assert 100 < z.float().mean() < 155  # about 127, not black


def test_a_phone_photo_is_turned_upright_by_its_exif_orientation(tmp_path: Path) -> None:
    x = decode(_exif_rotated(tmp_path / "portrait.jpg"), 16)
    assert _pixel(x, 2, 8) == pytest.approx(RED, abs=12)
    assert _pixel(x, 13, 8) == pytest.approx(BLUE, abs=12)


@pytest.mark.parametrize("cache", ["memory", "stream"])
@pytest.mark.parametrize(("name", "content"), [("empty.jpg", b""), ("truncated.jpg", None)])
def test_empty_and_truncated_files_are_refused_by_name_on_both_paths(
        tmp_path: Path, cache: str, name: str, content: bytes | None) -> None:
    root = _two_classes(tmp_path)
    bad = root / "b" / name
    if content is None:
        whole = _save(tmp_path / "whole.jpg", Image.effect_noise((64, 64), 40)).read_bytes()
        content = whole[: len(whole) // 2]
    bad.write_bytes(content)
    with pytest.raises(ConfigError, match=rf"^data.root: .*{name} is not a readable image"):
        load(Data(dataset="imagefolder", root=root, image_size=16, cache=cache))


def test_images_past_the_decompression_bomb_limit(tmp_path: Path, monkeypatch) -> None:
    """PIL warns above MAX_IMAGE_PIXELS and refuses above twice that: between the two a
    user's own large photo is decoded without a word, above it is refused in one line."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        root = _two_classes(tmp_path, size=(40, 40))  # 1600 pixels: PIL warns
        data = load(Data(dataset="imagefolder", root=root, image_size=8, cache="memory"))
        assert len(data.y_train) + len(data.y_val) == 4
        _save(root / "a" / "0.png", Image.new("RGB", (50, 50)))  # 2500: over twice the limit
        # (the other threads still decoding when it is refused stay quiet too)
        with pytest.raises(ConfigError, match=r"^data.root: .*0.png is too large to decode "
                                              r"\(Image size \(2500 pixels\) exceeds"):
            load(Data(dataset="imagefolder", root=root, image_size=8))
    assert [str(w.message) for w in caught] == []


def _two_classes(root: Path, size: tuple[int, int] = (16, 16)) -> Path:
    for name, colour in (("a", RED), ("b", BLUE)):
        for i in range(2):
            _save(root / name / f"{i}.png", Image.new("RGB", size, colour))
    return root


def _every_kind(root: Path) -> Path:
    for i, (name, (write, _)) in enumerate(WRITERS.items()):
        write(root / "ab"[i % 2] / name)
    _exif_rotated(root / "a" / "portrait.jpg")
    return root


def test_both_paths_give_the_same_pixels_for_every_kind(tmp_path: Path) -> None:
    from pipeline.training.batches import eval_batches

    root = _every_kind(tmp_path)
    cfg = Data(dataset="imagefolder", root=root, image_size=16, val_fraction=0.25)
    memory = load(cfg.model_copy(update={"cache": "memory"}))
    streamed = load(cfg.model_copy(update={"cache": "stream"}))
    assert streamed.streamed and not memory.streamed
    for split in ("train", "val"):
        x, y = getattr(streamed, f"x_{split}"), getattr(streamed, f"y_{split}")
        batches = list(eval_batches(x, y, 4, torch.device("cpu"), workers=2))
        assert torch.equal(torch.cat([xb for xb, _ in batches]), getattr(memory, f"x_{split}"))


TERMINAL = """
import sys
from pathlib import Path
import torch
from PIL import Image
from pipeline.config import Data
from pipeline.training.batches import train_batches
from pipeline.training.data import load

Image.MAX_IMAGE_PIXELS = 1500  # the wide and strip images warn too, in the forked workers
root, cache = Path(sys.argv[1]), sys.argv[2]
data = load(Data(dataset="imagefolder", root=root, image_size=16, cache=cache, workers=2,
                 normalize=True))
for x, y in train_batches(data.x_train, data.y_train, 3, torch.Generator().manual_seed(0),
                          torch.device("cpu"), workers=2):
    pass
print("ok", len(data.y_train))
"""


@pytest.mark.parametrize("cache", ["memory", "stream"])
def test_no_library_warning_reaches_the_terminal(tmp_path: Path, cache: str) -> None:
    """In a fresh interpreter with Python's default warning filters (pytest records warnings,
    and forked DataLoader workers inherit its recorder), as a user runs it."""
    root = _every_kind(tmp_path / "set")
    done = subprocess.run([sys.executable, "-c", TERMINAL, str(root), cache], cwd=ROOT, check=False,
                          capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1",
                               "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok") and done.stderr == ""
