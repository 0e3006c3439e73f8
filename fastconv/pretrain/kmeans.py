"""k-means dictionary learning as in Dundar, Jin & Culurciello, Eq. (1) (the variant of Coates & Ng).

Each vector w (a preprocessed patch) is coded by the single centroid with the largest |Dᵀw|,
the code keeping its sign: s_j = D_jᵀw for j = argmax_l |D_lᵀw|, 0 elsewhere. Then
D := W·Sᵀ + D and every centroid is renormalized to unit length. Centroids that received no
vector (or cancelled to zero) are re-seeded from random vectors. Both big products (the
responses W·D and the update S·W) are BLAS GEMMs; the winner search is a Cython kernel.

Mini-batch variant (``batch_size`` < number of vectors): an epoch visits the vectors in a
random order, batch by batch; the sum D + Σ s·w is accumulated over the epoch and each batch is
assigned with the normalized running sum, so an epoch with one batch is exactly Eq. (1) and
memory stays O(batch·K). Everything random comes from one Generator: a seed fixes the result.
"""
from __future__ import annotations

from typing import Callable, List, NamedTuple, Optional, Tuple

import numpy as np

from .._kernels import patches as _kernels
from ._common import SeedLike, as_patches, generator, optional_batch_size, positive_float, positive_int

# assign(centroids, item indices) -> (labels, signed codes, vectors that enter the update)
Assign = Callable[[np.ndarray, np.ndarray], Tuple[np.ndarray, np.ndarray, np.ndarray]]
# sample(rng, count) -> (count, d) vectors to seed centroids from
Sample = Callable[[np.random.Generator, int], np.ndarray]
SEED_POOL = 4096  # candidates the initial centroids are chosen from (k-means++ over a random pool)


class KMeansResult(NamedTuple):
    """Unit-norm centroids (K, d), mean |code| per epoch, epochs run, clusters re-seeded in total."""

    centroids: np.ndarray
    objective: List[float]
    n_iter: int
    reseeded: int


def unit_rows(a: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero)."""
    norms = np.linalg.norm(a, axis=1, keepdims=True)
    return a / np.where(norms > 0, norms, 1).astype(a.dtype)


def winners(responses: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(argmax_j |r_ij|, r_i at that j) for every row of an (n, m) response matrix."""
    responses = np.ascontiguousarray(responses)
    labels = np.empty(responses.shape[0], dtype=np.intp)
    values = np.empty(responses.shape[0], dtype=responses.dtype)
    # One thread on purpose: this O(n·K) pass sits between O(n·K·d) BLAS products, and an OpenMP
    # region started right after a threaded GEMM fights BLAS's still-spinning workers for the cores
    # (measured on 2 cores: mini-batch k-means 2.5x slower with 2 threads here than with 1).
    _kernels.abs_argmax_rows(responses, labels, values, 1)
    return labels, values


def seed_vectors(vectors: np.ndarray, rng: np.random.Generator, count: int) -> np.ndarray:
    """``count`` random rows of ``vectors``, distinct unless there are too few;
    rows that are exactly zero are replaced by Gaussian noise so every seed has a direction."""
    picks = rng.choice(len(vectors), size=count, replace=count > len(vectors))
    out = vectors[picks].copy()
    zero = ~out.any(axis=1)
    if zero.any():
        out[zero] = rng.standard_normal((int(zero.sum()), out.shape[1])).astype(out.dtype)
    return out


def spread_seeds(candidates: np.ndarray, rng: np.random.Generator, count: int) -> np.ndarray:
    """k-means++ seeding (Arthur & Vassilvitskii) for the |cos| objective: ``count`` rows of
    ``candidates``, the first uniformly, each next one with probability ∝ 1 − max cos² to the rows
    already chosen, so the seeds are spread over distinct directions rather than one dense cluster."""
    unit = unit_rows(candidates.astype(np.float64))
    chosen = [int(rng.integers(len(unit)))]
    closest = (unit @ unit[chosen[0]]) ** 2
    for _ in range(1, count):
        weight = np.clip(1.0 - closest, 0.0, None)
        total = weight.sum()
        nxt = int(rng.choice(len(unit), p=weight / total)) if total > 1e-12 else int(rng.integers(len(unit)))
        chosen.append(nxt)
        np.maximum(closest, (unit @ unit[nxt]) ** 2, out=closest)
    return candidates[chosen]


