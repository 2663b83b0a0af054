"""All MLflow calls: the experiment, one parent run per sweep, one child run per trial.

Experiment ids are resolved explicitly and passed around: `mlflow.set_experiment` exports
MLFLOW_EXPERIMENT_ID, which Ray's helpers read before their own arguments (ENVIRONMENT.md).
Child runs are found again by their `trial_id` tag, so a resumed sweep continues the same runs
instead of opening duplicates.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

from pipeline.config import ConfigError, Experiment
from pipeline.config.secrets import looks_secret, redact
from pipeline.execution import storage
from pipeline.results import store_schema

DEFAULT_URI = "sqlite:///mlflow.db"
PARENT_TAG = "mlflow.parentRunId"
# What Ray adds to every result; the rest is what the trainable reported.
RAY_RESULT_KEYS = {
    "timestamp", "pid", "training_iteration", "iterations_since_restore", "done",
    "time_since_restore", "time_this_iter_s", "time_total_s", "trial_id", "date", "hostname",
    "node_ip", "config", "checkpoint_dir_name", "should_checkpoint", "experiment_tag",
}
PLACEMENT_KEYS = ("node_id", "gpu_ids", "device", "node_ip")


def resolve_uri(configured: str | None) -> str:
    """The tracking URI, with a relative SQLite path made absolute (MLflow caches one engine
    per URI string, so a relative one would follow the first working folder of a process)."""
    uri = configured or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_URI
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri[len(prefix):].startswith("/"):
        uri = prefix + str(Path(uri[len(prefix):]).resolve())
    return uri


def check_reachable(uri: str, timeout_s: float = 5.0) -> None:
    """Fail before any trial runs when a tracking server does not answer its health check."""
    if not uri.startswith(("http://", "https://")):
        return
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout_s) as reply:
            if reply.status == 200:
                return
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise ConfigError(f"tracking.uri: cannot reach MLflow at {uri} ({reason})") from None
    raise ConfigError(f"tracking.uri: MLflow at {uri} is not healthy")


def check_exists(uri: str) -> None:
    """For commands that only read a store: a SQLite file that is not there is a wrong path
    (or no sweep yet), not a store to create (MLflow would build an empty one and say so)."""
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not Path(uri[len(prefix):]).exists():
        raise ConfigError(f"tracking.uri: no MLflow store at {uri[len(prefix):]} (no sweep has "
                          "logged there; check tracking.uri or MLFLOW_TRACKING_URI)")


@dataclass(frozen=True)
class Store:
    """A tracking store and the MLflow experiment this sweep logs into."""

    uri: str
    experiment_id: str

    @property
    def client(self) -> MlflowClient:
        return MlflowClient(self.uri)


def connect(uri: str, name: str, storage_path: str) -> Store:
    """Check the store and get (or create) the MLflow experiment `name`. A store MLflow cannot
    open (a path through a file, a file that is not a database, an unknown scheme) is one line
    naming tracking.uri, before anything runs."""
    check_reachable(uri)
    # MLflow logs two INFO lines to the terminal when it creates a new SQLite store's schema
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)
    try:
        with store_schema.creating(uri):
            return _experiment(MlflowClient(uri), uri, name, storage_path)
    except ConfigError:
        raise
    except Exception as error:  # noqa: BLE001 (whatever library could not open it)
        reason = (str(error).strip().splitlines() or [""])[0][:200]
        raise ConfigError(f"tracking.uri: cannot open an MLflow store at {uri} "
                          f"({type(error).__name__}{': ' + reason if reason else ''})"
                          ) from None


def _experiment(client: MlflowClient, uri: str, name: str, storage_path: str) -> Store:
    found = client.get_experiment_by_name(name)  # the first query creates the schema
    if found is not None and found.lifecycle_stage == "deleted":
        raise ConfigError(f"tracking.experiment: MLflow experiment {name!r} (id "
                          f"{found.experiment_id}) is deleted; restore it (mlflow experiments "
                          f"restore -x {found.experiment_id}) or set another tracking.experiment")
    if found is not None:
        return Store(uri, found.experiment_id)
    # A local SQLite store would put artifacts under ./mlruns, which MLflow 3 refuses to
    # read as a file store; keep them in ./mlartifacts as the docs and `make ui` expect.
    location = None
    if uri.startswith("sqlite:"):
        location = (storage.mlflow_artifact_location(storage_path, name)
                    or (Path("mlartifacts") / name).resolve().as_uri())
    return Store(uri, client.create_experiment(name, artifact_location=location))


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested config -> {"a.b": value}."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{path}."))
        else:
            flat[path] = value
    return flat



def safe_params(config: dict[str, Any]) -> list[Param]:
    """Flattened params with anything that looks like a secret left out."""
    return [Param(key, str(value)[:6000]) for key, value in flatten(config).items()
            if not looks_secret(key, value)]


def log_params(client: MlflowClient, run_id: str, params: list[Param]) -> None:
    for start in range(0, len(params), 100):  # MLflow takes at most 100 params per batch
        client.log_batch(run_id, params=params[start:start + 100])


def complete_params(client: MlflowClient, run_id: str, params: list[Param]) -> None:
    """Log the params an existing run lacks. Its params go in batches after the run is
    created, so a stop in between leaves it with some or none; the ones it has stay as they
    are (a param cannot change, and PBT changes a trial's config after its first start)."""
    logged = client.get_run(run_id).data.params
    log_params(client, run_id, [param for param in params if param.key not in logged])


RESUMABLE_ELSEWHERE = ("tracking.", "storage.", "cluster.", "resources.")
"""Where and on what a sweep runs, which a resume may change (another cluster address, a new
node type); everything else shapes what it computes."""
FINGERPRINT_TAG = "pipeline.config_sha256"


def _settings(exp: Experiment) -> dict[str, str]:
    """The experiment's params as logged, less where it runs."""
    return {p.key: p.value for p in safe_params(exp.model_dump(mode="json"))
            if not p.key.startswith(RESUMABLE_ELSEWHERE)}


def fingerprint(exp: Experiment) -> str:
    return hashlib.sha256(json.dumps(_settings(exp), sort_keys=True).encode()).hexdigest()


def check_unchanged(store: Store, run_id: str, sweep_name: str, exp: Experiment) -> None:
    """Refuse to resume a sweep with other settings than it started with: Ray Tune restores a
    sweep as it started (its space, trial count, searcher and trial config), so a changed
    `num_samples` or space was ignored without a word. The parent run carries a fingerprint
    of its settings from its first request (a sweep older than that is not checked); the
    params it logged name what changed."""
    run = store.client.get_run(run_id)
    started_with = run.data.tags.get(FINGERPRINT_TAG)
    if started_with is None or started_with == fingerprint(exp):
        return
    logged = {key: value for key, value in run.data.params.items()
              if not key.startswith(RESUMABLE_ELSEWHERE)}
    now = _settings(exp)
    changed = sorted(key for key in logged.keys() | now.keys()
                     if logged.get(key) != now.get(key))
    shown = "; ".join(f"{key}: {logged.get(key, '(none)')} -> {now.get(key, '(none)')}"
                      for key in changed[:4]) + ("; ..." if len(changed) > 4 else "")
    raise ConfigError(f"--resume: sweep {sweep_name} started with other settings "
                      f"({shown or 'a secret value'}); a resumed sweep keeps its own: undo "
                      "the change, or run without --resume to start a new sweep")


def result_metrics(result: dict[str, Any]) -> dict[str, float]:
    """The numeric values a trainable reported, without Ray's own bookkeeping."""
    return {key: float(value) for key, value in result.items()
            if key not in RAY_RESULT_KEYS and isinstance(value, (int, float))
            and not isinstance(value, bool)}


def open_sweep(store: Store, exp: Experiment, sweep_name: str, exp_file: Path | None,
               resume_tags: dict[str, str]) -> str:
    """Create the parent run with the tags `--resume` finds it by, in the same request (a
    stop just after leaves a run that resume continues, never an orphan), then its config."""
    run = store.client.create_run(
        store.experiment_id, run_name=sweep_name,
        tags={"sweep": sweep_name, "searcher": exp.search.searcher,
              FINGERPRINT_TAG: fingerprint(exp), **resume_tags})
    record_sweep_config(store, run.info.run_id, exp, exp_file)
    return run.info.run_id


def record_sweep_config(store: Store, run_id: str, exp: Experiment,
                        exp_file: Path | None) -> None:
    """The parent run's params and experiment file; on resume only what a stop left out."""
    client = store.client
    complete_params(client, run_id, safe_params(exp.model_dump(mode="json")))
    if exp_file is None or any(a.path == exp_file.name for a in client.list_artifacts(run_id)):
        return
    raw = exp.model_dump(mode="json")
    if redact(raw) == raw:
        client.log_artifact(run_id, str(exp_file))
    else:  # the file as written holds a secret: log the validated config, redacted
        client.log_text(run_id, yaml.safe_dump(redact(raw), sort_keys=False), exp_file.name)


def child_run_ids(store: Store, parent_run_id: str) -> dict[str, str]:
    """Trial id -> MLflow run id of a sweep's child runs."""
    runs = store.client.search_runs([store.experiment_id],
                                    f"tags.`{PARENT_TAG}` = '{parent_run_id}'",
                                    max_results=10_000)
    return {r.data.tags["trial_id"]: r.info.run_id for r in runs if "trial_id" in r.data.tags}


def failed_trial_ids(store: Store, parent_run_id: str) -> set[str]:
    """The trials of a sweep whose child run ended FAILED."""
    runs = store.client.search_runs([store.experiment_id],
                                    f"tags.`{PARENT_TAG}` = '{parent_run_id}' and "
                                    "attributes.status = 'FAILED'", max_results=10_000)
    return {r.data.tags["trial_id"] for r in runs if "trial_id" in r.data.tags}


def log_files(store: Store, run_id: str, paths: Iterable[Path], folder: str | None = None) -> None:
    for path in paths:
        store.client.log_artifact(run_id, str(path), folder)


def log_metrics(store: Store, run_id: str, values: dict[str, float], once: bool = False) -> None:
    """Step-0 values; `once`: a summary's, those the run already has left as they are (a
    summary stopped midway runs again on resume, on the same trials: each value twice)."""
    if once:
        present = store.client.get_run(run_id).data.metrics
        values = {key: value for key, value in values.items() if key not in present}
        if not values:
            return
    now_ms = int(time.time() * 1000)
    store.client.log_batch(run_id, metrics=[Metric(k, float(v), now_ms, 0)
                                            for k, v in values.items()])


def close_sweep(store: Store, run_id: str, status: str = "FINISHED") -> None:
    store.client.set_terminated(run_id, status=status)
