"""Convolutional k-means (Dundar, Jin & Culurciello, "Convolutional Clustering for Unsupervised Learning").

Plain k-means on patches learns many shifted copies of one edge, because a patch that shows
the edge a pixel off-centre is a different vector. Here the data are windows larger than the
filter (e.g. twice its size); every centroid is matched against every location of a window by
a convolution (fastconv's conv2d), the (centroid, location) pair with the largest |response|
wins, and the Eq. (1) update uses the sub-patch at that location. A shifted edge is then
explained by the existing edge filter at a shifted location instead of pulling a new centroid.
"""
from __future__ import annotations

from typing import NamedTuple, Optional, Tuple, Union

import numpy as np

from .._validation import int_pair
from ._common import SeedLike, as_images, as_patches, generator, optional_batch_size, positive_float, positive_int
from .kmeans import KMeansResult, check_init, dictionary_learning, seed_vectors, winners
from .patches import check_patch_fits, windows_at
from .preprocess import PatchPreprocessor

IntPair = Union[int, Tuple[int, int]]
DEFAULT_BATCH = 1024  # windows per conv2d call: bounds the (batch, K, Ho, Wo) response array


class Matches(NamedTuple):
    """Best (centroid, location) per window: centroid index, top/left of the sub-patch, signed code."""

    filter: np.ndarray
    top: np.ndarray
    left: np.ndarray
    value: np.ndarray
    subpatches: np.ndarray  # the preprocessed winning sub-patches (P, C·kh·kw)


def _checked_preprocessor(preprocessor: Optional[PatchPreprocessor], op: str) -> PatchPreprocessor:
    if preprocessor is None:
        return PatchPreprocessor(normalize=False, whiten=False)
    if not isinstance(preprocessor, PatchPreprocessor):
        raise TypeError(f"{op}: expected preprocessor as a PatchPreprocessor or None, got {type(preprocessor).__name__}")
    if not preprocessor.fitted:
        raise ValueError(f"{op}: the preprocessor is not fitted; call preprocessor.fit(patches) first")
    return preprocessor


def _match(windows: np.ndarray, centroids: np.ndarray, size: Tuple[int, int],
           prep: PatchPreprocessor) -> Matches:
    responses = prep.conv_responses(windows, centroids, size)
    p, k, ho, wo = responses.shape
    best, _ = winners(responses.reshape(p, k * ho * wo))
    filt, loc = np.divmod(best, ho * wo)
    top, left = np.divmod(loc, wo)
    z = prep.transform(windows_at(windows, np.arange(p), top, left, size, "conv_kmeans"))
    values = np.einsum("ij,ij->i", centroids[filt], z)  # the exact code of the winning centroid
    return Matches(filt, top, left, values, z)


def match_windows(windows, centroids, kernel_size: IntPair,
                  preprocessor: Optional[PatchPreprocessor] = None) -> Matches:
    """For each (P, C, Wh, Ww) window, the centroid (K, C·kh·kw) and sub-patch location with the
    largest |response| to the preprocessed sub-patch (None: sub-patches used as they are)."""
    op = "match_windows"
    w = as_images(windows, op)
    size = int_pair(kernel_size, op, "kernel_size", minimum=1)
    check_patch_fits(w.shape, size, op, "kernel size")
    prep = _checked_preprocessor(preprocessor, op)
    c = as_patches(centroids, op, "centroids")
    dim = w.shape[1] * size[0] * size[1]
    if c.shape[1] != dim:
        raise ValueError(f"{op}: expected centroids of shape (K, {dim}) for {w.shape[1]} channels and kernel "
                         f"{size}, got {c.shape}")
    return _match(w, np.ascontiguousarray(c, dtype=w.dtype), size, prep)


def conv_kmeans(windows, n_clusters: int, kernel_size: IntPair, iters: int = 10,
                batch_size: Optional[int] = DEFAULT_BATCH, init: Optional[np.ndarray] = None,
                seed: SeedLike = None, tol: float = 1e-4,
                preprocessor: Optional[PatchPreprocessor] = None) -> KMeansResult:
    """Learn ``n_clusters`` unit-norm kh×kw centroids (K, C·kh·kw) from (P, C, Wh, Ww) windows.

    Each window contributes the sub-patch at its best (centroid, location) match. ``preprocessor``
    (a fitted PatchPreprocessor, or None for none) is applied to every sub-patch, so the centroids
    live in the preprocessed space as with ``kmeans``. Seeds and re-seeds are random sub-patches.
    """
    op = "conv_kmeans"
    w = as_images(windows, op)
    size = int_pair(kernel_size, op, "kernel_size", minimum=1)
    check_patch_fits(w.shape, size, op, "kernel size")
    k = positive_int(n_clusters, op, "n_clusters")
    iters = positive_int(iters, op, "iters")
    batch_size = optional_batch_size(batch_size, op)
    tol = positive_float(tol, op, "tol", allow_zero=True)
    prep = _checked_preprocessor(preprocessor, op)
    dim = w.shape[1] * size[0] * size[1]
    init = check_init(init, k, dim, op)
    rng = generator(seed, op)
    n, _, h, wd = w.shape

    def sample(g: np.random.Generator, count: int) -> np.ndarray:
        idx = g.integers(0, n, size=count, dtype=np.intp)
        top = g.integers(0, h - size[0] + 1, size=count, dtype=np.intp)
        left = g.integers(0, wd - size[1] + 1, size=count, dtype=np.intp)
        return seed_vectors(prep.transform(windows_at(w, idx, top, left, size, op)), g, count)

    def assign(centroids, idx):
        m = _match(w[idx] if len(idx) < n else w, centroids, size, prep)
        return m.filter, m.value, m.subpatches

    return dictionary_learning(assign, sample, n, k, iters, batch_size, init, rng, tol, w.dtype)
