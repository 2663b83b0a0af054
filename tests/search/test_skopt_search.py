"""SkoptSearch on real scikit-optimize, driven through its Searcher methods, and one real
Ray Tune sweep. Options are shrunk (few initial points, few candidates) to stay fast."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from ray import tune

from pipeline.config import Bayes
from pipeline.search.skopt_search import SkoptSearch, load_saved
from pipeline.search.skopt_space import flatten

FAST = Bayes(n_initial_points=4, n_points=200, n_restarts_optimizer=2, gp_restarts=0)
ACTIVATIONS = ["relu", ["gelu", 0.5], None]  # a choice may hold any object, even unhashable


def space() -> dict:
    return {"seed": 0,
            "train": {"lr": tune.loguniform(1e-4, 1e-1), "momentum": tune.uniform(0.8, 0.99),
                      "epochs": 5},
            "model": {"hidden": tune.randint(16, 20), "act": tune.choice(ACTIVATIONS),
                      "dropout": tune.grid_search([0.0, 0.5]), "extra": {}}}


def loss(config: dict) -> float:
    """A smooth bowl with its minimum inside the space (lr 1e-2, momentum 0.9, hidden 18)."""
    t, m = config["train"], config["model"]
    return ((math.log10(t["lr"]) + 2) ** 2 + (t["momentum"] - 0.9) ** 2 * 100
            + (m["hidden"] - 18) ** 2 / 4 + m["dropout"] + ACTIVATIONS.index(m["act"]) / 10)


def searcher(**kwargs) -> SkoptSearch:
    args = {"options": FAST, "metric": "val_loss", "mode": "min", "seed": 0} | kwargs
    return SkoptSearch(space(), **args)


def run_serially(search: SkoptSearch, trials: int, start: int = 0) -> list[dict]:
    configs = []
    for i in range(start, start + trials):
        configs.append(search.suggest(str(i)))
        search.on_trial_complete(str(i), {"val_loss": loss(configs[-1])})
    return configs


def unit(config: dict) -> np.ndarray:
    """The whole point in the unit cube (log scale for lr, as the GP sees it)."""
    t, m = config["train"], config["model"]
    return np.array([(math.log10(t["lr"]) + 4) / 3, (t["momentum"] - 0.8) / 0.19,
                     (m["hidden"] - 16) / 3, ACTIVATIONS.index(m["act"]) / 2, m["dropout"]])


def test_suggestions_are_full_nested_configs_with_python_types():
    configs = run_serially(searcher(), 12)
    for config in configs:
        assert config["seed"] == 0 and config["train"]["epochs"] == 5
        assert config["model"]["extra"] == {}
        assert type(config["train"]["lr"]) is float and 1e-4 <= config["train"]["lr"] <= 0.1
        assert type(config["model"]["hidden"]) is int and 16 <= config["model"]["hidden"] <= 19
        assert config["model"]["act"] in ACTIVATIONS
        assert config["model"]["dropout"] in (0.0, 0.5)
    assert sorted(flatten(configs[0])) == sorted(flatten(
        {"seed": 0, "train": {"lr": 0, "momentum": 0, "epochs": 0},
         "model": {"hidden": 0, "act": 0, "dropout": 0, "extra": {}}}))


def test_grid_cells_get_equal_shares_and_their_own_optimizer():
    search = searcher()
    configs = run_serially(search, 12)
    dropouts = [c["model"]["dropout"] for c in configs]
    assert dropouts.count(0.0) == dropouts.count(0.5) == 6
    by_cell = {0.0: [], 0.5: []}
    for c in configs:
        by_cell[c["model"]["dropout"]].append(loss(c))
    assert [sorted(cell.optimizer.yi) for cell in search._cells] == \
        [sorted(by_cell[0.0]), sorted(by_cell[0.5])]


def test_same_seed_same_suggestions_other_seed_other_suggestions():
    first, again = run_serially(searcher(), 10), run_serially(searcher(), 10)
    assert first == again
    assert run_serially(searcher(seed=1), 10) != first


def test_restored_searcher_continues_exactly(tmp_path: Path):
    original = searcher(max_concurrent=2)
    run_serially(original, 9)
    original.suggest("pending")  # a running trial is part of the state too
    original.save(str(tmp_path / "state.pkl"))
    restored = searcher(seed=99)
    restored.restore(str(tmp_path / "state.pkl"))
    for search in (original, restored):
        search.on_trial_complete("pending", {"val_loss": 3.0})
    assert run_serially(restored, 5, start=100) == run_serially(original, 5, start=100)


def test_running_trials_never_share_a_point():
    search = searcher(max_concurrent=4)
    running = {str(i): search.suggest(str(i)) for i in range(4)}
    assert search.suggest("over the limit") is None
    closest, rng = np.inf, np.random.default_rng(0)
    for i in range(4, 30):
        done = str(rng.choice(sorted(running)))
        search.on_trial_complete(done, {"val_loss": loss(running.pop(done))})
        running[str(i)] = search.suggest(str(i))
        points = [unit(c) for c in running.values()]
        closest = min([closest] + [np.linalg.norm(a - b) for j, a in enumerate(points)
                                   for b in points[j + 1:]])
    assert closest > 0.01


def test_failed_and_nan_trials_are_told_the_worst_finite_value():
    search = searcher(options=FAST.model_copy(update={"n_initial_points": 6}), max_concurrent=2)
    first, second = search.suggest("a"), search.suggest("b")
    search.on_trial_complete("a", {"val_loss": float("nan")})
    search.on_trial_complete("b", None, error=True)
    third = search.suggest("c")  # the initial design moves past the unscored points
    assert first != third and second != third
    search.on_trial_complete("c", {"val_loss": 2.0})
    search.suggest("d")
    search.on_trial_complete("d", {"val_loss": 5.0})
    search.suggest("e")
    search.on_trial_complete("e", {"loss_is_missing": 1.0})
    told = sorted(y for cell in search._cells for y in cell.optimizer.yi)
    assert told == [2.0, 2.0, 2.0, 5.0, 5.0]  # a (cell 0) waits for c, b (cell 1) for d


def test_a_diverging_region_does_not_hide_the_basin():
    """Trials with x < -0.6 "diverge" to a huge finite loss; the rest is a bowl at
    (0.3, -0.2). With the huge values flattening the warped outputs, 16 trials ended
    0.08-0.48 from the optimum."""
    space = {"x": tune.uniform(-1.0, 1.0), "y": tune.uniform(-1.0, 1.0)}
    for seed, outlier in [(0, 1e300), (1, 1e6), (2, 1e30)]:
        search = SkoptSearch(space, Bayes(n_initial_points=4), "loss", "min", seed)
        scores = []
        for i in range(16):
            p = search.suggest(str(i))
            scores.append(outlier if p["x"] < -0.6 else (p["x"] - 0.3) ** 2 + (p["y"] + 0.2) ** 2)
            search.on_trial_complete(str(i), {"loss": scores[-1]})
        assert min(scores) < 1e-3, (seed, outlier, min(scores))


def test_max_mode_is_minimised_as_negative():
    search = searcher(metric="acc", mode="max")
    search.suggest("a")
    search.on_trial_complete("a", {"acc": 0.9})
    assert [y for cell in search._cells for y in cell.optimizer.yi] == [-0.9]


def test_points_to_evaluate_run_first_and_known_results_are_told():
    points = [{"train.lr": 0.01, "train.momentum": 0.9, "model.hidden": 17,
               "model.act": ["gelu", 0.5], "model.dropout": 0.5},
              {"train.lr": 0.001},  # the rest is drawn, the grid cell balanced
              {"train.lr": 0.05, "train.momentum": 0.85, "model.hidden": 16, "model.act": None,
               "model.dropout": 0.0, "_result": 1.5}]
    search = searcher(points_to_evaluate=points, max_concurrent=2)
    first, second = search.suggest("a"), search.suggest("b")
    assert [y for cell in search._cells for y in cell.optimizer.yi] == [1.5]
    assert first["train"] == {"lr": 0.01, "momentum": 0.9, "epochs": 5}
    assert first["model"]["act"] == ["gelu", 0.5] and first["model"]["dropout"] == 0.5
    assert second["train"]["lr"] == 0.001 and second["model"]["dropout"] == 0.0
    assert 0.8 <= second["train"]["momentum"] <= 0.99


def test_search_properties_fill_only_what_is_unset():
    search = SkoptSearch(space(), options=FAST, seed=0)
    assert search.set_search_properties("val_loss", "min", {}) is True
    assert (search.metric, search.mode) == ("val_loss", "min")
    assert search.set_search_properties("other", "max", {}) and search.metric == "val_loss"


def test_surrogate_figure_once_a_gp_is_fitted():
    search = searcher(options=FAST.model_copy(update={"n_initial_points": 3}))
    assert search.objective_figure() is None
    run_serially(search, 10)
    assert isinstance(search.objective_figure(), Figure)
    trees = searcher(options=FAST.model_copy(update={"base_estimator": "RF"}))
    run_serially(trees, 10)
    assert trees.objective_figure() is None


def test_library_warnings_stay_inside_and_a_repeat_is_said_once(capsys):
    """A space of three points is used up at once: skopt warns at every suggestion that it
    replaced a repeat by a random point. None of it may reach the user but our one line."""
    import warnings
    search = SkoptSearch({"k": tune.randint(0, 3)}, FAST.model_copy(update={"n_initial_points": 2}),
                         "value", "min", seed=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for i in range(12):
            config = search.suggest(str(i))
            search.on_trial_complete(str(i), {"value": float((config["k"] - 1) ** 2)})
    assert [str(w.message) for w in caught] == []
    assert capsys.readouterr().out.count("already evaluated") == 1


def test_an_optimum_on_a_bound_is_not_proposed_twice(capsys):
    """The acquisition's optimum sits on the bound x = 0 at every step; an exact repeat would
    be swapped for a random point by skopt (and said so)."""
    search = SkoptSearch({"x": tune.uniform(0, 1)}, FAST, "value", "min", seed=0)
    xs = []
    for i in range(20):
        xs.append(search.suggest(str(i))["x"])
        search.on_trial_complete(str(i), {"value": xs[-1]})
    assert len(set(xs)) == len(xs) and min(xs) < 1e-3
    assert "already evaluated" not in capsys.readouterr().out


def test_gp_refits_are_warm_started_between_periodic_restarts():
    from pipeline.search.surrogate import RESTART_EVERY
    search = SkoptSearch({"x": tune.uniform(0, 1)}, FAST.model_copy(update={"gp_restarts": 3}),
                         "value", "min", seed=0)
    restarts = []
    for i in range(RESTART_EVERY + 6):
        config = search.suggest(str(i))
        search.on_trial_complete(str(i), {"value": (config["x"] - 0.3) ** 2})
        models = search._cells[0].optimizer.models
        if models:
            restarts.append(models[-1].n_restarts_optimizer)
    assert restarts[0] == 3 and restarts[RESTART_EVERY] == 3
    assert set(restarts[1:RESTART_EVERY]) == {0}


def test_ray_tune_runs_the_searchers_suggestions(ray_local, tmp_path: Path):
    def trainable(config: dict) -> None:
        tune.report({"val_loss": loss(config)})

    search = searcher(max_concurrent=2)
    results = tune.Tuner(
        tune.with_resources(trainable, {"cpu": 0.5}),
        tune_config=tune.TuneConfig(search_alg=search, num_samples=8, max_concurrent_trials=2,
                                    reuse_actors=True),
        run_config=tune.RunConfig(storage_path=str(tmp_path), verbose=0)).fit()
    assert len(results) == 8 and not results.errors
    told = sorted(y for cell in search._cells for y in cell.optimizer.yi)
    assert told == sorted(r.metrics["val_loss"] for r in results)
    assert all(r.metrics["val_loss"] == loss(r.config) for r in results)
    assert all(r.config["train"]["epochs"] == 5 for r in results)  # the searcher's full config
    saved = load_saved(results.experiment_path, results.filesystem)  # what Tune kept of it
    assert sorted(y for cell in saved._cells for y in cell.optimizer.yi) == told
    assert load_saved(str(tmp_path), results.filesystem) is None  # no sweep folder there


def test_a_space_of_choices_alone_is_searched():
    """skopt refuses L-BFGS on a categorical-only space: such a sweep failed at its first
    trial before the acquisition was sampled there."""
    search = SkoptSearch({"model": {"arch": tune.choice(["mlp", "cnn", "resnet18"]),
                                    "act": tune.choice(["relu", "gelu"])}},
                         options=Bayes(n_initial_points=3), metric="val_loss", mode="min",
                         seed=0, max_concurrent=2)
    scores = {("cnn", "gelu"): 0.1}
    for i in range(8):
        config = search.suggest(str(i))["model"]
        search.on_trial_complete(str(i), {"val_loss": scores.get(
            (config["arch"], config["act"]), 1.0)})
    assert search._cells[0].optimizer.models  # the surrogate took over after the design


def test_a_small_discrete_space_is_used_up_before_any_point_repeats(capsys):
    """6 points of choices, 4 trials: the 4th repeated the 3rd (the believer and the GP agreed
    on it) while 3 points were never tried, and nothing said so."""
    search = SkoptSearch({"model": {"hidden": tune.choice([8, 16, 32]),
                                    "optimizer": tune.choice(["sgd", "adamw"])}},
                         options=Bayes(n_initial_points=2), metric="val_loss", mode="min",
                         seed=0, max_concurrent=2)
    seen = []
    for i in range(6):
        model = search.suggest(str(i))["model"]
        seen.append((model["hidden"], model["optimizer"]))
        search.on_trial_complete(str(i), {"val_loss": 1.0 - 0.01 * model["hidden"]})
    assert len(set(seen)) == 6
    assert "already evaluated" not in capsys.readouterr().out
    search.suggest("6")  # nothing new is left: a repeat, said once
    search.suggest("7")
    assert capsys.readouterr().out.count("already evaluated") == 1
