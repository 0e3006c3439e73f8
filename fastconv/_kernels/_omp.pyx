# cython: language_level=3
"""OpenMP thread control, compiled with or without OpenMP (serial fallback)."""

cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    static int fc_openmp_enabled(void) { return 1; }
    static int fc_get_max_threads(void) { return omp_get_max_threads(); }
    static void fc_set_num_threads(int n) { omp_set_num_threads(n); }
    #else
    static int fc_openmp_enabled(void) { return 0; }
    static int fc_get_max_threads(void) { return 1; }
    static void fc_set_num_threads(int n) { (void)n; }
    #endif
    """
    int fc_openmp_enabled()
    int fc_get_max_threads()
    void fc_set_num_threads(int n)


def openmp_enabled():
    """True when the kernels were compiled with OpenMP."""
    return bool(fc_openmp_enabled())


def get_max_threads():
    """Threads the next OpenMP parallel region will use (1 without OpenMP)."""
    return fc_get_max_threads()


def set_num_threads(int n):
    """Set the OpenMP thread count for later parallel regions."""
    fc_set_num_threads(n)
