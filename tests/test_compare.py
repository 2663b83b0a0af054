"""Searcher comparison: the derived grid, the variants, the curves, and the command itself."""
from __future__ import annotations

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from pipeline import cli, compare
from pipeline.config import ConfigError, load
from pipeline.results.report import Outcome

from .conftest import local_store, tiny_sweep, write_experiment

EXP = tiny_sweep("cmp", "    train.lr: {loguniform: [1.0e-3, 0.3]}\n"
                        "    model.dropout: {uniform: [0.0, 0.5]}\n", searcher="random",
                 num_samples=4)


def test_grid_counts_grow_round_robin_within_budget() -> None:
    assert compare.grid_counts(2, 1, 12) == [4, 3]
    assert compare.grid_counts(4, 1, 12) == [3, 2, 2, 1]
    assert compare.grid_counts(1, 3, 10) == [3]
    assert compare.grid_counts(0, 4, 12) == []


def test_grid_points_are_cell_centres() -> None:
    assert compare.grid_points({"uniform": [0.0, 1.0]}, 4) == [0.125, 0.375, 0.625, 0.875]
    assert compare.grid_points({"loguniform": [1e-4, 1.0]}, 2) == pytest.approx([1e-3, 1e-1])
    assert compare.grid_points({"int": [1, 3]}, 5) == [1, 2, 3]


def test_grid_space_keeps_lists_and_refuses_a_budget_they_overflow() -> None:
    space = {"train.lr": {"loguniform": [1e-4, 1.0]}, "model.hidden": {"choice": [16, 32]}}
    assert compare.grid_space(space, 5) == {"train.lr": {"grid": pytest.approx([1e-3, 1e-1])},
                                            "model.hidden": {"grid": [16, 32]}}
    with pytest.raises(ConfigError, match="make 2 grid cells, more than 1 trials"):
        compare.grid_space(space, 1)


def test_variants_share_the_budget(workdir) -> None:
    exp = load(write_experiment(workdir, EXP + "    model.depth: {grid: [1, 2]}\n"))
    grid = compare.variant(exp, "grid", 3, 8)
    assert (grid.seed, grid.search.searcher, grid.search.num_samples) == (3, "grid", 1)
    assert len(grid.search.space["train.lr"]["grid"]) * \
        len(grid.search.space["model.dropout"]["grid"]) * 2 == 8
    rand = compare.variant(exp, "random", 3, 8)
    assert rand.search.num_samples == 8
    assert rand.search.space["model.depth"] == {"choice": [1, 2]}
    bayes = compare.variant(exp, "bayes", 3, 8)
    assert bayes.search.bayes.n_initial_points == 2  # 20 would be the whole budget
    with pytest.raises(ConfigError, match="unknown searcher 'tpe'"):
        compare.check_searchers(exp, ["random", "tpe"], 8)


def _outcome(values: list[float]) -> Outcome:
    table = pd.DataFrame({"trial_id": [f"t_{i:05d}" for i in range(len(values))],
                          "val_loss": values})
    return Outcome("s", "r", None, "val_loss", min(values), {}, {}, table, 0)


def test_curves_give_median_and_spread_of_best_so_far() -> None:
    arms = [compare.Arm("random", 0, _outcome([3.0, 1.0, 2.0])),
            compare.Arm("random", 1, _outcome([2.0, 2.5, 0.5])),
            compare.Arm("grid", 0, _outcome([4.0, 3.0]))]
    curves = compare.best_so_far_curves(arms, "min")
    rand = curves[curves.searcher == "random"]
    assert rand["median"].tolist() == [2.5, 1.5, 0.75]
    assert rand["low"].tolist() == [2.0, 1.0, 0.5]
    assert rand["high"].tolist() == [3.0, 2.0, 1.0]
    assert curves[curves.searcher == "grid"]["median"].tolist() == [4.0, 3.0]


@pytest.mark.slow
def test_compare_command_logs_figure_and_table_on_its_own_run(workdir, ray_local,
                                                              capsys) -> None:
    exp_file = write_experiment(workdir, EXP)
    figure = workdir / "docs" / "compare.png"
    code = cli.main(["compare", str(exp_file), "--searchers", "grid,random,bayes",
                     "--budget", "4", "--seeds", "1", "--figure", str(figure)])
    out = capsys.readouterr().out
    assert code == 0, out[-3000:]
    assert "Searchers compared on val_loss (min), 4 trials per sweep, 1 seed(s)" in out
    assert figure.stat().st_size > 10_000
    client = MlflowClient(local_store())
    experiment_id = client.get_experiment_by_name("cmp").experiment_id
    (run,) = client.search_runs([experiment_id], "tags.`pipeline.kind` = 'compare'")
    assert {a.path for a in client.list_artifacts(run.info.run_id)} == {"compare.png",
                                                                        "compare.csv"}
    sweeps = client.search_runs([experiment_id],
                                f"tags.`mlflow.parentRunId` = '{run.info.run_id}'")
    assert sorted(s.data.tags["searcher"] for s in sweeps) == ["bayes", "grid", "random"]
    for sweep in sweeps:
        assert sweep.data.metrics["trials_total"] == 4
    assert {f"median_best_{s}" for s in ("grid", "random", "bayes")} <= set(run.data.metrics)
    assert run.info.status == "FINISHED"
    assert client.search_registered_models() == []  # comparison sweeps register nothing


@pytest.mark.parametrize(("args", "message"), [
    (["--searchers", ""], "--searchers: name at least one"),
    (["--searchers", " , "], "--searchers: name at least one"),
    (["--budget", "0"], "--budget and --seeds: must be at least 1"),
])
def test_empty_searchers_and_a_zero_budget_are_refused(workdir, capsys, args, message) -> None:
    """`--searchers ""` opened a comparison run, failed with KeyError (exit 1) and left the run
    RUNNING; `--budget 0` silently meant the default."""
    exp_file = write_experiment(workdir, EXP)
    assert cli.main(["compare", str(exp_file), *args]) == 2
    assert capsys.readouterr().err.strip().startswith(f"error: {message}")
    assert not (workdir / "mlflow.db").exists()  # nothing opened
