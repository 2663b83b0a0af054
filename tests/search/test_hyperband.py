"""ResumableHyperBand: a snapshot of its brackets, pickled and loaded into a fresh scheduler that
gets the restored trials (new Trial objects, in another order), gives the same brackets back."""
from __future__ import annotations

import pickle

from ray.tune.experiment import Trial

from pipeline.search.hyperband import ResumableHyperBand

IDS = [f"t{i}" for i in range(6)]


def scheduler() -> ResumableHyperBand:
    return ResumableHyperBand(time_attr="training_iteration", metric="score", mode="max",
                              max_t=4, reduction_factor=2)


def test_a_restored_scheduler_puts_every_trial_back_in_its_bracket() -> None:
    before = scheduler()
    trials = {tid: Trial("__fake", stub=True, trial_id=tid) for tid in IDS}
    for trial in trials.values():  # t0-t2: a bracket running to 4; t3-t5: one halved at 2
        before.on_trial_add(None, trial)
    before.on_trial_result(None, trials["t0"], {"training_iteration": 2, "score": 0.5})
    before.on_trial_result(None, trials["t3"], {"training_iteration": 1, "score": 0.1})
    # t4 reaches the milestone (2) first: it waits (paused) for t3 and t5
    assert before.on_trial_result(None, trials["t4"],
                                  {"training_iteration": 2, "score": 0.9}) == "PAUSE"
    before._trial_info[trials["t5"]][0].cleanup_trial(trials["t5"])  # halved away
    saved = pickle.loads(pickle.dumps(before.snapshot()))

    after = scheduler()
    after.load_snapshot(saved)
    restored = {tid: Trial("__fake", stub=True, trial_id=tid) for tid in reversed(IDS)}
    for trial in restored.values():  # as Tune requeues unfinished trials: PENDING
        after.on_trial_add(None, trial)
    assert after.snapshot() == before.snapshot()
    assert {tid: t.status for tid, t in restored.items()} == {
        "t0": "PENDING", "t1": "PENDING", "t2": "PENDING", "t3": "PENDING",
        "t4": "PAUSED",   # waits at its milestone again
        "t5": "PAUSED"}   # left the bracket before the kill: stopped on the first pick
    bracket, _ = after._trial_info[restored["t4"]]
    assert restored["t4"] in bracket.current_trials()
    assert trials["t4"] not in bracket.current_trials()


def test_a_plain_add_still_fills_new_brackets() -> None:
    fresh = scheduler()
    for tid in IDS:
        fresh.on_trial_add(None, Trial("__fake", stub=True, trial_id=tid))
    sizes = [len(b["all"]) for band in fresh.snapshot()["bands"] for b in band if b]
    assert sizes == [3, 3]
