"""All MLflow calls: the experiment, one parent run per sweep, one child run per trial.

Experiment ids are resolved explicitly and passed around: `mlflow.set_experiment` exports
MLFLOW_EXPERIMENT_ID, which Ray's helpers read before their own arguments (ENVIRONMENT.md).
Child runs are found again by their `trial_id` tag, so a resumed sweep continues the same runs
instead of opening duplicates.
"""
from __future__ import annotations

import os
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient
from ray import tune

from pipeline.config import ConfigError, Experiment
from pipeline.config.secrets import looks_secret, redact
from pipeline.execution import storage
from pipeline.execution.trainable import last_error_line
from pipeline.results import lineage

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


@dataclass(frozen=True)
class Store:
    """A tracking store and the MLflow experiment this sweep logs into."""

    uri: str
    experiment_id: str

    @property
    def client(self) -> MlflowClient:
        return MlflowClient(self.uri)


def connect(uri: str, name: str, storage_path: str) -> Store:
    """Check the store and get (or create) the MLflow experiment `name`."""
    check_reachable(uri)
    client = MlflowClient(uri)
    found = client.get_experiment_by_name(name)
    if found is not None:
        return Store(uri, found.experiment_id)
    # A local SQLite store would put artifacts under ./mlruns, which MLflow 3 refuses to read
    # as a file store; keep them in ./mlartifacts as the docs and `make ui` expect.
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


def result_metrics(result: dict[str, Any]) -> dict[str, float]:
    """The numeric values a trainable reported, without Ray's own bookkeeping."""
    return {key: float(value) for key, value in result.items()
            if key not in RAY_RESULT_KEYS and isinstance(value, (int, float))
            and not isinstance(value, bool)}


def open_sweep(store: Store, exp: Experiment, sweep_name: str, exp_file: Path | None) -> str:
    """Create the parent run holding the experiment file and fixed config."""
    client = store.client
    run = client.create_run(store.experiment_id, run_name=sweep_name,
                            tags={"sweep": sweep_name, "searcher": exp.search.searcher})
    log_params(client, run.info.run_id, safe_params(exp.model_dump(mode="json")))
    if exp_file is not None:
        raw = exp.model_dump(mode="json")
        if redact(raw) == raw:
            client.log_artifact(run.info.run_id, str(exp_file))
        else:  # the file as written holds a secret: log the validated config, redacted
            client.log_text(run.info.run_id, yaml.safe_dump(redact(raw), sort_keys=False),
                            exp_file.name)
    return run.info.run_id



def child_run_ids(store: Store, parent_run_id: str) -> dict[str, str]:
    """Trial id -> MLflow run id of a sweep's child runs."""
    runs = store.client.search_runs([store.experiment_id],
                                    f"tags.`{PARENT_TAG}` = '{parent_run_id}'",
                                    max_results=10_000)
    return {r.data.tags["trial_id"]: r.info.run_id for r in runs if "trial_id" in r.data.tags}


class SweepLogger(tune.Callback):
    """Ray Tune callback: a child run per trial, every reported metric per epoch.

    Calls are queued and sent in order; when the tracking server is down they stay queued and
    are retried at every later event and at the end, so an outage loses nothing.
    """

    def __init__(self, store: Store, parent_run_id: str, flush_timeout_s: float = 120.0):
        self.store = store
        self.parent_run_id = parent_run_id
        self.flush_timeout_s = flush_timeout_s
        self.run_ids: dict[str, str] = {}
        self._started: set[str] = set()  # trials started, and ended, in this session
        self._ended: set[str] = set()
        self._queue: deque[Callable[[MlflowClient], None]] = deque()
        self._client: MlflowClient | None = None

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles callbacks with the experiment state; the client and queue stay behind.
        return {**self.__dict__, "_client": None, "_queue": deque(), "run_ids": {},
                "_started": set(), "_ended": set()}

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            self._client = self.store.client
        return self._client

    def setup(self, **info: Any) -> None:
        """Find the child runs of a resumed sweep, so its trials continue them."""
        self.run_ids = child_run_ids(self.store, self.parent_run_id)

    def _send(self, action: Callable[[MlflowClient], None]) -> None:
        self._queue.append(action)
        self.flush()

    def flush(self) -> bool:
        """Send what is queued, in order; False (and keep the rest) while MLflow is down."""
        while self._queue:
            try:
                self._queue[0](self.client)
            except Exception as error:  # MLflow raises several types for a dead server
                if len(self._queue) == 1 or len(self._queue) % 50 == 0:
                    print(f"MLflow unreachable ({type(error).__name__}); "
                          f"{len(self._queue)} update(s) queued", flush=True)
                return False
            self._queue.popleft()
        return True

    def _create(self, trial: Any) -> Callable[[MlflowClient], None]:
        trial_id, name, config = trial.trial_id, str(trial), dict(trial.config)

        def create(client: MlflowClient) -> None:
            if trial_id not in self.run_ids:
                run = client.create_run(self.store.experiment_id, run_name=name,
                                        tags={PARENT_TAG: self.parent_run_id,
                                              "trial_id": trial_id})
                log_params(client, run.info.run_id, safe_params(config))
                self.run_ids[trial_id] = run.info.run_id
            client.update_run(self.run_ids[trial_id], status="RUNNING")
        return create

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._started.add(trial.trial_id)
        self._send(self._create(trial))

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict,
                        **info: Any) -> None:
        step, now_ms = int(result.get("training_iteration", 0)), int(time.time() * 1000)
        metrics = [Metric(key, value, now_ms, step)
                   for key, value in result_metrics(result).items()]
        tags = [RunTag(key, str(result[key])) for key in PLACEMENT_KEYS if key in result]
        trial_id = trial.trial_id
        tags += lineage.exploit_tags(result, self.run_ids)
        self._send(lambda c: c.log_batch(self.run_ids[trial_id], metrics=metrics, tags=tags))

    def _end(self, trial: Any, status: str, error: str | None = None) -> None:
        trial_id = trial.trial_id

        def end(client: MlflowClient) -> None:
            if error is not None:
                client.set_tag(self.run_ids[trial_id], "error", error[:5000])
            client.set_terminated(self.run_ids[trial_id], status=status)
        self._send(end)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._ended.add(trial.trial_id)
        self._end(trial, "FINISHED")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._ended.add(trial.trial_id)
        self._end(trial, "FAILED", last_error_line(trial))

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        """Mark trials that were stopped midway (Ctrl-C) KILLED; wait out an MLflow outage."""
        for trial in trials:
            if trial.trial_id in self._started - self._ended:
                self._end(trial, "KILLED")
        deadline = time.monotonic() + self.flush_timeout_s
        while not self.flush() and time.monotonic() < deadline:
            time.sleep(2.0)
        if self._queue:
            print(f"MLflow still unreachable: {len(self._queue)} update(s) lost", flush=True)


def log_files(store: Store, run_id: str, paths: Iterable[Path], folder: str | None = None) -> None:
    for path in paths:
        store.client.log_artifact(run_id, str(path), folder)


def log_metrics(store: Store, run_id: str, values: dict[str, float]) -> None:
    now_ms = int(time.time() * 1000)
    store.client.log_batch(run_id, metrics=[Metric(k, float(v), now_ms, 0)
                                            for k, v in values.items()])


def close_sweep(store: Store, run_id: str, status: str = "FINISHED") -> None:
    store.client.set_terminated(run_id, status=status)
