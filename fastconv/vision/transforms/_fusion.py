"""Per-sample pipelines run as one batched kernel pass over uint8 images.

The rule. A dataset of uint8 images (``MNIST``, ``CIFAR10``, ...) asked for a batch
(``__getitems__``) fuses its ``transform`` when it is a ``Compose`` (nested Composes flatten) or a
single transform of exactly these classes, in this order:

1. any of ``RandomCrop``, ``CenterCrop``, ``Pad``, ``RandomHorizontalFlip``, ``RandomVerticalFlip``
   (on the PIL image);
2. ``ToTensor`` (required);
3. the same geometric transforms and at most one ``Normalize``, in any order (on the Tensor).

Anything else (another class, a subclass, a second Normalize, a crop larger than the image, a
fill a byte cannot hold) leaves the per-sample path in charge, which also raises the errors.

Why it is exact. Crops, pads and flips only move pixels, so the whole chain is a row map and a
column map per image (``fastconv.data._remap``); ``ToTensor`` and ``Normalize`` map each byte value
to one float per channel, a 256-entry table computed with the per-sample float32 operations. The
kernel gathers ``table[c, image[map_r[y], map_c[x], c]]``, so each output equals the per-sample
result bit for bit. The random draws are the per-sample ones (see ``transforms``): image by image,
transform by transform, the same doubles from the same generator, drawn as one ``(N, K)`` block
(numpy's generator gives the same doubles whether drawn one by one or as a block).
"""
from __future__ import annotations

from typing import List, Optional, Tuple

import numpy as np

from ...data import _remap
from .._image import pil_available
from . import _array
from .transforms import (CenterCrop, Compose, Normalize, Pad, RandomCrop, RandomHorizontalFlip, RandomVerticalFlip,
                         ToTensor)

_GEOMETRIC = (RandomCrop, CenterCrop, Pad, RandomHorizontalFlip, RandomVerticalFlip)


class _Plan:
    """What the kernel pass needs: map-building steps, fill slots, draws per image, the table."""

    def __init__(self, channels: int) -> None:
        self.channels = channels
        self.steps: List[tuple] = []   # ("pad", l, r, t, b, mode, slot) | ("crop", ...) | ("flip", axis, column, p)
        self.slots: List[Tuple[str, np.ndarray]] = []  # (stage, per-channel fill) per fill slot
        self.draws = 0                 # doubles drawn per image
        self.mean: Optional[np.ndarray] = None
        self.std: Optional[np.ndarray] = None

    def slot(self, stage: str, values: np.ndarray) -> int:
        self.slots.append((stage, values))
        return len(self.slots) - 1


def _flatten(transform) -> Optional[list]:
    if type(transform) is Compose:
        steps = []
        for t in transform.transforms:
            inner = _flatten(t)
            if inner is None:
                return None
            steps += inner
        return steps
    return [transform]


def _byte_fill(fill, channels: int) -> Optional[np.ndarray]:
    """The per-channel byte a PIL pad writes for ``fill`` (None when it is not a byte)."""
    values = list(fill) if isinstance(fill, (tuple, list)) else [fill]
    if len(values) == 1:
        values = values * channels
    if len(values) != channels or not all(isinstance(v, (int, float, np.integer, np.floating)) for v in values):
        return None
    if not pil_available() and len(set(values)) > 1:
        return None  # the ndarray path refuses per-channel fills: let it say so
    ints = [int(v) for v in values]
    return np.asarray(ints, dtype=np.int64) if all(0 <= v <= 255 for v in ints) else None


def _float_fill(fill, channels: int) -> Optional[np.ndarray]:
    values = list(fill) if isinstance(fill, (tuple, list)) else [fill]
    if len(set(values)) > 1:
        return None
    return np.full(channels, np.float32(values[0]), dtype=np.float32)


