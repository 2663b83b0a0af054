"""The experiment file's schema: every section typed, every field documented where declared.

Validated once at the edge (`pipeline.config.loading`), frozen afterwards, so nothing
downstream re-checks anything.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from pipeline.config.base import ConfigError, Strict
from pipeline.config.paths import set_path
from pipeline.config.search_options import Search
from pipeline.config.trial_options import (
    FACTORY,
    MUTABLE_PATHS,
    Data,
    LRRangeTest,
    Model,
    Train,
)

# Metrics the built-in trainable reports, with the direction that makes each one better.
BUILTIN_METRICS: dict[str, Literal["min", "max"]] = {
    "val_loss": "min",
    "val_acc": "max",
    "train_loss": "min",
}


class Resources(Strict):
    cpu: float = Field(1.0, gt=0.0)
    """CPUs per trial (also the trial's torch threads, at least one)."""
    gpu: float = Field(0.0, ge=0.0)
    """GPUs per trial; fractions pack several trials on one GPU."""


class Tracking(Strict):
    uri: str | None = None
    """MLflow tracking URI; null: MLFLOW_TRACKING_URI, else sqlite:///mlflow.db."""
    experiment: str | None = None
    """MLflow experiment name; null: the experiment's `name`."""


class Storage(Strict):
    path: str = "ray_results"
    """Where Ray Tune keeps results and checkpoints: a folder or s3://bucket/prefix. With
    s3:// the MLflow artifacts of a local store go there too, under `mlartifacts/`."""

    @field_validator("path")
    @classmethod
    def _s3_bucket(cls, path: str) -> str:
        if path.startswith("s3://") and len(path[5:].split("/")[0]) < 3:
            raise ValueError(f"{path!r} names no bucket (expected s3://bucket/prefix)")
        return path


class Cluster(Strict):
    address: str | None = None
    """Ray address to join; null: RAY_ADDRESS, else a local Ray."""
    autoscaler_config: Path | None = None
    """The cluster's autoscaler YAML (e.g. cluster/aws.yaml), read to learn which node types
    it can add; null: ~/ray_bootstrap_config.yaml when it exists (where `ray up` leaves it on
    the head). Used when joining a cluster, and for cost estimates (its price table)."""
    node_type: str | None = None
    """Node type trials are billed at in cost estimates and search.budget.usd: a key of the
    autoscaler config's metadata.prices_usd_per_hour. null: on a local Ray `local` ($0); on a
    cluster, each trial's node matched by its CPU/GPU count (spot types first)."""


class Experiment(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    """Names the sweep and, unless tracking.experiment is set, the MLflow experiment."""
    seed: int = 0
    data: Data = Data()
    model: Model = Model()
    train: Train = Train()
    lr_range_test: LRRangeTest = LRRangeTest()
    search: Search = Search()
    resources: Resources = Resources()
    tracking: Tracking = Tracking()
    storage: Storage = Storage()
    cluster: Cluster = Cluster()
    trainable: str | None = Field(None, pattern=FACTORY)
    """`package.module:function`, a Ray Tune function trainable; null: the built-in one."""
    params: dict[str, Any] = Field(default_factory=dict)
    """Free-form values for a custom trainable; searchable as params.<key>."""

    @model_validator(mode="after")
    def _consistent(self) -> Experiment:
        if self.trainable is None:
            natural = BUILTIN_METRICS.get(self.search.metric)
            if natural is None:
                raise ValueError(
                    f"search.metric: {self.search.metric!r} is not reported by the built-in "
                    f"trainable (one of {sorted(BUILTIN_METRICS)})")
            if natural != self.search.mode:
                raise ValueError(
                    f"search.mode: {self.search.metric} is better when {natural}, not "
                    f"{self.search.mode}")
        return self

    def trial_config(self) -> dict[str, Any]:
        """The nested dict a trial receives (search, tracking and storage left out)."""
        return self.model_dump(mode="json", include=TRIAL_SECTIONS)

    def with_values(self, values: dict[str, Any]) -> Experiment:
        """A copy with dotted-path values applied and re-validated."""
        raw = self.model_dump(mode="json")
        for path, value in values.items():
            set_path(raw, path, value)
        return validate(raw)

    def with_trial_config(self, config: dict[str, Any]) -> Experiment:
        """A copy with a trial's nested config (sampled values in place) swapped in."""
        return validate({**self.model_dump(mode="json"), **config})


def mutable_paths(exp: Experiment) -> list[str]:
    """Searched paths PBT may change mid-run: MUTABLE_PATHS for the built-in trainable, any
    params.* for a custom one. Other searched values are drawn once and, on an exploit,
    copied from the trial cloned along with its weights."""
    return [path for path in exp.search.space
            if (path in MUTABLE_PATHS if exp.trainable is None else path.startswith("params."))]


TRIAL_SECTIONS = {"name", "seed", "data", "model", "train", "resources", "params"}


def format_error(error: ValidationError) -> str:
    """The first of pydantic's errors as one line: `field.path: message`."""
    first = error.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    if first["type"] == "extra_forbidden":
        message = "unknown key"
    else:
        message = first["msg"].removeprefix("Value error, ")
    if not where or message.startswith(where.split(".")[0] + "."):
        return message  # the validator already named the field
    return f"{where}: {message}"


def validate(raw: dict[str, Any]) -> Experiment:
    """A raw nested dict -> Experiment, or one ConfigError line naming the field."""
    try:
        return Experiment.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(format_error(error)) from None

