"""Held-out check: the Bayesian defaults on test functions that played no part in choosing
them (`bench.problems.HELD_OUT`: Levy, Griewank, Michalewicz, six-hump camel, Goldstein-Price,
Dixon-Price, Eggholder, Powell, a scaled bowl), against skopt's `gp_minimize` defaults and
random search. Defaults fitted to the 16-problem suite would show it here first.

    .venv/bin/python -m bench.bayes_heldout [--seeds 8] [--workers 2]

Jobs are cached in bench/results/bayes_heldout.jsonl as in `bench.bayes_suite` (a cold run:
about 20 minutes on 2 cores, mostly skopt); the table goes to bench/results/bayes_heldout.md.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from bench.bayes_suite import RESULTS, run_jobs, table
from bench.problems import HELD_OUT
from pipeline.config import Bayes

STORE = RESULTS / "bayes_heldout.jsonl"
ARMS = [("ours c=1", "ours", 1), ("skopt", "skopt", 1), ("random", "random", 1)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench.bayes_heldout",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--store", type=Path, default=STORE)
    args = parser.parse_args(argv or [])
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # BLAS threads oversubscribe 2 cores
    options, seeds, names = Bayes(), range(args.seeds), [p.name for p in HELD_OUT]
    jobs = [(method, c, name, seed, options if method == "ours" else None)
            for seed in seeds for name in names for _, method, c in ARMS]
    rows = run_jobs(jobs, args.store, args.workers, fresh=False)
    lines, _ = table(rows, names, seeds, options, ARMS)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.store == STORE:
        (RESULTS / "bayes_heldout.md").write_text(
            f"# Held-out problems\n\n{args.seeds} seeds; median [min–max] final regret "
            f"(`python -m bench.bayes_heldout`).\n\n{text}")


if __name__ == "__main__":
    main(sys.argv[1:])
