"""The model registry: the best trial's network as an MLflow PyTorch model, and its alias.

Every sweep registers a new version under the MLflow experiment's name; the alias `champion`
moves to it only when it beats the current champion on the sweep's metric, so
`models:/NAME@champion` always loads the best model any sweep has found.
"""
from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from mlflow.entities import LoggedModel, LoggedModelOutput, LoggedModelStatus
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from pipeline.config import Experiment
from pipeline.config.secrets import looks_secret
from pipeline.execution.trainable import STATE_FILE
from pipeline.results import tracking
from pipeline.training import data as datasets
from pipeline.training.models import build_model
from pipeline.training.normalize import to_unit

ALIAS = "champion"
CLASSES_TAG = "classes"
"""On a version (and in its MLmodel's metadata): the JSON list of class names by output
index; without them an image folder's model gave logits nobody could map back to folders."""
EXAMPLE_ROWS = 4


@dataclass(frozen=True)
class Champion:
    """What `python -m pipeline best` prints."""

    name: str
    version: str
    run_id: str
    metric: str
    value: float | None
    searched: str
    """The winning trial's searched values, `path=value` comma-separated."""
    config_yaml: str
    classes: list[str] | None = None
    """The class name of each output, by index (None: the data set named none)."""

    @property
    def uri(self) -> str:
        return f"models:/{self.name}@{ALIAS}"


def model_name(exp: Experiment) -> str:
    """The registered model's name: the MLflow experiment's, with '/' and ':' (allowed in an
    experiment's name, a Databricks path, refused in a model's after the whole sweep) as '-'."""
    name = exp.tracking.experiment or exp.name
    return name.replace("/", "-").replace(":", "-").strip("-") or exp.name


def is_better(new: float, old: float, mode: str) -> bool:
    return new < old if mode == "min" else new > old


def load_network(exp: Experiment, checkpoint_dir: Path,
                 data: datasets.Tensors) -> tuple[torch.nn.Module, np.ndarray]:
    """The best trial's network with its trained weights (on CPU, eval mode), and a few
    validation inputs ([0, 1] floats) as the model's input example."""
    model = build_model(exp.model, data.input_shape, data.num_classes, data.mean, data.std,
                        pretrained=False)
    state = torch.load(checkpoint_dir / STATE_FILE, map_location="cpu", weights_only=False)
    model.load_state_dict(state["model"])
    return model.portable().eval(), to_unit(data.x_val[:EXAMPLE_ROWS]).numpy()


def _current(client: MlflowClient, name: str) -> tuple[str, float | None, str] | None:
    """The champion's version, its `best_<metric>` value and metric name, or None."""
    try:
        version = client.get_model_version_by_alias(name, ALIAS)
    except MlflowException:
        return None
    metric = version.tags.get("metric", "")
    value = client.get_run(version.run_id).data.metrics.get(f"best_{metric}")
    return str(version.version), value, metric


def promote(client: MlflowClient, name: str, version: str, metric: str, mode: str,
            value: float) -> str:
    """Move the alias to `version` if it beats the champion; say what happened."""
    current = _current(client, name)
    if current is not None and current[0] == version:  # a resumed summary: already promoted
        current = None
    if current is not None and current[2] == metric and current[1] is not None \
            and not is_better(value, current[1], mode):
        return (f"{name} version {version} ({metric} {value:.4g}) registered; {ALIAS} stays "
                f"version {current[0]} ({metric} {current[1]:.4g} is as good or better)")
    client.set_registered_model_alias(name, ALIAS, version)
    if current is None:
        return f"{name} version {version} ({metric} {value:.4g}) registered as {ALIAS}"
    before = (f"{metric} {current[1]:.4g}" if current[2] == metric and current[1] is not None
              else f"not measured by {metric}")
    return (f"{name} version {version} ({metric} {value:.4g}) registered; {ALIAS} moved from "
            f"version {current[0]} ({before})")


def _ensure_registered_model(client: MlflowClient, name: str) -> None:
    try:
        client.create_registered_model(name)
    except MlflowException as error:
        if error.error_code != "RESOURCE_ALREADY_EXISTS":
            raise


