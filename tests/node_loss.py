"""`python -m pipeline tune ...` on a head and two worker nodes (ray.cluster_utils.Cluster), one
of which is killed while a trial runs on it.

test_reliability.py runs it in its own process (the session's local Ray must not be the one the
sweep joins). A watcher thread waits for a trial to report its second step, then removes that
trial's node without warning; the node's id is printed on the last line.
"""
from __future__ import annotations

import os
import sys
import threading
import time

from mlflow.tracking import MlflowClient
from ray.cluster_utils import Cluster

from pipeline.cli import main
from tests.two_node_cluster import joined_cluster


def kill_busy_node(cluster: Cluster, uri: str, killed: list[str]) -> None:
    client = MlflowClient(uri)
    while not killed:
        time.sleep(0.5)
        try:
            runs = client.search_runs(client.search_experiments()[0].experiment_id)
        except Exception:  # the store is not there yet
            continue
        for run in runs:
            if run.data.metrics.get("step_seen", 0) >= 2 and "node_id" in run.data.tags:
                node = next(n for n in cluster.worker_nodes
                            if n.node_id == run.data.tags["node_id"])
                cluster.remove_node(node, allow_graceful=False)
                killed.append(node.node_id)
                return


def run(argv: list[str]) -> int:
    killed: list[str] = []
    # The head runs the driver only: every trial lands on a worker node.
    with joined_cluster(0, num_cpus=1) as cluster:
        watcher = threading.Thread(target=kill_busy_node, daemon=True,
                                   args=(cluster, f"sqlite:///{os.getcwd()}/mlflow.db", killed))
        watcher.start()
        code = main(argv)
        print(killed[0] if killed else "no node killed")
        return code


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
