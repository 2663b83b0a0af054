"""Schedulers (pbt, hyperband, median) and LR policies (cyclic, sgdr, a hyperparameter
schedule): every bad value is one line naming the field, before Ray starts."""
from __future__ import annotations

from pathlib import Path

import pytest

from pipeline import cli
from pipeline.config import ConfigError, load

PBT = ["search.scheduler=pbt", "train.epochs=4"]
BAD = [
    (["train.schedule=triangle"], "train.schedule:"),
    (["train.min_lr=-1"], "train.min_lr:"),
    (["search.space={}", "train.min_lr=0.5", "train.lr=0.1"],
     "train.min_lr: 0.5 must be below train.lr"),
    (["train.min_lr=0.005"], "search.space.train.lr: value 0.001 is invalid (train.min_lr"),
    (["train.cyclic.mode=sine"], "train.cyclic.mode:"),
    (["train.cyclic.step_size_epochs=0"], "train.cyclic.step_size_epochs:"),
    (["train.cyclic.gamma=1.5"], "train.cyclic.gamma:"),
    (["train.cyclic.base_lr=0.1"], "train.cyclic.base_lr: unknown key"),
    (["train.sgdr.t0_epochs=0"], "train.sgdr.t0_epochs:"),
    (["train.sgdr.t_mult=0"], "train.sgdr.t_mult:"),
    (["train.sgdr.t_mult=1.5"], "train.sgdr.t_mult:"),
    (["train.hyperparameter_schedule=[{epoch: 12, values: {train.lr: 0.1}}]"],
     "train.hyperparameter_schedule[0].epoch: 12 must be"),
    (["train.hyperparameter_schedule=[{epoch: 2, values: {}}, {epoch: 1, values: {}}]"],
     "train.hyperparameter_schedule[1].epoch"),
    (["train.hyperparameter_schedule=[{epoch: 1, values: {model.hidden: 8}}]"],
     "train.hyperparameter_schedule[0].values.model.hidden: cannot change mid-run"),
    (["train.hyperparameter_schedule=[{epoch: 1, values: {train.lr: -1}}]"],
     "train.hyperparameter_schedule[0]: train.lr:"),
    (["train.hyperparameter_schedule=[{epoch: 1}]"],
     "train.hyperparameter_schedule.0.values: Field required"),
    (["search.scheduler=hyperband", "search.hyperband.reduction_factor=1"],
     "search.hyperband.reduction_factor:"),
    (["search.scheduler=hyperband", "search.searcher=bayes", "search.num_samples=3"],
     "search.searcher: hyperband cannot take a bayes searcher"),
    (["search.hyperband.max_t=3"], "search.hyperband.max_t: unknown key"),
    (["search.scheduler=hyperband", "train.epochs=4", "search.hyperband.reduction_factor=2",
      "search.num_samples=4"], ("search.num_samples: hyperband (4 epochs, reduction_factor 2) "
                                "needs trial counts that fill its brackets, e.g. 1, 2, 3, 6, 10")),
    (["search.scheduler=median", "search.median.grace_period=0"], "search.median.grace_period:"),
    (["search.scheduler=median", "search.median.grace_period=11"],
     "search.median.grace_period: longer than train.epochs"),
    (["search.median.min_samples_required=0"], "search.median.min_samples_required:"),
    ([*PBT, "search.searcher=bayes"], "search.searcher: pbt cannot take a bayes searcher"),
    ([*PBT, "search.pbt.perturbation_interval=0"], "search.pbt.perturbation_interval:"),
    ([*PBT, "search.pbt.perturbation_interval=4"],
     "search.pbt.perturbation_interval: must be below train.epochs"),
    ([*PBT, "search.pbt.quantile_fraction=0.6"], "search.pbt.quantile_fraction:"),
    ([*PBT, "search.pbt.quantile_fraction=0"], "search.pbt.quantile_fraction:"),
    ([*PBT, "search.pbt.resample_probability=2"], "search.pbt.resample_probability:"),
    ([*PBT, "search.pbt.synch=sometimes"], "search.pbt.synch:"),
    ([*PBT, "search.space={model.hidden: {choice: [8, 16]}}"],
     "search.space: pbt needs a value it may change mid-run"),
]


@pytest.fixture
def base(tmp_path: Path) -> Path:
    path = tmp_path / "exp.yaml"  # tmp_path is also the workdir fixture's folder
    path.write_text("name: t\nsearch:\n  space:\n    train.lr: {loguniform: [1.0e-3, 1.0e-1]}\n")
    return path


@pytest.mark.parametrize(("overrides", "message"), BAD, ids=[" ".join(o) for o, _ in BAD])
def test_bad_values_name_the_field(base: Path, overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as error:
        load(base, overrides)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_hyperband_trial_counts_that_fill_its_brackets() -> None:
    from pipeline.config.loading import hyperband_fills

    # Ray's brackets for max_t 4, eta 2: 3 trials (no pause), 3, 4; then the band repeats
    assert hyperband_fills(12, 4, 2)[:8] == [1, 2, 3, 6, 10, 11, 12, 13]


def test_good_values_load(base: Path) -> None:
    exp = load(base, [*PBT, "search.pbt.perturbation_interval=1", "train.schedule=sgdr",
                      "train.hyperparameter_schedule=[{epoch: 2, values: {train.lr: 0.01}}]"])
    assert exp.search.pbt.perturbation_interval == 1
    assert exp.train.hyperparameter_schedule[0].values == {"train.lr": 0.01}


def test_pbt_with_bayes_exits_2_with_one_line_before_ray(base: Path, workdir: Path,
                                                       capsys) -> None:
    args = ["tune", str(base)] + [f"--set={o}" for o in [*PBT, "search.searcher=bayes"]]
    assert cli.main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: search.searcher: pbt cannot take a bayes searcher")
    assert "use searcher: random or grid" in err and "\n" not in err
    assert list(workdir.iterdir()) == [base]  # nothing written
