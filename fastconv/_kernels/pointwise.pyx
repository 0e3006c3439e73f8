# cython: language_level=3
"""Pointwise (1×1, groups 1) convolution as plain GEMMs on NCHW: no column buffer in any pass.

With a 1×1 filter each image is a (C, P) matrix (P = H·W pixels, after the caller subsampled a
strided input), so

* forward: y[n] (K×P) = W (K×C) · x[n], then + bias per row;
* dX: dx[n] (C×P) = Wᵀ · dY[n];
* dW: dW (K×C) = Σₙ dY[n] · x[n]ᵀ.

Forward and dX run work items (image, column panel) in a ``prange``, each one single-threaded
GEMM; with fewer images than threads the pixels are cut into panels. dW splits its rows (output
channels) across threads, each accumulating over the images in order (beta = 1 after the
first): no per-thread partials to sum, and the sums run in the same order at any thread count.
The entry points check the shapes, so no input makes them read or write out of bounds.
"""
from cython cimport floating
from cython.parallel cimport prange

from ._blas cimport gemm
from ._omp cimport team


cdef inline Py_ssize_t panel_start(Py_ssize_t t, Py_ssize_t total, Py_ssize_t panels,
                                   Py_ssize_t align) noexcept nogil:
    """Start of panel t of ``panels`` near-equal panels of ``total``, on multiples of align."""
    cdef Py_ssize_t s = (t * total) // panels
    if t > 0 and t < panels:
        s = (s + align - 1) // align * align
        if s > total:
            s = total
    return s


