"""A user's own data set and network (data.factory, model.factory) with the built-in loop:
the LR range test runs on them, training resumes exactly, the test split is scored."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

from pipeline import study
from pipeline.config import ConfigError, Data, Experiment, Model, load
from pipeline.training import lr_range
from pipeline.training.data import Tensors
from pipeline.training.data import load as load_data
from pipeline.training.loop import fit, score_test_split
from pipeline.training.models import build_model, check
from tests.factories import head_first, tiny_net

from ..conftest import write_experiment

EXP = Experiment.model_validate({
    "name": "fac", "data": {"factory": "tests.factories:blobs", "batch_size": 16},
    "model": {"factory": "tests.factories:tiny_net", "hidden": 8},
    "train": {"epochs": 3, "lr": 0.1}, "lr_range_test": {"num_iter": 20}})


def test_data_factory_returns_the_users_tensors() -> None:
    data = load_data(EXP.data, seed=0)
    assert data.input_shape == (1, 4, 4) and data.num_classes == 2 and len(data.y_test) == 40
    assert data.source == "data.factory tests.factories:blobs"


def test_model_factory_builds_the_users_network() -> None:
    model = build_model(EXP.model, (1, 4, 4), 2)
    assert [type(m).__name__ for m in model.net] == ["Flatten", "Linear", "ReLU", "Linear"]
    assert model.net[1].out_features == 8


def test_lr_range_test_resume_and_test_split_work_for_factories() -> None:
    data = load_data(EXP.data, EXP.seed)
    curve = lr_range.range_test(EXP, data)
    assert curve.iterations > 5
    full = [e.metrics["val_loss"] for e in fit(EXP, data)]
    first = next(iter(fit(EXP, data)))
    assert full[1:] == [e.metrics["val_loss"] for e in fit(EXP, data, state=first.state())]
    *_, last = fit(EXP, data)
    scores = score_test_split(EXP, data, last.state()["model"])
    assert scores["test_acc"] > 0.8 and set(scores) == {"test_loss", "test_acc"}


def test_factories_that_return_the_wrong_thing_are_one_line() -> None:
    with pytest.raises(ConfigError, match="data.factory: tests.factories:not_tensors returned "
                                          "list, not pipeline.training.data.Tensors"):
        load_data(Data(factory="tests.factories:not_tensors"))
    with pytest.raises(ConfigError, match="model.factory: .* returned str, not a torch.nn"):
        build_model(Model(factory="tests.factories:not_a_module"), (1, 4, 4), 2)
    with pytest.raises(ConfigError, match="^model.factory: tests.factories:logits_and_features "
                                          "returns a tuple, not a tensor of 2 class scores"):
        check(Model(factory="tests.factories:logits_and_features", hidden=4), (1, 4, 4), 2)


@pytest.mark.parametrize("field", ["data.factory", "model.factory"])
def test_factories_that_cannot_be_imported_fail_at_load(tmp_path, field: str) -> None:
    path = write_experiment(tmp_path, "name: f\n")
    with pytest.raises(ConfigError, match=f"{field}: cannot import 'tests.factories:nope'"):
        load(path, [f"{field}=tests.factories:nope"])
    with pytest.raises(ConfigError, match=f"{field}:"):
        load(path, [f"{field}=not a spec"])


# Factories as an outside tester wrote them, named `tests.training.test_factories:...`.
HERE = "tests.training.test_factories"


def missing_file(cfg, seed: int) -> Tensors:
    """A loader whose own data file is not there."""
    with open("/nowhere/train.csv") as lines:
        return lines.read()


def interrupted(cfg, seed: int) -> Tensors:
    raise KeyboardInterrupt


def broken_net(cfg, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    return {"layers": 2}["depth"]


def grad_blobs(cfg, seed: int) -> Tensors:
    """Tensors built under autograd, as a loader that preprocesses with a network does."""
    y = torch.arange(60) % 2
    x = (torch.rand(60, 1, 4, 4, generator=torch.Generator().manual_seed(seed))
         + y[:, None, None, None]).requires_grad_()
    return Tensors(x[:40] * 1, y[:40], x[40:] * 1, y[40:], 2)


def images(cfg, seed: int) -> Tensors:
    """Two classes of 3x16x16 float images."""
    y = torch.arange(24) % 2
    x = torch.rand(24, 3, 16, 16, generator=torch.Generator().manual_seed(seed)) * 0.5 + 0.5 * y[
        :, None, None, None]
    return Tensors(x[:16], y[:16], x[16:], y[16:], 2)


def googlenet(cfg, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """torchvision's googlenet as built by default: aux_logits on."""
    return torchvision.models.googlenet(num_classes=num_classes, init_weights=False)


class _DictWhenTraining(nn.Module):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor | dict:
        out = self.net(x)
        return {"logits": out, "features": x} if self.training else out


