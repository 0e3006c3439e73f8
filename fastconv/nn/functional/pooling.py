"""Pooling (PyTorch semantics): max with switches, max-unpool, average, adaptive and global pools.

The public functions validate arguments and window geometry; the Functions reshape inputs to
contiguous (planes, H, W) arrays and call the Cython kernels in ``fastconv._kernels.pool``.
Max pooling saves only its switches (flat h*W+w positions, PyTorch's indices; int32 unless the
caller asks for them): backward routes each gradient through its switch. Average pools save
nothing: their backward is closed-form.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple, Union

import numpy as np

from ..._config import elementwise_threads
from ..._kernels import elementwise as _ew
from ..._kernels import pool as _pool
from ..._validation import check_ndim, int_pair
from ...autograd.function import Function, shape_nbytes
from ._args import as_float_tensor
from ...tensor import Tensor

IntPair = Union[int, Tuple[int, int]]
_INDEX_DTYPE = np.dtype(np.int64)
_NO_INDICES = np.empty((1, 1, 1), dtype=np.int64)  # never written: kernels get with_indices=False


# ---- geometry ----------------------------------------------------------------------------------

def pooled_size(size: int, kernel: int, stride: int, padding: int, dilation: int, ceil_mode: bool) -> int:
    """PyTorch's pooling output length; with ceil_mode the last window must start inside the
    input or the left padding."""
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    out = (span + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out


def _pooled_hw(hw: Sequence[int], kernel, stride, padding, dilation, ceil_mode) -> Tuple[int, int]:
    return (pooled_size(hw[0], kernel[0], stride[0], padding[0], dilation[0], ceil_mode),
            pooled_size(hw[1], kernel[1], stride[1], padding[1], dilation[1], ceil_mode))


def _planes(x: np.ndarray) -> np.ndarray:
    """(…, H, W) as a C-contiguous (planes, H, W) array (a view when already contiguous)."""
    return np.ascontiguousarray(x).reshape(-1, x.shape[-2], x.shape[-1])


def _plane_gradient(kernel, grad_out: np.ndarray, input_shape, *geometry) -> np.ndarray:
    """Input gradient of a pooling whose backward kernel maps output planes to input planes.

    Allocated in the input's shape (the kernel writes a planes view of it): a reshaped view
    returned instead is not fresh for the engine, which then copies it into the leaf's .grad
    (51 MB per call on 64×64×56×56)."""
    g = _planes(grad_out)
    grad_in = np.empty(input_shape, dtype=g.dtype)
    kernel(g, grad_in.reshape((g.shape[0],) + tuple(input_shape[-2:])), *geometry)
    return grad_in


def _switch_dtype(input_hw: Sequence[int], return_indices: bool) -> np.dtype:
    """int64 for switches the caller gets (PyTorch's dtype); int32 for switches only backward
    reads, when the plane allows it (half the memory and bandwidth)."""
    if return_indices or input_hw[0] * input_hw[1] >= 2 ** 31:
        return _INDEX_DTYPE
    return np.dtype(np.int32)


# ---- validation ----------------------------------------------------------------------------------

def _check_input(x, op: str) -> Tensor:
    """A float Tensor of shape (N, C, H, W) or (C, H, W) with non-empty C, H, W."""
    x = as_float_tensor(x, op)
    check_ndim(x._array, (3, 4), op, layout="(N, C, H, W)")
    if any(s == 0 for s in x.shape[-3:]):
        raise ValueError(f"{op}: expected non-empty channel and spatial dimensions, got input of shape {x.shape}")
    return x


def _check_bool(value, op: str, name: str) -> bool:
    """A flag: bool, or 0/1 as PyTorch also accepts."""
    if not (isinstance(value, (bool, np.bool_)) or (isinstance(value, (int, np.integer)) and value in (0, 1))):
        raise TypeError(f"{op}: expected {name} as a bool, got {value!r}")
    return bool(value)


def _window(op: str, x: Tensor, kernel_size, stride, padding, dilation, ceil_mode):
    """Checked (kernel, stride, padding, dilation) pairs and ceil_mode; the output must be non-empty."""
    kernel = int_pair(kernel_size, op, "kernel_size", minimum=1)
    stride = kernel if stride is None or (isinstance(stride, (tuple, list)) and len(stride) == 0) \
        else int_pair(stride, op, "stride", minimum=1)
    padding = int_pair(padding, op, "padding", minimum=0)
    dilation = int_pair(dilation, op, "dilation", minimum=1)
    ceil_mode = _check_bool(ceil_mode, op, "ceil_mode")
    if padding[0] > kernel[0] // 2 or padding[1] > kernel[1] // 2:
        raise ValueError(f"{op}: expected padding <= kernel_size / 2, got padding {padding} "
                         f"for kernel_size {kernel}")
    hw = x.shape[-2:]
    out_hw = _pooled_hw(hw, kernel, stride, padding, dilation, ceil_mode)
    if out_hw[0] < 1 or out_hw[1] < 1:
        raise ValueError(
            f"{op}: kernel_size {kernel} with dilation {dilation} does not fit the input {tuple(hw)} "
            f"with padding {padding}: output size would be {out_hw}")
    return kernel, stride, padding, dilation, ceil_mode


def _adaptive_size(output_size, x: Tensor, op: str) -> Tuple[int, int]:
    """output_size as an int or a pair of ints/None (None keeps that input dimension)."""
    if isinstance(output_size, (tuple, list)) and len(output_size) == 2:
        pair = tuple(x.shape[-2 + i] if v is None else v for i, v in enumerate(output_size))
    else:
        pair = output_size
    return int_pair(pair, op, "output_size", minimum=1)


# ---- max pooling -------------------------------------------------------------------------------

class MaxPool2d(Function):
    """Window maxima with switches; backward scatter-adds each gradient at its switch."""

    @staticmethod
    def forward(ctx, x, kernel_size, stride, padding, dilation, ceil_mode, return_indices):
        lead = x.shape[:-2]
        oh, ow = _pooled_hw(x.shape[-2:], kernel_size, stride, padding, dilation, ceil_mode)
        planes = _planes(x)
        out = np.empty((planes.shape[0], oh, ow), dtype=x.dtype)
        with_indices = return_indices or ctx.needs_input_grad[0]
        idx = np.empty(out.shape, dtype=_switch_dtype(x.shape[-2:], return_indices)) if with_indices \
            else _NO_INDICES
        _pool.max_pool2d_forward(planes, out, idx, *kernel_size, *stride, *padding, *dilation, with_indices)
        ctx.input_shape = x.shape
        if ctx.needs_input_grad[0]:
            ctx.save_for_backward(idx)
        out = out.reshape(lead + (oh, ow))
        if return_indices:
            ctx.mark_non_differentiable(1)
            return out, idx.reshape(lead + (oh, ow))
        return out

    @staticmethod
    def saved_bytes(shapes, dtype, needs_input_grad, kernel_size, stride, padding, dilation, ceil_mode,
                    return_indices) -> int:
        if not needs_input_grad[0]:
            return 0
        out_hw = _pooled_hw(shapes[0][-2:], kernel_size, stride, padding, dilation, ceil_mode)
        return shape_nbytes(tuple(shapes[0][:-2]) + out_hw, _switch_dtype(shapes[0][-2:], return_indices))

    @staticmethod
    def backward(ctx, grad_out, grad_indices=None):
        (idx,) = ctx.saved_tensors
        return (_scatter_through_switches(grad_out, idx, ctx.input_shape),)


class AdaptiveMaxPool2d(Function):
    """Maxima over adaptive windows with switches; backward as for max_pool2d."""

    @staticmethod
    def forward(ctx, x, output_size, return_indices):
        lead = x.shape[:-2]
        planes = _planes(x)
        out = np.empty((planes.shape[0],) + tuple(output_size), dtype=x.dtype)
        with_indices = return_indices or ctx.needs_input_grad[0]
        idx = np.empty(out.shape, dtype=_switch_dtype(x.shape[-2:], return_indices)) if with_indices \
            else _NO_INDICES
        _pool.adaptive_max_pool2d_forward(planes, out, idx, with_indices)
        ctx.input_shape = x.shape
        if ctx.needs_input_grad[0]:
            ctx.save_for_backward(idx)
        out = out.reshape(lead + tuple(output_size))
        if return_indices:
            ctx.mark_non_differentiable(1)
            return out, idx.reshape(out.shape)
        return out

    @staticmethod
    def saved_bytes(shapes, dtype, needs_input_grad, output_size, return_indices) -> int:
        if not needs_input_grad[0]:
            return 0
        return shape_nbytes(tuple(shapes[0][:-2]) + tuple(output_size), _switch_dtype(shapes[0][-2:], return_indices))

    @staticmethod
    def backward(ctx, grad_out, grad_indices=None):
        (idx,) = ctx.saved_tensors
        return (_scatter_through_switches(grad_out, idx, ctx.input_shape),)


def _scatter_through_switches(grad_out: np.ndarray, idx: np.ndarray, input_shape) -> np.ndarray:
    """Gradient of a max pool: each output gradient added at its switch, zero elsewhere."""
    g = np.ascontiguousarray(grad_out).reshape(-1, idx.shape[-2] * idx.shape[-1])
    grad_in = np.empty(input_shape, dtype=g.dtype)  # not a view: see _plane_gradient
    # explicit plane size: a -1 cannot be inferred when there are no planes (batch 0)
    _pool.scatter_add_planes(g, idx.reshape(g.shape), grad_in.reshape(g.shape[0], input_shape[-2] * input_shape[-1]))
    return grad_in


class MaxUnpool2d(Function):
    """Places each value at its switch in a zero plane; backward gathers through the switches."""

    @staticmethod
    def forward(ctx, x, indices, output_hw):
        lead = x.shape[:-2]
        src = np.ascontiguousarray(x).reshape(-1, x.shape[-2] * x.shape[-1])
        idx = np.ascontiguousarray(indices, dtype=_INDEX_DTYPE).reshape(src.shape)
        out = np.empty((src.shape[0], output_hw[0] * output_hw[1]), dtype=x.dtype)
        _pool.scatter_planes(src, idx, out)
        ctx.input_shape = x.shape
        if ctx.needs_input_grad[0]:
            ctx.save_for_backward(idx)
        return out.reshape(lead + tuple(output_hw))

    @staticmethod
    def saved_bytes(shapes, dtype, needs_input_grad, output_hw) -> int:
        return shape_nbytes(shapes[1], _INDEX_DTYPE) if needs_input_grad[0] else 0

    @staticmethod
    def backward(ctx, grad_out):
        (idx,) = ctx.saved_tensors
        g = np.ascontiguousarray(grad_out).reshape(idx.shape[0], grad_out.shape[-2] * grad_out.shape[-1])
        grad_in = np.empty(ctx.input_shape, dtype=g.dtype)  # not a view: see _plane_gradient
        _pool.gather_planes(g, idx, grad_in.reshape(idx.shape))
        return grad_in, None


# ---- average pooling ---------------------------------------------------------------------------

class AvgPool2d(Function):
    """Window means; backward spreads grad/divisor over each window (nothing saved)."""

    @staticmethod
    def forward(ctx, x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override):
        lead = x.shape[:-2]
        oh, ow = _pooled_hw(x.shape[-2:], kernel_size, stride, padding, (1, 1), ceil_mode)
        planes = _planes(x)
        out = np.empty((planes.shape[0], oh, ow), dtype=x.dtype)
        ctx.geometry = (*kernel_size, *stride, *padding, count_include_pad, divisor_override or 0)
        _pool.avg_pool2d_forward(planes, out, *ctx.geometry)
        ctx.input_shape = x.shape
        return out.reshape(lead + (oh, ow))

    @staticmethod
    def saved_bytes(shapes, dtype, needs_input_grad, **options) -> int:
        return 0

    @staticmethod
    def backward(ctx, grad_out):
        return (_plane_gradient(_pool.avg_pool2d_backward, grad_out, ctx.input_shape, *ctx.geometry),)


class AdaptiveAvgPool2d(Function):
    """Means over adaptive windows; backward spreads grad/area over each window (nothing saved).
    A 1×1 output (global average pooling) runs the element-wise kernels' per-plane mean."""

    @staticmethod
    def forward(ctx, x, output_size):
        planes = _planes(x)
        out = np.empty((planes.shape[0],) + tuple(output_size), dtype=x.dtype)
        if tuple(output_size) == (1, 1):
            flat = planes.reshape(planes.shape[0], -1)
            _ew.plane_mean(flat, out.reshape(-1), elementwise_threads(flat.size))
        else:
            _pool.adaptive_avg_pool2d_forward(planes, out)
        ctx.input_shape = x.shape
        return out.reshape(x.shape[:-2] + tuple(output_size))

    @staticmethod
    def saved_bytes(shapes, dtype, needs_input_grad, **options) -> int:
        return 0

    @staticmethod
    def backward(ctx, grad_out):
        if grad_out.shape[-2:] == (1, 1):
            g = np.ascontiguousarray(grad_out).reshape(-1)
            grad_in = np.empty(ctx.input_shape, dtype=g.dtype)
            _ew.plane_mean_backward(g, grad_in.reshape(g.shape[0], -1), elementwise_threads(grad_in.size))
            return (grad_in,)
        return (_plane_gradient(_pool.adaptive_avg_pool2d_backward, grad_out, ctx.input_shape),)


# ---- public functions ------------------------------------------------------------------------------

def max_pool2d(input, kernel_size: IntPair, stride: Optional[IntPair] = None, padding: IntPair = 0,
               dilation: IntPair = 1, ceil_mode: bool = False, return_indices: bool = False):
    """Max over (dilated) windows; with ``return_indices`` also the int64 switches h*W+w per plane.

    Padding acts as -inf, ties go to the first maximum in row-major window order, NaN propagates.
    Input (N, C, H, W) or (C, H, W); ``stride`` defaults to ``kernel_size``.
    """
    op = "max_pool2d"
    x = _check_input(input, op)
    kernel, stride, padding, dilation, ceil_mode = _window(op, x, kernel_size, stride, padding, dilation,
                                                           ceil_mode)
    return MaxPool2d.apply(x, kernel_size=kernel, stride=stride, padding=padding, dilation=dilation,
                           ceil_mode=ceil_mode, return_indices=_check_bool(return_indices, op, "return_indices"))


def _unpool_size(op: str, in_hw, kernel, stride, padding, output_size) -> Tuple[int, int]:
    """PyTorch's default (H-1)*stride - 2*padding + kernel, or a checked explicit output_size."""
    default = tuple((in_hw[i] - 1) * stride[i] - 2 * padding[i] + kernel[i] for i in range(2))
    if output_size is None:
        size = default
    else:
        size = tuple(output_size) if isinstance(output_size, (tuple, list)) else (output_size,)
        if len(size) in (3, 4):  # the full output shape, as PyTorch accepts
            size = size[-2:]
        if len(size) != 2 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in size):
            raise ValueError(f"{op}: expected output_size as (H, W) or the full output shape, got {output_size!r}")
        for i in range(2):
            lo, hi = default[i] - stride[i], default[i] + stride[i]
            if not lo < size[i] < hi:
                raise ValueError(f"{op}: invalid output_size {tuple(output_size)}: dimension {i} must be "
                                 f"between {lo} and {hi} (exclusive) for this kernel_size, stride and padding")
        size = (int(size[0]), int(size[1]))
    if size[0] < 1 or size[1] < 1:
        raise ValueError(f"{op}: output size would be {size}, expected positive sizes")
    return size


