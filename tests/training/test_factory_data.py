"""What a data.factory returns is checked before Ray starts: converted where it has one
meaning (numpy, float64 pixels, int32 labels), refused with one line where it would fail every
trial or train on the wrong thing."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch

from pipeline.config import ConfigError
from pipeline.training.data import Tensors
from pipeline.training.factory_data import checked


def arrays(n: int = 30) -> tuple[np.ndarray, np.ndarray]:
    y = np.arange(n) % 3
    x = np.random.default_rng(0).random((n, 1, 4, 4)) + y[:, None, None, None]
    return x, y


def from_numpy(**change) -> Tensors:
    x, y = arrays()
    fields = dict(x_train=x[:20], y_train=y[:20], x_val=x[20:], y_val=y[20:], num_classes=3)
    return Tensors(**{**fields, **change})


def test_numpy_float64_and_int32_come_back_as_the_built_ins_tensors() -> None:
    x, y = arrays()
    data = checked(from_numpy(y_train=y[:20].astype(np.int32), x_test=x[:5].astype(np.float16),
                              y_test=torch.from_numpy(y[:5]).int()), "f:g")
    for split in ("train", "val", "test"):
        assert getattr(data, f"x_{split}").dtype == torch.float32
        assert getattr(data, f"y_{split}").dtype == torch.int64
    assert torch.equal(data.y_train, torch.from_numpy(y[:20]))
    assert np.allclose(data.x_val.numpy(), x[20:].astype(np.float32))
    assert data.num_classes == 3 and data.input_shape == (1, 4, 4)
    assert data.classes is None
    assert checked(from_numpy(classes=["a", "b", 3]), "f:g").classes == ("a", "b", "3")


def test_uint8_inputs_and_a_streamed_set_are_kept_as_they_are() -> None:
    x, y = arrays()
    pixels = torch.from_numpy((x[:20] * 50).astype(np.uint8))

    class Streamed:  # what imagefolder.LazyImages offers
        shape = (10, 1, 4, 4)

        def __len__(self) -> int:
            return 10

        def __getitem__(self, index):
            return torch.zeros(1, 4, 4)

    streamed = Streamed()
    data = checked(from_numpy(x_train=pixels, x_val=streamed, y_val=y[20:]), "f:g")
    assert data.x_train is pixels and data.x_val is streamed


def spoilt(**change) -> Callable[[], Tensors]:
    return lambda: from_numpy(**change)


X, Y = arrays()


@pytest.mark.parametrize(("data", "message"), [
    (spoilt(x_train=X[:20, 0]), (r"x_train of shape \(20, 4, 4\); inputs are \(N, C, H, W\); "
                                 r"add the channel axis: x\[:, None\]")),
    (spoilt(x_val=X[20:].reshape(10, -1)), r"x_val of shape \(10, 16\); inputs are"),
    (spoilt(x_train=X[:20].astype(np.int64)), "x_train as torch.int64; inputs are floats"),
    (spoilt(x_train=X[:20].tolist()), "x_train as list; expected a torch tensor or numpy"),
    (spoilt(y_train=Y[:20].astype(np.float32)), "y_train as torch.float32; labels are integer"),
    (spoilt(y_train=Y[:19]), r"y_train of shape \(19,\) for 20 inputs"),
    (spoilt(y_val=Y[20:, None]), r"y_val of shape \(10, 1\) for 10 inputs"),
    (spoilt(num_classes=2), "y_train with labels from 0 to 2, but num_classes 2 allows 0 to 1"),
    (spoilt(y_val=Y[20:] - 1), "y_val with labels from -1 to 1"),
    (spoilt(num_classes=1), "num_classes 1; a classifier needs an integer of at least 2"),
    (spoilt(num_classes=3.0), "num_classes 3.0"),
    (spoilt(x_val=X[:0], y_val=Y[:0]), "an empty val split; the trials are scored on it"),
    (spoilt(x_train=X[:0], y_train=Y[:0]), "an empty train split; the trials train on it"),
    (spoilt(x_test=X[:5]), "x_test without y_test"),
    # uint8 pixels for training, the same pixels as 0..255 floats to score: 255x too bright
    (spoilt(x_train=(X[:20] * 255).astype(np.uint8), x_val=(X[20:] * 255).astype(np.float32)),
     r"splits of both uint8 and float inputs \(x_train uint8, x_val float"),
    (spoilt(classes=("cat",)), r"1 class names for num_classes 3; one name per class"),
    (spoilt(x_val=X[20:, :, :2], ), (r"x_val of \(C, H, W\) \(1, 2, 4\) and x_train of "
                                    r"\(1, 4, 4\); every split needs the same")),
])
def test_what_would_fail_every_trial_is_one_line(data: Callable[[], Tensors],
                                                 message: str) -> None:
    with pytest.raises(ConfigError, match=f"^data.factory: f:g returned {message}"):
        checked(data(), "f:g")


def images(n: int = 20, shape: tuple[int, ...] = (3, 16, 16)) -> np.ndarray:
    return np.random.default_rng(1).random((n, *shape), dtype=np.float32)


def with_nan(x: np.ndarray, count: int) -> np.ndarray:
    x = x.copy()
    x.reshape(-1)[:count] = [np.nan, np.inf, -np.inf][:count]
    return x


@pytest.mark.parametrize(("data", "message"), [
    # square images stored channels last trained as C=16, H=16, W=3
    (spoilt(x_train=images().transpose(0, 2, 3, 1), x_val=images(10).transpose(0, 2, 3, 1)),
     (r"x_train of shape \(20, 16, 16, 3\), channels last; inputs are \(N, C, H, W\): "
      r"x.permute\(0, 3, 1, 2\) \(torch\) or x.transpose\(0, 3, 1, 2\) \(numpy\)")),
    (spoilt(x_val=torch.from_numpy(images(10, (8, 8, 1)))),
     r"x_val of shape \(10, 8, 8, 1\), channels last"),
    # NaN or inf poisoned the normalisation stats: every trial diverged, blamed on the LR
    (spoilt(x_val=with_nan(X[20:], 1)), "x_val with 1 NaN or infinite value"),
    (spoilt(x_train=with_nan(X[:20], 3)), "x_train with 3 NaN or infinite value"),
    (spoilt(x_train=X[:20] * 1e300), "x_train with 320 NaN or infinite value"),  # past float32
    (spoilt(y_train=np.zeros(20, dtype=np.int64)),
     r"a train split of one class \(0\); a classifier needs examples of at least two"),
])
def test_what_would_train_on_the_wrong_thing_is_one_line(data: Callable[[], Tensors],
                                                         message: str) -> None:
    with pytest.raises(ConfigError, match=f"^data.factory: f:g returned {message}"):
        checked(data(), "f:g")


def test_channels_first_images_and_small_channel_counts_are_not_taken_for_channels_last() -> None:
    data = checked(from_numpy(x_train=images(), x_val=images(10)), "f:g")
    assert data.input_shape == (3, 16, 16)
    # 4x4 'images' of 4 channels: axis 1 is not larger than 4, so nothing says channels last
    data = checked(from_numpy(x_train=images(20, (4, 4, 4)), x_val=images(10, (4, 4, 4))), "f:g")
    assert data.input_shape == (4, 4, 4)


def test_tensors_that_require_grad_are_detached() -> None:
    """numpy() refused them: the normalisation stats failed with `Can't call numpy() on Tensor
    that requires grad` (exit 1)."""
    x = torch.from_numpy(X.astype(np.float32)).requires_grad_()
    data = checked(from_numpy(x_train=x[:20], x_val=x[20:] * 2), "f:g")
    assert not data.x_train.requires_grad and not data.x_val.requires_grad
    assert np.allclose(data.x_val.numpy(), X[20:] * 2)
