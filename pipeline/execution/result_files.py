"""Ray's per-trial result files (result.json, progress.csv), kept whole when trials pause.

Ray 2.60's logger callbacks copy a trial's files back from storage whenever the trial
starts again, over the driver's local copy. A paused trial (PBT, HyperBand) restarts
before its newest lines were synced, so the copy drops them: a PBT sweep's ResultGrid then
missed its trials' last epochs and picked the wrong best trial. Copying only when there
is no local file keeps what a resumed sweep needs (a new driver has none) and loses nothing.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback


class _KeepLocal:
    def _restore_from_remote(self, file_name: str, trial: Any) -> None:
        if not Path(trial.local_path, file_name).exists():
            super()._restore_from_remote(file_name, trial)


class JsonFiles(_KeepLocal, JsonLoggerCallback):
    """result.json, as Ray writes it, without the stale copy."""


class CsvFiles(_KeepLocal, CSVLoggerCallback):
    """progress.csv, as Ray writes it, without the stale copy."""


def callbacks() -> list:
    return [JsonFiles(), CsvFiles()]
