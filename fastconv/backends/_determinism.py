"""``fastconv.backends.deterministic``: the same bits at any thread count and in every run.

Every kernel call plans its work for a number of partitions (image ranges of a convolution's
weight gradient, tile blocks of a Winograd one, row bands of a layer norm, GEMM panels) and sums
per-partition partials in partition order; teams of any size run those partitions. By default
the plans follow the thread count (``set_num_threads``), so results can differ in the last bits
between thread counts. In deterministic mode every plan is made for ``PARTITIONS`` partitions
whatever the thread count, so the same inputs give the same bits at 1, 2 or n threads, under any
load and in every run on this machine (different CPUs run different vector kernels). The cost
and the measurements are in docs/design.md §2.
"""
from __future__ import annotations

import os
import types

import numpy as np

from .._kernels import _omp

# Partitions of every plan in deterministic mode: this machine's CPU count (capped), so that the
# mode costs nothing at the default thread count of a whole machine and at most a few partial
# sums more below it. os.cpu_count, not the affinity mask: the same in every run.
PARTITIONS = max(1, min(os.cpu_count() or 1, 16))


def set_deterministic(on: bool) -> None:
    """Turn deterministic mode on or off for the whole process."""
    if not isinstance(on, (bool, np.bool_)):
        raise TypeError(f"fastconv.backends.deterministic: expected True or False, got {on!r}")
    _omp.set_deterministic_partitions(PARTITIONS if bool(on) else 0)


def is_deterministic() -> bool:
    """Whether deterministic mode is on."""
    return _omp.deterministic_partitions() > 0


class BackendsModule(types.ModuleType):
    """The class of the ``fastconv.backends`` module: ``deterministic`` reads and sets the mode
    the kernels' planners read (a C variable), so ``fc.backends.deterministic = True`` is an
    ordinary assignment that takes effect for every later call in every thread."""

    @property
    def deterministic(self) -> bool:
        return is_deterministic()

    @deterministic.setter
    def deterministic(self, on: bool) -> None:
        set_deterministic(on)
