"""``DataLoader``: PyTorch's arguments and semantics, batches of fastconv Tensors.

Indices come from a sampler (``shuffle`` → RandomSampler, else SequentialSampler, or the one given),
are grouped by a BatchSampler (unless ``batch_size=None``), fetched from the dataset (one
``__getitems__(batch)`` call when the dataset has it, else ``dataset[i]`` per index; an
IterableDataset is iterated instead) and turned into a batch by ``collate_fn`` (``default_collate``).

Workers. ``num_workers > 0`` loads in worker processes (``_multiprocessing``: one kernel thread
each, ``fork``/``spawn``/``forkserver`` through ``multiprocessing_context``, batches through shared
memory, ``prefetch_factor`` batches per worker in flight, ``persistent_workers``,
``worker_init_fn``, ``get_worker_info()``, per-worker seeds as PyTorch derives them, ``timeout``).
Batches and their order are those of ``num_workers=0`` (``in_order=False``: arrival order).
``pin_memory`` is a no-op (there is no device memory to pin on a CPU-only framework). The iterator
class for ``num_workers > 0`` is ``DataLoader.worker_iterator``.
"""
from __future__ import annotations

import math
import numbers
from typing import Any, Callable, Iterable, Optional

from ._fetch import WorkerInfo, _BaseDataLoaderIter, _SingleProcessDataLoaderIter, get_worker_info
from ._multiprocessing import _MultiProcessingDataLoaderIter
from ._random import numpy_generator
from .collate import default_collate, default_convert
from .dataset import Dataset, IterableDataset
from .sampler import BatchSampler, RandomSampler, Sampler, SequentialSampler


class _InfiniteConstantSampler(Sampler[None]):
    """The index "sampler" of an IterableDataset: None forever (the dataset decides when to stop)."""

    def __iter__(self):
        while True:
            yield None


# ---- the loader ---------------------------------------------------------------------------------------
def _non_negative_int(value, name: str, message: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"DataLoader: {message}, got {name}={value!r}")
    return int(value)


