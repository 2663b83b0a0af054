"""`python -m tests.soak_stops [--seeds 12] [--first 0]`: the kill matrix's sweeps stopped at
random moments instead of chosen ones, again and again.

Per seed: one sweep shape (seed mod the shapes: the kill matrix's, and `test_schedulers`'
sweeps under ASHA, the median rule, HyperBand and PBT), started, then up to
`--stops` times stopped after a random delay by a random signal (SIGKILL to the process group
as a lost machine, SIGTERM to the driver as a container stop, Ctrl-C to the group as a
terminal) and resumed (or started again, while no sweep exists yet), then run to the end and
checked as the kill matrix checks one resume (`resumes_as_if_never_stopped`), or for the
stopping rules: the same trials stopped at the same step as in a sweep never stopped. It prints one
JSON line per seed. Minutes per seed, so it is not part of `make test`; it is how the stops in
a sweep's first seconds were found (README, "What a stop costs").
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import tempfile
import time
from pathlib import Path

from mlflow.tracking import MlflowClient

from .conftest import local_store, write_experiment
from .sweep_process import Cli, child_runs
from .test_kill_matrix import TRIALS, Case, resumes_as_if_never_stopped, sweep_file
from .test_schedulers import (
    BAND_ENDS,
    KILLED_BAND,
    KILLED_MEDIAN,
    KILLED_RUNGS,
    PBT,
    STEPS_UNSTOPPED,
    band_ends,
    steps_by_x,
)


def whole_population() -> bool:
    runs = child_runs()
    return len(runs) == 4 and all(r.info.status == "FINISHED" and r.data.metrics["epoch"] == 8
                                  for r in runs)


SHAPES = [("bayes", 2, "builtin"), ("random", 2, "custom"), ("bayes", 1, "custom"),
          ("random", 2, "builtin-lr"), "asha", "median", "hyperband", "pbt"]
STOPPING = {"asha": (KILLED_RUNGS, lambda: steps_by_x() == STEPS_UNSTOPPED),
            "median": (KILLED_MEDIAN, lambda: steps_by_x() == STEPS_UNSTOPPED),
            "hyperband": (KILLED_BAND, lambda: band_ends() == BAND_ENDS),
            "pbt": (PBT.format(name="rel", epochs=8), whole_population)}
"""Sweeps under a scheduler, and what they end with when never stopped (PBT's exploits are
random: its population, each member to the last epoch, in one run each)."""
SIGNALS = [(signal.SIGKILL, True), (signal.SIGKILL, True), (signal.SIGTERM, False),
           (signal.SIGINT, True)]


def reports(run, case: Case) -> list:
    """The metric history of a kill-matrix trial's run."""
    metric = "step_seen" if case.trainable == "custom" else "val_loss"
    return MlflowClient(local_store()).get_metric_history(run.info.run_id, metric)


def sweep_started(workdir: Path) -> bool:
    """Whether the store has the sweep's parent run (so the next start is a --resume); no
    store is created to find out."""
    if not (workdir / "mlflow.db").exists():
        return False
    client = MlflowClient(local_store())
    experiment = client.get_experiment_by_name("rel")
    return experiment is not None and bool(client.search_runs([experiment.experiment_id]))


def soak(workdir: Path, seed: int, stops: int, max_delay_s: float) -> dict:
    rng = random.Random(seed)
    shape = SHAPES[seed % len(SHAPES)]
    os.chdir(workdir)  # the tests' helpers read the store of the current folder
    if shape in STOPPING:
        exp_file = write_experiment(workdir, STOPPING[shape][0])
    else:
        case = Case(*shape, moment="soak", when=lambda _: True)
        exp_file = sweep_file(workdir, case)
    log, exists = [], False
    finished: dict[str, int] = {}  # trial id -> its reports when first seen finished
    for _ in range(stops):
        cli = Cli(workdir, str(exp_file), *(["--resume"] if exists else []))
        delay_s = rng.uniform(0.3, max_delay_s)
        signum, group = rng.choice(SIGNALS)
        deadline = time.monotonic() + delay_s
        while time.monotonic() < deadline and cli.running():
            time.sleep(0.02)
        if cli.running():
            cli.signal(signum, group)
        code, _, err = cli.finish()
        log.append([round(delay_s, 2), signal.Signals(signum).name, code,
                    (err.strip().splitlines() or [""])[-1][:200]])
        exists = exists or sweep_started(workdir)
        if code == 0:
            break
        if exists and shape not in STOPPING:  # a finished trial must not run again (one
            # running at a stop may: a custom trainable without checkpoints starts it again)
            for run in child_runs():
                if run.info.status == "FINISHED":
                    finished.setdefault(run.data.tags["trial_id"], len(reports(run, case)))
    try:
        if shape in STOPPING:
            code, _, err = Cli(workdir, str(exp_file), *(["--resume"] if exists else [])).finish()
            assert code == 0, err[-1500:]
            assert STOPPING[shape][1](), "the sweep ended otherwise than one never stopped"
        elif exists:
            # the strict check (steps 1, 2, 3 once each) for those that had not started again
            # before they finished; for all: no report after they were seen finished
            resumes_as_if_never_stopped(workdir, exp_file, case,
                                        {t for t, n in finished.items() if n == 3})
            runs = {r.data.tags["trial_id"]: r for r in child_runs()}
            again = {t: len(reports(runs[t], case)) for t in finished
                     if len(reports(runs[t], case)) != finished[t]}
            assert not again, f"finished trials that reported again: {again}"
        else:
            code, _, err = Cli(workdir, str(exp_file)).finish()
            assert code == 0, err[-1500:]
            assert [r.info.status for r in child_runs()] == ["FINISHED"] * TRIALS
        verdict = "ok"
    except AssertionError as error:
        verdict = f"FAILED: {str(error)[:1500]}"
    return {"seed": seed, "case": shape if shape in STOPPING else str(case), "verdict": verdict,
            "stops": log}


def main() -> None:
    parser = argparse.ArgumentParser(prog="tests.soak_stops", description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=12)
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--stops", type=int, default=4)
    parser.add_argument("--max-delay", type=float, default=20.0,
                        help="seconds; a sweep here takes ~10 s to start and ~20 s in all")
    args = parser.parse_args()
    # a background job starts with SIGINT ignored, and its children would inherit that
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for seed in range(args.first, args.first + args.seeds):
        workdir = Path(tempfile.mkdtemp(prefix=f"soak{seed}-"))
        result = soak(workdir, seed, args.stops, args.max_delay)
        if result["verdict"] == "ok":
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            result["kept"] = str(workdir)  # its files, CLI output included, for a look
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
