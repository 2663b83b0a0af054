"""One driver per sweep: a second one (a `--resume` started while the sweep still runs)
restored the same trials beside the first, so trials ran twice, finished ones turned FAILED
and MLflow got duplicate child runs.

The lock is an flock on a file in this machine's temp folder, named after the sweep's
storage path: the kernel drops it when its holder exits, SIGKILL included, so a killed sweep
never leaves a stale lock behind. It guards the drivers of one machine (a laptop, a cluster's
head, where `make tune CLUSTER=...` runs them).
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from pipeline.config import ConfigError


def lock_file(sweep_path: str) -> Path:
    digest = hashlib.sha256(sweep_path.encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / "pipeline-sweeps" / f"{digest}.lock"


@contextlib.contextmanager
def held(sweep_name: str, sweep_path: str) -> Iterator[None]:
    """Hold the sweep's lock while the body runs; ConfigError if another process holds it."""
    path = lock_file(sweep_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "another process"
            raise ConfigError(f"--resume: sweep {sweep_name} is still running (pid {holder}); "
                              "wait for it to end, or stop it first") from None
        lock.seek(0)
        lock.truncate()
        lock.write(str(os.getpid()))
        lock.flush()
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
