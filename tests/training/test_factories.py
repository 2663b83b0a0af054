"""A user's own data set and network (data.factory, model.factory) with the built-in loop:
the LR range test runs on them, training resumes exactly, the test split is scored."""
from __future__ import annotations

import pytest

from pipeline.config import ConfigError, Data, Experiment, Model, load
from pipeline.training import lr_range
from pipeline.training.data import load as load_data
from pipeline.training.loop import fit, score_test_split
from pipeline.training.models import build_model, check

from ..conftest import write_experiment

EXP = Experiment.model_validate({
    "name": "fac", "data": {"factory": "tests.factories:blobs", "batch_size": 16},
    "model": {"factory": "tests.factories:tiny_net", "hidden": 8},
    "train": {"epochs": 3, "lr": 0.1}, "lr_range_test": {"num_iter": 20}})


def test_data_factory_returns_the_users_tensors() -> None:
    data = load_data(EXP.data, seed=0)
    assert data.input_shape == (1, 4, 4) and data.num_classes == 2 and len(data.y_test) == 40
    assert data.source == "data.factory tests.factories:blobs"


def test_model_factory_builds_the_users_network() -> None:
    model = build_model(EXP.model, (1, 4, 4), 2)
    assert [type(m).__name__ for m in model.net] == ["Flatten", "Linear", "ReLU", "Linear"]
    assert model.net[1].out_features == 8


def test_lr_range_test_resume_and_test_split_work_for_factories() -> None:
    data = load_data(EXP.data, EXP.seed)
    curve = lr_range.range_test(EXP, data)
    assert curve.iterations > 5
    full = [e.metrics["val_loss"] for e in fit(EXP, data)]
    first = next(iter(fit(EXP, data)))
    assert full[1:] == [e.metrics["val_loss"] for e in fit(EXP, data, state=first.state())]
    *_, last = fit(EXP, data)
    scores = score_test_split(EXP, data, last.state()["model"])
    assert scores["test_acc"] > 0.8 and set(scores) == {"test_loss", "test_acc"}


def test_factories_that_return_the_wrong_thing_are_one_line() -> None:
    with pytest.raises(ConfigError, match="data.factory: tests.factories:not_tensors returned "
                                          "list, not pipeline.training.data.Tensors"):
        load_data(Data(factory="tests.factories:not_tensors"))
    with pytest.raises(ConfigError, match="model.factory: .* returned str, not a torch.nn"):
        build_model(Model(factory="tests.factories:not_a_module"), (1, 4, 4), 2)
    with pytest.raises(ConfigError, match="^model.factory: tests.factories:logits_and_features "
                                          "returns a tuple, not a tensor of 2 class scores"):
        check(Model(factory="tests.factories:logits_and_features", hidden=4), (1, 4, 4), 2)


@pytest.mark.parametrize("field", ["data.factory", "model.factory"])
def test_factories_that_cannot_be_imported_fail_at_load(tmp_path, field: str) -> None:
    path = write_experiment(tmp_path, "name: f\n")
    with pytest.raises(ConfigError, match=f"{field}: cannot import 'tests.factories:nope'"):
        load(path, [f"{field}=tests.factories:nope"])
    with pytest.raises(ConfigError, match=f"{field}:"):
        load(path, [f"{field}=not a spec"])
