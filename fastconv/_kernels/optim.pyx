# cython: language_level=3
# distutils: extra_compile_args = -ffp-contract=off
"""Fused in-place optimizer updates: one pass over a parameter, its gradient and its state.

Each kernel performs, element by element and in the parameter's dtype, exactly the sequence of
numpy operations of the reference rule documented in fastconv/optim (each scalar rounded to the
dtype first, as numpy does with a Python float operand), so a float32 run is bit-identical to
the numpy formulation. ``-ffp-contract=off`` keeps the compiler from fusing a*b+c into an FMA,
which would round differently. Arrays are 1-D contiguous views of equal length; dtypes, shapes
and options are validated in Python (fastconv/optim/*.py) before any call here.

Large parameters are split into blocks run in a prange (``threads`` > 1); every element is
independent, so the result does not depend on the thread count.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport sqrt, sqrtf

cdef enum:
    BLOCK = 8192  # elements per parallel work item
    CHUNK = 256   # elements per vectorized stage (a stack buffer per thread)


cdef void _sgd_block(floating* p, const floating* g, floating* buf, Py_ssize_t n,
                     floating lr, floating momentum, floating damp1, floating wd,
                     bint has_wd, bint has_momentum, bint first, bint nesterov,
                     bint maximize) noexcept nogil:
    """One block, CHUNK elements at a time: the direction d = ±g (+ wd·p) goes through an
    L1-resident buffer only when it differs from g, then one loop updates b and p (each loop
    has no branches, so it vectorizes). Multiplying by 1 (τ = 0) or ±1 (maximize) is exact."""
    cdef floating d[CHUNK]
    cdef floating sign = -1 if maximize else 1
    cdef Py_ssize_t c, i, j, m, chunks = (n + CHUNK - 1) // CHUNK
    cdef floating* pc
    cdef floating* bc
    cdef const floating* src
    for j in range(chunks):
        c = j * CHUNK
        m = n - c if n - c < CHUNK else CHUNK
        pc = p + c
        src = g + c
        if has_wd:
            for i in range(m):
                d[i] = sign * src[i] + wd * pc[i]
            src = d
        elif maximize:
            for i in range(m):
                d[i] = -src[i]
            src = d
        if not has_momentum:
            for i in range(m):
                pc[i] = pc[i] - lr * src[i]
            continue
        bc = buf + c
        if first:
            for i in range(m):
                bc[i] = src[i]
        else:
            for i in range(m):
                bc[i] = momentum * bc[i] + damp1 * src[i]
        if nesterov:
            for i in range(m):
                pc[i] = pc[i] - lr * (src[i] + momentum * bc[i])
        else:
            for i in range(m):
                pc[i] = pc[i] - lr * bc[i]


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
    for k in prange(blocks, nogil=True, schedule='static', num_threads=threads):
        start = k * BLOCK
        length = n - start if n - start < BLOCK else BLOCK
        _sgd_block(p + start, g + start, b + start if has_momentum else NULL, length, lr_, mom, damp1, wd,
                   has_wd, has_momentum, first, nesterov, maximize)


cdef inline floating _sqrt(floating x) noexcept nogil:
    if floating is float:
        return sqrtf(x)
    else:
        return sqrt(x)


cdef void _adam_block(floating* p, const floating* g, floating* m, floating* v, floating* vmax,
                      Py_ssize_t n, floating one_m_b1, floating b2, floating one_m_b2,
                      floating wd, floating decay, floating bc2_sqrt, floating eps,
                      floating step_size, bint has_wd, bint decoupled, bint amsgrad,
                      bint maximize) noexcept nogil:
    """One block, CHUNK elements at a time (as _sgd_block): d = ±g (+ wd·p) through a buffer
    when it differs from g, then one loop updates m, v (v̂) and p."""
    cdef floating d[CHUNK]
    cdef floating sign = -1 if maximize else 1
    cdef floating di, mi, vi, si
    cdef Py_ssize_t c, i, j, k, chunks = (n + CHUNK - 1) // CHUNK
    cdef floating* pc
    cdef floating* mc
    cdef floating* vc
    cdef floating* xc
    cdef const floating* src
    for j in range(chunks):
        c = j * CHUNK
        k = n - c if n - c < CHUNK else CHUNK
        pc = p + c
        mc = m + c
        vc = v + c
        src = g + c
        if has_wd and decoupled:
            for i in range(k):
                pc[i] = decay * pc[i]
        if has_wd and not decoupled:
            for i in range(k):
                d[i] = sign * src[i] + wd * pc[i]
            src = d
        elif maximize:
            for i in range(k):
                d[i] = -src[i]
            src = d
        if amsgrad:
            xc = vmax + c
            for i in range(k):
                di = src[i]
                mi = mc[i] + one_m_b1 * (di - mc[i])
                vi = b2 * vc[i] + one_m_b2 * di * di
                # np.maximum(v̂, v): v̂ unless v is larger; a NaN in either wins
                si = xc[i] if (xc[i] >= vi) | (xc[i] != xc[i]) else vi
                mc[i] = mi
                vc[i] = vi
                xc[i] = si
                pc[i] = pc[i] - step_size * (mi / (_sqrt(si) / bc2_sqrt + eps))
        else:
            for i in range(k):
                di = src[i]
                mi = mc[i] + one_m_b1 * (di - mc[i])
                vi = b2 * vc[i] + one_m_b2 * di * di
                mc[i] = mi
                vc[i] = vi
                pc[i] = pc[i] - step_size * (mi / (_sqrt(vi) / bc2_sqrt + eps))


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
    for k in prange(blocks, nogil=True, schedule='static', num_threads=threads):
        start = k * BLOCK
        length = n - start if n - start < BLOCK else BLOCK
        _adam_block(p + start, g + start, m + start, v + start, vmax + start if amsgrad else NULL, length,
                    one_m_b1, b2, one_m_b2, wd, decay, bc2, eps_, step, has_wd, decoupled, amsgrad,
                    maximize)
