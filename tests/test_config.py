"""Threads and show_config: one knob for OpenMP and BLAS; the report names what is in use."""
import os
import sys

import pytest
from _subprocess import run
from threadpoolctl import threadpool_info

import fastconv as fc
from fastconv._kernels import _omp


def blas_threads():
    import scipy.linalg  # noqa: F401  (load scipy's BLAS too)

    return {i["filepath"]: i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}


def test_set_num_threads_sets_openmp_and_blas():
    before = fc.get_num_threads()
    try:
        fc.set_num_threads(1)
        assert fc.get_num_threads() == 1
        assert set(blas_threads().values()) == {1}
        if _omp.openmp_enabled():
            assert _omp.get_max_threads() == 1
            fc.set_num_threads(2)
            assert _omp.get_max_threads() == 2 and fc.get_num_threads() == 2
    finally:
        fc.set_num_threads(before)


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True])
def test_set_num_threads_rejects_bad_values(bad):
    with pytest.raises(ValueError, match="set_num_threads: expected a positive int"):
        fc.set_num_threads(bad)


def test_show_config_reports_versions_openmp_and_blas(capsys):
    import numpy
    import scipy

    fc.show_config()
    out = capsys.readouterr().out
    assert f"fastconv {fc.__version__}" in out
    assert f"numpy    {numpy.__version__}" in out and f"scipy    {scipy.__version__}" in out
    assert ("OpenMP   on" if _omp.openmp_enabled() else "OpenMP   off") in out
    assert "BLAS     openblas" in out or "BLAS" in out
    cfg = fc.config()
    assert cfg["openmp"] == _omp.openmp_enabled() and cfg["openmp_threads"] == fc.get_num_threads()
    assert f"sgemm    {cfg['sgemm']}" in out


@pytest.mark.skipif(not os.path.exists("/proc/cpuinfo"), reason="CPU flags read from /proc/cpuinfo")
def test_packed_sgemm_variant_follows_the_cpu_flags():
    with open("/proc/cpuinfo") as f:
        flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    expected = ("fastconv AVX-512" if "avx512f" in flags
                else "fastconv AVX2" if {"avx2", "fma"} <= set(flags) else "BLAS")
    assert fc.config()["sgemm"] == expected


def test_import_is_lightweight():
    """The core imports numpy, scipy, threadpoolctl and tqdm only: no optional extra is loaded."""
    code = ("import sys, fastconv, fastconv.viz, fastconv.profile, fastconv.pretrain; bad = [m for m in ('torch', 'matplotlib', 'sklearn', 'mpi4py') "
            "if m in sys.modules]; print(bad)")
    out = run([sys.executable, "-c", code], timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_import_leaves_heavy_packages_for_first_use():
    """``import fastconv`` loads scipy's BLAS extension for the kernels without the rest of
    scipy.linalg, and imports vision, inference and onnx only when first used; all still work."""
    code = ("import sys, numpy as np, fastconv as fc\n"
            "unloaded = [m for m in ('scipy.linalg', 'fastconv.vision', 'fastconv.inference', 'fastconv.onnx') "
            "if m not in sys.modules]\n"
            "rng = np.random.default_rng(0); x = rng.standard_normal((2, 8, 9, 9)); w = rng.standard_normal((16, 8, 3, 3))\n"
            "y = fc.nn.functional.conv2d(fc.tensor(x), fc.tensor(w)).numpy()\n"  # float64: the kernels call scipy's dgemm
            "windows = np.lib.stride_tricks.sliding_window_view(x, (3, 3), axis=(2, 3))\n"
            "assert np.allclose(y, np.einsum('nchwij,kcij->nkhw', windows, w))\n"
            "import scipy.linalg\n"
            "from scipy.linalg import cython_blas\n"
            "assert cython_blas is sys.modules['scipy.linalg.cython_blas'] and scipy.linalg.lu is not None\n"
            "assert fc.vision.models.resnet20 and fc.inference.compile\n"
            "print(unloaded)")
    out = run([sys.executable, "-c", code], timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['scipy.linalg', 'fastconv.vision', 'fastconv.inference', 'fastconv.onnx']"


def _compiled_twins():
    """(dotted name, extension path, source path) of every module installed both as a compiled
    extension and as the .py it was compiled from (the tape modules setup.py lists)."""
    from importlib.machinery import EXTENSION_SUFFIXES

    root = os.path.dirname(fc.__file__)
    twins = []
    for folder, _, files in os.walk(root):
        for name in files:
            suffix = next((s for s in EXTENSION_SUFFIXES if name.endswith(s)), None)
            source = os.path.join(folder, name[: -len(suffix)] + ".py") if suffix else None
            if source and os.path.exists(source):
                rel = os.path.relpath(source, os.path.dirname(root))[:-3]
                twins.append((rel.replace(os.sep, "."), os.path.join(folder, name), source))
    return twins


def test_tape_modules_run_compiled_and_current():
    import importlib

    names = {name for name, _, _ in _compiled_twins()}
    assert {"fastconv.tensor", "fastconv.autograd.engine", "fastconv.autograd.function",
            "fastconv.nn.functional.conv.function", "fastconv.nn.functional.conv.planner"} <= names
    assert fc.config()["tape"] == "compiled"
    for name, extension, source in _compiled_twins():
        assert importlib.import_module(name).__file__ == extension, name
        # in a source checkout (setup.py beside the package: an in-place build), an edit of the
        # source after the build would leave a stale extension running instead of the edit
        if os.path.exists(os.path.join(os.path.dirname(os.path.dirname(fc.__file__)), "setup.py")):
            assert os.path.getmtime(extension) >= os.path.getmtime(source), (
                f"{extension} is older than {source}: rebuild (python setup.py build_ext --inplace)")
