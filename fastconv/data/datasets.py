"""Map-style datasets: ``Dataset``, ``TensorDataset``, ``MNIST``, ``Subset`` and ways to split them.

Every dataset answers ``len(ds)`` and ``ds[i] -> (x, y)``. ``get_batch(indices, rng)`` returns a
whole batch at once; array-backed datasets (and Subsets of them) gather it with one vectorized
index per array, which is the DataLoader's fast path. They are ``fastconv.utils.data`` datasets
(``Dataset`` and ``Subset`` derive from its classes), so ``fastconv.utils.data.DataLoader`` and
its samplers take them too; their samples stay numpy arrays.
"""
from __future__ import annotations

import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..random import get_generator
from ..tensor import Tensor
from ..utils import data as _torch_data
from ..utils.data.collate import numpy_collate
from ..utils.data.dataset import split_lengths
from .idx import read_idx
from .transforms import apply_transform

__all__ = ["Dataset", "TensorDataset", "MNIST", "Subset", "stratified_subset", "random_split", "BUNDLED_MNIST"]

BUNDLED_MNIST = Path(__file__).resolve().parent / "mnist"


def _as_array(value, op: str, name: str) -> np.ndarray:
    if isinstance(value, Tensor):
        return value.numpy()
    if isinstance(value, np.ndarray):
        return value
    try:
        return np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{op}: cannot convert {name} ({type(value).__name__}) to an array: {exc}") from exc


def _index_array(indices, op: str) -> np.ndarray:
    """A 1-D int64 array from a sequence/array of integer indices."""
    idx = _as_array(indices, op, "indices")
    if idx.ndim == 0:
        idx = idx.reshape(1)
    if idx.size == 0:
        return np.zeros(0, dtype=np.int64)
    if idx.ndim != 1 or idx.dtype.kind not in "iu":
        raise TypeError(f"{op}: expected a 1-D sequence of integer indices, got dtype {idx.dtype} shape {idx.shape}")
    return idx.astype(np.int64, copy=False)


def _checked_indices(indices, length: int, op: str) -> np.ndarray:
    """Integer indices made non-negative and checked against ``length``."""
    idx = _index_array(indices, op)
    bad = (idx < -length) | (idx >= length)
    if bad.any():
        raise IndexError(f"{op}: index {int(idx[bad][0])} is out of range for a dataset of length {length}")
    return np.where(idx < 0, idx + length, idx)


def _single_index(index, length: int, op: str) -> int:
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
        raise TypeError(f"{op}: expected an integer index, got {type(index).__name__}")
    i = int(index)
    if not -length <= i < length:
        raise IndexError(f"{op}: index {i} is out of range for a dataset of length {length}")
    return i % length


def _collate(samples: Sequence, op: str) -> Tuple[np.ndarray, ...]:
    """Stack a list of samples (tuples of array-likes) field by field into numpy arrays
    (``fastconv.utils.data``'s collation with numpy leaves; a list field is one array per sample)."""
    if not samples:
        raise ValueError(f"{op}: cannot build a batch from zero samples")
    rows = [s if isinstance(s, (tuple, list)) else (s,) for s in samples]
    width = len(rows[0])
    if any(len(r) != width for r in rows):
        raise ValueError(f"{op}: samples have different numbers of fields")
    return tuple(numpy_collate([_as_array(r[k], op, "sample field") for r in rows]) for k in range(width))


class Dataset(_torch_data.Dataset, ABC):
    """A map-style dataset: ``len(ds)`` samples, ``ds[i]`` returns ``(x, y)``."""

    @abstractmethod
    def __len__(self) -> int:
        """Number of samples."""

    @abstractmethod
    def __getitem__(self, index):
        """Sample ``index`` as a tuple ``(x, y)``."""

    def get_batch(self, indices, rng: Optional[np.random.Generator] = None) -> Tuple[np.ndarray, ...]:
        """The samples at ``indices`` stacked into arrays (one per field). Subclasses vectorize this."""
        return _collate([self[int(i)] for i in _index_array(indices, type(self).__name__)], type(self).__name__)


