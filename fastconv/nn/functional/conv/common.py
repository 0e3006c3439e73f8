"""Helpers every convolution path shares: thread counts, memoized plans, scratch buffers."""
from __future__ import annotations

import functools

import numpy as np

from ...._kernels import _omp

# Below this many flops per thread a parallel region costs more than it saves: run serially.
MIN_FLOPS_PER_THREAD = 1e6
# Largest column buffer per thread, in elements: bounds memory for large images and keeps the
# buffer near the caches; row blocks of the output are processed one at a time beyond it.
COLUMN_BLOCK_ELEMENTS = 1 << 18
# Elements of the Winograd transformed tiles of one block (V and M together) per thread: like
# COLUMN_BLOCK_ELEMENTS, bounds memory and keeps a block near the caches (docs/design.md §3).
WINOGRAD_BLOCK_ELEMENTS = 1 << 19
# Whether a parallel Winograd forward over few blocks splits the output channels between the
# threads instead (path_winograd.channel_parts); a switch so tests compare both schemes.
WINOGRAD_SPLIT_CHANNELS = True

_PLAN_CACHE_SIZE = 512


def tunables():
    """The thread count and the tunables every memoized plan reads (tests change them)."""
    return (_omp.get_max_threads(), MIN_FLOPS_PER_THREAD, COLUMN_BLOCK_ELEMENTS, WINOGRAD_BLOCK_ELEMENTS,
            WINOGRAD_SPLIT_CHANNELS)


def memoized_plan(plan):
    """Memoize a planning function on its arguments, the thread count and the tunables.

    Plans are pure functions of shapes and these settings, and a training loop asks for the same
    few every step: computing one in Python costs several µs per kernel call, which matters at
    batch 1."""
    cache = {}

    @functools.wraps(plan)
    def planned(*args, **kwargs):
        key = (args, tuple(kwargs.items()), tunables())
        try:
            return cache[key]
        except KeyError:
            pass
        except TypeError:  # unhashable arguments (shapes given as lists): plan without the cache
            return plan(*args, **kwargs)
        if len(cache) >= _PLAN_CACHE_SIZE:
            cache.clear()
        result = cache[key] = plan(*args, **kwargs)
        return result

    planned.cache = cache
    return planned


def threads_for(flops: float, flop_cost: float = 1.0) -> int:
    """OpenMP threads worth using for a kernel call of ``flops`` multiply-adds×2, each taking
    ``flop_cost`` times a dense GEMM flop's time (memory-bound loops: above 1)."""
    threads = _omp.get_max_threads()
    work = flops * flop_cost
    if threads > 1 and work < MIN_FLOPS_PER_THREAD * threads:
        return max(1, int(work // MIN_FLOPS_PER_THREAD))
    return threads


def work_buffer(threads: int, elements: int, dtype) -> np.ndarray:
    return np.empty((max(threads, 1), max(elements, 1)), dtype=dtype)


_DUMMIES: dict = {}


def dummy(dtype, ndim: int) -> np.ndarray:
    """A zero-size array standing in for an argument a kernel will not read (one per dtype and
    rank)."""
    key = (dtype, ndim)
    array = _DUMMIES.get(key)
    if array is None:
        array = _DUMMIES[key] = np.empty((0,) * ndim, dtype=dtype)
    return array


def contiguous(a: np.ndarray) -> np.ndarray:
    return a if a.flags.c_contiguous else np.ascontiguousarray(a)
