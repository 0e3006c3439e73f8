# cython: language_level=3
# distutils: extra_compile_args = -fno-trapping-math
"""Elementwise activation kernels (ReLU6, SiLU, GELU, Hardswish), forward and backward.

Arrays are 1-D contiguous views of equal length and one dtype; shapes, dtypes and contiguity are
checked in Python (fastconv/nn/functional/activation.py) before any call here. Every element is
independent, so large arrays are cut into blocks run in a prange and the result does not depend
on the thread count.

The loops are C (below), compiled for AVX-512, AVX2 and the baseline with the CPU's best picked at
load time (GCC target_clones, as in optim.pyx). ``-fno-trapping-math`` lets GCC if-convert the
clamps and selects (with trapping math it vectorizes none of these loops short of AVX-512 masks;
it changes no value). float32 uses branch-free approximations that the compiler vectorizes: exp is Cephes' expf polynomial (~1 ulp), erf a rational approximation
(|error| < 7e-8, evaluated in double, so GELU stays within ~1 ulp of its float32 result).
float64 uses libm's exp, erf and tanh. Formulas follow PyTorch's CPU kernels (including which
side of each boundary a gradient takes), with two exact rewrites for float32: sigmoid(x) as
1 / (1 + exp(−x)) and tanh-GELU as x·sigmoid(2u), u = √(2/π)(x + 0.044715x³), which equals
0.5·x·(1 + tanh u) without tanh's cancellation.
"""
from cython cimport floating
from cython.parallel cimport prange

from ._omp cimport team

