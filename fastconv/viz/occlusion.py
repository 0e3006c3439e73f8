"""Occlusion sensitivity (Zeiler & Fergus 2014): where does hiding part of the image hurt the class most?

A square occluder slides over the image; for each position the softmax probability of the target
class is recorded. Low values mark regions the prediction depends on.
"""
from __future__ import annotations

from typing import Union

import numpy as np

from ..autograd import no_grad
from ..nn import functional as F
from ..nn.module import Module
from ..tensor import Tensor
from .layers import as_image, check_index, evaluating, model_dtype
from .plotting import display_image, new_figure, show


def _positive(value, op: str, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{op}: expected {name} as a positive int, got {value!r}")
    return int(value)


def _probabilities(model: Module, batch: np.ndarray, target: int, op: str) -> np.ndarray:
    logits = model(Tensor._wrap(batch))
    if logits.ndim != 2:
        raise ValueError(f"{op}: expected the model to return (N, classes) scores, got shape {logits.shape}")
    check_index(target, logits.shape[1], op, "target", "the model's output")
    return F.softmax(logits, dim=1).numpy()[:, target].astype(np.float64)


def occlusion(model: Module, x, target: int, size: int = 8, stride: int = 4,
              fill: Union[float, str] = 0.0, batch_size: int = 64) -> np.ndarray:
    """(rows, cols) probabilities of ``target`` with the occluder's top-left corner at (r·stride, c·stride).

    ``fill`` is the occluder's value (for normalized inputs 0.0 is the mean grey) or 'mean' for the
    image's own mean. Forward passes are batched under no_grad in eval mode.
    """
    op = "occlusion"
    image = as_image(x, op, model_dtype(model))
    _, _, h, w = image.shape
    size, stride, batch_size = (_positive(size, op, "size"), _positive(stride, op, "stride"),
                                _positive(batch_size, op, "batch_size"))
    if size > min(h, w):
        raise ValueError(f"{op}: occluder size {size} is larger than the image ({h}x{w})")
    if isinstance(fill, str):
        if fill != "mean":
            raise ValueError(f"{op}: expected fill as a number or 'mean', got {fill!r}")
        fill = float(image.mean())
    tops, lefts = np.arange(0, h - size + 1, stride), np.arange(0, w - size + 1, stride)
    corners = [(t, l) for t in tops for l in lefts]
    probs = np.empty(len(corners))
    with evaluating(model), no_grad():
        for start in range(0, len(corners), batch_size):
            chunk = corners[start:start + batch_size]
            batch = np.repeat(image, len(chunk), axis=0)
            for k, (t, l) in enumerate(chunk):
                batch[k, :, t:t + size, l:l + size] = fill
            probs[start:start + len(chunk)] = _probabilities(model, batch, target, op)
    return probs.reshape(len(tops), len(lefts))


def occlusion_pixels(heatmap: np.ndarray, image_hw, size: int, stride: int) -> np.ndarray:
    """The heatmap in image pixels: each pixel gets the mean probability over the occluder positions
    covering it (NaN where no occluder reached, e.g. a border the stride skipped)."""
    total = np.zeros(image_hw)
    count = np.zeros(image_hw)
    for r in range(heatmap.shape[0]):
        for c in range(heatmap.shape[1]):
            total[r * stride:r * stride + size, c * stride:c * stride + size] += heatmap[r, c]
            count[r * stride:r * stride + size, c * stride:c * stride + size] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def plot_occlusion(model: Module, x, target: int, size: int = 8, stride: int = 4,
                   fill: Union[float, str] = 0.0, alpha: float = 0.5):
    """The image, and the probability of ``target`` under occlusion overlaid on it (low = important)."""
    heat = occlusion(model, x, target, size, stride, fill)
    image = as_image(x, "plot_occlusion", model_dtype(model))
    with evaluating(model), no_grad():
        p0 = _probabilities(model, image, target, "plot_occlusion")[0]
    pixels = occlusion_pixels(heat, image.shape[-2:], size, stride)
    fig = new_figure("plot_occlusion", 7.0, 3.4)
    left, right = fig.subplots(1, 2)
    show(left, display_image(image[0]), f"input (p[{target}] = {p0:.3f})")
    show(right, display_image(image[0]), f"p[{target}] with a {size}x{size} occluder (min {heat.min():.3f})")
    overlay = right.imshow(pixels, cmap="jet", alpha=alpha, vmin=float(heat.min()), vmax=float(heat.max()),
                           interpolation="nearest")
    fig.colorbar(overlay, ax=right, fraction=0.046, pad=0.04)
    return fig
