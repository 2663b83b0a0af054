"""What a `data.factory` returned, checked and brought to the built-in sets' form before Ray
starts.

A user's loader is the one source of data this package did not write, and what it returns
varies: numpy arrays instead of tensors, int32 labels, float64 pixels, a grey set without its
channel axis, a label past `num_classes`. Unchecked, each of those trained and then failed the
summary, or failed every trial with a library's message (`expected target dtype to be Long`,
`Target 2 is out of bounds`). What has one meaning is converted: numpy to torch, any float
inputs to float32, any integer labels to int64, a tensor that requires grad detached. The rest
is refused with one line naming the split and, where there is one, the fix: channels-last
images (they trained as C=16, H=16, W=3), NaN or inf (every trial diverged, blamed on the LR),
a train split of one class (a classifier learns nothing from it).

The factory itself is called through `call`, so an error inside the user's loader or network
(a missing file) is one line naming the field and where it was raised, not a traceback.
"""
from __future__ import annotations

import importlib
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from pipeline.config import ConfigError
from pipeline.config.loading import raised_line

SPLITS = ("train", "val", "test")


def call(field: str, spec: str, *args: Any) -> Any:
    """Import and call the user's `module:function` named in `field`. Its own exception (a
    file its loader cannot find) is theirs to fix, so it becomes one line naming the field, the
    spec and the line that raised it; Ctrl-C and SystemExit (not Exceptions) pass through, and
    so does a ConfigError (already one line)."""
    module, _, attr = spec.partition(":")
    try:
        return getattr(importlib.import_module(module), attr)(*args)
    except ConfigError:
        raise
    except Exception as error:  # noqa: BLE001 - whatever the user's code raises
        raise ConfigError(f"{field}: {spec} raised {raised_line(error)}") from None


def _as_tensor(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    # a loader that built its tensors under autograd: numpy() (the normalisation stats, the
    # shared copy) refuses those; only then detached, so a plain tensor stays the same object
    if isinstance(value, torch.Tensor) and value.requires_grad:
        return value.detach()
    return value


def _channels_last(x: torch.Tensor) -> bool:
    """Square images stored (N, H, W, C) with 1, 3 or 4 channels: taken as (N, C, H, W) they
    trained as C=16, H=16, W=3. A real (N, C, H, W) set with H == C > 4 and W of 1, 3 or 4 is
    unlikely enough to refuse."""
    _, a, b, last = x.shape
    return last in (1, 3, 4) and a > 4 and a == b


def _non_finite(x: torch.Tensor) -> int:
    """How many of x's values are NaN or infinite: one pass, in slices of about 16M values so
    that a large set does not need a mask of its own size."""
    rows = max(1, 2 ** 24 // max(1, x[0].numel())) if len(x) else 1
    return sum(int((~torch.isfinite(part)).sum()) for part in x.split(rows))


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
    if _channels_last(x):
        raise ConfigError(f"data.factory: {spec} returned {name} of shape {tuple(x.shape)}, "
                          "channels last; inputs are (N, C, H, W): x.permute(0, 3, 1, 2) "
                          "(torch) or x.transpose(0, 3, 1, 2) (numpy)")
    if x.dtype == torch.uint8:
        return x
    if x.is_floating_point():
        x = x.float()  # first: a float64 value past float32's range becomes inf here
        # NaN or inf poisoned the normalisation stats, and every trial then diverged
        if bad := _non_finite(x):
            raise ConfigError(f"data.factory: {spec} returned {name} with {bad} NaN or "
                              "infinite value(s) (as float32); replace or drop them in the "
                              "factory")
        return x
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


def _several_classes(y_train: torch.Tensor, spec: str) -> None:
    """A train split of one class trains a network that always answers it, and scores well
    on a validation split of the same class: refused, as an image folder of one class is."""
    classes = torch.unique(y_train)
    if len(classes) < 2:
        raise ConfigError(f"data.factory: {spec} returned a train split of one class "
                          f"({int(classes[0])}); a classifier needs examples of at least two")


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
    if data.classes is not None:
        if len(data.classes) != num_classes:
            raise ConfigError(f"data.factory: {spec} returned {len(data.classes)} class names "
                              f"for num_classes {num_classes}; one name per class, by label")
        fields["classes"] = tuple(str(name) for name in data.classes)
    _several_classes(fields["y_train"], spec)
    shape = tuple(fields["x_train"].shape[1:])
    for split in SPLITS[1:]:
        x = fields.get(f"x_{split}")
        if x is not None and tuple(x.shape[1:]) != shape:
            raise ConfigError(f"data.factory: {spec} returned x_{split} of (C, H, W) "
                              f"{tuple(x.shape[1:])} and x_train of {shape}; every split "
                              "needs the same")
    return replace(data, **fields)
