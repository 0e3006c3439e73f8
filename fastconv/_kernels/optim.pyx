# cython: language_level=3
# distutils: extra_compile_args = -ffp-contract=off
"""Fused in-place optimizer updates: one pass over a parameter, its gradient and its state.

Each kernel performs, element by element and in the parameter's dtype, exactly the sequence of
numpy operations of the reference rule documented in fastconv/optim (each scalar rounded to the
dtype first, as numpy does with a Python float operand), so a float32 run is bit-identical to
the numpy formulation. ``-ffp-contract=off`` keeps the compiler from fusing a*b+c into an FMA,
which would round differently. Arrays are 1-D contiguous views of equal length; dtypes, shapes
and options are validated in Python (fastconv/optim/*.py) before any call here.

The loops are C (below), compiled for AVX-512, AVX2 and the baseline with the CPU's best picked
at load time (GCC target_clones): besides the width, this matters for tiny values. A step whose
results are subnormal (momentum buffers decaying under zero gradients, as with dead ReLUs) costs
a microcode assist per instruction on AMD Zen, so 16-lane instructions pay 4x fewer than SSE's.

Large parameters are split into blocks run in a prange (``threads`` > 1); every element is
independent, so the result does not depend on the thread count.
"""
from cython cimport floating
from cython.parallel cimport prange

from ._omp cimport team

