"""Argument handling shared by the pretraining modules: generators, image arrays, patch matrices."""
from __future__ import annotations

from typing import Optional, Union

import numpy as np

from .._kernels import _omp
from .._validation import check_float, check_ndim
from ..random import get_generator
from ..tensor import Tensor

SeedLike = Union[None, int, np.random.Generator]

# Below this many copied/compared elements a parallel region costs more than it saves.
MIN_ELEMENTS_PER_THREAD = 1 << 15


def all_finite(a: np.ndarray) -> bool:
    """No NaN or ±inf (min/max propagate NaN; cheaper than an isfinite mask on large inputs)."""
    return bool(np.isfinite(a.min()) and np.isfinite(a.max()))


def generator(seed: SeedLike, op: str) -> np.random.Generator:
    """A numpy Generator: a new one for an int seed, the given one, or fastconv's global one for None
    (so ``fastconv.manual_seed`` makes unseeded calls reproducible)."""
    if seed is None:
        return get_generator()
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) and seed >= 0:
        return np.random.default_rng(int(seed))
    raise TypeError(f"{op}: expected seed as None, a non-negative int or a numpy Generator, got {seed!r}")


def as_images(images, op: str) -> np.ndarray:
    """A float32/float64 C-contiguous (N, C, H, W) array of finite values from an ndarray or Tensor."""
    if isinstance(images, Tensor):
        images = images.numpy()
    if not isinstance(images, np.ndarray):
        raise TypeError(f"{op}: expected images as a float ndarray or Tensor of shape (N, C, H, W), "
                        f"got {type(images).__name__}")
    check_float(images, op, "images")
    check_ndim(images, 4, op, "images", "(N, C, H, W)")
    if min(images.shape) == 0:
        raise ValueError(f"{op}: expected non-empty images, got shape {images.shape}")
    if not all_finite(images):
        raise ValueError(f"{op}: images contain NaN or infinite values")
    return np.ascontiguousarray(images)


def as_patches(patches, op: str, name: str = "patches") -> np.ndarray:
    """A float32/float64 C-contiguous 2-D (n, d) array of finite values, n >= 1, d >= 1."""
    if isinstance(patches, Tensor):
        patches = patches.numpy()
    if not isinstance(patches, np.ndarray):
        raise TypeError(f"{op}: expected {name} as a float ndarray of shape (n, d), got {type(patches).__name__}")
    check_float(patches, op, name)
    check_ndim(patches, 2, op, name, "(n, d)")
    if patches.shape[0] == 0 or patches.shape[1] == 0:
        raise ValueError(f"{op}: expected non-empty {name}, got shape {patches.shape}")
    if not all_finite(patches):
        raise ValueError(f"{op}: {name} contain NaN or infinite values")
    return np.ascontiguousarray(patches)


def positive_int(value, op: str, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{op}: expected {name} as a positive int, got {value!r}")
    return int(value)


def positive_float(value, op: str, name: str, allow_zero: bool = False) -> float:
    ok = isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, bool)
    if not ok or not np.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        want = "a non-negative" if allow_zero else "a positive"
        raise ValueError(f"{op}: expected {name} as {want} finite number, got {value!r}")
    return float(value)


def optional_batch_size(value, op: str) -> Optional[int]:
    return None if value is None else positive_int(value, op, "batch_size")


def kernel_threads(elements: int) -> int:
    """OpenMP threads for a kernel touching ``elements`` values (1 for small problems)."""
    threads = _omp.get_max_threads()
    return max(1, min(threads, elements // MIN_ELEMENTS_PER_THREAD))
