"""LR policies as closed-form functions of the global step: constant, cosine, onecycle,
cyclic (Smith) and sgdr (Loshchilov & Hutter).

A function of (config, step) instead of a torch LRScheduler with state: a restored or
PBT-mutated trial rebuilds its schedule from its current config, so a new train.lr takes
effect at once and no saved scheduler state can overwrite it.
"""
from __future__ import annotations

import math
from typing import Any

from pipeline.config import Train

ONECYCLE_DIV = 25.0        # PyTorch OneCycleLR: initial LR = max_lr / div_factor
ONECYCLE_FINAL_DIV = 1e4   # ... final LR = initial / final_div_factor
ONECYCLE_WARMUP = 0.3      # ... pct_start
CYCLIC_DIV = 4.0           # Smith 2017, section 3.3: base_lr 1/3 or 1/4 of max_lr


def low_lr(cfg: Train) -> float:
    """train.min_lr, or the schedule's usual low end."""
    if cfg.min_lr is not None:
        return cfg.min_lr
    return {"cyclic": cfg.lr / CYCLIC_DIV, "onecycle": cfg.lr / ONECYCLE_DIV}.get(
        cfg.schedule, 0.0)


def _cosine(high: float, low: float, fraction: float) -> float:
    return low + (high - low) * 0.5 * (1 + math.cos(math.pi * fraction))


def onecycle(cfg: Train, step: int, total: int) -> float:
    """PyTorch's OneCycleLR (cosine up over 30%, cosine down to initial/1e4), LR only."""
    initial = low_lr(cfg)
    warmup_end = ONECYCLE_WARMUP * total - 1
    if step <= warmup_end:
        return _cosine(initial, cfg.lr, step / warmup_end)
    return _cosine(cfg.lr, initial / ONECYCLE_FINAL_DIV,
                   (step - warmup_end) / (total - 1 - warmup_end))


def cyclic(cfg: Train, step: int, steps_per_epoch: int) -> float:
    """Smith's triangle: x falls from 1 to 0 and back over 2 * step_size steps."""
    c = cfg.cyclic
    step_size = max(1, round(c.step_size_epochs * steps_per_epoch))
    cycle = math.floor(1 + step / (2 * step_size))
    x = abs(step / step_size - 2 * cycle + 1)
    scale = {"triangular": 1.0, "triangular2": 1 / 2 ** (cycle - 1),
             "exp_range": c.gamma ** (step / steps_per_epoch)}[c.mode]
    low = low_lr(cfg)
    return low + (cfg.lr - low) * max(0.0, 1 - x) * scale


def sgdr(cfg: Train, step: int, steps_per_epoch: int) -> float:
    """Cosine from lr to min_lr over a period, restarting; periods grow by t_mult."""
    period = max(1, round(cfg.sgdr.t0_epochs * steps_per_epoch))
    since = step
    while since >= period:
        since -= period
        period *= cfg.sgdr.t_mult
    return _cosine(cfg.lr, low_lr(cfg), since / period)


def lr_at(cfg: Train, step: int, steps_per_epoch: int) -> float:
    """The LR of global step `step` (counted from 0) of a run of cfg.epochs epochs."""
    total = steps_per_epoch * cfg.epochs
    if cfg.schedule == "cosine":
        return _cosine(cfg.lr, low_lr(cfg), min(step, total) / total)
    if cfg.schedule == "onecycle":
        return onecycle(cfg, min(step, total - 1), total)
    if cfg.schedule == "cyclic":
        return cyclic(cfg, step, steps_per_epoch)
    if cfg.schedule == "sgdr":
        return sgdr(cfg, step, steps_per_epoch)
    return cfg.lr


CYCLED = ("cyclic", "sgdr", "onecycle")  # the schedules that move between two LRs
CYCLE_RULE = ("max: the steepest-descent LR, capped at the lr_range search bound's top "
              "(3x the suggestion, below the loss minimum); min: max/4 (Smith 2017, 3.3)")


def range_test_bounds(suggestion: Any, curve: Any) -> tuple[float, float] | None:
    """(min_lr, lr) for a cycled schedule from an LR range test, or None when the curve is not
    to be trusted. Smith: the max is where the loss still falls steeply (beyond it the loss
    flattens, then rises), the base 1/3-1/4 of it; the cap keeps a noisy steepest rule from
    landing past the loss minimum, where training diverges."""
    from pipeline.training.lr_range import search_bounds

    if not suggestion.reliable or suggestion.rules.get("steepest") is None:
        return None
    high = min(suggestion.rules["steepest"], search_bounds(suggestion, curve)[1])
    return high / CYCLIC_DIV, high
