"""PyTorch's type promotion for binary ops, on numpy dtypes.

Operands fall in three groups: tensors with dimensions, 0-d tensors and Python (or numpy) scalars.
A group only changes the result when it brings a higher category (bool < integer < float): a
float32 tensor times a float64 0-d tensor or ``np.sqrt(2.0)`` stays float32, an int64 tensor times
2.5 becomes float32 (the default float), an int64 tensor plus a float32 tensor is float32 (numpy
would give float64 for the last three).
"""
from __future__ import annotations

import numpy as np

DEFAULT_FLOAT = np.dtype(np.float32)
_INT64 = np.dtype(np.int64)
_BOOL = np.dtype(np.bool_)


def promote_types(a: np.dtype, b: np.dtype) -> np.dtype:
    """torch.promote_types: a float meets an integer or bool -> the float; else numpy's rule."""
    if a == b:
        return a
    fa, fb = a.kind == "f", b.kind == "f"
    if fa and not fb:
        return a
    if fb and not fa:
        return b
    return np.promote_types(a, b)


def _combine(higher, lower):
    """PyTorch's combine_categories: ``lower`` counts only when it brings a higher category."""
    if higher is None:
        return lower
    if lower is None:
        return higher
    if higher.kind == "f":
        return higher
    if higher.kind == "b" or lower.kind == "f":
        return promote_types(higher, lower)
    return higher


def scalar_dtype(value):
    """The dtype a Python/numpy scalar stands for in promotion (floats: the default float32)."""
    if isinstance(value, (bool, np.bool_)):
        return _BOOL
    if isinstance(value, (float, np.floating)):
        return DEFAULT_FLOAT
    if isinstance(value, (int, np.integer)):
        return _INT64
    return None


def result_type(dims, zeros, scalars):
    """The result dtype from the dtypes of dimensioned tensors, of 0-d tensors and of scalars."""
    dim = zero = wrapped = None
    for d in dims:
        dim = d if dim is None else promote_types(dim, d)
    for d in zeros:
        zero = d if zero is None else promote_types(zero, d)
    for d in scalars:
        wrapped = d if wrapped is None else promote_types(wrapped, d)
    return _combine(dim, _combine(zero, wrapped))


def can_cast(src: np.dtype, dst: np.dtype) -> bool:
    """torch.can_cast for in-place results: no float into an integer or bool, no number into bool."""
    if src.kind == "f" and dst.kind != "f":
        return False
    if dst.kind == "b" and src.kind != "b":
        return False
    return True
