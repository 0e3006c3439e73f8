"""Resizing ``(..., H, W)`` arrays as torchvision resizes tensors (``F.interpolate``'s rules).

A resize is separable: along each axis every output pixel is a weighted sum of input pixels, i.e.
a dense ``(out, in)`` weight matrix, and the image is ``Wy @ img @ Wx.T``. The matrices follow
PyTorch's ``interpolate`` (``align_corners=False``):

- ``bilinear``/``bicubic`` with ``antialias=True`` (torchvision's default): Pillow's filters
  (triangle; cubic with a = -0.5) stretched by the scale when shrinking, weights normalized.
- ``bilinear`` without antialias: the triangle filter at scale 1 (the same matrix when enlarging).
- ``bicubic`` without antialias: 4 taps of the a = -0.75 cubic, indices clamped to the edges.
- ``nearest``: ``floor(dst * in/out)``; ``nearest-exact``: ``floor((dst + 0.5) * in/out)``.

Integer images are resized in float32, rounded half to even and cast back (bicubic clamped first),
as torchvision does.
"""
from __future__ import annotations

import numpy as np

MODES = ("nearest", "nearest-exact", "bilinear", "bicubic")


def _triangle(x: np.ndarray) -> np.ndarray:
    x = np.abs(x)
    return np.where(x < 1.0, 1.0 - x, 0.0)


def _cubic(x: np.ndarray, a: float) -> np.ndarray:
    x = np.abs(x)
    near = ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    far = ((x - 5.0) * x + 8.0) * x * a - 4.0 * a
    return np.where(x < 1.0, near, np.where(x < 2.0, far, 0.0))


def _filtered(in_size: int, out_size: int, kernel, support: float, antialias: bool) -> np.ndarray:
    """Pillow's (and torch's ``_upsample_*_aa``) coefficients: a filter of half-width ``support``
    around each output pixel's center, widened by the scale when shrinking, normalized."""
    scale = in_size / out_size
    filterscale = scale if (antialias and scale >= 1.0) else 1.0
    width = support * filterscale
    centers = (np.arange(out_size) + 0.5) * scale
    lo = np.maximum((centers - width + 0.5).astype(np.int64), 0)
    hi = np.minimum((centers + width + 0.5).astype(np.int64), in_size)
    cols = np.arange(in_size)
    inside = (cols[None, :] >= lo[:, None]) & (cols[None, :] < hi[:, None])
    weights = np.where(inside, kernel((cols[None, :] - centers[:, None] + 0.5) / filterscale), 0.0)
    total = weights.sum(axis=1, keepdims=True)
    return np.divide(weights, total, out=np.zeros_like(weights), where=total != 0)


def _cubic_clamped(in_size: int, out_size: int) -> np.ndarray:
    """Non-antialiased bicubic: taps x0-1..x0+2 of the a = -0.75 cubic, indices clamped."""
    scale = in_size / out_size
    src = (np.arange(out_size) + 0.5) * scale - 0.5
    x0 = np.floor(src).astype(np.int64)
    t = src - x0
    matrix = np.zeros((out_size, in_size))
    rows = np.arange(out_size)
    for tap in range(-1, 3):
        index = np.clip(x0 + tap, 0, in_size - 1)
        np.add.at(matrix, (rows, index), _cubic(t - tap, -0.75))
    return matrix


def _nearest(in_size: int, out_size: int, exact: bool) -> np.ndarray:
    scale = np.float32(in_size) / np.float32(out_size)
    dst = np.arange(out_size, dtype=np.float32)
    if exact:
        dst = dst + np.float32(0.5)
    src = np.minimum(np.floor(dst * scale).astype(np.int64), in_size - 1)
    matrix = np.zeros((out_size, in_size))
    matrix[np.arange(out_size), src] = 1.0
    return matrix


def weights(in_size: int, out_size: int, mode: str, antialias: bool) -> np.ndarray:
    """The ``(out_size, in_size)`` float64 matrix resizing one axis."""
    if mode == "nearest":
        return _nearest(in_size, out_size, exact=False)
    if mode == "nearest-exact":
        return _nearest(in_size, out_size, exact=True)
    if mode == "bilinear":
        return _filtered(in_size, out_size, _triangle, 1.0, antialias)
    if mode == "bicubic":
        if antialias:
            return _filtered(in_size, out_size, lambda x: _cubic(x, -0.5), 2.0, True)
        return _cubic_clamped(in_size, out_size)
    raise ValueError(f"resize: unsupported interpolation {mode!r} for arrays/tensors; expected one of {MODES}")


def resize(img: np.ndarray, size, mode: str = "bilinear", antialias: bool = True) -> np.ndarray:
    """``img`` (..., H, W) resized to ``size`` = (out_h, out_w); the result has ``img``'s dtype."""
    out_h, out_w = int(size[0]), int(size[1])
    h, w = img.shape[-2:]
    compute = img.dtype if img.dtype in (np.float32, np.float64) else np.dtype(np.float32)
    x = img.astype(compute, copy=False)
    if (out_h, out_w) != (h, w) or mode in ("bilinear", "bicubic"):
        wy = weights(h, out_h, mode, antialias).astype(compute)
        wx = weights(w, out_w, mode, antialias).astype(compute)
        x = np.matmul(wy, np.matmul(x, wx.T))
    if compute != img.dtype:
        if mode == "bicubic":
            x = np.clip(x, 0, np.iinfo(img.dtype).max if img.dtype.kind in "iu" else None)
        if img.dtype.kind in "iu":
            x = np.round(x)
            info = np.iinfo(img.dtype)
            x = np.clip(x, info.min, info.max)
        x = x.astype(img.dtype)
    return np.ascontiguousarray(x)
