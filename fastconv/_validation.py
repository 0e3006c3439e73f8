"""Argument checks shared by every op: one helper per concept, each naming the op and both sides."""
from __future__ import annotations

from typing import Sequence, Tuple, Union

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def check_float(array: np.ndarray, op: str, name: str = "input") -> None:
    """float32/float64 only: integers and float16 are a TypeError."""
    if array.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{op}: expected {name} of dtype float32 or float64, got {array.dtype}")


def check_same_dtype(op: str, **arrays: np.ndarray) -> None:
    """All named arrays share one dtype (kernels are compiled per dtype)."""
    items = [(k, v) for k, v in arrays.items() if v is not None]
    first_name, first = items[0]
    for name, arr in items[1:]:
        if arr.dtype != first.dtype:
            raise TypeError(
                f"{op}: expected {name} of dtype {first.dtype} like {first_name}, got {arr.dtype}"
            )


def check_ndim(array: np.ndarray, ndim: Union[int, Sequence[int]], op: str, name: str = "input",
               layout: str = "") -> None:
    """Rank check: ``ndim`` is one rank or a tuple of accepted ranks."""
    allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
    if array.ndim not in allowed:
        want = " or ".join(f"{n}-D" for n in allowed)
        lay = f" {layout}" if layout else ""
        raise ValueError(f"{op}: expected {want}{lay} {name}, got {name} of shape {tuple(array.shape)}")


# Geometry (sizes, strides, paddings, dilations) and thread counts reach the kernels as C ints.
INT_LIMIT = 2 ** 31


def check_int_limit(value: int, op: str, name: str, limit: int = INT_LIMIT) -> None:
    """``value`` below ``limit`` (2**31: what the kernels' C ints hold), else the op's ValueError."""
    if value >= limit:
        bound = "2**31" if limit == INT_LIMIT else str(limit)
        raise ValueError(f"{op}: expected {name} below {bound}, got {value!r}")


def int_pair(value, op: str, name: str, minimum: int = 0) -> Tuple[int, int]:
    """An int or a pair of ints, each >= minimum and below 2**31, as a tuple (h, w)."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        pair = (int(value), int(value))
    elif (isinstance(value, (tuple, list)) and len(value) == 2
          and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value)):
        pair = (int(value[0]), int(value[1]))
    else:
        raise TypeError(f"{op}: expected {name} as an int or a pair of ints, got {value!r}")
    if pair[0] < minimum or pair[1] < minimum:
        raise ValueError(f"{op}: expected {name} >= {minimum}, got {value!r}")
    check_int_limit(max(pair), op, name)
    return pair


def normalize_axis(axis, ndim: int, op: str):
    """None, an int or a tuple of ints, checked against ``ndim`` and made non-negative."""
    if axis is None:
        return None
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    out = []
    for a in axes:
        if not isinstance(a, (int, np.integer)) or not -max(ndim, 1) <= a < max(ndim, 1):
            raise ValueError(f"{op}: axis {a!r} is out of range for a tensor with {ndim} dimensions")
        out.append(int(a) % max(ndim, 1))
    if len(set(out)) != len(out):
        raise ValueError(f"{op}: repeated axis in {axis!r}")
    return tuple(out)
