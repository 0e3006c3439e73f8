"""Inverted dropout (PyTorch semantics): zero elements or whole channels, scale the rest by 1/(1-p).

Masks come from fastconv's seeded generator (``fc.manual_seed`` makes them reproducible).
``dropout`` saves its mask as packed bits (one bit per element); ``dropout2d`` saves one bool per
(sample, channel). Evaluation mode and p = 0 return the input itself, as PyTorch does.
"""
from __future__ import annotations

import numbers

import numpy as np

from ..._validation import check_ndim
from ...autograd.function import Function
from ._args import as_float_tensor
from ...random import get_generator
from ...tensor import Tensor


def _keep_scale(p: float) -> float:
    """Factor applied to kept elements: 1/(1-p), and 0 for p = 1 (nothing is kept)."""
    return 0.0 if p >= 1.0 else 1.0 / (1.0 - p)


def _draw_keep(shape, p: float) -> np.ndarray:
    """Bernoulli(1-p) keep-mask of ``shape`` from the global generator (uniform in [0, 1) >= p)."""
    return get_generator().random(shape, dtype=np.float32) >= np.float32(p)


def _apply_mask(x: np.ndarray, keep: np.ndarray, scale: float, out: np.ndarray = None) -> np.ndarray:
    """x * keep * scale (keep broadcasts), written into ``out`` when given."""
    out = np.multiply(x, keep, out=out)
    out *= x.dtype.type(scale)
    return out


class Dropout(Function):
    """Element-wise inverted dropout; the keep-mask is saved as packed bits."""

    @staticmethod
    def forward(ctx, x, p, inplace):
        keep = _draw_keep(x.shape, p)
        ctx.p = p
        ctx.shape = x.shape
        if ctx.needs_input_grad[0]:
            ctx.save_for_backward(np.packbits(keep, axis=None))
        return _apply_mask(x, keep, _keep_scale(p), out=x if inplace else None)

    @staticmethod
    def saved_bytes(shapes, dtype, needs_input_grad, p, inplace) -> int:
        return (int(np.prod(shapes[0], dtype=np.int64)) + 7) // 8 if needs_input_grad[0] else 0

    @staticmethod
    def backward(ctx, grad_out):
        (packed,) = ctx.saved_tensors
        keep = np.unpackbits(packed, count=int(np.prod(ctx.shape, dtype=np.int64))).view(np.bool_)
        return (_apply_mask(grad_out, keep.reshape(ctx.shape), _keep_scale(ctx.p)),)


class Dropout2d(Function):
    """Channel-wise inverted dropout on (N, C, H, W) or (C, H, W); saves one bool per channel."""

    @staticmethod
    def forward(ctx, x, p, inplace):
        keep = _draw_keep(_channel_mask_shape(x.shape), p)
        ctx.p = p
        if ctx.needs_input_grad[0]:
            ctx.save_for_backward(keep)
        return _apply_mask(x, keep, _keep_scale(p), out=x if inplace else None)

    @staticmethod
    def saved_bytes(shapes, dtype, needs_input_grad, p, inplace) -> int:
        return int(np.prod(_channel_mask_shape(shapes[0]), dtype=np.int64)) if needs_input_grad[0] else 0

    @staticmethod
    def backward(ctx, grad_out):
        (keep,) = ctx.saved_tensors
        return (_apply_mask(grad_out, keep, _keep_scale(ctx.p)),)


def _channel_mask_shape(shape):
    """(N, C, 1, 1) for NCHW, (C, 1, 1) for CHW: one draw per channel, broadcast over H, W."""
    return tuple(shape[:-2]) + (1, 1)


# ---- validation and in-place handling ----------------------------------------------------------------

def _check_p(p, op: str) -> float:
    if isinstance(p, bool) or not isinstance(p, numbers.Real):
        raise TypeError(f"{op}: expected p as a float in [0, 1], got {p!r}")
    if not 0.0 <= float(p) <= 1.0:
        raise ValueError(f"{op}: dropout probability has to be between 0 and 1, got p={p}")
    return float(p)


def _run(fn, x: Tensor, p: float, inplace: bool, op: str) -> Tensor:
    """Apply ``fn``; in place, the result overwrites x's buffer and x takes over the new history
    (the version counter then stops a backward that needs x's old values)."""
    if not inplace:
        return fn.apply(x, p=p, inplace=False)
    x._check_inplace(op)
    return x._commit(fn.apply(x, p=p, inplace=True), op)


# ---- public functions --------------------------------------------------------------------------------

def dropout(input, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero each element with probability p and scale the others by 1/(1-p) (inverted dropout).

    Identity (the input itself) when not ``training`` or p = 0; zeros when p = 1.
    """
    op = "dropout"
    x = as_float_tensor(input, op)
    p = _check_p(p, op)
    if not training or p == 0.0 or x._array.size == 0:
        return x
    return _run(Dropout, x, p, inplace, op)


def dropout2d(input, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero whole channels of (N, C, H, W) or (C, H, W) input with probability p, scale the rest
    by 1/(1-p) (spatial dropout: neighbouring activations in a feature map are correlated).

    3-D input is one unbatched image (C, H, W), the behaviour PyTorch announces; PyTorch 2.x still
    reads it as (N, C, L) with a warning.
    """
    op = "dropout2d"
    x = as_float_tensor(input, op)
    check_ndim(x._array, (3, 4), op, layout="(N, C, H, W)")
    p = _check_p(p, op)
    if not training or p == 0.0 or x._array.size == 0:
        return x
    return _run(Dropout2d, x, p, inplace, op)
