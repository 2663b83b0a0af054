"""Experiment search entries -> Ray Tune's nested param space, and how many trials it means."""
from __future__ import annotations

from pathlib import Path

import pytest
from ray import tune
from ray.tune.search import sample

from pipeline.config import load
from pipeline.search.space import points_to_configs, to_tune, trial_count

from ..conftest import write_experiment

EXP = """
name: s
search:
  searcher: {searcher}
  num_samples: 3
  space:
    train.lr: {{loguniform: [1.0e-4, 1.0e-1]}}
    model.hidden: {{randint: [16, 20]}}
    model.dropout: {{grid: [0.0, 0.2, 0.5]}}
    model.arch: {{grid: [mlp, cnn]}}
  points_to_evaluate:
    - {{train.lr: 0.01, _result: 1.5}}
"""


def experiment(workdir: Path, searcher: str = "random"):
    return load(write_experiment(workdir, EXP.format(searcher=searcher)))


def test_every_searcher_runs_num_samples_per_grid_cell(workdir: Path) -> None:
    assert trial_count(experiment(workdir).search) == trial_count(experiment(workdir, "bayes").search) == 18
    assert trial_count(load(write_experiment(workdir, "name: s\n")).search) == 8  # the default


def test_searched_fields_become_domains_in_the_trial_config(workdir: Path) -> None:
    space = to_tune(experiment(workdir))
    assert isinstance(space["train"]["lr"].get_sampler(), sample.LogUniform)
    hidden = space["model"]["hidden"]  # users write inclusive bounds, Ray's high is exclusive
    assert (hidden.lower, hidden.upper) == (16, 21)
    assert space["model"]["dropout"] == tune.grid_search([0.0, 0.2, 0.5])
    assert space["train"]["epochs"] == experiment(workdir).train.epochs  # the rest stays


def test_lr_range_needs_the_range_test_bounds(workdir: Path) -> None:
    exp = load(write_experiment(workdir, "name: s\nlr_range_test: {enabled: true}\n"
                                               "search: {space: {train.lr: lr_range}}\n"))
    assert to_tune(exp, (1e-3, 1e-1))["train"]["lr"].lower == 1e-3
    with pytest.raises(ValueError, match="lr_range needs"):
        to_tune(exp)


def test_points_to_evaluate_become_nested_configs_without_results(workdir: Path) -> None:
    assert points_to_configs(experiment(workdir).search) == [{"train": {"lr": 0.01}}]
