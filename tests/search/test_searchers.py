"""search.searcher -> Tune's search algorithm: the Bayesian searcher's imports, started early."""
from __future__ import annotations

import subprocess
import sys

from ..conftest import ROOT

LOADS = """
import sys, threading
from pipeline.config import Search
from pipeline.search import searchers

searchers.import_meanwhile(Search.model_validate({searcher_options}))
for thread in threading.enumerate():
    if thread.name == "searcher-import":
        thread.join()
print("skopt" in sys.modules)
"""


def loads_skopt(searcher_options: dict) -> bool:
    done = subprocess.run([sys.executable, "-c", LOADS.format(searcher_options=searcher_options)],
                          capture_output=True, text=True, timeout=120, check=True, cwd=ROOT)
    return done.stdout.strip() == "True"


def test_a_bayes_sweep_imports_its_searcher_while_ray_starts_and_others_do_not() -> None:
    """scikit-optimize takes a second to import: it loads on a thread while Ray starts, and
    only for the searcher that uses it."""
    space = {"space": {"train.lr": {"loguniform": [1e-3, 0.1]}}}
    assert loads_skopt({"searcher": "bayes", **space})
    assert not loads_skopt({"searcher": "random", **space})
