"""The model registry: the best model of every sweep registered, the `champion` alias moved
only by a better sweep, and `best` telling how to load it. Real Ray, real MLflow (SQLite)."""
from __future__ import annotations

import mlflow.pytorch
import pytest
from mlflow.models import get_model_info
from mlflow.tracking import MlflowClient

from pipeline import cli, study
from pipeline.config import load
from pipeline.results.registry import is_better
from pipeline.training import data as datasets

from ..conftest import local_store, tiny_sweep, write_experiment

SWEEP = tiny_sweep("reg", "    train.lr: {grid: [LR]}\n", epochs=2)


def registry_line(out: str) -> str:
    (line,) = [line for line in out.splitlines() if line.startswith("Model registry:")]
    return line


def test_a_model_name_is_one_the_registry_takes() -> None:
    """tracking.experiment `team/digits` failed registration (`Names cannot contain '/' or
    ':'`) after the whole sweep, and every --resume the same way."""
    from pipeline.config import Experiment
    from pipeline.results.registry import model_name

    named = lambda tracked: model_name(Experiment.model_validate(
        {"name": "x", "tracking": {"experiment": tracked}}))
    assert named("/Users/me/team:digits") == "Users-me-team-digits"
    assert named(None) == "x" and named("plain") == "plain"


def test_better_depends_on_the_mode() -> None:
    assert is_better(0.1, 0.2, "min") and not is_better(0.2, 0.1, "min")
    assert is_better(0.9, 0.8, "max") and not is_better(0.8, 0.8, "max")


@pytest.mark.slow
def test_champion_moves_only_when_a_sweep_beats_it(workdir, ray_local, capsys,
                                                   monkeypatch) -> None:
    lines = []
    for lr in (0.005, 1e-5, 0.05):  # mediocre, worse, better (2 epochs of SGD)
        exp_file = write_experiment(workdir, SWEEP.replace("LR", str(lr)))
        study.run(load(exp_file), exp_file)
        lines.append(registry_line(capsys.readouterr().out))
    assert lines[0].startswith("Model registry: reg version 1 (val_loss ")
    assert lines[0].endswith(") registered as champion")
    assert "reg version 2" in lines[1] and "champion stays version 1" in lines[1]
    assert "reg version 3" in lines[2] and "champion moved from version 1" in lines[2]
    client = MlflowClient(local_store())
    assert str(client.get_model_version_by_alias("reg", "champion").version) == "3"

    assert cli.main(["best", str(exp_file)]) == 0
    out, err = capsys.readouterr()
    assert "Downloading artifacts" not in err  # MLflow's tqdm bar, for one small file
    assert "Champion: reg version 3 (models:/reg@champion)" in out
    assert "searched values: train.lr=0.05" in out
    assert "  lr: 0.05\n" in out  # the best_config.yaml of the winning sweep
    assert "mlflow.pytorch.load_model('models:/reg@champion').eval()" in out

    monkeypatch.setenv("MLFLOW_TRACKING_URI", local_store())
    model = mlflow.pytorch.load_model("models:/reg@champion")
    x = datasets.load(load(exp_file).data).x_val[:5]
    assert model(x).shape == (5, 10)
    info = get_model_info("models:/reg@champion")
    assert tuple(info.signature.inputs.to_dict()[0]["tensor-spec"]["shape"]) == (-1, 1, 8, 8)
    assert info.saved_input_example_info is not None


@pytest.mark.slow
def test_custom_trainable_registers_nothing_and_says_so(workdir, ray_local, capsys) -> None:
    exp_file = write_experiment(workdir, """
name: custom-reg
trainable: tests.trainables:quadratic
params: {x: 1.0}
search: {searcher: random, metric: score, mode: max, num_samples: 1}
""")
    study.run(load(exp_file), exp_file)
    assert "Model registry: nothing registered" in capsys.readouterr().out
    assert MlflowClient(local_store()).search_registered_models() == []


