# cython: language_level=3
# distutils: extra_compile_args = -ffp-contract=off
"""Element-wise kernels between convolutions: ReLU (with its mask), clamped-activation backward,
add, mul, add + ReLU, batch norm's per-channel affine fused with residual add and ReLU/ReLU6, and
global average pooling.

numpy runs these single-threaded, allocates a temporary per operator and has no fused forms
(``np.maximum(x, 0)`` on float32 does not even vectorize): one pass here replaces two to four
there. The loops are C (below), compiled for AVX-512, AVX2 and the baseline with the CPU's best
picked at load time (GCC target_clones). ``-ffp-contract=off`` keeps a*b+c two roundings, as in
norm.pyx's normalize loop, so the fused batch norm's output is bit-identical to batch norm
followed by the separate add and ReLU.

NaN propagates through ReLU and clamps (``x < 0 ? 0 : x``), as in PyTorch; gradients flow only
where the input (or the saved output) lies strictly inside the active range.

Large arrays are split into blocks run in a prange (``threads`` > 1, the team from the runtime's
``_omp.team``: fewer while other processes keep CPUs busy); every element (plane) is independent,
so results do not depend on the thread count. Arrays are contiguous and shapes
checked in Python (fastconv/nn/functional) before any call here.
"""
import numpy as np

from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport sqrt
from libc.stdint cimport uint8_t

from ._omp cimport team

