"""Checkpoint deletions held until the journal has a snapshot that no longer names them.

Ray Tune's checkpoint manager deletes a trial's surplus checkpoints (`num_to_keep`) the moment it
registers a newer one, in the middle of a step of Tune's loop; the journal saves at the end of
that step. A kill in between left a journal naming a checkpoint that was gone, and the resumed
trial failed ("Could not recover from checkpoint as it does not exist on storage anymore"). So,
while a sweep runs, the manager's deletions are queued here, and the journal does them once its
next snapshot is current. A kill before that loses only the deletions: the journal's snapshot
still names the old checkpoint, and the resumed trial's manager deletes it when it registers the
next one.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from ray.train._internal import checkpoint_manager

_ray_delete = checkpoint_manager._delete_fs_path
_queued: list[tuple[Any, str]] = []


def _hold(fs: Any, fs_path: str) -> None:
    _queued.append((fs, fs_path))


@contextlib.contextmanager
def held() -> Iterator[None]:
    """Queue Tune's checkpoint deletions for the body (one sweep's `fit`). What is still queued at
    the end stays on storage: no snapshot has shown those checkpoints unused."""
    checkpoint_manager._delete_fs_path = _hold
    try:
        yield
    finally:
        checkpoint_manager._delete_fs_path = _ray_delete
        _queued.clear()


def queued() -> int:
    """How many deletions wait; a snapshot staged now covers these first ones."""
    return len(_queued)


def release(count: int) -> None:
    """Do the first `count` queued deletions: a current snapshot no longer names them."""
    for fs, fs_path in _queued[:count]:
        _ray_delete(fs=fs, fs_path=fs_path)
    del _queued[:count]
