"""Samplers (PyTorch's names and rules): which dataset indices an epoch visits, in which order, in which batches.

Random samplers draw from a numpy Generator (``generator=``: a fastconv Generator, a
numpy Generator, or None for fastconv's global one, which ``fastconv.manual_seed`` reseeds); each
``iter()`` draws anew, so epochs differ while a seeded run repeats exactly. The random streams are
numpy's, so the orders are not PyTorch's orders, only equally distributed.
"""
from __future__ import annotations

import numbers
from typing import Generic, Iterable, Iterator, List, Optional, Sequence, Sized, TypeVar, Union

import numpy as np

from ...tensor import Tensor
from ._random import fresh_generator, numpy_generator

T_co = TypeVar("T_co", covariant=True)


class Sampler(Generic[T_co]):
    """Base class: ``__iter__`` yields indices (or lists of them); ``__len__`` when the count is known.

    ``data_source`` is accepted (and ignored) for compatibility with older PyTorch subclasses.
    """

    def __init__(self, data_source: Optional[Sized] = None) -> None:
        pass

    def __iter__(self) -> Iterator[T_co]:
        raise NotImplementedError(f"{type(self).__name__}: subclasses of Sampler must define __iter__")


def _positive_int(value, owner: str, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(f"{owner}: {name} should be a positive integer value, but got {name}={value!r}")
    return int(value)


def _flag(value, owner: str, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{owner}: {name} should be a boolean value, but got {name}={value!r}")
    return bool(value)


class SequentialSampler(Sampler[int]):
    """0, 1, ..., len(data_source) − 1."""

    def __init__(self, data_source: Sized) -> None:
        self.data_source = data_source

    def __iter__(self) -> Iterator[int]:
        return iter(range(len(self.data_source)))

    def __len__(self) -> int:
        return len(self.data_source)


class RandomSampler(Sampler[int]):
    """A random permutation per epoch; with ``replacement``, ``num_samples`` independent draws.

    Without replacement, ``num_samples`` larger than the dataset concatenates whole permutations
    (and a part of one), as in PyTorch. With ``generator=None`` each epoch's generator is seeded by
    one draw from fastconv's global generator.
    """

    def __init__(self, data_source: Sized, replacement: bool = False, num_samples: Optional[int] = None,
                 generator=None) -> None:
        self.data_source = data_source
        self.replacement = _flag(replacement, "RandomSampler", "replacement")
        self._num_samples = None if num_samples is None else _positive_int(num_samples, "RandomSampler",
                                                                              "num_samples")
        numpy_generator(generator, "RandomSampler")  # checks the type now rather than at the first epoch
        self.generator = generator

    @property
    def num_samples(self) -> int:
        return len(self.data_source) if self._num_samples is None else self._num_samples

    def __iter__(self) -> Iterator[int]:
        n = len(self.data_source)
        rng = fresh_generator(self.generator, "RandomSampler") if self.generator is None else \
            numpy_generator(self.generator, "RandomSampler")
        if self.replacement:
            return iter(rng.integers(0, n, self.num_samples).tolist())
        if n == 0:
            return iter(())
        whole, rest = divmod(self.num_samples, n)
        order = [rng.permutation(n) for _ in range(whole)] + ([rng.permutation(n)[:rest]] if rest else [])
        return iter(np.concatenate(order).tolist())

    def __len__(self) -> int:
        return self.num_samples


class SubsetRandomSampler(Sampler[int]):
    """The given ``indices`` in a new random order every epoch."""

    def __init__(self, indices: Sequence[int], generator=None) -> None:
        self.indices = indices
        numpy_generator(generator, "SubsetRandomSampler")
        self.generator = generator

    def __iter__(self) -> Iterator[int]:
        order = numpy_generator(self.generator, "SubsetRandomSampler").permutation(len(self.indices))
        for i in order.tolist():
            yield self.indices[i]

    def __len__(self) -> int:
        return len(self.indices)


class WeightedRandomSampler(Sampler[int]):
    """``num_samples`` indices drawn with probabilities proportional to ``weights`` (with replacement
    by default; without it each index at most once)."""

    def __init__(self, weights: Union[Sequence[float], Tensor, np.ndarray], num_samples: int,
                 replacement: bool = True, generator=None) -> None:
        owner = "WeightedRandomSampler"
        self.num_samples = _positive_int(num_samples, owner, "num_samples")
        self.replacement = _flag(replacement, owner, "replacement")
        w = np.asarray(weights.numpy() if isinstance(weights, Tensor) else weights, dtype=np.float64)
        if w.ndim != 1:
            raise ValueError(f"{owner}: weights should be a 1d sequence but given weights have shape {w.shape}")
        if w.size == 0 or not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
            raise ValueError(f"{owner}: expected finite, non-negative weights with a positive sum, got {w.tolist()}")
        if not self.replacement and self.num_samples > np.count_nonzero(w):
            raise ValueError(f"{owner}: cannot draw {self.num_samples} samples without replacement from "
                             f"{np.count_nonzero(w)} non-zero weights")
        self.weights = w
        numpy_generator(generator, owner)
        self.generator = generator

    def __iter__(self) -> Iterator[int]:
        rng = numpy_generator(self.generator, "WeightedRandomSampler")
        drawn = rng.choice(self.weights.size, size=self.num_samples, replace=self.replacement,
                           p=self.weights / self.weights.sum())
        return iter(drawn.tolist())

    def __len__(self) -> int:
        return self.num_samples


class BatchSampler(Sampler[List[int]]):
    """Groups the indices of ``sampler`` (any iterable of indices) into lists of ``batch_size``; the
    last, shorter batch is kept unless ``drop_last``."""

    def __init__(self, sampler: Union[Sampler[int], Iterable[int]], batch_size: int, drop_last: bool) -> None:
        self.batch_size = _positive_int(batch_size, "BatchSampler", "batch_size")
        if not isinstance(drop_last, (bool, np.bool_)):
            raise ValueError(f"BatchSampler: drop_last should be a boolean value, but got drop_last={drop_last!r}")
        self.drop_last = bool(drop_last)
        self.sampler = sampler

    def __iter__(self) -> Iterator[List[int]]:
        batch: List[int] = []
        for index in self.sampler:
            batch.append(index)
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch and not self.drop_last:
            yield batch

    def __len__(self) -> int:
        n = len(self.sampler)  # type: ignore[arg-type]
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)


__all__ = ["Sampler", "SequentialSampler", "RandomSampler", "SubsetRandomSampler", "WeightedRandomSampler",
           "BatchSampler"]
