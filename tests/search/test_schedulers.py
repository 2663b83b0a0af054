"""search.scheduler -> Ray's scheduler with the experiment's options; PBT's mutations come
from search.space (lr_range included) and stay inside it."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
from ray.tune.experiment import Trial
from ray.tune.schedulers import (
    HyperBandScheduler,
    MedianStoppingRule,
    PopulationBasedTraining,
)
from ray.tune.schedulers.pbt import _PBTTrialState
from ray.tune.search.sample import Float

from pipeline.config import Experiment, mutable_paths
from pipeline.search.schedulers import (
    KeepInside,
    TurnTakingPBT,
    checkpoints,
    make_scheduler,
    pbt_mutations,
)

SPACE = {"train.lr": "lr_range", "train.momentum": {"uniform": [0.8, 0.99]},
         "model.dropout": {"choice": [0.0, 0.1, 0.2]}, "model.hidden": {"choice": [8, 16]}}


def _exp(scheduler: str, **options) -> Experiment:
    return Experiment.model_validate({
        "name": "s", "train": {"epochs": 9},
        "search": {"scheduler": scheduler, "space": SPACE, **options}})


def test_pbt_mutates_only_what_may_change_mid_run() -> None:
    exp = _exp("pbt")
    assert mutable_paths(exp) == ["train.lr", "train.momentum", "model.dropout"]
    mutations, keep = pbt_mutations(SPACE, mutable_paths(exp), (1e-3, 0.3))
    assert isinstance(mutations["train"]["lr"], Float)
    assert (mutations["train"]["lr"].lower, mutations["train"]["lr"].upper) == (1e-3, 0.3)
    assert mutations["model"] == {"dropout": [0.0, 0.1, 0.2]}  # hidden would break the weights
    assert keep.bounds == {"train.lr": (1e-3, 0.3), "train.momentum": (0.8, 0.99)}


def test_perturbed_values_are_put_back_inside_their_domain() -> None:
    keep = KeepInside({"train.momentum": (0.8, 0.99), "train.lr": (1e-3, 0.3)})
    config = {"train": {"momentum": 0.99 * 1.2, "lr": 0.1}, "model": {"dropout": 0.1}}
    assert keep(config) == {"train": {"momentum": 0.99, "lr": 0.1}, "model": {"dropout": 0.1}}


def test_each_scheduler_gets_its_options() -> None:
    pbt = make_scheduler(_exp("pbt").search, 9, ["train.momentum"])
    assert isinstance(pbt, PopulationBasedTraining)
    assert (pbt._perturbation_interval, pbt._quantile_fraction, pbt._resample_probability,
            pbt._synch) == (2, 0.25, 0.25, False)
    assert make_scheduler(_exp("pbt", pbt={"synch": True}).search, 9, ["train.momentum"])._synch
    band = make_scheduler(_exp("hyperband", hyperband={"reduction_factor": 2}).search, 9)
    assert isinstance(band, HyperBandScheduler) and band._eta == 2 and band._max_t_attr == 9
    median = make_scheduler(_exp("median", median={"grace_period": 2,
                                                   "min_samples_required": 4}).search, 9)
    assert isinstance(median, MedianStoppingRule)
    assert (median._grace_period, median._min_samples_required) == (2, 4)


def test_custom_trainables_may_perturb_their_params() -> None:
    exp = Experiment.model_validate({
        "name": "c", "trainable": "tests.trainables:quadratic", "search": {
            "metric": "score", "scheduler": "pbt",
            "space": {"params.x": {"uniform": [0, 1]}, "train.lr": {"uniform": [0.1, 1]}}}})
    assert mutable_paths(exp) == ["params.x"]


@pytest.mark.parametrize("scheduler", ["asha", "fifo"])
def test_the_old_schedulers_are_unchanged(scheduler: str) -> None:
    assert type(make_scheduler(_exp(scheduler).search, 9)).__name__ in {
        "AsyncHyperBandScheduler", "FIFOScheduler"}


def test_pbt_keeps_every_checkpoint_for_the_clones() -> None:
    assert checkpoints(_exp("pbt").search).num_to_keep is None
    kept = checkpoints(_exp("hyperband").search)
    assert (kept.num_to_keep, kept.checkpoint_score_attribute) == (1, "val_loss")


def _population(statuses: str) -> tuple[TurnTakingPBT, SimpleNamespace, list[Trial]]:
    """Members in order of epochs trained (the first least): R running, P paused, L in line
    (PENDING: named to run, waiting for a worker)."""
    pbt = TurnTakingPBT(time_attr="it", metric="score", mode="max",
                        hyperparam_mutations={"x": [1, 2]})
    members = [Trial("__fake", config={}, stub=True, trial_id=str(i))
               for i in range(len(statuses))]
    for epochs, (member, status) in enumerate(zip(members, statuses)):
        member.status = {"R": Trial.RUNNING, "P": Trial.PAUSED, "L": Trial.PENDING}[status]
        pbt._trial_state[member] = _PBTTrialState(member)
        pbt._trial_state[member].last_train_time = epochs
    return pbt, SimpleNamespace(get_trials=lambda: members), members


def test_pbt_keeps_a_member_in_line_for_every_slot() -> None:
    """Tune keeps a paused member's worker only for one in line, and puts in line only the
    member the scheduler names, one per step: Ray's PBT named the least-trained again while it
    waited, so the workers of others that paused were stopped and restarted."""
    pbt, controller, members = _population("LPPPPRRRR")
    pbt._slots = 4  # seen running at once
    assert PopulationBasedTraining.choose_trial_to_run(pbt, controller) is members[0]
    assert pbt.choose_trial_to_run(controller) is members[1]  # the least-trained paused
    pbt, controller, members = _population("LLLLPPPRRR")
    pbt._slots = 4
    assert pbt.choose_trial_to_run(controller) is members[0]  # one in line a slot: the first


def test_a_freed_worker_goes_to_the_least_trained_member() -> None:
    """Named, a member takes a free worker at once: staging another then would put a more
    trained member ahead of those in line (a never-started member waited past exploits)."""
    pbt, controller, members = _population("LPPRRR")
    pbt._slots, pbt._running = 4, 4  # one of four running paused since the last step
    assert pbt.choose_trial_to_run(controller) is members[0]
    assert pbt.choose_trial_to_run(controller) is members[1]  # nothing freed since: stage one


def test_a_member_that_just_paused_does_not_take_its_worker_back_from_those_in_line() -> None:
    pbt, controller, members = _population("LLRRP")  # members[4] trained most, just paused
    pbt._slots = 4
    assert pbt.choose_trial_to_run(controller) is members[0]
    pbt, controller, members = _population("RRRP")  # none waits: it goes on
    assert pbt.choose_trial_to_run(controller) is members[3]


def test_synchronous_pbt_chooses_as_ray_s_does() -> None:
    pbt, controller, members = _population("LPPRR")
    pbt._synch = True
    pbt._next_perturbation_sync = 10
    assert pbt.choose_trial_to_run(controller) is members[0]
