"""Cost maths and the price table: hand-made numbers in, exact numbers out."""
from __future__ import annotations

import pytest

from pipeline.config import Budget, ConfigError
from pipeline.execution import cost

from ..conftest import write_experiment

CLUSTER = {
    "available_node_types": {
        "head": {"resources": {"CPU": 2}, "node_config": {"InstanceType": "m5.xlarge"}},
        "gpu_spot": {"resources": {"CPU": 4, "GPU": 1},
                     "node_config": {"InstanceMarketOptions": {"MarketType": "spot"}}},
        "gpu_on_demand": {"resources": {"CPU": 4, "GPU": 1}, "node_config": {}},
        "unpriced": {"resources": {"CPU": 8}, "node_config": {}},
    },
    "metadata": {"prices_usd_per_hour": {
        "head": {"on_demand": 0.2, "spot": 0.1},
        "gpu_spot": {"on_demand": 1.0, "spot": 0.4},
        "gpu_on_demand": {"on_demand": 1.0, "spot": 0.4},
    }},
}


def test_price_table_bills_spot_types_at_spot_prices() -> None:
    table = cost.price_table(CLUSTER)
    assert table == {
        "local": cost.FREE,
        "head": cost.NodePrice(0.2, cpu=2, gpu=0, spot=False),
        "gpu_spot": cost.NodePrice(0.4, cpu=4, gpu=1, spot=True),
        "gpu_on_demand": cost.NodePrice(1.0, cpu=4, gpu=1, spot=False),
    }


def test_a_trial_pays_its_larger_share_of_the_node() -> None:
    node = cost.NodePrice(2.0, cpu=4, gpu=1)
    assert cost.share(1, 0, node) == 0.25
    assert cost.share(1, 0.5, node) == 0.5
    assert cost.share(8, 0, node) == 1.0
    assert cost.share(1, 0, cost.NodePrice(2.0)) == 1.0  # resources unknown: the whole node
    trial = cost.trial_cost(3600.0, cpu=1, gpu=0.5, node=node)
    assert trial == cost.TrialCost(wall_s=3600.0, gpu_s=1800.0, usd=1.0)


def test_totals_and_budget() -> None:
    spent = cost.totals([cost.TrialCost(1800, 900, 0.5), cost.TrialCost(5400, 0, 1.5)])
    assert spent == cost.Totals(trial_hours=2.0, gpu_hours=0.25, usd=2.0)
    assert cost.over_budget(spent, Budget()) is None
    assert cost.over_budget(spent, Budget(usd=3.0, hours=3.0)) is None
    assert cost.over_budget(spent, Budget(usd=2.0)) == "budget.usd: $2 of $2 spent"
    assert cost.over_budget(spent, Budget(hours=1.5)) == \
        "budget.hours: 2 of 1.5 trial-hours spent"


def test_budget_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="greater than 0"):
        Budget(usd=0)


def test_a_node_is_matched_to_the_spot_type_first() -> None:
    table = cost.price_table(CLUSTER)
    assert cost.match_node_type({"CPU": 4.0, "GPU": 1.0, "memory": 1e9}, table) == "gpu_spot"
    assert cost.match_node_type({"CPU": 2.0}, table) == "head"
    assert cost.match_node_type({"CPU": 16.0}, table) is None


def test_pricing_reads_the_cluster_config_and_refuses_an_unpriced_node_type(workdir) -> None:
    import yaml

    from pipeline.config import load
    from pipeline.context import resolve

    (workdir / "cluster.yaml").write_text(yaml.safe_dump(CLUSTER))
    base = "name: c\ncluster: {autoscaler_config: cluster.yaml, node_type: %s}\n"
    pricing = resolve(load(write_experiment(workdir, base % "gpu_spot"))).pricing
    assert pricing.trial({"time_total_s": 7200.0, "node_ip": "10.0.0.1"}) == \
        cost.TrialCost(7200.0, 0.0, 0.2)  # 2 h x $0.40 x a quarter of the CPUs
    assert not pricing.free
    with pytest.raises(ConfigError, match="cluster.node_type: 'unpriced' has no price"):
        resolve(load(write_experiment(workdir, base % "unpriced")))
    assert resolve(load(write_experiment(workdir, "name: c\n"))).pricing.free