def _logged_model(store: tracking.Store, parent_run_id: str) -> LoggedModel:
    """The parent run's model: the READY one an earlier, cut-off summary logged, else a new
    one (one it left PENDING, cut off mid-upload, is marked FAILED: it is not the model)."""
    client = store.client
    earlier = client.search_logged_models(
        [store.experiment_id], filter_string=f"source_run_id = '{parent_run_id}'")
    ready = [m for m in earlier if m.status == LoggedModelStatus.READY]
    if ready:
        return ready[0]
    for cut_off in earlier:
        client.finalize_logged_model(cut_off.model_id, "FAILED")
    logged = client.create_logged_model(store.experiment_id, name="model",
                                        source_run_id=parent_run_id)
    # what log_model does too: the run page then lists the model under "Logged models" (here,
    # before the upload: a READY model has its output logged, and logging one twice fails)
    client.log_outputs(parent_run_id, [LoggedModelOutput(logged.model_id, step=0)])
    return logged


def _version_source(store: tracking.Store, logged: LoggedModel) -> str:
    """Where a new version's files are. A tracking server resolves `models:/<id>` in its own
    store; a database store in this process resolves it through MLflow's global tracking URI
    (MLflow 3.x, `MlflowClient()` in its registry store), not this store's: with any
    `tracking.uri` but the default file it found no such model and the summary failed. Here
    the model's own artifact location is the source, as `models:/<id>` resolves to."""
    if store.uri.startswith(("http://", "https://")):
        return f"models:/{logged.model_id}"
    return logged.artifact_location


def register(store: tracking.Store, exp: Experiment, parent_run_id: str, checkpoint_dir: Path,
             value: float, searched: dict[str, object],
             data: datasets.Tensors | None = None) -> str:
    """Log the network on the parent run as a registered PyTorch model (with signature and
    input example) and move the alias if it is the best so far; returns what happened.

    Only explicit client calls: `mlflow.pytorch.log_model` needs the fluent API, whose
    `set_tracking_uri` exports MLFLOW_TRACKING_URI and would send later sweeps of this process
    to this store (ENVIRONMENT.md has the same trap with set_experiment)."""
    import mlflow.pytorch
    from mlflow.models import infer_signature

    name, metric, client = model_name(exp), exp.search.metric, store.client
    # a resumed sweep whose summary a stop cut off: the version and model it made, not new ones
    made = client.search_model_versions(f"name = '{name}' and run_id = '{parent_run_id}'")
    if made:
        return promote(client, name, str(made[0].version), metric, exp.search.mode, value)
    data = data if data is not None else datasets.load(exp.data, exp.seed)
    classes = list(data.classes) if data.classes is not None else None
    logged = _logged_model(store, parent_run_id)
    if logged.status != LoggedModelStatus.READY:
        model, example = load_network(exp, checkpoint_dir, data)
        with torch.no_grad():
            output = model(torch.from_numpy(example)).numpy()
        # Pickled, not MLflow 3's default torch.export program: that one refused eval()
        # and train() once loaded, and could not be made at all from a network with
        # data-dependent control flow (a model.factory's). MLflow warns on every pickled save
        # that loading runs code: a registry is the user's own, so that warning is kept quiet.
        logging.getLogger("mlflow.pytorch").setLevel(logging.ERROR)
        with tempfile.TemporaryDirectory() as folder:
            mlflow.pytorch.save_model(
                model, Path(folder) / "model", signature=infer_signature(example, output),
                input_example=example, serialization_format="pickle",
                pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"],
                metadata={"classes": classes} if classes else None)
            client.log_model_artifacts(logged.model_id, str(Path(folder) / "model"))
        client.finalize_logged_model(logged.model_id, "READY")
    _ensure_registered_model(client, name)
    version = client.create_model_version(
        name, _version_source(store, logged), run_id=parent_run_id, model_id=logged.model_id,
        tags={"metric": metric, f"best_{metric}": f"{value:.6g}",
              "searched": ", ".join(f"{path}={v}" for path, v in searched.items()
                                    if not looks_secret(path, v)),
              **({CLASSES_TAG: json.dumps(classes)} if classes else {})}).version
    return promote(client, name, str(version), metric, exp.search.mode, value)


def champion(tracking_uri: str, exp: Experiment) -> Champion | None:
    """The current champion of the experiment's registered model, with its best config."""
    client, name = MlflowClient(tracking_uri), model_name(exp)
    current = _current(client, name)
    if current is None:
        return None
    version, value, metric = current
    found = client.get_model_version(name, version)
    with tempfile.TemporaryDirectory() as folder:
        path = client.download_artifacts(found.run_id, "best_config.yaml", folder)
        config_yaml = Path(path).read_text()
    classes = found.tags.get(CLASSES_TAG)
    return Champion(name, version, found.run_id, metric, value, found.tags.get("searched", ""),
                    config_yaml, json.loads(classes) if classes else None)
