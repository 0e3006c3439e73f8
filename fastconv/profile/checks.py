"""Argument checks shared by the profiler's public functions; errors name the function and both sides."""
from __future__ import annotations

from typing import Tuple

import numpy as np

OPTIMIZERS = (None, "sgd", "sgd-momentum", "adam", "adamw", "adagrad", "rmsprop", "adadelta")
MODES = ("train", "eval")


def parse_shape(shape, op: str) -> Tuple[int, ...]:
    """A per-sample shape as a tuple of positive ints; also accepts '3x224x224'."""
    if isinstance(shape, str):
        try:
            shape = tuple(int(p) for p in shape.lower().split("x"))
        except ValueError:
            raise ValueError(f"{op}: expected input_shape like '3x224x224', got {shape!r}") from None
    if (not isinstance(shape, (tuple, list)) or not shape
            or not all(isinstance(n, (int, np.integer)) and not isinstance(n, bool) for n in shape)):
        raise TypeError(f"{op}: expected input_shape as a tuple of ints (without the batch), got {shape!r}")
    if any(n < 1 for n in shape):
        raise ValueError(f"{op}: expected positive sizes in input_shape, got {tuple(shape)}")
    return tuple(int(n) for n in shape)


def check_batch(batch_size, op: str) -> int:
    if not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool):
        raise TypeError(f"{op}: expected batch_size as an int, got {batch_size!r}")
    if batch_size < 1:
        raise ValueError(f"{op}: expected batch_size >= 1, got {batch_size}")
    return int(batch_size)


def check_dtype(dtype, op: str) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{op}: expected dtype 'float32' or 'float64', got {dtype!r}") from None
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise TypeError(f"{op}: expected dtype float32 or float64, got {dt}")
    return dt


def check_choice(value, choices, op: str, name: str):
    if value not in choices:
        raise ValueError(f"{op}: expected {name} in {list(choices)}, got {value!r}")
    return value
