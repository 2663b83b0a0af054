"""A finished sweep -> what people read: the best config, the results table, plots, in MLflow."""
from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from ray import tune

from pipeline.config import Experiment
from pipeline.config.secrets import redact
from pipeline.execution import cost
from pipeline.results import edges, history, importance, lineage, plots, tracking
from pipeline.search.space import trial_count


@dataclass(frozen=True)
class Outcome:
    """What the CLI prints after a sweep."""

    sweep_name: str
    parent_run_id: str
    store: tracking.Store
    metric: str
    best_value: float | None
    best_config: dict[str, Any] | None
    searched: dict[str, Any]
    table: pd.DataFrame
    failed: int
    fit_s: float = 0.0
    """Wall seconds of Tuner.fit (the sweep itself, without Ray start-up and summary)."""
    spent: cost.Totals | None = None
    """Trial-hours, GPU-hours and estimated dollars of all trials."""
    test: dict[str, float] = field(default_factory=dict)
    """test_loss and test_acc of the best trial's model on the test split (if there is one)."""


def best_experiment(exp: Experiment, trial_config: dict[str, Any],
                    schedule_json: str | None = None) -> Experiment:
    """The winning trial as an experiment file that reruns exactly that one trial; with pbt
    (`schedule_json`: its hp_schedule) following the schedule its weights were trained with."""
    best = exp.with_trial_config(trial_config)
    schedule = lineage.schedule_experiment(schedule_json) if schedule_json else {}
    return best.with_values({"search.space": {}, "search.searcher": "random",
                             "search.scheduler": "fifo", "search.num_samples": 1,
                             "search.points_to_evaluate": [], "lr_range_test.enabled": False,
                             **schedule})




def _lr_bounds(store: tracking.Store, run_id: str) -> tuple[float, float] | None:
    metrics = store.client.get_run(run_id).data.metrics
    return (metrics["lr_range_low"], metrics["lr_range_high"]) if "lr_range_low" in metrics \
        else None


def log_costs(exp: Experiment, pricing: cost.Pricing, store: tracking.Store,
              parent_run_id: str, results: tune.ResultGrid, table: pd.DataFrame) -> cost.Totals:
    """Each child run: its wall seconds, GPU-seconds, dollars and best metric (what MLflow's
    compare view plots against the params); the parent: the sweep's totals."""
    metric = exp.search.metric
    best_by_trial = dict(zip(table.get("trial_id", []), table.get(metric, [])))
    run_ids = tracking.child_run_ids(store, parent_run_id)
    # a summary run before (stopped midway, maybe among the children): each value once
    logged = {r.data.tags.get("trial_id"): set(r.data.metrics) for r in store.client.search_runs(
        [store.experiment_id], f"tags.`{tracking.PARENT_TAG}` = '{parent_run_id}'",
        max_results=10_000)}
    costs = []
    for result in results:
        trial_cost = pricing.trial(result.metrics)
        costs.append(trial_cost)
        trial_id = result.metrics.get("trial_id")
        if trial_id in run_ids:
            values = {"trial_wall_s": trial_cost.wall_s, "gpu_s": trial_cost.gpu_s,
                      "cost_usd": trial_cost.usd}
            if trial_id in best_by_trial:
                values[f"best_{metric}"] = best_by_trial[trial_id]
            values = {k: v for k, v in values.items() if k not in logged.get(trial_id, ())}
            if values:
                tracking.log_metrics(store, run_ids[trial_id], values)
    spent = cost.totals(costs)
    tracking.log_metrics(store, parent_run_id, {"trial_hours": spent.trial_hours,
                                                "gpu_hours": spent.gpu_hours,
                                                "cost_usd": spent.usd}, once=True)
    print(f"Cost: {spent.trial_hours:.3g} trial-hours, {spent.gpu_hours:.3g} GPU-hours, "
          f"${spent.usd:.2f} estimated")
    reason = cost.over_budget(spent, exp.search.budget)
    planned = trial_count(exp.search)
    if reason is not None and len(results) < planned:
        note = f"{reason}; {len(results)} of {planned} trials started"
        store.client.set_tag(parent_run_id, "budget_stop", note)
        print(f"Budget: {note}")
    return spent