def dictionary_learning(assign: Assign, sample: Sample, n_items: int, n_clusters: int, iters: int,
                        batch_size: Optional[int], init: Optional[np.ndarray], rng: np.random.Generator,
                        tol: float, dtype) -> KMeansResult:
    """The Eq. (1) loop shared by plain and convolutional k-means (they differ only in ``assign``)."""
    if init is None:
        pool = sample(rng, max(SEED_POOL, 4 * n_clusters))
        d = unit_rows(spread_seeds(pool, rng, n_clusters))
    else:
        d = unit_rows(init.astype(dtype, copy=True))
    batch = n_items if batch_size is None else min(batch_size, n_items)
    objective: List[float] = []
    reseeded = 0
    n_iter = 0
    for n_iter in range(1, iters + 1):
        order = np.arange(n_items) if batch >= n_items else rng.permutation(n_items)
        acc = d.copy()
        counts = np.zeros(n_clusters, dtype=np.int64)
        total = 0.0
        for start in range(0, n_items, batch):
            idx = order[start:start + batch]
            current = d if start == 0 else unit_rows(acc)
            labels, values, vectors = assign(current, idx)
            codes = np.zeros((n_clusters, len(idx)), dtype=dtype)
            codes[labels, np.arange(len(idx))] = values
            acc += codes @ vectors
            counts += np.bincount(labels, minlength=n_clusters)
            total += float(np.abs(values).sum(dtype=np.float64))
        objective.append(total / n_items)
        dead = (counts == 0) | ~acc.any(axis=1)
        if dead.any():
            acc[dead] = sample(rng, int(dead.sum()))
            reseeded += int(dead.sum())
        new = unit_rows(acc)
        shift = float(np.max(np.linalg.norm(new - d, axis=1)))
        d = new
        if shift <= tol:
            break
    return KMeansResult(d, objective, n_iter, reseeded)


def check_init(init, n_clusters: int, dim: int, op: str) -> Optional[np.ndarray]:
    if init is None:
        return None
    init = as_patches(init, op, "init")
    if init.shape != (n_clusters, dim):
        raise ValueError(f"{op}: expected init of shape ({n_clusters}, {dim}) (n_clusters, dim), got {init.shape}")
    if not init.any(axis=1).all():
        raise ValueError(f"{op}: init has an all-zero row; every initial centroid needs a direction")
    return init


def kmeans(patches, n_clusters: int, iters: int = 10, batch_size: Optional[int] = None,
           init: Optional[np.ndarray] = None, seed: SeedLike = None, tol: float = 1e-4) -> KMeansResult:
    """Learn ``n_clusters`` unit-norm centroids from (n, d) vectors (already preprocessed) by Eq. (1).

    ``init`` (K, d) starts from given centroids (normalized), otherwise from K random vectors
    spread by k-means++ seeding; ``batch_size`` selects the mini-batch variant; iteration stops after ``iters``
    epochs or when no centroid moves by more than ``tol`` (Euclidean, unit vectors).
    """
    op = "kmeans"
    x = as_patches(patches, op)
    k = positive_int(n_clusters, op, "n_clusters")
    iters = positive_int(iters, op, "iters")
    batch_size = optional_batch_size(batch_size, op)
    tol = positive_float(tol, op, "tol", allow_zero=True)
    init = check_init(init, k, x.shape[1], op)
    if init is None and k > x.shape[0]:
        raise ValueError(f"{op}: expected at least n_clusters={k} patches to seed from, got {x.shape[0]}")
    rng = generator(seed, op)

    def assign(centroids, idx):
        vectors = x[idx] if len(idx) < len(x) else x
        labels, values = winners(vectors @ centroids.T)
        return labels, values, vectors

    return dictionary_learning(assign, lambda g, c: seed_vectors(x, g, c), len(x), k, iters, batch_size,
                               init, rng, tol, x.dtype)