cdef extern from *:
    """
    #include <math.h>
    #include <stddef.h>
    #include <stdint.h>
    #include <string.h>
    #if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__GLIBC__)  /* ifunc */
    #define FC_ACT_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
    #else
    #define FC_ACT_CLONES
    #endif
    #if defined(__GNUC__)
    #define FC_ACT_INLINE static inline __attribute__((always_inline))
    #else
    #define FC_ACT_INLINE static inline
    #endif

    #define FC_SQRT1_2 0.70710678118654752440
    #define FC_INV_SQRT_2PI 0.39894228040143267794   /* 1/sqrt(2*pi) */
    #define FC_GELU_BETA 0.79788456080286535588      /* sqrt(2/pi) */
    #define FC_GELU_KAPPA 0.044715

    /* exp(x), float32: Cephes' expf (range reduction by ln 2 in two parts, degree-6 polynomial,
       2^n built in the exponent bits; max error 1.3 ulp). The polynomial's input is clamped to
       [-87, 88.376] (results stay normal); above ln(FLT_MAX) the result is inf, as libm's, so
       x / (1 + exp(-x)) at x = -inf is NaN like PyTorch's; a NaN stays NaN. n = round(x / ln 2)
       comes from adding 1.5 * 2^23, whose low mantissa bits then hold n: no float-to-int
       conversion, no floor, so loops calling it vectorize. */
    FC_ACT_INLINE float fc_expf(float xin) {
        float x = xin > 88.3762626647949f ? 88.3762626647949f : xin;
        x = x < -87.0f ? -87.0f : x;
        const float shifted = x * 1.44269504088896341f + 12582912.0f;
        const float fx = shifted - 12582912.0f;
        float r = x - fx * 0.693359375f;
        r = r - fx * -2.12194440e-4f;
        const float z = r * r;
        float y = 1.9875691500e-4f;
        y = y * r + 1.3981999507e-3f;
        y = y * r + 8.3334519073e-3f;
        y = y * r + 4.1665795894e-2f;
        y = y * r + 1.6666665459e-1f;
        y = y * r + 5.0000001201e-1f;
        y = y * z + r + 1.0f;
        int32_t bits;
        memcpy(&bits, &shifted, sizeof bits);
        bits = (bits - 0x4B400000 + 127) << 23;   /* 0x4B400000: the bits of 1.5 * 2^23 */
        float scale;
        memcpy(&scale, &bits, sizeof scale);
        return xin > 88.72283935546875f ? INFINITY : y * scale;
    }

    /* erf(z) for a float32 argument, evaluated in double: odd/even rational approximation on
       (-4, 4) (Eigen's fast erf; |error| < 7e-8), exactly +-1 beyond (|1 - erf| < 1.6e-8 there,
       so GELU's negative tail is 0 to within 5e-8 rather than growing with |x|). */
    FC_ACT_INLINE double fc_erf_of_float(float zf) {
        const double zin = (double)zf;
        double z = zin > 4.0 ? 4.0 : zin;
        z = z < -4.0 ? -4.0 : z;
        const double z2 = z * z;
        double p = -2.72614225801306e-10;
        p = p * z2 + 2.77068142495902e-08;
        p = p * z2 + -2.10102402082508e-06;
        p = p * z2 + -5.69250639462346e-05;
        p = p * z2 + -7.34990630326855e-04;
        p = p * z2 + -2.95459980854025e-03;
        p = p * z2 + -1.60960333262415e-02;
        p = p * z;
        double q = -1.45660718464996e-05;
        q = q * z2 + -2.13374055278905e-04;
        q = q * z2 + -1.68282697438203e-03;
        q = q * z2 + -7.37332916720468e-03;
        q = q * z2 + -1.42647390514189e-02;
        const double e = p / q;
        return zin >= 4.0 ? 1.0 : (zin <= -4.0 ? -1.0 : e);
    }

    /* ---- ReLU6 = clamp(x, 0, 6); NaN propagates. mask (for backward) = !(x <= 0 || x >= 6),
       PyTorch's hardtanh_backward condition (a NaN passes its gradient). ---- */
    #define FC_RELU6_FWD(T, NAME)                                                                   \
    FC_ACT_CLONES static void NAME(const T *x, T *y, unsigned char *mask, ptrdiff_t n) {            \
        for (ptrdiff_t i = 0; i < n; i++) {                                                         \
            const T v = x[i];                                                                       \
            T r = v < (T)0 ? (T)0 : v;                                                              \
            y[i] = r > (T)6 ? (T)6 : r;                                                             \
        }                                                                                           \
        if (mask) /* | not ||: no branch per element */                                             \
            for (ptrdiff_t i = 0; i < n; i++)                                                       \
                mask[i] = (unsigned char)((x[i] <= (T)0) | (x[i] >= (T)6)) ^ 1;                     \
    }
    FC_RELU6_FWD(float, fc_relu6_fwd_f32)
    FC_RELU6_FWD(double, fc_relu6_fwd_f64)

    /* ---- SiLU = x * sigmoid(x); d/dx = s * (1 + x * (1 - s)). ---- */
    FC_ACT_CLONES static void fc_silu_fwd_f32(const float *x, float *y, ptrdiff_t n) {
        for (ptrdiff_t i = 0; i < n; i++) y[i] = x[i] / (1.0f + fc_expf(-x[i]));
    }
    FC_ACT_CLONES static void fc_silu_bwd_f32(const float *x, const float *g, float *dx, ptrdiff_t n) {
        for (ptrdiff_t i = 0; i < n; i++) {
            const float s = 1.0f / (1.0f + fc_expf(-x[i]));
            dx[i] = g[i] * s * (1.0f + x[i] * (1.0f - s));
        }
    }
    static void fc_silu_fwd_f64(const double *x, double *y, ptrdiff_t n) {
        for (ptrdiff_t i = 0; i < n; i++) y[i] = x[i] / (1.0 + exp(-x[i]));
    }
    static void fc_silu_bwd_f64(const double *x, const double *g, double *dx, ptrdiff_t n) {
        for (ptrdiff_t i = 0; i < n; i++) {
            const double s = 1.0 / (1.0 + exp(-x[i]));
            dx[i] = g[i] * s * (1.0 + x[i] * (1.0 - s));
        }
    }

    /* ---- GELU, exact: 0.5 x (1 + erf(x / sqrt 2)); d/dx = cdf + x * exp(-x^2/2) / sqrt(2 pi).
       tanh approximation: 0.5 x (1 + tanh u), u = beta (x + kappa x^3);
       d/dx = 0.5 (1 + t) + 0.5 x (1 - t^2) beta (1 + 3 kappa x^2). ---- */
    FC_ACT_CLONES static void fc_gelu_fwd_f32(const float *x, float *y, ptrdiff_t n) {
        for (ptrdiff_t i = 0; i < n; i++)
            y[i] = (float)(0.5 * (double)x[i] * (1.0 + fc_erf_of_float(x[i] * (float)FC_SQRT1_2)));
    }
    FC_ACT_CLONES static void fc_gelu_bwd_f32(const float *x, const float *g, float *dx, ptrdiff_t n) {
        for (ptrdiff_t i = 0; i < n; i++) {
            const float v = x[i];
            const float cdf = (float)(0.5 * (1.0 + fc_erf_of_float(v * (float)FC_SQRT1_2)));
            const float pdf = (float)FC_INV_SQRT_2PI * fc_expf(-0.5f * v * v);
            dx[i] = g[i] * (cdf + v * pdf);
        }
    }
    FC_ACT_CLONES static void fc_gelu_tanh_fwd_f32(const float *x, float *y, ptrdiff_t n) {
        for (ptrdiff_t i = 0; i < n; i++) {
            const float v = x[i];
            const float u = (float)FC_GELU_BETA * (v + (float)FC_GELU_KAPPA * v * v * v);
            y[i] = v / (1.0f + fc_expf(-2.0f * u));
        }
    }
    FC_ACT_CLONES static void fc_gelu_tanh_bwd_f32(const float *x, const float *g, float *dx, ptrdiff_t n) {
        for (ptrdiff_t i = 0; i < n; i++) {
            const float v = x[i], v2 = v * v;
            const float u = (float)FC_GELU_BETA * (v + (float)FC_GELU_KAPPA * v2 * v);
            const float s = 1.0f / (1.0f + fc_expf(-2.0f * u));   /* (1 + tanh u) / 2 */
            const float du = (float)FC_GELU_BETA * (1.0f + 3.0f * (float)FC_GELU_KAPPA * v2);
            dx[i] = g[i] * (s + 2.0f * v * s * (1.0f - s) * du);
        }
    }
    static void fc_gelu_fwd_f64(const double *x, double *y, ptrdiff_t n) {
        for (ptrdiff_t i = 0; i < n; i++) y[i] = 0.5 * x[i] * (1.0 + erf(x[i] * FC_SQRT1_2));
    }
    static void fc_gelu_bwd_f64(const double *x, const double *g, double *dx, ptrdiff_t n) {
        for (ptrdiff_t i = 0; i < n; i++) {
            const double v = x[i];
            const double cdf = 0.5 * (1.0 + erf(v * FC_SQRT1_2));
            const double pdf = FC_INV_SQRT_2PI * exp(-0.5 * v * v);
            dx[i] = g[i] * (cdf + v * pdf);
        }
    }
    static void fc_gelu_tanh_fwd_f64(const double *x, double *y, ptrdiff_t n) {
        for (ptrdiff_t i = 0; i < n; i++) {
            const double v = x[i];
            y[i] = 0.5 * v * (1.0 + tanh(FC_GELU_BETA * (v + FC_GELU_KAPPA * v * v * v)));
        }
    }
    static void fc_gelu_tanh_bwd_f64(const double *x, const double *g, double *dx, ptrdiff_t n) {
        for (ptrdiff_t i = 0; i < n; i++) {
            const double v = x[i], v2 = v * v;
            const double t = tanh(FC_GELU_BETA * (v + FC_GELU_KAPPA * v2 * v));
            const double du = FC_GELU_BETA * (1.0 + 3.0 * FC_GELU_KAPPA * v2);
            dx[i] = g[i] * (0.5 * (1.0 + t) + 0.5 * v * (1.0 - t * t) * du);
        }
    }

    /* ---- Hardswish = x * clamp(x + 3, 0, 6) / 6 (NaN propagates);
       d/dx = 0 up to -3, x/3 + 1/2 on (-3, 3), 1 from 3 on and at NaN (PyTorch's boundaries). ---- */
    #define FC_HARDSWISH(T, FWD, BWD)                                                               \
    FC_ACT_CLONES static void FWD(const T *x, T *y, ptrdiff_t n) {                                  \
        for (ptrdiff_t i = 0; i < n; i++) {                                                         \
            T r = x[i] + (T)3;                                                                      \
            r = r < (T)0 ? (T)0 : r;                                                                \
            r = r > (T)6 ? (T)6 : r;                                                                \
            y[i] = x[i] * r / (T)6;                                                                 \
        }                                                                                           \
    }                                                                                               \
    FC_ACT_CLONES static void BWD(const T *x, const T *g, T *dx, ptrdiff_t n) {                     \
        for (ptrdiff_t i = 0; i < n; i++) {                                                         \
            const T v = x[i];                                                                       \
            const T mid = g[i] * (v / (T)3 + (T)0.5);                                               \
            dx[i] = v <= (T)-3 ? (T)0 : (v < (T)3 ? mid : g[i]);                                    \
        }                                                                                           \
    }
    FC_HARDSWISH(float, fc_hardswish_fwd_f32, fc_hardswish_bwd_f32)
    FC_HARDSWISH(double, fc_hardswish_fwd_f64, fc_hardswish_bwd_f64)
    """
    void fc_relu6_fwd_f32(const float* x, float* y, unsigned char* mask, Py_ssize_t n) noexcept nogil
    void fc_relu6_fwd_f64(const double* x, double* y, unsigned char* mask, Py_ssize_t n) noexcept nogil
    void fc_silu_fwd_f32(const float* x, float* y, Py_ssize_t n) noexcept nogil
    void fc_silu_fwd_f64(const double* x, double* y, Py_ssize_t n) noexcept nogil
    void fc_silu_bwd_f32(const float* x, const float* g, float* dx, Py_ssize_t n) noexcept nogil
    void fc_silu_bwd_f64(const double* x, const double* g, double* dx, Py_ssize_t n) noexcept nogil
    void fc_gelu_fwd_f32(const float* x, float* y, Py_ssize_t n) noexcept nogil
    void fc_gelu_fwd_f64(const double* x, double* y, Py_ssize_t n) noexcept nogil
    void fc_gelu_bwd_f32(const float* x, const float* g, float* dx, Py_ssize_t n) noexcept nogil
    void fc_gelu_bwd_f64(const double* x, const double* g, double* dx, Py_ssize_t n) noexcept nogil
    void fc_gelu_tanh_fwd_f32(const float* x, float* y, Py_ssize_t n) noexcept nogil
    void fc_gelu_tanh_fwd_f64(const double* x, double* y, Py_ssize_t n) noexcept nogil
    void fc_gelu_tanh_bwd_f32(const float* x, const float* g, float* dx, Py_ssize_t n) noexcept nogil
    void fc_gelu_tanh_bwd_f64(const double* x, const double* g, double* dx, Py_ssize_t n) noexcept nogil
    void fc_hardswish_fwd_f32(const float* x, float* y, Py_ssize_t n) noexcept nogil
    void fc_hardswish_fwd_f64(const double* x, double* y, Py_ssize_t n) noexcept nogil
    void fc_hardswish_bwd_f32(const float* x, const float* g, float* dx, Py_ssize_t n) noexcept nogil
    void fc_hardswish_bwd_f64(const double* x, const double* g, double* dx, Py_ssize_t n) noexcept nogil


