"""Batch, layer, instance and group normalization over chosen axes (PyTorch semantics).

One Function, ``Normalize``, runs all four: each public function validates its arguments and
describes its statistics groups as a ``_Layout`` (a contiguous (A, B, L) view of the input, see
fastconv/_kernels/norm.pyx); the Cython kernels compute stable moments in one read of the
input, normalize + affine, and the closed-form backward. When every group is contiguous and
fits in cache (instance and group norm, layer norm rows up to 1 MiB) the fused kernels do the
statistics and the normalization (or the gradient sums and dx) of a group in one work item,
reading the input from memory once; otherwise (batch norm, large groups) the tiled kernels run.
Layer norm's backward with a few rows per thread or more reads dy and x from memory once, a band of
rows at a time (``backward_rows``).

Saved for backward (what ``saved_bytes`` counts): the contiguous input x (not x̂: the forward
then writes one array instead of two) with the float64 mean and 1/σ of every statistics group,
and the weight when the input gradient needs it. Arrays a frozen input does not need are not
kept: a bias-only gradient saves nothing, eval-mode batch norm's input gradient saves only 1/σ
(and the weight).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple, Union

import numpy as np

from ..._config import elementwise_threads, plan_threads
from ..._kernels import elementwise as _ew
from ..._kernels import norm as _norm
from ..._validation import check_ndim, check_same_dtype
from ...autograd.function import Function, shape_nbytes
from ._args import as_float_tensor
from ...tensor import Tensor

_STAT_ITEMSIZE = 8  # mean and 1/σ are float64 whatever the input dtype
_GROUP_CACHE_BYTES = 1 << 20  # a group this small stays in a core's L2 between two passes over it
_BAND_CACHE_BYTES = 4 << 20  # a thread's band of rows of dy and x stays in its share of the L3 until dx
_BAND_MAX_ROWS = 64  # column sums run in the input type over at most this many rows
# "absent" arrays per dtype for the kernels' optional arguments (weight, bias; a residual reshaped
# to 3-D), shared with the fused batch norm + activation
_EMPTY = {np.dtype(t): np.empty(0, dtype=t) for t in (np.float32, np.float64)}


@dataclass(frozen=True)
class _Layout:
    """The input as a contiguous (A, B, L) array: row b is in statistics group b // cpg and has
    affine channel b % channels (or affine parameters per l when ``elementwise``)."""

    shape3: Tuple[int, int, int]
    cpg: int = 1
    channels: int = 1
    elementwise: bool = False

    @property
    def groups(self) -> int:
        return self.shape3[1] // self.cpg

    @property
    def count(self) -> int:
        """Elements per statistics group."""
        return self.shape3[0] * self.cpg * self.shape3[2]

    @property
    def stats_view(self) -> Tuple[int, int, int]:
        """The same memory as (A, groups, cpg·L): each group's rows side by side."""
        a, b, l = self.shape3
        return a, b // self.cpg, self.cpg * l


def _fits_in_cache(layout: "_Layout", itemsize: int, arrays: int) -> bool:
    """Whether the fused per-group kernels apply: contiguous groups (A == 1) whose ``arrays``
    arrays fit in cache, and enough groups to keep every thread busy."""
    a, _, l = layout.shape3
    return (a == 1 and layout.cpg * l * itemsize * arrays <= _GROUP_CACHE_BYTES
            and layout.groups >= 2 * plan_threads())


def _band_rows(layout: "_Layout", itemsize: int) -> int:
    """Rows per band of ``backward_rows`` (layer norm), or 0 when it does not apply: it needs
    contiguous rows, two rows of dy and x in a thread's cache and two rows per thread."""
    a, rows, l = layout.shape3
    if not (a == 1 and layout.elementwise and rows >= 2 * plan_threads()):
        return 0
    band = _BAND_CACHE_BYTES // max(1, 2 * l * itemsize)
    return min(band, _BAND_MAX_ROWS) if band >= 2 else 0


def _save_plan(needs_input_grad, batch_stats: bool, has_weight: bool) -> Tuple[bool, bool, bool, bool]:
    """Which of (x, mean, 1/σ, weight) backward needs, given which inputs need a gradient."""
    needs_x, needs_w = needs_input_grad[0], needs_input_grad[1]
    save_x = needs_w or (needs_x and batch_stats)
    save_rstd = needs_x or needs_w
    save_weight = needs_x and has_weight
    return save_x, save_x, save_rstd, save_weight


