"""search.scheduler -> the Ray Tune trial scheduler that stops, pauses or perturbs trials.

Every built-in trial reports and checkpoints once per epoch, which is what each of these
needs: HyperBand resumes paused trials from their checkpoint, PBT clones the donor's latest
one (without a checkpoint per interval it silently skips the exploit, BASELINES.md).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ray.tune import CheckpointConfig
from ray.tune.experiment import Trial
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


class TurnTakingPBT(PopulationBasedTraining):
    """PBT whose members take turns on the slots without losing their workers.

    With more members than slots a member pauses after each perturbation interval to let a
    waiting one run. Tune (2.60) puts one waiting member in line per step of its loop (the
    one this method names; it gets a free worker at once if there is one), and keeps a
    paused member's worker for reuse only while a member is in line for it; otherwise it
    stops that worker and starts another later. Ray's PBT names the least-trained member,
    which stays the one in line until it runs, so workers were stopped and restarted and most
    of a 16-member sweep on 4 slots ran on one (`make bench ARGS=journal`: 41-48 s; 12-17 s
    with this). So: when a worker has freed since the last step, the least-trained member
    (Ray's choice, it takes that worker); otherwise one more paused member in line, least-
    trained first, up to one per slot, so the next workers to free are kept. A member that
    just paused is not put back in line while others wait in it (it took its own worker
    back). Synch mode: Ray's."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._running = 0  # members running at the last call
        self._slots = 1  # the most seen running at once (fewer run while workers restart)

    def choose_trial_to_run(self, tune_controller: Any) -> Trial | None:
        if self._synch:
            return super().choose_trial_to_run(tune_controller)
        trials = tune_controller.get_trials()
        waiting = sorted((t for t in trials if t.status in (Trial.PENDING, Trial.PAUSED)),
                         key=lambda t: self._trial_state[t].last_train_time)
        in_line = sum(t.status == Trial.PENDING for t in waiting)
        paused = [t for t in waiting if t.status == Trial.PAUSED]
        running = sum(t.status == Trial.RUNNING for t in trials)
        freed, self._running = running < self._running, running
        self._slots = max(self._slots, running)
        if (not freed and paused and in_line < self._slots
                and (len(paused) > 1 or not in_line)):
            return paused[0]
        return waiting[0] if waiting else None


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
        return TurnTakingPBT(
            time_attr="training_iteration", hyperparam_mutations=mutations,
            perturbation_interval=search.pbt.perturbation_interval,
            quantile_fraction=search.pbt.quantile_fraction,
            resample_probability=search.pbt.resample_probability, synch=search.pbt.synch,
            custom_explore_fn=keep_inside)
    return FIFOScheduler()
