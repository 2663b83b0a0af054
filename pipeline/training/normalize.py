"""Inputs as the network sees them: uint8 or [0, 1] floats -> floats, standardised per channel.

Data sets are kept compact (uint8 where the source is 8-bit) and converted batch by batch on
the trial's device. The per-channel statistics come from the training split only, so nothing
of the validation or test split leaks into training.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

STATS_SAMPLE = 2048  # images read to estimate the statistics of a set streamed from disk
MIN_STD = 1e-3  # below a quarter of one 8-bit level: a constant channel


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """uint8 0..255 -> float32 0..1; floats pass through (already scaled)."""
    return x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()


def channel_stats(x, seed: int = 0) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of images (N, C, H, W): a tensor, or anything indexed like
    one (a set on disk: a seeded sample of STATS_SAMPLE images)."""
    n = len(x)
    if not isinstance(x, torch.Tensor) and n > STATS_SAMPLE:
        pick = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:STATS_SAMPLE]
        x, n = x[pick.sort().values], STATS_SAMPLE
    total = torch.zeros(x.shape[1], dtype=torch.float64)
    squares = torch.zeros_like(total)
    for start in range(0, n, 512):  # chunks: a float copy of the whole set would be 4x its size
        chunk = to_unit(x[start:start + 512]).double()
        total += chunk.sum((0, 2, 3))
        squares += chunk.square().sum((0, 2, 3))
    count = n * x.shape[2] * x.shape[3]
    mean = total / count
    std = (squares / count - mean.square()).clamp_min(0).sqrt()
    # a channel (nearly) constant in the training split is centred, not scaled (as
    # scikit-learn's StandardScaler does): divided by its ~0 std, a 1/255 difference in the
    # validation split became thousands of standard deviations (val_loss 31 for 0.7)
    std = torch.where(std < MIN_STD, torch.ones_like(std), std)
    return tuple(mean.tolist()), tuple(std.tolist())


def standardizer(mean: Sequence[float], std: Sequence[float]) -> nn.Conv2d:
    """(x - mean) / std per channel as a fixed 1x1 convolution: a plain torch module, so the
    registered model loads anywhere torch does, without this package."""
    channels = len(mean)
    conv = nn.Conv2d(channels, channels, 1)
    with torch.no_grad():
        conv.weight.copy_(torch.diag(1 / torch.tensor(std)).view(channels, channels, 1, 1))
        conv.bias.copy_(-torch.tensor(mean) / torch.tensor(std))
    conv.requires_grad_(False)
    return conv
