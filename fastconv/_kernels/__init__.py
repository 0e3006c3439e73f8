"""Compiled Cython/OpenMP kernels. Private: they trust their inputs; validate in Python first.

The OpenMP runtime is loaded here, before any kernel module, so that its wait policy is
fastconv's (``_openmp_env``); so is the BLAS the kernels cimport, without the rest of
``scipy.linalg`` (``_scipy_blas``). The C allocator keeps large arrays' pages between steps
(``_malloc_policy``).
"""
from ._malloc_policy import tune_allocator
from ._openmp_env import load_kernels_runtime
from ._scipy_blas import preload_cython_blas

ALLOCATOR_POLICY = tune_allocator()
OPENMP_WAIT_POLICY = load_kernels_runtime()
preload_cython_blas()
