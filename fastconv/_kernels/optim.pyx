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

    /* The direction d = +-g (+ wd*p) of a chunk, through the buffer d only when it differs from g
       (the first stage of every rule below; as in FC_SGD_BLOCK). */
    #define FC_DIRECTION(T, src, g, pc, d, m)                                                       \
        const T *src = (g);                                                                         \
        if (has_wd) {                                                                               \
            const T sign = maximize ? (T)-1 : (T)1;                                                 \
            for (ptrdiff_t i = 0; i < m; i++) d[i] = sign * (g)[i] + wd * pc[i];                    \
            src = d;                                                                                \
        } else if (maximize) {                                                                      \
            for (ptrdiff_t i = 0; i < m; i++) d[i] = -(g)[i];                                       \
            src = d;                                                                                \
        }

    /* Adagrad: s <- s + d*d; p <- p - clr * (d / (sqrt(s) + eps)). */
    #define FC_ADAGRAD_BLOCK(T, SQRT, NAME)                                                         \
    FC_OPTIM_CLONES static void NAME(T *p, const T *g, T *sum, ptrdiff_t n, T clr, T wd, T eps,    \
                                     int has_wd, int maximize) {                                    \
        T d[FC_OPTIM_CHUNK];                                                                        \
        for (ptrdiff_t c = 0; c < n; c += FC_OPTIM_CHUNK) {                                         \
            const ptrdiff_t m = n - c < FC_OPTIM_CHUNK ? n - c : FC_OPTIM_CHUNK;                    \
            T *pc = p + c, *sc = sum + c;                                                           \
            FC_DIRECTION(T, src, g + c, pc, d, m)                                                   \
            for (ptrdiff_t i = 0; i < m; i++) {                                                     \
                const T di = src[i];                                                                \
                const T si = sc[i] + di * di;                                                       \
                sc[i] = si;                                                                         \
                pc[i] = pc[i] - clr * (di / (SQRT(si) + eps));                                      \
            }                                                                                       \
        }                                                                                           \
    }

    /* RMSprop: v <- alpha*v + (1-alpha)*d*d; centered: a <- a + (1-alpha)*(d - a), r = sqrt(v - a*a)
       + eps, else r = sqrt(v) + eps; with momentum b <- mu*b + d/r, p <- p - lr*b, else
       p <- p - lr*(d/r). */
    #define FC_RMSPROP_BLOCK(T, SQRT, NAME)                                                         \
    FC_OPTIM_CLONES static void NAME(T *p, const T *g, T *sq, T *gavg, T *buf, ptrdiff_t n, T alpha,\
                                     T one_m_alpha, T lr, T eps, T mom, T wd, int has_wd,           \
                                     int centered, int has_momentum, int maximize) {                \
        T d[FC_OPTIM_CHUNK], r[FC_OPTIM_CHUNK];                                                     \
        for (ptrdiff_t c = 0; c < n; c += FC_OPTIM_CHUNK) {                                         \
            const ptrdiff_t m = n - c < FC_OPTIM_CHUNK ? n - c : FC_OPTIM_CHUNK;                    \
            T *pc = p + c, *vc = sq + c;                                                            \
            FC_DIRECTION(T, src, g + c, pc, d, m)                                                   \
            for (ptrdiff_t i = 0; i < m; i++) vc[i] = alpha * vc[i] + one_m_alpha * src[i] * src[i];\
            if (centered) {                                                                         \
                T *ac = gavg + c;                                                                   \
                for (ptrdiff_t i = 0; i < m; i++) {                                                 \
                    const T ai = ac[i] + one_m_alpha * (src[i] - ac[i]);                            \
                    ac[i] = ai;                                                                     \
                    r[i] = SQRT(vc[i] - ai * ai) + eps;                                             \
                }                                                                                   \
            } else {                                                                                \
                for (ptrdiff_t i = 0; i < m; i++) r[i] = SQRT(vc[i]) + eps;                         \
            }                                                                                       \
            if (has_momentum) {                                                                     \
                T *bc = buf + c;                                                                    \
                for (ptrdiff_t i = 0; i < m; i++) {                                                 \
                    const T bi = mom * bc[i] + src[i] / r[i];                                       \
                    bc[i] = bi;                                                                     \
                    pc[i] = pc[i] - lr * bi;                                                        \
                }                                                                                   \
            } else {                                                                                \
                for (ptrdiff_t i = 0; i < m; i++) pc[i] = pc[i] - lr * (src[i] / r[i]);             \
            }                                                                                       \
        }                                                                                           \
    }

    /* Adadelta: v <- rho*v + (1-rho)*d*d; u = sqrt(a + eps) / sqrt(v + eps) * d;
       a <- rho*a + (1-rho)*u*u; p <- p - lr*u. */
    #define FC_ADADELTA_BLOCK(T, SQRT, NAME)                                                        \
    FC_OPTIM_CLONES static void NAME(T *p, const T *g, T *sq, T *acc, ptrdiff_t n, T rho,          \
                                     T one_m_rho, T lr, T eps, T wd, int has_wd, int maximize) {    \
        T d[FC_OPTIM_CHUNK];                                                                        \
        for (ptrdiff_t c = 0; c < n; c += FC_OPTIM_CHUNK) {                                         \
            const ptrdiff_t m = n - c < FC_OPTIM_CHUNK ? n - c : FC_OPTIM_CHUNK;                    \
            T *pc = p + c, *vc = sq + c, *ac = acc + c;                                             \
            FC_DIRECTION(T, src, g + c, pc, d, m)                                                   \
            for (ptrdiff_t i = 0; i < m; i++) {                                                     \
                const T di = src[i];                                                                \
                const T vi = rho * vc[i] + one_m_rho * di * di;                                     \
                const T ui = SQRT(ac[i] + eps) / SQRT(vi + eps) * di;                               \
                vc[i] = vi;                                                                         \
                ac[i] = rho * ac[i] + one_m_rho * ui * ui;                                          \
                pc[i] = pc[i] - lr * ui;                                                            \
            }                                                                                       \
        }                                                                                           \
    }

    FC_SGD_BLOCK(float, fc_sgd_block_f32)
    FC_SGD_BLOCK(double, fc_sgd_block_f64)
    FC_ADAM_BLOCK(float, sqrtf, fc_adam_block_f32)
    FC_ADAM_BLOCK(double, sqrt, fc_adam_block_f64)
    FC_ADAGRAD_BLOCK(float, sqrtf, fc_adagrad_block_f32)
    FC_ADAGRAD_BLOCK(double, sqrt, fc_adagrad_block_f64)
    FC_RMSPROP_BLOCK(float, sqrtf, fc_rmsprop_block_f32)
    FC_RMSPROP_BLOCK(double, sqrt, fc_rmsprop_block_f64)
    FC_ADADELTA_BLOCK(float, sqrtf, fc_adadelta_block_f32)
    FC_ADADELTA_BLOCK(double, sqrt, fc_adadelta_block_f64)
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
    void fc_adagrad_block_f32(float* p, const float* g, float* sum, Py_ssize_t n, float clr, float wd, float eps,
                              int has_wd, int maximize) noexcept nogil
    void fc_adagrad_block_f64(double* p, const double* g, double* sum, Py_ssize_t n, double clr, double wd,
                              double eps, int has_wd, int maximize) noexcept nogil
    void fc_rmsprop_block_f32(float* p, const float* g, float* sq, float* gavg, float* buf, Py_ssize_t n,
                              float alpha, float one_m_alpha, float lr, float eps, float mom, float wd, int has_wd,
                              int centered, int has_momentum, int maximize) noexcept nogil
    void fc_rmsprop_block_f64(double* p, const double* g, double* sq, double* gavg, double* buf, Py_ssize_t n,
                              double alpha, double one_m_alpha, double lr, double eps, double mom, double wd,
                              int has_wd, int centered, int has_momentum, int maximize) noexcept nogil
    void fc_adadelta_block_f32(float* p, const float* g, float* sq, float* acc, Py_ssize_t n, float rho,
                               float one_m_rho, float lr, float eps, float wd, int has_wd, int maximize) noexcept nogil
    void fc_adadelta_block_f64(double* p, const double* g, double* sq, double* acc, Py_ssize_t n, double rho,
                               double one_m_rho, double lr, double eps, double wd, int has_wd,
                               int maximize) noexcept nogil

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


