"""The Ray Tune callback that keeps MLflow in step with the sweep: a child run per trial, every
reported metric per epoch, placement tags, the trial's final status.

Updates are queued as plain records and sent at the end of a step of Tune's loop at which
`pipeline.execution.journal.Journal` (earlier in the callback list) has saved every change so
far (it saves at most every few steps), so the snapshot includes them. A result that comes with
a checkpoint is held until Tune has registered that checkpoint (`on_trial_save`, a step or more
later) or the trial finishes: sent earlier, a stop in between would make the trial go on from
its previous checkpoint and report the same epoch twice. A trial that stops or fails first
keeps what it held, in the journal's snapshot too: a report of the same or an earlier epoch
(the trial back at its previous checkpoint, after a resume or a retry) replaces it, and the
trial's end sends it. That end can come without a new report: a scheduler that already acted on
the held result (HyperBand halving a bracket at its milestone) stops the restored trial at
once, and dropping the result there lost that epoch from MLflow (found by the soak). The queue
and the held results are part of that snapshot (`get_state`), so whatever MLflow had not
received at a kill is sent again on resume. Sending a record twice changes nothing: a run is
found by its trial id, and a metric with the same step, timestamp and value is stored once.
While the tracking server is down the records stay queued and are retried every two seconds and
at the end, so an outage loses nothing either.

Sending runs on a thread of its own: each MLflow write is a database transaction or an HTTP
call (20-50 ms on SQLite here, about 0.1 s per trial), and made in Tune's loop they held up
every other trial's start and report (a 300-trial sweep of 1 s trials spent a third of its
time there). Only the records of a finished step are handed to that thread, so the order
above (the journal first, MLflow after) holds.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

from mlflow.entities import Metric, RunTag
from mlflow.tracking import MlflowClient
from ray import tune

from pipeline.execution.journal import Journal
from pipeline.execution.progress import last_error_line
from pipeline.results import lineage
from pipeline.results.tracking import (
    PARENT_TAG,
    PLACEMENT_KEYS,
    Store,
    child_run_ids,
    complete_params,
    log_params,
    result_metrics,
    safe_params,
)

Record = tuple  # ("start", trial_id, name, config) | ("result", ...) | ("end", ...)


class SweepLogger(tune.Callback):
    def __init__(self, store: Store, parent_run_id: str, journal: Journal | None = None,
                 flush_timeout_s: float = 120.0):
        """`journal`: records wait until it has saved them (pickled with this logger in the
        run config, so a resumed sweep's pair is the same pair); None: sent at every step."""
        self.store = store
        self.journal = journal
        self.parent_run_id = parent_run_id
        self.flush_timeout_s = flush_timeout_s
        self.run_ids: dict[str, str] = {}
        self._started: set[str] = set()  # trials started, and ended, in this session
        self._ended: set[str] = set()
        self._complete: set[str] = set()  # trials whose run has all its params
        self._step: list[Record] = []  # queued in this step of Tune's loop
        self._queue: deque[Record] = deque()  # released to the sender, oldest first
        self._held: dict[str, list[Record]] = {}  # results waiting for their checkpoint
        self._client: MlflowClient | None = None
        self._threading()

    def _threading(self) -> None:
        self._queue_lock = threading.Lock()  # the sender pops while the journal copies
        self._send_lock = threading.Lock()  # one sender at a time, records in order
        self._wake = threading.Event()
        self._stop = False
        self._sender: threading.Thread | None = None

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles callbacks with the run config; the client, queue and thread stay behind.
        state = {**self.__dict__, "_client": None, "_step": [], "_queue": deque(), "_held": {},
                 "run_ids": {}, "_started": set(), "_ended": set(), "_complete": set()}
        for key in ("_queue_lock", "_send_lock", "_wake", "_stop", "_sender"):
            del state[key]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._threading()

    def get_state(self) -> dict[str, Any]:
        """What the journal keeps: the records MLflow may not have received yet, and the
        results held for a checkpoint (a dict even when empty, so a snapshot never keeps an
        older session's)."""
        with self._queue_lock:
            pending = [*self._queue, *self._step]
        return {"pending": pending,
                "held": {trial_id: list(records) for trial_id, records in self._held.items()}}

    def set_state(self, state: dict[str, Any]) -> None:
        self._queue = deque(state.get("pending", []))
        self._step = []
        self._held = {trial_id: list(records)
                      for trial_id, records in state.get("held", {}).items()}

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            self._client = self.store.client
        return self._client

    def setup(self, **info: Any) -> None:
        """Find the child runs of a resumed sweep, so its trials continue them."""
        self.run_ids = child_run_ids(self.store, self.parent_run_id)

    # ---- what Tune tells us: queued ------------------------------------------------------

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._started.add(trial.trial_id)
        self._step.append(("start", trial.trial_id, str(trial), dict(trial.config)))

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict,
                        **info: Any) -> None:
        tags = {key: str(result[key]) for key in PLACEMENT_KEYS if key in result}
        step = int(result.get("training_iteration", 0))
        record = ("result", trial.trial_id, step, int(time.time() * 1000),
                  result_metrics(result), tags, lineage.exploit_report(result))
        # held reports of this epoch or later: the trial went back to an earlier checkpoint
        # (a resume, a retry) and reports them again
        held = [r for r in self._held.pop(trial.trial_id, []) if r[2] < step]
        if held:
            self._held[trial.trial_id] = held
        if result.get("should_checkpoint"):
            self._held.setdefault(trial.trial_id, []).append(record)
        else:
            self._step.append(record)

    def on_trial_save(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._step.extend(self._held.pop(trial.trial_id, []))

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._end(trial, "FINISHED")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._end(trial, "FAILED", last_error_line(trial))

    def _end(self, trial: Any, status: str, error: str | None = None) -> None:
        if trial.trial_id not in self._started and trial.trial_id not in self.run_ids:
            # ended without ever starting (it failed to start or to restore): still a run
            self.on_trial_start(0, [], trial)
        self._ended.add(trial.trial_id)
        # A finished trial's held results are its last word. One stopped (KILLED: a resume
        # continues it) or failed (FAILED: a resume retries it) keeps them (see the module doc).
        if status == "FINISHED":
            self._step.extend(self._held.pop(trial.trial_id, []))
        self._step.append(("end", trial.trial_id, status, error))

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        """Once the journal (it comes first) has saved every change, its records may go."""
        if self.journal is None or not self.journal.unsaved:
            self._release()

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        """Mark trials that were stopped midway (a signal) KILLED; wait out an MLflow outage."""
        for trial in trials:
            if trial.trial_id in self._started - self._ended:
                self._end(trial, "KILLED")
        self._release()
        sent = self.wait_sent(self.flush_timeout_s)
        self._stop = True
        self._wake.set()
        if not sent:
            print(f"MLflow still unreachable: {len(self._queue)} update(s) lost", flush=True)

    # ---- sending -------------------------------------------------------------------------

    def _release(self) -> None:
        if not self._step:
            return
        with self._queue_lock:
            self._queue.extend(self._step)
            self._step = []
        if self._sender is None or not self._sender.is_alive():
            self._stop = False
            self._sender = threading.Thread(target=self._send_forever, daemon=True,
                                            name="mlflow-sender")
            self._sender.start()
        self._wake.set()

    def _send_forever(self) -> None:
        while not self._stop:
            self._wake.wait(timeout=2.0)  # a retry every 2 s while MLflow is down
            self._wake.clear()
            self.flush()

    def wait_sent(self, timeout_s: float) -> bool:
        """Block until every released record is in MLflow; False at the timeout."""
        deadline = time.monotonic() + timeout_s
        while not self.flush():
            if time.monotonic() >= deadline:
                return False
            time.sleep(2.0)
        return True

    def flush(self) -> bool:
        """Send what is released, in order; False (and keep the rest) while MLflow is down.
        A record leaves the queue only once MLflow has it."""
        with self._send_lock:
            while self._queue:
                try:
                    self._send(self._queue[0])
                except Exception as error:  # MLflow raises several types for a dead server
                    if len(self._queue) == 1 or len(self._queue) % 50 == 0:
                        print(f"MLflow unreachable ({type(error).__name__}); "
                              f"{len(self._queue)} update(s) queued", flush=True)
                    return False
                with self._queue_lock:
                    self._queue.popleft()
            return True

    def _send(self, record: Record) -> None:
        kind, trial_id, *rest = record
        if kind == "start":
            name, config = rest
            if trial_id not in self.run_ids:
                run = self.client.create_run(self.store.experiment_id, run_name=name,
                                             tags={PARENT_TAG: self.parent_run_id,
                                                   "trial_id": trial_id})
                self.run_ids[trial_id] = run.info.run_id
                log_params(self.client, run.info.run_id, safe_params(config))
                self._complete.add(trial_id)
                return  # created RUNNING: one write fewer in Tune's loop per trial
            if trial_id not in self._complete:
                # a run of an earlier session, or one whose params failed to send: a stop
                # or an outage after create_run may have cut them off
                complete_params(self.client, self.run_ids[trial_id], safe_params(config))
                self._complete.add(trial_id)
            self.client.update_run(self.run_ids[trial_id], status="RUNNING")
        elif kind == "result":
            step, now_ms, metrics, tags, exploit = rest
            run_id = self.run_ids[trial_id]
            # an exploit's tag key depends on the run's earlier ones (rare: one read per exploit)
            run_tags = self.client.get_run(run_id).data.tags if exploit else {}
            self.client.log_batch(
                run_id,
                metrics=[Metric(key, value, now_ms, step) for key, value in metrics.items()],
                tags=[RunTag(key, value) for key, value in tags.items()]
                + lineage.exploit_tags(exploit, self.run_ids, run_tags))
        else:
            status, error = rest
            if error is not None:
                self.client.set_tag(self.run_ids[trial_id], "error", error[:5000])
            self.client.set_terminated(self.run_ids[trial_id], status=status)
