"""torchvision models by name: adapted to small inputs, trained a few steps, started from
weights (a state-dict file or the torch hub cache, never a download), frozen to the head."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from pipeline.config import ConfigError, Experiment, Model, validate
from pipeline.training import torchvision_models
from pipeline.training.data import Tensors
from pipeline.training.loop import fit, setup, train_step
from pipeline.training.models import build_model, check

SMALL = "shufflenet_v2_x0_5"


def _images(n: int = 48, side: int = 16) -> Tensors:
    g = torch.Generator().manual_seed(0)
    y = torch.arange(n) % 3
    x = (torch.rand(n, 3, side, side, generator=g) * 80 + 60 * y[:, None, None, None]).to(
        torch.uint8)
    train = n * 3 // 4
    return Tensors(x[:train], y[:train], x[train:], y[train:], 3)


def test_a_torchvision_model_by_name_trains_a_few_steps() -> None:
    exp = Experiment.model_validate({"name": "tv", "model": {"arch": SMALL},
                                     "data": {"batch_size": 16},
                                     "train": {"epochs": 4, "optimizer": "adamw", "lr": 0.003}})
    # 96 images: with 36, batch-norm statistics of 3 steps an epoch left the loss at the
    # mercy of the BLAS thread count (it rose on one thread, fell on two).
    history = [e.metrics for e in fit(exp, _images(128))]
    assert all(torch.isfinite(torch.tensor(m["val_loss"])) for m in history)
    assert history[-1]["train_loss"] < history[0]["train_loss"]


def test_small_inputs_are_adapted_per_family() -> None:
    resnet = build_model(Model(arch="resnet34"), (3, 32, 32), 5).net
    assert resnet.conv1.kernel_size == (3, 3) and isinstance(resnet.maxpool, nn.Identity)
    assert build_model(Model(arch="resnet34"), (3, 96, 96), 5).net.conv1.kernel_size == (7, 7)
    squeeze = build_model(Model(arch="squeezenet1_1"), (1, 8, 8), 4)
    adapter = squeeze.net[0]
    assert [type(m) for m in adapter] == [nn.Conv2d, nn.Upsample] and adapter[1].size == (17, 17)
    assert squeeze(torch.rand(2, 1, 8, 8)).shape == (2, 4)
    assert not isinstance(build_model(Model(arch=SMALL), (3, 16, 16), 4).net, nn.Sequential)


def test_weights_from_a_state_dict_file_replace_the_head(tmp_path: Path) -> None:
    source = build_model(Model(arch=SMALL), (3, 16, 16), 7).net
    torch.save(source.state_dict(), tmp_path / "net.pt")
    model = build_model(Model(arch=SMALL, weights=str(tmp_path / "net.pt")), (3, 16, 16), 3)
    mine, theirs = model.net.state_dict(), source.state_dict()
    head = torchvision_models.head_name(model.net)
    assert head == "fc" and mine["fc.weight"].shape == (3, theirs["fc.weight"].shape[1])
    assert all(torch.equal(mine[k], v) for k, v in theirs.items() if not k.startswith("fc."))
    # a checkpoint of this pipeline works too (its network sits under `net.`)
    torch.save({"model": model.state_dict()}, tmp_path / "state.pt")
    again = build_model(Model(arch=SMALL, weights=str(tmp_path / "state.pt")), (3, 16, 16), 3)
    assert torch.equal(again.net.state_dict()["conv1.0.weight"], mine["conv1.0.weight"])


@pytest.mark.parametrize("name", ["r18.ckpt", "r18.pth.tar", "r18_weights"])
def test_a_weights_file_named_without_a_folder_is_a_file(name: str, tmp_path: Path,
                                                         monkeypatch) -> None:
    """Only a path with a folder (`./r18.ckpt`) or a .pt/.pth/.bin name counted as a file:
    `r18.ckpt` was refused as 'neither a file nor weights of ...'."""
    from pipeline.config import with_absolute_paths

    monkeypatch.chdir(tmp_path)
    source = build_model(Model(arch=SMALL), (3, 16, 16), 7).net.state_dict()
    # Lightning's layout: the network's keys under state_dict, named after its attribute
    torch.save({"state_dict": {f"model.{k}": v for k, v in source.items()}}, tmp_path / name)
    model = build_model(Model(arch=SMALL, weights=name), (3, 16, 16), 3)
    assert torch.equal(model.net.state_dict()["conv1.0.weight"], source["conv1.0.weight"])
    # made absolute for the trials, whose working folder is their own
    exp = with_absolute_paths(validate({"name": "w", "model": {"arch": SMALL, "weights": name}}))
    assert exp.model.weights == str(tmp_path / name)
    (tmp_path / "trial").mkdir()
    monkeypatch.chdir(tmp_path / "trial")
    build_model(exp.model, (3, 16, 16), 3)
    with pytest.raises(ConfigError, match=r"model.weights: no such file other.ckpt$"):
        build_model(Model(arch=SMALL, weights="other.ckpt"), (3, 16, 16), 3)


def test_weights_by_name_come_from_the_hub_cache_only(tmp_path: Path, monkeypatch) -> None:
    import torchvision.models

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    cfg = Model(arch=SMALL, weights="IMAGENET1K_V1")
    with pytest.raises(ConfigError, match=r"model.weights: .* is not in the torch hub cache"):
        build_model(cfg, (3, 16, 16), 3)
    weights = torchvision.models.get_model_weights(SMALL).IMAGENET1K_V1
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    reference = torchvision.models.get_model(SMALL).state_dict()
    torch.save(reference, tmp_path / "hub" / "checkpoints" / weights.url.rsplit("/", 1)[1])
    model = build_model(cfg, (3, 16, 16), 3)
    assert torch.equal(model.net.state_dict()["conv1.0.weight"], reference["conv1.0.weight"])
    with pytest.raises(ConfigError, match="is neither a file nor weights of"):
        build_model(Model(arch=SMALL, weights="IMAGENET9K"), (3, 16, 16), 3)


@pytest.mark.parametrize("arch", ["googlenet", "inception_v3"])
def test_googlenet_and_inception_with_weights_transform_their_input(
        arch: str, tmp_path: Path, monkeypatch) -> None:
    """torchvision's builders turn transform_input on whenever they load weights (trained on
    inputs in [-1, 1]); built with weights=None and loaded after, it stayed off."""
    import torchvision.models

    def inner(model) -> nn.Module:  # behind the input adapter when there is one
        return model.net[-1] if isinstance(model.net, nn.Sequential) else model.net

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    weights = torchvision.models.get_model_weights(arch).IMAGENET1K_V1
    reference = torchvision.models.get_model(arch, aux_logits=True, init_weights=False)
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    torch.save(reference.state_dict(),
               tmp_path / "hub" / "checkpoints" / weights.url.rsplit("/", 1)[1])
    assert not inner(build_model(Model(arch=arch), (3, 16, 16), 3)).transform_input
    named = build_model(Model(arch=arch, weights="IMAGENET1K_V1"), (3, 16, 16), 3)
    assert inner(named).transform_input
    # rebuilt for a checkpoint (nothing loaded): the network that was trained
    rebuilt = build_model(Model(arch=arch, weights="IMAGENET1K_V1"), (3, 16, 16), 3,
                          pretrained=False)
    assert inner(rebuilt).transform_input
    torch.save(reference.state_dict(), tmp_path / "copied.pth")  # the same weights by hand
    from_file = build_model(Model(arch=arch, weights=str(tmp_path / "copied.pth")),
                            (3, 16, 16), 3)
    assert inner(from_file).transform_input


def test_weight_files_that_do_not_fit_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="model.weights: no such file"):
        build_model(Model(arch=SMALL, weights=str(tmp_path / "none.pt")), (3, 16, 16), 3)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="is not a PyTorch state dict"):
        build_model(Model(arch=SMALL, weights=str(tmp_path / "junk.pt")), (3, 16, 16), 3)
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(ConfigError, match=r"empty.pt is not a PyTorch state dict \(\w+\)$"):
        build_model(Model(arch=SMALL, weights=str(tmp_path / "empty.pt")), (3, 16, 16), 3)
    torch.save({"other.weight": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(ConfigError, match="none of the 1 tensors"):
        build_model(Model(arch=SMALL, weights=str(tmp_path / "other.pt")), (3, 16, 16), 3)
    # a prefix of the user's own: the first names of both say so
    net = build_model(Model(arch=SMALL), (3, 16, 16), 3).net
    torch.save({f"backbone.{k}": v for k, v in net.state_dict().items()}, tmp_path / "bb.pt")
    with pytest.raises(ConfigError, match=r"the file's names start 'backbone\.conv1\.0\.weight', "
                                          r"the model's 'conv1\.0\.weight'"):
        build_model(Model(arch=SMALL, weights=str(tmp_path / "bb.pt")), (3, 16, 16), 3)
    # SWA's / EMA's AveragedModel: the network under `module.`, beside its counter, loads
    torch.save(torch.optim.swa_utils.AveragedModel(net).state_dict(), tmp_path / "swa.pt")
    loaded = build_model(Model(arch=SMALL, weights=str(tmp_path / "swa.pt")), (3, 16, 16), 3)
    assert torch.equal(loaded.net.conv1[0].weight, net.conv1[0].weight)
    stem_only = {k: v for k, v in build_model(Model(arch=SMALL), (3, 16, 16), 3).net
                 .state_dict().items() if k.startswith("conv1.")}
    torch.save(stem_only, tmp_path / "stem.pt")
    with pytest.raises(ConfigError, match=r"only \d+ of the \d+ backbone tensors"):
        build_model(Model(arch=SMALL, weights=str(tmp_path / "stem.pt")), (3, 16, 16), 3)


def test_weights_of_a_larger_variant_or_a_whole_model_are_refused(tmp_path: Path) -> None:
    """resnet34's weights filled a resnet18 with its first blocks and dropped its other
    hundred tensors without a word; a whole pickled model got torch's page of advice."""
    import torchvision

    torch.save(torchvision.models.resnet34(num_classes=3).state_dict(), tmp_path / "r34.pt")
    with pytest.raises(ConfigError, match=r"model.weights: \d+ of the \d+ tensors of .*r34.pt "
                                          r"have no place in resnet18 \(e.g. layer1.2"):
        build_model(Model(arch="resnet18", weights=str(tmp_path / "r34.pt")), (3, 32, 32), 3)
    torch.save(nn.Linear(2, 2), tmp_path / "whole.pt")
    with pytest.raises(ConfigError, match=r"holds pickled Python objects, not only tensors "
                                          r"\(a whole model saved with torch.save\(model\)\?\); "
                                          r"save model.state_dict\(\) instead$"):
        build_model(Model(arch=SMALL, weights=str(tmp_path / "whole.pt")), (3, 16, 16), 3)


