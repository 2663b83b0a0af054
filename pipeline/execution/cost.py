"""What trials cost: trial-hours, GPU-hours and an estimate in dollars.

Prices are per node and hour, kept with the cluster they describe: the autoscaler YAML's
`metadata.prices_usd_per_hour: {node_type: {on_demand: ..., spot: ...}}` (Ray ignores
`metadata`). A node type requested on the spot market is billed at its spot price, any other at
its on-demand price. A trial pays for its share of a node, the larger of its CPU and GPU
fractions, for as long as it ran. The head node, idle workers and storage are not counted: the
estimate is what the trials themselves used, which is what the searchers compete on.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pipeline.config import Budget, ConfigError, Resources
from pipeline.execution.node_scorer import spot_types

LOCAL = "local"  # this machine: free


@dataclass(frozen=True)
class NodePrice:
    """One node type: its hourly price and the resources a trial takes a share of."""

    usd_per_h: float
    cpu: float = 0.0
    """CPUs of the node; 0: unknown (a trial then pays for the whole node)."""
    gpu: float = 0.0
    spot: bool = False


FREE = NodePrice(0.0)


@dataclass(frozen=True)
class TrialCost:
    wall_s: float
    gpu_s: float
    """GPUs held x wall seconds (a trial on half a GPU for an hour: 1800)."""
    usd: float


@dataclass(frozen=True)
class Totals:
    trial_hours: float
    gpu_hours: float
    usd: float


def price_table(cluster_config: dict[str, Any]) -> dict[str, NodePrice]:
    """Node types of an autoscaler YAML that have a price -> their price; `local` is free."""
    prices = (cluster_config.get("metadata") or {}).get("prices_usd_per_hour") or {}
    spot = spot_types(cluster_config)
    table = {LOCAL: FREE}
    for name, node_type in (cluster_config.get("available_node_types") or {}).items():
        if name in prices:
            resources = node_type.get("resources") or {}
            market = "spot" if name in spot else "on_demand"
            table[name] = NodePrice(float(prices[name][market]), float(resources.get("CPU", 0)),
                                    float(resources.get("GPU", 0)), name in spot)
    return table


def share(cpu: float, gpu: float, node: NodePrice) -> float:
    """The part of a node a trial holds: its larger fraction of CPUs or GPUs, at most 1."""
    fractions = [need / have for need, have in ((cpu, node.cpu), (gpu, node.gpu)) if have > 0]
    return min(1.0, max(fractions)) if fractions else 1.0


def trial_cost(wall_s: float, cpu: float, gpu: float, node: NodePrice) -> TrialCost:
    return TrialCost(wall_s, gpu * wall_s, wall_s / 3600 * node.usd_per_h * share(cpu, gpu, node))


def totals(costs: Iterable[TrialCost]) -> Totals:
    costs = list(costs)
    return Totals(sum(c.wall_s for c in costs) / 3600, sum(c.gpu_s for c in costs) / 3600,
                  sum(c.usd for c in costs))


def over_budget(spent: Totals, budget: Budget) -> str | None:
    """Which limit the spending has reached (one line), or None while within budget."""
    if budget.usd is not None and spent.usd >= budget.usd:
        return f"budget.usd: ${spent.usd:.4g} of ${budget.usd:.4g} spent"
    if budget.hours is not None and spent.trial_hours >= budget.hours:
        return f"budget.hours: {spent.trial_hours:.4g} of {budget.hours:.4g} trial-hours spent"
    return None


def match_node_type(resources: dict[str, float], table: dict[str, NodePrice]) -> str | None:
    """The priced node type with exactly these CPU and GPU counts; spot first (the autoscaler
    prefers spot, pipeline.execution.node_scorer), then the cheapest."""
    found = [(not price.spot, price.usd_per_h, name) for name, price in table.items()
             if name != LOCAL and price.cpu == resources.get("CPU", 0)
             and price.gpu == resources.get("GPU", 0)]
    return min(found)[2] if found else None


class Pricing:
    """The price each trial pays, by the node it ran on (Ray reports its `node_ip`)."""

    def __init__(self, table: dict[str, NodePrice], node_type: str | None, on_cluster: bool,
                 cpu: float, gpu: float):
        self.table, self.node_type, self.on_cluster = table, node_type, on_cluster
        self.cpu, self.gpu = cpu, gpu
        self._by_ip: dict[str, NodePrice] = {}

    @property
    def free(self) -> bool:
        """Whether every trial is priced at $0 (a local Ray without a node type to bill at)."""
        if self.node_type is not None:
            return self.table[self.node_type].usd_per_h == 0
        return not self.on_cluster

    def node(self, node_ip: str | None) -> NodePrice:
        if self.node_type is not None:
            return self.table[self.node_type]
        if not self.on_cluster or node_ip is None:
            return FREE
        if node_ip not in self._by_ip:
            import ray

            for node in ray.nodes():
                name = match_node_type(node["Resources"], self.table)
                self._by_ip[node["NodeManagerAddress"]] = self.table.get(name, FREE)
        return self._by_ip.get(node_ip, FREE)

    def trial(self, result: dict[str, Any]) -> TrialCost:
        """The cost of a trial so far, from its last reported result."""
        wall_s = float(result.get("time_total_s") or 0.0)
        return trial_cost(wall_s, self.cpu, self.gpu, self.node(result.get("node_ip")))


def pricing(autoscaler: dict[str, Any], node_type: str | None, resources: Resources,
            on_cluster: bool) -> Pricing:
    """Trials' pricing from the autoscaler YAML's price table; ConfigError when
    cluster.node_type has no price there."""
    table = price_table(autoscaler)
    if node_type is not None and node_type not in table:
        raise ConfigError(f"cluster.node_type: {node_type!r} has no price in "
                          f"{'the cluster config' if autoscaler else 'any cluster config'} "
                          f"(priced: {', '.join(sorted(table))})")
    return Pricing(table, node_type, on_cluster, resources.cpu, resources.gpu)
