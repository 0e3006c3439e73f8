"""Batch transforms on NCHW float arrays (vectorized over the batch, never in place).

Random transforms draw from the ``numpy.random.Generator`` they are called with; the DataLoader
passes one derived from its seed, epoch and batch number, so augmentation is reproducible. Called
without one they fall back to fastconv's global generator (``fastconv.manual_seed``).

Crops and flips are index maps over the batch applied by one Cython pass (``_remap``), and
Normalize is one pass too; ``fastconv.vision.transforms`` fuses per-sample pipelines onto the same
kernels.
"""
from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from typing import Callable, Optional, Sequence

import numpy as np

from .._validation import int_pair
from ..random import get_generator
from . import _remap

__all__ = ["Transform", "Compose", "Normalize", "RandomCrop", "RandomHorizontalFlip", "apply_transform"]


def _check_batch(x, op: str) -> np.ndarray:
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{op}: expected a numpy array batch, got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(f"{op}: expected a 4-D NCHW batch, got shape {tuple(x.shape)}")
    if x.dtype.kind != "f":
        raise TypeError(f"{op}: expected a float batch (float32 or float64), got dtype {x.dtype}")
    return x


def _accepts_rng(fn: Callable) -> bool:
    """Whether a user callable takes the generator (a parameter named ``rng`` or ``**kwargs``)."""
    if isinstance(fn, Transform):
        return True
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == "rng" or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def apply_transform(fn: Optional[Callable], x: np.ndarray, rng: Optional[np.random.Generator]) -> np.ndarray:
    """Call ``fn(x, rng=rng)`` when it takes a generator, ``fn(x)`` otherwise; ``None`` is identity."""
    if fn is None:
        return x
    return fn(x, rng=rng) if _accepts_rng(fn) else fn(x)


class Transform(ABC):
    """Base class: ``transform(batch, rng=None) -> new batch``."""

    @abstractmethod
    def __call__(self, x: np.ndarray, rng: Optional[np.random.Generator] = None) -> np.ndarray:
        """Return the transformed batch; ``rng`` drives any randomness."""


class Compose(Transform):
    """Apply transforms in order, handing each the same generator."""

    def __init__(self, transforms: Sequence[Callable]):
        transforms = list(transforms)
        for i, t in enumerate(transforms):
            if not callable(t):
                raise TypeError(f"Compose: expected callables, got {type(t).__name__} at position {i}")
        self.transforms = transforms

    def __call__(self, x, rng=None):
        for t in self.transforms:
            x = apply_transform(t, x, rng)
        return x

    def __repr__(self) -> str:
        inner = ", ".join(repr(t) for t in self.transforms)
        return f"Compose([{inner}])"


class Normalize(Transform):
    """``(x - mean[c]) / std[c]`` per channel; a scalar mean/std applies to every channel."""

    def __init__(self, mean, std):
        try:
            self.mean = np.atleast_1d(np.asarray(mean, dtype=np.float64))
            self.std = np.atleast_1d(np.asarray(std, dtype=np.float64))
        except (TypeError, ValueError) as exc:
            raise TypeError(f"Normalize: expected numeric mean and std, got {mean!r} and {std!r}") from exc
        for label, v in (("mean", self.mean), ("std", self.std)):
            if v.ndim != 1 or not np.all(np.isfinite(v)):
                raise ValueError(f"Normalize: expected {label} as a finite number or sequence, got {v.tolist()}")
        if np.any(self.std <= 0):
            raise ValueError(f"Normalize: expected std > 0, got {self.std.tolist()}")
        if len(self.mean) != len(self.std) and 1 not in (len(self.mean), len(self.std)):
            raise ValueError(
                f"Normalize: mean and std have different lengths ({len(self.mean)} and {len(self.std)})")

    def __call__(self, x, rng=None):
        _check_batch(x, "Normalize")
        c = x.shape[1]
        for label, v in (("mean", self.mean), ("std", self.std)):
            if len(v) not in (1, c):
                raise ValueError(f"Normalize: {label} has {len(v)} values, batch has {c} channels "
                                 f"(shape {tuple(x.shape)})")
        return _remap.normalize(x, self.mean.astype(x.dtype), self.std.astype(x.dtype), "Normalize")

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean.tolist()}, std={self.std.tolist()})"


class RandomCrop(Transform):
    """Zero-pad by ``padding`` then crop ``size`` at an independent random offset per image."""

    def __init__(self, size, padding=0):
        self.size = int_pair(size, "RandomCrop", "size", minimum=1)
        self.padding = int_pair(padding, "RandomCrop", "padding", minimum=0)

    def __call__(self, x, rng=None):
        _check_batch(x, "RandomCrop")
        rng = get_generator() if rng is None else rng
        n, c, h, w = x.shape
        ph, pw = self.padding
        ch, cw = self.size
        hp, wp = h + 2 * ph, w + 2 * pw
        if ch > hp or cw > wp:
            raise ValueError(f"RandomCrop: crop size {self.size} is larger than the padded image "
                             f"({hp}, {wp}) for batch of shape {tuple(x.shape)} with padding {self.padding}")
        top = rng.integers(0, hp - ch + 1, size=n)
        left = rng.integers(0, wp - cw + 1, size=n)
        rows = _remap.crop(_remap.pad(_remap.identity(n, h), ph, ph), top, ch)
        cols = _remap.crop(_remap.pad(_remap.identity(n, w), pw, pw), left, cw)
        return _remap.remap_float(x, rows, cols, 0.0, "RandomCrop")

    def __repr__(self) -> str:
        return f"RandomCrop(size={self.size}, padding={self.padding})"


class RandomHorizontalFlip(Transform):
    """Mirror each image left-right independently with probability ``p``."""

    def __init__(self, p: float = 0.5):
        if isinstance(p, bool) or not isinstance(p, (int, float, np.floating, np.integer)) or not 0.0 <= p <= 1.0:
            raise ValueError(f"RandomHorizontalFlip: expected a probability p in [0, 1], got {p!r}")
        self.p = float(p)

    def __call__(self, x, rng=None):
        _check_batch(x, "RandomHorizontalFlip")
        rng = get_generator() if rng is None else rng
        n, _, h, w = x.shape
        flip = rng.random(n) < self.p
        return _remap.remap_float(x, _remap.identity(n, h), _remap.flip(_remap.identity(n, w), flip), 0.0,
                                  "RandomHorizontalFlip")

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"