def test_best_without_a_champion_exits_2(workdir, capsys) -> None:
    from pipeline.results import tracking

    # a store that is not there: named, and not created (MLflow built an empty one, saying so)
    exp_file = write_experiment(workdir, SWEEP.replace("LR", "0.1"))
    assert cli.main(["best", str(exp_file)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [(f"error: tracking.uri: no MLflow store at {workdir / 'mlflow.db'} (no "
                    "sweep has logged there; check tracking.uri or MLFLOW_TRACKING_URI)")]
    assert not (workdir / "mlflow.db").exists()

    tracking.connect(local_store(), "reg", str(workdir / "ray_results"))
    assert cli.main(["best", str(exp_file)]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("error: no champion model named 'reg' in sqlite")


def test_load_network_rebuilds_a_torchvision_model_on_an_image_folder(tmp_path) -> None:
    import torch

    from bench.imagefolder_data import write_folder
    from pipeline.config import Experiment
    from pipeline.execution.trainable import STATE_FILE
    from pipeline.results.registry import load_network
    from pipeline.training.loop import setup

    root = write_folder(tmp_path / "images", per_class=6, classes=2)
    exp = Experiment.model_validate({
        "name": "tv", "data": {"dataset": "imagefolder", "root": str(root), "image_size": 16,
                               "normalize": True},
        "model": {"arch": "shufflenet_v2_x0_5"}})
    data = datasets.load(exp.data, exp.seed)
    trained = setup(exp, data).model.eval()
    torch.save({"model": trained.state_dict()}, tmp_path / STATE_FILE)
    model, example = load_network(exp, tmp_path, data)
    assert example.dtype == "float32" and example.shape[1:] == (3, 16, 16)
    assert float(example.max()) <= 1.0
    x = torch.from_numpy(example)
    assert torch.allclose(model(x), trained(x), atol=1e-5)
    assert not any(type(m).__module__.startswith("pipeline") for m in model.modules())


def _register(workdir, sections: dict):
    """A network set up (untrained) for `sections`, its weights saved as a trial's checkpoint,
    registered from there: (store URI, the registry's note, the network, the data)."""
    import torch

    from pipeline.config import Experiment
    from pipeline.execution.trainable import STATE_FILE
    from pipeline.results import registry, tracking
    from pipeline.training.loop import setup

    exp = Experiment.model_validate({"name": "elsewhere", **sections})
    uri = tracking.resolve_uri(exp.tracking.uri)
    store = tracking.connect(uri, exp.name, str(workdir / "ray_results"))
    parent = store.client.create_run(store.experiment_id).info.run_id
    data = datasets.load(exp.data, exp.seed)
    net = setup(exp, data).model.eval()
    torch.save({"model": net.state_dict()}, workdir / STATE_FILE)
    note = registry.register(store, exp, parent, workdir, 0.5, {"model.hidden": 8}, data)
    return uri, note, net, data


def test_a_model_registers_in_a_store_other_than_mlflows_default(workdir) -> None:
    """MLflow's SQL registry looked a `models:/<id>` source up in its global default store
    (./mlflow.db), not the sweep's: with any other tracking.uri the summary failed."""
    import torch

    uri, note, _, _ = _register(workdir, {
        "data": {"limit": 100}, "model": {"hidden": 8},
        "tracking": {"uri": "sqlite:///stores/elsewhere.db"}})

    assert note == "elsewhere version 1 (val_loss 0.5) registered as champion"
    version = MlflowClient(uri).get_model_version_by_alias("elsewhere", "champion")
    assert version.run_id == MlflowClient(uri).get_run(version.run_id).info.run_id
    model = mlflow.pytorch.load_model(f"{version.source}")
    assert model(torch.rand(2, 1, 8, 8)).shape == (2, 10)
    assert not (workdir / "mlflow.db").exists()  # nothing went to the default store


def test_a_registered_model_loads_as_a_module_even_with_data_dependent_control_flow(
        workdir, capsys) -> None:
    """MLflow 3 saved a torch.export program by default: loaded, it refused eval() and
    train(), and a network branching on a tensor's value could not be saved at all (the
    summary failed after the whole sweep)."""
    import torch

    uri, note, net, data = _register(workdir, {
        "data": {"factory": "tests.factories:blobs"},
        "model": {"factory": "tests.factories:gated_net", "hidden": 8},
        "tracking": {"uri": "sqlite:///gated.db"}})

    assert note.endswith("registered as champion")
    version = MlflowClient(uri).get_model_version_by_alias("elsewhere", "champion")
    model = mlflow.pytorch.load_model(version.source)
    model.train()
    model.eval()
    x = data.x_val[:6]
    assert torch.allclose(model(x), net(x), atol=1e-6)
    assert torch.allclose(model(x + 1), net(x + 1), atol=1e-6)  # the other branch
    assert "WARNING" not in capsys.readouterr().err


def test_a_registered_model_names_its_classes(workdir, monkeypatch) -> None:
    """An image folder's model gave logits nobody could map back to its folders: no class
    names anywhere (found from outside). Now on the version, in its MLmodel and in `best`."""
    import json

    from bench.imagefolder_data import write_folder
    from pipeline.results import registry

    root = write_folder(workdir / "images", per_class=6, classes=3)
    uri, _, _, data = _register(workdir, {
        "data": {"dataset": "imagefolder", "root": str(root), "image_size": 16},
        "model": {"arch": "cnn", "channels": 4, "hidden": 8}})
    names = sorted(p.name for p in root.iterdir())
    assert list(data.classes) == names
    version = MlflowClient(uri).get_model_version_by_alias("elsewhere", "champion")
    assert json.loads(version.tags["classes"]) == names
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    assert get_model_info("models:/elsewhere@champion").metadata == {"classes": names}
    with open(workdir / "best_config.yaml", "w") as f:
        f.write("name: elsewhere\n")
    MlflowClient(uri).log_artifact(version.run_id, str(workdir / "best_config.yaml"))
    from pipeline.config import Experiment

    found = registry.champion(uri, Experiment(name="elsewhere"))
    assert found.classes == names
    lines = cli._class_lines(found).splitlines()
    assert lines[-1] == "Classes (output index, name): " + ", ".join(
        f"{i} {name}" for i, name in enumerate(names))
