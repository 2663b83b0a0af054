"""Schedulers end to end through real Ray and MLflow: PBT's exploits copy weights and are
visible, its best config replays the schedule, HyperBand resumes paused trials from their
checkpoints, the median rule stops, a killed PBT sweep resumes with its lineage and a killed
ASHA sweep with its rungs."""
from __future__ import annotations

import json
import shlex
import signal
from pathlib import Path

import pytest
import torch
import yaml
from mlflow.tracking import MlflowClient

from pipeline import cli, study
from pipeline.config import load, validate
from pipeline.results.report import best_experiment
from pipeline.training.data import load as load_data
from pipeline.training.loop import fit

from .conftest import local_store, write_experiment
from .test_reliability import Cli, child_runs, parent_run, wait_for

PBT = """
name: {name}
data: {{limit: 300, batch_size: 32}}
model: {{hidden: 16}}
train: {{epochs: {epochs}}}
search:
  searcher: random
  scheduler: pbt
  num_samples: 4
  pbt: {{perturbation_interval: 1, quantile_fraction: 0.5}}
  space:
    train.lr: {{loguniform: [1.0e-3, 0.3]}}
    model.dropout: {{uniform: [0.0, 0.2]}}
"""


def history(client: MlflowClient, run_id: str, key: str) -> dict[int, float]:
    """Metric by step; the last value where a step repeats (a clone redoing an epoch)."""
    return {m.step: m.value for m in sorted(client.get_metric_history(run_id, key),
                                            key=lambda m: m.timestamp)}


def exploits(run) -> list[dict]:
    return [json.loads(v) for k, v in run.data.tags.items() if k.startswith("pbt.exploit.")]


def states(folder: Path, trial_id: str, epoch: int) -> list[dict]:
    """The training states a trial checkpointed after `epoch` epochs (PBT keeps them all; a
    trial that was itself cloned may have trained that epoch twice)."""
    found = [torch.load(path, weights_only=False)
             for path in folder.glob(f"ray_results/*/*_{trial_id}_*/checkpoint_*/state.pt")]
    return [state for state in found if state["epoch"] == epoch]


@pytest.mark.slow
def test_pbt_exploits_copy_weights_are_tagged_and_the_best_config_replays(
        workdir: Path, ray_local, capsys) -> None:
    exp_file = write_experiment(workdir, PBT.format(name="pbt", epochs=4))
    outcome = study.run(load(exp_file), exp_file)
    data = load_data(load(exp_file).data, 0)
    torch.set_num_threads(1)  # as in the trials (resources.cpu: 1)
    client = MlflowClient(local_store())
    kids = {k.data.tags["trial_id"]: k for k in child_runs(name="pbt")}
    cloned = [(kid, record) for kid in kids.values() for record in exploits(kid)]
    assert cloned, "no exploit happened"
    for kid, record in cloned:
        donor = kids[record["cloned_trial"]]
        assert record["cloned_run"] == donor.info.run_id
        t = record["at_epoch"]
        assert history(client, kid.info.run_id, "cloned_at_epoch")[t + 1] == t
        # the weights came from the donor's checkpoint: the clone's schedule so far is the
        # donor's (its first stretch at the donor's starting lr, not the clone's own)
        clone_lrs = history(client, kid.info.run_id, "hp.train.lr")
        assert clone_lrs[t + 1] == pytest.approx(record["values"]["train.lr"])
        assert float(donor.data.params["train.lr"]) != float(kid.data.params["train.lr"])
        # ... and its first loss after the exploit is exactly one epoch, with the clone's
        # values, on from one of the donor's epoch-t checkpoints; not what one epoch from
        # scratch with those values gives
        after = history(client, kid.info.run_id, "val_loss")[t + 1]
        values = load(exp_file).with_values(record["values"])
        continued = [next(iter(fit(values, data, state=state))).metrics["val_loss"]
                     for state in states(workdir, record["cloned_trial"], t)]
        assert after in [pytest.approx(loss, rel=1e-4) for loss in continued], (after, continued)
        scratch = values.with_values({"train.epochs": 1})
        from_scratch = next(iter(fit(scratch, data))).metrics["val_loss"]
        assert after != pytest.approx(from_scratch, rel=1e-3)
    # a clone's schedule (its lineage, tagged), rerun alone, gives the clone's weights
    kid, record = max(cloned, key=lambda c: c[1]["at_epoch"])
    replay = best_experiment(load(exp_file), load(exp_file).trial_config(),
                             kid.data.tags["pbt.schedule"])
    rerun = [e.metrics for e in fit(replay, load_data(replay.data, 0))]
    t = record["at_epoch"] + 1
    assert rerun[t - 1]["val_loss"] == pytest.approx(
        history(client, kid.info.run_id, "val_loss")[t], rel=1e-4)
    parent = outcome.parent_run_id
    assert "plots/pbt_population.png" in {
        a.path for a in client.list_artifacts(parent, "plots")}

    # best_config.yaml holds the best trial's schedule; rerun, it trains with exactly it
    best = yaml.safe_load(Path(client.download_artifacts(
        parent, "best_config.yaml", str(workdir))).read_text())
    assert best["search"]["scheduler"] == "fifo" and best["search"]["space"] == {}
    best_run = kids[client.get_run(parent).data.tags["best_trial_id"]]
    steps = best["train"]["hyperparameter_schedule"]
    assert bool(steps) == bool(exploits(best_run))
    lrs = [best["train"]["lr"]] * 4
    for step in steps:
        lrs[step["epoch"]:] = [step["values"].get("train.lr", lrs[step["epoch"]])] * (
            4 - step["epoch"])
    rerun = [e.metrics for e in fit(validate(best), load_data(validate(best).data, 0))]
    assert [m["lr"] for m in rerun] == pytest.approx(lrs)
    assert rerun[-1]["lr"] == pytest.approx(history(client, best_run.info.run_id, "lr")[4])
    final = history(client, best_run.info.run_id, "val_loss")[4]
    assert rerun[-1]["val_loss"] == pytest.approx(final, rel=1e-4)

    # the CLI's reproduce line is one that runs: best_config.yaml with a schedule, else --sets
    cli._print_outcome(outcome, exp_file, [])
    line = capsys.readouterr().out.strip().splitlines()[-1]
    if steps:
        assert line.endswith("python -m pipeline tune best_config.yaml")
    else:
        sets = shlex.split(line)[line.split().index(str(exp_file)) + 1:]
        assert load(exp_file, sets[1::2]).search.scheduler == "fifo"


