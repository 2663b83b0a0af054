"""Pure-PyTorch training: seeded epochs of train/evaluate over the data set's splits.

No Ray and no MLflow here. The LR range test and every trial build their model, optimizer and
batches through these functions, so what the range test measures is what the trials train.
"""
from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn

from pipeline.config import MUTABLE_PATHS, Data, Experiment, Train, get_path
from pipeline.training import augment, schedules

# batches and train_batches stay importable from here (the LR range test draws the loop's)
from pipeline.training.batches import batches, count, eval_batches, train_batches  # noqa: F401
from pipeline.training.data import Tensors
from pipeline.training.models import build_model
from pipeline.training.normalize import to_unit

CHECK_EVERY = 50
"""Steps between read-backs of the accumulated training loss (the divergence check)."""


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


def autocast(device: torch.device, amp: bool) -> contextlib.AbstractContextManager:
    if amp and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, amp: bool) -> torch.Tensor:
    with autocast(x.device, amp):
        return nn.functional.cross_entropy(model(x).float(), y)


def _step(optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor,
               y: torch.Tensor, amp: bool = False) -> float:
    """One optimizer step; returns the batch loss. Raises Diverged before stepping on NaN/inf.
    Reads the loss back every step: for the LR range test, which needs every value."""
    loss = _loss(model, x, y, amp)
    value = loss.item()
    if not math.isfinite(value):
        raise Diverged(f"training loss became {value}")
    _step(optimizer, loss)
    return value


def device_step(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor,
                y: torch.Tensor, amp: bool = False) -> torch.Tensor:
    """One optimizer step without a host synchronisation; the loss stays on the device."""
    loss = _loss(model, x, y, amp)
    _step(optimizer, loss)
    return loss.detach()


def check_finite(loss_sum: torch.Tensor) -> None:
    """The one read-back of the accumulated loss: a NaN or inf anywhere in it stays there."""
    value = loss_sum.item()
    if not math.isfinite(value):
        raise Diverged(f"training loss became {value}")


@torch.no_grad()
def evaluate(model: nn.Module, x: Any, y: torch.Tensor, batch_size: int,
             amp: bool = False, workers: int = 0) -> tuple[float, float]:
    """Mean loss and accuracy over (x, y), read back once at the end."""
    model.eval()
    device = y.device
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    correct = torch.zeros((), device=device, dtype=torch.int64)
    for xb, yb in eval_batches(x, y, batch_size * 4, device, workers):
        with autocast(device, amp):
            logits = model(xb)
        loss_sum += nn.functional.cross_entropy(logits.float(), yb, reduction="sum")
        correct += (logits.argmax(1) == yb).sum()
    model.train()
    return loss_sum.item() / len(x), correct.item() / len(x)


