"""Mini-batches of a data set on the trial's device: indexed straight from tensors in memory,
or decoded from disk by DataLoader worker processes (a streamed image folder).

The LR range test and the training loop draw their batches here, so both see the same ones.
"""
from __future__ import annotations

import math
import os
from collections.abc import Iterator
from typing import Any

import torch


def count(n: int, batch_size: int) -> int:
    """How many batches `batches` cuts n examples into."""
    return math.ceil(n / batch_size) - (n > batch_size and n % batch_size == 1)


def batches(n: int, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """Shuffled index batches covering 0..n-1 once. A last batch of a single example joins
    the one before it: batch norm cannot train on one example once a network has shrunk it to
    1x1 (efficientnet, regnet or a resnet on 8x8 inputs raise "Expected more than 1 value per
    channel"), so 1 + k * batch_size examples would fail every epoch."""
    parts = list(torch.randperm(n, generator=generator).split(batch_size))
    if len(parts) > 1 and len(parts[-1]) == 1 < batch_size:
        parts[-2:] = [torch.cat(parts[-2:])]
    yield from parts


def _loader(x: Any, device: torch.device, workers: int, **order: Any):
    """A DataLoader over images on disk. Workers are capped at the CPUs this process may use:
    more would only queue for the same cores, and DataLoader warns about them every epoch.
    Its own generator: by default each pass draws its workers' seed from torch's global one,
    which dropout draws from too, so the streamed path trained with other masks than the
    cached one (decoding needs no randomness; augmentation has its own generator)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return torch.utils.data.DataLoader(x, num_workers=min(workers, cpus or 1),
                                       pin_memory=device.type == "cuda",
                                       generator=torch.Generator().manual_seed(0), **order)


def eval_batches(x: Any, y: torch.Tensor, batch_size: int, device: torch.device,
                 workers: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(x, y) batches in order, on the device; from disk through a DataLoader when x is."""
    if isinstance(x, torch.Tensor):
        for start in range(0, len(x), batch_size):
            yield x[start:start + batch_size], y[start:start + batch_size]
        return
    loader = _loader(x, device, workers, batch_size=batch_size)
    for start, xb in zip(range(0, len(x), batch_size), loader):
        yield xb.to(device, non_blocking=True), y[start:start + batch_size].to(device)


def train_batches(x: Any, y: torch.Tensor, batch_size: int, generator: torch.Generator,
                  device: torch.device,
                  workers: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Shuffled (x, y) batches of one epoch on the device: indexed on the device when the
    data is there, decoded by DataLoader workers into pinned memory when it is on disk."""
    index = list(batches(len(x), batch_size, generator))
    if isinstance(x, torch.Tensor):
        for idx in index:
            idx = idx.to(device, non_blocking=True)
            yield x[idx], y[idx]
        return
    loader = _loader(x, device, workers, batch_sampler=[i.tolist() for i in index])
    for idx, xb in zip(index, loader):
        yield xb.to(device, non_blocking=True), y[idx.to(y.device)]
