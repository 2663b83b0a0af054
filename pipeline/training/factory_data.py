"""What a `data.factory` returned, checked and brought to the built-in sets' form before Ray
starts.

A user's loader is the one source of data this package did not write, and what it returns
varies: numpy arrays instead of tensors, int32 labels, float64 pixels, a grey set without its
channel axis, a label past `num_classes`. Unchecked, each of those trained and then failed the
summary, or failed every trial with a library's message (`expected target dtype to be Long`,
`Target 2 is out of bounds`). What has one meaning is converted: numpy to torch, any float
inputs to float32, any integer labels to int64. The rest is refused with one line naming the
split and, where there is one, the fix.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import torch

from pipeline.config import ConfigError

SPLITS = ("train", "val", "test")


def _as_tensor(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    return value


def _inputs(x: Any, name: str, spec: str) -> Any:
    """float32 or uint8 (N, C, H, W); a streamed set (anything with shape and indexing, such
    as `imagefolder.LazyImages`) is taken as it is."""
    x = _as_tensor(x)
    if not isinstance(x, torch.Tensor):
        if hasattr(x, "shape") and hasattr(x, "__getitem__"):
            return x
        raise ConfigError(f"data.factory: {spec} returned {name} as {type(x).__name__}; "
                          "expected a torch tensor or numpy array")
    if x.ndim != 4:
        fix = "; add the channel axis: x[:, None]" if x.ndim == 3 else ""
        raise ConfigError(f"data.factory: {spec} returned {name} of shape {tuple(x.shape)}; "
                          f"inputs are (N, C, H, W){fix}")
    if x.dtype == torch.uint8:
        return x
    if x.is_floating_point():
        return x.float()
    raise ConfigError(f"data.factory: {spec} returned {name} as {x.dtype}; inputs are floats "
                      "in [0, 1] or uint8 0..255")


def _labels(y: Any, name: str, n_inputs: int, num_classes: int, spec: str) -> torch.Tensor:
    """int64 class indices, one per input, each below num_classes."""
    y = _as_tensor(y)
    if not isinstance(y, torch.Tensor):
        raise ConfigError(f"data.factory: {spec} returned {name} as {type(y).__name__}; "
                          "expected a torch tensor or numpy array")
    if y.ndim != 1 or len(y) != n_inputs:
        raise ConfigError(f"data.factory: {spec} returned {name} of shape {tuple(y.shape)} for "
                          f"{n_inputs} inputs; labels are one class index per input")
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise ConfigError(f"data.factory: {spec} returned {name} as {y.dtype}; labels are "
                          "integer class indices")
    y = y.long()
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise ConfigError(f"data.factory: {spec} returned {name} with labels from {int(y.min())} "
                          f"to {int(y.max())}, but num_classes {num_classes} allows 0 to "
                          f"{num_classes - 1}")
    return y


def _same_scale(fields: dict[str, Any], spec: str) -> None:
    """Every split uint8 (0..255, scaled on the device) or every split float (taken as they
    are, so a tabular set may be standardised): a float split of 0..255 pixels beside a uint8
    one was scored 255x too bright (val_loss 27 for 0.68)."""
    kinds = {split: "uint8" if x.dtype == torch.uint8 else "float" for split in SPLITS
             if isinstance(x := fields.get(f"x_{split}"), torch.Tensor) and len(x)}
    if len(set(kinds.values())) > 1:
        raise ConfigError(f"data.factory: {spec} returned splits of both uint8 and float inputs "
                          f"({', '.join(f'x_{k} {v}' for k, v in kinds.items())}); return "
                          "every split alike (floats in [0, 1] for images)")


def checked(data: Any, spec: str) -> Any:
    """`data` (a `pipeline.training.data.Tensors`) with every split checked and converted."""
    if not isinstance(data.num_classes, int | np.integer) or data.num_classes < 2:
        raise ConfigError(f"data.factory: {spec} returned num_classes {data.num_classes!r}; a "
                          "classifier needs an integer of at least 2")
    num_classes = int(data.num_classes)
    if (data.x_test is None) != (data.y_test is None):
        given, missing = ("x_test", "y_test") if data.y_test is None else ("y_test", "x_test")
        raise ConfigError(f"data.factory: {spec} returned {given} without {missing}")
    fields: dict[str, Any] = {"num_classes": num_classes}
    for split in SPLITS:
        x, y = getattr(data, f"x_{split}"), getattr(data, f"y_{split}")
        if x is None:
            continue
        x = _inputs(x, f"x_{split}", spec)
        if len(x) == 0 and split != "test":
            raise ConfigError(f"data.factory: {spec} returned an empty {split} split; the trials "
                              f"{'train' if split == 'train' else 'are scored'} on it")
        fields[f"x_{split}"] = x
        fields[f"y_{split}"] = _labels(y, f"y_{split}", len(x), num_classes, spec)
    _same_scale(fields, spec)
    shape = tuple(fields["x_train"].shape[1:])
    for split in SPLITS[1:]:
        x = fields.get(f"x_{split}")
        if x is not None and tuple(x.shape[1:]) != shape:
            raise ConfigError(f"data.factory: {spec} returned x_{split} of (C, H, W) "
                              f"{tuple(x.shape[1:])} and x_train of {shape}; every split "
                              "needs the same")
    return replace(data, **fields)
