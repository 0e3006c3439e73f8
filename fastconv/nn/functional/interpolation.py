"""``interpolate``: PyTorch's ``F.interpolate`` for 'nearest', 'nearest-exact', 'linear', 'bilinear' and 'area'.

Output sizes, source indices and weights follow PyTorch's CPU kernels exactly: ``size`` or
``floor(input_size · scale_factor)``; with a ``scale_factor`` (and ``recompute_scale_factor``
not True) the coordinate map uses 1/scale_factor, else input/output size. 'nearest' takes
``floor(dst · scale)`` in float32 (OpenCV's rule), 'nearest-exact' rounds the pixel centre's
position (Pillow's); linear weights are computed in the input's dtype, with ``align_corners``
mapping corner pixels' centres onto each other. The kernels are ``fastconv/_kernels/interpolate.pyx``;
1-D inputs run as images of height 1.
"""
from __future__ import annotations

import math
import numbers
from typing import NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np

from ..._config import get_num_threads
from ..._kernels import interpolate as _interp
from ...autograd.function import Function, shape_nbytes
from ...tensor import Tensor
from ._args import as_float_tensor
from .pooling import adaptive_avg_pool2d

MODES = ("nearest", "nearest-exact", "linear", "bilinear", "area")
_LINEAR_MODES = {"linear": 3, "bilinear": 4}
# Below this many output elements the kernels run on one thread.
PARALLEL_MIN_ELEMENTS = 1 << 15


class LinearAxis(NamedTuple):
    """Per output position of one axis: the two source indices and their weights."""

    i0: np.ndarray
    i1: np.ndarray
    l0: np.ndarray
    l1: np.ndarray


def _scale_value(in_size: int, out_size: int, scale: Optional[float], dtype) -> np.floating:
    """PyTorch's ``compute_scales_value``: 1/scale_factor when one was given, else in/out (in ``dtype``)."""
    t = np.dtype(dtype).type
    if scale is not None and scale > 0:
        return t(1.0 / scale)
    return t(in_size) / t(out_size)


def linear_axis(in_size: int, out_size: int, align_corners: bool, scale: Optional[float], dtype) -> LinearAxis:
    """PyTorch's ``compute_source_index_and_lambda`` for every output index (arithmetic in ``dtype``)."""
    t = np.dtype(dtype).type
    if out_size == in_size:  # a copy, whatever the scale
        idx = np.arange(out_size, dtype=np.int64)
        return LinearAxis(idx, idx, np.ones(out_size, dtype), np.zeros(out_size, dtype))
    dst = np.arange(out_size).astype(dtype)
    if align_corners:
        ratio = t(in_size - 1) / t(out_size - 1) if out_size > 1 else t(0)
        real = ratio * dst
    else:
        ratio = _scale_value(in_size, out_size, scale, dtype)
        # ratio·(dst + ½) − ½ rounded once, as PyTorch's compiled kernel does it (a fused multiply-add;
        # the float32 product is exact in float64)
        real = (np.float64(ratio) * (dst + t(0.5)).astype(np.float64) - 0.5).astype(dtype)
        real = np.maximum(real, t(0))
    i0 = np.minimum(np.floor(real).astype(np.int64), in_size - 1)
    l1 = np.clip(real - i0.astype(dtype), t(0), t(1)).astype(dtype, copy=False)
    i1 = i0 + (i0 < in_size - 1)
    return LinearAxis(i0, i1, (t(1) - l1).astype(dtype, copy=False), l1)


def nearest_axis(in_size: int, out_size: int, scale: Optional[float], exact: bool) -> np.ndarray:
    """Source index of every output index: ``floor(dst·s)`` ('nearest'; a copy when the sizes are
    equal and dst // 2 when the output is twice the input, whatever the scale, as in PyTorch) or
    the rounded centre ``floor(s·(dst + 0.5) − 0.5 + 0.5)`` ('nearest-exact'), in float32."""
    if not exact and out_size in (in_size, 2 * in_size):
        return np.arange(out_size, dtype=np.int64) // (out_size // in_size)
    s = _scale_value(in_size, out_size, scale, np.float32)
    dst = np.arange(out_size).astype(np.float32)
    if exact:
        real = np.maximum(s * (dst + np.float32(0.5)) - np.float32(0.5), np.float32(0))
        position = (real.astype(np.float64) + 0.5).astype(np.float32)
    else:
        position = dst * s
    return np.minimum(np.floor(position).astype(np.int64), in_size - 1)


def _threads(elements: int) -> int:
    return get_num_threads() if elements >= PARALLEL_MIN_ELEMENTS else 1


def _backward_threads(grad: np.ndarray) -> int:
    """Backward passes split the planes among threads (each owns whole planes of the input gradient)."""
    return _threads(grad.size) if grad.shape[0] > 1 else 1