def _flat_param(p: Optional[np.ndarray], dtype) -> np.ndarray:
    """A contiguous 1-D parameter, or an empty array standing for 'absent'."""
    if p is None:
        return np.empty(0, dtype=dtype)
    return np.ascontiguousarray(p).reshape(-1)


def _update_running(running, mean: np.ndarray, var: np.ndarray, count: int, channels: int) -> None:
    """running ← (1 - momentum)·running + momentum·batch value, in place, with the unbiased
    variance; statistics of several groups per channel (instance norm) are averaged first."""
    running_mean, running_var, momentum = running
    batch_mean = mean
    batch_var = var * (count / (count - 1)) if count > 1 else var
    if mean.size != channels:  # (numpy's mean costs ~10 µs even over one row: only when needed)
        batch_mean = mean.reshape(-1, channels).mean(axis=0)
        batch_var = batch_var.reshape(-1, channels).mean(axis=0)
    running_mean[...] = (1.0 - momentum) * running_mean + momentum * batch_mean
    running_var[...] = (1.0 - momentum) * running_var + momentum * batch_var


class Normalize(Function):
    """y = (x - mean_g)/sqrt(var_g + eps)·weight + bias over the groups of a ``_Layout``.

    ``fixed_stats=(mean, var)`` (per channel) replaces the batch statistics (eval mode);
    ``running=(running_mean, running_var, momentum)`` updates those arrays in place.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, *, layout: _Layout, eps: float, fixed_stats=None, running=None):
        x3 = np.ascontiguousarray(x).reshape(layout.shape3)
        y = np.empty_like(x3)
        w, b = _flat_param(weight, x.dtype), _flat_param(bias, x.dtype)
        affine = (w, b, weight is not None, bias is not None)
        if fixed_stats is not None and len(fixed_stats[0]) == layout.groups and not layout.elementwise:
            # batch norm in eval: per-channel scale and shift from the statistics, one pass
            mean, var = fixed_stats
            rstd = np.empty(layout.groups, dtype=np.float64)
            _ew.batch_norm_act(x3, _EMPTY[x3.dtype].reshape(0, 0, 0), y, mean, var, eps, w, b, rstd, False, 0.0,
                               elementwise_threads(y.size))
        elif fixed_stats is None and _fits_in_cache(layout, x.itemsize, 1):
            mean, var, rstd = (np.empty(layout.groups, dtype=np.float64) for _ in range(3))
            _norm.normalize_groups(x3, *affine, layout.cpg, layout.channels, layout.elementwise,
                                   eps, mean, var, rstd, y)
        else:
            if fixed_stats is None:
                mean = np.empty(layout.groups, dtype=np.float64)
                var = np.empty(layout.groups, dtype=np.float64)
                _norm.moments(x3.reshape(layout.stats_view), mean, var)
            else:  # per-channel statistics, repeated for every sample's groups (instance norm)
                mean, var = (np.tile(np.asarray(a, dtype=np.float64), layout.groups // len(a))
                             for a in fixed_stats)
            rstd = 1.0 / np.sqrt(var + eps)
            _norm.normalize(x3, mean, rstd, *affine, layout.cpg, layout.channels, layout.elementwise, y)
        if fixed_stats is None and running is not None:
            _update_running(running, mean, var, layout.count, layout.channels)
        batch_stats = fixed_stats is None
        save_x, save_mean, save_rstd, save_w = _save_plan(ctx.needs_input_grad, batch_stats,
                                                          weight is not None)
        ctx.save_for_backward(x3 if save_x else None, mean if save_mean else None,
                              rstd if save_rstd else None, weight if save_w else None)
        ctx.layout = layout
        ctx.batch_stats = batch_stats
        ctx.shape = x.shape
        ctx.weight_shape = None if weight is None else weight.shape
        ctx.bias_shape = None if bias is None else bias.shape
        return y.reshape(x.shape)

    @staticmethod
    def saved_bytes(shapes, dtype, needs_input_grad, *, layout: _Layout, eps: float = 1e-5,
                    fixed_stats=None, running=None) -> int:
        """Bytes forward keeps for backward (see the module docstring)."""
        x_shape, w_shape = shapes[0], shapes[1]
        save_x, save_mean, save_rstd, save_w = _save_plan(needs_input_grad, fixed_stats is None,
                                                          w_shape is not None)
        total = shape_nbytes(x_shape, dtype) if save_x else 0
        total += (save_mean + save_rstd) * layout.groups * _STAT_ITEMSIZE
        if save_w:
            total += shape_nbytes(w_shape, dtype)
        return total

    @staticmethod
    def backward(ctx, grad):
        x3, mean, rstd, weight = ctx.saved_tensors
        return normalize_backward(grad, x3, mean, rstd, weight, ctx.layout, ctx.batch_stats, ctx.needs_input_grad,
                                  ctx.shape, ctx.weight_shape, ctx.bias_shape)


def normalize_backward(grad, x3, mean, rstd, weight, layout: _Layout, batch_stats: bool, needs_input_grad,
                       shape, weight_shape, bias_shape):
    """(dx, dweight, dbias) of ``Normalize`` from what its forward saved (each None when not needed);
    also the backward of the normalization inside the fused batch norm + activation."""
    needs_x, needs_w, needs_b = needs_input_grad[:3]
    dtype = grad.dtype
    dy = np.ascontiguousarray(grad).reshape(layout.shape3)
    w = _flat_param(weight, dtype)
    has_w = weight is not None
    dx = dx_out = None
    if needs_x:
        # allocated in the input's shape: the engine keeps an array it owns as the leaf's
        # .grad but copies a view; the kernels write it through a (A, B, L) view
        dx_out = np.empty(shape, dtype=dtype)
        dx = dx_out.reshape(layout.shape3)
    if needs_x and not batch_stats:
        # fixed statistics: y is affine in x, dx = dy·w/σ (the normalize kernel with mean 0)
        _norm.normalize(dy, np.zeros_like(rstd), rstd, w, w[:0], has_w, False, layout.cpg,
                        layout.channels, layout.elementwise, dx)
    need_affine = needs_w or needs_b
    kernel_dx = needs_x and batch_stats
    dweight = dbias = None
    if need_affine or kernel_dx:
        n_affine = layout.shape3[2] if layout.elementwise else layout.channels
        dw64 = np.empty(n_affine if need_affine else 0, dtype=np.float64)
        db64 = np.empty_like(dw64)
        with_x = x3 is not None
        band = _band_rows(layout, dy.itemsize) if kernel_dx else 0
        if band:
            _norm.backward_rows(dy, x3, mean, rstd, w, has_w, band, plan_threads(), dx, dw64, db64,
                                need_affine)
        elif kernel_dx and not layout.elementwise and _fits_in_cache(layout, dy.itemsize, 2):
            _norm.backward_groups(dy, x3, mean, rstd, w, has_w, layout.cpg, layout.channels,
                                  dx, dw64, db64, need_affine)
        else:
            out_dx = dx if kernel_dx else np.empty((0, 0, 0), dtype=dtype)
            _norm.backward(dy, x3 if with_x else dy, mean if with_x else rstd, rstd, w, has_w,
                           layout.cpg, layout.channels, layout.elementwise, with_x,
                           out_dx, kernel_dx, dw64, db64, need_affine)
        if needs_w:
            dweight = dw64.reshape(weight_shape).astype(dtype)
        if needs_b:
            dbias = db64.reshape(bias_shape).astype(dtype)
    return dx_out, dweight, dbias


# ---- validation -------------------------------------------------------------------------------

def _optional(p, op: str, name: str, x: Tensor, shape: Tuple[int, ...], context: str,
              same_dtype: bool = True):
    """None, or a float Tensor/ndarray of ``shape`` (with the input's dtype if ``same_dtype``)."""
    if p is None:
        return None
    if isinstance(p, Tensor) and p._array.shape == shape and (
            p._array.dtype == x._array.dtype if same_dtype else p._array.dtype.char in "fd"):
        return p  # the common case, checked in one line: every norm layer calls this 4 times
    p = as_float_tensor(p, op, name)
    if same_dtype:
        check_same_dtype(op, **{name: p._array}, input=x._array)
    if tuple(p.shape) != tuple(shape):
        raise ValueError(f"{op}: expected {name} of shape {tuple(shape)} {context}, got {tuple(p.shape)}")
    return p


def _check_eps(eps, op: str) -> float:
    if isinstance(eps, bool) or not isinstance(eps, (int, float, np.floating, np.integer)):
        raise TypeError(f"{op}: expected eps as a float, got {eps!r}")
    if not 0 <= eps < float("inf"):  # NaN and inf fail too
        raise ValueError(f"{op}: expected eps as a finite float >= 0, got {eps!r}")
    return float(eps)


def _check_momentum(momentum, op: str) -> float:
    if momentum is None:
        raise TypeError(f"{op}: momentum=None (cumulative average) is not supported by the functional "
                        "form; pass the factor 1/num_batches_tracked as a float")
    if isinstance(momentum, bool) or not isinstance(momentum, (int, float, np.floating, np.integer)):
        raise TypeError(f"{op}: expected momentum as a float, got {momentum!r}")
    if not 0.0 <= momentum <= 1.0:  # NaN fails too: it would silently turn the running statistics into NaN
        raise ValueError(f"{op}: expected momentum in [0, 1], got {momentum!r}")
    return float(momentum)


def _running_stats(op: str, x: Tensor, running_mean, running_var, channels: int):
    """Both running statistics or neither, each of shape (channels,), float32 or float64 (they are
    read and updated in float64, so they need not share the input's dtype)."""
    if (running_mean is None) != (running_var is None):
        raise ValueError(f"{op}: expected running_mean and running_var both given or both None, got "
                         f"running_mean={'None' if running_mean is None else 'array'}, "
                         f"running_var={'None' if running_var is None else 'array'}")
    context = f"for input with {channels} channels"
    rm = _optional(running_mean, op, "running_mean", x, (channels,), context, same_dtype=False)
    rv = _optional(running_var, op, "running_var", x, (channels,), context, same_dtype=False)
    return rm, rv


def _data(t: Optional[Tensor]):
    return None if t is None else t._array


def _spatial_size(shape: Sequence[int]) -> int:
    return math.prod(shape[2:])  # math.prod: numpy's costs µs per call on a short tuple


# ---- public functions -------------------------------------------------------------------------

def _per_channel_args(op: str, x: Tensor, running_mean, running_var, weight, bias, eps, momentum):
    """Checked arguments of the per-channel norms (batch and instance norm): N, C, spatial size,
    running statistics, per-channel affine, eps and momentum."""
    n, c = x.shape[0], x.shape[1]
    context = f"for input with {c} channels"
    rm, rv = _running_stats(op, x, running_mean, running_var, c)
    w = _optional(weight, op, "weight", x, (c,), context)
    b = _optional(bias, op, "bias", x, (c,), context)
    return (n, c, _spatial_size(x.shape), rm, rv, w, b, _check_eps(eps, op), _check_momentum(momentum, op))


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training: bool = False,
               momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Normalize each channel of an (N, C, *) input over N and the spatial axes.

    In training the batch statistics are used and ``running_mean``/``running_var`` (when given)
    are updated in place: running ← (1 - momentum)·running + momentum·batch, with the unbiased
    batch variance. In eval the running statistics are used. Unlike PyTorch, which raises in eval
    mode without running statistics, ``running_mean=running_var=None`` always uses batch
    statistics. ``momentum=None`` (cumulative average) is not supported here: the module passes
    1/num_batches_tracked as a float, as PyTorch's module does.
    """
    op = "batch_norm"
    x = as_float_tensor(input, op)
    check_ndim(x._array, (2, 3, 4, 5), op, layout="(N, C, *)")
    n, c, s, rm, rv, w, b, eps, momentum = _per_channel_args(op, x, running_mean, running_var, weight, bias,
                                                             eps, momentum)
    layout = _Layout((n, c, s), cpg=1, channels=c)
    use_batch = training or rm is None
    if training and n * s == 1:
        raise ValueError(f"{op}: Expected more than 1 value per channel when training, "
                         f"got input of shape {tuple(x.shape)}")
    fixed = None if use_batch else (rm._array.astype(np.float64), rv._array.astype(np.float64))
    running = (rm._array, rv._array, momentum) if (training and rm is not None) else None
    return Normalize.apply(x, w, b, layout=layout, eps=eps, fixed_stats=fixed, running=running)


def layer_norm(input, normalized_shape: Union[int, Sequence[int]], weight=None, bias=None,
               eps: float = 1e-5) -> Tensor:
    """Normalize over the trailing ``normalized_shape`` axes of each sample; weight and bias have
    shape ``normalized_shape`` (elementwise affine)."""
    op = "layer_norm"
    x = as_float_tensor(input, op)
    if isinstance(normalized_shape, (int, np.integer)) and not isinstance(normalized_shape, bool):
        normalized_shape = (int(normalized_shape),)
    if not isinstance(normalized_shape, (tuple, list)) or not all(
            isinstance(d, (int, np.integer)) and not isinstance(d, bool) for d in normalized_shape):
        raise TypeError(f"{op}: expected normalized_shape as an int or a sequence of ints, "
                        f"got {normalized_shape!r}")
    normalized_shape = tuple(int(d) for d in normalized_shape)
    k = len(normalized_shape)
    if k == 0:
        raise ValueError(f"{op}: expected normalized_shape with at least 1 dimension, got ()")
    if x.ndim < k or tuple(x.shape[x.ndim - k:]) != normalized_shape:
        raise ValueError(f"{op}: expected input with trailing shape {normalized_shape} "
                         f"(normalized_shape), got input of shape {tuple(x.shape)}")
    context = f"for normalized_shape {normalized_shape}"
    w = _optional(weight, op, "weight", x, normalized_shape, context)
    b = _optional(bias, op, "bias", x, normalized_shape, context)
    eps = _check_eps(eps, op)
    m = math.prod(normalized_shape)
    rows = math.prod(x.shape[:x.ndim - k])
    layout = _Layout((1, rows, m), cpg=1, channels=1, elementwise=True)
    return Normalize.apply(x, w, b, layout=layout, eps=eps)


def instance_norm(input, running_mean=None, running_var=None, weight=None, bias=None,
                  use_input_stats: bool = True, momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Normalize each (sample, channel) of an (N, C, *spatial) input over its spatial axes.

    With ``use_input_stats`` the running statistics (when given) are updated in place with the
    per-channel average over the batch of the instance means and unbiased variances; without it
    the running statistics are used.
    """
    op = "instance_norm"
    x = as_float_tensor(input, op)
    check_ndim(x._array, (3, 4, 5), op, layout="(N, C, *spatial)")
    n, c, s, rm, rv, w, b, eps, momentum = _per_channel_args(op, x, running_mean, running_var, weight, bias,
                                                             eps, momentum)
    layout = _Layout((1, n * c, s), cpg=1, channels=c)
    if use_input_stats:
        if s == 1:
            raise ValueError(f"{op}: Expected more than 1 spatial element when training, "
                             f"got input of shape {tuple(x.shape)}")
        running = None if rm is None else (rm._array, rv._array, momentum)
        return Normalize.apply(x, w, b, layout=layout, eps=eps, running=running)
    if rm is None:
        raise ValueError(f"{op}: expected running_mean and running_var when use_input_stats=False, got None")
    fixed = (rm._array.astype(np.float64), rv._array.astype(np.float64))
    return Normalize.apply(x, w, b, layout=layout, eps=eps, fixed_stats=fixed)


def group_norm(input, num_groups: int, weight=None, bias=None, eps: float = 1e-5) -> Tensor:
    """Normalize each sample's channels in ``num_groups`` groups (over C/G and the spatial axes);
    weight and bias are per channel."""
    op = "group_norm"
    x = as_float_tensor(input, op)
    check_ndim(x._array, (2, 3, 4, 5), op, layout="(N, C, *)")
    n, c = x.shape[0], x.shape[1]
    if isinstance(num_groups, bool) or not isinstance(num_groups, (int, np.integer)):
        raise TypeError(f"{op}: expected num_groups as an int, got {num_groups!r}")
    if num_groups < 1 or c == 0 or c % num_groups != 0:
        raise ValueError(f"{op}: expected num_groups >= 1 dividing the {c} channels of the input, "
                         f"got num_groups={num_groups} for input of shape {tuple(x.shape)}")
    context = f"for input with {c} channels"
    w = _optional(weight, op, "weight", x, (c,), context)
    b = _optional(bias, op, "bias", x, (c,), context)
    eps = _check_eps(eps, op)
    layout = _Layout((1, n * c, _spatial_size(x.shape)), cpg=c // int(num_groups), channels=c)
    return Normalize.apply(x, w, b, layout=layout, eps=eps)