cdef enum:
    BLOCK = 8192  # elements per parallel work item
    # kinds of elementwise op (one dispatcher for all, so each public entry point is two lines)
    RELU6 = 0
    SILU = 1
    GELU = 2
    GELU_TANH = 3
    HARDSWISH = 4


cdef inline void _forward_block(int kind, const floating* x, floating* y, unsigned char* mask,
                                Py_ssize_t n) noexcept nogil:
    if floating is float:
        if kind == RELU6:
            fc_relu6_fwd_f32(x, y, mask, n)
        elif kind == SILU:
            fc_silu_fwd_f32(x, y, n)
        elif kind == GELU:
            fc_gelu_fwd_f32(x, y, n)
        elif kind == GELU_TANH:
            fc_gelu_tanh_fwd_f32(x, y, n)
        else:
            fc_hardswish_fwd_f32(x, y, n)
    else:
        if kind == RELU6:
            fc_relu6_fwd_f64(x, y, mask, n)
        elif kind == SILU:
            fc_silu_fwd_f64(x, y, n)
        elif kind == GELU:
            fc_gelu_fwd_f64(x, y, n)
        elif kind == GELU_TANH:
            fc_gelu_tanh_fwd_f64(x, y, n)
        else:
            fc_hardswish_fwd_f64(x, y, n)


