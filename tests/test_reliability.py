"""Faults a long sweep must survive, against real Ray and a real MLflow store or server."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from pipeline import cli, study
from pipeline.config import load
from pipeline.execution import stopping

from .conftest import ROOT, local_store, tiny_sweep, write_experiment
from .services import answers, free_port, wait_until
from .sweep_process import Cli, child_runs, parent_run, wait_for

CUSTOM = """
name: {name}
trainable: tests.trainables:{trainable}
params: {params}
search:
  searcher: random
  metric: score
  mode: max
  num_samples: {num_samples}
  max_concurrent: 2
  max_failures: {max_failures}
  space:
    params.x: {{uniform: [0.0, 1.0]}}
"""


def custom(folder: Path, trainable: str, params: str = "{}", num_samples: int = 4,
           max_failures: int = 0, name: str = "rel") -> Path:
    return write_experiment(folder, CUSTOM.format(
        name=name, trainable=trainable, params=params, num_samples=num_samples,
        max_failures=max_failures))


@pytest.mark.slow
def test_failing_trials_are_marked_and_the_sweep_goes_on(workdir: Path, ray_local) -> None:
    exp_file = custom(workdir, "fails_above", num_samples=6)
    outcome = study.run(load(exp_file), exp_file)
    runs = child_runs()
    failed = [r for r in runs if r.info.status == "FAILED"]
    finished = [r for r in runs if r.info.status == "FINISHED"]
    assert len(runs) == 6 and failed and finished
    for run in failed:
        assert float(run.data.params["params.x"]) > 0.5
        assert "ValueError" in run.data.tags["error"] and "out of range" in run.data.tags["error"]
    assert outcome.failed == len(failed)
    assert parent_run().data.metrics["trials_failed"] == len(failed)


def test_a_failure_whose_message_is_a_traceback_is_told_by_its_last_line() -> None:
    from ray.tune.error import TuneError

    wrapped = TuneError('Traceback (most recent call last):\n  File "loop.py", line 3, in step\n'
                        '    raise ValueError(\n\nValueError: bad thing\n  happened\n')
    assert cli._what_failed(wrapped) == "ValueError: bad thing"
    assert cli._what_failed(RuntimeError("first\nsecond")) == "RuntimeError: first"
    assert cli._what_failed(OSError()) == "OSError: "


@pytest.mark.slow
def test_a_sweep_without_a_finished_trial_fails_with_one_line(workdir: Path, ray_local,
                                                              capfd) -> None:
    """Every trial failing exits 1 (it was 0), a line per failed trial naming where its
    traceback is (Tune's 40-line tracebacks reached the terminal); a custom trainable that
    reports the searched metric under another name is one line naming search.metric (it was
    `TuneError: Traceback (most recent call last):`), exit 2."""
    capsys = capfd
    exp_file = custom(workdir, "fails_above", num_samples=2)
    assert cli.main(["tune", str(exp_file),
                     "--set", "search.space.params.x={uniform: [0.6, 1.0]}"]) == 1
    out, err = capsys.readouterr()
    assert "No trial finished (2 failed)" in out
    assert "Traceback" not in out + err and "Trial task failed" not in out + err
    failed = [line for line in out.splitlines() if " FAILED: " in line]
    assert len(failed) == 2
    for line in failed:
        kept = Path(line.split("(traceback: ")[1].rstrip(")"))
        assert "raise ValueError" in kept.read_text()  # the whole traceback
    assert parent_run().info.status == "FAILED"

    exp_file = custom(workdir, "quadratic", num_samples=2, name="other")
    assert cli.main(["tune", str(exp_file), "--set", "search.metric=loss"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [("error: search.metric: a trial's report lacked 'loss'; every tune.report "
                    "needs it (tune.report({'loss': ...}), each step), or set search.metric to "
                    "a metric the trainable always reports")]


@pytest.mark.slow
def test_a_resume_with_other_settings_is_refused_naming_them(workdir: Path, ray_local,
                                                             capsys) -> None:
    """Ray Tune restores a sweep as it started: a changed num_samples or trial setting was
    ignored without a word. Where it runs (resources, cluster, storage, tracking) may change."""
    exp_file = custom(workdir, "quadratic", params="{steps: 3}", num_samples=1)
    assert cli.main(["tune", str(exp_file)]) == 0
    capsys.readouterr()
    # finished, summary and all: nothing to resume (it ran the summary again, every value twice)
    assert cli.main(["tune", str(exp_file), "--resume"]) == 0
    assert "already finished" in capsys.readouterr().out
    first_s = parent_run().data.metrics["sweep_wall_s"]
    client = MlflowClient(local_store())
    client.update_run(parent_run().info.run_id, "KILLED")  # as if stopped in its summary
    assert cli.main(["tune", str(exp_file), "--resume", "--set", "search.num_samples=3",
                     "--set", "params.steps=5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --resume: sweep rel-")
    assert "started with other settings (params.steps: 3 -> 5; search.num_samples: 1 -> 3)" \
        in err[0]
    assert parent_run().info.status == "KILLED"  # untouched

    # a second driver while one holds the sweep (a --resume started beside the running
    # sweep ran its trials again beside it): refused, and free again once the holder dies
    tags = parent_run().data.tags
    sweep_path = f"{tags['storage_path'].rstrip('/')}/{tags['pipeline.sweep']}"
    holder = subprocess.Popen(
        [sys.executable, "-c", ("import time; from pipeline.execution import sweep_lock\n"
                                f"with sweep_lock.held('x', {sweep_path!r}):\n"
                                " print('held', flush=True); time.sleep(600)")],
        cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert cli.main(["tune", str(exp_file), "--resume"]) == 2
        assert capsys.readouterr().err.strip() == (
            f"error: --resume: sweep {tags['pipeline.sweep']} is still running (pid "
            f"{holder.pid}); wait for it to end, or stop it first")
    finally:
        holder.kill()  # SIGKILL: the kernel frees the lock
        holder.wait()
    assert parent_run().info.status == "KILLED"
    assert cli.main(["tune", str(exp_file), "--resume", "--set", "resources.cpu=0.5"]) == 0
    assert parent_run().info.status == "FINISHED"
    # the summary run again on the same trials: each value once, as first logged
    history = client.get_metric_history(parent_run().info.run_id, "sweep_wall_s")
    assert [m.value for m in history] == [first_s]


@pytest.mark.slow
def test_failed_trials_are_retried_in_the_same_run(workdir: Path, ray_local) -> None:
    exp_file = custom(workdir, "fails_first_time", params=f"{{marker_dir: {workdir}}}",
                      num_samples=2, max_failures=1)
    outcome = study.run(load(exp_file), exp_file)
    runs = child_runs()
    assert outcome.failed == 0
    assert [r.info.status for r in runs] == ["FINISHED", "FINISHED"]
    assert len(list(workdir.glob("0.*"))) == 2  # each trial did fail once first


@pytest.mark.slow
def test_a_failed_trial_stays_failed_after_a_resume(workdir: Path) -> None:
    """Found from outside: a trial that had failed (no retries left) ran again on --resume,
    from its last checkpoint with a fresh retry budget, and a flaky failure became FINISHED."""
    exp_file = write_experiment(workdir, f"""
name: rel
trainable: tests.trainables:one_fails_others_run
params: {{x: 0.0, fail_x: 0.25, marker_dir: {workdir}, steps: 8, step_s: 0.5}}
search:
  searcher: grid
  num_samples: 1
  metric: score
  mode: max
  max_concurrent: 2
  max_failures: 0
  space:
    params.x: {{grid: [0.25, 0.75]}}
""")
    first = Cli(workdir, str(exp_file))
    wait_for(lambda: any(r.info.status == "FAILED" for r in child_runs()), while_running=first)
    first.signal(signal.SIGKILL)
    first.finish()
    code, _, err = Cli(workdir, str(exp_file), "--resume").finish()
    assert code == 0, err[-3000:]
    assert len(child_runs()) == 2
    runs = {r.data.params["params.x"]: r for r in child_runs()}
    assert runs["0.25"].info.status == "FAILED" and "score" not in runs["0.25"].data.metrics
    assert runs["0.75"].info.status == "FINISHED"
    assert parent_run().data.metrics["trials_failed"] == 1


@pytest.mark.slow
def test_out_of_memory_fails_one_trial_clearly(workdir: Path, ray_local) -> None:
    exp_file = write_experiment(workdir, """
name: rel
trainable: tests.trainables:allocates
params: {alloc_gb: 0.001}
search:
  searcher: grid
  metric: score
  mode: max
  num_samples: 1
  space:
    params.alloc_gb: {grid: [0.001, 1.0e+9]}
""")
    outcome = study.run(load(exp_file), exp_file)
    runs = {r.data.params["params.alloc_gb"]: r for r in child_runs()}
    assert runs["0.001"].info.status == "FINISHED"
    assert runs["1000000000.0"].info.status == "FAILED"
    assert "MemoryError" in runs["1000000000.0"].data.tags["error"]
    assert outcome.failed == 1


@pytest.mark.slow
def test_nan_loss_fails_the_trial_at_once(workdir: Path, ray_local) -> None:
    exp_file = write_experiment(workdir, """
name: rel
data: {limit: 200}
train: {epochs: 3, lr: 1.0e+12, momentum: 0.0}
search: {searcher: random, num_samples: 1}
""")
    study.run(load(exp_file), exp_file)
    (run,) = child_runs()
    assert run.info.status == "FAILED"
    assert "Diverged: training loss became" in run.data.tags["error"]
    assert "val_loss" not in run.data.metrics  # no epoch was reported on a NaN loss


@pytest.mark.slow
def test_budget_spent_before_a_restart_counts_after_resume(workdir: Path) -> None:
    """11 s of 3 s trials, one at a time; the driver dies once MLflow shows 3 finished, ~3 s
    before the budget (Tune's saved state may be a trial behind). Counting what was spent
    before, the resumed sweep stops at 4 or 5 trials; counting only its own trials it would
    run 4 more (6 or 7)."""
    exp_file = write_experiment(workdir, """
name: rel
trainable: tests.trainables:slow_steps
params: {steps: 2, step_s: 1.5}
search:
  searcher: random
  metric: score
  mode: max
  num_samples: 10
  max_concurrent: 1
  budget: {hours: 0.0030556}
  space:
    params.x: {uniform: [0.0, 1.0]}
""")
    first = Cli(workdir, str(exp_file))
    wait_for(lambda: sum(r.info.status == "FINISHED" for r in child_runs()) >= 3,
             timeout_s=180, while_running=first)
    first.signal(signal.SIGKILL)
    first.finish()

    code, out, err = Cli(workdir, str(exp_file), "--resume").finish()
    assert code == 0, err[-3000:]
    assert "Budget reached (budget.hours:" in out
    assert len(child_runs()) <= 5
    assert "budget_stop" in parent_run().data.tags


STOPS = [(signal.SIGINT, True, 130), (signal.SIGTERM, False, 143), (signal.SIGHUP, True, 129)]
"""A terminal's Ctrl-C and hang-up (to its whole process group) and a container stop (to the
driver alone), with the exit code each ends the CLI with."""


@pytest.mark.slow
def test_each_stop_signal_marks_runs_killed_and_resume_finishes(workdir: Path) -> None:
    """A terminal's Ctrl-C and hang-up (SIGINT, SIGHUP to its whole process group, Ray's
    local processes included unless they are kept out of it) and a container stop (SIGTERM to
    the driver) all stop a sweep the same way: state saved, runs KILLED, our lines only; a
    second SIGTERM (`timeout`, `kill -TERM -PGID` twice) ends that shutdown at once, quietly.
    One sweep takes all four, each stopping the resume of the one before (a resumed sweep
    stops as cleanly as a new one), two steps further each time; then every step was logged
    once across the five sessions."""
    exp_file = custom(workdir, "slow_steps", params="{steps: 10, step_s: 1.0}", num_samples=2)
    resume: list[str] = []

    def started_until_step(n: int) -> Cli:
        sweep = Cli(workdir, str(exp_file), *resume)
        wait_for(lambda: any(r.data.metrics.get("step_seen", 0) >= n for r in child_runs()),
                 while_running=sweep)
        return sweep

    for n, (signum, group, exit_code) in enumerate(STOPS, start=1):
        sweep = started_until_step(2 * n)
        sweep.signal(signum, group)
        code, _, err = sweep.finish(60)
        assert code == exit_code, (signal.Signals(signum).name, err[-2000:])
        name = parent_run().data.tags[study.SWEEP_TAG]
        assert err.strip().splitlines() == [
            stopping.STOPPING,
            f"interrupted: sweep {name} stopped before it finished; continue it with --resume"]
        assert {r.info.status for r in child_runs()} == {"KILLED"}
        assert parent_run().info.status == "KILLED"
        resume = ["--resume"]

    sweep = started_until_step(8)
    sweep.signal(signal.SIGTERM, group=True)
    sweep.signal(signal.SIGTERM, group=True)
    code, _, err = sweep.finish(60)
    assert code == 143, err[-2000:]
    assert "***" not in err and "Traceback" not in err, err[-2000:]

    code, _, err = Cli(workdir, str(exp_file), "--resume").finish()
    assert code == 0, err[-3000:]
    # the trials restored from their checkpoints say nothing (Tune's workers log it at INFO)
    assert not [line for line in err.splitlines() if line.strip()], err[-3000:]
    runs = child_runs()
    assert [r.info.status for r in runs] == ["FINISHED", "FINISHED"]
    assert parent_run().info.status == "FINISHED"
    client = MlflowClient(local_store())
    for run in runs:  # each step once, across the five sessions
        steps = sorted(m.step for m in client.get_metric_history(run.info.run_id, "step_seen"))
        assert steps == list(range(1, 11)), steps


@pytest.mark.slow
def test_a_sweep_started_with_nohup_outlives_its_terminal(workdir: Path) -> None:
    """`nohup make tune &`, then the terminal closes: its hang-up stopped the sweep, because our
    SIGHUP handler replaced the ignore that nohup had set."""
    exp_file = custom(workdir, "slow_steps", params="{steps: 3, step_s: 0.5}", num_samples=2)
    sweep = Cli(workdir, str(exp_file), nohup=True)
    wait_for(lambda: any(r.data.metrics.get("step_seen", 0) >= 1 for r in child_runs()),
             while_running=sweep)
    sweep.signal(signal.SIGHUP, group=True)
    code, _, err = sweep.finish()
    assert code == 0, err[-2000:]
    assert [r.info.status for r in child_runs()] == ["FINISHED", "FINISHED"]
    assert parent_run().info.status == "FINISHED"


@pytest.mark.parametrize(("moment", "resume"), [("sigterm-loading-data", False),
                                              ("sigterm-in-ray-init", False),
                                              ("sigterm-as-ray-connects", False),
                                              ("sigterm-loading-data", True)])
def test_a_sigterm_before_the_sweep_exists_says_so_and_leaves_nothing(workdir: Path,
                                                                     moment: str,
                                                                     resume: bool) -> None:
    """The first seconds (the data decoding, Ray starting): a SIGTERM there used to end the
    CLI without a word, killed by the signal while the data loaded; with exit code 15 once
    ray.init had put in its own handler; with a stack dump and an abort once Ray's C++ core
    had put in its. Now it stops as Ctrl-C does, and a resume stopped there does not claim
    that nothing was ever saved."""
    exp_file = write_experiment(workdir, tiny_sweep("rel", "    train.lr: {grid: [0.1]}"))
    sweep = Cli(workdir, str(exp_file), *(["--resume"] if resume else []),
                module="tests.kill_at", env={"KILL_AT": moment})
    code, _, err = sweep.finish(120)
    assert code == 143, err[-2000:]
    assert err.strip().splitlines() == [
        "interrupted: stopped before resuming, nothing changed; run --resume again" if resume
        else "interrupted: stopped before anything was saved"]
    assert sorted(p.name for p in workdir.iterdir() if not p.name.startswith("cli_")) == \
        ["exp.yaml"]
    assert sweep.ray_started == (moment != "sigterm-loading-data")
    assert not sweep.leftovers()


@pytest.mark.slow
def test_a_sigterm_as_fit_starts_leaves_a_sweep_that_starts_again(workdir: Path) -> None:
    """Tune has written its Tuner (tuner.pkl), not yet its SIGINT handler nor any trial state
    (found by the soak): the SIGTERM ended the CLI as a Ctrl-C would (130), and every later
    --resume restored that Tuner without trials and without its param_space, every trial
    failing (KeyError: 'params' in a custom trainable)."""
    exp_file = write_experiment(workdir, tiny_sweep("rel", "    train.lr: {grid: [0.1, 0.2]}"))
    code, _, err = Cli(workdir, str(exp_file), module="tests.kill_at",
                       env={"KILL_AT": "sigterm-as-fit-starts"}).finish(120)
    stopped_before_its_first_trial(code, err)
    resumes_from_the_start(workdir, exp_file)


def stopped_before_its_first_trial(code: int, err: str) -> None:
    """SIGTERMed: exit 143, one line saying how to go on, the sweep KILLED without trials."""
    assert code == 143, err[-2000:]
    assert err.strip().splitlines()[-1] == (
        f"interrupted: sweep {parent_run().data.tags[study.SWEEP_TAG]} stopped before it "
        "finished; continue it with --resume")
    assert parent_run().info.status == "KILLED" and not child_runs()


def resumes_from_the_start(workdir: Path, exp_file: Path) -> None:
    """--resume of a sweep stopped before it saved a trial: it starts again, in the same parent
    run, and finishes both its trials."""
    code, out, err = Cli(workdir, str(exp_file), "--resume").finish()
    assert code == 0, err[-3000:]
    assert "it stopped before its first trial was saved, so it starts again" in out
    assert [r.info.status for r in child_runs()] == ["FINISHED", "FINISHED"]
    assert parent_run().info.status == "FINISHED"


LR_STAGE = """
name: rel
data: {batch_size: 16}
model: {hidden: 32}
train: {epochs: 2}
lr_range_test: {enabled: true, end_lr: 1.0e-3, num_iter: 4000}
search:
  num_samples: 2
  max_concurrent: 2
  space:
    train.weight_decay: {loguniform: [1.0e-5, 1.0e-2]}
