"""A new SQLite MLflow store's schema: built whole beside the store, and built while Ray starts.

MLflow builds a new store's schema in some sixty migration steps on first use (1-2 s, and as
long again to import its SQL store). Stopped in between (a kill, a Ctrl-C in the sweep's
first seconds), the file was left half-built and every later start failed (`table
registered_models already exists`); two sweeps starting together on a new file both migrated
it (`duplicate column name`). So the schema is built in a file beside the store, under a lock,
and replaces nothing until it is whole. `built_meanwhile` builds that file on a thread while
Ray starts; it is published only when the store is first opened, after every check passed,
and removed if a check fails, so a refused sweep still writes nothing. Other stores manage
their own schema and concurrency.
"""
from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path

SQLITE = "sqlite:///"
SCHEMA_THREAD = "mlflow-schema"


def _sqlite_path(uri: str) -> Path | None:
    return Path(uri[len(SQLITE):]) if uri.startswith(SQLITE) else None


def _partial(path: Path) -> Path:
    return path.with_name(f"{path.name}.partial-{os.getpid()}")


def _build(partial: Path) -> None:
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    # MLflow logs two INFO lines to the terminal when it builds a schema
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)

    # "./mlruns": the artifact root MLflow gives the Default experiment of a new file store
    SqlAlchemyStore(f"{SQLITE}{partial}", "./mlruns").engine.dispose()


@contextlib.contextmanager
def built_meanwhile(uri: str) -> Iterator[None]:
    """While the body runs (Ray starting), build the schema of a SQLite store that does not
    exist yet into this process's partial file, or for an existing one import MLflow's SQL
    store; if the body raises, the partial file is removed."""
    path = _sqlite_path(uri)
    if path is None:
        yield
        return
    new = not path.exists() and path.parent.is_dir()
    partial = _partial(path)

    def work() -> None:
        try:
            if new:
                _build(partial)
            else:
                import mlflow.store.tracking.sqlalchemy_store  # noqa: F401
        except Exception:  # noqa: BLE001 (opening the store builds it again and says why not)
            partial.unlink(missing_ok=True)

    thread = threading.Thread(target=work, name=SCHEMA_THREAD, daemon=True)
    thread.start()
    try:
        yield
    except BaseException:
        thread.join()
        partial.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def creating(uri: str) -> Iterator[None]:
    """Hold a lock beside a SQLite store while it is created: a new file gets its schema whole
    (the partial file `built_meanwhile` built, or one built now) before the body opens it."""
    path = _sqlite_path(uri)
    if path is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            for thread in threading.enumerate():
                if thread.name == SCHEMA_THREAD:
                    thread.join()
            if path.exists():  # another sweep made it meanwhile: ours is not needed
                _partial(path).unlink(missing_ok=True)
            else:
                _publish(path)
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _publish(path: Path) -> None:
    """Put a whole schema in place at `path` (the lock held, the thread done): this process's
    partial file if its thread built it, else one built now. Other partial files are removed: left by a
    stop, or a build of another sweep that then builds its own again (its file is gone)."""
    ours = _partial(path)
    for leftover in path.parent.glob(f"{path.name}.partial-*"):
        if leftover != ours:
            leftover.unlink(missing_ok=True)
    try:
        os.replace(ours, path)
        return
    except FileNotFoundError:  # not built meanwhile, or removed by another sweep's start
        pass
    _build(ours)
    os.replace(ours, path)