@dataclass
class Setup:
    """Model and data on the device, and an optimizer for them."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    data: Tensors
    device: torch.device


def setup(exp: Experiment, data: Tensors, device: torch.device | None = None,
          lr: float | None = None) -> Setup:
    """Seeded model + optimizer; data moved to the device once, not per batch (a set
    streamed from disk stays there; the test split is left behind: trials never see it)."""
    device = device or pick_device()
    torch.manual_seed(exp.seed)
    model = build_model(exp.model, data.input_shape, data.num_classes, data.mean,
                        data.std).to(device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed batch shapes: pick the fastest kernels
        # Convolutions already run in TF32 by PyTorch's default; matmuls too, as fastai and
        # Lightning advise (and torch.compile warns on every trial until it is set).
        torch.set_float32_matmul_precision("high")
        if any(isinstance(m, nn.Conv2d) for m in model.modules()):
            model = model.to(memory_format=torch.channels_last)
    on_device = replace(data, x_test=None, y_test=None,
                        **{k: getattr(data, k).to(device, non_blocking=True)
                           for k in ("x_train", "y_train", "x_val", "y_val")})
    params = [p for p in model.parameters() if p.requires_grad]
    return Setup(model, make_optimizer(exp.train, params, lr), on_device, device)


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


def _inputs(x: torch.Tensor, cfg: Data, generator: torch.Generator | None,
            channels_last: bool) -> torch.Tensor:
    """A stored batch as the model trains on it: [0, 1] floats, augmented when asked."""
    x = to_unit(x)
    if cfg.augment and generator is not None:
        x = augment.augment(x, cfg.augment, cfg.crop_padding, generator)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def fit(exp: Experiment, data: Tensors, device: torch.device | None = None,
        state: dict[str, Any] | None = None) -> Iterator[Epoch]:
    """Train for exp.train.epochs, yielding after every epoch; resume from `state` if given
    (weights, optimizer state and RNG from it; hyperparameters from exp).

    The training loss accumulates on the device and is read back every CHECK_EVERY steps
    and at the end of the epoch: a diverged trial stops within CHECK_EVERY steps without a
    host synchronisation per step."""
    s = setup(exp, data, device)
    d, workers = s.data, exp.data.workers
    steps_per_epoch = count(len(d.x_train), exp.data.batch_size)
    first_epoch, history = 0, []
    if state is not None:
        s.model.load_state_dict(state["model"])
        s.optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"])
        first_epoch, history = state["epoch"], list(state.get("history", []))
    model = torch.compile(s.model) if exp.train.compile else s.model
    channels_last = s.device.type == "cuda" and len(d.input_shape) == 3

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
        # Shuffle and augmentation depend only on (seed, epoch): a resumed run sees the
        # same batches.
        epoch_seed = exp.seed * 100_003 + epoch
        generator = torch.Generator().manual_seed(epoch_seed)
        augmenting = augment.generator(s.device, epoch_seed) if exp.data.augment else None
        step = epoch * steps_per_epoch
        lr = schedules.lr_at(cfg, step, steps_per_epoch)
        started = time.perf_counter()
        loss_sum = torch.zeros((), device=s.device)
        for batch, (x, y) in enumerate(train_batches(d.x_train, d.y_train,
                                                     exp.data.batch_size, generator, s.device,
                                                     workers), 1):
            for group in s.optimizer.param_groups:
                group["lr"] = schedules.lr_at(cfg, step, steps_per_epoch)
            x = _inputs(x, exp.data, augmenting, channels_last)
            loss_sum += device_step(model, s.optimizer, x, y, cfg.amp) * len(y)
            step += 1
            if batch % CHECK_EVERY == 0:
                check_finite(loss_sum)
        check_finite(loss_sum)
        train_s = time.perf_counter() - started
        val_loss, val_acc = evaluate(model, d.x_val, d.y_val, exp.data.batch_size, cfg.amp,
                                     workers)
        metrics = {
            "train_loss": loss_sum.item() / len(d.x_train), "val_loss": val_loss,
            "val_acc": val_acc, "lr": lr, "epoch_time_s": time.perf_counter() - started,
            "samples_per_s": len(d.x_train) / train_s,
        }
        if s.device.type == "cuda":  # what a fractional-GPU trial really takes of the GPU
            metrics["gpu_mem_mb"] = torch.cuda.max_memory_allocated(s.device) / 2**20
        yield Epoch(metrics, lambda e=epoch + 1: snapshot(e), list(history))


def score_test_split(exp: Experiment, data: Tensors, model_state: dict[str, Any],
                     device: torch.device | None = None) -> dict[str, float]:
    """The trained model (a checkpoint's weights) scored once on the test split; {} when the
    data set has none. For the end of a sweep: the trials never see this split."""
    if data.x_test is None:
        return {}
    device = device or pick_device()
    model = build_model(exp.model, data.input_shape, data.num_classes, data.mean, data.std,
                        pretrained=False).to(device)
    model.load_state_dict(model_state)
    x = data.x_test.to(device) if isinstance(data.x_test, torch.Tensor) else data.x_test
    loss, acc = evaluate(model, x, data.y_test.to(device), exp.data.batch_size, exp.train.amp,
                         exp.data.workers)
    return {"test_loss": loss, "test_acc": acc}
