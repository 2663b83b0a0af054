"""Each LR policy's curve by step: exact values on small cases, and PyTorch's own schedulers
where one exists (same formulas, so the same numbers)."""
from __future__ import annotations

import pytest
import torch

from pipeline.config import Train
from pipeline.training.schedules import lr_at, range_test_bounds


def curve(steps_per_epoch: int = 2, **train) -> list[float]:
    cfg = Train(**train)
    return [lr_at(cfg, step, steps_per_epoch) for step in range(steps_per_epoch * cfg.epochs)]


def torch_curve(make, steps: int, lr: float) -> list[float]:
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
    schedule = make(optimizer)
    lrs = []
    for _ in range(steps):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    return lrs


def test_triangular_rises_from_base_to_max_and_back() -> None:
    # step_size = 2 steps: 0.1 -> 0.5 -> 0.9 -> 0.5 -> 0.1 -> ...
    assert curve(epochs=3, lr=0.9, min_lr=0.1, schedule="cyclic",
                 cyclic={"step_size_epochs": 1}) == pytest.approx(
        [0.1, 0.5, 0.9, 0.5, 0.1, 0.5])


def test_triangular2_halves_the_height_each_cycle() -> None:
    assert curve(epochs=4, lr=0.9, min_lr=0.1, schedule="cyclic",
                 cyclic={"mode": "triangular2", "step_size_epochs": 1}) == pytest.approx(
        [0.1, 0.5, 0.9, 0.5, 0.1, 0.3, 0.5, 0.3])


def test_exp_range_shrinks_the_height_per_epoch() -> None:
    lrs = curve(epochs=2, lr=1.1, min_lr=0.1, schedule="cyclic",
                cyclic={"mode": "exp_range", "step_size_epochs": 1, "gamma": 0.5})
    # height 1.0 * 0.5 ** (step / 2 steps per epoch) * triangle
    assert lrs == pytest.approx([0.1, 0.1 + 0.5 * 0.5 ** 0.5, 0.1 + 0.5, 0.1 + 0.5 * 0.5 ** 1.5])


@pytest.mark.parametrize("mode", ["triangular", "triangular2"])
def test_cyclic_matches_torch_cycliclr(mode: str) -> None:
    ours = curve(steps_per_epoch=5, epochs=6, lr=0.3, min_lr=0.01, schedule="cyclic",
                 cyclic={"mode": mode, "step_size_epochs": 1.4})
    theirs = torch_curve(lambda o: torch.optim.lr_scheduler.CyclicLR(
        o, base_lr=0.01, max_lr=0.3, step_size_up=7, mode=mode, cycle_momentum=False), 30, 0.3)
    assert ours == pytest.approx(theirs, rel=1e-9)


def test_cyclic_base_defaults_to_a_quarter_of_max() -> None:
    assert min(curve(epochs=2, lr=0.8, schedule="cyclic")) == pytest.approx(0.2)


def test_sgdr_restarts_with_growing_periods() -> None:
    # t0 = 2 steps, t_mult 2: periods of 2 and 4 steps: 1, 0.5 | 1, .85, .5, .15 | 1
    lrs = curve(steps_per_epoch=2, epochs=4, lr=1.0, min_lr=0.0, schedule="sgdr",
                sgdr={"t0_epochs": 1, "t_mult": 2})
    assert lrs[:7] == pytest.approx([1.0, 0.5, 1.0, 0.8535534, 0.5, 0.1464466, 1.0])


def test_sgdr_matches_torch_cosine_warm_restarts() -> None:
    ours = curve(steps_per_epoch=3, epochs=10, lr=0.2, min_lr=0.001, schedule="sgdr",
                 sgdr={"t0_epochs": 1, "t_mult": 2})
    theirs = torch_curve(lambda o: torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(
        o, T_0=3, T_mult=2, eta_min=0.001), 30, 0.2)
    assert ours == pytest.approx(theirs, rel=1e-9)


def test_onecycle_matches_torch_onecyclelr() -> None:
    ours = curve(steps_per_epoch=7, epochs=3, lr=0.4, schedule="onecycle")
    theirs = torch_curve(lambda o: torch.optim.lr_scheduler.OneCycleLR(
        o, max_lr=0.4, total_steps=21, cycle_momentum=False), 21, 0.4)
    assert ours == pytest.approx(theirs, rel=1e-9)


def test_onecycle_starts_at_min_lr_when_given() -> None:
    lrs = curve(steps_per_epoch=10, epochs=2, lr=0.4, min_lr=0.1, schedule="onecycle")
    assert lrs[0] == pytest.approx(0.1) and max(lrs) == pytest.approx(0.4, rel=1e-3)
    assert lrs[-1] == pytest.approx(0.1 / 1e4)


def test_cosine_falls_to_min_lr_and_constant_stays() -> None:
    assert curve(epochs=2, lr=1.0, min_lr=0.2, schedule="cosine") == pytest.approx(
        [1.0, 0.2 + 0.8 * 0.8535534, 0.6, 0.2 + 0.8 * 0.1464466])
    assert curve(epochs=2, lr=0.3) == [0.3] * 4


# Range-test bounds for cycled schedules, on the hand-made curves of test_lr_range.
def _suggestion(lr: float, steepest: float | None, reliable: bool = True):
    from pipeline.training.lr_range import Suggestion

    return Suggestion(lr, {"steepest": steepest}, 0.0, reliable, "")


def test_cycle_max_is_the_steepest_lr_and_min_a_quarter_of_it() -> None:
    from tests.training.test_lr_range import LRS, VALLEY, hand_made

    # suggestion 0.01 -> lr_range top 0.03; steepest 0.02 is below it
    assert range_test_bounds(_suggestion(0.01, 0.02), hand_made(VALLEY)) == (
        pytest.approx(0.005), pytest.approx(0.02))
    # a steepest rule past 3x the suggestion is capped there ...
    assert range_test_bounds(_suggestion(0.01, 0.09), hand_made(VALLEY))[1] == pytest.approx(0.03)
    # ... and never past the loss minimum (step 12, lr 0.1)
    assert range_test_bounds(_suggestion(0.05, 0.5), hand_made(VALLEY))[1] == LRS[12]


def test_an_unreliable_curve_sets_no_cycle_bounds() -> None:
    from tests.training.test_lr_range import VALLEY, hand_made

    assert range_test_bounds(_suggestion(0.01, 0.02, reliable=False), hand_made(VALLEY)) is None
