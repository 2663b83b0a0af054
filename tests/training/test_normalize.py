"""Normalisation: statistics of the training split only, applied inside the network."""
from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from pipeline.config import ConfigError, Data, Model
from pipeline.training.data import load
from pipeline.training.models import build_model
from pipeline.training.normalize import channel_stats, standardizer, to_unit


def test_channel_stats_are_those_of_the_images() -> None:
    x = torch.randint(0, 256, (50, 3, 6, 6), dtype=torch.uint8,
                      generator=torch.Generator().manual_seed(0))
    mean, std = channel_stats(x)
    unit = x.double() / 255
    assert mean == pytest.approx(unit.mean((0, 2, 3)).tolist(), rel=1e-6)
    assert std == pytest.approx(unit.std((0, 2, 3), correction=0).tolist(), rel=1e-6)


def test_a_constant_channel_is_centred_not_scaled() -> None:
    """Its std was ~1e-6: one 8-bit level of difference in the validation split became
    thousands of standard deviations (val_loss 31 where 0.7 was right)."""
    x = torch.randint(0, 256, (20, 3, 4, 4), dtype=torch.uint8,
                      generator=torch.Generator().manual_seed(0))
    x[:, 1] = 77
    mean, std = channel_stats(x)
    assert std[1] == 1.0 and mean[1] == pytest.approx(77 / 255)
    shifted = x.clone()
    shifted[:, 1] = 78
    assert standardizer(mean, std)(to_unit(shifted))[:, 1].abs().max() < 0.01


def test_standardizer_gives_zero_mean_unit_std() -> None:
    x = torch.rand(40, 3, 5, 5) * torch.tensor([0.5, 1.0, 0.2]).view(1, 3, 1, 1)
    mean, std = channel_stats(x)
    out = standardizer(mean, std)(x)
    assert out.mean((0, 2, 3)).abs().max() < 1e-5
    assert (out.std((0, 2, 3), correction=0) - 1).abs().max() < 1e-4


def test_statistics_come_from_the_training_split_only() -> None:
    data = load(Data(limit=300, normalize=True))
    assert data.mean == pytest.approx(channel_stats(data.x_train)[0])
    assert data.mean != pytest.approx(channel_stats(data.x_val)[0], rel=1e-6)
    given = load(Data(limit=300, normalize=True, mean=[0.5], std=[0.25]))
    assert given.mean == (0.5,) and given.std == (0.25,)
    assert load(Data(limit=300)).mean is None


def test_the_network_standardises_its_own_inputs() -> None:
    data = load(Data(limit=300, normalize=True))
    model = build_model(Model(arch="mlp"), data.input_shape, 10, data.mean, data.std)
    bare = build_model(Model(arch="mlp"), data.input_shape, 10)
    bare.load_state_dict({k: v for k, v in model.state_dict().items()
                          if not k.startswith("standardize")}, strict=False)
    x = data.x_val[:4]
    z = (x - torch.tensor(data.mean).view(1, -1, 1, 1)) / torch.tensor(data.std).view(1, -1, 1, 1)
    assert torch.allclose(model(x), bare(z), atol=1e-5)
    assert torch.allclose(model.portable()(x), model(x))
    assert torch.equal(to_unit(torch.tensor([0, 255], dtype=torch.uint8)), torch.tensor([0., 1.]))


@pytest.mark.parametrize(("values", "message"), [
    ({"normalize": True, "mean": [0.5]}, "data.mean and data.std: give both"),
    ({"normalize": True, "mean": [0.5], "std": [0.0]}, "data.std: one positive value"),
    ({"normalize": True, "mean": [0.5, 0.5], "std": [0.2]}, "data.std: one positive value"),
    ({"mean": [0.5], "std": [0.2]}, "data.mean: set data.normalize"),
])
def test_bad_statistics_name_the_field(values: dict, message: str) -> None:
    from pipeline.config import validate

    with pytest.raises(ConfigError, match=message):
        validate({"name": "n", "data": values})


def test_statistics_for_the_wrong_number_of_channels() -> None:
    with pytest.raises(ConfigError, match="data.mean: 3 values for 1 channel"):
        load(Data(limit=100, normalize=True, mean=[0.5] * 3, std=[0.2] * 3))


def test_replace_keeps_the_dataclass_contract() -> None:
    data = load(Data(limit=100))
    assert replace(data, x_test=None).num_classes == 10