def max_unpool2d(input, indices, kernel_size: IntPair, stride: Optional[IntPair] = None,
                 padding: IntPair = 0, output_size=None) -> Tensor:
    """Inverse of max_pool2d: each value placed at its switch in a zeroed output plane.

    ``indices`` are max_pool2d's switches (same shape as ``input``); every index must lie in
    the output plane. Differentiable with respect to ``input``.
    """
    op = "max_unpool2d"
    x = _check_input(input, op)
    idx = indices._array if isinstance(indices, Tensor) else np.asarray(indices)
    if idx.dtype.kind not in "iu":
        raise TypeError(f"{op}: expected integer indices (int64, as returned by max_pool2d), got {idx.dtype}")
    if idx.shape != x.shape:
        raise ValueError(f"{op}: expected indices of the input's shape {x.shape}, got indices of shape {idx.shape}")
    kernel = int_pair(kernel_size, op, "kernel_size", minimum=1)
    stride = kernel if stride is None else int_pair(stride, op, "stride", minimum=1)
    padding = int_pair(padding, op, "padding", minimum=0)
    out_hw = _unpool_size(op, x.shape[-2:], kernel, stride, padding, output_size)
    plane = out_hw[0] * out_hw[1]
    if idx.size:
        lo, hi = int(idx.min()), int(idx.max())
        if lo < 0 or hi >= plane:
            bad = lo if lo < 0 else hi
            raise ValueError(f"{op}: expected indices in [0, {plane}) for an output plane of size {out_hw}, "
                             f"got index {bad}")
    return MaxUnpool2d.apply(x, idx, output_hw=out_hw)


