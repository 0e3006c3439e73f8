"""The wait policy of the kernels' OpenMP threads, set before libgomp is loaded.

libgomp reads its environment once, when it is loaded. By default an idle worker spins for
GOMP_SPINCOUNT = 300,000 iterations (about 15 ms on a Zen 4 core, whose ``pause`` takes ~50 ns)
after each parallel region before it sleeps: on a machine where another process needs that core
the spinning worker loses its turn, and the next region waits for it for milliseconds. fastconv
sets a bounded spin (SPINCOUNT, ~0.5 ms there) unless the user chose a policy
(``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT``), loads libgomp with it, and takes the variable out of
the environment again so that child processes do not inherit it. It cannot apply when libgomp
was loaded before fastconv (e.g. ``import torch`` first: torch ships a libgomp.so.1 that the
kernels then share); ``fastconv.config()["openmp_wait"]`` says which policy is in effect.
Measurements: docs/design.md §2.
"""
from __future__ import annotations

import os

SPINCOUNT = "10000"
USER_VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")


def _libgomp_loaded():
    """Whether a libgomp.so is mapped into this process (None where /proc/self/maps is missing)."""
    try:
        with open("/proc/self/maps") as maps:
            return any("/libgomp.so" in line for line in maps)
    except OSError:
        return None


def load_kernels_runtime() -> str:
    """Import the OpenMP runtime module (loading libgomp) under fastconv's wait policy; returns
    a description of the policy in effect."""
    user = [f"{name}={os.environ[name]}" for name in USER_VARIABLES if name in os.environ]
    preloaded = _libgomp_loaded()
    ours = not user and not preloaded
    if ours:
        os.environ["GOMP_SPINCOUNT"] = SPINCOUNT
    try:
        from . import _omp  # libgomp reads its environment now, once
    finally:
        if ours:
            del os.environ["GOMP_SPINCOUNT"]
    if not _omp.openmp_enabled():
        return "none (kernels built without OpenMP)"
    if user:
        return f"{', '.join(user)} (set by the user)"
    if preloaded:
        return "the defaults of a libgomp loaded before fastconv"
    if _libgomp_loaded() is False:
        return "the OpenMP runtime's own (not libgomp)"
    return f"GOMP_SPINCOUNT={SPINCOUNT} (set by fastconv)"
