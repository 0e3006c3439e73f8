"""Compiled Cython/OpenMP kernels. Private: they trust their inputs; validate in Python first.

The OpenMP runtime is loaded here, before any kernel module, so that its wait policy is
fastconv's (``_openmp_env``).
"""
from ._openmp_env import load_kernels_runtime

OPENMP_WAIT_POLICY = load_kernels_runtime()
