"""Redundancy of a filter bank: mean absolute correlation between distinct filters (optionally under shifts)."""
from __future__ import annotations

import numpy as np

from ..tensor import Tensor


def _unit_centered(rows: np.ndarray) -> np.ndarray:
    centered = rows - rows.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(centered, axis=1, keepdims=True)
    return centered / np.where(norms > 0, norms, 1.0)  # a constant row correlates 0 with everything


def mean_pairwise_correlation(filters, max_shift: int = 0) -> float:
    """Mean over pairs i ≠ j of |Pearson correlation| between filters i and j.

    ``filters`` is (K, C, kh, kw) (or (K, d) with ``max_shift=0``). With ``max_shift`` s > 0 the
    correlation of a pair is the largest |correlation| over relative shifts (dy, dx) in [−s, s]²,
    each computed on the overlap of the two shifted filters, so a filter and a translated copy of
    it count as redundant — the redundancy convolutional k-means is meant to remove.
    """
    op = "mean_pairwise_correlation"
    f = filters.numpy() if isinstance(filters, Tensor) else filters
    if not isinstance(f, np.ndarray) or f.dtype.kind != "f":
        raise TypeError(f"{op}: expected filters as a float ndarray or Tensor, got {type(filters).__name__}")
    if isinstance(max_shift, bool) or not isinstance(max_shift, (int, np.integer)) or max_shift < 0:
        raise ValueError(f"{op}: expected max_shift as a non-negative int, got {max_shift!r}")
    if f.ndim == 2:
        if max_shift:
            raise ValueError(f"{op}: shifts need filters of shape (K, C, kh, kw), got shape {f.shape}")
        f = f[:, None, None, :]
    if f.ndim != 4 or f.shape[0] < 2 or min(f.shape) == 0:
        raise ValueError(f"{op}: expected at least 2 non-empty filters of shape (K, C, kh, kw), got shape {f.shape}")
    if not np.isfinite(f).all():
        raise ValueError(f"{op}: filters contain NaN or infinite values")
    k, c, kh, kw = f.shape
    if max_shift and (max_shift >= min(kh, kw) or c * (kh - max_shift) * (kw - max_shift) < 2):
        raise ValueError(f"{op}: max_shift={max_shift} leaves no overlap of 2 or more values for "
                         f"filters of shape {f.shape}")
    f = f.astype(np.float64)
    best = np.zeros((k, k))
    for dy in range(-max_shift, max_shift + 1):
        for dx in range(-max_shift, max_shift + 1):
            ya, yb, xa, xb = max(0, -dy), kh - max(0, dy), max(0, -dx), kw - max(0, dx)
            a = _unit_centered(f[:, :, ya:yb, xa:xb].reshape(k, -1))
            b = _unit_centered(f[:, :, ya + dy:yb + dy, xa + dx:xb + dx].reshape(k, -1))
            np.maximum(best, np.abs(a @ b.T), out=best)
    off_diagonal = ~np.eye(k, dtype=bool)
    return float(best[off_diagonal].mean())
