"""Any torchvision classification model by name, fitted to the data set's input and classes.

Small inputs, per family (the side `s` of the data set's images):
- resnet, resnext, wide_resnet without pretrained weights and s < 64: the CIFAR stem (3x3
  stride-1 first conv, no max-pool); the ImageNet stem (stride 4 before the first block) would
  leave a 32x32 image 1x1 after the last stage.
- every model whose weights declare a `min_size` above s (alexnet 63, inception_v3 75, densenet
  29, squeezenet 17-21, vgg and convnext 32, efficientnet_v2 33, swin and maxvit 224): the input
  is resized up to that size (bilinear) in front of the network; vit_* and maxvit_t take exactly
  their size, so every input is resized to it. Pretrained stems are kept as trained.
- one-channel images (digits, MNIST) are repeated to three channels.
"""
from __future__ import annotations

import os
import pickle
from urllib.parse import urlparse

import torch
from torch import nn

from pipeline.config import ConfigError, Model

CIFAR_STEM_FAMILIES = ("resnet", "resnext", "wide_resnet")
FIXED_SIZE_FAMILIES = ("vit_", "maxvit_")
NO_AUX = ("googlenet", "inception_v3")  # their auxiliary heads return tuples in train mode


def names() -> list[str]:
    import torchvision.models

    return torchvision.models.list_models(module=torchvision.models)


def input_adapter(channels: int, size: int | None) -> nn.Sequential:
    """Repeat one channel to three (a fixed 1x1 conv) and resize to what the network needs;
    torch modules only, like the rest of a registered model."""
    layers: list[nn.Module] = []
    if channels == 1:
        repeat = nn.Conv2d(1, 3, 1, bias=False)
        nn.init.ones_(repeat.weight)
        layers.append(repeat.requires_grad_(False))
    if size is not None:
        layers.append(nn.Upsample(size=(size, size), mode="bilinear", align_corners=False))
    return nn.Sequential(*layers)


def _min_size(arch: str) -> int:
    import torchvision.models

    return max(next(iter(torchvision.models.get_model_weights(arch))).meta["min_size"])


def build(cfg: Model, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """torchvision's `arch` for num_classes, adapted to input_shape as described above."""
    import torchvision.models

    kwargs = {"aux_logits": False, "init_weights": True} if cfg.arch in NO_AUX else {}
    net = torchvision.models.get_model(cfg.arch, weights=None, num_classes=num_classes,
                                       **kwargs)
    side, min_size = input_shape[-1], _min_size(cfg.arch)
    if cfg.arch.startswith(CIFAR_STEM_FAMILIES) and cfg.weights is None and side < 64:
        net.conv1 = nn.Conv2d(3, net.conv1.out_channels, 3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
    fixed = cfg.arch.startswith(FIXED_SIZE_FAMILIES)
    size = min_size if fixed or side < min_size else None
    if input_shape[0] == 1 or size is not None:
        net = nn.Sequential(input_adapter(input_shape[0], size), net)
        net.adapted = True
    return net


def head_name(net: nn.Module) -> str:
    """The classifier head: the last Linear layer (the last Conv2d for squeezenet)."""
    linear = [name for name, m in net.named_modules() if isinstance(m, nn.Linear)]
    conv = [name for name, m in net.named_modules() if isinstance(m, nn.Conv2d)]
    return (linear or conv)[-1]


def _hub_state_dict(arch: str, name: str) -> dict[str, torch.Tensor]:
    import torchvision.models

    try:
        weights = (torchvision.models.get_weight(name) if "." in name
                   else torchvision.models.get_model_weights(arch)[name])
    except (KeyError, ValueError, AttributeError):
        valid = [w.name for w in torchvision.models.get_model_weights(arch)]
        raise ConfigError(f"model.weights: {name!r} is neither a file nor weights of {arch} "
                          f"(one of {', '.join(valid + ['DEFAULT'])})") from None
    cached = os.path.join(torch.hub.get_dir(), "checkpoints",
                          os.path.basename(urlparse(weights.url).path))
    if not os.path.exists(cached):  # never a download: offline it would hang, then fail
        raise ConfigError(f"model.weights: {weights} is not in the torch hub cache ({cached}); "
                          f"fetch it where there is internet ({weights.url}) and copy it "
                          "there, or give a state-dict file")
    return torch.load(cached, map_location="cpu", weights_only=True)


def _file_state_dict(path: str) -> dict[str, torch.Tensor]:
    if not os.path.isfile(path):
        raise ConfigError(f"model.weights: no such file {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as error:
        raise ConfigError(f"model.weights: {path} is not a PyTorch state dict ({error})"
                          .splitlines()[0]) from None
    state = state.get("model", state) if isinstance(state, dict) else state
    if not isinstance(state, dict):
        raise ConfigError(f"model.weights: {path} holds a {type(state).__name__}, not a "
                          "state dict")
    # a checkpoint of this pipeline (state.pt) holds models.Network: the network is under net.
    if any(key.startswith("net.") for key in state):
        state = {k.removeprefix("net."): v for k, v in state.items() if k.startswith("net.")}
    return state


def load_weights(net: nn.Module, cfg: Model, arch_for_names: str | None) -> int:
    """Copy every tensor of the weights whose name and shape match into net, except the
    classifier head's (replaced for the data set's classes); returns how many were copied."""
    looks_like_file = os.sep in cfg.weights or cfg.weights.endswith((".pt", ".pth", ".bin"))
    if looks_like_file or arch_for_names is None:
        state = _file_state_dict(cfg.weights)
    else:
        state = _hub_state_dict(arch_for_names, cfg.weights)
    own, head = net.state_dict(), head_name(net) + "."
    # a network behind an input adapter, Sequential(adapter, net), names its keys "1.<key>"
    prefix = "1." if getattr(net, "adapted", False) else ""
    matched = {prefix + k: v for k, v in state.items()
               if prefix + k in own and own[prefix + k].shape == v.shape
               and not (prefix + k).startswith(head)}
    if not matched:
        raise ConfigError(f"model.weights: none of the {len(state)} tensors of "
                          f"{cfg.weights} fit model.arch {cfg.arch}")
    # most of the backbone must come from the weights: a partial fit is another architecture
    # (or another version of its layer names), and training on it would be silently random
    backbone = [k for k in own if k.startswith(prefix) and not k.startswith(head)]
    if len(matched) < len(backbone) / 2:
        raise ConfigError(f"model.weights: only {len(matched)} of the {len(backbone)} "
                          f"backbone tensors of {cfg.arch} fit {cfg.weights} (weights of "
                          "another architecture?)")
    net.load_state_dict(matched, strict=False)
    return len(matched)


def freeze_backbone(net: nn.Module) -> None:
    """Only the classifier head keeps training; the backbone's batch-norm statistics stay as
    loaded too (`models.Network.train` keeps those layers in eval mode)."""
    head = head_name(net) + "."
    for name, param in net.named_parameters():
        param.requires_grad_(name.startswith(head))
    for name, module in net.named_modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and not name.startswith(head):
            module.frozen = True
