"""``pad``: PyTorch's ``F.pad`` (constant, reflect, replicate, circular), with backward.

``pad`` lists (before, after) amounts from the last axis backwards, as in PyTorch:
``(left, right, top, bottom)`` pads W then H of an NCHW input. Negative amounts crop. The op
crops first, then pads each axis with numpy's ``np.pad`` ('reflect', 'edge', 'wrap'); backward
folds each border's gradient back onto the input positions it copied (one slice add per border
for reflect and circular, a sum for replicate) and zero-fills what was cropped.
"""
from __future__ import annotations

import numbers
from typing import Sequence, Tuple

import numpy as np

from ...autograd.function import Function, shape_nbytes
from ...tensor import Tensor

MODES = ("constant", "reflect", "replicate", "circular")
_NUMPY_MODE = {"constant": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def _axis_slice(ndim: int, axis: int, sl: slice) -> tuple:
    return (slice(None),) * axis + (sl,)


def _fold_border(g: np.ndarray, axis: int, before: int, after: int, mode: str) -> np.ndarray:
    """The gradient of one axis' padding: the centre of ``g`` plus the borders it copied there."""
    g = np.moveaxis(g, axis, -1)
    n = g.shape[-1] - before - after
    center = g[..., before:before + n].copy()
    left, right = g[..., :before], g[..., before + n:]
    if mode == "reflect":  # output j < before copied input before − j; output before + n + k copied n − 2 − k
        if before:
            center[..., 1:before + 1] += left[..., ::-1]
        if after:
            center[..., n - 1 - after:n - 1] += right[..., ::-1]
    elif mode == "replicate":
        if before:
            center[..., :1] += left.sum(axis=-1, keepdims=True)
        if after:
            center[..., n - 1:] += right.sum(axis=-1, keepdims=True)
    elif mode == "circular":  # output j < before copied input n − before + j; the right border 0, 1, ...
        if before:
            center[..., n - before:] += left
        if after:
            center[..., :after] += right
    return np.moveaxis(center, -1, axis)


class Pad(Function):
    """Crop (negative amounts), then pad every axis by (before, after) ≥ 0 in ``mode``."""

    @staticmethod
    def forward(ctx, x, widths=(), crops=(), mode="constant", value=0.0):
        cropped = x[tuple(slice(lo, x.shape[a] - hi) for a, (lo, hi) in enumerate(crops))]
        ctx.options = (x.shape, widths, crops, mode)
        if not any(lo or hi for lo, hi in widths):
            return cropped.copy()
        if mode == "constant":
            return np.pad(cropped, widths, mode="constant", constant_values=value)
        return np.pad(cropped, widths, mode=_NUMPY_MODE[mode])

    @staticmethod
    def saved_bytes(shapes, dtype, needs_input_grad, **options) -> int:
        """Nothing: backward needs only the amounts."""
        return 0

    @staticmethod
    def workspace_bytes(shapes, dtype, widths=(), crops=(), **options) -> int:
        """Transient bytes of backward beyond its result: the folded gradient of the cropped input."""
        inner = [n - lo - hi for n, (lo, hi) in zip(shapes[0], crops)]
        return shape_nbytes(inner, dtype) if any(lo or hi for lo, hi in crops) else 0

    @staticmethod
    def backward(ctx, g):
        shape, widths, crops, mode = ctx.options
        for axis, (before, after) in enumerate(widths):
            if before or after:
                g = (g[_axis_slice(g.ndim, axis, slice(before, g.shape[axis] - after))] if mode == "constant"
                     else _fold_border(g, axis, before, after, mode))
        if any(lo or hi for lo, hi in crops):
            full = np.zeros(shape, dtype=g.dtype)
            full[tuple(slice(lo, n - hi) for n, (lo, hi) in zip(shape, crops))] = g
            return full
        return np.ascontiguousarray(g)


def _amounts(pad, ndim: int) -> Tuple[Tuple[int, int], ...]:
    """PyTorch's flat (last axis first) pad sequence as per-axis (before, after) pairs."""
    if isinstance(pad, (str, bytes)) or not isinstance(pad, (Sequence, np.ndarray)):
        raise TypeError(f"pad: expected pad as a tuple of ints, got {type(pad).__name__}")
    values = list(pad)
    for v in values:
        if isinstance(v, bool) or not isinstance(v, numbers.Integral):
            raise TypeError(f"pad: expected pad as a tuple of ints, got {tuple(pad)!r}")
    if len(values) % 2:
        raise ValueError(f"pad: padding length must be divisible by 2, got {len(values)} values {tuple(values)}")
    if len(values) // 2 > ndim:
        raise ValueError(f"pad: padding length {len(values)} pads more than the input's {ndim} dimensions")
    pairs = [(0, 0)] * ndim
    for k in range(len(values) // 2):
        pairs[ndim - 1 - k] = (int(values[2 * k]), int(values[2 * k + 1]))
    return tuple(pairs)


def _check_mode_shape(mode: str, padded_axes: int, x: Tensor, pairs) -> None:
    if mode == "constant":
        return
    if padded_axes not in (1, 2, 3) or x.ndim not in (padded_axes + 1, padded_axes + 2):
        raise ValueError(
            f"pad: mode '{mode}' pads the last 1, 2 or 3 dimensions of a batched or unbatched input "
            f"(2-D/3-D input for 2 pad values, 3-D/4-D for 4, 4-D/5-D for 6), got {2 * padded_axes} pad values "
            f"for input of shape {tuple(x.shape)}")
    for axis, (lo, hi) in enumerate(pairs):
        n = x.shape[axis] - max(-lo, 0) - max(-hi, 0)
        widest = max(lo, hi, 0)
        if mode == "reflect" and widest >= n and widest > 0:
            raise ValueError(f"pad: reflect padding must be smaller than the dimension it pads, got padding "
                             f"({lo}, {hi}) for dimension {axis} of size {n} (input of shape {tuple(x.shape)})")
        if mode == "circular" and widest > n:
            raise ValueError(f"pad: circular padding must not exceed the dimension it pads, got padding "
                             f"({lo}, {hi}) for dimension {axis} of size {n} (input of shape {tuple(x.shape)})")
        if mode == "replicate" and widest > 0 and n < 1:
            raise ValueError(f"pad: replicate padding needs a non-empty dimension, dimension {axis} of input of "
                             f"shape {tuple(x.shape)} is empty after cropping")


def pad(input, pad, mode: str = "constant", value=None) -> Tensor:
    """Pad (or, with negative amounts, crop) the last ``len(pad) // 2`` dimensions of ``input``.

    ``pad = (left, right[, top, bottom[, front, back]])`` from the last dimension backwards.
    Modes: 'constant' (``value``, default 0; any number of dimensions), 'reflect' (mirror without
    repeating the edge; amounts < the size), 'replicate' (repeat the edge), 'circular' (wrap
    around; amounts ≤ the size). The non-constant modes pad the last 1–3 dimensions of a
    (batched or unbatched) input, as in PyTorch. Differentiable in ``input``.
    """
    if isinstance(input, Tensor):
        x = input
    elif isinstance(input, np.ndarray):
        x = Tensor._wrap(input)
    else:
        raise TypeError(f"pad: expected input as a Tensor or ndarray, got {type(input).__name__}")
    if mode not in MODES:
        raise ValueError(f"pad: expected mode 'constant', 'reflect', 'replicate' or 'circular', got {mode!r}")
    if value is not None and mode != "constant":
        raise ValueError(f"pad: mode '{mode}' takes no value argument, got value={value!r}")
    pairs = _amounts(pad, x.ndim)
    padded_axes = len(pad) // 2
    _check_mode_shape(mode, padded_axes, x, pairs)
    crops = tuple((max(-lo, 0), max(-hi, 0)) for lo, hi in pairs)
    for axis, ((lo, hi), n) in enumerate(zip(crops, x.shape)):
        if lo + hi > n:
            raise ValueError(f"pad: negative padding {pairs[axis]} crops more than dimension {axis} of size {n} "
                             f"(input of shape {tuple(x.shape)})")
    widths = tuple((max(lo, 0), max(hi, 0)) for lo, hi in pairs)
    if value is None:
        value = 0
    elif isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"pad: expected value as a real number, got {value!r}")
    return Pad.apply(x, widths=widths, crops=crops, mode=mode, value=value)


__all__ = ["pad"]
