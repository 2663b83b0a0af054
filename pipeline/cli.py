"""Command line: parse, call one function, print, map failures to exit codes.

Exit 0 on success, 2 on bad input (one line on stderr naming the field or cause, no traceback),
1 on a failure at run time.
"""
from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.config import ConfigError, load

if TYPE_CHECKING:  # the registry imports torch and MLflow: only `best` needs them, at run time
    from pipeline.results.registry import Champion

EXIT_BAD_INPUT, EXIT_FAILED = 2, 1
MAX_LINE = 500  # characters of a failure's one line


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipeline",
                                     description="Tune PyTorch models with Ray Tune + MLflow.")
    commands = parser.add_subparsers(dest="command", required=True)
    tune = commands.add_parser("tune", help="run (or --resume) a sweep")
    lr_find = commands.add_parser("lr-find", help="run the LR range test alone")
    best = commands.add_parser("best", help="the registered champion model and how to load it")
    compare = commands.add_parser("compare", help="the same sweep under several searchers")
    for sub in (tune, lr_find, best, compare):
        sub.add_argument("experiment", type=Path, help="experiment YAML file")
        sub.add_argument("--set", dest="overrides", action="append", default=[],
                         metavar="KEY.PATH=VALUE", help="override a field (repeatable)")
    tune.add_argument("--resume", action="store_true",
                      help="continue the latest sweep of this experiment")
    compare.add_argument("--searchers", default="grid,random,bayes",
                         help="comma-separated searchers (default: grid,random,bayes)")
    compare.add_argument("--budget", type=int, default=None, metavar="N",
                         help="trials per sweep (default: search.num_samples)")
    compare.add_argument("--seeds", type=int, default=3, metavar="S",
                         help="sweeps per searcher, seeds seed..seed+S-1 (default: 3)")
    compare.add_argument("--figure", type=Path, default=None, metavar="PNG",
                         help="also save the comparison figure here")
    return parser


def _print_outcome(outcome, exp_file: Path, overrides: list[str]) -> int:
    """The sweep's summary; the exit code: a sweep in which no trial finished failed.
    `overrides`: the command's --set values, repeated in the reproduce line (without them it
    named another configuration)."""
    if outcome.best_config is None:
        print(f"No trial finished ({outcome.failed} failed). Sweep {outcome.sweep_name}.")
        return EXIT_FAILED
    top = outcome.table.head(5)
    print(f"\nTop trials by {outcome.metric}:\n{top.to_string(index=False)}")
    print(f"\nBest {outcome.metric}: {outcome.best_value:.4g}  (sweep took {outcome.fit_s:.0f} s)")
    for path, value in outcome.searched.items():
        print(f"  {path} = {value}")
    if outcome.test:
        print("Test split (best model, scored once): "
              + ", ".join(f"{name} {value:.4g}" for name, value in outcome.test.items()))
    if outcome.failed:
        print(f"{outcome.failed} trial(s) failed; see their MLflow runs' `error` tag.")
    store = outcome.store
    print(f"MLflow: {store.uri}  experiment {store.experiment_id}  run {outcome.parent_run_id}"
          f"  (best_config.yaml on that run; browse with `make ui`)")
    if (outcome.best_config or {}).get("train", {}).get("hyperparameter_schedule"):
        print(f"Reproduce (with the schedule PBT found): MLFLOW_TRACKING_URI={store.uri} mlflow "
              f"artifacts download -r {outcome.parent_run_id} -a best_config.yaml -d . && "
              "python -m pipeline tune best_config.yaml")
        return 0
    sets = [*overrides, "search.space={}", "search.searcher=random", "search.scheduler=fifo",
            "search.num_samples=1", *(f"{path}={value}" for path, value in outcome.searched.items())]
    print(f"Reproduce: python -m pipeline tune {shlex.quote(str(exp_file))} "
          + " ".join(f"--set {shlex.quote(text)}" for text in sets))
    return 0


def _tune(args: argparse.Namespace) -> int:
    from pipeline import study
    from pipeline.execution import sweeps
    from pipeline.execution.stopping import Interrupted

    exp = load(args.experiment, args.overrides)
    try:
        outcome = study.run(exp, args.experiment, resume=args.resume)
    except sweeps.AlreadyFinished as done:
        print(done)
        return 0
    except KeyboardInterrupt as stop:
        if args.resume and not str(stop):  # before the sweep was reopened: it is as it was
            raise Interrupted("stopped before resuming, nothing changed; run --resume again",
                              getattr(stop, "signum", signal.SIGINT)) from None
        raise
    return _print_outcome(outcome, args.experiment, args.overrides)


