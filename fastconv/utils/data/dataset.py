"""Datasets with PyTorch's semantics: map-style ``Dataset``, ``IterableDataset``, ``TensorDataset``,
``Subset``, ``ConcatDataset``, ``ChainDataset``, ``StackDataset`` and ``random_split``."""
from __future__ import annotations

import bisect
import itertools
import math
import numbers
import warnings
from typing import Dict, Generic, Iterable, Iterator, List, Sequence, Tuple, TypeVar, Union

import numpy as np

from ...tensor import Tensor
from ._random import numpy_generator
from .collate import PrestackedBatch

T_co = TypeVar("T_co", covariant=True)


class Dataset(Generic[T_co]):
    """A map-style dataset: subclasses define ``__getitem__`` (and usually ``__len__``).

    A subclass may also define ``__getitems__(indices) -> list of samples`` to fetch a whole batch at
    once; the DataLoader uses it when present (as PyTorch's does). ``a + b`` concatenates.
    """

    def __getitem__(self, index) -> T_co:
        raise NotImplementedError(f"{type(self).__name__}: subclasses of Dataset should implement __getitem__")

    def __add__(self, other: "Dataset[T_co]") -> "ConcatDataset[T_co]":
        return ConcatDataset([self, other])


class IterableDataset(Dataset[T_co]):
    """A dataset that is a stream: subclasses define ``__iter__``. Under a DataLoader with workers,
    ``fastconv.utils.data.get_worker_info()`` tells each worker which share to produce."""

    def __iter__(self) -> Iterator[T_co]:
        raise NotImplementedError(f"{type(self).__name__}: subclasses of IterableDataset should implement __iter__")

    def __add__(self, other: Dataset[T_co]) -> "ChainDataset":
        return ChainDataset([self, other])


def _as_tensor(value, op: str, k: int) -> Tensor:
    if isinstance(value, Tensor):
        return value
    try:
        return Tensor(value)
    except TypeError as exc:
        raise TypeError(f"{op}: tensor {k} ({type(value).__name__}) cannot become a Tensor: {exc}") from None


def _row(t: Tensor, index) -> Tensor:
    """``t[index]``: a view of the array (recorded on the tape only if ``t`` requires grad)."""
    if t.requires_grad:
        return t[index]
    return Tensor._wrap(t.numpy()[index])


class TensorDataset(Dataset[Tuple[Tensor, ...]]):
    """Samples are the rows of equally long tensors: ``ds[i] == (t[i] for t in tensors)``.

    Tensors are kept in ``.tensors`` (numpy arrays and array-likes are converted to Tensors).
    """

    def __init__(self, *tensors) -> None:
        converted = tuple(_as_tensor(t, "TensorDataset", k) for k, t in enumerate(tensors))
        for k, t in enumerate(converted):
            if t.ndim == 0:
                raise ValueError(f"TensorDataset: tensor {k} is 0-D; expected a leading sample dimension")
        sizes = [t.shape[0] for t in converted]
        if len(set(sizes)) > 1:
            raise ValueError(f"TensorDataset: size mismatch between tensors, first dimensions are {sizes}")
        self.tensors = converted

    def __getitem__(self, index):
        return tuple(_row(t, index) for t in self.tensors)

    def __getitems__(self, indices: List[int]) -> List[tuple]:
        """The rows at ``indices``, gathered with one index per tensor (``PrestackedBatch``: the
        default collate uses the gathered columns as they are). A subclass that overrides
        ``__getitem__`` is served through it, sample by sample."""
        if type(self).__getitem__ is not TensorDataset.__getitem__:
            return [self[i] for i in indices]
        idx = np.asarray(indices, dtype=np.int64)
        columns = [t.numpy()[idx] if not t.requires_grad else None for t in self.tensors]
        rows = []
        for j, i in enumerate(indices):
            rows.append(tuple(Tensor._wrap(c[j]) if c is not None else t[i] for c, t in zip(columns, self.tensors)))
        return PrestackedBatch(rows, {k: c for k, c in enumerate(columns) if c is not None})

    def __len__(self) -> int:
        return self.tensors[0].shape[0] if self.tensors else 0


class StackDataset(Dataset):
    """Samples of several equally long datasets side by side: ``StackDataset(a, b)[i] == (a[i], b[i])``,
    ``StackDataset(x=a, y=b)[i] == {'x': a[i], 'y': b[i]}``."""

    def __init__(self, *args: Dataset, **kwargs: Dataset) -> None:
        if args and kwargs:
            raise ValueError("StackDataset: supported either tuple-like (positional) or dict-like (keyword) input, "
                             "but both types are given")
        datasets: Union[tuple, Dict[str, Dataset]] = args if args else kwargs
        members = list(datasets.values()) if isinstance(datasets, dict) else list(datasets)
        if not members:
            raise ValueError("StackDataset: at least one dataset should be passed")
        lengths = [len(d) for d in members]
        if len(set(lengths)) > 1:
            raise ValueError(f"StackDataset: size mismatch between datasets, lengths are {lengths}")
        self._length = lengths[0]
        self.datasets = datasets

    def __getitem__(self, index):
        if isinstance(self.datasets, dict):
            return {k: d[index] for k, d in self.datasets.items()}
        return tuple(d[index] for d in self.datasets)

    def __len__(self) -> int:
        return self._length


