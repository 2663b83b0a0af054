"""The only orchestration: data, MLflow, Ray, the LR stage, the Tuner, the sweep's summary.

Everything is checked before Ray starts where it can be (config, data, trainable, tracking), so
bad input costs seconds and leaves nothing behind.
"""
from __future__ import annotations

import importlib
import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import ray
from ray import tune
from ray.tune.error import TuneError

from pipeline import context
from pipeline.config import ConfigError, Experiment, mutable_paths, with_absolute_paths
from pipeline.config.domains import domain_values
from pipeline.context import SweepContext
from pipeline.execution import (
    budget,
    cluster,
    held_deletions,
    journal,
    result_files,
    stopping,
    storage,
    sweep_lock,
)
from pipeline.execution.placement import with_placement
from pipeline.execution.progress import Progress
from pipeline.execution.sweeps import SWEEP_TAG, NothingToResume, Sweep, locate
from pipeline.results import history, report, store_schema, tracking
from pipeline.results.sweep_logger import SweepLogger
from pipeline.search import searchers
from pipeline.search.schedulers import checkpoints, make_scheduler
from pipeline.search.space import to_tune, trial_count

# The built-in trainable's parts (its data, models, LR stage and trial) import torch: they are
# imported where a built-in sweep uses them, so a custom trainable's driver never loads torch
# (1.6 s of every sweep's start here).
if TYPE_CHECKING:
    from pipeline.training import data as datasets

FIT_SESSION_METRIC = "fit_session_s"  # Tuner.fit seconds of one driver session of the sweep


def load_checked(exp: Experiment) -> datasets.Tensors:
    """The sweep's data, decoded once, and every model it will train built once on it: bad
    data, an unknown arch, weights that do not fit or too small an image fail here, before
    Ray starts. The models: the configured one (the LR range test trains it) and each pairing
    of a searched model.arch and model.weights value the search may draw, each also in
    training mode at the smallest data.batch_size the sweep uses."""
    from pipeline.training import data as datasets
    from pipeline.training import models

    data = datasets.load(exp.data, exp.seed)
    print(f"Data: {data.source}")

    def searched(path: str) -> list:  # an interval's ends, a list's members
        domain = exp.search.space.get(path)
        return domain_values(domain) if domain else []

    configured = (exp.model.arch, exp.model.weights)
    pairs = [configured, *((arch, weights)
                           for arch in searched("model.arch") or [exp.model.arch]
                           for weights in searched("model.weights") or [exp.model.weights])]
    batch_size = int(min([exp.data.batch_size, *searched("data.batch_size")]))
    for arch, weights in dict.fromkeys(pairs):  # each pairing once
        models.check(exp.model.model_copy(update={"arch": arch, "weights": weights}),
                     data.input_shape, data.num_classes, batch_size)
    return data


def init_ray(ctx: SweepContext) -> None:
    """Join RAY_ADDRESS / cluster.address when given, else start a local Ray."""
    history.quiet_missing_files()  # before Tuner.restore, which reads the trials' files too
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # Keeping only the best checkpoint forces a state snapshot per epoch; that is cheap here
    # and the warning about it would repeat every few seconds.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    # Ray 2.60's new output engine prints its experiment box and TensorBoard hint even at
    # verbose=0; the legacy engine is silent there, and our progress lines say it all.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # Ray 2.60 warns at each local start that token authentication is on: it stays on, quietly
    logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(
        logging.ERROR)
    if not ray.is_initialized():
        with stopping.ray_starting():  # our stop handlers kept; out of the terminal's group
            ray.init(address=ctx.ray_address, include_dashboard=False, logging_level="WARNING",
                     runtime_env=ctx.runtime_env)


def make_trainable(exp: Experiment, data: datasets.Tensors | None) -> Callable:
    if exp.trainable is None:
        from pipeline.execution.trainable import share, train_trial

        # the test split stays with the driver: trials never see it
        fn = tune.with_parameters(with_placement(train_trial), exp=exp,
                                  data=share(replace(data, x_test=None, y_test=None)))
    else:
        module, _, attr = exp.trainable.partition(":")
        fn = with_placement(getattr(importlib.import_module(module), attr))
    return tune.with_resources(fn, {"cpu": exp.resources.cpu, "gpu": exp.resources.gpu})