cdef inline void _adagrad_block(floating* p, const floating* g, floating* s, Py_ssize_t n, floating clr,
                                floating wd, floating eps, bint has_wd, bint maximize) noexcept nogil:
    if floating is float:
        fc_adagrad_block_f32(p, g, s, n, clr, wd, eps, has_wd, maximize)
    else:
        fc_adagrad_block_f64(p, g, s, n, clr, wd, eps, has_wd, maximize)


def adagrad_update(floating[::1] param, const floating[::1] grad, floating[::1] state_sum, double clr,
                   double weight_decay, double eps, bint maximize, int threads):
    """Adagrad on one parameter in place: d ← ±grad (+ wd·p); s ← s + d·d; p ← p − clr·(d / (√s + eps)),
    clr = lr / (1 + (step − 1)·lr_decay) computed by the caller."""
    cdef Py_ssize_t n = param.shape[0]
    cdef Py_ssize_t blocks = (n + BLOCK - 1) // BLOCK
    cdef Py_ssize_t k, start, length
    cdef floating* p = &param[0] if n > 0 else NULL
    cdef const floating* g = &grad[0] if n > 0 else NULL
    cdef floating* s = &state_sum[0] if n > 0 else NULL
    cdef floating clr_ = <floating>clr, wd = <floating>weight_decay, eps_ = <floating>eps
    cdef bint has_wd = weight_decay != 0
    if n == 0:
        return
    if threads <= 1 or blocks < 2:
        _adagrad_block(p, g, s, n, clr_, wd, eps_, has_wd, maximize)
        return
    for k in prange(blocks, nogil=True, schedule='guided', num_threads=team(threads)):
        start = k * BLOCK
        length = n - start if n - start < BLOCK else BLOCK
        _adagrad_block(p + start, g + start, s + start, length, clr_, wd, eps_, has_wd, maximize)


