"""Pure-PyTorch training: seeded epochs of train/evaluate over in-memory tensors.

No Ray and no MLflow here. The LR range test and every trial build their model, optimizer and
batches through these functions, so what the range test measures is what the trials train.
"""
from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from pipeline.config import Experiment, Train
from pipeline.training.data import Tensors
from pipeline.training.models import build_model


class Diverged(RuntimeError):
    """The training loss stopped being finite; the trial is stopped rather than trained on."""


def pick_device() -> torch.device:
    """The GPU Ray assigned (it sets CUDA_VISIBLE_DEVICES) if any, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def make_optimizer(cfg: Train, params: Any, lr: float | None = None) -> torch.optim.Optimizer:
    lr = cfg.lr if lr is None else lr
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=lr, betas=(cfg.momentum, 0.999),
                                 weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                           nesterov=cfg.nesterov and cfg.momentum > 0)


def make_schedule(cfg: Train, optimizer: torch.optim.Optimizer,
                  total_steps: int) -> torch.optim.lr_scheduler.LRScheduler:
    """Per-batch schedule over the whole run."""
    if cfg.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lr,
                                                   total_steps=total_steps)
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total_steps)
                                                        / total_steps)))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)


def batches(n: int, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """Shuffled index batches covering 0..n-1 once."""
    order = torch.randperm(n, generator=generator)
    yield from order.split(batch_size)


def autocast(device: torch.device, amp: bool) -> contextlib.AbstractContextManager:
    if amp and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor,
               y: torch.Tensor, amp: bool = False) -> float:
    """One optimizer step; returns the batch loss. Raises Diverged before stepping on NaN/inf."""
    with autocast(x.device, amp):
        loss = nn.functional.cross_entropy(model(x), y)
    value = loss.item()
    if not math.isfinite(value):
        raise Diverged(f"training loss became {value}")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return value


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int,
             amp: bool = False) -> tuple[float, float]:
    """Mean loss and accuracy over (x, y)."""
    model.eval()
    loss_sum, correct = 0.0, 0
    for start in range(0, len(x), batch_size * 4):
        xb, yb = x[start:start + batch_size * 4], y[start:start + batch_size * 4]
        with autocast(x.device, amp):
            logits = model(xb)
        loss_sum += nn.functional.cross_entropy(logits.float(), yb, reduction="sum").item()
        correct += (logits.argmax(1) == yb).sum().item()
    model.train()
    return loss_sum / len(x), correct / len(x)


@dataclass
class Setup:
    """Model and data on the device, and an optimizer for them."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    data: Tensors
    device: torch.device


def setup(exp: Experiment, data: Tensors, device: torch.device | None = None,
          lr: float | None = None) -> Setup:
    """Seeded model + optimizer; data moved to the device once, not per batch."""
    device = device or pick_device()
    torch.manual_seed(exp.seed)
    model = build_model(exp.model, data.input_shape, data.num_classes).to(device)
    on_device = Tensors(*(t.to(device) for t in (data.x_train, data.y_train, data.x_val,
                                                 data.y_val)), num_classes=data.num_classes)
    return Setup(model, make_optimizer(exp.train, model.parameters(), lr), on_device, device)


@dataclass
class Epoch:
    """One finished epoch: its metrics, and a way to take a resumable snapshot."""

    metrics: dict[str, float]
    state: Callable[[], dict[str, Any]]


def fit(exp: Experiment, data: Tensors, device: torch.device | None = None,
        state: dict[str, Any] | None = None) -> Iterator[Epoch]:
    """Train for exp.train.epochs, yielding after every epoch; resume from `state` if given."""
    s = setup(exp, data, device)
    d, cfg = s.data, exp.train
    steps_per_epoch = math.ceil(len(d.x_train) / exp.data.batch_size)
    schedule = make_schedule(cfg, s.optimizer, steps_per_epoch * cfg.epochs)
    first_epoch = 0
    if state is not None:
        s.model.load_state_dict(state["model"])
        s.optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        torch.set_rng_state(state["rng"])
        first_epoch = state["epoch"]

    def snapshot(epoch: int) -> dict[str, Any]:
        return {"model": s.model.state_dict(), "optimizer": s.optimizer.state_dict(),
                "schedule": schedule.state_dict(), "rng": torch.get_rng_state(), "epoch": epoch}

    s.model.train()
    for epoch in range(first_epoch, cfg.epochs):
        # The shuffle depends only on (seed, epoch), so a resumed run sees the same batches.
        generator = torch.Generator().manual_seed(exp.seed * 100_003 + epoch)
        lr = s.optimizer.param_groups[0]["lr"]
        started = time.perf_counter()
        loss_sum = 0.0
        for idx in batches(len(d.x_train), exp.data.batch_size, generator):
            idx = idx.to(s.device)
            loss_sum += train_step(s.model, s.optimizer, d.x_train[idx], d.y_train[idx],
                                   cfg.amp) * len(idx)
            schedule.step()
        train_s = time.perf_counter() - started
        val_loss, val_acc = evaluate(s.model, d.x_val, d.y_val, exp.data.batch_size, cfg.amp)
        metrics = {
            "train_loss": loss_sum / len(d.x_train), "val_loss": val_loss, "val_acc": val_acc,
            "lr": lr, "epoch_time_s": time.perf_counter() - started,
            "samples_per_s": len(d.x_train) / train_s,
        }
        yield Epoch(metrics, lambda e=epoch + 1: snapshot(e))