class DataLoader:
    """Batches from ``dataset``, with PyTorch's arguments (see the module docstring for workers).

    ``batch_size`` (None: no batching, each sample converted by ``default_convert``), ``shuffle``
    (a new random order every epoch, drawn from ``generator``), ``sampler`` / ``batch_sampler``
    (custom orders), ``collate_fn``, ``drop_last``, ``num_workers``, ``pin_memory``,
    ``timeout``, ``worker_init_fn``, ``multiprocessing_context``, ``generator``, ``prefetch_factor``,
    ``persistent_workers``, ``pin_memory_device``, ``in_order``.
    """

    worker_iterator = _MultiProcessingDataLoaderIter  # the iterator class for num_workers > 0
    _frozen_after_init = ("batch_size", "batch_sampler", "sampler", "drop_last", "dataset", "persistent_workers")

    def __init__(self, dataset: Dataset, batch_size: Optional[int] = 1, shuffle: Optional[bool] = None,
                 sampler: Optional[Iterable] = None, batch_sampler: Optional[Iterable] = None,
                 num_workers: int = 0, collate_fn: Optional[Callable] = None, pin_memory: bool = False,
                 drop_last: bool = False, timeout: float = 0, worker_init_fn: Optional[Callable] = None,
                 multiprocessing_context=None, generator=None, *, prefetch_factor: Optional[int] = None,
                 persistent_workers: bool = False, pin_memory_device: str = "", in_order: bool = True) -> None:
        num_workers = _non_negative_int(num_workers, "num_workers", "num_workers option should be non-negative; "
                                        "use num_workers=0 to disable multiprocessing")
        if isinstance(timeout, bool) or not isinstance(timeout, numbers.Real) or timeout < 0:
            raise ValueError(f"DataLoader: timeout option should be non-negative, got timeout={timeout!r}")
        if num_workers == 0 and prefetch_factor is not None:
            raise ValueError("DataLoader: prefetch_factor option could only be specified in multiprocessing; let "
                             "num_workers > 0 to enable multiprocessing, otherwise set prefetch_factor to None")
        if num_workers > 0 and prefetch_factor is None:
            prefetch_factor = 2
        if prefetch_factor is not None:
            _non_negative_int(prefetch_factor, "prefetch_factor", "prefetch_factor option should be non-negative")
        if persistent_workers and num_workers == 0:
            raise ValueError("DataLoader: persistent_workers option needs num_workers > 0")
        for name, fn in (("collate_fn", collate_fn), ("worker_init_fn", worker_init_fn)):
            if fn is not None and not callable(fn):
                raise TypeError(f"DataLoader: expected {name} to be callable, got {type(fn).__name__}")
        if generator is not None:
            numpy_generator(generator, "DataLoader")

        is_iterable = isinstance(dataset, IterableDataset)
        if is_iterable:
            if shuffle not in (None, False):
                raise ValueError(f"DataLoader with IterableDataset: expected unspecified shuffle option, but got "
                                 f"shuffle={shuffle!r}")
            if sampler is not None:
                raise ValueError(f"DataLoader with IterableDataset: expected unspecified sampler option, but got "
                                 f"sampler={sampler!r}")
            if batch_sampler is not None:
                raise ValueError(f"DataLoader with IterableDataset: expected unspecified batch_sampler option, but "
                                 f"got batch_sampler={batch_sampler!r}")
        else:
            shuffle = bool(shuffle)
            if not hasattr(dataset, "__getitem__"):
                raise TypeError(f"DataLoader: expected a map-style dataset (with __getitem__) or an IterableDataset, "
                                f"got {type(dataset).__name__}")
        if sampler is not None and shuffle:
            raise ValueError("DataLoader: sampler option is mutually exclusive with shuffle")
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError("DataLoader: batch_sampler option is mutually exclusive with batch_size, shuffle, "
                                 "sampler, and drop_last")
            batch_size, drop_last = None, False
        elif batch_size is None:
            if drop_last:
                raise ValueError("DataLoader: batch_size=None option disables auto-batching and is mutually "
                                 "exclusive with drop_last")
        elif isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size <= 0:
            raise ValueError(f"DataLoader: batch_size should be a positive integer value, but got "
                             f"batch_size={batch_size!r}")
        if sampler is None:
            if is_iterable:
                sampler = _InfiniteConstantSampler()
            elif shuffle:
                sampler = RandomSampler(dataset, generator=generator)
            else:
                sampler = SequentialSampler(dataset)
        if batch_size is not None and batch_sampler is None:
            batch_sampler = BatchSampler(sampler, int(batch_size), bool(drop_last))

        self.dataset = dataset
        self.num_workers = num_workers
        self.prefetch_factor = prefetch_factor
        self.pin_memory = bool(pin_memory)
        self.pin_memory_device = pin_memory_device
        self.timeout = timeout
        self.worker_init_fn = worker_init_fn
        self.multiprocessing_context = multiprocessing_context
        self.batch_size = None if batch_size is None else int(batch_size)
        self.drop_last = bool(drop_last)
        self.sampler = sampler
        self.batch_sampler = batch_sampler
        self.generator = generator
        self.in_order = in_order
        self._is_iterable = is_iterable
        if collate_fn is None:
            collate_fn = default_collate if self._auto_collation else default_convert
        self.collate_fn = collate_fn
        self.persistent_workers = bool(persistent_workers)
        self._iterator: Optional[_BaseDataLoaderIter] = None
        self.__initialized = True

    def __setattr__(self, name: str, value: Any) -> None:
        if self.__dict__.get("_DataLoader__initialized") and name in self._frozen_after_init:
            raise ValueError(f"DataLoader: {name} attribute should not be set after DataLoader is initialized")
        super().__setattr__(name, value)

    @property
    def _auto_collation(self) -> bool:
        return self.batch_sampler is not None

    @property
    def _index_sampler(self):
        return self.batch_sampler if self._auto_collation else self.sampler

    def _get_iterator(self) -> _BaseDataLoaderIter:
        if self.num_workers == 0:
            return _SingleProcessDataLoaderIter(self)
        return type(self).worker_iterator(self)

    def __iter__(self) -> _BaseDataLoaderIter:
        if self.persistent_workers and self.num_workers > 0:
            if self._iterator is None:
                self._iterator = self._get_iterator()
            else:
                self._iterator._reset(self)
            return self._iterator
        return self._get_iterator()

    def __len__(self) -> int:
        if self._is_iterable:
            length = len(self.dataset)  # type: ignore[arg-type] - a TypeError when the stream has no length
            if self.batch_size is not None:
                length = length // self.batch_size if self.drop_last else math.ceil(length / self.batch_size)
            return length
        return len(self._index_sampler)

    def __repr__(self) -> str:
        return (f"DataLoader(dataset={type(self.dataset).__name__}, batch_size={self.batch_size}, "
                f"num_workers={self.num_workers}, drop_last={self.drop_last})")


__all__ = ["DataLoader", "get_worker_info", "WorkerInfo"]