"""


@pytest.mark.slow
def test_a_stop_in_the_lr_range_test_leaves_the_sweep_killed_and_resume_finishes(
        workdir: Path) -> None:
    """SIGTERM before Tune's handler exists (the range test runs first, seconds long): once a
    C-level stack dump from Ray's own handler, the parent run left RUNNING."""
    exp_file = write_experiment(workdir, LR_STAGE)
    first = Cli(workdir, str(exp_file))
    wait_for(lambda: parent_run() and not child_runs(), while_running=first, every_s=0.2)
    time.sleep(1.0)  # into the range test (it logs nothing until it ends)
    assert not parent_run().data.metrics  # its curve not logged yet: the stop lands in it
    first.signal(signal.SIGTERM)
    code, _, err = first.finish(60)
    stopped_before_its_first_trial(code, err)
    resumes_from_the_start(workdir, exp_file)
    assert "lr_agreement_decades" in parent_run().data.metrics  # the range test ran again


@pytest.mark.slow
def test_a_sigterm_that_lands_in_a_finaliser_during_the_summary_still_stops(
        workdir: Path, ray_local, monkeypatch) -> None:
    """Python drops what a signal handler raises inside a `__del__`: the stop printed
    "Exception ignored ... Interrupted" and the sweep ended FINISHED with exit 0."""
    from pipeline.results import report

    class SignalsWhenCollected:
        def __del__(self) -> None:
            os.kill(os.getpid(), signal.SIGTERM)  # our handler runs in here
            for _ in range(100_000):
                pass

    summarise = report.summarise

    def summarise_with_a_finaliser(*args, **kwargs):
        SignalsWhenCollected()  # collected at once
        return summarise(*args, **kwargs)

    monkeypatch.setattr(report, "summarise", summarise_with_a_finaliser)
    exp_file = custom(workdir, "quadratic", num_samples=1)
    with pytest.raises(stopping.Interrupted) as stop:
        study.run(load(exp_file), exp_file)
    assert stop.value.exit_code == 143 and "continue it with --resume" in str(stop.value)
    assert parent_run().info.status == "KILLED"