def _as_planes(x: np.ndarray) -> np.ndarray:
    """(N, C, [H,] W) as contiguous (N·C, H, W) planes (H = 1 for 1-D inputs)."""
    h = x.shape[2] if x.ndim == 4 else 1
    return np.ascontiguousarray(x).reshape(-1, h, x.shape[-1])


class Linear2d(Function):
    """Separable (bi)linear resampling of the last two axes (one of them possibly of size 1)."""

    @staticmethod
    def forward(ctx, x, rows=None, cols=None):
        planes = _as_planes(x)
        out_shape = x.shape[:-2] + (len(rows.i0), len(cols.i0)) if x.ndim == 4 else x.shape[:-1] + (len(cols.i0),)
        out = np.empty((planes.shape[0], len(rows.i0), len(cols.i0)), dtype=x.dtype)
        _interp.linear_forward(planes, out, *rows, *cols, _threads(out.size))
        ctx.geometry = (x.shape, rows, cols)
        return out.reshape(out_shape)

    @staticmethod
    def saved_bytes(shapes, dtype, needs_input_grad, **options) -> int:
        """Nothing but the per-axis indices and weights (counted as options, not arrays)."""
        return 0

    @staticmethod
    def workspace_bytes(shapes, dtype, **options) -> int:
        """Transient bytes of backward beyond its result: a contiguous copy of the gradient at most."""
        return 0

    @staticmethod
    def backward(ctx, g):
        shape, rows, cols = ctx.geometry
        dx = np.zeros(shape, dtype=g.dtype)
        grad = np.ascontiguousarray(g).reshape(-1, len(rows.i0), len(cols.i0))
        _interp.linear_backward(grad, _as_planes(dx), *rows, *cols, _backward_threads(grad))
        return dx


class Nearest2d(Function):
    """Nearest-neighbour resampling of the last two axes by per-axis source indices."""

    @staticmethod
    def forward(ctx, x, rows=None, cols=None):
        planes = _as_planes(x)
        out = np.empty((planes.shape[0], len(rows), len(cols)), dtype=x.dtype)
        _interp.nearest_forward(planes, out, rows, cols, _threads(out.size))
        ctx.geometry = (x.shape, rows, cols)
        out_shape = x.shape[:-2] + out.shape[1:] if x.ndim == 4 else x.shape[:-1] + (len(cols),)
        return out.reshape(out_shape)

    @staticmethod
    def saved_bytes(shapes, dtype, needs_input_grad, **options) -> int:
        """Nothing but the per-axis indices (counted as options, not arrays)."""
        return 0

    @staticmethod
    def workspace_bytes(shapes, dtype, **options) -> int:
        """Transient bytes of backward beyond its result: none."""
        return 0

    @staticmethod
    def backward(ctx, g):
        shape, rows, cols = ctx.geometry
        dx = np.zeros(shape, dtype=g.dtype)
        grad = np.ascontiguousarray(g).reshape(-1, len(rows), len(cols))
        _interp.nearest_backward(grad, _as_planes(dx), rows, cols, _backward_threads(grad))
        return dx


# ---- argument handling --------------------------------------------------------------------------
def _spatial_values(value, dims: int, name: str, kind) -> Tuple:
    """One value per spatial dimension (a single value is repeated), as PyTorch accepts them."""
    if isinstance(value, (list, tuple)):
        if len(value) != dims:
            raise ValueError(f"interpolate: expected {name} with {dims} values (one per spatial dimension of the "
                             f"input), got {tuple(value)!r}")
        values = tuple(value)
    else:
        values = (value,) * dims
    for v in values:
        if isinstance(v, bool) or not isinstance(v, kind):
            what = "ints" if kind is numbers.Integral else "numbers"
            raise TypeError(f"interpolate: expected {name} as {what} or a tuple of them, got {value!r}")
    return values


def _output_size(in_sizes: Sequence[int], size, scale_factor, recompute: Optional[bool]):
    """(output sizes, scales passed to the coordinate map or None per axis)."""
    dims = len(in_sizes)
    if (size is None) == (scale_factor is None):
        raise ValueError("interpolate: expected exactly one of size or scale_factor, got "
                         + ("both" if size is not None else "neither"))
    if size is not None:
        sizes = tuple(int(s) for s in _spatial_values(size, dims, "size", numbers.Integral))
        scales = (None,) * dims
    else:
        factors = tuple(float(s) for s in _spatial_values(scale_factor, dims, "scale_factor", numbers.Real))
        if any(not math.isfinite(f) or f <= 0 for f in factors):
            raise ValueError(f"interpolate: expected positive finite scale_factor, got {scale_factor!r}")
        sizes = tuple(int(math.floor(n * f)) for n, f in zip(in_sizes, factors))
        scales = (None,) * dims if recompute else factors
    if any(s <= 0 for s in sizes):
        raise ValueError(f"interpolate: input and output sizes should be greater than 0, got input spatial size "
                         f"{tuple(in_sizes)} and output size {sizes}")
    return sizes, scales


