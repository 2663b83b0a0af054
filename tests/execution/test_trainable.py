"""The sweep's data reaches trials once per worker, as views of the object store's memory."""
from __future__ import annotations

import numpy as np
import ray
import torch

from pipeline.config import Data
from pipeline.execution.trainable import share, shared
from pipeline.training.data import load


@ray.remote
def _in_a_worker(refs: tuple) -> tuple[bool, bool, bool, float]:
    first, again = shared(refs[0]), shared(refs[0])
    writable = ray.get(refs[0]).x_train.flags.writeable  # numpy out of the object store
    return first is again, isinstance(first.x_train, torch.Tensor), writable, \
        float(first.x_train.sum())


def test_a_reused_worker_fetches_the_data_once_without_a_copy(ray_local) -> None:
    data = load(Data(), seed=0)
    refs = share(data)
    assert isinstance(refs, tuple) and isinstance(refs[0], ray.ObjectRef)
    same, is_tensor, writable, total = ray.get(_in_a_worker.remote(refs))
    assert same and is_tensor
    assert not writable  # a read-only view of shared memory, not a private copy
    assert total == np.float32(data.x_train.sum())
