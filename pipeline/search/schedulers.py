"""search.scheduler -> the Ray Tune trial scheduler that stops, pauses or perturbs trials.

Every built-in trial reports and checkpoints once per epoch, which is what each of these
needs: HyperBand resumes paused trials from their checkpoint, PBT clones the donor's latest
one (without a checkpoint per interval it silently skips the exploit, BASELINES.md).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ray.tune import CheckpointConfig
from ray.tune.schedulers import (
    ASHAScheduler,
    FIFOScheduler,
    MedianStoppingRule,
    PopulationBasedTraining,
    TrialScheduler,
)
from ray.tune.search.sample import Integer

from pipeline.config import Search, get_path, set_path
from pipeline.search.hyperband import ResumableHyperBand
from pipeline.search.space import to_domain


@dataclass(frozen=True)
class KeepInside:
    """PBT's explore step multiplies values by 0.8 or 1.2, which can leave the search space
    (a momentum of 1.1 is no momentum): put each perturbed value back inside its domain."""

    bounds: dict[str, tuple[float, float]]

    def __call__(self, config: dict[str, Any]) -> dict[str, Any]:
        for path, (low, high) in self.bounds.items():
            value = get_path(config, path)
            set_path(config, path, type(value)(min(max(value, low), high)))
        return config


def pbt_mutations(space: dict[str, Any], mutable: list[str],
                  lr_bounds: tuple[float, float] | None) -> tuple[dict[str, Any], KeepInside]:
    """Nested hyperparam_mutations from the search.space entries PBT may change (lists for
    choice/grid entries, Ray domains otherwise), and the bounds to keep them inside."""
    mutations: dict[str, Any] = {}
    bounds: dict[str, tuple[float, float]] = {}
    for path in mutable:
        spec = space[path]
        if isinstance(spec, dict) and ("choice" in spec or "grid" in spec):
            set_path(mutations, path, list(next(iter(spec.values()))))
            continue
        domain = to_domain(spec, lr_bounds)
        set_path(mutations, path, domain)
        # Ray's Integer excludes its upper bound
        bounds[path] = (domain.lower, domain.upper - isinstance(domain, Integer))
    return mutations, KeepInside(bounds)


def checkpoints(search: Search) -> CheckpointConfig:
    """The best checkpoint per trial (Tune also keeps the latest); with pbt every one: a donor
    is cloned from the checkpoint of its last perturbation, which may be neither by then."""
    if search.scheduler == "pbt":
        return CheckpointConfig(num_to_keep=None)
    return CheckpointConfig(num_to_keep=1, checkpoint_score_attribute=search.metric,
                            checkpoint_score_order=search.mode)


def make_scheduler(search: Search, epochs: int, mutable: list[str] = (),
                   lr_bounds: tuple[float, float] | None = None) -> TrialScheduler:
    """`epochs`: a trial's full length (train.epochs), max_t of ASHA and HyperBand;
    `mutable`: the search.space paths PBT may perturb (config.mutable_paths)."""
    if search.scheduler == "asha":
        return ASHAScheduler(time_attr="training_iteration", max_t=epochs,
                             grace_period=search.asha.grace_period,
                             reduction_factor=search.asha.reduction_factor)
    if search.scheduler == "hyperband":
        return ResumableHyperBand(time_attr="training_iteration", max_t=epochs,
                                  reduction_factor=search.hyperband.reduction_factor)
    if search.scheduler == "median":
        return MedianStoppingRule(time_attr="training_iteration",
                                  grace_period=search.median.grace_period,
                                  min_samples_required=search.median.min_samples_required)
    if search.scheduler == "pbt":
        mutations, keep_inside = pbt_mutations(search.space, mutable, lr_bounds)
        return PopulationBasedTraining(
            time_attr="training_iteration", hyperparam_mutations=mutations,
            perturbation_interval=search.pbt.perturbation_interval,
            quantile_fraction=search.pbt.quantile_fraction,
            resample_probability=search.pbt.resample_probability, synch=search.pbt.synch,
            custom_explore_fn=keep_inside)
    return FIFOScheduler()
