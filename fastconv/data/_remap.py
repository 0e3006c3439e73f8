"""Batched crops, paddings and flips as per-image index maps, applied by one kernel pass.

A map is an int array ``(N, L)``: entry ``[n, i]`` is the source row (or column) that output row
``i`` of image ``n`` reads, or ``-1 - s`` for the value of fill slot ``s`` (slots numbered in the order the paddings happen: where
a padded row meets a padded column, the higher slot wins). Maps compose: a crop,
pad or flip of an image is the same crop, pad or flip of its map. ``fastconv.data.transforms``
(batch transforms) and ``fastconv.vision``'s fused per-sample pipelines both build maps here and
call the ``_kernels.augment`` remaps, which check nothing: ``remap_*`` validate first.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .._kernels import _omp, augment as _kernels

PAD_MODES = ("constant", "edge", "reflect", "symmetric")
_ELEMENTS_PER_THREAD = 1 << 20  # a pass is memory-bound: below ~4 MB of output per thread one thread wins


def kernel_threads(elements: int) -> int:
    """OpenMP threads for a pass writing ``elements`` values (1 for small batches)."""
    return max(1, min(_omp.get_max_threads(), elements // _ELEMENTS_PER_THREAD))


def identity(n: int, length: int) -> np.ndarray:
    """The map of an untouched axis of length ``length`` for ``n`` images."""
    return np.broadcast_to(np.arange(length, dtype=np.intp), (n, length)).copy()


def pad(maps: np.ndarray, before: int, after: int, mode: str = "constant", slot: int = 0) -> np.ndarray:
    """Pad every map by ``before``/``after`` entries (negative amounts crop, as torchvision's pad).

    ``constant`` inserts fill slot ``slot``; ``edge``/``reflect``/``symmetric`` index the map as
    ``numpy.pad`` indexes an array (a padded fill entry stays that fill)."""
    if before < 0 or after < 0:
        length = maps.shape[1]
        maps = maps[:, max(-before, 0):length - max(-after, 0)]
        before, after = max(before, 0), max(after, 0)
    if before == 0 and after == 0:
        return maps
    if mode == "constant":
        n = maps.shape[0]
        fill = np.intp(-1 - slot)
        return np.concatenate([np.full((n, before), fill, np.intp), maps, np.full((n, after), fill, np.intp)],
                              axis=1)
    index = np.pad(np.arange(maps.shape[1], dtype=np.intp), (before, after), mode=mode)
    return maps[:, index]


def crop(maps: np.ndarray, offsets, size: int) -> np.ndarray:
    """Window ``[offsets[n], offsets[n] + size)`` of each image's map (offsets: int or (N,))."""
    offsets = np.asarray(offsets, dtype=np.intp)
    if offsets.ndim == 0:
        return maps[:, int(offsets):int(offsets) + size]
    return np.take_along_axis(maps, offsets[:, None] + np.arange(size, dtype=np.intp), axis=1)


def flip(maps: np.ndarray, flags) -> np.ndarray:
    """Reverse the maps of the images whose flag is set (flags: bool or (N,) bools)."""
    flags = np.asarray(flags, dtype=bool)
    if flags.ndim == 0:
        return maps[:, ::-1].copy() if flags else maps
    return np.where(flags[:, None], maps[:, ::-1], maps)


def _check_maps(rows: np.ndarray, cols: np.ndarray, n: int, h: int, w: int, slots: int, op: str):
    rows = np.ascontiguousarray(rows, dtype=np.intp)
    cols = np.ascontiguousarray(cols, dtype=np.intp)
    for name, m, limit in (("row", rows, h), ("column", cols, w)):
        if m.ndim != 2 or m.shape[0] != n:
            raise ValueError(f"{op}: expected {name} maps of shape ({n}, L), got {m.shape}")
        if m.size and (m.max() >= limit or m.min() < -slots):
            raise ValueError(f"{op}: {name} map entries must lie in [-{slots}, {limit}), got "
                             f"[{int(m.min())}, {int(m.max())}]")
    return rows, cols


def _fill_slots(fills, channels: int, dtype, op: str) -> np.ndarray:
    """Fill values as a (slots, channels) array: a scalar is one slot for every channel."""
    fills = np.asarray(fills, dtype=dtype)
    if fills.ndim == 0:
        return np.full((1, channels), fills, dtype=dtype)
    if fills.ndim != 2 or fills.shape[1] != channels or fills.shape[0] == 0:
        raise ValueError(f"{op}: expected fill values of shape (slots, {channels}), got {fills.shape}")
    return np.ascontiguousarray(fills)


def remap_u8(images: np.ndarray, rows: np.ndarray, cols: np.ndarray, lut: np.ndarray,
             fills: np.ndarray, op: str = "remap_u8") -> np.ndarray:
    """uint8 images (N, H, W, C) → float32 (N, C, OH, OW) through the maps and a (C, 256) table."""
    if images.dtype != np.uint8 or images.ndim != 4:
        raise TypeError(f"{op}: expected uint8 images (N, H, W, C), got {images.dtype} {images.shape}")
    n, h, w, c = images.shape
    lut = np.ascontiguousarray(lut, dtype=np.float32)
    fills = _fill_slots(fills, c, np.float32, op)
    if lut.shape != (c, 256):
        raise ValueError(f"{op}: expected a ({c}, 256) lookup table, got {lut.shape}")
    rows, cols = _check_maps(rows, cols, n, h, w, fills.shape[0], op)
    out = np.empty((n, c, rows.shape[1], cols.shape[1]), dtype=np.float32)
    _kernels.remap_u8_hwc(np.ascontiguousarray(images), rows, cols, lut, fills, out, kernel_threads(out.size))
    return out


def remap_float(batch: np.ndarray, rows: np.ndarray, cols: np.ndarray, fills, op: str = "remap") -> np.ndarray:
    """float (N, C, H, W) → (N, C, OH, OW) through the maps; ``fills`` is (slots, C) or a scalar."""
    if batch.ndim != 4 or batch.dtype not in (np.float32, np.float64):
        raise TypeError(f"{op}: expected a float32/float64 NCHW batch, got {batch.dtype} {batch.shape}")
    n, c, h, w = batch.shape
    fills = _fill_slots(fills, c, batch.dtype, op)
    rows, cols = _check_maps(rows, cols, n, h, w, fills.shape[0], op)
    out = np.empty((n, c, rows.shape[1], cols.shape[1]), dtype=batch.dtype)
    _kernels.remap_nchw(np.ascontiguousarray(batch), rows, cols, fills, out, kernel_threads(out.size))
    return out


def normalize(batch: np.ndarray, mean: Sequence[float], std: Sequence[float], op: str = "normalize") -> np.ndarray:
    """``(batch - mean[c]) / std[c]`` for a float NCHW batch, in its dtype, in one pass."""
    n, c, h, w = batch.shape
    mean = np.ascontiguousarray(np.broadcast_to(np.asarray(mean, dtype=batch.dtype).reshape(-1), (c,)))
    std = np.ascontiguousarray(np.broadcast_to(np.asarray(std, dtype=batch.dtype).reshape(-1), (c,)))
    out = np.empty_like(batch, order="C")
    _kernels.normalize_nchw(np.ascontiguousarray(batch), mean, std, out, kernel_threads(batch.size))
    return out
