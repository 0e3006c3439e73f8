# cython: language_level=3
"""Kernels for k-means filter learning: window extraction and the winner-take-all assignment.

``extract_windows`` copies windows of NCHW images into the rows of a matrix, one window per
row, laid out (channel, row, column) like a conv2d weight. The (image, top, left) positions
are drawn in Python from a seeded numpy Generator; here the copies run in parallel over
windows. ``abs_argmax_rows`` finds, for each row of a response matrix, the column with the
largest absolute value and keeps the signed value there (the code of Dundar et al., Eq. 1).

Both kernels trust their inputs: positions are checked in Python so that every window lies
inside its image, and the output arrays have the right shapes.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.string cimport memcpy

from ._omp cimport team


def extract_windows(const floating[:, :, :, ::1] images, const Py_ssize_t[::1] index,
                    const Py_ssize_t[::1] top, const Py_ssize_t[::1] left,
                    Py_ssize_t kh, Py_ssize_t kw, floating[:, ::1] out, int num_threads):
    """out[p] = images[index[p], :, top[p]:top[p]+kh, left[p]:left[p]+kw].ravel() for every p."""
    cdef Py_ssize_t n = index.shape[0]
    cdef Py_ssize_t channels = images.shape[1]
    cdef Py_ssize_t p, c, i
    cdef size_t row_bytes = kw * sizeof(floating)
    if n == 0 or channels == 0 or kh == 0 or kw == 0:
        return
    with nogil:
        for p in prange(n, schedule="guided", num_threads=team(num_threads)):
            for c in range(channels):
                for i in range(kh):
                    memcpy(&out[p, (c * kh + i) * kw], &images[index[p], c, top[p] + i, left[p]],
                           row_bytes)


def abs_argmax_rows(const floating[:, ::1] responses, Py_ssize_t[::1] labels, floating[::1] values,
                    int num_threads):
    """labels[i] = argmax_j |responses[i, j]| (first on ties), values[i] = responses[i, labels[i]]."""
    cdef Py_ssize_t n = responses.shape[0]
    cdef Py_ssize_t m = responses.shape[1]
    cdef Py_ssize_t i, j, best
    cdef floating a, best_abs
    if n == 0 or m == 0:
        return
    with nogil:
        for i in prange(n, schedule="guided", num_threads=team(num_threads)):
            best = 0
            best_abs = responses[i, 0] if responses[i, 0] >= 0 else -responses[i, 0]
            for j in range(1, m):
                a = responses[i, j] if responses[i, j] >= 0 else -responses[i, j]
                if a > best_abs:
                    best_abs = a
                    best = j
            labels[i] = best
            values[i] = responses[i, best]