def interpolate(input, size=None, scale_factor=None, mode: str = "nearest", align_corners: Optional[bool] = None,
                recompute_scale_factor: Optional[bool] = None, antialias: bool = False) -> Tensor:
    """Resize (N, C, W) or (N, C, H, W) inputs to ``size`` or by ``scale_factor``, as PyTorch does.

    Modes: 'nearest' (index floor(dst·in/out), PyTorch's default), 'nearest-exact' (nearest pixel
    centre), 'linear' (3-D input), 'bilinear' (4-D input) with ``align_corners``, and 'area'
    (adaptive average pooling, 4-D input). ``recompute_scale_factor=True`` maps coordinates by the
    computed sizes instead of the given scale factor. Differentiable for float inputs; 'nearest'
    also resizes integer and boolean inputs (e.g. label maps).
    """
    op = "interpolate"
    if mode not in MODES:
        raise ValueError(f"interpolate: mode {mode!r} is not supported; expected one of "
                         f"{', '.join(repr(m) for m in MODES)}")
    if antialias:
        raise ValueError("interpolate: antialias=True is not supported")
    x = input if isinstance(input, Tensor) else None
    if x is None:
        if not isinstance(input, np.ndarray):
            raise TypeError(f"interpolate: expected input as a Tensor or ndarray, got {type(input).__name__}")
        x = Tensor._wrap(input)
    if x.ndim not in (3, 4):
        raise ValueError(f"interpolate: expected a 3-D (N, C, W) or 4-D (N, C, H, W) input, got input of shape "
                         f"{tuple(x.shape)}")
    if mode in _LINEAR_MODES and x.ndim != _LINEAR_MODES[mode]:
        raise ValueError(f"interpolate: mode '{mode}' needs a {_LINEAR_MODES[mode]}-D input, got input of shape "
                         f"{tuple(x.shape)}")
    if align_corners is not None:
        if mode not in _LINEAR_MODES:
            raise ValueError("interpolate: align_corners can only be set with the interpolating modes 'linear' and "
                             f"'bilinear', got mode '{mode}'")
        if not isinstance(align_corners, (bool, np.bool_)):
            raise TypeError(f"interpolate: expected align_corners as a bool, got {align_corners!r}")
    if recompute_scale_factor and size is not None:
        raise ValueError("interpolate: recompute_scale_factor is not meaningful with an explicit size")
    in_sizes = tuple(x.shape[2:])
    sizes, scales = _output_size(in_sizes, size, scale_factor, recompute_scale_factor)
    if mode == "area":
        if x.ndim != 4:
            raise ValueError(f"interpolate: mode 'area' needs a 4-D input, got input of shape {tuple(x.shape)}")
        return adaptive_avg_pool2d(x, sizes)
    if x.ndim == 3:  # a width-only input runs as images of height 1
        in_sizes, sizes, scales = (1,) + in_sizes, (1,) + sizes, (None,) + scales
    if mode in _LINEAR_MODES:
        x = as_float_tensor(x, op)
        corners = bool(align_corners)
        rows = linear_axis(in_sizes[0], sizes[0], corners, scales[0], x.dtype)
        cols = linear_axis(in_sizes[1], sizes[1], corners, scales[1], x.dtype)
        return Linear2d.apply(x, rows=rows, cols=cols)
    exact = mode == "nearest-exact"
    rows = nearest_axis(in_sizes[0], sizes[0], scales[0], exact)
    cols = nearest_axis(in_sizes[1], sizes[1], scales[1], exact)
    if x.dtype.kind in "biu":  # label maps: a gather, nothing to differentiate
        labels = x.numpy()
        return Tensor._wrap(labels[..., rows[:, None], cols] if x.ndim == 4 else labels[..., cols])
    return Nearest2d.apply(as_float_tensor(x, op), rows=rows, cols=cols)


def upsample(input, size=None, scale_factor=None, mode: str = "nearest", align_corners: Optional[bool] = None):
    """Deprecated alias of ``interpolate`` (as in PyTorch)."""
    return interpolate(input, size, scale_factor, mode, align_corners)


def upsample_nearest(input, size=None, scale_factor=None):
    return interpolate(input, size, scale_factor, mode="nearest")


def upsample_bilinear(input, size=None, scale_factor=None):
    """Bilinear with ``align_corners=True`` (PyTorch's deprecated ``upsample_bilinear``)."""
    return interpolate(input, size, scale_factor, mode="bilinear", align_corners=True)


__all__ = ["interpolate", "upsample", "upsample_nearest", "upsample_bilinear"]
