# cython: language_level=3
"""Dense products C = op(A)·op(B) split across OpenMP threads, each panel one single-threaded BLAS call.

fastconv keeps the BLAS its kernels call (scipy's) at one thread and parallelizes with OpenMP
itself: a threaded BLAS whose workers keep spinning after a call competes with the next OpenMP
region for the same cores (measured on the demo network: 2 threads with threaded BLAS were
slower than 1 thread; split panels on single-threaded BLAS were 1.5x faster than 1 thread).
"""
from cython cimport floating
from cython.parallel cimport prange

from scipy.linalg.cython_blas cimport dgemv, sgemv

import numpy as np

from ._blas cimport fc_sgemm_b_prepacked, fc_sgemm_pack_b_panels, gemm
from ._omp cimport team


cdef extern from "_sgemm.h" nogil:
    int fc_sgemm_available()


def packed_sgemm_available():
    """True when float32 products run on fastconv's own packed sgemm (else on scipy's BLAS)."""
    return bool(fc_sgemm_available())


def packed_sgemm_variant():
    """Which micro-kernels fastconv's sgemm runs here: "AVX-512", "AVX2" or None (scipy's BLAS)."""
    return {2: "AVX-512", 1: "AVX2"}.get(fc_sgemm_available())


PANEL_COLUMNS = 32  # columns of a packed B panel (the register tile's width, _sgemm.h NR)


