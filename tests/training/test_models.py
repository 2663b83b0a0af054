"""Every architecture builds for every input size the datasets produce."""
from __future__ import annotations

import pytest
import torch

from pipeline.config import Model
from pipeline.training.models import build_model


@pytest.mark.parametrize("arch", ["mlp", "cnn", "resnet18"])
@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 32, 32)])
def test_logits_shape(arch: str, shape: tuple[int, ...]) -> None:
    model = build_model(Model(arch=arch, hidden=16, channels=4), shape, num_classes=7)
    assert model(torch.zeros(2, *shape)).shape == (2, 7)


def test_size_knobs_change_the_model() -> None:
    def params(**kw) -> int:
        return sum(p.numel() for p in build_model(Model(**kw), (1, 8, 8), 10).parameters())

    assert params(hidden=64) < params(hidden=128)
    assert params(depth=1) < params(depth=2)
    assert params(arch="cnn", channels=8) < params(arch="cnn", channels=16)
