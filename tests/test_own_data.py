"""A user's own images and code through the whole pipeline: bad input stops before Ray with
one line, and a sweep scores its best model on the test split and registers it."""
from __future__ import annotations

from pathlib import Path

import mlflow.pytorch
import pytest
import ray
import torch
from mlflow.tracking import MlflowClient

from bench.imagefolder_data import write_folder
from pipeline import cli, study
from pipeline.config import load

from .conftest import local_store, write_experiment

SWEEP = """
name: own
data: {{dataset: imagefolder, root: {root}, image_size: 16, batch_size: 16,
        test_fraction: 0.25, augment: [flip, crop], normalize: true}}
model: {{arch: {arch}, channels: 4, hidden: 16}}
train: {{epochs: 2, optimizer: adamw, lr: 0.01}}
lr_range_test: {{enabled: {lr_range}, num_iter: 20}}
search:
  searcher: random
  num_samples: 2
  space:
    model.dropout: {{uniform: [0.0, 0.2]}}
"""


def _sweep(folder: Path, root: Path, arch: str = "cnn", lr_range: str = "false") -> Path:
    return write_experiment(folder, SWEEP.format(root=root, arch=arch, lr_range=lr_range))


def _broken_image(root: Path) -> None:
    (root / "circle" / "photo.jpg").write_bytes(b"\xff\xd8 not really a jpeg")


def _class_without_images(root: Path) -> None:
    (root / "dog").mkdir()
    (root / "dog" / "notes.txt").write_text("to do")


