"""Synthetic datasets. ``coord_dataset``: the CoordConv paper's one-hot pixel <-> coordinate task.

Liu et al. 2018, "An intriguing failing of convolutional neural networks and the CoordConv
solution": a ``size x size`` image is all zeros except a single 1 at pixel ``(i, j)`` (row, column).
Plain convolutions struggle to map between that image and the numbers ``(i, j)``, especially when
a whole quadrant of positions is never seen in training.
"""
from __future__ import annotations

from typing import Tuple

import numpy as np

from .datasets import TensorDataset

__all__ = ["coord_dataset"]

_DIRECTIONS = ("image_to_coords", "coords_to_image")
_SPLITS = ("uniform", "quadrant")


def _one_hot_images(coords: np.ndarray, size: int) -> np.ndarray:
    images = np.zeros((len(coords), 1, size, size), dtype=np.float32)
    images[np.arange(len(coords)), 0, coords[:, 0], coords[:, 1]] = 1.0
    return images


def coord_dataset(size: int = 64, split: str = "uniform", seed: int = 0,
                  direction: str = "image_to_coords",
                  test_fraction: float = 0.2) -> Tuple[TensorDataset, TensorDataset]:
    """All ``size * size`` one-hot positions, split into ``(train, test)`` TensorDatasets.

    direction: ``'image_to_coords'`` (supervised coordinate regression): x is the one-hot image,
        float32 ``(N, 1, size, size)``, y the coordinates ``(i, j)`` as float32 ``(N, 2)``.
        ``'coords_to_image'`` (supervised rendering): x is the float32 ``(N, 2)`` coordinates
        (reshape to ``(N, 2, 1, 1)`` for a deconvolution decoder), y the one-hot image.
    split: ``'uniform'`` puts a random ``test_fraction`` (default 20 %) of positions, chosen by
        ``seed``, in the test set; ``'quadrant'`` holds out the bottom-right quadrant (rows and
        columns ``>= size // 2``) for testing and trains on the rest (``seed`` is not used).
    Samples within each set are in row-major position order; shuffle them in the loader.
    """
    op = "coord_dataset"
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 2:
        raise ValueError(f"{op}: expected size as an int >= 2, got {size!r}")
    if split not in _SPLITS:
        raise ValueError(f"{op}: expected split 'uniform' or 'quadrant', got {split!r}")
    if direction not in _DIRECTIONS:
        raise ValueError(f"{op}: expected direction 'image_to_coords' or 'coords_to_image', got {direction!r}")
    if not isinstance(test_fraction, (int, float, np.floating)) or not 0.0 < test_fraction < 1.0:
        raise ValueError(f"{op}: expected test_fraction strictly between 0 and 1, got {test_fraction!r}")
    size = int(size)
    rows, cols = np.divmod(np.arange(size * size), size)
    coords = np.stack([rows, cols], axis=1)
    if split == "quadrant":
        half = size // 2
        is_test = (rows >= half) & (cols >= half)
    else:
        n_test = int(round(test_fraction * size * size))
        if not 0 < n_test < size * size:
            raise ValueError(f"{op}: test_fraction={test_fraction} leaves an empty train or test set for size {size}")
        is_test = np.zeros(size * size, dtype=bool)
        is_test[np.random.default_rng(seed).permutation(size * size)[:n_test]] = True
    return tuple(_make(coords[mask], size, direction) for mask in (~is_test, is_test))


def _make(coords: np.ndarray, size: int, direction: str) -> TensorDataset:
    images = _one_hot_images(coords, size)
    values = coords.astype(np.float32)
    if direction == "image_to_coords":
        return TensorDataset(images, values)
    return TensorDataset(values, images)
