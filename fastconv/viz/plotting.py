"""Drawing helpers shared by every ``plot_*``: lazy matplotlib, image scaling, grids, atomic PNG saving.

Figures are ``matplotlib.figure.Figure`` objects with an Agg canvas, not pyplot figures: they
work headless, never change the global backend and are freed when dropped.
"""
from __future__ import annotations

import math
import os
from typing import Optional, Sequence

import numpy as np

from .._atomic import atomic_write

VIZ_EXTRA = 'pip install "fastconv[viz]"'


def require(module: str, op: str):
    """Import an optional dependency, or raise ImportError naming the extra that provides it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(f"{op} needs {module.split('.')[0]} (optional): {VIZ_EXTRA}") from exc


def new_figure(op: str, width: float, height: float):
    """An empty Figure drawing on an Agg canvas (headless, independent of pyplot)."""
    figure = require("matplotlib.figure", op)
    agg = require("matplotlib.backends.backend_agg", op)
    fig = figure.Figure(figsize=(width, height), dpi=100)
    agg.FigureCanvasAgg(fig)
    return fig


def unit_range(a: np.ndarray) -> np.ndarray:
    """``a`` scaled to [0, 1] by its own min and max (a constant array becomes 0.5)."""
    a = np.asarray(a, dtype=np.float64)
    lo, hi = float(a.min()), float(a.max())
    if hi - lo <= 0.0 or not np.isfinite(hi - lo):
        return np.full(a.shape, 0.5)
    return (a - lo) / (hi - lo)


def display_image(chw: np.ndarray) -> np.ndarray:
    """A (C, H, W) image as (H, W) gray or (H, W, 3) RGB in [0, 1]; other channel counts are averaged."""
    chw = np.asarray(chw)
    if chw.ndim == 2:
        return unit_range(chw)
    if chw.shape[0] == 3:
        return unit_range(np.transpose(chw, (1, 2, 0)))
    return unit_range(chw.mean(axis=0))


def show(ax, image: np.ndarray, title: Optional[str] = None, **kwargs) -> None:
    """Draw an (H, W) or (H, W, 3) image without axes ticks."""
    ax.imshow(image, cmap="gray" if image.ndim == 2 else None, interpolation="nearest", **kwargs)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=8)


def grid_shape(n: int, ncols: Optional[int] = None) -> tuple:
    """(rows, cols) of a near-square grid holding ``n`` panels."""
    cols = ncols or max(1, math.ceil(math.sqrt(n)))
    return max(1, math.ceil(n / cols)), cols


def image_grid(op: str, images: Sequence[np.ndarray], titles: Optional[Sequence[str]] = None,
               ncols: Optional[int] = None, panel: float = 1.2, suptitle: Optional[str] = None):
    """A Figure with one display image per panel (unused panels hidden); returns (fig, axes list)."""
    rows, cols = grid_shape(len(images), ncols)
    fig = new_figure(op, cols * panel, rows * panel + (0.4 if suptitle else 0.0))
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for k, ax in enumerate(axes):
        if k < len(images):
            show(ax, images[k], titles[k] if titles else None)
        else:
            ax.set_axis_off()
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    return fig, list(axes[:len(images)])


def draw_box(ax, box, color: str = "red") -> None:
    """Outline a (top, left, bottom, right) pixel box (bottom/right exclusive) on an image axis."""
    top, left, bottom, right = box
    patches = require("matplotlib.patches", "draw_box")
    ax.add_patch(patches.Rectangle((left - 0.5, top - 0.5), right - left, bottom - top,
                                   fill=False, edgecolor=color, linewidth=1.5))


def save_figure(fig, path: str, dpi: int = 100) -> str:
    """Write ``fig`` to ``path`` atomically (``fastconv._atomic.atomic_write``); returns path.

    The folder is created if needed; the format comes from the suffix (PNG without one)."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fmt = os.path.splitext(path)[1].lstrip(".").lower() or "png"
    with atomic_write(path) as f:
        fig.savefig(f, format=fmt, dpi=dpi, bbox_inches="tight")
    return path
