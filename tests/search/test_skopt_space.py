"""Ray domains <-> skopt dimensions, and nested configs <-> flat dotted paths."""
from __future__ import annotations

import pytest
from ray import tune
from skopt.space import Categorical, Integer, Real

from pipeline.search.skopt_space import decode, encode, flatten, nest, to_dimension

CHOICES = ["relu", ["gelu", 0.5], None]  # a choice may hold any object, even unhashable


def test_domains_map_to_skopt_dimensions_with_ray_bounds():
    log_real = to_dimension("train.lr", tune.loguniform(1e-4, 1e-1))
    assert isinstance(log_real, Real) and log_real.prior == "log-uniform"
    assert (log_real.low, log_real.high, log_real.name) == (1e-4, 1e-1, "train.lr")
    assert to_dimension("m", tune.uniform(0.8, 0.99)).prior == "uniform"
    integer = to_dimension("h", tune.randint(16, 20))  # Ray excludes 20, skopt includes high
    assert isinstance(integer, Integer) and (integer.low, integer.high) == (16, 19)
    assert isinstance(to_dimension("a", tune.choice(CHOICES)), Categorical)
    with pytest.raises(TypeError, match="Quantized"):
        to_dimension("q", tune.quniform(0, 1, 0.1))


def test_choices_that_print_alike_are_refused():
    with pytest.raises(ValueError, match="do not print distinctly"):
        to_dimension("a", tune.choice([1, "1"]))


@pytest.mark.parametrize(("domain", "value", "kind"), [
    (tune.loguniform(1e-4, 1e-1), 3e-3, float), (tune.uniform(0.0, 1.0), 0.25, float),
    (tune.randint(16, 20), 17, int), (tune.choice(CHOICES), ["gelu", 0.5], list),
    (tune.choice(CHOICES), None, type(None))])
def test_values_round_trip_with_their_python_type(domain, value, kind):
    dim = to_dimension("p", domain)
    choices = list(domain.categories) if isinstance(dim, Categorical) else None
    encoded = encode(dim, value, choices)
    assert encoded in dim  # a point skopt accepts
    decoded = decode(dim, encoded, choices)
    assert decoded == value and type(decoded) is kind
    if choices is not None:  # the trial gets a copy, never the space's own object
        assert decoded is not value or value is None


def test_nest_inverts_flatten_and_keeps_grid_and_empty_leaves():
    tree = {"seed": 0, "train": {"lr": 0.1, "sched": {"kind": "cosine"}},
            "model": {"dropout": {"grid_search": [0.0, 0.5]}, "extra": {}}}
    flat = flatten(tree)
    assert flat == {"seed": 0, "train.lr": 0.1, "train.sched.kind": "cosine",
                    "model.dropout": {"grid_search": [0.0, 0.5]}, "model.extra": {}}
    assert nest(flat) == tree
