"""Build the Cython kernels with -O3 and OpenMP (serially when the compiler lacks OpenMP).

Every ``fastconv/_kernels/*.pyx`` becomes one extension module. ``FASTCONV_NO_OPENMP=1``
forces a serial build (used to test the fallback); ``FASTCONV_KERNELS=conv,pool`` limits
a development build to some kernels.
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
    """Adds -fopenmp to every kernel when the compiler supports it."""

    def build_extensions(self):
        openmp = compiler_has_openmp(self.compiler)
        if not openmp:
            print("fastconv: compiler has no OpenMP; building the kernels serially")
        for ext in self.extensions:
            if openmp:
                ext.extra_compile_args.append(OPENMP_FLAG)
                ext.extra_link_args.append(OPENMP_FLAG)
        super().build_extensions()


def kernel_extensions():
    wanted = os.environ.get("FASTCONV_KERNELS")
    wanted = set(wanted.split(",")) if wanted else None
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
                extra_compile_args=["-O3", "-fno-math-errno"],
                extra_link_args=[],
            )
        )
    return exts


setup(
    ext_modules=cythonize(kernel_extensions(), compiler_directives=DIRECTIVES, quiet=True),
    cmdclass={"build_ext": BuildExt},
)
