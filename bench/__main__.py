"""`python -m bench [NAME ...]`: run the named benchmarks (default: all), each writing
bench/results/NAME.md."""
from __future__ import annotations

import importlib
import sys

BENCHMARKS = ["overhead", "journal", "reuse", "lr_range", "lr_bounds", "bayes", "bayes_pipeline",
              "schedulers"]

names = sys.argv[1:] or BENCHMARKS
unknown = set(names) - set(BENCHMARKS)
if unknown:
    sys.exit(f"unknown benchmark(s) {sorted(unknown)}; choose from {BENCHMARKS}")
for name in names:
    print(f"== {name}", flush=True)
    importlib.import_module(f"bench.{name}").main()