@pytest.mark.slow
def test_sweeps_started_together_on_a_new_store_all_run_and_lose_no_metric(
        workdir: Path) -> None:
    """Each would otherwise run MLflow's schema migration on the new SQLite file at once
    (`duplicate column name: step`) and race to create the experiment and the sweep folder.
    Three at once on two cores (the case of two is one of its pairs)."""
    sweeps = 3
    exp_file = custom(workdir, "slow_steps", params="{steps: 3, step_s: 0.2}", num_samples=2)
    started = [Cli(workdir, str(exp_file)) for _ in range(sweeps)]
    done = [cli.finish(400) for cli in started]
    assert [code for code, _, _ in done] == [0] * sweeps, [err[-1500:] for _, _, err in done]
    client = MlflowClient(local_store())
    experiment = client.get_experiment_by_name("rel")
    parents = [r for r in client.search_runs([experiment.experiment_id])
               if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == sweeps and {p.info.status for p in parents} == {"FINISHED"}
    assert len({p.data.tags["pipeline.sweep"] for p in parents}) == sweeps
    runs = child_runs()
    assert len(runs) == 2 * sweeps
    for run in runs:
        steps = sorted(m.step for m in client.get_metric_history(run.info.run_id, "step_seen"))
        assert steps == [1, 2, 3]


def test_resume_without_an_earlier_sweep_is_bad_input(workdir: Path) -> None:
    exp_file = custom(workdir, "quadratic")
    code, _, err = Cli(workdir, str(exp_file), "--resume").finish(120)
    assert code == 2
    assert err.strip().splitlines()[-1] == (
        f"error: --resume: no earlier sweep of 'rel' (tracking.uri: no MLflow store at "
        f"{workdir / 'mlflow.db'} (no sweep has logged there; check tracking.uri or "
        "MLFLOW_TRACKING_URI))")
    assert sorted(p.name for p in workdir.iterdir() if not p.name.startswith("cli_")) == \
        ["exp.yaml"]  # an empty mlflow.db and its lock were left behind


def test_unreachable_tracking_server_is_refused_before_anything_runs(workdir: Path) -> None:
    exp_file = custom(workdir, "quadratic")
    port = free_port()
    sweep = Cli(workdir, str(exp_file), "--set", f"tracking.uri=http://127.0.0.1:{port}")
    code, _, err = sweep.finish(120)
    assert code == 2
    assert err.strip().splitlines()[-1].startswith(
        f"error: tracking.uri: cannot reach MLflow at http://127.0.0.1:{port}")
    assert not (workdir / "ray_results").exists()
    assert not (workdir / "mlflow.db").exists()
    assert not sweep.ray_started


def start_mlflow_server(folder: Path, port: int) -> subprocess.Popen:
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1", "--backend-store-uri", f"sqlite:///{folder}/server.db",
         "--artifacts-destination", str(folder / "server_artifacts")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    # its health page, not an MlflowClient: the client's retries back off for seconds after a
    # refused connection, which a poll during the server's start always meets
    wait_until(answers(f"http://127.0.0.1:{port}/health"), 90, "mlflow server", poll_s=0.25)
    return server


def stop(server: subprocess.Popen) -> None:
    os.killpg(server.pid, signal.SIGKILL)
    server.wait()


@pytest.mark.slow
def test_tracking_server_restart_mid_sweep_loses_no_metric(workdir: Path) -> None:
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    server = start_mlflow_server(workdir, port)
    exp_file = custom(workdir, "slow_steps", params="{steps: 8, step_s: 1.0}", num_samples=2)
    sweep = Cli(workdir, str(exp_file), "--set", f"tracking.uri={uri}")
    try:
        wait_for(lambda: any(r.data.metrics.get("step_seen", 0) >= 2 for r in child_runs(uri)),
                 while_running=sweep)
        stop(server)
        time.sleep(4)  # steps reported now can only be queued
        server = start_mlflow_server(workdir, port)
        code, _, err = sweep.finish()
        assert code == 0, err[-3000:]
    finally:
        stop(server)
        if sweep.running():
            sweep.signal(signal.SIGKILL)
    store = f"sqlite:///{workdir}/server.db"  # what the server stored, read without it
    client = MlflowClient(store)
    runs = child_runs(store)
    assert len(runs) == 2
    for run in runs:
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "step_seen")]
        assert sorted(steps) == list(range(1, 9))
        assert run.info.status == "FINISHED"