def dict_when_training(cfg, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    return _DictWhenTraining(tiny_net(cfg, input_shape, num_classes))


def frozen_net(cfg, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    return tiny_net(cfg, input_shape, num_classes).requires_grad_(False)


def batch_norm_net(cfg, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """Batch norm on a (batch, hidden) tensor: one value per channel at batch size 1."""
    return nn.Sequential(nn.Flatten(), nn.Linear(16, cfg.hidden), nn.BatchNorm1d(cfg.hidden),
                         nn.ReLU(), nn.Linear(cfg.hidden, num_classes))


KEPT = batch_norm_net(Model(hidden=4), (1, 4, 4), 2)


def kept_net(cfg, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """One network handed out every time, as a factory that caches it does."""
    return KEPT


WHERE = r" \(at .*test_factories\.py:\d+\)$"


def test_a_factory_that_raises_is_one_line_naming_the_field_and_where() -> None:
    """It was `failed: FileNotFoundError: ...`, exit 1, naming neither field nor file."""
    with pytest.raises(ConfigError, match=f"^data.factory: {HERE}:missing_file raised "
                                          f"FileNotFoundError: .*/nowhere/train.csv.*{WHERE}"):
        load_data(Data(factory=f"{HERE}:missing_file"))
    with pytest.raises(ConfigError, match=f"^model.factory: {HERE}:broken_net raised "
                                          f"KeyError: 'depth'{WHERE}"):
        build_model(Model(factory=f"{HERE}:broken_net"), (1, 4, 4), 2)
    with pytest.raises(KeyboardInterrupt):  # a stop is not the factory's error
        load_data(Data(factory=f"{HERE}:interrupted"))


def test_a_factorys_tensors_that_require_grad_are_loaded_and_normalised() -> None:
    """The normalisation stats failed: `Can't call numpy() on Tensor that requires grad`."""
    data = load_data(Data(factory=f"{HERE}:grad_blobs", normalize=True))
    assert not data.x_train.requires_grad and len(data.mean) == 1


@pytest.mark.parametrize(("factory", "message"), [
    # in training mode googlenet returns GoogLeNetOutputs: every trial failed mid-sweep
    ("googlenet", (r"returns a GoogLeNetOutputs in training mode, not a tensor of 2 class "
                   r"scores per input \(torchvision googlenet/inception: build it with "
                   "aux_logits=False")),
    ("dict_when_training", "returns a dict in training mode, not a tensor of 2 class scores"),
    # the optimizer got an empty parameter list, in every trial
    ("frozen_net", r"has no trainable parameters \(requires_grad is False on every one\)"),
])
def test_a_network_that_cannot_train_is_refused_before_ray(factory: str, message: str) -> None:
    shape = (3, 16, 16) if factory == "googlenet" else (1, 4, 4)
    with pytest.raises(ConfigError, match=f"^model.factory: {HERE}:{factory} {message}"):
        check(Model(factory=f"{HERE}:{factory}", hidden=4), shape, 2)


def test_batch_norm_at_batch_size_1_names_data_batch_size_and_nothing_leaks() -> None:
    cfg = Model(factory=f"{HERE}:batch_norm_net", hidden=4)
    with pytest.raises(ConfigError, match=f"^data.batch_size: 1 is too small for model.factory "
                                          f"{HERE}:batch_norm_net, whose batch norm needs more"):
        check(cfg, (1, 4, 4), 2, batch_size=1)
    check(cfg, (1, 4, 4), 2, batch_size=64)  # tried at 2: the loop never trains on one alone
    # the training-mode pass ran on a copy: a network the factory keeps is as it was
    check(Model(factory=f"{HERE}:kept_net"), (1, 4, 4), 2, batch_size=8)
    norm = KEPT[2]
    assert int(norm.num_batches_tracked) == 0 and torch.equal(norm.running_mean, torch.zeros(4))


def test_load_checked_tries_the_smallest_searched_batch_size() -> None:
    exp = EXP.model_copy(update={
        "model": Model(factory=f"{HERE}:batch_norm_net", hidden=4),
        "search": EXP.search.model_copy(update={
            "space": {"data.batch_size": {"choice": [16, 1]}}})})
    with pytest.raises(ConfigError, match="^data.batch_size: 1 is too small"):
        study.load_checked(exp)
    study.load_checked(exp.model_copy(update={"search": EXP.search}))


def test_load_checked_tries_every_searched_weights_value(tmp_path: Path) -> None:
    """A searched model.weights file was first opened in its trial, which failed mid-sweep."""
    arch = "shufflenet_v2_x0_5"
    torch.save(torchvision.models.get_model(arch, num_classes=2).state_dict(), tmp_path / "w.pt")
    exp = Experiment.model_validate({
        "name": "w", "data": {"factory": f"{HERE}:images", "batch_size": 8},
        "model": {"arch": arch, "weights": str(tmp_path / "w.pt")},
        "search": {"space": {"model.weights": {"choice": [str(tmp_path / "w.pt"),
                                                          str(tmp_path / "gone.pt")]}}}})
    with pytest.raises(ConfigError, match=f"^model.weights: no such file.*{tmp_path}/gone.pt"):
        study.load_checked(exp)


def test_a_frozen_factory_network_trains_the_layer_its_forward_ends_with(tmp_path: Path) -> None:
    """By registration order the backbone's last Linear was taken for the head of a network
    that registers `self.head` first: that layer trained alone, the real head stayed frozen at
    random, and the weights file's backbone layer was skipped as "head" (found from outside)."""
    from pipeline.config import Model
    from pipeline.training.models import build_model

    torch.save(head_first(None, (1, 4, 4), 2).state_dict(), tmp_path / "w.pt")
    cfg = Model(factory="tests.factories:head_first", weights=str(tmp_path / "w.pt"),
                freeze="backbone")
    model = build_model(cfg, (1, 4, 4), 2)
    trainable = {name for name, p in model.net.named_parameters() if p.requires_grad}
    assert trainable == {"head.weight", "head.bias"}
    saved = torch.load(tmp_path / "w.pt")
    assert torch.equal(model.net.backbone[1].weight, saved["backbone.1.weight"])
