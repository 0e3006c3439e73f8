# cython: language_level=3
# The kernels' OpenMP runtime (see _omp.pyx): every parallel region takes its team size from here.

cdef int team(int requested) noexcept nogil
cdef int team_for_work(double work, double min_work_per_thread) noexcept nogil
cdef Py_ssize_t part_begin(Py_ssize_t p, Py_ssize_t parts, Py_ssize_t n) noexcept nogil