cdef inline void _rmsprop_block(floating* p, const floating* g, floating* sq, floating* gavg, floating* buf,
                                Py_ssize_t n, floating alpha, floating one_m_alpha, floating lr, floating eps,
                                floating mom, floating wd, bint has_wd, bint centered, bint has_momentum,
                                bint maximize) noexcept nogil:
    if floating is float:
        fc_rmsprop_block_f32(p, g, sq, gavg, buf, n, alpha, one_m_alpha, lr, eps, mom, wd, has_wd, centered,
                             has_momentum, maximize)
    else:
        fc_rmsprop_block_f64(p, g, sq, gavg, buf, n, alpha, one_m_alpha, lr, eps, mom, wd, has_wd, centered,
                             has_momentum, maximize)


def rmsprop_update(floating[::1] param, const floating[::1] grad, floating[::1] square_avg,
                   floating[::1] grad_avg, floating[::1] momentum_buffer, double lr, double alpha, double eps,
                   double weight_decay, double momentum, bint centered, bint maximize, int threads):
    """RMSprop on one parameter in place: d ← ±grad (+ wd·p); v ← α·v + (1−α)·d·d; centered:
    a ← a + (1−α)·(d − a), r = √(v − a·a) + eps, else r = √v + eps; with momentum
    b ← μ·b + d/r, p ← p − lr·b, else p ← p − lr·(d/r).

    ``grad_avg`` is read and written only when centered, ``momentum_buffer`` only with momentum.
    """
    cdef Py_ssize_t n = param.shape[0]
    cdef Py_ssize_t blocks = (n + BLOCK - 1) // BLOCK
    cdef Py_ssize_t k, start, length
    cdef bint has_momentum = momentum != 0
    cdef floating* p = &param[0] if n > 0 else NULL
    cdef const floating* g = &grad[0] if n > 0 else NULL
    cdef floating* v = &square_avg[0] if n > 0 else NULL
    cdef floating* a = &grad_avg[0] if centered and n > 0 else NULL
    cdef floating* b = &momentum_buffer[0] if has_momentum and n > 0 else NULL
    cdef floating alpha_ = <floating>alpha, one_m_alpha = <floating>(1.0 - alpha), lr_ = <floating>lr
    cdef floating eps_ = <floating>eps, mom = <floating>momentum, wd = <floating>weight_decay
    cdef bint has_wd = weight_decay != 0
    if n == 0:
        return
    if threads <= 1 or blocks < 2:
        _rmsprop_block(p, g, v, a, b, n, alpha_, one_m_alpha, lr_, eps_, mom, wd, has_wd, centered,
                       has_momentum, maximize)
        return
    for k in prange(blocks, nogil=True, schedule='guided', num_threads=team(threads)):
        start = k * BLOCK
        length = n - start if n - start < BLOCK else BLOCK
        _rmsprop_block(p + start, g + start, v + start, a + start if centered else NULL,
                       b + start if has_momentum else NULL, length, alpha_, one_m_alpha, lr_, eps_, mom, wd,
                       has_wd, centered, has_momentum, maximize)