cdef extern from *:
    """
    #include <math.h>
    #include <stddef.h>
    #if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__GLIBC__)  /* ifunc */
    #define FC_OPTIM_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
    #else
    #define FC_OPTIM_CLONES
    #endif
    #define FC_OPTIM_CHUNK 256  /* elements per stage: the direction buffer stays in L1 */

    /* SGD over n elements, FC_OPTIM_CHUNK at a time: the direction d = +-g (+ wd*p) goes through
       a buffer only when it differs from g, then b and p are updated; every loop is branch-free,
       so each vectorizes. Multiplying by 1 (no dampening) or by +-1 (maximize) is exact. */
    #define FC_SGD_BLOCK(T, NAME)                                                                   \
    FC_OPTIM_CLONES static void NAME(T *p, const T *g, T *buf, ptrdiff_t n, T lr, T mom, T damp1, \
                                     T wd, int has_wd, int has_momentum, int first, int nesterov,   \
                                     int maximize) {                                                \
        T d[FC_OPTIM_CHUNK];                                                                        \
        const T sign = maximize ? (T)-1 : (T)1;                                                     \
        for (ptrdiff_t c = 0; c < n; c += FC_OPTIM_CHUNK) {                                         \
            const ptrdiff_t m = n - c < FC_OPTIM_CHUNK ? n - c : FC_OPTIM_CHUNK;                    \
            T *pc = p + c;                                                                          \
            const T *src = g + c;                                                                   \
            if (has_wd) {                                                                           \
                for (ptrdiff_t i = 0; i < m; i++) d[i] = sign * src[i] + wd * pc[i];                \
                src = d;                                                                            \
            } else if (maximize) {                                                                  \
                for (ptrdiff_t i = 0; i < m; i++) d[i] = -src[i];                                   \
                src = d;                                                                            \
            }                                                                                       \
            if (!has_momentum) {                                                                    \
                for (ptrdiff_t i = 0; i < m; i++) pc[i] = pc[i] - lr * src[i];                      \
                continue;                                                                           \
            }                                                                                       \
            T *bc = buf + c;                                                                        \
            if (first)                                                                              \
                for (ptrdiff_t i = 0; i < m; i++) bc[i] = src[i];                                   \
            else                                                                                    \
                for (ptrdiff_t i = 0; i < m; i++) bc[i] = mom * bc[i] + damp1 * src[i];            \
            if (nesterov)                                                                           \
                for (ptrdiff_t i = 0; i < m; i++) pc[i] = pc[i] - lr * (src[i] + mom * bc[i]);      \
            else                                                                                    \
                for (ptrdiff_t i = 0; i < m; i++) pc[i] = pc[i] - lr * bc[i];                       \
        }                                                                                           \
    }

    /* Adam over n elements (as FC_SGD_BLOCK): d = +-g (+ wd*p) through a buffer when it differs
       from g, then one loop updates m, v (v-hat) and p. The v-hat update is np.maximum(v-hat, v):
       v-hat unless v is larger, a NaN in either wins. */
    #define FC_ADAM_BLOCK(T, SQRT, NAME)                                                            \
    FC_OPTIM_CLONES static void NAME(T *p, const T *g, T *m, T *v, T *vmax, ptrdiff_t n,           \
                                     T one_m_b1, T b2, T one_m_b2, T wd, T decay, T bc2_sqrt,       \
                                     T eps, T step_size, int has_wd, int decoupled, int amsgrad,    \
                                     int maximize) {                                                \
        T d[FC_OPTIM_CHUNK];                                                                        \
        const T sign = maximize ? (T)-1 : (T)1;                                                     \
        for (ptrdiff_t c = 0; c < n; c += FC_OPTIM_CHUNK) {                                         \
            const ptrdiff_t k = n - c < FC_OPTIM_CHUNK ? n - c : FC_OPTIM_CHUNK;                    \
            T *pc = p + c, *mc = m + c, *vc = v + c;                                                \
            const T *src = g + c;                                                                   \
            if (has_wd && decoupled)                                                                \
                for (ptrdiff_t i = 0; i < k; i++) pc[i] = decay * pc[i];                            \
            if (has_wd && !decoupled) {                                                             \
                for (ptrdiff_t i = 0; i < k; i++) d[i] = sign * src[i] + wd * pc[i];                \
                src = d;                                                                            \
            } else if (maximize) {                                                                  \
                for (ptrdiff_t i = 0; i < k; i++) d[i] = -src[i];                                   \
                src = d;                                                                            \
            }                                                                                       \
            if (amsgrad) {                                                                          \
                T *xc = vmax + c;                                                                   \
                for (ptrdiff_t i = 0; i < k; i++) {                                                 \
                    const T di = src[i];                                                            \
                    const T mi = mc[i] + one_m_b1 * (di - mc[i]);                                   \
                    const T vi = b2 * vc[i] + one_m_b2 * di * di;                                   \
                    const T xi = xc[i];                                                             \
                    const T si = ((xi >= vi) | (xi != xi)) ? xi : vi;                               \
                    mc[i] = mi;                                                                     \
                    vc[i] = vi;                                                                     \
                    xc[i] = si;                                                                     \
                    pc[i] = pc[i] - step_size * (mi / (SQRT(si) / bc2_sqrt + eps));                 \
                }                                                                                   \
            } else {                                                                                \
                for (ptrdiff_t i = 0; i < k; i++) {                                                 \
                    const T di = src[i];                                                            \
                    const T mi = mc[i] + one_m_b1 * (di - mc[i]);                                   \
                    const T vi = b2 * vc[i] + one_m_b2 * di * di;                                   \
                    mc[i] = mi;                                                                     \
                    vc[i] = vi;                                                                     \
                    pc[i] = pc[i] - step_size * (mi / (SQRT(vi) / bc2_sqrt + eps));                 \
                }                                                                                   \
            }                                                                                       \
        }                                                                                           \
    }

    FC_SGD_BLOCK(float, fc_sgd_block_f32)
    FC_SGD_BLOCK(double, fc_sgd_block_f64)
    FC_ADAM_BLOCK(float, sqrtf, fc_adam_block_f32)
    FC_ADAM_BLOCK(double, sqrt, fc_adam_block_f64)
    """
    void fc_sgd_block_f32(float* p, const float* g, float* buf, Py_ssize_t n, float lr, float mom,
                          float damp1, float wd, int has_wd, int has_momentum, int first, int nesterov,
                          int maximize) noexcept nogil
    void fc_sgd_block_f64(double* p, const double* g, double* buf, Py_ssize_t n, double lr, double mom,
                          double damp1, double wd, int has_wd, int has_momentum, int first, int nesterov,
                          int maximize) noexcept nogil
    void fc_adam_block_f32(float* p, const float* g, float* m, float* v, float* vmax, Py_ssize_t n,
                           float one_m_b1, float b2, float one_m_b2, float wd, float decay, float bc2_sqrt,
                           float eps, float step_size, int has_wd, int decoupled, int amsgrad,
                           int maximize) noexcept nogil
    void fc_adam_block_f64(double* p, const double* g, double* m, double* v, double* vmax, Py_ssize_t n,
                           double one_m_b1, double b2, double one_m_b2, double wd, double decay,
                           double bc2_sqrt, double eps, double step_size, int has_wd, int decoupled,
                           int amsgrad, int maximize) noexcept nogil

cdef enum:
    BLOCK = 8192  # elements per parallel work item


cdef inline void _sgd_block(floating* p, const floating* g, floating* buf, Py_ssize_t n,
                            floating lr, floating momentum, floating damp1, floating wd,
                            bint has_wd, bint has_momentum, bint first, bint nesterov,
                            bint maximize) noexcept nogil:
    if floating is float:
        fc_sgd_block_f32(p, g, buf, n, lr, momentum, damp1, wd, has_wd, has_momentum, first, nesterov,
                         maximize)
    else:
        fc_sgd_block_f64(p, g, buf, n, lr, momentum, damp1, wd, has_wd, has_momentum, first, nesterov,
                         maximize)