def b_panels_size(int k, int n):
    """Floats of op(B) (k×n) packed by ``pack_b_panels``: whole 32-column panels, k deep."""
    return -(-n // PANEL_COLUMNS) * PANEL_COLUMNS * k


def aligned_floats(Py_ssize_t n):
    """A float32 array of n elements starting on a 64-byte boundary (the packed sgemm's panels)."""
    buf = np.empty(n + 16, dtype=np.float32)
    start = (-buf.ctypes.data % 64) // 4
    return buf[start:start + n]


def pack_b_panels(bint trans_b, const float[:, ::1] b):
    """op(B) (k×n; B stored n×k with ``trans_b``) packed once in the packed sgemm's panel layout
    (a 64-byte aligned float32 array of ``b_panels_size`` floats), for ``matmul_b_prepacked``; None
    where fastconv's packed kernels do not run (the caller keeps B)."""
    cdef int k = b.shape[1] if trans_b else b.shape[0]
    cdef int n = b.shape[0] if trans_b else b.shape[1]
    if k == 0 or n == 0:
        return None
    panels = aligned_floats(b_panels_size(k, n))
    cdef float[::1] dst = panels
    if not fc_sgemm_pack_b_panels(trans_b, k, n, &b[0, 0], <int>b.shape[1], &dst[0]):
        return None
    return panels


def matmul_b_prepacked(bint trans_a, const float[:, ::1] a, const float[::1] panels, float[:, ::1] c):
    """C (m×n) = op(A)·B on one thread, B packed by ``pack_b_panels`` (k = op(A)'s columns)."""
    cdef int m = c.shape[0], n = c.shape[1]
    cdef int k = a.shape[0] if trans_a else a.shape[1]
    if (a.shape[1] if trans_a else a.shape[0]) != m or panels.shape[0] != b_panels_size(k, n):
        raise ValueError(f"matmul_b_prepacked: op(A) {m}x{k}, C {c.shape[0]}x{n} and "
                         f"{panels.shape[0]} packed floats disagree")
    if m == 0 or n == 0 or k == 0:
        raise ValueError("matmul_b_prepacked: empty operands")
    if (<size_t>&panels[0]) % 64:
        raise ValueError("matmul_b_prepacked: packed panels must start on a 64-byte boundary")
    cdef int done
    with nogil:
        done = fc_sgemm_b_prepacked(trans_a, m, n, k, &a[0, 0], <int>a.shape[1], &panels[0], &c[0, 0],
                                    <int>c.shape[1])
    if not done:
        raise RuntimeError("matmul_b_prepacked: fastconv's packed sgemm does not run on this CPU")


cdef inline void row_times_matrix(bint trans_b, int n, int k, const floating* a, int inca,
                                  const floating* b, int ldb, floating* c) noexcept nogil:
    """c (1×n) = a (1×k, stride inca) · op(B) as one GEMV (OpenBLAS's GEMM is slow for one row).

    Row-major B (k×n, or n×k with trans_b) read column-major is Bᵀ, so c = Bᵀᵀ·a is gemv('N') on the
    n×k Fortran matrix, and with trans_b gemv('T') on the k×n one.
    """
    cdef char t = b'T' if trans_b else b'N'
    cdef int rows = k if trans_b else n
    cdef int cols = n if trans_b else k
    cdef int one_inc = 1
    cdef floating one = 1
    cdef floating zero = 0
    if floating is float:
        sgemv(&t, &rows, &cols, &one, <float*>b, &ldb, <float*>a, &inca, &zero, c, &one_inc)
    else:
        dgemv(&t, &rows, &cols, &one, <double*>b, &ldb, <double*>a, &inca, &zero, c, &one_inc)

# Below this many multiply-adds a fork/join costs more than it saves.
cdef Py_ssize_t SERIAL_MACS = 1 << 20
# A GEMV streams its matrix once (memory-bound, ~1 µs per 64K weights), so a smaller one pays
# for splitting its columns across threads.
cdef Py_ssize_t SERIAL_GEMV_MACS = 1 << 16


def matmul(bint trans_a, bint trans_b, const floating[:, ::1] a, const floating[:, ::1] b,
           floating[:, ::1] c, int threads):
    """C = op(A)·op(B), all C-contiguous; op(A) is m×k (A stored k×m with trans_a), op(B) k×n.

    C is cut into ``threads`` row panels (or column panels when it has few rows), so no two
    threads write the same element. The caller checks the shapes.
    """
    cdef int m = c.shape[0]
    cdef int n = c.shape[1]
    cdef int k = a.shape[0] if trans_a else a.shape[1]
    cdef const floating* pa = NULL
    cdef const floating* pb = NULL
    if m == 0 or n == 0:
        return
    if k > 0:
        pa = &a[0, 0]
        pb = &b[0, 0]
    with nogil:
        matmul_raw(trans_a, trans_b, pa, pb, &c[0, 0], m, n, k, threads)


cdef void matmul_raw(bint trans_a, bint trans_b, const floating* a, const floating* b, floating* c,
                     int m, int n, int k, int threads) noexcept nogil:
    """``matmul`` on raw contiguous arrays: C (m×n) = op(A)·op(B), A stored m×k (k×m with
    trans_a), B k×n (n×k with trans_b); row or column panels over ``threads``. One thread (or a
    small product): no parallel region."""
    cdef int lda = m if trans_a else k
    cdef int ldb = n if not trans_b else k
    cdef int t, lo, hi, panels = threads
    cdef Py_ssize_t i
    if m <= 0 or n <= 0:
        return
    if k == 0:
        for i in range(<Py_ssize_t>m * n):
            c[i] = 0
        return
    if <Py_ssize_t>m * n * k < (SERIAL_GEMV_MACS if m == 1 else SERIAL_MACS) or panels < 1:
        panels = 1
    if m == 1:
        # one row: GEMV, columns split across threads
        if panels == 1:
            row_times_matrix(trans_b, n, k, a, lda if trans_a else 1, b, ldb, c)
            return
        for t in prange(panels, num_threads=team(panels), schedule="static"):
            lo = <int>((<Py_ssize_t>t * n) // panels)
            hi = <int>((<Py_ssize_t>(t + 1) * n) // panels)
            if hi > lo:
                row_times_matrix(trans_b, hi - lo, k, a, lda if trans_a else 1,
                                 b + (<Py_ssize_t>lo * ldb if trans_b else lo), ldb, c + lo)
        return
    if panels == 1:
        gemm(trans_a, trans_b, m, n, k, <floating>1, a, lda, b, ldb, <floating>0, c, n)
        return
    if m >= n or m >= 8 * panels:
        # row panels: rows lo..hi of op(A) and of C
        for t in prange(panels, num_threads=team(panels), schedule="static"):
            lo = <int>((<Py_ssize_t>t * m) // panels)
            hi = <int>((<Py_ssize_t>(t + 1) * m) // panels)
            if hi > lo:
                gemm(trans_a, trans_b, hi - lo, n, k, <floating>1,
                     a + (lo if trans_a else <Py_ssize_t>lo * lda), lda, b, ldb,
                     <floating>0, c + <Py_ssize_t>lo * n, n)
    else:
        # column panels: columns lo..hi of op(B) and of C
        for t in prange(panels, num_threads=team(panels), schedule="static"):
            lo = <int>((<Py_ssize_t>t * n) // panels)
            hi = <int>((<Py_ssize_t>(t + 1) * n) // panels)
            if hi > lo:
                gemm(trans_a, trans_b, m, hi - lo, k, <floating>1, a, lda,
                     b + (<Py_ssize_t>lo * ldb if trans_b else lo), ldb, <floating>0, c + lo, n)


def gemm_general(bint trans_a, bint trans_b, double alpha, const floating[:, :] a,
                 const floating[:, :] b, double beta, floating[:, :] c):
    """C = alpha·op(A)·op(B) + beta·C on one thread, rows of any stride (unit column stride).

    The row-major wrapper every kernel calls (fastconv's packed sgemm or BLAS), exposed with
    its full contract (alpha, beta, leading dimensions) so tests can reach every case of it.
    """
    cdef Py_ssize_t item = sizeof(floating)
    cdef int m = c.shape[0]
    cdef int n = c.shape[1]
    cdef int k = a.shape[0] if trans_a else a.shape[1]
    if (a.shape[1] if trans_a else a.shape[0]) != m or (b.shape[1] if trans_b else b.shape[0]) != k \
            or (b.shape[0] if trans_b else b.shape[1]) != n:
        raise ValueError("gemm_general: shapes of op(A), op(B) and C disagree")
    for arr, name in ((a, "A"), (b, "B"), (c, "C")):
        if arr.shape[0] > 0 and arr.shape[1] > 0 and arr.strides[1] != item:
            raise ValueError(f"gemm_general: {name} needs unit column stride")
    if m == 0 or n == 0 or k == 0:
        raise ValueError("gemm_general: empty operands are handled by matmul, not here")
    with nogil:
        gemm(trans_a, trans_b, m, n, k, <floating>alpha, &a[0, 0], <int>(a.strides[0] // item),
             &b[0, 0], <int>(b.strides[0] // item), <floating>beta, &c[0, 0], <int>(c.strides[0] // item))


# ---- nogil entry point (gemm.pxd): the compiled predictor's executor calls it ---------------------

cdef void matmul_f32(bint trans_a, bint trans_b, const float* a, const float* b, float* c, int m,
                     int n, int k, int threads) noexcept nogil:
    """``matmul_raw`` for float32: the entry point the predictor's executor cimports."""
    matmul_raw(trans_a, trans_b, a, b, c, m, n, k, threads)