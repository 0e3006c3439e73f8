"""The one conversion every functional op applies to its array arguments."""
from __future__ import annotations

import numpy as np

from ..._validation import check_float
from ...tensor import Tensor


def as_float_tensor(x, op: str, name: str = "input") -> Tensor:
    """The float32/float64 Tensor behind an op's argument, as PyTorch's functional ops expect.

    Tensors pass through; ndarrays are wrapped without a copy and keep their dtype, so a wrong
    dtype is reported by the op; anything else (lists, scalars) is a TypeError naming the op.
    """
    if isinstance(x, Tensor):
        t = x
    elif isinstance(x, np.ndarray):
        t = Tensor._wrap(x)
    else:
        raise TypeError(f"{op}: expected {name} as a Tensor or ndarray, got {type(x).__name__}")
    check_float(t._array, op, name)
    return t
