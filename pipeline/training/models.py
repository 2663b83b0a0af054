"""Model builders: a config section and an input shape in, an `nn.Module` out."""
from __future__ import annotations

import math

from torch import nn

from pipeline.config import Model


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


def build_model(cfg: Model, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    return BUILDERS[cfg.arch](cfg, input_shape, num_classes)
