"""Every architecture builds for every input size the datasets produce."""
from __future__ import annotations

import pytest
import torch

from pipeline.config import ConfigError, Model
from pipeline.training.models import build_model, check


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


def test_check_trains_a_batch_too_so_batch_norm_on_one_example_fails_before_ray() -> None:
    """mobilenet_v3_small's batch norm sees 1x1 maps at 16x16: at data.batch_size 1 every trial
    failed with `Expected more than 1 value per channel when training`."""
    with pytest.raises(ConfigError, match="^data.batch_size: 1 is too small for model.arch "
                                          "mobilenet_v3_small, whose batch norm needs more"):
        check(Model(arch="mobilenet_v3_small"), (3, 16, 16), 5, batch_size=1)
    check(Model(arch="mobilenet_v3_small"), (3, 16, 16), 5, batch_size=2)
    # googlenet by name is built without its auxiliary heads: a tensor in training mode too
    check(Model(arch="googlenet"), (3, 32, 32), 5, batch_size=2)