class TensorDataset(Dataset):
    """Samples are the rows of equally long arrays; ``transform`` applies to the first (the inputs).

    ``arrays`` is the tuple of arrays, so batches are one fancy index each (the loader's fast path).
    """

    def __init__(self, *arrays, transform: Optional[Callable] = None):
        if not arrays:
            raise ValueError("TensorDataset: expected at least one array, got none")
        converted = tuple(_as_array(a, "TensorDataset", f"array {k}") for k, a in enumerate(arrays))
        for k, a in enumerate(converted):
            if a.ndim == 0:
                raise ValueError(f"TensorDataset: expected arrays with a leading sample axis, array {k} is 0-D")
        lengths = [len(a) for a in converted]
        if len(set(lengths)) != 1:
            raise ValueError(f"TensorDataset: expected arrays of equal length, got lengths {lengths}")
        if transform is not None and not callable(transform):
            raise TypeError(f"TensorDataset: expected a callable transform, got {type(transform).__name__}")
        self.arrays = converted
        self.transform = transform

    def __len__(self) -> int:
        return len(self.arrays[0])

    def __getitem__(self, index):
        i = _single_index(index, len(self), type(self).__name__)
        sample = [a[i] for a in self.arrays]
        if self.transform is not None:
            sample[0] = apply_transform(self.transform, sample[0][None], None)[0]
        return tuple(sample)

    def get_batch(self, indices, rng=None):
        idx = _checked_indices(indices, len(self), type(self).__name__)
        batch = [a[idx] for a in self.arrays]
        batch[0] = apply_transform(self.transform, batch[0], rng)
        return tuple(batch)

    def __repr__(self) -> str:
        shapes = ", ".join(f"{a.dtype}{tuple(a.shape)}" for a in self.arrays)
        return f"{type(self).__name__}({shapes})"


_MNIST_PREFIXES = {"train": ("train", "train5k"), "test": ("t10k",)}


def _find_mnist_file(root: Path, prefix: str, kind: str) -> Optional[Path]:
    stem = f"{prefix}-{kind}-idx{3 if kind == 'images' else 1}-ubyte"
    for folder in (root, root / "MNIST" / "raw"):
        for name in (stem + ".gz", stem):
            if (folder / name).is_file():
                return folder / name
    return None


class MNIST(TensorDataset):
    """MNIST digits: images float32 ``(N, 1, 28, 28)`` in [0, 1], labels int64.

    ``root=None`` uses the copy bundled with fastconv: ``split='train'`` is a fixed 5,000-image
    subset of the official training set (500 per class, sorted by class: shuffle it) and
    ``split='test'`` the official 10,000-image test set. A ``root`` folder holds the standard IDX
    files (``train-images-idx3-ubyte[.gz]`` ...; also found under ``root/MNIST/raw``).
    """

    classes = ["0 - zero", "1 - one", "2 - two", "3 - three", "4 - four",
               "5 - five", "6 - six", "7 - seven", "8 - eight", "9 - nine"]

    def __init__(self, root: Union[str, "os.PathLike[str]", None] = None, split: str = "train",
                 transform: Optional[Callable] = None):
        if split not in _MNIST_PREFIXES:
            raise ValueError(f"MNIST: expected split 'train' or 'test', got {split!r}")
        folder = BUNDLED_MNIST if root is None else Path(os.fspath(root))
        images_path, labels_path = self._locate(folder, split)
        images, labels = read_idx(images_path), read_idx(labels_path)
        if images.ndim != 3 or images.dtype != np.uint8:
            raise ValueError(f"MNIST: {images_path}: expected uint8 images of shape (N, H, W), "
                             f"got {images.dtype} {images.shape}")
        if labels.ndim != 1 or labels.dtype != np.uint8:
            raise ValueError(f"MNIST: {labels_path}: expected uint8 labels of shape (N,), got {labels.dtype} {labels.shape}")
        if len(images) != len(labels):
            raise ValueError(f"MNIST: {images_path} has {len(images)} images but {labels_path} has {len(labels)} labels")
        if labels.size and labels.max() > 9:
            raise ValueError(f"MNIST: {labels_path}: labels must be digits 0-9, found {int(labels.max())}")
        data = (images.astype(np.float32) / np.float32(255.0))[:, None, :, :]
        super().__init__(data, labels.astype(np.int64), transform=transform)
        self.root, self.split = folder, split

    @staticmethod
    def _locate(folder: Path, split: str) -> Tuple[Path, Path]:
        if not folder.is_dir():
            raise FileNotFoundError(f"MNIST: root folder {folder} does not exist")
        for prefix in _MNIST_PREFIXES[split]:
            images, labels = _find_mnist_file(folder, prefix, "images"), _find_mnist_file(folder, prefix, "labels")
            if images is not None and labels is not None:
                return images, labels
        wanted = " or ".join(f"{p}-images-idx3-ubyte[.gz] + {p}-labels-idx1-ubyte[.gz]" for p in _MNIST_PREFIXES[split])
        raise FileNotFoundError(f"MNIST: no {split} split in {folder}: expected {wanted}")

    @property
    def data(self) -> np.ndarray:
        """Images, float32 (N, 1, H, W) in [0, 1]."""
        return self.arrays[0]

    @property
    def targets(self) -> np.ndarray:
        """Labels, int64 (N,)."""
        return self.arrays[1]

    def __repr__(self) -> str:
        return f"MNIST(split={self.split!r}, root={str(self.root)!r}, samples={len(self)})"


