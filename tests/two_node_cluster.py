"""`python -m pipeline tune ...` against a Ray cluster of a head and two worker nodes with one
(fake) GPU each, all on this machine (ray.cluster_utils.Cluster).

test_cluster.py runs it in its own process: the test session's local Ray must not be the one
the sweep joins. After the sweep it prints, as JSON on the last line, the environment a task on
a GPU node sees, to check what the driver passed to the workers.
"""
from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import ray
from ray.cluster_utils import Cluster

from pipeline.cli import main

WORKER_ENV_KEYS = ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME")


@ray.remote(num_gpus=0.5)
def worker_env() -> dict[str, str | None]:
    return {**{key: os.environ.get(key) for key in WORKER_ENV_KEYS},
            "unraisablehook": sys.unraisablehook.__module__}


@contextmanager
def joined_cluster(head_cpus: float, **worker: float) -> Iterator[Cluster]:
    """A head and two worker nodes on this machine, with RAY_ADDRESS pointing the CLI at it."""
    cluster = Cluster(initialize_head=True,
                      head_node_args={"num_cpus": head_cpus, "include_dashboard": False})
    try:
        for _ in range(2):
            cluster.add_node(**worker)
        cluster.wait_for_nodes()
        os.environ["RAY_ADDRESS"] = cluster.address
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()


def run(argv: list[str]) -> int:
    with joined_cluster(1, num_cpus=1, num_gpus=1):
        code = main(argv)
        print(json.dumps(ray.get(worker_env.remote())))
        return code


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