def avg_pool2d(input, kernel_size: IntPair, stride: Optional[IntPair] = None, padding: IntPair = 0,
               ceil_mode: bool = False, count_include_pad: bool = True,
               divisor_override: Optional[int] = None) -> Tensor:
    """Mean over windows (PyTorch's divisor: window clipped to the padded input when
    ``count_include_pad``, else its valid part; or ``divisor_override``)."""
    op = "avg_pool2d"
    x = _check_input(input, op)
    kernel, stride, padding, _, ceil_mode = _window(op, x, kernel_size, stride, padding, 1, ceil_mode)
    if divisor_override is not None:
        if not isinstance(divisor_override, (int, np.integer)) or isinstance(divisor_override, bool):
            raise TypeError(f"{op}: expected divisor_override as an int or None, got {divisor_override!r}")
        if divisor_override == 0:
            raise ValueError(f"{op}: expected a non-zero divisor_override, got 0")
        divisor_override = int(divisor_override)
    return AvgPool2d.apply(x, kernel_size=kernel, stride=stride, padding=padding, ceil_mode=ceil_mode,
                           count_include_pad=_check_bool(count_include_pad, op, "count_include_pad"),
                           divisor_override=divisor_override)


def adaptive_avg_pool2d(input, output_size) -> Tensor:
    """Means over windows [floor(i*H/out), ceil((i+1)*H/out)) that tile the input into ``output_size``."""
    op = "adaptive_avg_pool2d"
    x = _check_input(input, op)
    return AdaptiveAvgPool2d.apply(x, output_size=_adaptive_size(output_size, x, op))


def adaptive_max_pool2d(input, output_size, return_indices: bool = False):
    """Maxima over adaptive windows (as adaptive_avg_pool2d), optionally with int64 switches."""
    op = "adaptive_max_pool2d"
    x = _check_input(input, op)
    return AdaptiveMaxPool2d.apply(x, output_size=_adaptive_size(output_size, x, op),
                                   return_indices=_check_bool(return_indices, op, "return_indices"))


def global_avg_pool2d(input) -> Tensor:
    """Mean of each plane, shape (N, C, 1, 1): the Network-in-Network classifier head."""
    x = _check_input(input, "global_avg_pool2d")
    return AdaptiveAvgPool2d.apply(x, output_size=(1, 1))


def global_max_pool2d(input) -> Tensor:
    """Max of each plane, shape (N, C, 1, 1); the gradient goes to each plane's first maximum."""
    x = _check_input(input, "global_max_pool2d")
    return AdaptiveMaxPool2d.apply(x, output_size=(1, 1), return_indices=False)
