"""Experiment files: every bad input is one ConfigError line naming the field."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.config import ConfigError, Experiment, load, set_path

from ..conftest import write_experiment

ROOT = Path(__file__).resolve().parents[2]
BASE = "name: t\nsearch:\n  space:\n    train.lr: {loguniform: [1.0e-3, 1.0e-1]}\n"


@pytest.fixture
def base(tmp_path: Path) -> Path:
    path = tmp_path / "exp.yaml"
    path.write_text(BASE)
    return path


@pytest.mark.parametrize("experiment", sorted((ROOT / "experiments").glob("*.yaml")),
                         ids=lambda p: p.name)
def test_every_shipped_experiment_loads(experiment: Path) -> None:
    assert isinstance(load(experiment), Experiment)


def test_overrides_are_typed_and_reach_nested_fields(base: Path) -> None:
    exp = load(base, ["train.epochs=3", "model.dropout=0.25",
                      "search.space.model.hidden={choice: [8, 16]}"])
    assert exp.train.epochs == 3
    assert exp.model.dropout == 0.25
    assert exp.search.space["model.hidden"] == {"choice": [8, 16]}


def test_set_path_keeps_dotted_keys_under_free_form_sections() -> None:
    tree: dict = {}
    set_path(tree, "params.a.b", 1)
    set_path(tree, "search.space.train.lr", "lr_range")
    assert tree == {"params": {"a.b": 1}, "search": {"space": {"train.lr": "lr_range"}}}


BAD_OVERRIDES = [
    (["train.lrr=3"], "train.lrr: unknown key"),
    (["model.extra.deep=3"], "model.extra: unknown key"),
    (["train.epochs=many"], "train.epochs:"),
    (["search.space.train.lr={loguniform: [0.1, 0.001]}"], "search.space.train.lr.loguniform:"),
    (["search.space.train.lr={loguniform: [0, 1]}"], "bounds must be positive"),
    (["search.space.train.lr={uniform: [1]}"], "search.space.train.lr.uniform:"),
    (["search.space.train.lr={normal: [0, 1]}"], "unknown domain 'normal'"),
    (["search.space.model.nope={choice: [1]}"], "search.space.model.nope: names no field"),
    (["search.space.model={choice: [1]}"], "search.space.model: names no field"),
    (["search.space.model.dropout={uniform: [0, 1.5]}"], "search.space.model.dropout: value 1.5"),
    (["search.space.model.hidden={choice: []}"], "expected a non-empty list"),
    (["search.space.model.hidden={randint: [1.5, 4]}"], "bounds must be integers"),
    (["search.space.train.momentum=lr_range"], "lr_range only applies to train.lr"),
    (["search.num_samples=0"], "search.num_samples:"),
    (["search.searcher=annealing"], "search.searcher:"),
    (["search.scheduler=pbt2"], "search.scheduler:"),
    (["data.dataset=imagenet"], "data.dataset:"),
    (["model.arch=vit"], "model.arch:"),
    (["search.metric=val_acc"], "search.mode: val_acc is better when max"),
    (["search.metric=accuracy"], "search.metric: 'accuracy' is not reported"),
    (["search.searcher=grid"], "searcher grid takes only {grid: [...]}"),
    (["search.space={}", "search.searcher=bayes"], "searcher bayes needs a non-empty space"),
    (["trainable=no_such_module:fn"], "trainable: cannot import 'no_such_module:fn'"),
    (["trainable=not a spec"], "trainable:"),
    (["resources.gpu=-1"], "resources.gpu:"),
    (["lr_range_test.end_lr=1.0e-8"], "lr_range_test: end_lr must be greater"),
    (["data.val_fraction=1.5"], "data.val_fraction:"),
    (["search.points_to_evaluate=[{model.hidden: 3}]"], "not in search.space"),
    (["novalue"], "expected key.path=value"),
    (["search.budget.usd=0"], "search.budget.usd:"),
    (["search.budget.hours=-1"], "search.budget.hours:"),
    (["search.budget.minutes=5"], "search.budget.minutes: unknown key"),
    (["search.bayes.acq_func=UCB"], "search.bayes.acq_func:"),
    (["search.bayes.base_estimator=GBRT"], "search.bayes.base_estimator:"),
    (["search.bayes.n_initial_points=0"], "search.bayes.n_initial_points:"),
    (["search.bayes.output_warping=log"], "search.bayes.output_warping:"),
    (["search.bayes.pending=liar"], "search.bayes.pending:"),
    (["storage.path=s3://"], "storage.path:"),
    (["model.arch=resnet19"], "model.arch: unknown model 'resnet19'"),
    # resnet18 is a built-in and a torchvision name: offered once
    (["model.arch=resnet19"], "closest: resnet18, resnet152, resnet101"),
    (["model.arch=resnt18"], "closest: resnet18"),
    (["search.space.model.arch={choice: [cnn, efficientnet_b9]}"],
     "unknown model 'efficientnet_b9'"),
    (["model.freeze=head"], "model.freeze:"),
    (["model.freeze=backbone"], "model.freeze: backbone needs model.weights"),
    (["model.factory=not a spec"], "model.factory:"),
    (["data.augment=[rotate]"], "data.augment.0:"),
    (["data.augment=flip"], "data.augment:"),
    (["data.crop_padding=-1"], "data.crop_padding:"),
    (["data.image_size=4"], "data.image_size:"),
    (["data.test_fraction=1.0"], "data.test_fraction:"),
    (["data.test_fraction=-0.1"], "data.test_fraction:"),
    (["data.val_fraction=0.5", "data.test_fraction=0.5"], "val_fraction + test_fraction"),
    (["data.cache=disk"], "data.cache:"),
    (["data.memory_budget_mb=0"], "data.memory_budget_mb:"),
    (["data.workers=-1"], "data.workers:"),
    (["data.normalize=maybe"], "data.normalize:"),
    (["data.mean=[0.5]"], "data.mean and data.std: give both"),
    (["data.factory=tests.nowhere:load"], "data.factory: cannot import"),
    (["train.compile=sometimes"], "train.compile:"),
    # held-out probes: each of these was accepted, and the sweep ran without the value
    # meaning anything (a searched num_samples), failed every trial (fractional widths), or
    # dropped the override (a --set of a searched value)
    (["search.space.search.num_samples={choice: [1, 2]}"],
     "search.space.search.num_samples: not a value a trial trains with"),
    (["search.space.resources.cpu={choice: [1, 2]}"], "search.space.resources.cpu: not a value"),
    (["search.space.tracking.uri={choice: [a, b]}"], "search.space.tracking.uri: not a value"),
    (["search.space.model.hidden={uniform: [8, 64]}"],
     ("search.space.model.hidden.uniform: draws fractional values, and model.hidden takes "
      "whole numbers")),
    (["search.space.data.batch_size={loguniform: [16, 256]}"],
     "search.space.data.batch_size.loguniform: draws fractional values"),
    (["train.lr=0.5"], "--set train.lr: train.lr is searched (search.space.train.lr)"),
    (["search.points_to_evaluate=[{train.lr: -5.0}]"],
     "search.points_to_evaluate[0].train.lr: value -5.0 is invalid"),
    (["search.points_to_evaluate=[{train.lr: 0.001}, {train.lr: 5.0}]"],
     "search.points_to_evaluate[1].train.lr: value 5.0 is outside loguniform [0.001, 0.1]"),
    (["search.points_to_evaluate=[{train.lr: abc}]"],
     "search.points_to_evaluate[0].train.lr: value 'abc' is invalid"),
    # pydantic's lax mode took these without a word
    (["train.epochs=true"], "train.epochs: expected a number, got true"),
    (["train.nesterov='yes'"], "train.nesterov: expected true or false, got the string 'yes'"),
    (["search.num_samples='1'"], "search.num_samples: expected a whole number, got the string"),
    (["search.space.train.lr=lr_range"],
     "search.space.train.lr: lr_range needs lr_range_test.enabled: true"),
    (["search.scheduler=asha", "search.space.train.epochs={grid: [1, 4]}"],
     "search.space.train.epochs: not searchable with scheduler asha"),
    # held-out probes: the data set is loaded once per sweep, and an arch reads only its own
    # size fields, so every trial trained alike while the table showed different values
    (["search.space.data.image_size={grid: [16, 32]}"],
     "search.space.data.image_size: the data set is loaded once per sweep"),
    (["search.space.data.val_fraction={choice: [0.1, 0.2]}"],
     "search.space.data.val_fraction: the data set is loaded once per sweep"),
    (["search.space.data.normalize={choice: [true, false]}"], "searchable data fields: "),
    (["model.arch=cnn", "search.space.model.depth={randint: [1, 3]}"],
     "search.space.model.depth: model.arch cnn does not read depth"),
    (["model.arch=resnet50", "search.space.model.dropout={uniform: [0, 0.5]}"],
     "search.space.model.dropout: model.arch resnet50 does not read dropout"),
    (["search.space.model.arch={choice: [cnn, resnet18]}", "search.space.model.depth={grid: [1]}"],
     "model.arch cnn, resnet18 does not read depth"),
    # held-out probes of the bayes searcher: accepted, then meaning nothing or failing late
    (["search.bayes.noise=-1"], "search.bayes.noise"),
    (["search.points_to_evaluate=[{train.lr: 0.01, _result: abc}]"],
     "search.points_to_evaluate[0]._result: the known score of that point, a finite number"),
    (["search.points_to_evaluate=[{train.lr: 0.01, _result: .nan}]"], "_result: the known score"),
    (["search.space={params.x: {choice: [1, '1']}}"],
     "search.space.params.x: choices [1, '1'] do not print distinctly"),
]


@pytest.mark.parametrize(("overrides", "message"), BAD_OVERRIDES,
                         ids=[" ".join(o) for o, _ in BAD_OVERRIDES])
def test_bad_values_name_the_field(base: Path, overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as error:
        load(base, overrides)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(("text", "message"), [
    ("name: t\nsearch: [unclosed", "not valid YAML"),
    ("- a\n- b\n", "expected a mapping of sections, got list"),
    ("", "expected a mapping of sections, got NoneType"),
    ("name: t\nsurch: {}\n", "surch: unknown key"),
    ("seed: 1\n", "name: Field required"),
    # PyYAML keeps the last of two keys: the second train section replaced the first whole
    ("name: t\ntrain: {epochs: 2}\ntrain: {lr: 0.1}\n",
     r"key 'train' appears twice in one section \(line 3\)"),
    ("name: t\ntrain:\n  lr: 0.1\n  lr: 0.2\n", r"key 'lr' appears twice"),
])
def test_bad_files(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load(path)


def test_exponents_without_a_dot_are_numbers_in_a_domain_too(tmp_path: Path) -> None:
    """YAML 1.1 reads 1e-5 as a string: `train: {lr: 1e-3}` loaded, a domain of the same
    numbers was refused as `expected [low, high] numbers`."""
    path = tmp_path / "exp.yaml"
    path.write_text("name: t\ntrain: {lr: 1e-3}\nsearch:\n  space:\n"
                    "    train.weight_decay: {loguniform: [1e-5, 1e-2]}\n")
    assert load(path).search.space["train.weight_decay"] == {"loguniform": [1e-5, 1e-2]}


def test_numbers_written_as_yaml_1_1_strings_still_load(base: Path) -> None:
    assert load(base, ["train.weight_decay='1e-4'"]).train.weight_decay == 1e-4


def test_searchable_values_still_load(base: Path) -> None:
    exp = load(base, ["search.space.seed={choice: [1, 2]}",
                      "search.space.model.dropout={uniform: [0, 0.5]}",
                      "search.space.model.hidden={randint: [8, 64]}"])
    assert list(exp.search.space) == ["train.lr", "seed", "model.dropout", "model.hidden"]
    # a size field one of the searched archs reads, a model factory (it may read any), and
    # the data fields a trial reads itself
    assert load(base, ["search.space.model.arch={choice: [mlp, cnn]}",
                       "search.space.model.depth={randint: [1, 3]}"]).search.space
    assert load(base, ["model.factory=tests.factories:tiny_net",
                       "search.space.model.channels={choice: [4, 8]}"]).search.space
    assert load(base, ["search.space.data.batch_size={choice: [16, 32]}",
                       "search.space.data.augment={choice: [[], [flip]]}",
                       "search.space.data.crop_padding={choice: [2, 4]}"]).search.space


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such experiment file"):
        load(tmp_path / "nope.yaml")


def test_yaml_is_parsed_safely(tmp_path: Path) -> None:
    path = tmp_path / "evil.yaml"
    path.write_text("name: !!python/object/apply:os.system ['echo hacked']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load(path)


@pytest.mark.parametrize(("source", "message"), [
    ("import os\n\ndef load(cfg, seed):\n    pass\n\nROOT = Path('data')\n",
     r"NameError: name 'Path' is not defined \(at .*/{module}\.py:6\)"),
    ("import json\nLABELS = json.load(open('/nowhere/labels.json'))\n",
     r"FileNotFoundError: .*/nowhere/labels.json' \(at .*/{module}\.py:2\)"),
    ("def load(cfg, seed):\n    return [\n\n", r"SyntaxError: .* \(at .*/{module}\.py:2\)"),
])
@pytest.mark.parametrize("field", ["data.factory", "model.factory", "trainable"])
def test_a_module_that_fails_as_it_is_imported_is_one_line_saying_where(
        base: Path, monkeypatch, source: str, message: str, field: str) -> None:
    """An error other than ImportError in the module's own code was `failed: NameError: ...`,
    exit 1, naming neither the field nor the file."""
    module = f"fails_at_import_{abs(hash((source, field)))}"
    (base.parent / f"{module}.py").write_text(source)
    monkeypatch.syspath_prepend(str(base.parent))
    expected = f"^{field}: importing '{module}:load' raised {message.format(module=module)}$"
    with pytest.raises(ConfigError, match=expected):
        load(base, [f"{field}={module}:load"])


def test_custom_trainable_may_report_any_metric(base: Path) -> None:
    exp = load(base, ["trainable=tests.trainables:quadratic", "search.metric=score",
                      "search.mode=max"])
    assert exp.search.metric == "score"


KEYS = st.sampled_from(["name", "seed", "data", "model", "train", "search", "resources",
                        "tracking", "params", "dataset", "lr", "space", "x"])
LEAVES = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.floats(allow_nan=True),
                   st.text(max_size=5))
VALUES = st.recursive(LEAVES, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(KEYS, inner, max_size=3)), max_leaves=8)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(KEYS, VALUES, max_size=6))
def test_random_mappings_give_an_experiment_or_one_clear_error(tmp_path_factory, raw) -> None:
    path = tmp_path_factory.mktemp("h") / "exp.yaml"
    path.write_text(yaml.safe_dump(raw))
    try:
        exp = load(path)
    except ConfigError as error:
        assert str(error) and "\n" not in str(error)
    else:
        assert isinstance(exp, Experiment)


def test_relative_file_paths_are_made_absolute_for_the_trials(tmp_path, monkeypatch) -> None:
    from pipeline.config import with_absolute_paths

    monkeypatch.chdir(tmp_path)
    exp = load(write_experiment(tmp_path, """
name: paths
data: {dataset: imagefolder, root: photos}
model: {arch: resnet18, weights: nets/w.pt}
search:
  space:
    model.weights: {choice: [a.pth, /abs/b.pt, IMAGENET1K_V1]}
"""))
    anchored = with_absolute_paths(exp)
    assert anchored.data.root == tmp_path / "photos"
    assert anchored.model.weights == str(tmp_path / "nets" / "w.pt")
    assert anchored.search.space["model.weights"] == {
        "choice": [str(tmp_path / "a.pth"), "/abs/b.pt", "IMAGENET1K_V1"]}  # a name stays
    assert exp.data.root == Path("photos")  # the loaded experiment, as written, is kept
    named = exp.model_copy(update={"model": exp.model.model_copy(update={"weights": "DEFAULT"}),
                                   "data": exp.data.model_copy(update={"root": None})})
    assert with_absolute_paths(named).model.weights == "DEFAULT"
    assert with_absolute_paths(named).data.root is None
