"""Training: it learns, it repeats exactly, it resumes exactly, it stops on NaN."""
from __future__ import annotations

import copy

import pytest

from pipeline.config import Experiment
from pipeline.training.data import Data, load
from pipeline.training.loop import Diverged, fit

DATA = load(Data(limit=400))


def _exp(**train) -> Experiment:
    return Experiment.model_validate({"name": "t", "train": {"epochs": 3, "lr": 0.05, **train},
                                      "data": {"limit": 400}})


def _run(exp: Experiment, state=None) -> list[dict[str, float]]:
    return [epoch.metrics for epoch in fit(exp, DATA, state=state)]


def test_a_few_epochs_lower_the_loss() -> None:
    history = _run(_exp())
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert history[-1]["val_acc"] > 0.3  # chance is 0.1
    assert set(history[0]) == {"train_loss", "val_loss", "val_acc", "lr", "epoch_time_s",
                               "samples_per_s"}


def test_seeded_runs_repeat_exactly() -> None:
    a, b = _run(_exp()), _run(_exp())
    assert [m["val_loss"] for m in a] == [m["val_loss"] for m in b]
    other = _run(_exp().with_values({"seed": 1}))
    assert [m["val_loss"] for m in a] != [m["val_loss"] for m in other]


@pytest.mark.parametrize("schedule", ["constant", "cosine", "onecycle", "cyclic", "sgdr"])
def test_resume_from_a_snapshot_continues_identically(schedule: str) -> None:
    exp = _exp(schedule=schedule, optimizer="adamw", lr=0.01)
    full = _run(exp)
    first = next(iter(fit(exp, DATA)))
    resumed = _run(exp, state=first.state())
    assert [m["val_loss"] for m in resumed] == [m["val_loss"] for m in full[1:]]


def test_cosine_schedule_decays_the_lr() -> None:
    lrs = [m["lr"] for m in _run(_exp(schedule="cosine"))]
    assert lrs[0] == pytest.approx(0.05) and lrs[1] < lrs[0] and lrs[2] < lrs[1]


def test_nan_loss_stops_training() -> None:
    with pytest.raises(Diverged, match="training loss became"):
        _run(_exp(lr=1e12, momentum=0.0))



@pytest.mark.slow  # compiling takes a minute or more on 2 CPU cores
def test_a_compiled_model_trains_as_the_eager_one() -> None:
    exp = _exp(epochs=2)
    eager = [m["val_loss"] for m in _run(exp)]
    compiled = [m["val_loss"] for m in _run(exp.with_values({"train.compile": True}))]
    assert compiled == pytest.approx(eager, rel=1e-4)


def test_divergence_is_caught_within_the_check_interval(monkeypatch) -> None:
    """The loss is read back every CHECK_EVERY steps: a NaN stops the epoch at that step."""
    from pipeline.training import loop

    steps = []
    real = loop.device_step

    def counting(*args, **kwargs):
        steps.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(loop, "device_step", counting)
    monkeypatch.setattr(loop, "CHECK_EVERY", 3)
    exp = _exp(lr=1e12, momentum=0.0).with_values({"data.batch_size": 8})
    with pytest.raises(Diverged):
        _run(exp)
    assert len(steps) <= 3 + 3  # the first NaN comes within a few steps; caught by the next check
    assert len(steps) < len(DATA.x_train) // 8


def test_a_hyperparameter_schedule_changes_values_at_its_epochs() -> None:
    exp = _exp(hyperparameter_schedule=[{"epoch": 1, "values": {"train.lr": 0.02}},
                                        {"epoch": 2, "values": {"train.lr": 0.01,
                                                                "model.dropout": 0.3}}])
    epochs = list(fit(exp, DATA))
    assert [e.metrics["lr"] for e in epochs] == pytest.approx([0.05, 0.02, 0.01])
    assert [(first, values["train.lr"], values["model.dropout"])
            for first, values in epochs[-1].history] == [(0, 0.05, 0.0), (1, 0.02, 0.0),
                                                         (2, 0.01, 0.3)]


def test_a_restored_snapshot_trains_on_with_the_new_config_values() -> None:
    """What PBT does: weights and optimizer state from a snapshot, new hyperparameters."""
    first = next(iter(fit(_exp(), DATA)))
    # a copy per use, as from a checkpoint file: load_state_dict shares momentum buffers
    snapshot = lambda: copy.deepcopy(first.state())
    resumed = list(fit(_exp(lr=0.02), DATA, state=snapshot()))
    assert [e.metrics["lr"] for e in resumed] == [0.02, 0.02]
    assert [first for first, _ in resumed[-1].history] == [0, 1]
    # momentum lives in the optimizer's saved state too: the config's value must win
    resumed = list(fit(_exp(momentum=0.5), DATA, state=snapshot()))
    assert resumed[-1].history[1][1]["train.momentum"] == 0.5
    same = list(fit(_exp(), DATA, state=snapshot()))
    assert [e.metrics["val_loss"] for e in same] == [
        e.metrics["val_loss"] for e in fit(_exp(), DATA, state=snapshot())]
    assert same[0].metrics["val_loss"] != resumed[0].metrics["val_loss"]