class _Builder:
    """Walks the steps, tracking the image size, and records the plan (or gives up: None)."""

    def __init__(self, height: int, width: int, channels: int) -> None:
        self.h, self.w = height, width
        self.plan = _Plan(channels)
        self.stage = "byte"  # "byte" before ToTensor, "float" after it, "normalized" after Normalize

    def fill_slot(self, fill) -> Optional[int]:
        c = self.plan.channels
        values = _byte_fill(fill, c) if self.stage == "byte" else _float_fill(fill, c)
        return None if values is None else self.plan.slot(self.stage, values)

    def pad(self, padding, fill, mode: str) -> bool:
        left, right, top, bottom = _array.parse_padding(padding)
        if self.stage == "byte" and min(left, right, top, bottom) < 0:
            return False  # Pillow's handling of negative borders is the per-sample path's business
        if mode == "reflect" and self.stage != "byte":
            if max(top, bottom) >= self.h or max(left, right) >= self.w:
                return False
        slot = 0
        if mode == "constant":
            slot = self.fill_slot(fill)
            if slot is None:
                return False
        self.plan.steps.append(("pad", left, right, top, bottom, mode, slot))
        self.h = max(self.h - max(-top, 0) - max(-bottom, 0), 0) + max(top, 0) + max(bottom, 0)
        self.w = max(self.w - max(-left, 0) - max(-right, 0), 0) + max(left, 0) + max(right, 0)
        return self.h > 0 and self.w > 0

    def random_crop(self, t: RandomCrop) -> bool:
        if t.padding is not None and not self.pad(t.padding, t.fill, t.padding_mode):
            return False
        if t.pad_if_needed and self.w < t.size[1] and not self.pad([t.size[1] - self.w, 0], t.fill, t.padding_mode):
            return False
        if t.pad_if_needed and self.h < t.size[0] and not self.pad([0, t.size[0] - self.h], t.fill, t.padding_mode):
            return False
        th, tw = t.size
        if self.h < th or self.w < tw:
            return False
        if (self.h, self.w) != (th, tw):
            self.plan.steps.append(("random_crop", self.h - th + 1, self.w - tw + 1, th, tw, self.plan.draws))
            self.plan.draws += 2
        self.h, self.w = th, tw
        return True

    def center_crop(self, t: CenterCrop) -> bool:
        ch, cw = t.size
        if cw > self.w or ch > self.h:
            padding = [(cw - self.w) // 2 if cw > self.w else 0, (ch - self.h) // 2 if ch > self.h else 0,
                       (cw - self.w + 1) // 2 if cw > self.w else 0, (ch - self.h + 1) // 2 if ch > self.h else 0]
            if not self.pad(padding, 0, "constant"):
                return False
            if (self.h, self.w) == (ch, cw):
                return True
        top, left = int(round((self.h - ch) / 2.0)), int(round((self.w - cw) / 2.0))
        self.plan.steps.append(("crop", top, left, ch, cw))
        self.h, self.w = ch, cw
        return True

    def add(self, t) -> bool:
        kind = type(t)
        if kind is ToTensor:
            if self.stage != "byte":
                return False
            self.stage = "float"
            return True
        if self.stage == "byte" and kind is Normalize:
            return False
        if kind is Normalize:
            if self.stage == "normalized":
                return False
            c = self.plan.channels
            mean = np.asarray(t.mean, dtype=np.float32).reshape(-1)
            std = np.asarray(t.std, dtype=np.float32).reshape(-1)
            if len(mean) not in (1, c) or len(std) not in (1, c) or np.any(std == 0):
                return False
            self.plan.mean, self.plan.std = np.broadcast_to(mean, (c,)).copy(), np.broadcast_to(std, (c,)).copy()
            self.stage = "normalized"
            return True
        if kind is RandomCrop:
            return self.random_crop(t)
        if kind is CenterCrop:
            return self.center_crop(t)
        if kind is Pad:
            return self.pad(t.padding, t.fill, t.padding_mode)
        if kind in (RandomHorizontalFlip, RandomVerticalFlip):
            self.plan.steps.append(("flip", "cols" if kind is RandomHorizontalFlip else "rows", self.plan.draws, t.p))
            self.plan.draws += 1
            return True
        return False


def plan(transform, height: int, width: int, channels: int) -> Optional["FusedPipeline"]:
    """The fused pipeline of ``transform`` for uint8 images (height, width, channels), or None."""
    steps = _flatten(transform)
    if not steps or channels not in (1, 3):
        return None
    builder = _Builder(height, width, channels)
    for t in steps:
        if not builder.add(t):
            return None
    if builder.stage == "byte":
        return None  # no ToTensor: the samples stay images
    return FusedPipeline(builder.plan, (height, width))


class FusedPipeline:
    """``pipeline(images, rng)``: uint8 (N, H, W, C) → float32 (N, C, OH, OW), as the per-sample
    transform would give image by image with the same generator."""

    def __init__(self, plan: _Plan, input_size: Tuple[int, int]) -> None:
        self.plan = plan
        self.input_size = input_size
        c = plan.channels
        values = np.arange(256, dtype=np.float32)[None, :].repeat(c, axis=0) / np.float32(255)
        self.table = self._normalized(values)
        fills = []
        for stage, fill in plan.slots:
            if stage == "byte":
                fills.append(self.table[np.arange(c), fill])
            elif stage == "float":
                fills.append(self._normalized(fill[:, None].astype(np.float32))[:, 0])
            else:
                fills.append(fill.astype(np.float32))
        self.fills = np.stack(fills) if fills else np.zeros((1, c), np.float32)

    def _normalized(self, values: np.ndarray) -> np.ndarray:
        """``(v - mean[c]) / std[c]`` in float32 (per-sample Normalize's operations), or ``v``."""
        if self.plan.mean is None:
            return values
        return (values - self.plan.mean[:, None]) / self.plan.std[:, None]

    def maps(self, n: int, draws: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Row and column maps of ``n`` images given their (n, K) draws."""
        rows, cols = _remap.identity(n, self.input_size[0]), _remap.identity(n, self.input_size[1])
        for step in self.plan.steps:
            kind = step[0]
            if kind == "pad":
                _, left, right, top, bottom, mode, slot = step
                rows = _remap.pad(rows, top, bottom, mode, slot)
                cols = _remap.pad(cols, left, right, mode, slot)
            elif kind == "random_crop":
                _, n_top, n_left, th, tw, k = step
                top = np.minimum((draws[:, k] * n_top).astype(np.intp), n_top - 1)
                left = np.minimum((draws[:, k + 1] * n_left).astype(np.intp), n_left - 1)
                rows, cols = _remap.crop(rows, top, th), _remap.crop(cols, left, tw)
            elif kind == "crop":
                _, top, left, ch, cw = step
                rows, cols = _remap.crop(rows, top, ch), _remap.crop(cols, left, cw)
            else:
                _, axis, k, p = step
                flags = draws[:, k] < p
                if axis == "cols":
                    cols = _remap.flip(cols, flags)
                else:
                    rows = _remap.flip(rows, flags)
        return rows, cols

    def __call__(self, images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:3] != self.input_size \
                or images.shape[3] != self.plan.channels:
            raise ValueError(f"fused transform: expected uint8 images of shape (N, {self.input_size[0]}, "
                             f"{self.input_size[1]}, {self.plan.channels}), got {images.dtype} {images.shape}")
        n = images.shape[0]
        draws = rng.random((n, self.plan.draws)) if self.plan.draws else np.zeros((n, 0))
        rows, cols = self.maps(n, draws)
        return _remap.remap_u8(images, rows, cols, self.table, self.fills, "fused transform")
