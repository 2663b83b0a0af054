"""A sweep SIGKILLed at many moments, then `--resume`d, ends as if it had never stopped.

Each case runs the same small sweep (bayes or random, one or two trials at a time, the built-in
trainable with a checkpoint per epoch, after an LR range test or not, or a custom one without
checkpoints), kills the driver
when a condition on what MLflow shows (or a trial's marker file) first holds, plus a delay that
moves the kill across Tune's control loop (into a suggestion, a journal save, the summary), and
resumes it. Then: exactly `num_samples` FINISHED child runs with distinct trial ids and no other
run, no configuration run twice, the parent FINISHED, every finished result known to the Bayesian
searcher, metric steps never repeated where a checkpoint existed, and a quiet resume.
"""
from __future__ import annotations

import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow.fs
import pytest
from mlflow.tracking import MlflowClient

from pipeline.search.skopt_search import load_saved

from .conftest import local_store, write_experiment
from .sweep_process import Cli, child_runs, parent_run, wait_for

TRIALS = 4
CUSTOM = """
name: rel
trainable: tests.trainables:steps_without_checkpoints
params: {{x: 0.5, steps: 3, step_s: 0.4, marker_dir: {markers}}}
search:
  searcher: {searcher}
  metric: score
  mode: max
  num_samples: 4
  max_concurrent: {concurrent}
  bayes: {{n_initial_points: 2}}
  space:
    params.x: {{uniform: [0.0, 1.0]}}
"""
BUILTIN = """
name: rel
data: {{batch_size: 16}}
model: {{hidden: 32}}
train: {{epochs: 3}}
search:
  searcher: {searcher}
  num_samples: 4
  max_concurrent: {concurrent}
  bayes: {{n_initial_points: 2}}
  space:
    train.lr: {{loguniform: [1.0e-3, 0.3]}}
"""
# the same sweep after an LR range test, which fixes train.lr: the search moves to weight decay
BUILTIN_LR = BUILTIN.replace("search:", "lr_range_test: {{enabled: true}}\nsearch:").replace(
    "train.lr: {{loguniform: [1.0e-3, 0.3]}}",
    "train.weight_decay: {{loguniform: [1.0e-5, 1.0e-2]}}")
SUMMARY = ("trials_total", "trials_failed", "trial_hours", "cost_usd", "sweep_wall_s")
TEMPLATES = {"custom": CUSTOM, "builtin": BUILTIN, "builtin-lr": BUILTIN_LR}
"""The sweeps: a custom trainable without checkpoints, the built-in one (a checkpoint per
epoch), and the built-in one after an LR range test (which sets train.lr for every trial)."""
SEARCHED = {"custom": "params.x", "builtin": "train.lr", "builtin-lr": "train.weight_decay"}


def finished(n: int) -> Callable[[Path], bool]:
    return lambda _: sum(r.info.status == "FINISHED" for r in child_runs()) >= n


def reported(_: Path) -> bool:
    """Some trial has reported, none has finished: the kill lands mid-trial."""
    runs = child_runs()
    return any(r.data.metrics for r in runs) and not any(r.info.status == "FINISHED"
                                                        for r in runs)


def a_trial_reported_and_runs(_: Path) -> bool:
    """Some trial has reported and has not finished: the kill lands mid-trial.

    Unlike `reported`, any of the sweep's trials opens this window, not only the first ones: a
    built-in trial on digits trains its three epochs in about a second, and a loaded machine can
    poll MLflow past the first trials' windows.
    """
    return any(r.data.metrics and r.info.status == "RUNNING" for r in child_runs())


def mid_step(n: int) -> Callable[[Path], bool]:
    """The custom trainable has entered its n-th step somewhere (its marker files)."""
    return lambda workdir: any(p.name.endswith(f"-{n}") for p in (workdir / "m").iterdir())


@dataclass(frozen=True)
class Case:
    searcher: str
    concurrent: int
    trainable: str
    moment: str
    when: Callable[[Path], bool]
    delay_s: float = 0.0

    def __str__(self) -> str:
        return f"{self.searcher}-c{self.concurrent}-{self.trainable}-{self.moment}"


CASES = [
    Case("bayes", 1, "custom", "after-trial-2", finished(2)),  # the case of the report
    Case("bayes", 1, "custom", "mid-step", mid_step(2)),
    Case("bayes", 2, "custom", "in-suggestion", finished(2), 0.15),
    Case("bayes", 2, "builtin", "mid-trial", a_trial_reported_and_runs),
    Case("random", 1, "builtin", "before-summary", finished(TRIALS)),
    Case("random", 2, "custom", "before-first-end", reported, 0.3),
    Case("random", 2, "builtin-lr", "after-trial-1", finished(1)),  # after an LR range test
]


def sweep_file(workdir: Path, case: Case) -> Path:
    (workdir / "m").mkdir(exist_ok=True)
    return write_experiment(workdir, TEMPLATES[case.trainable].format(
        searcher=case.searcher, concurrent=case.concurrent, markers=workdir / "m"))


def told_to_searcher(experiment_path: str) -> int:
    searcher = load_saved(experiment_path, pyarrow.fs.LocalFileSystem())
    return sum(len(cell.optimizer.yi) for cell in searcher._cells)


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=str)
def test_a_killed_sweep_resumes_to_the_same_result(workdir: Path, case: Case) -> None:
    exp_file = sweep_file(workdir, case)
    first = Cli(workdir, str(exp_file))
    wait_for(lambda: case.when(workdir), timeout_s=240, every_s=0.1, while_running=first)
    time.sleep(case.delay_s)
    first.signal(signal.SIGKILL)
    first.finish()
    resumes_as_if_never_stopped(workdir, exp_file, case)