def log_insights(exp: Experiment, store: tracking.Store, parent_run_id: str,
                 table: pd.DataFrame, best: dict[str, Any], lr_bounds: tuple[float, float] | None,
                 out: Path) -> None:
    """Edge warnings (printed and tagged) and hyperparameter importance (metrics and a plot)."""
    space = exp.search.space
    for path, warning in edges.edge_warnings(best, space, lr_bounds).items():
        print(f"Warning: {warning}")
        store.client.set_tag(parent_run_id, f"edge_warning.{path}", warning)
    if not space:
        return
    shares = importance.importances(table, space, exp.search.metric, exp.seed)
    if shares is None:
        print(f"Importance: needs at least {importance.MIN_TRIALS} finished trials")
        return
    tracking.log_metrics(store, parent_run_id,
                         {f"importance_{path}": share for path, share in shares.items()},
                         once=True)
    ranked = sorted(shares.items(), key=lambda item: -item[1])
    print("Importance: " + ", ".join(f"{path} {share:.2f}" for path, share in ranked))
    tracking.log_files(store, parent_run_id,
                       [plots.importance_bars(shares, out / "importance.png")], "plots")


def surrogate_plot(results: tune.ResultGrid, out: Path) -> list[Path]:
    """The Bayesian searcher's partial-dependence plot (`skopt.plots.plot_objective`) of the
    surrogate of the grid cell that holds the best trial; none before the GP was fitted."""
    from pipeline.search.skopt_search import load_saved

    searcher = load_saved(results.experiment_path, results.filesystem)
    figure = searcher.objective_figure() if searcher is not None else None
    if figure is None:
        return []
    figure.savefig(out / "surrogate_objective.png", dpi=90, bbox_inches="tight")
    return [out / "surrogate_objective.png"]


def log_test_split(exp: Experiment, data: Any, store: tracking.Store, parent_run_id: str,
                   ckpt: Path) -> dict[str, float]:
    """The best checkpoint scored once on the test split, logged on the parent run."""
    if data is None or data.x_test is None:
        return {}
    # torch only for the built-in model: a custom trainable's driver never imports it
    import torch

    from pipeline.execution.trainable import STATE_FILE
    from pipeline.training.loop import score_test_split

    state = torch.load(ckpt / STATE_FILE, map_location="cpu", weights_only=False)
    scores = score_test_split(exp, data, state["model"])
    tracking.log_metrics(store, parent_run_id, scores, once=True)
    print(f"Test split ({len(data.y_test)} examples, the best trial's model, once): "
          f"test_loss {scores['test_loss']:.4g}, test_acc {scores['test_acc']:.4g}")
    return scores


def _register(exp: Experiment, store: tracking.Store, parent_run_id: str, ckpt: Path,
              value: float, searched: dict[str, Any], data: Any) -> None:
    from pipeline.results import registry  # torch: the built-in model's alone, as above

    note = registry.register(store, exp, parent_run_id, ckpt, value, searched, data)
    store.client.set_tag(parent_run_id, "model_registry", note)
    print(f"Model registry: {note}")