cdef extern from *:
    """
    #include <math.h>
    #include <stddef.h>
    #include <stdint.h>
    #if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__GLIBC__)  /* ifunc */
    #define FC_EW_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
    #else
    #define FC_EW_CLONES
    #endif

    #define FC_EW_LOOPS(T, S)                                                                        \
    /* y = x < 0 ? 0 : x, mask = x > 0 (mask may be NULL) */                                         \
    FC_EW_CLONES static void fc_relu_##S(const T *x, T *y, uint8_t *mask, ptrdiff_t n) {            \
        for (ptrdiff_t i = 0; i < n; i++) y[i] = x[i] < 0 ? (T)0 : x[i];                            \
        if (mask)                                                                                    \
            for (ptrdiff_t i = 0; i < n; i++) mask[i] = x[i] > 0;                                    \
    }                                                                                                \
    /* dx = mask ? g : 0 */                                                                          \
    FC_EW_CLONES static void fc_mask_grad_##S(const T *g, const uint8_t *mask, T *dx, ptrdiff_t n) { \
        for (ptrdiff_t i = 0; i < n; i++) dx[i] = mask[i] ? g[i] : (T)0;                             \
    }                                                                                                \
    /* dx = 0 < y < hi ? g : 0 (y: the clamped output) */                                            \
    FC_EW_CLONES static void fc_clamp_grad_##S(const T *g, const T *y, T hi, T *dx, ptrdiff_t n) {   \
        for (ptrdiff_t i = 0; i < n; i++) dx[i] = (y[i] > 0) & (y[i] < hi) ? g[i] : (T)0;            \
    }                                                                                                \
    /* y = a + b, then clamped to [0, hi] when act */                                                \
    FC_EW_CLONES static void fc_add_##S(const T *a, const T *b, T *y, ptrdiff_t n, int act, T hi) {  \
        if (!act) {                                                                                  \
            for (ptrdiff_t i = 0; i < n; i++) y[i] = a[i] + b[i];                                    \
            return;                                                                                  \
        }                                                                                            \
        for (ptrdiff_t i = 0; i < n; i++) {                                                          \
            T s = a[i] + b[i];                                                                       \
            s = s < 0 ? (T)0 : s;                                                                    \
            y[i] = s > hi ? hi : s;                                                                  \
        }                                                                                            \
    }                                                                                                \
    FC_EW_CLONES static void fc_mul_##S(const T *a, const T *b, T *y, ptrdiff_t n) {                 \
        for (ptrdiff_t i = 0; i < n; i++) y[i] = a[i] * b[i];                                        \
    }                                                                                                \
    /* y = (x - m)*sc + sh [+ r], then clamped to [0, hi] when act */                                \
    FC_EW_CLONES static void fc_affine_##S(const T *x, const T *r, T *y, ptrdiff_t n, T m, T sc,     \
                                           T sh, int act, T hi) {                                    \
        if (r) {                                                                                     \
            for (ptrdiff_t i = 0; i < n; i++) {                                                      \
                T z = (x[i] - m) * sc + sh;                                                          \
                z = z + r[i];                                                                        \
                z = (act && z < 0) ? (T)0 : z;                                                       \
                y[i] = (act && z > hi) ? hi : z;                                                     \
            }                                                                                        \
        } else if (act) {                                                                            \
            for (ptrdiff_t i = 0; i < n; i++) {                                                      \
                T z = (x[i] - m) * sc + sh;                                                          \
                z = z < 0 ? (T)0 : z;                                                                \
                y[i] = z > hi ? hi : z;                                                              \
            }                                                                                        \
        } else {                                                                                     \
            for (ptrdiff_t i = 0; i < n; i++) y[i] = (x[i] - m) * sc + sh;                           \
        }                                                                                            \
    }                                                                                                \
    /* sum of n values: 8 lanes of T over blocks of 64, block totals in double */                    \
    FC_EW_CLONES static double fc_sum_##S(const T *p, ptrdiff_t n) {                                 \
        T s[8];                                                                                      \
        double total = 0.0;                                                                          \
        ptrdiff_t i = 0;                                                                             \
        for (; i + 64 <= n; i += 64) {                                                               \
            for (int k = 0; k < 8; k++) s[k] = 0;                                                    \
            for (int j = 0; j < 64; j += 8)                                                          \
                for (int k = 0; k < 8; k++) s[k] += p[i + j + k];                                    \
            total += (double)(((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7])));    \
        }                                                                                            \
        for (; i < n; i++) total += p[i];                                                            \
        return total;                                                                                \
    }                                                                                                \
    FC_EW_CLONES static void fc_fill_##S(T *p, T v, ptrdiff_t n) {                                   \
        for (ptrdiff_t i = 0; i < n; i++) p[i] = v;                                                  \
    }

    FC_EW_LOOPS(float, f32)
    FC_EW_LOOPS(double, f64)
    """
    void fc_relu_f32(const float* x, float* y, uint8_t* mask, Py_ssize_t n) noexcept nogil
    void fc_relu_f64(const double* x, double* y, uint8_t* mask, Py_ssize_t n) noexcept nogil
    void fc_mask_grad_f32(const float* g, const uint8_t* mask, float* dx, Py_ssize_t n) noexcept nogil
    void fc_mask_grad_f64(const double* g, const uint8_t* mask, double* dx, Py_ssize_t n) noexcept nogil
    void fc_clamp_grad_f32(const float* g, const float* y, float hi, float* dx, Py_ssize_t n) noexcept nogil
    void fc_clamp_grad_f64(const double* g, const double* y, double hi, double* dx, Py_ssize_t n) noexcept nogil
    void fc_add_f32(const float* a, const float* b, float* y, Py_ssize_t n, int act, float hi) noexcept nogil
    void fc_add_f64(const double* a, const double* b, double* y, Py_ssize_t n, int act, double hi) noexcept nogil
    void fc_mul_f32(const float* a, const float* b, float* y, Py_ssize_t n) noexcept nogil
    void fc_mul_f64(const double* a, const double* b, double* y, Py_ssize_t n) noexcept nogil
    void fc_affine_f32(const float* x, const float* r, float* y, Py_ssize_t n, float m, float sc, float sh,
                       int act, float hi) noexcept nogil
    void fc_affine_f64(const double* x, const double* r, double* y, Py_ssize_t n, double m, double sc,
                       double sh, int act, double hi) noexcept nogil
    double fc_sum_f32(const float* p, Py_ssize_t n) noexcept nogil
    double fc_sum_f64(const double* p, Py_ssize_t n) noexcept nogil
    void fc_fill_f32(float* p, float v, Py_ssize_t n) noexcept nogil
    void fc_fill_f64(double* p, double v, Py_ssize_t n) noexcept nogil

cdef enum:
    BLOCK = 16384  # elements per parallel work item of the flat kernels


cdef inline Py_ssize_t _blocks(Py_ssize_t n) noexcept nogil:
    return (n + BLOCK - 1) // BLOCK


cdef inline Py_ssize_t _len(Py_ssize_t n, Py_ssize_t k) noexcept nogil:
    return n - k * BLOCK if n - k * BLOCK < BLOCK else BLOCK


# ---- ReLU ---------------------------------------------------------------------------------------

cdef inline void _relu(const floating* x, floating* y, uint8_t* mask, Py_ssize_t n) noexcept nogil:
    if floating is float:
        fc_relu_f32(x, y, mask, n)
    else:
        fc_relu_f64(x, y, mask, n)