def _lr_find(args: argparse.Namespace) -> None:
    from pipeline import lr_stage

    exp = load(args.experiment, args.overrides)
    suggestion = lr_stage.find_lr(exp)
    trust = "" if suggestion.reliable or suggestion.lr is None else \
        f" (not to be trusted: {suggestion.reason})"
    print(f"suggested lr: {suggestion.lr if suggestion.lr is not None else 'none'}{trust}")


def _best(args: argparse.Namespace) -> None:
    from pipeline.results import registry, tracking

    exp = load(args.experiment, args.overrides)
    uri = tracking.resolve_uri(exp.tracking.uri)
    tracking.check_reachable(uri)
    tracking.check_exists(uri)
    found = registry.champion(uri, exp)
    if found is None:
        raise ConfigError(f"no {registry.ALIAS} model named {registry.model_name(exp)!r} in "
                          f"{uri}; run `python -m pipeline tune {args.experiment}` first")
    value = "unknown" if found.value is None else f"{found.value:.4g}"
    print(f"Champion: {found.name} version {found.version} ({found.uri})\n"
          f"best_{found.metric}: {value}\nsearched values: {found.searched or 'none'}\n"
          f"MLflow: {uri}  run {found.run_id}\n"
          f"Config (best_config.yaml of that run):\n{found.config_yaml.rstrip()}\n"
          f"Load it:\n  import mlflow\n  mlflow.set_tracking_uri({uri!r})\n"
          f"  model = mlflow.pytorch.load_model({found.uri!r}).eval()\n"
          f"  logits = model(x)  # x: float32 tensor shaped like the input example"
          + _class_lines(found))


def _class_lines(found: Champion, shown: int = 20) -> str:
    """The class of each output (the version's `classes` tag), and how to name a prediction."""
    classes = found.classes
    if not classes:
        return ""
    listed = ", ".join(f"{i} {name}" for i, name in enumerate(classes[:shown]))
    more = f", ... ({len(classes) - shown} more)" if len(classes) > shown else ""
    return (f"\n  version = mlflow.MlflowClient().get_model_version_by_alias({found.name!r}, "
            f"{found.uri.rsplit('@', 1)[1]!r})\n"
            f"  classes = json.loads(version.tags['classes'])  # import json\n"
            f"  predicted = [classes[i] for i in logits.argmax(1)]\n"
            f"Classes (output index, name): {listed}{more}")


def _compare(args: argparse.Namespace) -> None:
    from pipeline import compare

    exp = load(args.experiment, args.overrides)
    budget = exp.search.num_samples if args.budget is None else args.budget
    if budget < 1 or args.seeds < 1:
        raise ConfigError("--budget and --seeds: must be at least 1")
    searchers = [s.strip() for s in args.searchers.split(",") if s.strip()]
    done = compare.run(exp, args.experiment, searchers, budget, args.seeds, args.figure)
    print(f"\nSearchers compared on {exp.search.metric} ({exp.search.mode}), {budget} trials "
          f"per sweep, {args.seeds} seed(s):")
    stats = done.table.groupby("searcher", sort=False).agg(
        median_best=("best", "median"), best=("best", "min" if exp.search.mode == "min"
                                              else "max"),
        median_wall_s=("sweep_wall_s", "median"), trial_hours=("trial_hours", "sum"))
    print(stats.to_string(float_format=lambda v: f"{v:.4g}"))
    print(f"MLflow run {done.run_id} (compare.png, compare.csv)"
          + (f"; figure also at {done.figure}" if done.figure else ""))


COMMANDS = {"tune": _tune, "lr-find": _lr_find, "best": _best, "compare": _compare}


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # `best`: a tqdm bar
    args = _parser().parse_args(argv)
    try:
        code = COMMANDS[args.command](args)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt as error:  # also stopping.Interrupted, after SIGTERM or SIGHUP too
        print(f"interrupted: {str(error) or 'stopped before anything was saved'}", file=sys.stderr)
        return getattr(error, "exit_code", 130)
    except Exception as error:  # a run-time failure: one line, the traceback is in Ray's logs
        print(f"failed: {_what_failed(error)}", file=sys.stderr)
        return EXIT_FAILED
    return code or 0


def _what_failed(error: Exception) -> str:
    """`Type: message`, one line. Ray's errors can carry a whole traceback as their message
    (`TuneError: Traceback (most recent call last): ...`); what failed is its last exception
    line, the last one not indented."""
    lines = [line for line in str(error).splitlines() if line.strip()]
    if lines and lines[0].startswith("Traceback"):
        return [line for line in lines if not line[0].isspace()][-1][:MAX_LINE]
    return f"{type(error).__name__}: {lines[0] if lines else ''}"[:MAX_LINE]