cdef inline void _backward_block(int kind, const floating* x, const floating* g, floating* dx,
                                 Py_ssize_t n) noexcept nogil:
    if floating is float:
        if kind == SILU:
            fc_silu_bwd_f32(x, g, dx, n)
        elif kind == GELU:
            fc_gelu_bwd_f32(x, g, dx, n)
        elif kind == GELU_TANH:
            fc_gelu_tanh_bwd_f32(x, g, dx, n)
        else:
            fc_hardswish_bwd_f32(x, g, dx, n)
    else:
        if kind == SILU:
            fc_silu_bwd_f64(x, g, dx, n)
        elif kind == GELU:
            fc_gelu_bwd_f64(x, g, dx, n)
        elif kind == GELU_TANH:
            fc_gelu_tanh_bwd_f64(x, g, dx, n)
        else:
            fc_hardswish_bwd_f64(x, g, dx, n)


cdef void _forward(int kind, const floating[::1] x, floating[::1] out, unsigned char* mask, int threads):
    cdef Py_ssize_t n = x.shape[0]
    cdef Py_ssize_t blocks = (n + BLOCK - 1) // BLOCK
    cdef Py_ssize_t k, start, length
    if n == 0:
        return
    if threads <= 1 or blocks < 2:
        with nogil:
            _forward_block(kind, &x[0], &out[0], mask, n)
        return
    for k in prange(blocks, nogil=True, schedule='guided', num_threads=team(threads)):
        start = k * BLOCK
        length = n - start if n - start < BLOCK else BLOCK
        _forward_block(kind, &x[start], &out[start], mask + start if mask != NULL else NULL, length)