def relu(const floating[::1] x, floating[::1] y, uint8_t[::1] mask, int threads):
    """y = max(x, 0) (NaN kept); mask = x > 0 unless ``mask`` is empty."""
    cdef Py_ssize_t n = x.shape[0], k
    cdef bint with_mask = mask.shape[0] > 0
    if n == 0:
        return
    cdef const floating* xp = &x[0]
    cdef floating* yp = &y[0]
    cdef uint8_t* mp = &mask[0] if with_mask else NULL
    if threads <= 1 or _blocks(n) < 2:
        _relu(xp, yp, mp, n)
        return
    for k in prange(_blocks(n), nogil=True, schedule='guided', num_threads=team(threads)):
        _relu(xp + k * BLOCK, yp + k * BLOCK, mp + k * BLOCK if with_mask else NULL, _len(n, k))


cdef inline void _mask_grad(const floating* g, const uint8_t* mask, floating* dx, Py_ssize_t n) noexcept nogil:
    if floating is float:
        fc_mask_grad_f32(g, mask, dx, n)
    else:
        fc_mask_grad_f64(g, mask, dx, n)


def mask_grad(const floating[::1] g, const uint8_t[::1] mask, floating[::1] dx, int threads):
    """dx = g where mask, else 0 (ReLU's backward)."""
    cdef Py_ssize_t n = g.shape[0], k
    if n == 0:
        return
    if threads <= 1 or _blocks(n) < 2:
        _mask_grad(&g[0], &mask[0], &dx[0], n)
        return
    for k in prange(_blocks(n), nogil=True, schedule='guided', num_threads=team(threads)):
        _mask_grad(&g[k * BLOCK], &mask[k * BLOCK], &dx[k * BLOCK], _len(n, k))


cdef inline void _clamp_grad(const floating* g, const floating* y, floating hi, floating* dx,
                             Py_ssize_t n) noexcept nogil:
    if floating is float:
        fc_clamp_grad_f32(g, y, hi, dx, n)
    else:
        fc_clamp_grad_f64(g, y, hi, dx, n)


def clamp_grad(const floating[::1] g, const floating[::1] y, double hi, floating[::1] dx, int threads):
    """dx = g where 0 < y < hi, else 0: the backward of a ReLU (hi = inf) or ReLU6 (hi = 6) from its
    output y."""
    cdef Py_ssize_t n = g.shape[0], k
    cdef floating h = <floating>hi
    if n == 0:
        return
    if threads <= 1 or _blocks(n) < 2:
        _clamp_grad(&g[0], &y[0], h, &dx[0], n)
        return
    for k in prange(_blocks(n), nogil=True, schedule='guided', num_threads=team(threads)):
        _clamp_grad(&g[k * BLOCK], &y[k * BLOCK], h, &dx[k * BLOCK], _len(n, k))


# ---- add, mul -------------------------------------------------------------------------------------

cdef inline void _add(const floating* a, const floating* b, floating* y, Py_ssize_t n, int act,
                      floating hi) noexcept nogil:
    if floating is float:
        fc_add_f32(a, b, y, n, act, hi)
    else:
        fc_add_f64(a, b, y, n, act, hi)


def add(const floating[::1] a, const floating[::1] b, floating[::1] y, bint act, double hi, int threads):
    """y = a + b, clamped to [0, hi] when ``act`` (add + ReLU with hi = inf)."""
    cdef Py_ssize_t n = a.shape[0], k
    cdef floating h = <floating>hi
    if n == 0:
        return
    if threads <= 1 or _blocks(n) < 2:
        _add(&a[0], &b[0], &y[0], n, act, h)
        return
    for k in prange(_blocks(n), nogil=True, schedule='guided', num_threads=team(threads)):
        _add(&a[k * BLOCK], &b[k * BLOCK], &y[k * BLOCK], _len(n, k), act, h)


cdef inline void _mul(const floating* a, const floating* b, floating* y, Py_ssize_t n) noexcept nogil:
    if floating is float:
        fc_mul_f32(a, b, y, n)
    else:
        fc_mul_f64(a, b, y, n)


def mul(const floating[::1] a, const floating[::1] b, floating[::1] y, int threads):
    """y = a·b."""
    cdef Py_ssize_t n = a.shape[0], k
    if n == 0:
        return
    if threads <= 1 or _blocks(n) < 2:
        _mul(&a[0], &b[0], &y[0], n)
        return
    for k in prange(_blocks(n), nogil=True, schedule='guided', num_threads=team(threads)):
        _mul(&a[k * BLOCK], &b[k * BLOCK], &y[k * BLOCK], _len(n, k))


# ---- batch norm's per-channel affine, fused with residual add and activation ----------------------