class ConcatDataset(Dataset[T_co]):
    """The samples of several map-style datasets one after the other (``cumulative_sizes`` holds the
    running lengths)."""

    datasets: List[Dataset[T_co]]
    cumulative_sizes: List[int]

    def __init__(self, datasets: Iterable[Dataset]) -> None:
        self.datasets = list(datasets)
        if not self.datasets:
            raise ValueError("ConcatDataset: datasets should not be an empty iterable")
        for d in self.datasets:
            if isinstance(d, IterableDataset):
                raise TypeError("ConcatDataset does not support IterableDataset (use ChainDataset)")
        self.cumulative_sizes = list(itertools.accumulate(len(d) for d in self.datasets))

    def __len__(self) -> int:
        return self.cumulative_sizes[-1]

    def _locate(self, index) -> Tuple[int, int]:
        if isinstance(index, bool) or not isinstance(index, numbers.Integral):
            raise TypeError(f"ConcatDataset: expected an integer index, got {type(index).__name__}")
        idx = int(index)
        if idx < 0:
            if -idx > len(self):
                raise ValueError("ConcatDataset: absolute value of index should not exceed dataset length")
            idx += len(self)
        if idx >= len(self):
            raise IndexError(f"ConcatDataset: index {index} is out of range for a dataset of length {len(self)}")
        which = bisect.bisect_right(self.cumulative_sizes, idx)
        return which, idx - (self.cumulative_sizes[which - 1] if which else 0)

    def __getitem__(self, index):
        which, inner = self._locate(index)
        return self.datasets[which][inner]


class ChainDataset(IterableDataset):
    """Several iterable datasets streamed one after the other."""

    def __init__(self, datasets: Iterable[Dataset]) -> None:
        self.datasets = datasets

    def __iter__(self):
        for d in self.datasets:
            if not isinstance(d, IterableDataset):
                raise TypeError("ChainDataset only supports IterableDataset")
            yield from d

    def __len__(self) -> int:
        total = 0
        for d in self.datasets:
            if not isinstance(d, IterableDataset):
                raise TypeError("ChainDataset only supports IterableDataset")
            total += len(d)  # type: ignore[arg-type]
        return total


class Subset(Dataset[T_co]):
    """The samples of ``dataset`` at ``indices``, in that order (``.dataset``, ``.indices`` as in PyTorch)."""

    def __init__(self, dataset: Dataset[T_co], indices: Sequence[int]) -> None:
        self.dataset = dataset
        self.indices = indices

    def __getitem__(self, idx):
        if isinstance(idx, list):
            return self.dataset[[self.indices[i] for i in idx]]
        return self.dataset[self.indices[idx]]

    def __getitems__(self, indices: List[int]) -> List[T_co]:
        inner = [self.indices[i] for i in indices]
        fetch = getattr(self.dataset, "__getitems__", None)
        if callable(fetch):
            return fetch(inner)
        return [self.dataset[i] for i in inner]

    def __len__(self) -> int:
        return len(self.indices)


def split_lengths(n: int, lengths: Sequence[Union[int, float]], op: str = "random_split") -> List[int]:
    """Integer sizes from ``lengths`` (ints summing to n, or fractions summing to 1: floor(n·f) each,
    the remainder handed out one by one from the first split, as PyTorch does)."""
    lengths = list(lengths)
    if not lengths:
        raise ValueError(f"{op}: expected at least one length")
    for v in lengths:
        if isinstance(v, bool) or not isinstance(v, numbers.Real):
            raise TypeError(f"{op}: expected lengths as ints or fractions, got {lengths!r}")
    total = sum(lengths)
    if math.isclose(total, 1) and total <= 1:  # fractions (integer lengths summing to 1 give the same sizes)
        sizes = []
        for i, frac in enumerate(lengths):
            if frac < 0 or frac > 1:
                raise ValueError(f"{op}: fraction at index {i} is not between 0 and 1, got {frac!r}")
            sizes.append(int(math.floor(n * frac)))
        for i in range(n - sum(sizes)):
            sizes[i % len(sizes)] += 1
        for i, size in enumerate(sizes):
            if size == 0:
                warnings.warn(f"{op}: length of split at index {i} is 0; this might result in an empty dataset",
                              UserWarning, stacklevel=3)
        return sizes
    if not all(isinstance(v, numbers.Integral) for v in lengths) or any(v < 0 for v in lengths):
        raise ValueError(f"{op}: expected non-negative integer lengths or fractions summing to 1, got {lengths!r}")
    if total != n:
        raise ValueError(f"{op}: lengths {lengths} sum to {total}, not to the length of the dataset ({n})")
    return [int(v) for v in lengths]


def random_split(dataset: Dataset[T_co], lengths: Sequence[Union[int, float]], generator=None) -> List[Subset[T_co]]:
    """Split ``dataset`` into non-overlapping random ``Subset``s of the given lengths (ints, or fractions
    summing to 1). ``generator``: a fastconv or numpy Generator; None uses fastconv's global one."""
    sizes = split_lengths(len(dataset), lengths)
    order = numpy_generator(generator, "random_split").permutation(sum(sizes)).tolist()
    return [Subset(dataset, order[end - size:end]) for end, size in zip(itertools.accumulate(sizes), sizes)]


__all__ = ["Dataset", "IterableDataset", "TensorDataset", "StackDataset", "ConcatDataset", "ChainDataset", "Subset",
           "random_split"]
