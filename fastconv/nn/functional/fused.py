"""Fused element-wise tails of convolutional blocks (see docs/design.md, "Fusion"):

* ``batch_norm_relu``: batch norm, an optional residual add and ReLU (or ReLU6 with
  ``max_value=6``) as one Function: one pass over x writes the activation, where the separate ops
  write the normalized tensor, the sum and the activation (and the ReLU's mask). Backward makes
  the activation's gradient g·[0 < y < max] from the saved output y, which is what the next
  convolution saves as its input anyway (no mask), hands it to the residual and runs batch norm's
  closed-form backward on it. In eval mode the normalization is a per-channel scale and shift
  precomputed from the running statistics.
* ``add_relu``: a residual add and ReLU in one pass, saving only the output.

The arithmetic is the unfused ops', operation for operation (x - mean rounded to the input type,
times the scale, plus the shift, plus the residual), so the output equals batch_norm → add → relu.
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np

from ..._config import elementwise_threads
from ..._kernels import elementwise as _ew
from ..._kernels import norm as _norm
from ..._validation import check_ndim
from ...autograd.function import Function, shape_nbytes
from ...tensor import Tensor
from ._args import as_float_tensor
from .normalization import (
    _EMPTY, _STAT_ITEMSIZE, _Layout, _per_channel_args, _save_plan, _update_running, normalize_backward,
)


def _clamp_gradient(g: np.ndarray, y: np.ndarray, hi: float) -> np.ndarray:
    """g where 0 < y < hi, else 0 (a fresh array in y's shape)."""
    out = np.empty(y.shape, dtype=g.dtype)
    _ew.clamp_grad(np.ascontiguousarray(g).reshape(-1), y.reshape(-1), hi, out.reshape(-1),
                   elementwise_threads(out.size))
    return out


class BatchNormActivation(Function):
    """y = clamp(batch_norm(x)·weight + bias [+ residual], 0, max_value) over an (N, C, S) layout.

    ``fixed_stats=(mean, var)`` (per channel, float64) replaces the batch statistics (eval);
    ``running=(running_mean, running_var, momentum)`` updates those arrays in place (training).
    """

    @staticmethod
    def forward(ctx, x, weight, bias, residual, *, layout: _Layout, eps: float, max_value: float,
                fixed_stats=None, running=None):
        x3 = np.ascontiguousarray(x).reshape(layout.shape3)
        channels = layout.channels
        if fixed_stats is None:
            mean = np.empty(channels, dtype=np.float64)
            var = np.empty(channels, dtype=np.float64)
            _norm.moments(x3, mean, var)
            if running is not None:
                _update_running(running, mean, var, layout.count, channels)
        else:
            mean, var = fixed_stats
        empty = _EMPTY[x.dtype]
        r3 = empty.reshape(0, 0, 0) if residual is None else np.ascontiguousarray(residual).reshape(layout.shape3)
        y = np.empty(x.shape, dtype=x.dtype)
        rstd = np.empty(channels, dtype=np.float64)
        w = empty if weight is None else np.ascontiguousarray(weight)
        b = empty if bias is None else np.ascontiguousarray(bias)
        _ew.batch_norm_act(x3, r3, y.reshape(layout.shape3), mean, var, eps, w, b, rstd, True, max_value,
                           elementwise_threads(y.size))
        batch_stats = fixed_stats is None
        save_x, save_mean, save_rstd, save_w = _save_plan(ctx.needs_input_grad, batch_stats, weight is not None)
        ctx.save_for_backward(x3 if save_x else None, mean if save_mean else None, rstd if save_rstd else None,
                              weight if save_w else None, y)
        ctx.layout = layout
        ctx.batch_stats = batch_stats
        ctx.max_value = max_value
        ctx.shape = x.shape
        ctx.weight_shape = None if weight is None else weight.shape
        ctx.bias_shape = None if bias is None else bias.shape
        return y

    @staticmethod
    def saved_bytes(shapes, dtype, needs_input_grad, *, layout: _Layout, fixed_stats=None, **options) -> int:
        """Batch norm's (x, mean and 1/σ, the weight: only what the inputs needing grad require)
        and the output y, whose sign is the activation's mask."""
        x_shape, w_shape = shapes[0], shapes[1]
        if not any(needs_input_grad):
            return 0
        save_x, save_mean, save_rstd, save_w = _save_plan(needs_input_grad, fixed_stats is None,
                                                          w_shape is not None)
        total = shape_nbytes(x_shape, dtype) * (2 if save_x else 1)
        total += (save_mean + save_rstd) * layout.channels * _STAT_ITEMSIZE
        if save_w:
            total += shape_nbytes(w_shape, dtype)
        return total

    @staticmethod
    def workspace_bytes(shapes, dtype, *, needs_input_grad=(True, True, True, False), **options) -> int:
        """Transient bytes of backward beyond its results: the activation's gradient, unless it
        is handed on as the residual's gradient."""
        return 0 if needs_input_grad[3] else shape_nbytes(shapes[0], dtype)

    @staticmethod
    def forward_workspace_bytes(shapes, dtype, needs_input_grad, **options) -> int:
        """Transient bytes of forward beyond output and saved arrays: none (per-channel vectors)."""
        return 0

    @staticmethod
    def backward(ctx, grad):
        x3, mean, rstd, weight, y = ctx.saved_tensors
        needs = ctx.needs_input_grad
        g = _clamp_gradient(grad, y, ctx.max_value)
        dx = dweight = dbias = None
        if needs[0] or needs[1] or needs[2]:
            dx, dweight, dbias = normalize_backward(g, x3, mean, rstd, weight, ctx.layout, ctx.batch_stats,
                                                    needs[:3], ctx.shape, ctx.weight_shape, ctx.bias_shape)
        return dx, dweight, dbias, (g if needs[3] else None)


class AddActivation(Function):
    """y = clamp(a + b, 0, max_value) for same-shape a and b, saving only y."""

    @staticmethod
    def forward(ctx, a, b, *, max_value: float):
        y = np.empty(a.shape, dtype=a.dtype)
        _ew.add(np.ascontiguousarray(a).reshape(-1), np.ascontiguousarray(b).reshape(-1), y.reshape(-1), True,
                max_value, elementwise_threads(y.size))
        ctx.save_for_backward(y)
        ctx.max_value = max_value
        return y

    @staticmethod
    def saved_bytes(shapes, dtype, needs_input_grad, **options) -> int:
        """The output y (its sign is the mask)."""
        return shape_nbytes(shapes[0], dtype) if any(needs_input_grad) else 0

    @staticmethod
    def workspace_bytes(shapes, dtype, **options) -> int:
        """Transient bytes of backward beyond its result: none (one gradient serves both inputs)."""
        return 0

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        g = _clamp_gradient(grad, y, ctx.max_value)
        na, nb = ctx.needs_input_grad
        return (g if na else None), (g if nb else None)


# ---- public functions -------------------------------------------------------------------------

def _max_value(max_value, op: str) -> float:
    if max_value is None:
        return math.inf
    if isinstance(max_value, bool) or not isinstance(max_value, (int, float, np.integer, np.floating)) \
            or not max_value > 0:
        raise ValueError(f"{op}: expected max_value as a number > 0 or None (plain ReLU), got {max_value!r}")
    return float(max_value)


def _same_as_input(t, x: Tensor, op: str, name: str) -> Tensor:
    t = as_float_tensor(t, op, name)
    if t.shape != x.shape or t.dtype != x.dtype:
        raise ValueError(f"{op}: expected {name} of the input's shape {tuple(x.shape)} and dtype {x.dtype}, "
                         f"got shape {tuple(t.shape)} and dtype {t.dtype}")
    return t


def batch_norm_relu(input, running_mean, running_var, weight=None, bias=None, training: bool = False,
                    momentum: float = 0.1, eps: float = 1e-5, residual=None,
                    max_value: Optional[float] = None) -> Tensor:
    """``relu(batch_norm(input, ...) + residual)`` as one Function; ``max_value=6`` makes it ReLU6.

    Arguments as ``batch_norm`` (running statistics updated in place in training; ``None`` running
    statistics use batch statistics); ``residual`` (optional) has the input's shape and dtype.
    """
    op = "batch_norm_relu"
    x = as_float_tensor(input, op)
    check_ndim(x.numpy(), (2, 3, 4, 5), op, layout="(N, C, *)")
    n, c, s, rm, rv, w, b, eps, momentum = _per_channel_args(op, x, running_mean, running_var, weight, bias,
                                                             eps, momentum)
    r = None if residual is None else _same_as_input(residual, x, op, "residual")
    hi = _max_value(max_value, op)
    use_batch = training or rm is None
    if training and n * s == 1:
        raise ValueError(f"{op}: Expected more than 1 value per channel when training, "
                         f"got input of shape {tuple(x.shape)}")
    fixed = None if use_batch else (rm.numpy().astype(np.float64), rv.numpy().astype(np.float64))
    running = (rm.numpy(), rv.numpy(), momentum) if (training and rm is not None) else None
    return BatchNormActivation.apply(x, w, b, r, layout=_Layout((n, c, s), cpg=1, channels=c), eps=eps,
                                     max_value=hi, fixed_stats=fixed, running=running)


def add_relu(input, other, max_value: Optional[float] = None) -> Tensor:
    """``relu(input + other)`` for tensors of one shape and dtype, in one pass (``max_value``:
    clamp from above too, e.g. 6)."""
    op = "add_relu"
    a = as_float_tensor(input, op)
    b = _same_as_input(other, a, op, "other")
    return AddActivation.apply(a, b, max_value=_max_value(max_value, op))