@pytest.mark.slow
def test_a_kill_as_tune_drops_a_surplus_checkpoint_resumes(workdir: Path) -> None:
    """Tune's manager deletes a checkpoint it no longer keeps when it registers a newer one, in
    the middle of a step; the journal saves at the step's end. Killed in between, the journal
    must still name a checkpoint that exists."""
    case = Case("bayes", 2, "builtin", "checkpoint-drop", lambda _: True)
    exp_file = sweep_file(workdir, case)
    code, _, err = Cli(workdir, str(exp_file), module="tests.kill_at",
                       env={"KILL_AT": "checkpoint-drop"}).finish()
    assert code == -signal.SIGKILL, err[-3000:]  # it died at the drop, not after the sweep
    resumes_as_if_never_stopped(workdir, exp_file, case)
    # and the drops were done in the end: the best checkpoint and the latest per trial
    for trial_folder in (workdir / "ray_results").glob("rel-*/train_trial_*"):
        assert len(list(trial_folder.glob("checkpoint_*"))) <= 2, trial_folder


@pytest.mark.slow
def test_kills_while_the_summary_registers_the_model_leave_one_version(workdir: Path) -> None:
    """The summary logs the best model and registers a version of it; killed in between, the
    resumed summary used to make a second model and a second version of the same sweep. One
    sweep killed at both moments: as its files are uploaded (the model not yet READY), then,
    resumed, once the version exists (the alias not yet moved), then resumed to the end."""
    case = Case("random", 2, "builtin", "summary-kills", lambda _: True)
    exp_file = sweep_file(workdir, case)
    for moment, resume in [("model-upload-cut", ()), ("model-version-made", ("--resume",))]:
        code, _, err = Cli(workdir, str(exp_file), *resume, module="tests.kill_at",
                           env={"KILL_AT": moment}).finish()
        assert code == -signal.SIGKILL, (moment, err[-3000:])  # it died there, not after
    resumes_as_if_never_stopped(workdir, exp_file, case)
    client, parent = MlflowClient(local_store()), parent_run()
    (version,) = client.search_model_versions("name = 'rel'")
    assert version.run_id == parent.info.run_id
    assert client.get_model_version_by_alias("rel", "champion").version == version.version
    models = client.search_logged_models([parent.info.experiment_id])
    # the model cut off in its upload is FAILED; the one the version was made of, READY
    assert sorted(str(m.status) for m in models) == ["FAILED", "READY"]
    (ready,) = [m for m in models if str(m.status) == "READY"]
    assert version.source == ready.artifact_location  # the READY model's files
    assert parent.data.tags["model_registry"] == \
        f"rel version {version.version} (val_loss {parent.data.metrics['best_val_loss']:.4g}) " \
        "registered as champion"


def resumes_as_if_never_stopped(workdir: Path, exp_file: Path, case: Case,
                                finished_before: set[str] | None = None) -> None:
    """`finished_before`: the trials finished at some earlier stop (default: at the last)."""
    before = {r.data.tags["trial_id"]: r for r in child_runs()}
    if finished_before is None:
        finished_before = {t for t, r in before.items() if r.info.status == "FINISHED"}
    code, out, err = Cli(workdir, str(exp_file), "--resume").finish()
    assert code == 0, err[-3000:]
    runs = child_runs()
    assert [r.info.status for r in runs] == ["FINISHED"] * TRIALS
    assert len({r.data.tags["trial_id"] for r in runs}) == TRIALS
    values = [r.data.params.get(SEARCHED[case.trainable]) for r in runs]
    assert None not in values, [(r.data.tags, r.data.params) for r in runs]  # params logged
    assert len(set(values)) == TRIALS, values  # no configuration run twice
    after = {r.data.tags["trial_id"]: r for r in runs}
    assert all(after[t].info.run_id == r.info.run_id for t, r in before.items())  # continued
    client = MlflowClient(local_store())
    builtin = case.trainable != "custom"
    metric = "val_loss" if builtin else "step_seen"
    for trial_id, run in after.items():
        steps = sorted(m.step for m in client.get_metric_history(run.info.run_id, metric))
        assert set(steps) == {1, 2, 3}
        # finished before the kill: not run again; resumed from a checkpoint: no epoch twice
        if builtin or trial_id in finished_before:
            assert steps == [1, 2, 3], (trial_id, steps)
    # the summary's values once each, though a stop in the summary runs it again (found from
    # outside: every one logged twice); fit_session_s is one point per session by design
    best = "best_val_loss" if builtin else "best_score"
    for run_id, keys in [(r.info.run_id, ["trial_wall_s", "cost_usd", best]) for r in runs] + [(parent_run().info.run_id, list(SUMMARY))]:
        for key in keys:
            assert len(client.get_metric_history(run_id, key)) == 1, (run_id, key)
    parent = parent_run()
    assert parent.info.status == "FINISHED"
    assert parent.data.metrics["trials_total"] == TRIALS
    # the sessions' fit time up to the summary that logged it (a summary stopped midway keeps
    # its first value: the resumed one adds a session of moments)
    sessions = [m.value for m in sorted(
        client.get_metric_history(parent.info.run_id, "fit_session_s"), key=lambda m: m.timestamp)]
    assert any(parent.data.metrics["sweep_wall_s"] == pytest.approx(sum(sessions[:n]))
               for n in range(1, len(sessions) + 1)), (parent.data.metrics, sessions)
    if case.searcher == "bayes":
        assert told_to_searcher(f"{parent.data.tags['storage_path']}/"
                                f"{parent.data.tags['pipeline.sweep']}") == TRIALS
    assert "Could not fetch metrics" not in out + err
    assert "FileNotFoundError" not in out + err
    assert "Remote file not found" not in out + err
