"""2-D t-SNE of CNN codes (the features ``model[:-1]`` feeds to the classifier), with plots.

Nearby points are images the network considers similar; clusters by label show what the
features separate. Needs scikit-learn (extra ``viz``).
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np

from ..autograd import no_grad
from ..nn.module import Module
from ..nn.modules.container import Sequential
from ..tensor import Tensor
from .layers import LayerRef, dataset_images, evaluating, iterate_batches, model_dtype, run_to
from .plotting import display_image, new_figure, require, show


class Embedding(NamedTuple):
    """``points`` (n, 2), their ``labels`` (n,) or None, and the dataset ``indices`` (n,) they come from."""

    points: np.ndarray
    labels: Optional[np.ndarray]
    indices: np.ndarray


def cnn_codes(model: Module, dataset, layer: Optional[LayerRef] = None, indices=None, batch_size: int = 256):
    """(codes (n, D), labels or None): flattened outputs of ``model[:-1]`` (or of ``layer``), no_grad, eval mode."""
    op = "cnn_codes"
    if layer is None and not isinstance(model, Sequential):
        raise TypeError(f"{op}: codes from model[:-1] need a Sequential model, got {type(model).__name__}; "
                        f"pass layer= to choose the layer whose output is the code")
    trunk = model[:-1] if layer is None else model
    if layer is None and len(trunk) == 0:
        raise ValueError(f"{op}: model[:-1] is empty: the model has a single layer")
    dtype = model_dtype(model)
    codes, labels = [], []
    with evaluating(model), no_grad():
        for _, x, y in iterate_batches(dataset, batch_size, op, indices):
            t = Tensor._wrap(np.ascontiguousarray(x, dtype=dtype))
            out = trunk(t) if layer is None else run_to(model, t, layer, op)
            codes.append(out.numpy().reshape(len(x), -1).copy())
            labels.append(y)
    labels_out = None if labels[0] is None else np.concatenate(labels)
    return np.concatenate(codes), labels_out


def tsne_codes(model: Module, dataset, max_samples: Optional[int] = 2000, perplexity: float = 30.0,
               seed: int = 0, layer: Optional[LayerRef] = None, batch_size: int = 256) -> Embedding:
    """t-SNE (scikit-learn) of the CNN codes of up to ``max_samples`` dataset samples (a seeded random
    subset when the dataset is larger); codes wider than 50 are first reduced to 50 by PCA."""
    op = "tsne_codes"
    manifold = require("sklearn.manifold", op)
    decomposition = require("sklearn.decomposition", op)
    n = len(dataset)
    if max_samples is not None and (isinstance(max_samples, bool) or not isinstance(max_samples, int)
                                    or max_samples < 2):
        raise ValueError(f"{op}: expected max_samples as an int >= 2 or None, got {max_samples!r}")
    if n < 2:
        raise ValueError(f"{op}: expected a dataset of at least 2 samples, got {n}")
    indices = np.arange(n)
    if max_samples is not None and n > max_samples:
        indices = np.sort(np.random.default_rng(seed).choice(n, size=max_samples, replace=False))
    codes, labels = cnn_codes(model, dataset, layer, indices, batch_size)
    codes = codes.astype(np.float64)
    if codes.shape[1] > 50 and len(codes) > 50:
        codes = decomposition.PCA(n_components=50, random_state=seed).fit_transform(codes)
    perplexity = float(min(perplexity, (len(codes) - 1) / 3.0))
    tsne = manifold.TSNE(n_components=2, perplexity=max(perplexity, 1.0), init="pca", random_state=seed)
    points = tsne.fit_transform(codes)
    return Embedding(points, labels, indices)


def plot_tsne(embedding: Embedding, title: str = "t-SNE of CNN codes"):
    """Scatter plot of the embedding, coloured by label (one legend entry per class)."""
    fig = new_figure("plot_tsne", 6.5, 6.0)
    ax = fig.subplots()
    pts, labels = embedding.points, embedding.labels
    if labels is None:
        ax.scatter(pts[:, 0], pts[:, 1], s=4)
    else:
        classes = np.unique(labels)
        cmap = require("matplotlib", "plot_tsne").colormaps["tab10" if len(classes) <= 10 else "tab20"]
        for i, c in enumerate(classes):
            sel = labels == c
            ax.scatter(pts[sel, 0], pts[sel, 1], s=4, color=cmap(i % cmap.N), label=str(c))
        ax.legend(markerscale=3, fontsize=7, loc="best", title="label")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title)
    return fig


def tsne_mosaic(points: np.ndarray, images: np.ndarray, grid: int = 20) -> np.ndarray:
    """A (grid·h, grid·w[, 3]) canvas: each cell of a grid over the 2-D points shows the image whose point
    lies closest to the cell centre (among the points in that cell); empty cells stay white."""
    op = "tsne_mosaic"
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 2 or len(points) != len(images):
        raise ValueError(f"{op}: expected points (n, 2) matching {len(images)} images, got shape {points.shape}")
    if isinstance(grid, bool) or not isinstance(grid, int) or grid < 1:
        raise ValueError(f"{op}: expected grid as a positive int, got {grid!r}")
    span = np.ptp(points, axis=0)
    unit = (points - points.min(axis=0)) / np.where(span > 0, span, 1.0)
    cell = np.minimum((unit * grid).astype(np.int64), grid - 1)
    dist = np.linalg.norm(unit * grid - (cell + 0.5), axis=1)
    cell_id = cell[:, 0] * grid + cell[:, 1]
    order = np.lexsort((dist, cell_id))
    first = order[np.unique(cell_id[order], return_index=True)[1]]
    thumbs = [display_image(im) for im in images[first]]
    h, w = thumbs[0].shape[:2]
    canvas = np.ones((grid * h, grid * w) + thumbs[0].shape[2:])
    for k, t in zip(first, thumbs):
        col, row = cell[k, 0], grid - 1 - cell[k, 1]  # x to the right, y upwards as in the scatter plot
        canvas[row * h:(row + 1) * h, col * w:(col + 1) * w] = t
    return canvas


def plot_tsne_mosaic(embedding: Embedding, dataset, grid: int = 20):
    """The embedding as a mosaic of image thumbnails (see ``tsne_mosaic``)."""
    images = dataset_images(dataset, embedding.indices, "plot_tsne_mosaic")
    canvas = tsne_mosaic(embedding.points, images, grid)
    fig = new_figure("plot_tsne_mosaic", 8.0, 8.0)
    show(fig.subplots(), canvas, "t-SNE of CNN codes: nearest image per cell")
    return fig