@pytest.mark.slow
def test_synchronous_pbt_exploits_at_the_same_epochs_from_better_trials(
        workdir: Path, ray_local) -> None:
    """synch: every member reaches the interval, then the worst half clones the best half."""
    exp_file = write_experiment(workdir, PBT.format(name="synch", epochs=2).replace(
        "quantile_fraction: 0.5}", "quantile_fraction: 0.5, synch: true}"))
    assert load(exp_file).search.pbt.synch
    study.run(load(exp_file), exp_file)
    client = MlflowClient(local_store())
    kids = {k.data.tags["trial_id"]: k for k in child_runs(name="synch")}
    cloned = [(kid, record) for kid in kids.values() for record in exploits(kid)]
    assert cloned, "no exploit happened"
    for kid, record in cloned:
        donor, t = kids[record["cloned_trial"]], record["at_epoch"]
        assert record["cloned_run"] == donor.info.run_id and t == 1
        assert history(client, kid.info.run_id, "cloned_at_epoch")[t + 1] == t
        own = history(client, kid.info.run_id, "val_loss")
        assert len(client.get_metric_history(kid.info.run_id, "val_loss")) == 2  # none redone
        assert history(client, donor.info.run_id, "val_loss")[t] < own[t]


BAND = """
name: {name}
data: {{batch_size: 32}}
model: {{arch: cnn, channels: 8, hidden: 32}}
train: {{epochs: 4}}
search:
  searcher: random
  scheduler: hyperband
  num_samples: 6
  max_concurrent: 2
  hyperband: {{reduction_factor: 2}}
  space:
    train.lr: {{loguniform: [1.0e-3, 0.3]}}
"""


@pytest.mark.slow
def test_hyperband_pauses_trials_and_resumes_them_from_their_checkpoints(
        workdir: Path, ray_local) -> None:
    exp_file = write_experiment(workdir, BAND.format(name="band"))
    study.run(load(exp_file), exp_file)
    client = MlflowClient(local_store())
    resumed, stopped = 0, 0
    for kid in child_runs(name="band"):
        val = client.get_metric_history(kid.info.run_id, "val_loss")
        assert len({m.step for m in val}) == len(val)  # no epoch trained twice
        for m in client.get_metric_history(kid.info.run_id, "restored_from_epoch"):
            assert m.value == m.step - 1  # continued where it paused, not from epoch 0
            resumed += 1
        stopped += kid.data.metrics["epoch"] < 4
    assert resumed > 0, "hyperband paused no trial"
    assert stopped > 0, "hyperband stopped no trial"


