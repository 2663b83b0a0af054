"""Leslie Smith's learning-rate range test, and the rules that read an LR off its curve.

Pure PyTorch (no Ray, no MLflow). The model, optimizer and batches come from `training`, so the
curve describes exactly what the trials will train.

Reading the curve (digits, mlp and cnn, 3 seeds, against a dense grid: bench/lr_range.py): much
of the rules' error came from the divergence tail (losses of 10-100) leaking into the lagging EMA,
so every rule reads only the usable span below. Even then valley lands 2-14x low and steepest
2-13x high, and they do not err by the same factor on both models, so their geometric mean is
1.1-2.5x off on the cnn and ~0.4x on the mlp. The combined suggestion is the median of the three
rules in log space: valley low, steepest high and min_loss/10 in between, so the median ignores
whichever rule a curve sends off (on digits it is min_loss/10: 0.5-1.3x). Less-lagged smoothing
(smaller beta, a zero-phase forward-backward EMA) did not help once the tail was cut.
"""
from __future__ import annotations

import copy
import csv
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import nn

from pipeline.config import Experiment
from pipeline.training import loop as training
from pipeline.training.data import Tensors


@dataclass
class Curve:
    """What the range test recorded, one entry per mini-batch step."""

    lrs: list[float]
    losses: list[float]
    """Raw training loss of each step's batch, taken before the step."""
    smoothed: list[float]
    """Bias-corrected EMA of `losses` (causal: what the divergence stop saw)."""
    val_losses: list[float] | None = None
    """Validation loss after each step, when lr_range_test.val_loss is on."""
    stopped_early: bool = False
    """The loss diverged (threshold or NaN) before the last LR was reached."""
    iterations: int = 0

    def to_csv(self, path: str | Path) -> None:
        columns = {"lr": self.lrs, "loss": self.losses, "smoothed_loss": self.smoothed}
        if self.val_losses is not None:
            columns["val_loss"] = self.val_losses
        with open(path, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(columns)
            writer.writerows(zip(*columns.values()))


def lr_schedule(start_lr: float, end_lr: float, num_iter: int, mode: str = "exp") -> list[float]:
    """The LR of every step; numpy pins both ends exactly, so the first is start_lr and the
    last end_lr to the bit."""
    space = np.geomspace if mode == "exp" else np.linspace
    return [float(lr) for lr in space(start_lr, end_lr, num_iter)]


def ema_step(average: float, value: float, beta: float, step: int) -> tuple[float, float]:
    """One step of fastai's smoothing: (new running average, bias-corrected value at `step`,
    counted from 1). Bias correction keeps the first values from being pulled toward 0."""
    average = beta * average + (1 - beta) * value
    return average, average / (1 - beta ** step)


@contextmanager
def preserved(model: nn.Module, optimizer: torch.optim.Optimizer) -> Iterator[None]:
    """Put model and optimizer back exactly as they were (weights, momentum buffers, LRs),
    whatever happens inside: the range test must leave no trace on what it measured."""
    model_state = copy.deepcopy(model.state_dict())
    optimizer_state = copy.deepcopy(optimizer.state_dict())
    was_training = model.training
    try:
        yield
    finally:
        model.load_state_dict(model_state)
        optimizer.load_state_dict(optimizer_state)
        model.train(was_training)


def cycled_batches(x: Any, y: torch.Tensor, batch_size: int, seed: int,
                   workers: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Shuffled mini-batches, epoch after epoch, for tests longer than one epoch."""
    generator = torch.Generator().manual_seed(seed)
    while True:
        yield from training.train_batches(x, y, batch_size, generator, y.device, workers)


def record(model: nn.Module, optimizer: torch.optim.Optimizer, lrs: list[float],
           batches: Iterator[tuple[torch.Tensor, torch.Tensor]], smooth_beta: float = 0.98,
           diverge_threshold: float = 4.0, amp: bool = False,
           val_loss: Callable[[], float] | None = None) -> Curve:
    """Train one step at each LR and record the losses; model and optimizer are restored."""
    curve = Curve([], [], [], [] if val_loss else None)
    average = 0.0
    with preserved(model, optimizer):
        model.train()
        for step, lr in enumerate(lrs, 1):
            for group in optimizer.param_groups:
                group["lr"] = lr
            x, y = next(batches)
            try:
                loss = training.train_step(model, optimizer, x, y, amp)
            except training.Diverged:  # a NaN loss is the expected end of the curve
                curve.stopped_early = True
                break
            average, smoothed = ema_step(average, loss, smooth_beta, step)
            curve.lrs.append(lr)
            curve.losses.append(loss)
            curve.smoothed.append(smoothed)
            if val_loss is not None:
                curve.val_losses.append(val_loss())
            if smoothed > diverge_threshold * min(curve.smoothed):
                curve.stopped_early = step < len(lrs)
                break
    curve.iterations = len(curve.lrs)
    return curve


def range_test(exp: Experiment, data: Tensors, device: torch.device | None = None) -> Curve:
    """Run exp.lr_range_test on exp's model and optimizer, built as a trial builds them."""
    cfg = exp.lr_range_test
    s = training.setup(exp, data, device, lr=cfg.start_lr)
    d, batch_size = s.data, exp.data.batch_size

    def val_loss() -> float:
        return training.evaluate(s.model, d.x_val, d.y_val, batch_size, exp.train.amp)[0]

    return record(s.model, s.optimizer,
                  lr_schedule(cfg.start_lr, cfg.end_lr, cfg.num_iter, cfg.mode),
                  cycled_batches(d.x_train, d.y_train, batch_size, exp.seed, exp.data.workers),
                  cfg.smooth_beta, cfg.diverge_threshold, exp.train.amp,
                  val_loss if cfg.val_loss else None)


# --- reading the curve ---------------------------------------------------------------------

SKIP_START = 0.1   # fastai skips the first tenth of the curve: the EMA has barely started there
DIVERGED = 1.5     # a raw loss this many times the first one means training has blown up
MIN_POINTS = 5     # fewer usable points than this and no rule is worth reading
FLAT = 0.1         # a loss that never falls this share below its first value is flat
MAX_SPREAD_DECADES = 2.0  # rules further apart than this do not describe one curve
WIDE_BOUNDS = (1e-5, 1.0)  # search range when the curve cannot be trusted: wide, not invented
BOUNDS_BELOW, BOUNDS_ABOVE = 10.0, 3.0  # search [lr/10, lr*3]: LR range tests err high more often


def usable_span(curve: Curve) -> slice:
    """The steps the rules may read: without the first tenth, and cut before the first raw loss
    that has blown up (the EMA lags, so the divergence tail would drag every rule high)."""
    losses = curve.losses
    end = next((i for i, loss in enumerate(losses) if loss > DIVERGED * losses[0]), len(losses))
    return slice(int(len(losses) * SKIP_START), end)


def usable(curve: Curve) -> tuple[np.ndarray, np.ndarray]:
    """(lrs, smoothed losses) over the usable span."""
    span = usable_span(curve)
    return np.asarray(curve.lrs[span]), np.asarray(curve.smoothed[span])


def min_loss_div10(curve: Curve) -> float | None:
    """A tenth of the LR at the lowest loss: the classic rule of thumb."""
    lrs, losses = usable(curve)
    return float(lrs[np.argmin(losses)] / 10) if len(lrs) >= MIN_POINTS else None


def steepest(curve: Curve) -> float | None:
    """The LR where the loss falls fastest per decade (d loss / d log10 lr, so a linear schedule
    reads the same as an exponential one)."""
    lrs, losses = usable(curve)
    if len(lrs) < MIN_POINTS:
        return None
    return float(lrs[np.argmin(np.gradient(losses, np.log10(lrs)))])


def valley(curve: Curve) -> float | None:
    """fastai's valley: the longest decreasing run of the loss (longest decreasing subsequence),
    then the point half way into its middle third. fastai starts the run one step too early
    (end - length); here it starts at end - length + 1, so a short run cannot wrap to index -1."""
    lrs, losses = usable(curve)
    if len(lrs) < MIN_POINTS:
        return None
    run = [1] * len(losses)  # run[i]: the longest decreasing subsequence ending at step i
    for i in range(1, len(losses)):
        run[i] = 1 + max((run[j] for j in range(i) if losses[i] < losses[j]), default=0)
    valley_end = int(np.argmax(run))  # first of the longest, as fastai's strict '<' picks
    valley_start = valley_end - run[valley_end] + 1
    third = (valley_end - valley_start) / 3
    return float(lrs[valley_start + int(third) + int(third / 2)])


RULES: dict[str, Callable[[Curve], float | None]] = {
    "min_loss": min_loss_div10, "steepest": steepest, "valley": valley}


@dataclass(frozen=True)
class Suggestion:
    lr: float | None
    """The combined suggestion (None when the curve gives none)."""
    rules: dict[str, float | None]
    """Each rule's LR, keyed as the lr_<key> metrics are named."""
    agreement_decades: float
    """log10(largest / smallest) of the rules: 0 is full agreement; nan with under two rules."""
    reliable: bool
    reason: str
    """Why the suggestion is or is not to be trusted, in words for the log."""


def _doubt(curve: Curve, rules: dict[str, float | None], spread: float) -> str | None:
    """Why this curve should not be trusted, or None."""
    raw = curve.losses[usable_span(curve)]
    if len(raw) < MIN_POINTS:
        return f"loss diverged after {curve.iterations} steps, too early to read"
    # The raw loss, not the smoothed one: a beta=0.98 EMA hides a sharp late drop.
    if min(raw) > (1 - FLAT) * curve.losses[0]:
        return f"loss stayed flat (fell less than {FLAT:.0%}); try a wider LR range or more steps"
    if None in rules.values() or not spread <= MAX_SPREAD_DECADES:
        return f"rules disagree by {spread:.1f} decades: the curve is too noisy"
    return None


def suggest(curve: Curve) -> Suggestion:
    """Combine the rules: the median in log space (see the module docstring for why)."""
    rules = {name: rule(curve) for name, rule in RULES.items()}
    found = np.log10([lr for lr in rules.values() if lr is not None])
    spread = float(found.max() - found.min()) if len(found) >= 2 else math.nan
    doubt = _doubt(curve, rules, spread)
    lr = float(10 ** np.median(found)) if len(found) else None
    if doubt is not None:
        return Suggestion(lr, rules, spread, False, doubt)
    return Suggestion(lr, rules, spread, True, f"median of 3 rules, spread {spread:.2f} decades")


def search_bounds(suggestion: Suggestion, curve: Curve) -> tuple[float, float]:
    """Log-uniform search range for `train.lr: lr_range`: [lr/10, lr*3], kept inside the curve's
    usable region (from its first LR to where the loss bottomed out); the wide default when the
    suggestion is unreliable or the clipped range is empty."""
    if not suggestion.reliable or suggestion.lr is None:
        return WIDE_BOUNDS
    lrs, losses = usable(curve)
    low = max(suggestion.lr / BOUNDS_BELOW, curve.lrs[0])
    high = min(suggestion.lr * BOUNDS_ABOVE, float(lrs[np.argmin(losses)]))
    return (low, high) if low < high else WIDE_BOUNDS


def plot(curve: Curve, suggestion: Suggestion, path: str | Path) -> None:
    """Loss against LR (log axis): raw and smoothed, each rule, the suggestion, the bounds."""
    fig = Figure(figsize=(7, 4.5))
    FigureCanvasAgg(fig)  # Agg: renders without a display, in workers and CI alike
    ax = fig.subplots()
    ax.plot(curve.lrs, curve.losses, color="0.7", lw=0.8, label="loss")
    ax.plot(curve.lrs, curve.smoothed, color="C0", label="smoothed")
    if curve.val_losses is not None:
        ax.plot(curve.lrs, curve.val_losses, color="C1", lw=0.8, label="val loss")
    for i, (name, lr) in enumerate(suggestion.rules.items()):
        if lr is not None:
            ax.axvline(lr, color=f"C{i + 2}", ls=":", label=f"{name} {lr:.2g}")
    if suggestion.lr is not None:
        ax.axvline(suggestion.lr, color="k", label=f"suggested {suggestion.lr:.2g}")
    low, high = search_bounds(suggestion, curve)
    ax.axvspan(low, high, color="C0", alpha=0.1, label=f"bounds [{low:.2g}, {high:.2g}]")
    if curve.losses:  # the divergence tail would squash the interesting part of the plot
        top = max(curve.losses[0], *curve.smoothed[usable_span(curve)])
        ax.set_ylim(0.9 * min(curve.losses), 1.2 * top)
    ax.set(xscale="log", xlabel="learning rate", ylabel="training loss",
           title=f"LR range test ({'reliable' if suggestion.reliable else suggestion.reason})")
    ax.title.set_fontsize(9)
    ax.legend(fontsize=7)
    fig.savefig(path, dpi=100)
