"""Maximally activating inputs: the dataset images that excite one channel of a layer most.

A channel's score for an image is its maximum over positions; the position of that maximum,
mapped through the receptive field, shows which part of the image the unit responded to.
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np

from ..autograd import no_grad
from ..nn.module import Module
from ..tensor import Tensor
from .layers import LayerRef, check_index, dataset_images, evaluating, iterate_batches, model_dtype, run_to
from .plotting import display_image, draw_box, image_grid
from .receptive_field import receptive_field


class TopK(NamedTuple):
    """``indices`` into the dataset (best first), their ``scores``, and the (row, col) ``positions`` of the
    maximum in the layer's output (None for a layer without spatial axes)."""

    indices: np.ndarray
    scores: np.ndarray
    positions: Optional[np.ndarray]


def top_k(model: Module, dataset, layer: LayerRef, channel: int, k: int = 9, batch_size: int = 256) -> TopK:
    """The ``k`` dataset samples with the largest maximum activation of ``channel`` at ``layer``.

    Batched forward passes under no_grad in eval mode; ties go to the lower dataset index.
    """
    op = "top_k"
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"{op}: expected k as a positive int, got {k!r}")
    dtype = model_dtype(model)
    best_idx = np.empty(0, np.int64)
    best_score = np.empty(0, np.float64)
    best_pos = np.empty((0, 2), np.int64)
    spatial = None
    with evaluating(model), no_grad():
        for idx, x, _ in iterate_batches(dataset, batch_size, op):
            if isinstance(x, np.ndarray) and x.dtype.kind != "f":
                raise TypeError(f"{op}: expected float inputs from the dataset, got dtype {x.dtype}")
            out = run_to(model, Tensor._wrap(np.ascontiguousarray(x, dtype=dtype)), layer, op).numpy()
            check_index(channel, out.shape[1], op, "channel", f"layer {layer!r} output {out.shape[1:]}")
            maps = out[:, channel].reshape(len(idx), -1)
            spatial = out.ndim == 4
            arg = maps.argmax(axis=1)
            width = out.shape[3] if spatial else 1
            pos = np.stack([arg // width, arg % width], axis=1)
            best_idx = np.concatenate([best_idx, idx])
            best_score = np.concatenate([best_score, maps.max(axis=1).astype(np.float64)])
            best_pos = np.concatenate([best_pos, pos])
            keep = np.lexsort((best_idx, -best_score))[:k]  # score descending, then index ascending
            best_idx, best_score, best_pos = best_idx[keep], best_score[keep], best_pos[keep]
    if len(best_idx) < k:
        raise ValueError(f"{op}: k={k} is larger than the dataset ({len(best_idx)} samples)")
    return TopK(best_idx, best_score, best_pos if spatial else None)


def plot_top_k(model: Module, dataset, layer: LayerRef, channel: int, k: int = 9, batch_size: int = 256):
    """The top-k images of ``channel`` with the receptive field of the maximal unit drawn as a box."""
    result = top_k(model, dataset, layer, channel, k, batch_size)
    images = dataset_images(dataset, result.indices, "plot_top_k")
    titles = [f"#{i}: {s:.2f}" for i, s in zip(result.indices, result.scores)]
    fig, axes = image_grid("plot_top_k", [display_image(im) for im in images], titles=titles,
                           suptitle=f"top {k} for channel {channel} of layer {layer!r}", panel=1.4)
    if result.positions is not None:
        try:
            field = receptive_field(model, layer)
        except (TypeError, ValueError) as exc:  # not a chain of conv/pool layers: images without boxes
            fig.text(0.5, 0.0, f"no receptive-field box: {exc}", ha="center", fontsize=6)
            return fig
        for ax, (row, col), im in zip(axes, result.positions, images):
            draw_box(ax, field.box(int(row), int(col), im.shape[-2:]))
    return fig
