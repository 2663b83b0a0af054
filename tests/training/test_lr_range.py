"""LR range test: rules on hand-made curves with exact answers, then the real loop on digits."""
from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import torch

from pipeline.config import Data, Experiment, LRRangeTest
from pipeline.training import loop as training
from pipeline.training import lr_range
from pipeline.training.data import load
from pipeline.training.lr_range import Curve

# 20 steps, a quarter decade apart: lrs[i] = 10 ** (-4 + i / 4).
LRS = [10.0 ** (-4 + i / 4) for i in range(20)]
# Flat, a valley down to step 12, then blowing up (step 16 passes 1.5x the first loss).
VALLEY = [2.0, 2.0, 2.0, 2.0, 1.9, 1.8, 1.7, 1.6, 1.1, 0.9, 0.8, 0.75, 0.7, 0.9, 1.5, 2.5,
          3.5, 9.0, 30.0, 80.0]


def hand_made(losses: list[float]) -> Curve:
    """Smoothed == raw, so the expected answers can be worked out by hand."""
    return Curve(LRS[:len(losses)], losses, losses, iterations=len(losses))


@pytest.fixture(scope="module")
def digits():
    return load(Data())


def experiment(**lr_range_test) -> Experiment:
    return Experiment(name="lr-range-test", lr_range_test=LRRangeTest(**lr_range_test))


def test_usable_span_skips_first_tenth_and_the_blown_up_tail():
    assert lr_range.usable_span(hand_made(VALLEY)) == slice(2, 16)


def test_min_loss_rule_is_a_tenth_of_the_lowest_point():
    assert lr_range.min_loss_div10(hand_made(VALLEY)) == LRS[12] / 10


def test_steepest_rule_finds_the_largest_central_drop():
    # Central differences: step 8 drops (0.9 - 1.6) / 2, steeper than steps 7 and 9.
    assert lr_range.steepest(hand_made(VALLEY)) == LRS[8]


def test_valley_rule_follows_fastai():
    # The longest decreasing run is steps 3..12 (2.0, 1.9, ..., 0.7; step 2 ties step 3), so
    # the point is 3 + int(9 / 3) + int(9 / 3 / 2) = step 7.
    assert lr_range.valley(hand_made(VALLEY)) == LRS[7]


def test_suggestion_is_the_median_rule_with_its_spread():
    s = lr_range.suggest(hand_made(VALLEY))
    assert s.rules == {"min_loss": LRS[12] / 10, "steepest": LRS[8], "valley": LRS[7]}
    assert s.lr == pytest.approx(1e-2, rel=1e-12)
    assert s.agreement_decades == pytest.approx(0.25, rel=1e-12)
    assert s.reliable


def test_bounds_are_a_decade_below_to_three_times_above():
    curve = hand_made(VALLEY)
    low, high = lr_range.search_bounds(lr_range.suggest(curve), curve)
    assert (low, high) == (pytest.approx(1e-3, rel=1e-12), pytest.approx(3e-2, rel=1e-12))


def test_bounds_end_where_the_loss_bottomed_out():
    # The lowest usable loss is at step 12 (lr 0.1): 0.05 * 3 would pass it.
    s = lr_range.Suggestion(0.05, {}, 0.0, reliable=True, reason="")
    assert lr_range.search_bounds(s, hand_made(VALLEY)) == (pytest.approx(0.005), LRS[12])


def test_bounds_start_no_lower_than_the_first_lr():
    # Rules: min_loss step 6 / 10 = step 2, steepest step 1 (one-sided edge), valley step 2.
    curve = hand_made([2.0, 1.5, 1.2, 1.0, 0.9, 0.85, 0.8, 1.5, 2.5, 4.0])
    s = lr_range.suggest(curve)
    assert s.lr == pytest.approx(LRS[2], rel=1e-12)
    assert lr_range.search_bounds(s, curve) == (LRS[0], pytest.approx(3 * LRS[2], rel=1e-12))


