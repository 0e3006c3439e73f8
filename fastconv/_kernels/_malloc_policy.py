"""The C allocator's policy for large arrays, set once at import (glibc only).

glibc serves an allocation above its mmap threshold with a fresh ``mmap`` and returns it with
``munmap`` when freed, and trims the heap's free top above its trim threshold. A training step
allocates and frees activations and gradients of megabytes each time, so every step paid page
faults on fresh pages again: the demo network's batch-64 step spent over a third of its time
there on 1 thread, and at 2 threads the two threads' faults wait on each other. fastconv keeps
those pages in the process instead: M_MMAP_THRESHOLD = MMAP_THRESHOLD (glibc's largest) and
M_TRIM_THRESHOLD = TRIM_THRESHOLD, unless the user chose a policy (``MALLOC_MMAP_THRESHOLD_``,
``MALLOC_TRIM_THRESHOLD_``, ``GLIBC_TUNABLES`` with a ``glibc.malloc`` setting) or turned this off
with ``FASTCONV_ALLOCATOR_TUNING=0``. The cost: up to TRIM_THRESHOLD of freed memory stays
mapped after a large step (what PyTorch users get from jemalloc or tcmalloc). Measurements:
docs/design.md §2.
"""
from __future__ import annotations

import ctypes
import os
import sys

MMAP_THRESHOLD = 32 << 20   # glibc's upper bound for M_MMAP_THRESHOLD on 64-bit
TRIM_THRESHOLD = 256 << 20
_M_TRIM_THRESHOLD = -1      # mallopt parameters (malloc.h)
_M_MMAP_THRESHOLD = -3
USER_VARIABLES = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")


def _user_policy() -> str:
    """The allocator settings the user made, as text ('' when none)."""
    chosen = [f"{name}={os.environ[name]}" for name in USER_VARIABLES if name in os.environ]
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    if "glibc.malloc." in tunables:
        chosen.append(f"GLIBC_TUNABLES={tunables}")
    return ", ".join(chosen)


def tune_allocator() -> str:
    """Apply the policy above where it applies; returns a description of the policy in effect."""
    if os.environ.get("FASTCONV_ALLOCATOR_TUNING", "1").strip() == "0":
        return "the C library's defaults (FASTCONV_ALLOCATOR_TUNING=0)"
    user = _user_policy()
    if user:
        return f"{user} (set by the user)"
    if not sys.platform.startswith("linux"):
        return "the C library's defaults (not Linux)"
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # glibc's; musl and others lack it (and mallopt's parameters)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return "the C library's defaults (not glibc)"
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    if not (mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)):
        return "the C library's defaults (mallopt refused)"
    return (f"mmap threshold {MMAP_THRESHOLD >> 20} MiB, trim threshold {TRIM_THRESHOLD >> 20} MiB "
            "(set by fastconv)")
