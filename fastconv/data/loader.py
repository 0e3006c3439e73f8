"""``DataLoader``: batches of numpy arrays from a dataset, reproducible across epochs and resumes.

Randomness is a pure function of ``(seed, epoch, batch number)``: the shuffle order of an epoch comes
from ``(seed, epoch)`` and each batch's augmentation generator from ``(seed, epoch, batch)``. So a
run resumed from ``state_dict()`` (even mid-epoch) sees exactly the batches the uninterrupted run
would have seen. The order comes from ``fastconv.utils.data``'s samplers (a RandomSampler driven by
the epoch's generator, a SequentialSampler, or the sampler given), grouped by its BatchSampler;
samples are stacked by its collation with numpy leaves (PyTorch-style loading with Tensor batches
is ``fastconv.utils.data.DataLoader``).
"""
from __future__ import annotations

import itertools
from typing import Callable, Dict, Iterable, Iterator, Optional, Tuple

import numpy as np

from ..random import get_generator
from ..utils.data.sampler import BatchSampler, RandomSampler, SequentialSampler
from .datasets import _collate
from .transforms import apply_transform

__all__ = ["DataLoader"]

_ORDER, _AUGMENT = 0, 1  # stream tags in the seed sequence


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"DataLoader: expected {name} as a positive int, got {value!r}")
    return int(value)


def _seed_value(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"DataLoader: expected {name} as a non-negative int, got {value!r}")
    return int(value)