def _panels(Py_ssize_t n, Py_ssize_t columns, int threads):
    """Column panels per image: enough work items for the threads, panels of >= 64 columns."""
    if threads <= 1 or n >= threads:
        return 1
    return max(1, min(-(-threads // n), columns // 64))


def pointwise_forward(const floating[:, ::1] w, const floating[:, :, ::1] x, const floating[::1] bias,
                      bint has_bias, floating[:, :, ::1] y, int threads):
    """y[n] = w · x[n] (+ bias) for w (K, C), x (N, C, P), y (N, K, P)."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], P = x.shape[2], K = w.shape[0]
    if w.shape[1] != C or y.shape[0] != N or y.shape[1] != K or y.shape[2] != P \
            or (has_bias and bias.shape[0] != K):
        raise ValueError("pointwise_forward: shapes of w, x, bias and y disagree")
    if N == 0 or K == 0 or P == 0:
        return
    threads = max(threads, 1)
    cdef Py_ssize_t panels = _panels(N, P, threads), item, n, lo, hi, k, q
    cdef floating one = 1
    cdef floating zero = 0
    cdef const floating* wb = &w[0, 0]
    cdef const floating* xb = &x[0, 0, 0] if C > 0 else NULL
    cdef floating* yb = &y[0, 0, 0]
    cdef floating b
    for item in prange(N * panels, nogil=True, schedule="dynamic", num_threads=team(threads)):
        n = item // panels
        lo = panel_start(item % panels, P, panels, 16)
        hi = panel_start(item % panels + 1, P, panels, 16)
        if hi <= lo:
            continue
        if C > 0:
            gemm(False, False, <int>K, <int>(hi - lo), <int>C, one, wb, <int>C,
                 xb + n * C * P + lo, <int>P, zero, yb + n * K * P + lo, <int>P)
        if has_bias or C == 0:
            for k in range(K):
                b = bias[k] if has_bias else 0
                if C == 0:
                    for q in range(lo, hi):
                        yb[(n * K + k) * P + q] = b
                else:
                    for q in range(lo, hi):
                        yb[(n * K + k) * P + q] += b


def pointwise_grad_input(const floating[:, ::1] w, const floating[:, :, ::1] dy,
                         floating[:, :, ::1] dx, int threads):
    """dx[n] = wᵀ · dy[n] for w (K, C), dy (N, K, P), dx (N, C, P)."""
    cdef Py_ssize_t N = dy.shape[0], K = dy.shape[1], P = dy.shape[2], C = w.shape[1]
    if w.shape[0] != K or dx.shape[0] != N or dx.shape[1] != C or dx.shape[2] != P:
        raise ValueError("pointwise_grad_input: shapes of w, dy and dx disagree")
    if N == 0 or C == 0 or P == 0:
        return
    threads = max(threads, 1)
    cdef Py_ssize_t panels = _panels(N, P, threads), item, n, lo, hi, i, q
    cdef floating one = 1
    cdef floating zero = 0
    cdef const floating* wb = &w[0, 0] if K > 0 else NULL
    cdef const floating* dyb = &dy[0, 0, 0] if K > 0 else NULL
    cdef floating* dxb = &dx[0, 0, 0]
    for item in prange(N * panels, nogil=True, schedule="dynamic", num_threads=team(threads)):
        n = item // panels
        lo = panel_start(item % panels, P, panels, 16)
        hi = panel_start(item % panels + 1, P, panels, 16)
        if hi <= lo:
            continue
        if K == 0:
            for i in range(C):
                for q in range(lo, hi):
                    dxb[(n * C + i) * P + q] = 0
        else:
            gemm(True, False, <int>C, <int>(hi - lo), <int>K, one, wb, <int>C,
                 dyb + n * K * P + lo, <int>P, zero, dxb + n * C * P + lo, <int>P)


def pointwise_grad_weight(const floating[:, :, ::1] x, const floating[:, :, ::1] dy,
                          floating[:, ::1] dw, int threads):
    """dw = Σₙ dy[n] · x[n]ᵀ for x (N, C, P), dy (N, K, P), dw (K, C); rows of dw split
    across threads, images summed in order."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], P = x.shape[2], K = dy.shape[1]
    if dy.shape[0] != N or dy.shape[2] != P or dw.shape[0] != K or dw.shape[1] != C:
        raise ValueError("pointwise_grad_weight: shapes of x, dy and dw disagree")
    if K == 0 or C == 0:
        return
    cdef Py_ssize_t panels = max(1, min(max(threads, 1), K // 8)), t, lo, hi, n, i, j
    cdef floating one = 1
    cdef floating zero = 0
    cdef floating* dwb = &dw[0, 0]
    cdef const floating* xb
    cdef const floating* dyb
    if N == 0 or P == 0:
        for i in range(K):
            for j in range(C):
                dwb[i * C + j] = 0
        return
    xb = &x[0, 0, 0]
    dyb = &dy[0, 0, 0]
    for t in prange(panels, nogil=True, schedule="dynamic", num_threads=team(<int>panels)):
        lo = panel_start(t, K, panels, 4)
        hi = panel_start(t + 1, K, panels, 4)
        if hi <= lo:
            continue
        for n in range(N):
            gemm(False, True, <int>(hi - lo), <int>C, <int>P, one, dyb + (n * K + lo) * P, <int>P,
                 xb + n * C * P, <int>P, zero if n == 0 else one, dwb + lo * C, <int>C)


# ---- nogil entry point (pointwise.pxd): the compiled predictor's executor calls it ----------------

cdef void pointwise_forward_f32(const float* w, const float* x, const float* bias, float* y,
                                Py_ssize_t N, Py_ssize_t C, Py_ssize_t P, Py_ssize_t K,
                                int threads) noexcept nogil:
    """``pointwise_forward`` on raw contiguous float32 arrays: y[n] (K×P) = w (K×C)·x[n] (C×P)
    (+ bias, K, unless NULL). One thread: no parallel region."""
    cdef Py_ssize_t panels = 1, item, n, lo, hi, k, q
    cdef float b
    threads = max(threads, 1)
    if N == 0 or K == 0 or P == 0:
        return
    if threads > 1 and N < threads:
        panels = max(1, min((threads + N - 1) // N, P // 64))
    if threads == 1:
        for n in range(N):
            pointwise_item(w, x, bias, y, n, 0, P, C, P, K)
        return
    for item in prange(N * panels, schedule="static", num_threads=team(threads)):
        n = item // panels
        lo = panel_start(item % panels, P, panels, 16)
        hi = panel_start(item % panels + 1, P, panels, 16)
        pointwise_item(w, x, bias, y, n, lo, hi, C, P, K)


cdef void pointwise_item(const float* w, const float* x, const float* bias, float* y, Py_ssize_t n,
                         Py_ssize_t lo, Py_ssize_t hi, Py_ssize_t C, Py_ssize_t P,
                         Py_ssize_t K) noexcept nogil:
    """Columns [lo, hi) of image n: y = w·x (+ bias)."""
    cdef Py_ssize_t k, q
    cdef float b
    if hi <= lo:
        return
    if C > 0:
        gemm(False, False, <int>K, <int>(hi - lo), <int>C, <float>1, w, <int>C,
             x + n * C * P + lo, <int>P, <float>0, y + n * K * P + lo, <int>P)
    if bias != NULL or C == 0:
        for k in range(K):
            b = bias[k] if bias != NULL else 0
            if C == 0:
                for q in range(lo, hi):
                    y[(n * K + k) * P + q] = b
            else:
                for q in range(lo, hi):
                    y[(n * K + k) * P + q] += b
