"""A sweep's context, resolved once before Ray starts: where it logs, where it keeps results,
which Ray it joins and what its trials cost.

Each of these reads the environment or a file (MLFLOW_TRACKING_URI, RAY_ADDRESS, the
autoscaler's YAML). Resolving them in one place, once, means every module below sees the same
answer, and a wrong value (an unpriced node type, a missing autoscaler file) is refused before
anything is written.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipeline.config import Experiment
from pipeline.execution import cluster, cost, storage, worker_setup
from pipeline.results import tracking


@dataclass(frozen=True)
class SweepContext:
    tracking_uri: str
    """MLflow tracking URI, a relative SQLite path made absolute."""
    mlflow_experiment: str
    """MLflow experiment name: tracking.experiment, else the experiment's name."""
    storage_path: str
    """Ray Tune's storage: an absolute folder or s3://bucket/prefix."""
    ray_address: str | None
    """Ray address to join; None: start a local Ray."""
    autoscaler: dict[str, Any]
    """The cluster's autoscaler YAML, parsed ({} when none is known)."""
    pricing: cost.Pricing

    @property
    def runtime_env(self) -> dict[str, Any]:
        """What every worker of the sweep starts with: its environment, and our setup hook
        (a SIGTERM ends it quietly; Tune's INFO lines stay in its log)."""
        return {"env_vars": cluster.worker_env(self.tracking_uri, self.mlflow_experiment),
                "worker_process_setup_hook": worker_setup.SETUP_HOOK}


def resolve(exp: Experiment) -> SweepContext:
    """Resolve the experiment's context; ConfigError for a missing autoscaler file or an
    unpriced cluster.node_type."""
    ray_address = cluster.address(exp.cluster.address)
    autoscaler = cluster.read_autoscaler_config(exp.cluster.autoscaler_config)
    pricing = cost.pricing(autoscaler, exp.cluster.node_type, exp.resources,
                           on_cluster=ray_address is not None)
    return SweepContext(
        tracking_uri=tracking.resolve_uri(exp.tracking.uri),
        mlflow_experiment=exp.tracking.experiment or exp.name,
        storage_path=storage.absolute(exp.storage.path),
        ray_address=ray_address, autoscaler=autoscaler, pricing=pricing)
