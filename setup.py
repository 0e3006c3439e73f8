"""Build the Cython kernels with -O3 and OpenMP (serially when the compiler lacks OpenMP), and
compile the autograd tape's plain-Python modules.

Every ``fastconv/_kernels/*.pyx`` becomes one extension module. ``FASTCONV_NO_OPENMP=1``
forces a serial build (used to test the fallback); ``FASTCONV_KERNELS=conv,pool`` limits
a development build to some kernels (``tape`` names the compiled tape modules).

The tape modules (TAPE_MODULES) stay plain Python source; Cython compiles them unchanged, with
Python's semantics kept (no unchecked indexing), because every op pays their per-call cost:
compiled, a batch-1 convolution's forward+backward spends ~2 µs less of its ~10 µs of Python
(docs/design.md §6). An extension module is imported in preference to the .py beside it.
"""
import glob
import os
import shutil
import tempfile

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

OPENMP_FLAG = "-fopenmp"
KERNEL_DIR = os.path.join("fastconv", "_kernels")
TAPE_MODULES = ([os.path.join("fastconv", name) for name in ("tensor.py", "_tensor_ops.py", "_index_ops.py",
                                                             "_promotion.py", "_validation.py")]
                + [os.path.join("fastconv", "autograd", name) for name in
                   ("function.py", "engine.py", "grad_mode.py")]
                + [path for pattern in ("*.py", os.path.join("conv", "*.py"))
                   for path in sorted(glob.glob(os.path.join("fastconv", "nn", "functional", pattern)))
                   if not path.endswith("__init__.py")])
# Python's semantics: annotations are not types (Cython would otherwise coerce an ``int``-annotated
# 3.0 instead of letting the op reject it), indexing checked and wrapping.
TAPE_DIRECTIVES = {"language_level": "3", "annotation_typing": False}
DIRECTIVES = {
    "language_level": "3",
    "boundscheck": False,
    "wraparound": False,
    "cdivision": True,
    "initializedcheck": False,
    "nonecheck": False,
}


def compiler_has_openmp(compiler) -> bool:
    """Compile and link a tiny OpenMP program; True when that works."""
    if os.environ.get("FASTCONV_NO_OPENMP") == "1":
        return False
    tmp = tempfile.mkdtemp()
    try:
        src = os.path.join(tmp, "probe.c")
        with open(src, "w") as f:
            f.write("#include <omp.h>\nint main(void){return omp_get_max_threads() > 0 ? 0 : 1;}\n")
        objs = compiler.compile([src], output_dir=tmp, extra_postargs=[OPENMP_FLAG])
        compiler.link_executable(objs, os.path.join(tmp, "probe"), extra_postargs=[OPENMP_FLAG])
        return True
    except Exception:
        return False
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class BuildExt(build_ext):
    """Adds -fopenmp to every kernel when the compiler supports it; compiles the extensions in
    parallel, one job per CPU, unless ``-j`` says otherwise (pip passes no ``-j``)."""

    def finalize_options(self):
        super().finalize_options()
        if not self.parallel:
            self.parallel = os.cpu_count() or 1

    def build_extensions(self):
        openmp = compiler_has_openmp(self.compiler)
        if not openmp:
            print("fastconv: compiler has no OpenMP; building the kernels serially")
        for ext in self.extensions:
            if openmp and ext.name.startswith("fastconv._kernels."):
                ext.extra_compile_args.append(OPENMP_FLAG)
                ext.extra_link_args.append(OPENMP_FLAG)
        super().build_extensions()


def _wanted():
    """The FASTCONV_KERNELS names of a development build, or None for everything."""
    wanted = os.environ.get("FASTCONV_KERNELS")
    return set(wanted.split(",")) if wanted else None


def kernel_extensions():
    wanted = _wanted()
    exts = []
    for path in sorted(glob.glob(os.path.join(KERNEL_DIR, "*.pyx"))):
        name = os.path.splitext(os.path.basename(path))[0]
        if wanted is not None and name not in wanted and name != "_omp":
            continue
        exts.append(
            Extension(
                f"fastconv._kernels.{name}",
                [path],
                include_dirs=[KERNEL_DIR, numpy.get_include()],  # direct.pyx cimports numpy
                define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
                depends=glob.glob(os.path.join(KERNEL_DIR, "*.h")) + glob.glob(os.path.join(KERNEL_DIR, "*.pxd")),
                extra_compile_args=["-O3", "-fno-math-errno", "-g0"],  # -g0: ~3× smaller, symbols kept
                extra_link_args=[],
            )
        )
    return exts


def tape_extensions():
    """The tape's plain-Python modules as extension modules of the same names."""
    wanted = _wanted()
    if wanted is not None and "tape" not in wanted:
        return []
    # -g0: without debug information each module is ~3× smaller (Python's CFLAGS have -g)
    return [Extension(os.path.splitext(path)[0].replace(os.sep, "."), [path], extra_compile_args=["-O2", "-g0"])
            for path in TAPE_MODULES]


setup(
    ext_modules=(cythonize(kernel_extensions(), compiler_directives=DIRECTIVES, quiet=True)
                 + cythonize(tape_extensions(), compiler_directives=TAPE_DIRECTIVES, quiet=True)),
    cmdclass={"build_ext": BuildExt},
)
