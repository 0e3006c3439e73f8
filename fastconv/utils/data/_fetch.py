"""What a DataLoader iteration is made of, shared by the main process and the worker processes:
``WorkerInfo`` / ``get_worker_info``, the fetchers (a batch of indices → collated batch; an
IterableDataset's stream → batches) and the base iterator (one epoch over the sampler)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Optional

if TYPE_CHECKING:  # annotations only
    from .dataloader import DataLoader


class WorkerInfo:
    """What a worker knows about itself: ``id``, ``num_workers``, ``seed``, ``dataset`` (read-only)."""

    __slots__ = ("id", "num_workers", "seed", "dataset", "_frozen")

    def __init__(self, id: int, num_workers: int, seed: int, dataset) -> None:
        for name, value in (("id", id), ("num_workers", num_workers), ("seed", seed), ("dataset", dataset)):
            object.__setattr__(self, name, value)
        object.__setattr__(self, "_frozen", True)

    def __setattr__(self, name: str, value) -> None:
        raise RuntimeError(f"WorkerInfo: cannot assign attributes ({name}) of a worker's info")

    def __repr__(self) -> str:
        return f"WorkerInfo(id={self.id}, num_workers={self.num_workers}, seed={self.seed}, dataset={self.dataset!r})"


_current_worker: Optional[WorkerInfo] = None


def get_worker_info() -> Optional[WorkerInfo]:
    """The ``WorkerInfo`` of the worker running this code, or None in the main process (a worker
    process sets it once, at its start)."""
    return _current_worker


# ---- fetching --------------------------------------------------------------------------------------
class _MapFetcher:
    def __init__(self, dataset, auto_collation: bool, collate_fn: Callable, drop_last: bool) -> None:
        self.dataset, self.auto_collation, self.collate_fn = dataset, auto_collation, collate_fn
        fetch_many = getattr(dataset, "__getitems__", None)
        self.fetch_many = fetch_many if callable(fetch_many) else None

    def fetch(self, index):
        if self.auto_collation:
            if self.fetch_many is not None:
                data = self.fetch_many(index)
            else:
                data = [self.dataset[i] for i in index]
        else:
            data = self.dataset[index]
        return self.collate_fn(data)


class _IterableFetcher:
    def __init__(self, dataset, auto_collation: bool, collate_fn: Callable, drop_last: bool) -> None:
        self.auto_collation, self.collate_fn, self.drop_last = auto_collation, collate_fn, drop_last
        self.dataset_iter = iter(dataset)
        self.ended = False

    def fetch(self, batch_slots):
        if self.ended:
            raise StopIteration
        if self.auto_collation:
            data = []
            for _ in batch_slots:
                try:
                    data.append(next(self.dataset_iter))
                except StopIteration:
                    self.ended = True
                    break
            if not data or (self.drop_last and len(data) < len(batch_slots)):
                raise StopIteration
        else:
            data = next(self.dataset_iter)
        return self.collate_fn(data)


# ---- iterators ----------------------------------------------------------------------------------------
class _BaseDataLoaderIter:
    """One pass over the loader (an epoch): ``next()`` gives the next batch."""

    def __init__(self, loader: "DataLoader") -> None:
        self._dataset = loader.dataset
        self._auto_collation = loader._auto_collation
        self._drop_last = loader.drop_last
        self._index_sampler = loader._index_sampler
        self._collate_fn = loader.collate_fn
        self._is_iterable = loader._is_iterable
        self._loader = loader
        self._sampler_iter = iter(self._index_sampler)
        self._num_yielded = 0
        self._fetcher = None

    def _new_fetcher(self):
        kind = _IterableFetcher if self._is_iterable else _MapFetcher
        return kind(self._dataset, self._auto_collation, self._collate_fn, self._drop_last)

    def _reset(self, loader: "DataLoader", first_iter: bool = False) -> None:
        """Start another epoch (persistent iterators are reused instead of rebuilt)."""
        self._sampler_iter = iter(self._index_sampler)
        self._num_yielded = 0
        self._fetcher = None

    def __iter__(self) -> "_BaseDataLoaderIter":
        return self

    def __len__(self) -> int:
        return len(self._loader)

    def _next_batch(self):
        if self._fetcher is None:
            self._fetcher = self._new_fetcher()
        return self._fetcher.fetch(next(self._sampler_iter))

    def __next__(self):
        data = self._next_batch()
        self._num_yielded += 1
        return data


class _SingleProcessDataLoaderIter(_BaseDataLoaderIter):
    """``num_workers=0``: the main process fetches each batch when asked."""


__all__ = ["WorkerInfo", "get_worker_info"]
