"""search.scheduler -> the Ray Tune trial scheduler that stops (or pauses) trials."""
from __future__ import annotations

from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler

from pipeline.config import Search


def make_scheduler(search: Search, epochs: int) -> TrialScheduler:
    """`epochs`: a trial's full length (train.epochs), ASHA's max_t."""
    if search.scheduler == "asha":
        return ASHAScheduler(time_attr="training_iteration", max_t=epochs,
                             grace_period=search.asha.grace_period,
                             reduction_factor=search.asha.reduction_factor)
    return FIFOScheduler()
