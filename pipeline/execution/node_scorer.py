"""How the cluster's autoscaler picks a node type: spot first, on-demand when spot fails.

Ray's default scorer ignores failed launches and breaks ties between equally good node types
by name, so a spot type whose capacity ran out would be retried while trials wait. Ray lets the
head load another scorer (cluster/aws.yaml starts it with
RAY_AUTOSCALER_UTILIZATION_SCORER=pipeline.execution.node_scorer.prefer_spot). This one skips a
node type whose last launch failed (Ray's availability tracker keeps that for a while), and among types
that fit the demand equally well prefers spot. Which types are spot is read from the
autoscaler's YAML, the copy `ray up` leaves on the head.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from ray.autoscaler._private.resource_demand_scheduler import _default_utilization_scorer

BOOTSTRAP_CONFIG = Path("~/ray_bootstrap_config.yaml")


def spot_types(config: dict[str, Any]) -> frozenset[str]:
    """Node types of a cluster YAML whose instances are requested on the spot market."""
    return frozenset(
        name for name, node_type in config.get("available_node_types", {}).items()
        if node_type.get("node_config", {}).get("InstanceMarketOptions", {})
        .get("MarketType") == "spot")


@lru_cache(maxsize=1)
def _cluster_spot_types() -> frozenset[str]:
    path = BOOTSTRAP_CONFIG.expanduser()
    return spot_types(yaml.safe_load(path.read_text())) if path.is_file() else frozenset()


def prefer_spot(node_resources: dict[str, float], resources: list[dict[str, float]],
                node_type: str, *, node_availability_summary: Any) -> tuple | None:
    """Ray's default score with spot as the last tie-breaker; None (never launch) for a node
    type whose recent launch failed, so the next best type, its on-demand twin, is chosen."""
    record = node_availability_summary.node_availabilities.get(node_type)
    if record is not None and not record.is_available:
        return None
    score = _default_utilization_scorer(node_resources, resources, node_type,
                                        node_availability_summary=node_availability_summary)
    if score is None:
        return None
    return (*score, node_type in _cluster_spot_types())
