"""Synthetic image folders in torchvision's ImageFolder layout: the demo data set
(`make imagefolder-demo`), the tests' folders and the benchmarks' images.

Each class is a shape (circle, square, triangle, cross) drawn at a random place, size and
colour on a noisy background, in images of varying size and aspect saved as PNG or JPEG: a
task a small CNN learns in a few epochs, that still needs resizing, cropping and learning.

    .venv/bin/python -m bench.imagefolder_data data/shapes [--per-class 150] [--splits]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

SHAPES = ("circle", "square", "triangle", "cross")


def draw(shape: str, rng: np.random.Generator, size: tuple[int, int]):
    """One PIL image of `shape`."""
    from PIL import Image, ImageDraw

    w, h = size
    noise = rng.integers(0, 40, (h, w, 3)) + rng.integers(0, 80, 3)
    image = Image.fromarray(noise.astype(np.uint8))
    pen = ImageDraw.Draw(image)
    r = int(rng.uniform(0.25, 0.45) * min(w, h))
    cx, cy = int(rng.uniform(r, w - r)), int(rng.uniform(r, h - r))
    colour = tuple(int(c) for c in rng.integers(140, 256, 3))
    if shape == "circle":
        pen.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour)
    elif shape == "square":
        pen.rectangle((cx - r, cy - r, cx + r, cy + r), fill=colour)
    elif shape == "triangle":
        pen.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=colour)
    else:
        t = max(2, r // 3)
        pen.rectangle((cx - r, cy - t, cx + r, cy + t), fill=colour)
        pen.rectangle((cx - t, cy - r, cx + t, cy + r), fill=colour)
    return image


def write_folder(root: Path, per_class: int = 20, classes: int = 3, seed: int = 0,
                 odd_files: bool = True, sizes: tuple[int, int] = (40, 80)) -> Path:
    """root/CLASS/NNN.{png,jpg}, images `sizes` pixels a side (varying); with `odd_files`
    also a notes.txt and a .DS_Store per class, which the loader skips."""
    rng = np.random.default_rng(seed)
    for shape in SHAPES[:classes]:
        folder = root / shape
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            size = tuple(int(s) for s in rng.integers(sizes[0], sizes[1] + 1, 2))
            image = draw(shape, rng, size)
            image.save(folder / (f"{i:03d}.png" if i % 2 else f"{i:03d}.jpg"))
        if odd_files:
            (folder / "notes.txt").write_text("not an image\n")
            (folder / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    return root


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--per-class", type=int, default=150)
    parser.add_argument("--classes", type=int, default=3, choices=range(2, len(SHAPES) + 1))
    parser.add_argument("--splits", action="store_true",
                        help="write train/, val/ and test/ sub-trees instead of one folder")
    args = parser.parse_args(argv)
    if args.splits:
        for i, split in enumerate(("train", "val", "test")):
            n = args.per_class if split == "train" else max(2, args.per_class // 5)
            write_folder(args.root / split, n, args.classes, seed=i)
    else:
        write_folder(args.root, args.per_class, args.classes)
    print(f"wrote {args.root}")


if __name__ == "__main__":
    main()
