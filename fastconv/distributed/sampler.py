"""``DistributedSampler``: each rank iterates over its own disjoint shard of a dataset (PyTorch's rule)."""
from __future__ import annotations

import math
from typing import Iterator, Optional

import numpy as np

from ..utils.data.sampler import Sampler
from . import _comm


def _check_int(name: str, value, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"DistributedSampler: {name} must be an int, got {type(value).__name__}")
    if value < low:
        raise ValueError(f"DistributedSampler: {name} must be >= {low}, got {value}")
    return int(value)


class DistributedSampler(Sampler[int]):
    """Indices of ``dataset`` for one rank: ``num_replicas`` disjoint shards of equal length.

    Every epoch the indices are permuted with a generator seeded by ``(seed, epoch)`` (the same
    on every rank, so shards stay disjoint; call ``set_epoch`` each epoch to reshuffle — fit's
    DataLoader does). Rank ``r`` takes positions ``r, r + p, r + 2p, ...``. When the length is
    not divisible by ``p``, the list is padded by repeating indices from its start so all ranks
    take the same number of steps (a few samples count twice per epoch), or with
    ``drop_last=True`` the tail is dropped instead. Defaults come from the MPI job.
    """

    def __init__(self, dataset, num_replicas: Optional[int] = None, rank: Optional[int] = None,
                 shuffle: bool = True, seed: int = 0, drop_last: bool = False) -> None:
        try:
            n = len(dataset)
        except TypeError:
            raise TypeError(f"DistributedSampler: dataset must have a length, got "
                            f"{type(dataset).__name__}") from None
        num_replicas = _comm.world_size() if num_replicas is None else _check_int("num_replicas", num_replicas, 1)
        rank = _comm.rank() if rank is None else _check_int("rank", rank, 0)
        if rank >= num_replicas:
            raise ValueError(f"DistributedSampler: rank must be < num_replicas ({num_replicas}), got {rank}")
        if drop_last and n < num_replicas:
            raise ValueError(f"DistributedSampler: drop_last=True needs at least num_replicas "
                             f"({num_replicas}) samples, dataset has {n}")
        self.dataset = dataset
        self.num_replicas = num_replicas
        self.rank = rank
        self.shuffle = bool(shuffle)
        self.seed = _check_int("seed", seed, 0)
        self.drop_last = bool(drop_last)
        self.epoch = 0
        self.num_samples = n // num_replicas if drop_last else math.ceil(n / num_replicas)
        self.total_size = self.num_samples * num_replicas

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch's permutation (identical on every rank)."""
        self.epoch = _check_int("epoch", epoch, 0)

    def indices(self) -> np.ndarray:
        """This rank's indices for the current epoch as an int64 array."""
        n = len(self.dataset)
        if self.shuffle:
            rng = np.random.default_rng(np.random.SeedSequence([self.seed, self.epoch]))
            order = rng.permutation(n)
        else:
            order = np.arange(n)
        if self.total_size > n:
            order = np.resize(order, self.total_size)  # repeats from the start
        else:
            order = order[:self.total_size]
        return order[self.rank:self.total_size:self.num_replicas].astype(np.int64, copy=False)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices().tolist())

    def __len__(self) -> int:
        return self.num_samples

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "seed": self.seed}

    def load_state_dict(self, state: dict) -> None:
        self.set_epoch(int(state["epoch"]))
        self.seed = _check_int("seed", int(state["seed"]), 0)

    def __repr__(self) -> str:
        return (f"DistributedSampler(num_samples={self.num_samples}, num_replicas={self.num_replicas}, "
                f"rank={self.rank}, shuffle={self.shuffle}, seed={self.seed}, drop_last={self.drop_last})")
