"""Batches: every example once an epoch, never a lone one (batch norm cannot train on it), and
streamed through at most as many DataLoader workers as there are CPUs."""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest
import torch

from pipeline.config import Experiment
from pipeline.training.batches import batches, count, train_batches
from pipeline.training.data import Tensors
from pipeline.training.imagefolder import LazyImages
from pipeline.training.loop import fit


@pytest.mark.parametrize(("n", "size", "sizes"), [(16, 8, [8, 8]), (17, 8, [8, 9]),
                                                  (18, 8, [8, 8, 2]), (1, 8, [1]),
                                                  (9, 8, [9]), (3, 1, [1, 1, 1])])
def test_a_lone_last_example_joins_the_batch_before(n: int, size: int, sizes: list[int]) -> None:
    parts = list(batches(n, size, torch.Generator().manual_seed(0)))
    assert [len(p) for p in parts] == sizes and count(n, size) == len(sizes)
    assert sorted(torch.cat(parts).tolist()) == list(range(n))


def test_a_network_with_batch_norm_on_1x1_maps_trains_on_1_plus_k_batches() -> None:
    """mobilenet_v3 shrinks 8x8 to 1x1 before its last batch norm: 17 images in batches of 8
    ended every epoch with "Expected more than 1 value per channel when training"."""
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (21, 3, 8, 8), dtype=torch.uint8, generator=g)
    y = torch.arange(21) % 2
    data = Tensors(x[:17], y[:17], x[17:], y[17:], 2)
    exp = Experiment.model_validate({"name": "bn", "model": {"arch": "mobilenet_v3_small"},
                                     "data": {"batch_size": 8}, "train": {"epochs": 1}})
    (epoch,) = list(fit(exp, data))
    assert torch.isfinite(torch.tensor(epoch.metrics["train_loss"]))


def test_more_workers_than_cpus_are_capped_without_a_warning(tmp_path: Path) -> None:
    from PIL import Image

    paths = []
    for i in range(4):
        paths.append(tmp_path / f"{i}.png")
        Image.new("RGB", (10, 10), (60 * i, 0, 0)).save(paths[-1])
    workers = len(os.sched_getaffinity(0)) + 1
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = list(train_batches(LazyImages(paths, 8), torch.arange(4), 2,
                                 torch.Generator().manual_seed(0), torch.device("cpu"), workers))
    assert [str(w.message) for w in caught] == []
    assert sorted(int(xb[j, 0, 0, 0]) for xb, _ in got for j in range(len(xb))) == \
        [0, 60, 120, 180]