@pytest.mark.slow
def test_the_median_rule_stops_trials_worse_than_the_median(workdir: Path, ray_local) -> None:
    """One trial at a time, in grid order: the two good trials have finished when the bad ones
    pass the grace period, so the rule has its two samples, whatever the load."""
    exp_file = write_experiment(workdir, """
name: median
trainable: tests.trainables:learning_curve
params: {level: 0.0, steps: 6, step_s: 0.05}
search:
  searcher: grid
  num_samples: 1
  scheduler: median
  metric: loss
  mode: min
  max_concurrent: 1
  median: {grace_period: 2, min_samples_required: 2}
  space:
    params.level: {grid: [0.0, 0.1, 5.0, 6.0]}
""")
    study.run(load(exp_file), exp_file)
    assert len(child_runs(name="median")) == 4
    steps = {float(k.data.params["params.level"]): k.data.metrics["step_seen"]
             for k in child_runs(name="median")}
    assert steps == {0.0: 6, 0.1: 6, 5.0: 2, 6.0: 2}  # stopped at the grace period


@pytest.mark.slow
def test_a_killed_pbt_sweep_resumes_its_population_and_lineage(workdir: Path) -> None:
    exp_file = write_experiment(workdir, PBT.format(name="rel", epochs=8))
    first = Cli(workdir, str(exp_file))
    wait_for(lambda: any(exploits(r) for r in child_runs()), timeout_s=240,
             every_s=0.2, while_running=first)
    first.signal(signal.SIGKILL)
    first.finish()
    before = {r.data.tags["trial_id"]: (r.info.run_id, exploits(r)) for r in child_runs()}
    assert max(r.data.metrics.get("epoch", 0) for r in child_runs()) < 8, "finished too soon"

    code, _, err = Cli(workdir, str(exp_file), "--resume").finish()
    assert code == 0, err[-3000:]
    runs = {r.data.tags["trial_id"]: r for r in child_runs()}
    assert set(runs) == set(before)  # the same population, the same child runs
    for trial_id, (run_id, tagged) in before.items():
        run = runs[trial_id]
        assert run.info.run_id == run_id and run.info.status == "FINISHED"
        assert run.data.metrics["epoch"] == 8
        assert all(record in exploits(run) for record in tagged), (trial_id, tagged, exploits(run))  # lineage kept
    assert parent_run().info.status == "FINISHED"
    client = MlflowClient(local_store())
    assert "plots/pbt_population.png" in {
        a.path for a in client.list_artifacts(parent_run().info.run_id, "plots")}


KILLED_BAND = """
name: rel
trainable: tests.trainables:slow_steps
params: {x: 0.0, steps: 4, step_s: 0.8}
train: {epochs: 4}
search:
  searcher: random
  scheduler: hyperband
  metric: score
  mode: max
  num_samples: 6
  hyperband: {reduction_factor: 2}
  space:
    params.x: {uniform: [0.0, 1.0]}
"""


BAND_ENDS = [2, 4, 4, 4, 4, 4]
"""max_t 4, eta 2: a bracket of three running to 4, and one of three halved at 2, so one
trial stops there."""


@pytest.mark.slow
def test_a_killed_hyperband_sweep_resumes_its_brackets(workdir: Path) -> None:
    """Killed once a trial has finished and others wait at a milestone: resumed, every trial
    ends where its bracket says (BAND_ENDS), with no step run twice."""
    exp_file = write_experiment(workdir, KILLED_BAND)
    first = Cli(workdir, str(exp_file))
    wait_for(lambda: any(r.info.status == "FINISHED" for r in child_runs()), timeout_s=240,
             every_s=0.1, while_running=first)
    first.signal(signal.SIGKILL)
    first.finish()
    before = {r.data.tags["trial_id"]: r.info.run_id for r in child_runs()}
    assert any(r.info.status != "FINISHED" for r in child_runs()), "finished too soon"

    code, _, err = Cli(workdir, str(exp_file), "--resume").finish(timeout_s=180)
    assert code == 0, err[-3000:]
    runs = {r.data.tags["trial_id"]: r for r in child_runs()}
    assert all(runs[t].info.run_id == run_id for t, run_id in before.items())
    assert band_ends() == BAND_ENDS
    assert parent_run().info.status == "FINISHED"


BAND_ENDING_DONE = KILLED_BAND.replace("step_s: 0.8}", "step_s: 0.2, done_x: 0.5}").replace(
    "searcher: random", "searcher: grid").replace(
    "num_samples: 6", "num_samples: 1").replace(
    "params.x: {uniform: [0.0, 1.0]}", "params.x: {grid: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]}") + \
    "resources: {cpu: 2}\n"
"""One trial at a time, in grid order. The bracket (0.4, 0.5, 0.6) halved at 2 keeps 0.5, which
waits there paused, and 0.6, which goes on to max_t and waits there; 0.5's last report then
arrives as its end."""