@pytest.mark.parametrize(("losses", "reason"), [
    ([2.0, 2.01, 1.99, 2.0, 2.02, 1.98, 2.0, 2.01, 1.99, 2.0, 2.0, 1.99], "flat"),
    ([2.0, 2.1, 5.0, 50.0], "diverged"),
])
def test_untrustworthy_curves_fall_back_to_wide_bounds(losses, reason):
    curve = hand_made(losses)
    s = lr_range.suggest(curve)
    assert not s.reliable
    assert reason in s.reason
    assert lr_range.search_bounds(s, curve) == lr_range.WIDE_BOUNDS


@pytest.mark.parametrize("mode", ["exp", "linear"])
def test_schedule_hits_start_and_end_exactly(digits, mode):
    exp = experiment(start_lr=3e-5, end_lr=0.07, num_iter=7, mode=mode, diverge_threshold=1e9)
    curve = lr_range.range_test(exp, digits)
    assert curve.lrs == lr_range.lr_schedule(3e-5, 0.07, 7, mode)
    assert (curve.lrs[0], curve.lrs[-1], curve.iterations) == (3e-5, 0.07, 7)


def test_exp_schedule_is_evenly_spaced_in_log():
    ratios = np.diff(np.log10(lr_range.lr_schedule(1e-6, 1.0, 7)))
    assert ratios == pytest.approx([1.0] * 6)


def test_stops_once_smoothed_loss_passes_the_threshold(digits):
    curve = lr_range.range_test(experiment(diverge_threshold=1.01, end_lr=100.0), digits)
    assert curve.stopped_early
    assert curve.iterations < 100
    assert curve.smoothed[-1] > 1.01 * min(curve.smoothed)


def test_nan_loss_ends_the_curve_without_raising():
    model = torch.nn.Linear(4, 3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    good = (torch.ones(2, 4), torch.zeros(2, dtype=torch.long))
    bad = (torch.full((2, 4), math.nan), torch.zeros(2, dtype=torch.long))
    curve = lr_range.record(model, optimizer, [0.1, 0.2, 0.3], iter([good, bad, good]))
    assert curve.stopped_early
    assert curve.iterations == 1
    assert curve.lrs == [0.1]


def test_model_and_optimizer_are_restored_bit_for_bit(digits):
    exp = experiment()
    s = training.setup(exp, digits, torch.device("cpu"))
    batches = lr_range.cycled_batches(s.data.x_train, s.data.y_train, 64, seed=0)
    training.train_step(s.model, s.optimizer, *next(batches))  # momentum buffers now exist
    weights = {k: v.clone() for k, v in s.model.state_dict().items()}
    momentum = {k: v["momentum_buffer"].clone() for k, v in s.optimizer.state_dict()["state"].items()}
    lr_range.record(s.model, s.optimizer, lr_range.lr_schedule(1e-4, 10.0, 30), batches)
    assert all(torch.equal(weights[k], v) for k, v in s.model.state_dict().items())
    after = s.optimizer.state_dict()
    assert all(torch.equal(momentum[k], v["momentum_buffer"]) for k, v in after["state"].items())
    assert after["param_groups"][0]["lr"] == exp.train.lr


def test_real_range_test_on_digits_suggests_an_lr_inside_the_range(digits):
    exp = experiment()
    curve = lr_range.range_test(exp, digits)
    s = lr_range.suggest(curve)
    assert curve.smoothed[0] == pytest.approx(curve.losses[0])  # bias-corrected EMA
    assert s.reliable
    assert exp.lr_range_test.start_lr <= s.lr <= exp.lr_range_test.end_lr


def test_csv_and_png_are_written(digits, tmp_path):
    curve = lr_range.range_test(experiment(num_iter=20, val_loss=True), digits)
    curve.to_csv(tmp_path / "curve.csv")
    lr_range.plot(curve, lr_range.suggest(curve), tmp_path / "curve.png")
    with open(tmp_path / "curve.csv") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["lr", "loss", "smoothed_loss", "val_loss"]
    assert len(rows) == curve.iterations + 1
    assert (tmp_path / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
