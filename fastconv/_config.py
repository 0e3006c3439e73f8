"""One thread knob for OpenMP kernels and the BLAS pool; ``show_config`` for bug reports."""
from __future__ import annotations

import os
import platform
import sys

from . import _kernels
from ._kernels import _omp
from ._validation import check_int_limit
from ._kernels import gemm as _gemm

# ---- the BLAS the kernels call ------------------------------------------------------------------
# The kernels call the BLAS behind scipy.linalg.cython_blas from inside OpenMP regions (conv,
# Winograd, linear's GEMM panels), so that library must run single-threaded. Switching its thread
# count per call is not an option: raising it wakes OpenBLAS's pthreads workers, which then spin for
# milliseconds on the cores the OpenMP threads need (measured: a batch-1 conv forward went from
# ~30 µs to 2-4 ms). So when scipy ships its own BLAS (separate from numpy's, as in the wheels)
# fastconv keeps that library at one thread and leaves numpy's alone; only when numpy and scipy
# share one BLAS is it limited around each kernel call and restored.
_kernel_blas = None  # (controllers kept at one thread, controllers to limit and restore)
# For each pinned controller, (thread-count getter, controller): run_with_kernel_blas re-reads the
# thread count on every call, so a user's own threadpoolctl limits (or a direct openblas call) are
# undone before the next kernel runs. threadpoolctl's get_num_threads() costs ~0.45 µs a call;
# OpenBLAS's own getter through ctypes ~0.12 µs, so that one is used when it can be found.
_pinned_checks = ()


def _find_kernel_blas():
    global _kernel_blas
    import scipy.linalg.cython_blas  # noqa: F401  (the BLAS the kernels call must be loaded)
    from threadpoolctl import ThreadpoolController

    blas = [c for c in ThreadpoolController().lib_controllers if c.user_api == "blas"]
    # scipy's own copy (scipy.libs/ in the wheels); a system BLAS shared with numpy is not pinned
    scipy_only = [c for c in blas if "scipy" in c.filepath and "numpy" not in c.filepath]
    global _pinned_checks
    _pinned_checks = tuple((_thread_count_getter(c), c) for c in scipy_only)
    _kernel_blas = (scipy_only, []) if scipy_only else ([], blas)
    return _kernel_blas


def _thread_count_getter(controller):
    """A zero-argument function returning ``controller``'s thread count: OpenBLAS's own
    ``openblas_get_num_threads`` symbol (with the prefix/suffix scipy's copy uses), which is what
    threadpoolctl calls for a pthreads OpenBLAS, minus its per-call symbol lookup; otherwise (other
    BLAS, OpenMP-threaded OpenBLAS, symbol not found) the controller's ``get_num_threads``."""
    if controller.internal_api == "openblas" and getattr(controller, "threading_layer", None) != "openmp":
        dynlib = getattr(controller, "dynlib", None)
        for prefix in ("", "scipy_"):
            for suffix in ("", "64_", "_64"):
                getter = getattr(dynlib, f"{prefix}openblas_get_num_threads{suffix}", None)
                if getter is not None:
                    return getter
    return controller.get_num_threads


def run_with_kernel_blas(kernel, *args):
    """Run a kernel that calls BLAS inside a prange, with the kernels' BLAS at one thread."""
    _, shared = _kernel_blas or _find_kernel_blas()
    for get_threads, lib in _pinned_checks:
        if get_threads() != 1:
            lib.set_num_threads(1)
    if not shared:
        return kernel(*args)
    previous = [lib.get_num_threads() for lib in shared]
    for lib in shared:
        lib.set_num_threads(1)
    try:
        return kernel(*args)
    finally:
        for lib, n in zip(shared, previous):
            lib.set_num_threads(n)


def _default_threads() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        return os.cpu_count() or 1