@pytest.mark.slow
def test_hyperband_stops_a_trial_waiting_at_max_t_when_the_last_one_ends_there(
        workdir: Path) -> None:
    """Ray processes a bracket on the last report at its milestone, but a report that comes
    as the trial's end goes to on_trial_complete, which does not: the trial waiting at max_t
    stayed paused and the sweep hung (found by the soak, after a resume)."""
    exp_file = write_experiment(workdir, BAND_ENDING_DONE)
    code, _, err = Cli(workdir, str(exp_file)).finish(timeout_s=150)
    assert code == 0, err[-3000:]
    assert band_ends() == BAND_ENDS


def band_ends() -> list[int]:
    """The steps each trial of KILLED_BAND ran, in order; every run finished, none twice."""
    client = MlflowClient(local_store())
    runs = child_runs()
    assert len(runs) == 6 and all(r.info.status == "FINISHED" for r in runs)
    ends = []
    for run in runs:
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "step_seen")]
        assert sorted(steps) == list(range(1, len(steps) + 1)), steps  # none twice
        ends.append(len(steps))
    return sorted(ends)


KILLED_RUNGS = """
name: rel
trainable: tests.trainables:slow_steps
params: {x: 0.0, steps: 4, step_s: 0.3}
train: {epochs: 4}
search:
  searcher: grid
  scheduler: asha
  metric: score
  mode: max
  num_samples: 1
  max_concurrent: 1
  asha: {grace_period: 1, reduction_factor: 2}
  space:
    params.x: {grid: [0.5, 0.9, 0.1, 0.05, 0.2, 0.8]}
"""
"""One trial at a time in grid order, scoring x + step: ASHA lets 0.5 and 0.9 run, stops 0.1,
0.05 and 0.2 at their first report (below the median of the first reports before them), and
lets 0.8 run (above it). Rungs that forgot the first trials' reports let the next ones run.
The median rule decides the same on this sweep (KILLED_MEDIAN: `python -m tests.soak_stops`
stops it at random moments; its saved state: test_scheduler_state)."""
KILLED_MEDIAN = KILLED_RUNGS.replace("scheduler: asha", "scheduler: median").replace(
    "asha: {grace_period: 1, reduction_factor: 2}",
    "median: {grace_period: 1, min_samples_required: 2}")
STEPS_UNSTOPPED = {0.5: 4, 0.9: 4, 0.1: 1, 0.05: 1, 0.2: 1, 0.8: 4}


def steps_by_x() -> dict[float, int]:
    """The steps each trial of KILLED_RUNGS ran, by x; every run finished, no step twice."""
    client = MlflowClient(local_store())
    ran = {}
    runs = child_runs()
    assert len(runs) == len(STEPS_UNSTOPPED)
    for run in runs:
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "step_seen")]
        assert sorted(steps) == list(range(1, len(steps) + 1)), steps  # none twice
        assert run.info.status == "FINISHED"
        ran[float(run.data.params["params.x"])] = len(steps)
    return ran


@pytest.mark.slow
def test_a_kill_while_a_median_stop_waits_for_the_trial_s_save_resumes(workdir: Path) -> None:
    """The median rule stops a trial at a report that carries a checkpoint; Tune carries the
    stop out once that save lands, a step or more later. A snapshot in between held the rule's
    decision and the trial still running: resumed, the trial ran again and the rule failed
    (`assert not self._hard_stop`, found by the soak). Killed right then, the resumed sweep
    ends as one never stopped."""
    exp_file = write_experiment(workdir, KILLED_MEDIAN)
    code, _, err = Cli(workdir, str(exp_file), module="tests.kill_at",
                       env={"KILL_AT": "scheduler-stop-pending"}).finish(timeout_s=180)
    assert code == -signal.SIGKILL, err[-3000:]  # it died at the moment, not after the sweep
    code, _, err = Cli(workdir, str(exp_file), "--resume").finish(timeout_s=180)
    assert code == 0, err[-3000:]
    assert steps_by_x() == STEPS_UNSTOPPED


@pytest.mark.slow
def test_a_killed_asha_sweep_keeps_its_rungs(workdir: Path) -> None:
    """Killed once the two trials that set the bar have finished: resumed, ASHA stops the
    same trials as in a sweep never stopped, and no step runs twice."""
    exp_file = write_experiment(workdir, KILLED_RUNGS)
    first = Cli(workdir, str(exp_file))
    wait_for(lambda: sum(r.info.status == "FINISHED" for r in child_runs()) >= 2,
             timeout_s=240, every_s=0.1, while_running=first)
    first.signal(signal.SIGKILL)
    first.finish()
    assert len(child_runs()) < 6, "finished too soon"

    code, _, err = Cli(workdir, str(exp_file), "--resume").finish(timeout_s=180)
    assert code == 0, err[-3000:]
    assert steps_by_x() == STEPS_UNSTOPPED