def sgd_update(floating[::1] param, const floating[::1] grad, floating[::1] momentum_buffer,
               double lr, double momentum, double dampening, double weight_decay, bint nesterov,
               bint maximize, bint first, int threads):
    """SGD on one parameter in place: d ← ±grad + wd·p; with momentum b ← d on the ``first`` step
    else μ·b + (1−τ)·d (just + d when τ is 0), d ← d + μ·b (nesterov) or b; p ← p − lr·d.

    ``momentum_buffer`` is read and written only when momentum is non-zero (else any array).
    """
    cdef Py_ssize_t n = param.shape[0]
    cdef Py_ssize_t blocks = (n + BLOCK - 1) // BLOCK
    cdef Py_ssize_t k, start, length
    cdef bint has_momentum = momentum != 0
    cdef floating* p = &param[0] if n > 0 else NULL
    cdef const floating* g = &grad[0] if n > 0 else NULL
    cdef floating* b = &momentum_buffer[0] if has_momentum and n > 0 else NULL
    cdef floating lr_ = <floating>lr, mom = <floating>momentum
    cdef floating damp1 = <floating>(1.0 - dampening), wd = <floating>weight_decay
    cdef bint has_wd = weight_decay != 0
    if n == 0:
        return
    if threads <= 1 or blocks < 2:
        _sgd_block(p, g, b, n, lr_, mom, damp1, wd, has_wd, has_momentum, first, nesterov, maximize)
        return
    for k in prange(blocks, nogil=True, schedule='guided', num_threads=team(threads)):
        start = k * BLOCK
        length = n - start if n - start < BLOCK else BLOCK
        _sgd_block(p + start, g + start, b + start if has_momentum else NULL, length, lr_, mom, damp1, wd,
                   has_wd, has_momentum, first, nesterov, maximize)


cdef inline void _adam_block(floating* p, const floating* g, floating* m, floating* v, floating* vmax,
                             Py_ssize_t n, floating one_m_b1, floating b2, floating one_m_b2,
                             floating wd, floating decay, floating bc2_sqrt, floating eps,
                             floating step_size, bint has_wd, bint decoupled, bint amsgrad,
                             bint maximize) noexcept nogil:
    if floating is float:
        fc_adam_block_f32(p, g, m, v, vmax, n, one_m_b1, b2, one_m_b2, wd, decay, bc2_sqrt, eps, step_size,
                          has_wd, decoupled, amsgrad, maximize)
    else:
        fc_adam_block_f64(p, g, m, v, vmax, n, one_m_b1, b2, one_m_b2, wd, decay, bc2_sqrt, eps, step_size,
                          has_wd, decoupled, amsgrad, maximize)


def adam_update(floating[::1] param, const floating[::1] grad, floating[::1] exp_avg,
                floating[::1] exp_avg_sq, floating[::1] max_exp_avg_sq, double lr, double beta1,
                double beta2, double eps, double weight_decay, bint decoupled, bint amsgrad,
                bint maximize, double step_size, double bias_correction2_sqrt, int threads):
    """Adam/AdamW on one parameter in place (one step, the step count already advanced):
    d ← ±grad; p ← p·(1 − lr·wd) (decoupled) or d ← d + wd·p; m ← m + (1−β1)(d − m);
    v ← β2·v + (1−β2)·d·d; v̂ ← max(v̂, v) (amsgrad);
    p ← p − step_size · m / (√(v or v̂) / bias_correction2_sqrt + eps).

    ``max_exp_avg_sq`` is read and written only with ``amsgrad`` (else any array).
    """
    cdef Py_ssize_t n = param.shape[0]
    cdef Py_ssize_t blocks = (n + BLOCK - 1) // BLOCK
    cdef Py_ssize_t k, start, length
    cdef floating* p = &param[0] if n > 0 else NULL
    cdef const floating* g = &grad[0] if n > 0 else NULL
    cdef floating* m = &exp_avg[0] if n > 0 else NULL
    cdef floating* v = &exp_avg_sq[0] if n > 0 else NULL
    cdef floating* vmax = &max_exp_avg_sq[0] if amsgrad and n > 0 else NULL
    cdef floating one_m_b1 = <floating>(1.0 - beta1), b2 = <floating>beta2
    cdef floating one_m_b2 = <floating>(1.0 - beta2), wd = <floating>weight_decay
    cdef floating decay = <floating>(1.0 - lr * weight_decay), bc2 = <floating>bias_correction2_sqrt
    cdef floating eps_ = <floating>eps, step = <floating>step_size
    cdef bint has_wd = weight_decay != 0
    if n == 0:
        return
    if threads <= 1 or blocks < 2:
        _adam_block(p, g, m, v, vmax, n, one_m_b1, b2, one_m_b2, wd, decay, bc2, eps_, step,
                    has_wd, decoupled, amsgrad, maximize)
        return
    for k in prange(blocks, nogil=True, schedule='guided', num_threads=team(threads)):
        start = k * BLOCK
        length = n - start if n - start < BLOCK else BLOCK
        _adam_block(p + start, g + start, m + start, v + start, vmax + start if amsgrad else NULL, length,
                    one_m_b1, b2, one_m_b2, wd, decay, bc2, eps_, step, has_wd, decoupled, amsgrad,
                    maximize)