def _tuner(exp: Experiment, ctx: SweepContext, sweep: Sweep, trainable: Callable,
           callbacks: list, lr_bounds: tuple[float, float] | None, resume: bool) -> tune.Tuner:
    if resume:
        # The callbacks come back with the pickled run config, the SweepLogger's unsent
        # records with the journal's snapshot; SweepLogger.setup finds the child runs again.
        path, filesystem = storage.tune_location(sweep.path)
        journal.restore(*storage.filesystem(sweep.path))
        # A trial that failed (its retries, search.max_failures, spent) stays failed: resumed,
        # it ran again from its last checkpoint with a fresh retry budget, and a flaky failure
        # became a FINISHED trial. One stopped midway is unfinished, not errored.
        return tune.Tuner.restore(path, trainable, resume_unfinished=True,
                                  resume_errored=False, storage_filesystem=filesystem)
    s = exp.search
    storage_path, filesystem = storage.tune_location(sweep.storage_path)
    search_alg, param_space = searchers.make_search(s, to_tune(exp, lr_bounds), exp.seed)
    search_alg, guards = budget.guard(s.budget, search_alg, ctx.pricing)
    # Tune repeats a param_space grid num_samples times, but a Searcher's num_samples counts
    # all its trials: bayes crosses the grid itself, so it gets the total
    num_samples = trial_count(s) if s.searcher == "bayes" else s.num_samples
    return tune.Tuner(
        trainable,
        param_space=param_space,
        tune_config=tune.TuneConfig(
            metric=s.metric, mode=s.mode, num_samples=num_samples, search_alg=search_alg,
            scheduler=make_scheduler(s, exp.train.epochs, mutable_paths(exp), lr_bounds),
            # a fresh actor per trial costs ~2 s here (BASELINES.md); reuse them
            reuse_actors=True),
        run_config=tune.RunConfig(
            name=sweep.name, storage_path=storage_path, storage_filesystem=filesystem,
            callbacks=[*callbacks, *guards, *result_files.callbacks()],
            failure_config=tune.FailureConfig(max_failures=s.max_failures),
            checkpoint_config=checkpoints(s),
            verbose=0),  # pipeline.execution.progress prints instead
    )


def _open(exp: Experiment, store: tracking.Store, sweep: Sweep, exp_file: Path | None,
          tags: dict[str, str]) -> Sweep:
    """A new sweep's parent run (with `tags`), or a resumed sweep's marked running again."""
    if sweep.parent_run_id is None:
        parent = tracking.open_sweep(store, exp, sweep.name, exp_file, {
            SWEEP_TAG: sweep.name, "storage_path": sweep.storage_path, **tags})
        return Sweep(sweep.name, sweep.storage_path, parent)
    store.client.update_run(sweep.parent_run_id, status="RUNNING")
    tracking.record_sweep_config(store, sweep.parent_run_id, exp, exp_file)
    if sweep.restorable:
        print(f"Resuming sweep {sweep.name} (MLflow run {sweep.parent_run_id})")
    else:  # it starts again, LR stage and all, in the same run
        print(f"Resuming sweep {sweep.name} (MLflow run {sweep.parent_run_id}): it stopped "
              "before its first trial was saved, so it starts again")
    return sweep


def run(exp: Experiment, exp_file: Path | None = None, resume: bool = False,
        register: bool = True, tags: dict[str, str] | None = None) -> report.Outcome:
    """Run (or resume) one sweep end to end and return its summary; `register`: put the best
    model in the MLflow registry (the searcher comparison leaves it out); `tags`: on a new
    sweep's parent run. A stop at any moment after its parent run exists leaves that run
    KILLED, for --resume."""
    # SIGTERM/SIGHUP stop it as Ctrl-C does from the first moment, Ray's start included
    with stopping.signals_interrupt() as signals:
        # Cheap checks first: nothing is written and no run is opened until they all pass.
        data = load_checked(exp) if exp.trainable is None else None
        ctx = context.resolve(exp)
        cluster.check_tracking(ctx.ray_address, ctx.tracking_uri)
        storage.check(ctx.storage_path)
        tracking.check_reachable(ctx.tracking_uri)
        if resume:  # no store yet: nothing to resume (connecting made an empty one)
            try:
                tracking.check_exists(ctx.tracking_uri)
            except ConfigError as missing:
                raise NothingToResume(f"--resume: no earlier sweep of {exp.name!r} "
                                      f"({missing})") from None
        exp = with_absolute_paths(exp)  # for trials, which run in folders of their own
        searchers.import_meanwhile(exp.search)
        with store_schema.built_meanwhile(ctx.tracking_uri):  # kept only if these pass
            init_ray(ctx)
            cluster.check_resources(exp.resources, ctx.autoscaler, ctx.ray_address)
        store = tracking.connect(ctx.tracking_uri, ctx.mlflow_experiment, ctx.storage_path)
        sweep = locate(exp, ctx, store, resume)
        with sweep_lock.held(sweep.name, sweep.path):
            sweep, outcome = _drive(exp, exp_file, ctx, store, sweep, data, register,
                                    tags or {}, signals)
    tracking.close_sweep(store, sweep.parent_run_id,
                         "FINISHED" if outcome.best_config is not None else "FAILED")
    return outcome