cdef void _backward(int kind, const floating[::1] x, const floating[::1] grad, floating[::1] out,
                    int threads):
    cdef Py_ssize_t n = x.shape[0]
    cdef Py_ssize_t blocks = (n + BLOCK - 1) // BLOCK
    cdef Py_ssize_t k, start, length
    if n == 0:
        return
    if threads <= 1 or blocks < 2:
        with nogil:
            _backward_block(kind, &x[0], &grad[0], &out[0], n)
        return
    for k in prange(blocks, nogil=True, schedule='guided', num_threads=team(threads)):
        start = k * BLOCK
        length = n - start if n - start < BLOCK else BLOCK
        _backward_block(kind, &x[start], &grad[start], &out[start], length)


def relu6_forward(const floating[::1] x, floating[::1] out, unsigned char[::1] mask, bint with_mask,
                  int threads):
    """out ← clamp(x, 0, 6); with ``with_mask`` also mask ← 1 where the gradient passes (0 < x < 6)."""
    _forward(RELU6, x, out, &mask[0] if with_mask and mask.shape[0] > 0 else NULL, threads)


def silu_forward(const floating[::1] x, floating[::1] out, int threads):
    """out ← x·sigmoid(x)."""
    _forward(SILU, x, out, NULL, threads)


def silu_backward(const floating[::1] x, const floating[::1] grad, floating[::1] out, int threads):
    """out ← grad·s·(1 + x·(1 − s)), s = sigmoid(x)."""
    _backward(SILU, x, grad, out, threads)


def gelu_forward(const floating[::1] x, floating[::1] out, bint tanh_approximation, int threads):
    """out ← x·Φ(x) (exact, erf) or its tanh approximation."""
    _forward(GELU_TANH if tanh_approximation else GELU, x, out, NULL, threads)


def gelu_backward(const floating[::1] x, const floating[::1] grad, floating[::1] out,
                  bint tanh_approximation, int threads):
    """out ← grad·d GELU/dx (exact or tanh approximation)."""
    _backward(GELU_TANH if tanh_approximation else GELU, x, grad, out, threads)


def hardswish_forward(const floating[::1] x, floating[::1] out, int threads):
    """out ← x·clamp(x + 3, 0, 6)/6."""
    _forward(HARDSWISH, x, out, NULL, threads)


def hardswish_backward(const floating[::1] x, const floating[::1] grad, floating[::1] out, int threads):
    """out ← grad·(0 for x ≤ −3, x/3 + 1/2 on (−3, 3), 1 for x ≥ 3)."""
    _backward(HARDSWISH, x, grad, out, threads)
