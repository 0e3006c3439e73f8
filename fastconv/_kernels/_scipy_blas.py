"""Load ``scipy.linalg.cython_blas`` on its own, without running ``scipy/linalg/__init__.py``.

The kernels ``cimport`` BLAS from that module, so Cython imports it when a kernel module loads.
Imported the usual way it first runs the ``scipy.linalg`` package, which pulls in most of SciPy's
Python (its array-API layer, ``numpy.f2py``, ``numpy.testing``): about 0.2 s, most of
``import fastconv``. The extension itself is self-contained, so it is loaded from its file under
its own name and registered in ``sys.modules``, where Cython's import finds it. A later
``import scipy.linalg`` works as usual and ``from scipy.linalg import cython_blas`` gets this same
module; only the attribute ``scipy.linalg.cython_blas`` is missing until something imports it
through the package.
"""
from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys

NAME = "scipy.linalg.cython_blas"


def _extension_file(folder: str) -> str | None:
    """Path of the ``cython_blas`` extension in ``folder`` (None when there is none)."""
    try:
        names = os.listdir(folder)
    except OSError:
        return None
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        if "cython_blas" + suffix in names:
            return os.path.join(folder, "cython_blas" + suffix)
    return None


def preload_cython_blas() -> None:
    """Register ``scipy.linalg.cython_blas`` before any kernel module loads; fall back to the usual
    import when scipy's layout is not the one expected (the import then just costs more)."""
    if NAME in sys.modules:
        return
    import scipy  # the top-level package is light; its DLL set-up (Windows wheels) must run first

    path = next(filter(None, (_extension_file(os.path.join(p, "linalg")) for p in scipy.__path__)), None)
    if path is None:
        return
    spec = importlib.util.spec_from_file_location(NAME, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[NAME] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[NAME]
        raise
