"""Model builders: a config section and an input shape in, an `nn.Module` out.

Every network is wrapped in `Network`, which scales uint8 inputs to [0, 1] and standardises
them (data.normalize), so the trials, the LR range test and the registered model all take the
data set's inputs as they are stored.
"""
from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
from torch import nn

from pipeline.config import ConfigError, Model
from pipeline.training import factory_data, torchvision_models
from pipeline.training.normalize import standardizer, to_unit


def _mlp(cfg: Model, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    layers: list[nn.Module] = [nn.Flatten()]
    width = math.prod(input_shape)
    for _ in range(cfg.depth):
        layers += [nn.Linear(width, cfg.hidden), nn.ReLU(), nn.Dropout(cfg.dropout)]
        width = cfg.hidden
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)


def _cnn(cfg: Model, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    channels, c = input_shape[0], cfg.channels
    # Adaptive pooling to 4x4 lets one layout serve 8x8 digits, 28x28 MNIST and 32x32 CIFAR.
    return nn.Sequential(
        nn.Conv2d(channels, c, 3, padding=1), nn.ReLU(),
        nn.Conv2d(c, 2 * c, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(4), nn.Flatten(),
        nn.Dropout(cfg.dropout), nn.Linear(2 * c * 16, cfg.hidden), nn.ReLU(),
        nn.Dropout(cfg.dropout), nn.Linear(cfg.hidden, num_classes),
    )


def _resnet18(cfg: Model, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    from torchvision.models import resnet18

    net = resnet18(weights=None, num_classes=num_classes)
    # The ImageNet stem (7x7 stride 2 + max-pool) would shrink an 8x8 or 32x32 image to nothing.
    net.conv1 = nn.Conv2d(input_shape[0], 64, 3, stride=1, padding=1, bias=False)
    net.maxpool = nn.Identity()
    net.fc = nn.Sequential(nn.Dropout(cfg.dropout), nn.Linear(net.fc.in_features, num_classes))
    return net


BUILDERS = {"mlp": _mlp, "cnn": _cnn, "resnet18": _resnet18}


class Network(nn.Module):
    """The network behind input scaling (uint8 -> [0, 1]) and optional standardisation."""

    def __init__(self, net: nn.Module, mean: Sequence[float] | None = None,
                 std: Sequence[float] | None = None) -> None:
        super().__init__()
        self.net = net
        self.standardize = standardizer(mean, std) if mean is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.standardize(to_unit(x)))

    def train(self, mode: bool = True) -> Network:
        super().train(mode)
        for module in self.net.modules():
            if getattr(module, "frozen", False):  # a frozen backbone's batch norm
                module.eval()
        return self

    def portable(self) -> nn.Sequential:
        """The same network on [0, 1] float inputs, built of torch modules only (what the
        registry saves: loading it needs torch and torchvision, not this package)."""
        return nn.Sequential(self.standardize, self.net)


def _bare(cfg: Model, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    if cfg.factory is not None:
        net = factory_data.call("model.factory", cfg.factory, cfg, input_shape, num_classes)
        if not isinstance(net, nn.Module):
            raise ConfigError(f"model.factory: {cfg.factory} returned {type(net).__name__}, "
                              "not a torch.nn.Module")
        return net
    # with pretrained weights resnet18 is torchvision's, so its trained stem is kept
    if cfg.arch in BUILDERS and not (cfg.arch == "resnet18" and cfg.weights is not None):
        return BUILDERS[cfg.arch](cfg, input_shape, num_classes)
    if cfg.arch not in torchvision_models.names():
        raise ConfigError(f"model.arch: unknown model {cfg.arch!r} (config.load names the "
                          "closest)")
    return torchvision_models.build(cfg, input_shape, num_classes)


def build_model(cfg: Model, input_shape: tuple[int, ...], num_classes: int,
                mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                pretrained: bool = True) -> Network:
    """The configured network with its weights loaded (unless `pretrained` is off: a
    checkpoint is about to replace them) and its backbone frozen if asked."""
    net = _bare(cfg, input_shape, num_classes)
    if cfg.weights is None and cfg.freeze != "backbone":
        return Network(net, mean, std)
    head = torchvision_models.head_name(net, input_shape)
    if cfg.weights is not None and pretrained:
        by_name = cfg.factory is None and cfg.arch not in ("mlp", "cnn")
        torchvision_models.load_weights(net, cfg, cfg.arch if by_name else None, head)
    if cfg.freeze == "backbone":
        torchvision_models.freeze_backbone(net, head)
    return Network(net, mean, std)


def check(cfg: Model, input_shape: tuple[int, ...], num_classes: int,
          batch_size: int = 2) -> None:
    """Build the model and push one batch of the data set's shape through it, so a wrong
    name, weights that do not fit or an image size too small fail before Ray starts; then
    one in training mode (at `batch_size`, the smallest data.batch_size the sweep tries, up to
    2), since the trials train: a network that answers otherwise there, or batch norm on a
    batch of one, failed every trial mid-sweep."""
    model = build_model(cfg, input_shape, num_classes)
    field, name = ("model.factory", cfg.factory) if cfg.factory else ("model.arch", cfg.arch)
    try:
        with torch.no_grad():
            out = model.eval()(torch.zeros(2, *input_shape))
    # torch raises RuntimeError on a shape it cannot take, ValueError or AssertionError
    # (torch._assert: ViT's image size) in some layers' own checks
    except (RuntimeError, ValueError, AssertionError) as error:
        shape = "x".join(map(str, input_shape))
        # a built-in or torchvision model fails on small images; a user's network, for its own
        # reasons (a layer's size, a dtype), which the error names
        hint = "" if cfg.factory else " (raise data.image_size)"
        raise ConfigError(f"{field}: {name} cannot take {shape} inputs{hint}: "
                          f"{_first_line(error)}") from None
    _check_scores(out, 2, num_classes, field, name, "")
    # after the forward pass: a lazy layer's parameters exist only then
    if not any(p.requires_grad for p in model.parameters()):
        raise ConfigError(f"{field}: {name} has no trainable parameters (requires_grad is "
                          "False on every one); the optimizer would have nothing to train")
    _check_training(model, input_shape, num_classes, min(batch_size, 2), field, name)


def _check_training(model: Network, input_shape: tuple[int, ...], num_classes: int,
                    batch: int, field: str, name: str) -> None:
    """One forward pass in training mode, on a copy (batch norm updates its running stats
    even under no_grad, and a factory may hand out a network it keeps)."""
    model = copy.deepcopy(model)
    try:
        with torch.no_grad():
            out = model.train()(torch.zeros(batch, *input_shape))
    except (RuntimeError, ValueError, AssertionError) as error:
        if batch == 1 and "more than 1 value per channel" in str(error):
            # the loop merges a last batch of one into the one before; only 1 itself fails
            raise ConfigError(f"data.batch_size: 1 is too small for {field} {name}, whose "
                              "batch norm needs more than one example in training; use at "
                              "least 2") from None
        raise ConfigError(f"{field}: {name} fails in training mode: "
                          f"{_first_line(error)}") from None
    _check_scores(out, batch, num_classes, field, name, " in training mode")


def _check_scores(out: object, batch: int, num_classes: int, field: str, name: str,
                  mode: str) -> None:
    """The loop's loss takes a tensor of (batch, num_classes) class scores, nothing else."""
    if not isinstance(out, torch.Tensor):  # a tuple, a dict (auxiliary outputs, features)
        # torchvision's googlenet and inception_v3 return their auxiliary logits in training
        hint = (" (torchvision googlenet/inception: build it with aux_logits=False)"
                if mode else "")
        raise ConfigError(f"{field}: {name} returns a {type(out).__name__}{mode}, not a "
                          f"tensor of {num_classes} class scores per input{hint}")
    if tuple(out.shape) != (batch, num_classes):
        raise ConfigError(f"model: the network returns {tuple(out.shape[1:])} per input"
                          f"{mode}, not {num_classes} class scores")


def _first_line(error: BaseException) -> str:
    return (str(error).splitlines() or [type(error).__name__])[0]
