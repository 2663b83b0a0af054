"""Batch augmentation: what each transform does, and the same batches for the same seed."""
from __future__ import annotations

import pytest
import torch

from pipeline.config import Experiment
from pipeline.training import augment
from pipeline.training.data import load
from pipeline.training.loop import fit

X = torch.rand(64, 3, 12, 12, generator=torch.Generator().manual_seed(0))


def _g(seed: int = 0) -> torch.Generator:
    return augment.generator(torch.device("cpu"), seed)


@pytest.mark.parametrize("kinds", [["flip"], ["crop"], ["resized_crop"],
                                   ["resized_crop", "flip"]])
def test_same_seed_same_batch_other_seed_other_batch(kinds: list[str]) -> None:
    a = augment.augment(X, kinds, 2, _g(1))
    assert a.shape == X.shape
    assert torch.equal(a, augment.augment(X, kinds, 2, _g(1)))
    assert not torch.equal(a, augment.augment(X, kinds, 2, _g(2)))
    assert not torch.equal(a, X)


def test_flip_mirrors_about_half_the_images() -> None:
    out = augment.flip(X, _g())
    flipped = [torch.equal(o, x.flip(2)) for o, x in zip(out, X)]
    kept = [torch.equal(o, x) for o, x in zip(out, X)]
    assert all(f or k for f, k in zip(flipped, kept))
    assert 16 < sum(flipped) < 48


def test_crop_shifts_each_image_within_the_padding() -> None:
    out = augment.crop(X, _g(), padding=2)
    for o, x in zip(out, X):
        padded = torch.nn.functional.pad(x, (2,) * 4)
        assert any(torch.equal(o, padded[:, dy:dy + 12, dx:dx + 12])
                   for dy in range(5) for dx in range(5))
    assert torch.equal(augment.crop(X, _g(), padding=0), X)


def test_resized_crop_keeps_values_in_range() -> None:
    out = augment.resized_crop(X, _g())
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    assert (out - X).abs().mean() > 0.05


def test_an_augmented_run_repeats_and_resumes_exactly() -> None:
    exp = Experiment.model_validate({
        "name": "aug", "data": {"limit": 300, "augment": ["crop", "flip"], "crop_padding": 1},
        "train": {"epochs": 3, "lr": 0.05}})
    data = load(exp.data)
    full = [e.metrics["val_loss"] for e in fit(exp, data)]
    assert full == [e.metrics["val_loss"] for e in fit(exp, data)]
    first = next(iter(fit(exp, data)))
    assert full[1:] == [e.metrics["val_loss"] for e in fit(exp, data, state=first.state())]
    plain = [e.metrics["val_loss"] for e in fit(exp.with_values({"data.augment": []}), data)]
    assert plain != full
