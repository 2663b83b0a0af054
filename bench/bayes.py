"""`make bench ARGS=bayes`: the Bayesian searcher on the suite, on the clock, and at scale.

1. `bench.bayes_suite`: 16 problems x 10 seeds, ours at c=1 and c=4 against skopt's
   `gp_minimize` defaults, random search and Optuna's GPSampler (c=1, c=4) and TPESampler.
   The seeded baselines are cached in bench/results/bayes_suite.jsonl: a cold run computes
   them (about 2 hours on 2 cores), later runs only our own rows.
2. `bench.time_to_quality`: regret against simulated wall-clock time at c=1, 4 and 16.
3. `bench.bayes_scale`: searcher seconds per suggestion at 500 observations / 16 pending,
   and a 300-trial sweep at c=16 through the pipeline, bayes against random and plain Tune.
4. `bench.bayes_heldout`: 9 test functions that played no part in choosing the defaults,
   against skopt's defaults and random search (cached like the suite).
The pipeline sweeps on Branin/Hartmann6 (MLflow included) are `make bench ARGS=bayes_pipeline`.
"""
from __future__ import annotations

import sys

from bench import bayes_heldout, bayes_scale, bayes_suite, time_to_quality


def main(argv: list[str] | None = None) -> None:
    bayes_suite.main([])
    time_to_quality.main([])
    bayes_scale.main([])
    bayes_heldout.main([])


if __name__ == "__main__":
    main(sys.argv[1:])