class Subset(_torch_data.Subset, Dataset):
    """The samples of ``dataset`` at ``indices`` (in that order, an int64 array); batches stay vectorized."""

    def __init__(self, dataset: Dataset, indices):
        if not hasattr(dataset, "__len__") or not hasattr(dataset, "__getitem__"):
            raise TypeError(f"Subset: expected a dataset with __len__ and __getitem__, got {type(dataset).__name__}")
        super().__init__(dataset, _checked_indices(indices, len(dataset), "Subset"))

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index):
        return self.dataset[int(self.indices[_single_index(index, len(self), "Subset")])]

    def get_batch(self, indices, rng=None):
        inner = self.indices[_checked_indices(indices, len(self), "Subset")]
        if callable(getattr(self.dataset, "get_batch", None)):
            return self.dataset.get_batch(inner, rng)
        return _collate([self.dataset[int(i)] for i in inner], "Subset")

    @property
    def targets(self) -> np.ndarray:
        """Labels of the selected samples (when the wrapped dataset has labels)."""
        return _labels_of(self.dataset, "Subset")[self.indices]

    def __repr__(self) -> str:
        return f"Subset({self.dataset!r}, {len(self)} samples)"


def _labels_of(dataset, op: str) -> np.ndarray:
    """Integer labels of a dataset: ``targets``, the second array, or ``ds[i][1]`` for each sample."""
    if isinstance(dataset, Subset):
        return _labels_of(dataset.dataset, op)[dataset.indices]
    if hasattr(dataset, "targets"):
        labels = _as_array(dataset.targets, op, "targets")
    elif isinstance(dataset, TensorDataset) and len(dataset.arrays) >= 2:
        labels = dataset.arrays[1]
    else:
        labels = np.asarray([_as_array(dataset[i][1], op, "label") for i in range(len(dataset))])
    return labels


def stratified_subset(dataset_or_labels, n_per_class: int, seed: int = 0):
    """``n_per_class`` random samples of every class, for few-label experiments.

    Given a dataset, returns a ``Subset``; given labels (array-like), returns the sorted indices.
    Deterministic for a seed, and nested: for one seed the picks for ``n`` are contained in those
    for any larger ``n``. A class with fewer than ``n_per_class`` samples is a ValueError.
    """
    op = "stratified_subset"
    if isinstance(n_per_class, bool) or not isinstance(n_per_class, (int, np.integer)) or n_per_class < 1:
        raise ValueError(f"{op}: expected n_per_class as a positive int, got {n_per_class!r}")
    is_dataset = isinstance(dataset_or_labels, Dataset) or (
        hasattr(dataset_or_labels, "__getitem__") and hasattr(dataset_or_labels, "__len__")
        and not isinstance(dataset_or_labels, (np.ndarray, list, tuple, Tensor)))
    labels = _labels_of(dataset_or_labels, op) if is_dataset else _as_array(dataset_or_labels, op, "labels")
    if labels.ndim != 1 or labels.dtype.kind not in "iub":
        raise TypeError(f"{op}: expected 1-D integer labels, got dtype {labels.dtype} shape {labels.shape}")
    rng = np.random.default_rng(seed)
    picked: List[np.ndarray] = []
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        if len(members) < n_per_class:
            raise ValueError(f"{op}: class {cls} has only {len(members)} samples, {n_per_class} requested")
        picked.append(rng.permutation(members)[:n_per_class])
    indices = np.sort(np.concatenate(picked)) if picked else np.zeros(0, dtype=np.int64)
    return Subset(dataset_or_labels, indices) if is_dataset else indices


def random_split(dataset: Dataset, lengths: Sequence[Union[int, float]], seed: Optional[int] = None) -> List[Subset]:
    """Split into non-overlapping random Subsets of the given lengths (or fractions summing to 1).

    ``seed=None`` draws from fastconv's global generator, so ``fastconv.manual_seed`` fixes it.
    """
    n = len(dataset)
    sizes = split_lengths(n, lengths)  # PyTorch's rule for ints and fractions
    rng = get_generator() if seed is None else np.random.default_rng(seed)
    order = rng.permutation(n)
    bounds = np.cumsum([0] + sizes)
    return [Subset(dataset, order[bounds[k]:bounds[k + 1]]) for k in range(len(sizes))]