cdef inline void _affine(const floating* x, const floating* r, floating* y, Py_ssize_t n, double m,
                         double scale, double shift, int act, floating hi) noexcept nogil:
    # (x - m)·scale + shift in the input type: m rounded to it (mf, exact differences near the
    # mean) and the residue m - mf folded into the shift in double, exactly as norm.pyx does
    cdef floating mf = <floating>m
    cdef floating sc = <floating>scale
    cdef floating sh = <floating>(shift - (m - mf) * scale)
    if floating is float:
        fc_affine_f32(x, r, y, n, mf, sc, sh, act, hi)
    else:
        fc_affine_f64(x, r, y, n, mf, sc, sh, act, hi)


def batch_norm_act(const floating[:, :, ::1] x, const floating[:, :, ::1] residual, floating[:, :, ::1] y,
                   const double[::1] mean, const double[::1] var, double eps, const floating[::1] weight,
                   const floating[::1] bias, double[::1] rstd, bint act, double hi, int threads):
    """Batch norm's normalization from per-channel statistics in one pass over (N, C, S) arrays:
    rstd[c] = 1/sqrt(var[c] + eps) (written out), y[n, c] = (x[n, c] - mean[c])·rstd[c]·weight[c] +
    bias[c] (weight/bias empty: absent), + residual[n, c] unless it is empty, clamped to [0, hi] when
    ``act`` (ReLU: hi = inf, ReLU6: hi = 6)."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], S = x.shape[2]
    cdef Py_ssize_t rows = N * C, row, c
    cdef bint with_r = residual.shape[0] > 0
    cdef bint has_w = weight.shape[0] > 0, has_b = bias.shape[0] > 0
    cdef floating h = <floating>hi
    scale_arr = np.empty(C, dtype=np.float64)
    shift_arr = np.empty(C, dtype=np.float64)
    cdef double[::1] scale = scale_arr
    cdef double[::1] shift = shift_arr
    for c in range(C):
        rstd[c] = 1.0 / sqrt(var[c] + eps)
        scale[c] = rstd[c] * weight[c] if has_w else rstd[c]
        shift[c] = bias[c] if has_b else 0.0
    if rows == 0 or S == 0:
        return
    cdef const floating* xp = &x[0, 0, 0]
    cdef const floating* rp = &residual[0, 0, 0] if with_r else NULL
    cdef floating* yp = &y[0, 0, 0]
    if threads <= 1 or rows * S < 2 * BLOCK:
        for row in range(rows):
            c = row % C
            _affine(xp + row * S, rp + row * S if with_r else NULL, yp + row * S, S, mean[c], scale[c],
                    shift[c], act, h)
        return
    for row in prange(rows, nogil=True, schedule='guided', num_threads=team(threads)):
        c = row % C
        _affine(xp + row * S, rp + row * S if with_r else NULL, yp + row * S, S, mean[c], scale[c],
                shift[c], act, h)


# ---- global average pooling -----------------------------------------------------------------------

cdef inline double _sum(const floating* p, Py_ssize_t n) noexcept nogil:
    if floating is float:
        return fc_sum_f32(p, n)
    else:
        return fc_sum_f64(p, n)


def plane_mean(const floating[:, ::1] x, floating[::1] out, int threads):
    """out[p] = mean of x[p, :] (global average pooling of (planes, H·W); sums in blocks of 64 in the
    input type, block totals in double)."""
    cdef Py_ssize_t P = x.shape[0], S = x.shape[1], p
    if P == 0:
        return
    if S == 0:
        out[:] = 0
        return
    cdef const floating* xp = &x[0, 0]
    cdef floating* op = &out[0]
    if threads <= 1 or P * S < 2 * BLOCK:
        for p in range(P):
            op[p] = <floating>(_sum(xp + p * S, S) / S)
        return
    for p in prange(P, nogil=True, schedule='guided', num_threads=team(threads)):
        op[p] = <floating>(_sum(xp + p * S, S) / S)


cdef inline void _fill(floating* p, floating v, Py_ssize_t n) noexcept nogil:
    if floating is float:
        fc_fill_f32(p, v, n)
    else:
        fc_fill_f64(p, v, n)


def plane_mean_backward(const floating[::1] g, floating[:, ::1] dx, int threads):
    """dx[p, :] = g[p] / S: the gradient of ``plane_mean``."""
    cdef Py_ssize_t P = dx.shape[0], S = dx.shape[1], p
    if P == 0 or S == 0:
        return
    cdef const floating* gp = &g[0]
    cdef floating* dp = &dx[0, 0]
    cdef floating count = <floating>S
    if threads <= 1 or P * S < 2 * BLOCK:
        for p in range(P):
            _fill(dp + p * S, gp[p] / count, S)
        return
    for p in prange(P, nogil=True, schedule='guided', num_threads=team(threads)):
        _fill(dp + p * S, gp[p] / count, S)