cdef inline void _adadelta_block(floating* p, const floating* g, floating* sq, floating* acc, Py_ssize_t n,
                                 floating rho, floating one_m_rho, floating lr, floating eps, floating wd,
                                 bint has_wd, bint maximize) noexcept nogil:
    if floating is float:
        fc_adadelta_block_f32(p, g, sq, acc, n, rho, one_m_rho, lr, eps, wd, has_wd, maximize)
    else:
        fc_adadelta_block_f64(p, g, sq, acc, n, rho, one_m_rho, lr, eps, wd, has_wd, maximize)


def adadelta_update(floating[::1] param, const floating[::1] grad, floating[::1] square_avg,
                    floating[::1] acc_delta, double lr, double rho, double eps, double weight_decay,
                    bint maximize, int threads):
    """Adadelta on one parameter in place: d ← ±grad (+ wd·p); v ← ρ·v + (1−ρ)·d·d;
    u = √(a + eps) / √(v + eps) · d; a ← ρ·a + (1−ρ)·u·u; p ← p − lr·u."""
    cdef Py_ssize_t n = param.shape[0]
    cdef Py_ssize_t blocks = (n + BLOCK - 1) // BLOCK
    cdef Py_ssize_t k, start, length
    cdef floating* p = &param[0] if n > 0 else NULL
    cdef const floating* g = &grad[0] if n > 0 else NULL
    cdef floating* v = &square_avg[0] if n > 0 else NULL
    cdef floating* a = &acc_delta[0] if n > 0 else NULL
    cdef floating rho_ = <floating>rho, one_m_rho = <floating>(1.0 - rho), lr_ = <floating>lr
    cdef floating eps_ = <floating>eps, wd = <floating>weight_decay
    cdef bint has_wd = weight_decay != 0
    if n == 0:
        return
    if threads <= 1 or blocks < 2:
        _adadelta_block(p, g, v, a, n, rho_, one_m_rho, lr_, eps_, wd, has_wd, maximize)
        return
    for k in prange(blocks, nogil=True, schedule='guided', num_threads=team(threads)):
        start = k * BLOCK
        length = n - start if n - start < BLOCK else BLOCK
        _adadelta_block(p + start, g + start, v + start, a + start, length, rho_, one_m_rho, lr_, eps_, wd,
                        has_wd, maximize)
