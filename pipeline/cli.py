"""Command line: parse, call one function, print, map failures to exit codes.

Exit 0 on success, 2 on bad input (one line on stderr naming the field or cause, no traceback),
1 on a failure at run time.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from pipeline.config import ConfigError, load

EXIT_BAD_INPUT, EXIT_FAILED = 2, 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipeline",
                                     description="Tune PyTorch models with Ray Tune + MLflow.")
    commands = parser.add_subparsers(dest="command", required=True)
    tune = commands.add_parser("tune", help="run (or --resume) a sweep")
    lr_find = commands.add_parser("lr-find", help="run the LR range test alone")
    for sub in (tune, lr_find):
        sub.add_argument("experiment", type=Path, help="experiment YAML file")
        sub.add_argument("--set", dest="overrides", action="append", default=[],
                         metavar="KEY.PATH=VALUE", help="override a field (repeatable)")
    tune.add_argument("--resume", action="store_true",
                      help="continue the latest sweep of this experiment")
    return parser


def _print_outcome(outcome, exp_file: Path) -> None:
    if outcome.best_config is None:
        print(f"No trial finished ({outcome.failed} failed). Sweep {outcome.sweep_name}.")
        return
    top = outcome.table.head(5)
    print(f"\nTop trials by {outcome.metric}:\n{top.to_string(index=False)}")
    print(f"\nBest {outcome.metric}: {outcome.best_value:.4g}  (sweep took {outcome.fit_s:.0f} s)")
    for path, value in outcome.searched.items():
        print(f"  {path} = {value}")
    if outcome.failed:
        print(f"{outcome.failed} trial(s) failed; see their MLflow runs' `error` tag.")
    store = outcome.store
    print(f"MLflow: {store.uri}  experiment {store.experiment_id}  run {outcome.parent_run_id}"
          f"  (best_config.yaml on that run; browse with `make ui`)")
    sets = " ".join(f"--set {path}={value}" for path, value in outcome.searched.items())
    print(f"Reproduce: python -m pipeline tune {exp_file} --set search.space={{}} "
          f"--set search.searcher=random --set search.num_samples=1 {sets}".rstrip())


def _tune(args: argparse.Namespace) -> None:
    from pipeline import study

    exp = load(args.experiment, args.overrides)
    _print_outcome(study.run(exp, args.experiment, resume=args.resume), args.experiment)


def _lr_find(args: argparse.Namespace) -> None:
    from pipeline import study

    exp = load(args.experiment, args.overrides)
    suggestion = study.find_lr(exp)
    print(f"suggested lr: {suggestion.lr if suggestion.lr is not None else 'none'}")


COMMANDS = {"tune": _tune, "lr-find": _lr_find}


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    args = _parser().parse_args(argv)
    try:
        COMMANDS[args.command](args)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt as error:  # also study.Interrupted
        print(f"interrupted: {str(error) or 'continue the sweep with --resume'}", file=sys.stderr)
        return 130
    except Exception as error:  # a run-time failure: one line, the traceback is in Ray's logs
        print(f"failed: {type(error).__name__}: {error}".splitlines()[0], file=sys.stderr)
        return EXIT_FAILED
    return 0
