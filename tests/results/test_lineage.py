"""PBT lineage from what trials report: exploit tags, the replayable schedule, the plot."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from pipeline.results.lineage import exploit_tags, population_plot, schedule_experiment


def test_a_schedule_becomes_first_values_and_the_changes_only() -> None:
    history = [[0, {"train.lr": 0.1, "model.dropout": 0.0}],
               [2, {"train.lr": 0.08, "model.dropout": 0.0}],
               [3, {"train.lr": 0.08, "model.dropout": 0.1}]]
    assert schedule_experiment(json.dumps(history)) == {
        "train.lr": 0.1, "model.dropout": 0.0, "train.hyperparameter_schedule": [
            {"epoch": 2, "values": {"train.lr": 0.08}},
            {"epoch": 3, "values": {"model.dropout": 0.1}}]}


def test_the_first_result_after_an_exploit_is_tagged_with_donor_epoch_and_values() -> None:
    result = {"cloned_from": "t1", "cloned_at_epoch": 2, "hp.train.lr": 0.05, "val_loss": 1.0,
              "hp_schedule": "[[0, {}]]"}
    tags = {t.key: t.value for t in exploit_tags(result, {"t1": "run-1"})}
    assert json.loads(tags["pbt.exploit.epoch_2"]) == {
        "cloned_trial": "t1", "cloned_run": "run-1", "at_epoch": 2,
        "values": {"train.lr": 0.05}}
    assert tags["pbt.cloned_from"] == "t1" and tags["pbt.schedule"] == "[[0, {}]]"
    assert exploit_tags({"val_loss": 1.0}, {}) == []


def test_a_second_exploit_from_the_same_donor_epoch_keeps_the_first() -> None:
    """PBT clones a donor's latest checkpoint; one that has not saved a newer one yet is
    cloned again at the same epoch, with other values: both exploits stay on the run, and the
    same result sent twice (after a stop) adds nothing."""
    first = {"cloned_from": "t1", "cloned_at_epoch": 1, "hp.train.lr": 0.05}
    second = {**first, "hp.train.lr": 0.08}
    run_tags: dict[str, str] = {}
    for result in (first, second, first, second):
        run_tags.update({t.key: t.value for t in exploit_tags(result, {"t1": "r"}, run_tags)})
    records = {k: json.loads(v)["values"]["train.lr"] for k, v in run_tags.items()
               if k.startswith("pbt.exploit.")}
    assert records == {"pbt.exploit.epoch_1": 0.05, "pbt.exploit.epoch_1.2": 0.08}


def test_the_population_plot_is_drawn_and_needs_results(tmp_path: Path) -> None:
    frame = pd.DataFrame({
        "trial_id": ["a", "a", "b", "b", "b"], "epoch": [1, 2, 1, 2, 3],
        "val_loss": [2.0, 1.5, 2.2, 1.4, 1.2],
        "cloned_from": [None, None, None, "a", None],
        "cloned_at_epoch": [None, None, None, 1, None]})
    path = population_plot(frame, "val_loss", tmp_path / "p.png")
    assert path is not None and path.stat().st_size > 5000
    assert population_plot(frame.iloc[:0], "val_loss", tmp_path / "q.png") is None