@pytest.mark.parametrize(("spoil", "overrides", "message"), [
    (None, [], None),
    (_broken_image, [], "data.root: {root}/circle/photo.jpg is not a readable image"),
    (_class_without_images, [], "data.root: class 'dog' ({root}/dog) has no images"),
    (None, ["model.factory=tests.factories:unpadded_convs"],
     "model.factory: tests.factories:unpadded_convs cannot take 3x16x16 inputs"),
    (None, ["data.root=nowhere"], "data.root: nowhere is not a folder"),
])
def test_bad_own_data_exits_2_before_ray_with_one_line(workdir: Path, capsys, spoil, overrides,
                                                       message) -> None:
    root = write_folder(workdir / "images", per_class=4, classes=2)
    if spoil is not None:
        spoil(root)
    exp_file = _sweep(workdir, root)
    if message is None:  # the unspoilt folder passes the checks (sweep tested below)
        study.load_checked(load(exp_file))
        return
    sets = [arg for o in overrides for arg in ("--set", o)]
    ray_before = ray.is_initialized()  # another test of the session may have started it
    assert cli.main(["tune", str(exp_file), *sets]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {message.format(root=root)}")
    assert ray.is_initialized() == ray_before
    assert sorted(p.name for p in workdir.iterdir()) == ["exp.yaml", "images"]


def test_an_unknown_torchvision_name_is_refused_with_the_closest(workdir: Path, capsys) -> None:
    exp_file = _sweep(workdir, workdir, arch="mobilenet_v3_smal")
    assert cli.main(["tune", str(exp_file)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: model.arch: unknown model 'mobilenet_v3_smal'")
    assert err.endswith("closest: mobilenet_v3_small, mobilenet_v3_large, mobilenet_v2")


@pytest.mark.slow
def test_an_image_folder_sweep_scores_the_best_model_on_the_test_split(
        workdir: Path, ray_local, capsys, monkeypatch) -> None:
    root = write_folder(workdir / "images", per_class=12, classes=2)
    exp_file = _sweep(workdir, root, lr_range="true")
    outcome = study.run(load(exp_file), exp_file)
    out = capsys.readouterr().out
    assert "Data: imagefolder" in out and "decoded once into memory as uint8" in out
    assert set(outcome.test) == {"test_loss", "test_acc"}
    assert "Test split (6 examples, the best trial's model, once)" in out
    client = MlflowClient(local_store())
    parent = client.get_run(outcome.parent_run_id).data.metrics
    assert parent["test_acc"] == pytest.approx(outcome.test["test_acc"])
    assert "lr_suggested" in parent
    kids = client.search_runs([outcome.store.experiment_id],
                              f"tags.`mlflow.parentRunId` = '{outcome.parent_run_id}'")
    assert all("test_loss" not in k.data.metrics for k in kids)  # trials never see it
    monkeypatch.setenv("MLFLOW_TRACKING_URI", local_store())
    model = mlflow.pytorch.load_model("models:/own@champion")
    assert not type(model).__module__.startswith("pipeline")  # loads without this package
    assert model(torch.rand(3, 3, 16, 16)).shape == (3, 2)


@pytest.mark.slow
def test_relative_paths_reach_the_trials_a_streamed_folder_and_a_weights_file(
        workdir: Path, ray_local, capsys) -> None:
    """Trials run in folders of their own: a relative data.root (streamed, so decoded in the
    trials) and a relative model.weights file failed every trial with 'no such file'."""
    import torchvision

    write_folder(workdir / "images", per_class=6, classes=2)
    torch.save(torchvision.models.shufflenet_v2_x0_5(num_classes=5).state_dict(),
               workdir / "w.pt")
    exp_file = write_experiment(workdir, """
name: rel-paths
data: {dataset: imagefolder, root: images, image_size: 16, batch_size: 4, cache: stream}
model: {arch: shufflenet_v2_x0_5, weights: w.pt}
train: {epochs: 1}
search: {searcher: random, num_samples: 1}
""")
    outcome = study.run(load(exp_file), exp_file)
    assert "streamed from disk" in capsys.readouterr().out
    assert outcome.failed == 0 and outcome.best_config is not None
    assert outcome.best_config["data"]["root"] == str(workdir / "images")
    assert outcome.best_config["model"]["weights"] == str(workdir / "w.pt")


FACTORIES = """
name: {name}
data: {{factory: "tests.factories:blobs", batch_size: 16}}
model: {{factory: "tests.factories:{net}", hidden: 8}}
train: {{epochs: {epochs}, lr: 0.1}}
lr_range_test: {{enabled: true, num_iter: {num_iter}}}
search: {search}
"""


@pytest.mark.slow
def test_factories_sweep_with_the_lr_range_test(workdir: Path, ray_local, capsys) -> None:
    exp_file = write_experiment(workdir, FACTORIES.format(
        name="fac", net="tiny_net", epochs=2, num_iter=20,
        search="{searcher: random, num_samples: 2, space: {train.lr: lr_range}}"))
    outcome = study.run(load(exp_file), exp_file)
    out = capsys.readouterr().out
    assert "LR range test: searching train.lr in" in out
    assert "Model registry: fac version 1" in out
    assert outcome.test["test_acc"] > 0.7


@pytest.mark.slow
def test_factories_resume_from_the_checkpoint_after_a_failure(workdir: Path, monkeypatch) -> None:
    """The LR range test runs on the factories' network; the trial fails in its second epoch,
    Ray retries it from the epoch-1 checkpoint, and it ends exactly where an uninterrupted
    run ends."""
    from pipeline.training.data import load as load_data
    from pipeline.training.loop import fit

    from .test_reliability import Cli

    monkeypatch.setenv("FAILS_ONCE_MARKER", str(workdir / "failed-once"))
    exp_file = write_experiment(workdir, FACTORIES.format(
        name="flaky", net="fails_once", epochs=3, num_iter=8,  # 8 < a trial's 11th step
        search="{searcher: random, num_samples: 1, max_failures: 1}"))
    code, out, err = Cli(workdir, str(exp_file)).finish()
    assert code == 0, err[-3000:]
    assert (workdir / "failed-once").exists() and "LR range test:" in out
    client = MlflowClient(local_store())
    (run,) = [r for r in client.search_runs([client.get_experiment_by_name("flaky")
                                             .experiment_id]) if "mlflow.parentRunId" in
              r.data.tags]
    assert run.info.status == "FINISHED"
    history = sorted(client.get_metric_history(run.info.run_id, "val_loss"),
                     key=lambda m: m.step)
    assert [m.step for m in history] == [1, 2, 3]
    exp = load(exp_file, [f"train.lr={run.data.params['train.lr']}"])
    expected = [e.metrics["val_loss"] for e in fit(exp, load_data(exp.data, exp.seed))]
    assert [m.value for m in history] == pytest.approx(expected, rel=1e-4)