def summarise(exp: Experiment, pricing: cost.Pricing, sweep_name: str, parent_run_id: str,
              store: tracking.Store, results: tune.ResultGrid, fit_s: float,
              register: bool = True, data: Any = None) -> Outcome:
    """Log the sweep's summary on the parent run (register its best model, score it on the
    test split of `data`, the sweep's Tensors) and return it for printing."""
    s = exp.search
    # A trial that failed in an earlier session of a resumed sweep comes back without its
    # error (Tune reads it from a file the stop may have kept from storage); its run says it.
    failed = max(sum(1 for r in results if r.error is not None),
                 len(tracking.failed_trial_ids(store, parent_run_id)))
    frames = history.trial_frames(results, store, parent_run_id, s.metric)
    table = history.trials_table(frames, s)
    spent = log_costs(exp, pricing, store, parent_run_id, results, table)
    outcome = Outcome(sweep_name, parent_run_id, store, s.metric, None, None, {}, table, failed,
                      fit_s, spent)
    if table.empty or pd.isna(table.iloc[0][s.metric]):  # no trial scored a finite value
        return outcome
    best_row = table.iloc[0]
    # the table's best trial (its results may come from MLflow), not Ray's own pick: the tag,
    # best_config.yaml and the registered model must all describe the same trial
    best = next(r for r in results if r.metrics.get("trial_id") == best_row["trial_id"])
    best_value = float(best_row[s.metric])
    searched = {path: best_row[path] for path in s.space if path in best_row}
    tracking.log_metrics(store, parent_run_id, {f"best_{s.metric}": best_value,
                                                "trials_failed": failed,
                                                "trials_total": len(results),
                                                "sweep_wall_s": fit_s}, once=True)
    store.client.set_tag(parent_run_id, "best_trial_id", str(best_row["trial_id"]))
    best_exp = best_experiment(exp, best.config, best.metrics.get("hp_schedule"))
    lr_bounds = _lr_bounds(store, parent_run_id)
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder)
        table.to_csv(out / "results.csv", index=False)
        (out / "best_config.yaml").write_text(
            yaml.safe_dump(redact(best_exp.model_dump(mode="json")), sort_keys=False))
        tracking.log_files(store, parent_run_id, [out / "results.csv", out / "best_config.yaml"])
        tracking.log_files(store, parent_run_id, plots.sweep_plots(
            table, exp, out, history.history(frames, s.metric), lr_bounds), "plots")
        log_insights(exp, store, parent_run_id, table, searched, lr_bounds, out)
        if s.searcher == "bayes":
            tracking.log_files(store, parent_run_id, surrogate_plot(results, out), "plots")
        if s.scheduler == "pbt":
            plot = lineage.population_plot(lineage.population_frame(results, s.metric),
                                           s.metric, out / "pbt_population.png")
            tracking.log_files(store, parent_run_id, [plot] if plot else [], "plots")
        checkpoint = best.get_best_checkpoint(s.metric, s.mode) if best.checkpoint else None
        test: dict[str, float] = {}
        if checkpoint is not None:
            with checkpoint.as_directory() as ckpt:
                tracking.log_files(store, parent_run_id, sorted(Path(ckpt).iterdir()),
                                   "best_checkpoint")
                if exp.trainable is None:
                    test = log_test_split(best_exp, data, store, parent_run_id, Path(ckpt))
                if register and exp.trainable is None:
                    _register(best_exp, store, parent_run_id, Path(ckpt), best_value,
                              searched, data)
    if register and exp.trainable is not None:
        print("Model registry: nothing registered (a custom trainable's model is not one the "
              "pipeline can rebuild)")
    return Outcome(sweep_name, parent_run_id, store, s.metric, best_value,
                   best_exp.trial_config(), searched, table, failed, fit_s, spent, test)


def log_lr_range(store: tracking.Store, run_id: str, curve: Any, suggestion: Any,
                 folder: Path) -> list[Path]:
    """Write the LR range test's curve (CSV) and plot (PNG) to `folder` and log them, with
    each rule's suggestion as metrics, on the given run."""
    from pipeline.training import lr_range

    paths = [folder / "lr_range_test.csv", folder / "lr_range_test.png"]
    curve.to_csv(paths[0])
    lr_range.plot(curve, suggestion, paths[1])
    tracking.log_files(store, run_id, paths)
    values = {f"lr_{name}": lr for name, lr in suggestion.rules.items() if lr is not None}
    if suggestion.lr is not None:
        values["lr_suggested"] = suggestion.lr
    values["lr_agreement_decades"] = suggestion.agreement_decades
    tracking.log_metrics(store, run_id, values)
    store.client.set_tag(run_id, "lr_range_reliable", str(suggestion.reliable))
    store.client.set_tag(run_id, "lr_range_note", suggestion.reason)
    return paths


COMPARE_KIND = "compare"


def open_comparison(store: tracking.Store, exp: Experiment, searchers: list[str], budget: int,
                    seeds: int) -> str:
    """The parent run of a searcher comparison; its sweeps are nested under it."""
    run = store.client.create_run(
        store.experiment_id, run_name=f"compare-{exp.name}-{time.strftime('%Y%m%d-%H%M%S')}",
        tags={"pipeline.kind": COMPARE_KIND, "searchers": ",".join(searchers)})
    tracking.log_params(store.client, run.info.run_id, tracking.safe_params(
        {"budget": budget, "seeds": seeds, "searchers": ",".join(searchers),
         "metric": exp.search.metric, "mode": exp.search.mode}))
    return run.info.run_id


def nest(store: tracking.Store, run_id: str, parent_run_id: str) -> None:
    store.client.set_tag(run_id, tracking.PARENT_TAG, parent_run_id)


def log_comparison(store: tracking.Store, run_id: str, table: pd.DataFrame,
                   files: list[Path]) -> None:
    """The comparison's figure and table, and each searcher's median best as a metric."""
    tracking.log_files(store, run_id, files)
    medians = table.groupby("searcher")["best"].median()
    tracking.log_metrics(store, run_id, {f"median_best_{name}": float(value)
                                         for name, value in medians.items()
                                         if pd.notna(value)})
    tracking.close_sweep(store, run_id)
