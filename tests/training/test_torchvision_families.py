"""One torchvision model per family, built by name for a tiny one-channel input, trained one
step and frozen to its head; and what each family needed (bench/torchvision_coverage.py runs
every model by name).

The transformer families (vit, swin, maxvit) are built narrow and shallow, and vgg's and
alexnet's 4096-wide classifiers 64 wide (`shrunk`): their smallest members take seconds a step
on a CPU, and what is checked here (input size, head, weights, freezing) does not depend on
their width.
"""
from __future__ import annotations

import importlib
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torchvision.models
from torch import nn
from torchvision.models.maxvit import MaxVit
from torchvision.models.swin_transformer import SwinTransformer
from torchvision.models.vision_transformer import VisionTransformer

from pipeline.config import ConfigError, Model
from pipeline.training import torchvision_models
from pipeline.training.models import build_model, check

FAMILIES = ["alexnet", "convnext_tiny", "densenet121", "efficientnet_b0", "googlenet",
            "inception_v3", "maxvit_t", "mnasnet0_5", "mobilenet_v2", "mobilenet_v3_small",
            "regnet_x_400mf", "resnet18", "resnext50_32x4d", "shufflenet_v2_x0_5",
            "squeezenet1_1", "swin_t", "vgg11", "vit_b_32"]
# the cheap ones again, frozen on weights of torchvision's own ImageNet shape (as hub weights)
FROZEN = ["densenet121", "efficientnet_b0", "googlenet", "inception_v3",
          "maxvit_t", "mnasnet0_5", "mobilenet_v3_small", "regnet_x_400mf", "resnet18",
          "shufflenet_v2_x0_5", "squeezenet1_1", "swin_v2_t", "vit_b_16"]
SMALL = {VisionTransformer: {"num_layers": 1, "num_heads": 2, "hidden_dim": 32, "mlp_dim": 32},
         SwinTransformer: {"embed_dim": 8, "depths": [1, 1, 1, 1], "num_heads": [1, 1, 1, 1]},
         MaxVit: {"stem_channels": 8, "block_channels": [8, 8, 8, 8],
                  "block_layers": [1, 1, 1, 1], "head_dim": 4}}


# the modules (torchvision.models.alexnet is the function) building Linear(..., 4096)
WIDE = [importlib.import_module(f"torchvision.models.{m}") for m in ("alexnet", "vgg")]


class _NarrowLinear(nn.Linear):
    def __init__(self, n_in: int, n_out: int, *args, **kwargs) -> None:
        super().__init__(64 if n_in == 4096 else n_in, 64 if n_out == 4096 else n_out, *args,
                         **kwargs)


@pytest.fixture(autouse=True)
def shrunk(monkeypatch: pytest.MonkeyPatch) -> None:
    for cls, small in SMALL.items():
        def init(self, *args, _init=cls.__init__, _small=small, **kwargs):
            _init(self, *args, **{**kwargs, **_small})
        monkeypatch.setattr(cls, "__init__", init)
    for module in WIDE:
        monkeypatch.setattr(module, "nn", SimpleNamespace(**{**vars(nn),
                                                             "Linear": _NarrowLinear}))


def _out(module: nn.Module) -> int:
    return module.out_features if isinstance(module, nn.Linear) else module.out_channels


def _step(model: nn.Module, shape: tuple[int, ...]) -> set[str]:
    """One SGD step on two images; the names of the state that changed."""
    x = torch.randint(0, 256, (2, *shape), dtype=torch.uint8,
                      generator=torch.Generator().manual_seed(0))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    params = [p for p in model.parameters() if p.requires_grad]
    loss = nn.functional.cross_entropy(model.train()(x), torch.tensor([0, 1]))
    assert torch.isfinite(loss)
    loss.backward()
    torch.optim.SGD(params, lr=0.01).step()
    return {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}


@pytest.mark.parametrize("arch", FAMILIES)
def test_every_family_trains_a_step_on_tiny_grey_images(arch: str) -> None:
    torch.manual_seed(0)
    model = build_model(Model(arch=arch), (1, 8, 8), 3)
    assert _step(model, (1, 8, 8))
    with torch.no_grad():
        assert model.eval()(torch.zeros(3, 1, 8, 8, dtype=torch.uint8)).shape == (3, 3)
    head = torchvision_models.head_name(model.net)
    assert _out(model.net.get_submodule(head)) == 3


@pytest.mark.parametrize("arch", FROZEN)
def test_a_frozen_backbone_of_every_family_trains_only_its_head(arch: str,
                                                               tmp_path: Path) -> None:
    torch.manual_seed(0)  # the same random head every run (squeezenet's ends in a ReLU)
    with warnings.catch_warnings():  # torchvision's googlenet/inception defaults warn
        warnings.simplefilter("ignore", FutureWarning)
        torch.save(torchvision.models.get_model(arch).state_dict(), tmp_path / "w.pt")
    model = build_model(Model(arch=arch, weights=str(tmp_path / "w.pt"), freeze="backbone"),
                        (3, 32, 32), 10)
    head = "net." + torchvision_models.head_name(model.net)
    assert _out(model.get_submodule(head)) == 10
    head_params = {f"{head}.{n}" for n, _ in model.get_submodule(head).named_parameters()}
    assert {n for n, p in model.named_parameters() if p.requires_grad} == head_params
    changed = _step(model, (3, 32, 32))
    # (random backbones in eval mode may hand the head features too small to move its weight)
    assert changed and changed <= head_params


