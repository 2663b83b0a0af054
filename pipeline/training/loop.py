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

from pipeline.config import MUTABLE_PATHS, Experiment, Train, get_path
from pipeline.training import schedules
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


def at_epoch(exp: Experiment, epoch: int) -> Experiment:
    """exp with every train.hyperparameter_schedule step up to `epoch` applied."""
    values: dict[str, Any] = {}
    for change in exp.train.hyperparameter_schedule:
        if change.epoch <= epoch:
            values.update(change.values)
    return exp.with_values(values) if values else exp


def apply_hyperparameters(s: Setup, exp: Experiment) -> None:
    """Put exp's mutable values (MUTABLE_PATHS) into the optimizer and the dropout layers: after
    a restore they override what the snapshot held, so a PBT mutation takes effect."""
    cfg = exp.train
    for group in s.optimizer.param_groups:
        group["weight_decay"] = cfg.weight_decay
        if "betas" in group:
            group["betas"] = (cfg.momentum, group["betas"][1])
        else:
            group["momentum"] = cfg.momentum
    for module in s.model.modules():
        if isinstance(module, nn.Dropout):
            module.p = exp.model.dropout


def mutable_values(exp: Experiment) -> dict[str, Any]:
    return {path: get_path(exp.model_dump(mode="json"), path) for path in MUTABLE_PATHS}


@dataclass
class Epoch:
    """One finished epoch: its metrics, and a way to take a resumable snapshot."""

    metrics: dict[str, float]
    state: Callable[[], dict[str, Any]]
    history: list[tuple[int, dict[str, Any]]]
    """(first epoch, MUTABLE_PATHS values) of every stretch of this run so far, inherited
    from the snapshot it resumed from: the hyperparameter schedule that made these weights."""


def fit(exp: Experiment, data: Tensors, device: torch.device | None = None,
        state: dict[str, Any] | None = None) -> Iterator[Epoch]:
    """Train for exp.train.epochs, yielding after every epoch; resume from `state` if given
    (weights, optimizer state and RNG from it; hyperparameters from exp)."""
    s = setup(exp, data, device)
    d = s.data
    steps_per_epoch = math.ceil(len(d.x_train) / exp.data.batch_size)
    first_epoch, history = 0, []
    if state is not None:
        s.model.load_state_dict(state["model"])
        s.optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"])
        first_epoch, history = state["epoch"], list(state.get("history", []))

    def snapshot(epoch: int) -> dict[str, Any]:
        return {"model": s.model.state_dict(), "optimizer": s.optimizer.state_dict(),
                "rng": torch.get_rng_state(), "epoch": epoch, "history": list(history)}

    s.model.train()
    for epoch in range(first_epoch, exp.train.epochs):
        current = at_epoch(exp, epoch)
        cfg = current.train
        apply_hyperparameters(s, current)
        values = mutable_values(current)
        if not history or history[-1][1] != values:
            history.append((epoch, values))
        # The shuffle depends only on (seed, epoch), so a resumed run sees the same batches.
        generator = torch.Generator().manual_seed(exp.seed * 100_003 + epoch)
        step = epoch * steps_per_epoch
        lr = schedules.lr_at(cfg, step, steps_per_epoch)
        started = time.perf_counter()
        loss_sum = 0.0
        for idx in batches(len(d.x_train), exp.data.batch_size, generator):
            for group in s.optimizer.param_groups:
                group["lr"] = schedules.lr_at(cfg, step, steps_per_epoch)
            idx = idx.to(s.device)
            loss_sum += train_step(s.model, s.optimizer, d.x_train[idx], d.y_train[idx],
                                   cfg.amp) * len(idx)
            step += 1
        train_s = time.perf_counter() - started
        val_loss, val_acc = evaluate(s.model, d.x_val, d.y_val, exp.data.batch_size, cfg.amp)
        metrics = {
            "train_loss": loss_sum / len(d.x_train), "val_loss": val_loss, "val_acc": val_acc,
            "lr": lr, "epoch_time_s": time.perf_counter() - started,
            "samples_per_s": len(d.x_train) / train_s,
        }
        yield Epoch(metrics, lambda e=epoch + 1: snapshot(e), list(history))
