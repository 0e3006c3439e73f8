"""Random windows from NCHW images (Cython kernel) and per-patch contrast normalization.

A patch is a row vector laid out (channel, row, column), the layout of one conv2d filter
``weight[k].ravel()``, so a filter learned on patches is reshaped straight into a weight.
"""
from __future__ import annotations

from typing import Tuple, Union

import numpy as np

from .._kernels import patches as _kernels
from .._validation import int_pair
from ._common import SeedLike, as_images, as_patches, generator, kernel_threads, positive_float, positive_int

IntPair = Union[int, Tuple[int, int]]


def check_patch_fits(images_shape, size: Tuple[int, int], op: str, what: str = "patch size") -> None:
    """A (kh, kw) window must fit inside every (H, W) image."""
    h, w = images_shape[2], images_shape[3]
    if size[0] > h or size[1] > w:
        raise ValueError(f"{op}: {what} {size} is larger than the images ({h}, {w}) "
                         f"(images of shape {tuple(images_shape)})")


def windows_at(images: np.ndarray, index: np.ndarray, top: np.ndarray, left: np.ndarray,
               size: Tuple[int, int], op: str = "extract_patches") -> np.ndarray:
    """Windows ``images[index[p], :, top[p]:top[p]+kh, left[p]:left[p]+kw]`` as rows (n, C·kh·kw).

    ``images`` must be a C-contiguous float (N, C, H, W) array; every position is checked to lie
    inside its image before the kernel copies the windows in parallel.
    """
    n_img, c, h, w = images.shape
    kh, kw = size
    check_patch_fits(images.shape, size, op)
    index, top, left = (np.ascontiguousarray(a, dtype=np.intp) for a in (index, top, left))
    if not (index.ndim == top.ndim == left.ndim == 1 and len(index) == len(top) == len(left)):
        raise ValueError(f"{op}: expected three 1-D position arrays of one length, got shapes "
                         f"{index.shape}, {top.shape}, {left.shape}")
    if len(index) and (index.min() < 0 or index.max() >= n_img or top.min() < 0 or top.max() > h - kh
                       or left.min() < 0 or left.max() > w - kw):
        raise ValueError(f"{op}: window positions outside the images (images {images.shape}, window {size})")
    out = np.empty((len(index), c * kh * kw), dtype=images.dtype)
    _kernels.extract_windows(images, index, top, left, kh, kw, out, kernel_threads(out.size))
    return out


def extract_patches(images, patch_size: IntPair, n_patches: int, seed: SeedLike = None,
                    return_positions: bool = False):
    """``n_patches`` windows of ``patch_size`` at uniformly random (image, top, left) positions.

    Returns an (n_patches, C·kh·kw) array of the images' dtype (and, with ``return_positions``,
    the (index, top, left) arrays). The positions are drawn from a numpy Generator (``seed``: int,
    Generator, or None for fastconv's global generator), so a seed fixes the patches.
    """
    op = "extract_patches"
    x = as_images(images, op)
    size = int_pair(patch_size, op, "patch_size", minimum=1)
    n = positive_int(n_patches, op, "n_patches")
    check_patch_fits(x.shape, size, op)
    rng = generator(seed, op)
    index = rng.integers(0, x.shape[0], size=n, dtype=np.intp)
    top = rng.integers(0, x.shape[2] - size[0] + 1, size=n, dtype=np.intp)
    left = rng.integers(0, x.shape[3] - size[1] + 1, size=n, dtype=np.intp)
    out = windows_at(x, index, top, left, size, op)
    return (out, (index, top, left)) if return_positions else out


def normalize_patches(patches, eps: float) -> np.ndarray:
    """Per-patch contrast normalization (Coates & Ng): (x − mean(x)) / sqrt(var(x) + eps).

    Each row loses its brightness and is brought to about unit contrast; ``eps`` (in squared
    input units) keeps nearly flat patches from being amplified into noise. Returns a new array.
    """
    op = "normalize_patches"
    x = as_patches(patches, op)
    eps = positive_float(eps, op, "eps", allow_zero=True)
    mean = x.mean(axis=1, keepdims=True)
    centered = x - mean
    var = np.mean(centered * centered, axis=1, keepdims=True)
    if eps == 0 and (var == 0).any():
        raise ValueError(f"{op}: a constant patch has zero variance; use eps > 0")
    return centered / np.sqrt(var + x.dtype.type(eps))


def default_contrast_eps(patches: np.ndarray) -> float:
    """The contrast-normalization epsilon used when none is given: 10 % of the mean patch variance.

    Coates & Ng add 10 to variances of 0–255 pixels; a fraction of the typical variance carries the
    same idea to any input scale (normalized images, feature maps of deeper layers).
    """
    var = float(np.mean(patches.var(axis=1, dtype=np.float64)))
    return 0.1 * var if var > 0 else 1.0