class DataLoader:
    """Iterate over ``dataset`` in batches of ``(x, y)`` numpy arrays.

    shuffle: a new permutation every epoch, drawn from ``(seed, epoch)``; ``seed=None`` draws a seed
        from fastconv's global generator at construction (so ``fastconv.manual_seed`` fixes it).
    sampler: any iterable of dataset indices with ``__len__`` (e.g. a distributed sampler); it
        replaces ``shuffle``. If it has ``set_epoch``, the loader calls it at the start of each epoch.
    transform: a batch transform (see ``fastconv.data.transforms``) applied to the inputs after the
        dataset's own transform; random transforms get a generator derived from (seed, epoch, batch).

    Each ``iter(loader)`` starts the next epoch; ``set_epoch(e)`` chooses the epoch explicitly.
    """

    def __init__(self, dataset, batch_size: int = 1, shuffle: bool = False, drop_last: bool = False,
                 seed: Optional[int] = None, transform: Optional[Callable] = None,
                 sampler: Optional[Iterable[int]] = None):
        if not hasattr(dataset, "__len__") or not hasattr(dataset, "__getitem__"):
            raise TypeError(f"DataLoader: expected a dataset with __len__ and __getitem__, got {type(dataset).__name__}")
        if sampler is not None:
            if shuffle:
                raise ValueError("DataLoader: sampler and shuffle=True are mutually exclusive "
                                 "(the sampler decides the order)")
            if not hasattr(sampler, "__iter__") or not hasattr(sampler, "__len__"):
                raise TypeError(f"DataLoader: expected a sampler that is iterable and has __len__, "
                                f"got {type(sampler).__name__}")
        if transform is not None and not callable(transform):
            raise TypeError(f"DataLoader: expected a callable transform, got {type(transform).__name__}")
        self.dataset = dataset
        self.batch_size = _positive_int(batch_size, "batch_size")
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.sampler = sampler
        self.transform = transform
        self.seed = int(get_generator().integers(2 ** 63)) if seed is None else _seed_value(seed, "seed")
        self._epoch = 0            # epoch the next iter() starts
        self._skip = 0             # batches of that epoch already consumed (set by load_state_dict)
        self._progress = None      # [epoch, batches yielded, finished] of the latest iterator

    # -- sizes ---------------------------------------------------------------------------------
    def _num_samples(self) -> int:
        return len(self.sampler) if self.sampler is not None else len(self.dataset)

    def __len__(self) -> int:
        """Number of batches per epoch."""
        n = self._num_samples()
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    # -- epochs and state ------------------------------------------------------------------------
    @property
    def epoch(self) -> int:
        """The epoch the next ``iter(loader)`` will produce."""
        return self._epoch

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration produce epoch ``epoch`` (forwarded to the sampler if it has set_epoch)."""
        self._epoch = _seed_value(epoch, "epoch")
        self._skip = 0
        self._progress = None
        if self.sampler is not None and hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(self._epoch)

    def state_dict(self) -> Dict[str, int]:
        """Plain numbers: the seed, the epoch in progress (or next), and batches already yielded in it."""
        p = self._progress
        if p is not None and not p[2]:
            epoch, done = p[0], p[1]
        else:
            epoch, done = self._epoch, self._skip
        if done >= len(self) > 0:  # every batch handed out: the epoch is over
            epoch, done = epoch + 1, 0
        return {"seed": self.seed, "epoch": epoch, "batches_done": done}

    def load_state_dict(self, state: Dict[str, int]) -> None:
        """Resume: the next iteration continues epoch ``state['epoch']`` after ``batches_done`` batches."""
        if not isinstance(state, dict):
            raise TypeError(f"DataLoader.load_state_dict: expected a dict, got {type(state).__name__}")
        missing = {"seed", "epoch", "batches_done"} - set(state)
        if missing:
            raise ValueError(f"DataLoader.load_state_dict: missing keys {sorted(missing)} in {sorted(state)}")
        seed = _seed_value(state["seed"], "state['seed']")
        epoch = _seed_value(state["epoch"], "state['epoch']")
        done = _seed_value(state["batches_done"], "state['batches_done']")
        if done > len(self):
            raise ValueError(f"DataLoader.load_state_dict: batches_done={done} exceeds the {len(self)} batches per epoch")
        if done == len(self) > 0:
            epoch, done = epoch + 1, 0
        self.seed = seed
        self.set_epoch(epoch)
        self._skip = done

    # -- iteration -------------------------------------------------------------------------------
    def _epoch_sampler(self, epoch: int):
        """The sampler giving epoch ``epoch``'s order (a shuffle drawn from ``(seed, epoch)``)."""
        if self.sampler is not None:
            if hasattr(self.sampler, "set_epoch"):
                self.sampler.set_epoch(epoch)
            return self.sampler
        if self.shuffle:
            return RandomSampler(self.dataset, generator=np.random.default_rng([self.seed, epoch, _ORDER]))
        return SequentialSampler(self.dataset)

    def _epoch_indices(self, epoch: int) -> np.ndarray:
        try:
            return np.fromiter((int(i) for i in self._epoch_sampler(epoch)), dtype=np.int64)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"DataLoader: the sampler must yield integer indices ({exc})") from exc

    def _fetch(self, indices: np.ndarray, rng: np.random.Generator) -> Tuple[np.ndarray, ...]:
        if callable(getattr(self.dataset, "get_batch", None)):
            batch = tuple(self.dataset.get_batch(indices, rng))
        elif callable(getattr(self.dataset, "__getitems__", None)):  # e.g. fastconv.utils.data datasets
            batch = _collate(self.dataset.__getitems__(indices.tolist()), "DataLoader")
        else:
            batch = _collate([self.dataset[int(i)] for i in indices], "DataLoader")
        if self.transform is not None:
            batch = (apply_transform(self.transform, batch[0], rng),) + tuple(batch[1:])
        return batch

    def __iter__(self) -> Iterator[Tuple[np.ndarray, ...]]:
        epoch, skip = self._epoch, self._skip
        self._epoch, self._skip = epoch + 1, 0
        progress = [epoch, skip, False]
        self._progress = progress
        return self._batches(self._epoch_indices(epoch), epoch, skip, progress)

    def _batches(self, order: np.ndarray, epoch: int, skip: int, progress: list):
        batches = BatchSampler(order, self.batch_size, self.drop_last)
        for number, indices in enumerate(itertools.islice(iter(batches), skip, None), start=skip):
            rng = np.random.default_rng([self.seed, epoch, _AUGMENT, number])
            batch = self._fetch(np.asarray(indices, dtype=np.int64), rng)
            progress[1] = number + 1
            yield batch
        progress[2] = True

    def __repr__(self) -> str:
        return (f"DataLoader({self.dataset!r}, batch_size={self.batch_size}, shuffle={self.shuffle}, "
                f"drop_last={self.drop_last}, seed={self.seed}, batches={len(self)})")
