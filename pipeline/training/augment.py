"""Training-batch augmentation on the trial's device: whole batches at once, no per-image
Python loop, drawn from a generator seeded per epoch so a resumed trial sees the same batches.

Each transform takes and returns float (N, C, H, W) in [0, 1].
"""
from __future__ import annotations

import torch
from torch.nn import functional as F

RESIZED_CROP_AREA = (0.35, 1.0)      # share of the image a random resized crop keeps
RESIZED_CROP_RATIO = (3 / 4, 4 / 3)  # its aspect ratio range (torchvision's default)


def flip(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Mirror each image left-right with probability 1/2."""
    mask = torch.rand(len(x), generator=g, device=x.device) < 0.5
    return torch.where(mask[:, None, None, None], x.flip(3), x)


def crop(x: torch.Tensor, g: torch.Generator, padding: int) -> torch.Tensor:
    """Zero-pad by `padding` and cut each image back to its size at a random offset."""
    if padding == 0:
        return x
    n, c, h, w = x.shape
    padded = F.pad(x, (padding,) * 4)
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=g, device=x.device)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=g, device=x.device)
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    channel = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[batch, channel, rows, cols]


def resized_crop(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """A random region of each image (area and aspect in the ranges above) resized back to
    the full size: one affine grid per image, one batched grid_sample."""
    n = len(x)
    low, high = RESIZED_CROP_AREA
    area = low + (high - low) * torch.rand(n, generator=g, device=x.device)
    log_low, log_high = torch.log(torch.tensor(RESIZED_CROP_RATIO, device=x.device))
    ratio = torch.exp(log_low + (log_high - log_low) * torch.rand(n, generator=g,
                                                                   device=x.device))
    sx = torch.sqrt(area * ratio).clamp(max=1.0)   # width share
    sy = torch.sqrt(area / ratio).clamp(max=1.0)   # height share
    tx = (1 - sx) * (2 * torch.rand(n, generator=g, device=x.device) - 1)
    ty = (1 - sy) * (2 * torch.rand(n, generator=g, device=x.device) - 1)
    theta = torch.zeros(n, 2, 3, device=x.device, dtype=x.dtype)
    theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = sx, tx, sy, ty
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection",
                         align_corners=False)


def augment(x: torch.Tensor, kinds: list[str], padding: int,
            g: torch.Generator) -> torch.Tensor:
    """Apply `kinds` (data.augment) in the order given."""
    for kind in kinds:
        if kind == "flip":
            x = flip(x, g)
        elif kind == "crop":
            x = crop(x, g, padding)
        else:
            x = resized_crop(x, g)
    return x


def generator(device: torch.device, seed: int) -> torch.Generator:
    """The augmentation generator of one epoch, on the device the batches are on."""
    return torch.Generator(device=device).manual_seed(seed)
