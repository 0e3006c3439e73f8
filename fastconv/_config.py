"""One thread knob for OpenMP kernels and the BLAS pool; ``show_config`` for bug reports."""
from __future__ import annotations

import os
import platform
import sys

from ._kernels import _omp

_num_threads = None


def _default_threads() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        return os.cpu_count() or 1


def set_num_threads(n: int) -> None:
    """Use ``n`` threads in the OpenMP kernels and in BLAS (via threadpoolctl)."""
    global _num_threads
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"set_num_threads: expected a positive int, got {n!r}")
    from threadpoolctl import threadpool_limits

    _omp.set_num_threads(n)
    threadpool_limits(limits=n, user_api="blas")
    _num_threads = n


def get_num_threads() -> int:
    """Threads used by the kernels (the machine's cores unless set)."""
    return _num_threads if _num_threads is not None else (_omp.get_max_threads() if _omp.openmp_enabled() else 1)


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
        "cpu_count": _default_threads(),
        "blas": blas,
    }


def show_config() -> None:
    """Print version, BLAS (name, version, threads), OpenMP on/off and threads, numpy/scipy versions."""
    c = config()
    print(f"fastconv {c['fastconv']}  (python {c['python']}, {c['platform']})")
    print(f"numpy    {c['numpy']}")
    print(f"scipy    {c['scipy']}")
    print(f"OpenMP   {'on' if c['openmp'] else 'off (kernels built serially)'}, threads: {c['openmp_threads']}"
          f" (cpus available: {c['cpu_count']})")
    if not c["blas"]:
        print("BLAS     not detected")
    for b in c["blas"]:
        print(f"BLAS     {b['name']} {b['version']}, threads: {b['threads']}  ({b['library']})")