@pytest.mark.slow
def test_lost_worker_node_reschedules_its_trial_from_the_checkpoint(workdir: Path) -> None:
    custom(workdir, "slow_steps", params="{steps: 5, step_s: 1.0}", num_samples=2,
           max_failures=2)
    ray_tmp = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))  # short socket paths
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_TMPDIR": str(ray_tmp)}
    try:
        done = subprocess.run([sys.executable, "-m", "tests.node_loss", "tune", "exp.yaml"],
                              cwd=workdir, env=env, capture_output=True, text=True,
                              timeout=400, start_new_session=True, check=False)
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert done.returncode == 0, done.stderr[-3000:]
    killed = done.stdout.strip().splitlines()[-1]
    assert killed != "no node killed"
    runs = child_runs()
    assert len(runs) == 2 and all(r.info.status == "FINISHED" for r in runs)
    client = MlflowClient(local_store())
    histories = [client.get_metric_history(r.info.run_id, "step_seen") for r in runs]
    assert all({m.step for m in h} == {1, 2, 3, 4, 5} for h in histories)
    # the trial on the lost node went on from its checkpoint, not from step 1
    assert all(len(h) <= 6 for h in histories)
    assert all(r.data.tags["node_id"] != killed for r in runs)  # it finished elsewhere