@pytest.mark.parametrize(("channels", "trained"), [
    (3, {"net.fc.weight", "net.fc.bias"}),
    # four channels go through a 1x1 convolution to three: frozen with the backbone at its
    # start value, it passed channels 0-2 on and dropped the fourth for good
    (4, {"net.0.0.weight", "net.1.fc.weight", "net.1.fc.bias"}),
])
def test_a_frozen_backbone_trains_only_the_head_and_an_input_adapter(
        tmp_path: Path, channels: int, trained: set[str]) -> None:
    torch.save(build_model(Model(arch=SMALL), (3, 16, 16), 3).net.state_dict(),
               tmp_path / "w.pt")
    exp = Experiment.model_validate({"name": "f", "model": {
        "arch": SMALL, "weights": str(tmp_path / "w.pt"), "freeze": "backbone"},
        "train": {"lr": 0.1}})
    data = _images()
    extra = channels - 3
    data = Tensors(torch.cat([data.x_train, data.x_train[:, :extra]], 1), data.y_train,
                   torch.cat([data.x_val, data.x_val[:, :extra]], 1), data.y_val, 3)
    s = setup(exp, data)
    before = {k: v.clone() for k, v in s.model.state_dict().items()}
    train_step(s.model.train(), s.optimizer, data.x_train[:8], data.y_train[:8])
    changed = {k for k, v in s.model.state_dict().items() if not torch.equal(v, before[k])}
    assert changed == trained
    with pytest.raises(ConfigError, match="model.freeze: backbone needs model.weights"):
        validate({"name": "f", "model": {"arch": SMALL, "freeze": "backbone"}})


def test_an_image_too_small_for_the_model_is_one_line() -> None:
    cfg = Model(factory="tests.factories:unpadded_convs")
    check(cfg, (3, 17, 17), 3)
    with pytest.raises(ConfigError, match=r"model.factory: tests.factories:unpadded_convs "
                                          r"cannot take 3x16x16 inputs"):
        check(cfg, (3, 16, 16), 3)
