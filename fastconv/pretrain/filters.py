"""Filters for one convolution layer from unlabeled images: patches → preprocessing → (conv) k-means → filters.

Centroids live in the preprocessed (contrast-normalized, whitened) patch space. They are mapped
back to the images' space as F = D·M (M the symmetric ZCA matrix, see ``PatchPreprocessor.fold``):
F·x equals D·whiten(x) up to a per-filter constant for mean-free x, and F sums to ~0 over the
patch when contrast normalization is on (the centroids are orthogonal to the constant patch), so
F ignores brightness like the normalization did. The per-patch division by the contrast has no
counterpart in a convolution and is dropped; magnitude is set later (unit norm here, He scale in
``pretrain_conv_layers``). A centroid and its negative code the same cluster (Eq. 1 uses |Dᵀw|);
each filter's sign is chosen so that its responses on the patches are positively skewed (the
rare strong matches are positive), which is what a following ReLU keeps.
"""
from __future__ import annotations

from typing import NamedTuple, Optional, Tuple, Union

import numpy as np

from .._validation import int_pair
from ._common import SeedLike, as_images, generator, optional_batch_size, positive_float, positive_int
from .conv_kmeans import DEFAULT_BATCH, conv_kmeans
from .kmeans import KMeansResult, kmeans, unit_rows
from .patches import check_patch_fits, extract_patches
from .preprocess import PatchPreprocessor

IntPair = Union[int, Tuple[int, int]]
METHODS = ("kmeans", "conv-kmeans")


class LearnedFilters(NamedTuple):
    """Unit-norm filters (K, C, kh, kw) in the images' space, the clustering result, the fitted
    preprocessor and the raw kh×kw patches it was fitted on (n, C·kh·kw)."""

    filters: np.ndarray
    result: KMeansResult
    preprocessor: PatchPreprocessor
    patches: np.ndarray


class FilterOptions(NamedTuple):
    """Validated settings shared by ``kmeans_filters`` and ``pretrain_conv_layers``."""

    n_patches: int
    method: str
    whiten: bool
    normalize: bool
    eps_zca: float
    eps_norm: Optional[float]
    iters: int
    batch_size: Optional[int]
    window_size: Optional[IntPair]


def check_options(op: str, n_patches, method, whiten, normalize, eps_zca, eps_norm, iters, batch_size,
                  window_size) -> FilterOptions:
    if method not in METHODS:
        raise ValueError(f"{op}: expected method 'kmeans' or 'conv-kmeans', got {method!r}")
    for name, flag in (("whiten", whiten), ("normalize", normalize)):
        if not isinstance(flag, (bool, np.bool_)):
            raise TypeError(f"{op}: expected {name} as a bool, got {flag!r}")
    if window_size is not None:
        if method != "conv-kmeans":
            raise ValueError(f"{op}: window_size applies to method='conv-kmeans' only, got method={method!r}")
        window_size = int_pair(window_size, op, "window_size", minimum=1)
    return FilterOptions(
        positive_int(n_patches, op, "n_patches"), method, bool(whiten), bool(normalize),
        positive_float(eps_zca, op, "eps_zca"),
        None if eps_norm is None else positive_float(eps_norm, op, "eps_norm"),
        positive_int(iters, op, "iters"), optional_batch_size(batch_size, op), window_size)


def _window(size: Tuple[int, int], requested, image_hw: Tuple[int, int], op: str) -> Tuple[int, int]:
    """The conv-kmeans window: as requested, else twice the kernel clipped to the image."""
    if requested is None:
        return min(2 * size[0], image_hw[0]), min(2 * size[1], image_hw[1])
    if requested[0] < size[0] or requested[1] < size[1]:
        raise ValueError(f"{op}: expected window_size >= kernel size {size}, got {requested}")
    return requested


def _orient(filters: np.ndarray, patches: np.ndarray) -> np.ndarray:
    """Flip filters whose responses on the patches have negative skew."""
    responses = patches[:20000] @ filters.T
    centered = responses - responses.mean(axis=0)
    skew = np.mean(centered.astype(np.float64) ** 3, axis=0)
    return filters * np.where(skew < 0, -1, 1).astype(filters.dtype)[:, None]


def learn_filters(x: np.ndarray, n_filters: int, size: Tuple[int, int], opts: FilterOptions,
                  rng: np.random.Generator, op: str) -> LearnedFilters:
    """The pipeline on validated arguments (x: C-contiguous float NCHW)."""
    check_patch_fits(x.shape, size, op, "kernel size")
    if opts.n_patches < n_filters:
        raise ValueError(f"{op}: expected n_patches >= n_filters ({n_filters}) to seed every cluster, "
                         f"got n_patches={opts.n_patches}")
    raw = extract_patches(x, size, opts.n_patches, seed=rng)
    prep = PatchPreprocessor(opts.normalize, opts.eps_norm, opts.whiten, opts.eps_zca).fit(raw)
    if opts.method == "kmeans":
        result = kmeans(prep.transform(raw), n_filters, opts.iters, opts.batch_size, seed=rng)
    else:
        window = _window(size, opts.window_size, x.shape[2:], op)
        check_patch_fits(x.shape, window, op, "window size")
        c = x.shape[1]
        windows = extract_patches(x, window, opts.n_patches, seed=rng).reshape(-1, c, *window)
        result = conv_kmeans(windows, n_filters, size, opts.iters, opts.batch_size or DEFAULT_BATCH,
                             seed=rng, preprocessor=prep)
    filters, _ = prep.fold(result.centroids)
    filters = _orient(unit_rows(filters), raw)
    return LearnedFilters(filters.reshape(n_filters, x.shape[1], *size), result, prep, raw)


def kmeans_filters(images, n_filters: int, kernel_size: IntPair, n_patches: int = 50000,
                   method: str = "kmeans", whiten: bool = True, normalize: bool = True,
                   eps_zca: float = 0.1, eps_norm: Optional[float] = None, iters: int = 10,
                   batch_size: Optional[int] = None, window_size: Optional[IntPair] = None,
                   seed: SeedLike = None) -> np.ndarray:
    """``n_filters`` unit-norm filters (n_filters, C, kh, kw) learned from NCHW ``images`` without labels.

    ``method='kmeans'`` clusters ``n_patches`` random kh×kw patches (Eq. 1, mini-batch with
    ``batch_size``); ``'conv-kmeans'`` clusters ``n_patches`` random windows of ``window_size``
    (default twice the kernel) by their best-matching sub-patch. Patches are contrast-normalized
    (``eps_norm``, default 10 % of the mean patch variance) and ZCA-whitened (``eps_zca``) unless
    switched off; the filters are the centroids mapped back to the images' space (F = D·M).
    """
    op = "kmeans_filters"
    x = as_images(images, op)
    k = positive_int(n_filters, op, "n_filters")
    size = int_pair(kernel_size, op, "kernel_size", minimum=1)
    opts = check_options(op, n_patches, method, whiten, normalize, eps_zca, eps_norm, iters, batch_size,
                         window_size)
    return learn_filters(x, k, size, opts, generator(seed, op), op).filters