def _drive(exp: Experiment, exp_file: Path | None, ctx: SweepContext, store: tracking.Store,
           sweep: Sweep, data: datasets.Tensors | None, register: bool, tags: dict[str, str],
           signals: list[int]) -> tuple[Sweep, report.Outcome]:
    """The located sweep, run by the one driver holding it: its parent run opened (or
    reopened) and the sweep; a stop or failure closes the run KILLED or FAILED."""
    if sweep.parent_run_id is not None:
        tracking.check_unchanged(store, sweep.parent_run_id, sweep.name, exp)
    sweep = _open(exp, store, sweep, exp_file, tags)
    try:
        outcome = _sweep(exp, ctx, store, sweep, data, register)
        stopping.raise_if_stopped(signals)  # one that landed in a finaliser on the way
    except KeyboardInterrupt as stop:
        tracking.close_sweep(store, sweep.parent_run_id, "KILLED")
        raise stopping.Interrupted(
            f"sweep {sweep.name} stopped before it finished; continue it with "
            "--resume", getattr(stop, "signum", (signals or [signal.SIGINT])[0])) from None
    except BaseException:
        tracking.close_sweep(store, sweep.parent_run_id, "FAILED")
        raise
    return sweep, outcome


def _sweep(exp: Experiment, ctx: SweepContext, store: tracking.Store, sweep: Sweep,
           data: datasets.Tensors | None, register: bool) -> report.Outcome:
    """The LR stage (of a sweep not restored), the Tuner's fit and the summary."""
    lr_bounds = None
    if exp.lr_range_test.enabled and data is not None and not sweep.restorable:
        from pipeline import lr_stage

        exp, lr_bounds = lr_stage.run(exp, data, store, sweep.parent_run_id)
    trials = trial_count(exp.search)
    print(f"Sweep {sweep.name}: {exp.search.searcher} search, {trials} trial(s), results in "
          f"{sweep.path}")
    saver = journal.Journal()
    logger = SweepLogger(store, sweep.parent_run_id, saver)
    progress = Progress(exp.search.metric, exp.search.mode, list(exp.search.space), trials)
    # the journal first: the logger sends what it has saved
    tuner = _tuner(exp, ctx, sweep, make_trainable(exp, data), [saver, logger, progress],
                   lr_bounds, sweep.restorable)
    started = time.perf_counter()
    with held_deletions.held():  # until the journal no longer names them
        try:
            results, signum = stopping.fit_until_signal(tuner)
        except TuneError as error:
            explained = _metric_not_reported(error, exp.search.metric)
            if explained is None:
                raise
            raise explained from None
    # each session's fit time, kept: a resumed sweep's wall time is all its sessions', where
    # it was the last session's alone (0.08 s for a resume of a finished sweep)
    tracking.log_metrics(store, sweep.parent_run_id,
                         {FIT_SESSION_METRIC: time.perf_counter() - started})
    if signum is not None:
        raise stopping.Interrupted("", signum)
    fit_s = sum(m.value for m in store.client.get_metric_history(sweep.parent_run_id,
                                                                  FIT_SESSION_METRIC))
    return report.summarise(exp, ctx.pricing, sweep.name, sweep.parent_run_id, store, results,
                            fit_s, register, data)


def _metric_not_reported(error: TuneError, metric: str) -> ConfigError | None:
    """Tune stops the sweep when a trial reports without the searched metric (a custom
    trainable's other name for it), with a whole traceback and the result's every field as
    its message: one line instead, naming the field."""
    if "did not include the specified metric" not in str(error):
        return None
    return ConfigError(f"search.metric: a trial's report lacked {metric!r}; every "
                       f"tune.report needs it (tune.report({{{metric!r}: ...}}), each step), "
                       "or set search.metric to a metric the trainable always reports")