def test_vit_and_maxvit_take_the_size_of_their_named_weights_else_224() -> None:
    # vit_h_14's first weights are 518 pixels (SWAG E2E): resizing to that in front of a
    # network built for 224 failed every forward
    for arch in ("vit_h_14", "vit_b_16", "maxvit_t"):
        net = torchvision_models.build(Model(arch=arch), (3, 32, 32), 3)
        assert net[0][-1].size == (224, 224)
        assert net(torch.rand(2, 3, 32, 32)).shape == (2, 3)
    named = torchvision_models.build(Model(arch="vit_b_16", weights="IMAGENET1K_SWAG_E2E_V1"),
                                     (3, 500, 500), 3)
    assert named[0][-1].size == (384, 384) and named[1].image_size == 384


def test_weights_for_another_input_size_are_refused_not_left_random(tmp_path: Path) -> None:
    torch.save(torchvision.models.get_model("vit_b_16", image_size=384).state_dict(),
               tmp_path / "vit384.pt")
    with pytest.raises(ConfigError, match=r"model.weights: encoder.pos_embedding of .* has "
                                          r"shape \(1, 577, 32\), vit_b_16 here \(1, 197, 32\)"):
        build_model(Model(arch="vit_b_16", weights=str(tmp_path / "vit384.pt")), (3, 32, 32), 3)


@pytest.mark.parametrize(("arch", "shape"), [("squeezenet1_1", (1, 8, 8)),
                                             ("mnasnet0_5", (3, 32, 32)),
                                             ("resnet18", (3, 32, 32))])
def test_a_checkpoint_of_this_pipeline_is_weights_for_the_same_model(arch: str, shape,
                                                                     tmp_path: Path) -> None:
    """What a sweep trained (an adapted network, keys under "1."; mnasnet's versioned state;
    a resnet with the CIFAR stem) starts the next sweep as it was."""
    if arch == "resnet18":
        arch = "resnet34"  # resnet18 is the pipeline's own; its torchvision twin by name
    trained = build_model(Model(arch=arch), shape, 5)
    torch.save({"model": trained.state_dict()}, tmp_path / "state.pt")
    cfg = Model(arch=arch, weights=str(tmp_path / "state.pt"))
    again = build_model(cfg, shape, 5)
    head = torchvision_models.head_name(again.net)
    mine = again.state_dict()
    assert all(torch.equal(mine[k], v) for k, v in trained.state_dict().items()
               if not k.startswith(f"net.{head}."))
    # what the test split and the registry rebuild, without the weights, takes the result
    build_model(cfg, shape, 5, pretrained=False).load_state_dict(mine)


@pytest.mark.parametrize("wrap", [
    lambda state: {"state_dict": {f"module.{k}": v for k, v in state.items()}},  # DDP
    lambda state: {"epoch": 3, "model_state_dict": {f"_orig_mod.{k}": v  # torch.compile
                                                    for k, v in state.items()}},
    lambda state: {"state_dict": {f"model.{k}": v for k, v in state.items()}},  # Lightning
], ids=["ddp", "compiled", "lightning"])
def test_weights_saved_from_a_wrapper_or_in_a_training_checkpoint_load(wrap,
                                                                       tmp_path: Path) -> None:
    """How people save a network they trained themselves: not the bare state dict."""
    source = torchvision.models.get_model("squeezenet1_1")
    torch.save(wrap(source.state_dict()), tmp_path / "w.pt")
    model = build_model(Model(arch="squeezenet1_1", weights=str(tmp_path / "w.pt")),
                        (3, 32, 32), 3)
    mine = model.net.state_dict()
    assert all(torch.equal(mine[k], v) for k, v in source.state_dict().items()
               if not k.startswith("classifier."))


@pytest.mark.parametrize(("arch", "shape"), [("squeezenet1_1", (1, 12, 40)), ("googlenet", (4, 8, 8)),
                                             ("densenet121", (2, 30, 30))])
def test_non_square_and_other_channel_counts_fit(arch: str, shape) -> None:
    """The shorter side decides the resize (squeezenet needs 17: 12x40 was taken as 40 wide);
    two channels are cycled, four go through a trainable 1x1 conv starting as RGB."""
    torch.manual_seed(0)  # some random squeezenets are dead behind their last ReLU: no step
    check(Model(arch=arch), shape, 3)
    model = build_model(Model(arch=arch), shape, 3)
    assert _step(model, shape)
    to_rgb = model.net[0][0]
    assert to_rgb.in_channels == shape[0] and to_rgb.weight.requires_grad == (shape[0] > 3)


def test_inputs_that_are_not_images_are_one_line() -> None:
    with pytest.raises(ConfigError, match=r"model.arch: resnet34 takes images .* are \(64,\)"):
        build_model(Model(arch="resnet34"), (64,), 3)