def set_num_threads(n: int) -> None:
    """Use at most ``n`` threads, in every Python thread of the process (started before or after
    this call): the OpenMP kernels run at most ``n`` threads (their BLAS calls stay
    single-threaded inside them, see above) and every other BLAS pool (numpy's ``@``) gets ``n``."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"set_num_threads: expected a positive int, got {n!r}")
    check_int_limit(n, "set_num_threads", "n (the thread count)")
    pinned, _ = _kernel_blas or _find_kernel_blas()
    _omp.set_num_threads(n)
    for lib in (_kernel_blas_free_controllers(pinned)):
        lib.set_num_threads(n)
    for lib in pinned:
        lib.set_num_threads(1)


def _kernel_blas_free_controllers(pinned):
    """BLAS libraries other than the one the kernels keep single-threaded."""
    from threadpoolctl import ThreadpoolController

    keep = {c.filepath for c in pinned}
    return [c for c in ThreadpoolController().lib_controllers if c.user_api == "blas" and c.filepath not in keep]


def get_num_threads() -> int:
    """The most threads a kernel region uses, the same in every Python thread: the last
    ``set_num_threads``, else ``OMP_NUM_THREADS`` or the CPUs this process may use (1 when the
    kernels were built without OpenMP). Regions may use fewer: small ones, and while other
    processes keep CPUs busy (``config()["openmp_threads_now"]``; docs/design.md §2)."""
    return _omp.get_num_threads()


def plan_threads() -> int:
    """Threads a kernel call plans its work for (how many partitions and partial sums, which of
    two kernels): ``get_num_threads()``, or in deterministic mode (``fastconv.backends``) a fixed
    partition count, so that results do not depend on the thread count. Never the load: teams
    may be smaller than the plan, which changes no bit."""
    return _omp.get_max_threads()


# Element-wise kernels (fastconv/_kernels/elementwise.pyx) use every thread from this many elements
# on; below it one pass costs less than an OpenMP fork/join.
ELEMENTWISE_PARALLEL_MIN = 1 << 16


def elementwise_threads(size: int) -> int:
    """Threads for an element-wise kernel over ``size`` elements."""
    return get_num_threads() if size >= ELEMENTWISE_PARALLEL_MIN else 1


def config() -> dict:
    """Versions, BLAS and threading as a dict (what ``show_config`` prints)."""
    import numpy
    import scipy
    from threadpoolctl import threadpool_info

    from . import __version__

    import scipy.linalg  # noqa: F401  (loads the BLAS scipy links, so threadpoolctl sees it)

    blas = [
        {"name": i.get("internal_api"), "version": i.get("version"), "threads": i.get("num_threads"),
         "library": i.get("filepath")}
        for i in threadpool_info() if i.get("user_api") == "blas"
    ]
    return {
        "fastconv": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "openmp": _omp.openmp_enabled(),
        "openmp_threads": get_num_threads(),
        "openmp_wait": _kernels.OPENMP_WAIT_POLICY,
        "allocator": _kernels.ALLOCATOR_POLICY,
        "openmp_threads_now": min(get_num_threads(), _omp.load_cap()[0]),
        "other_cpus_busy": round(_omp.load_cap()[1], 2),
        "cpu_count": _default_threads(),
        "blas": blas,
        "sgemm": f"fastconv {_gemm.packed_sgemm_variant()}" if _gemm.packed_sgemm_available() else "BLAS",
        "tape": "compiled" if _is_extension(sys.modules[_engine_module]) else "Python",
    }


# The autograd engine stands for the tape modules setup.py compiles (TAPE_MODULES): they are built
# together, so one of them tells whether the install compiled them or runs their Python source.
_engine_module = "fastconv.autograd.engine"


def _is_extension(module) -> bool:
    """Whether ``module`` was loaded from a compiled extension (not from its .py source)."""
    from importlib.machinery import EXTENSION_SUFFIXES

    return str(getattr(module, "__file__", "")).endswith(tuple(EXTENSION_SUFFIXES))


def show_config() -> None:
    """Print version, BLAS (name, version, threads), OpenMP on/off and threads, numpy/scipy versions."""
    c = config()
    print(f"fastconv {c['fastconv']}  (python {c['python']}, {c['platform']})")
    print(f"numpy    {c['numpy']}")
    print(f"scipy    {c['scipy']}")
    print(f"OpenMP   {'on' if c['openmp'] else 'off (kernels built serially)'}, threads: {c['openmp_threads']}"
          f" (cpus available: {c['cpu_count']})")
    print(f"         now: {c['openmp_threads_now']} (other processes keep {c['other_cpus_busy']:.2f} CPUs busy);"
          f" wait policy: {c['openmp_wait']}")
    print(f"memory   large arrays: {c['allocator']}")
    print(f"sgemm    {c['sgemm']} (float32 products; float64 always on BLAS)")
    print(f"tape     {c['tape']} (autograd, Tensor and nn.functional modules)")
    if not c["blas"]:
        print("BLAS     not detected")
    for b in c["blas"]:
        print(f"BLAS     {b['name']} {b['version']}, threads: {b['threads']}  ({b['library']})")
