# cython: language_level=3
"""Resampling kernels on (planes, H, W) arrays: nearest and (bi)linear interpolation, forward and backward.

Python (fastconv/nn/functional/interpolation.py) computes, per output row and column, the source
indices and weights exactly as PyTorch does and checks shapes, dtypes and contiguity; the
kernels only gather and scatter. Linear interpolation is separable: each output value is
(x[h0, w0]·λw0 + x[h0, w1]·λw1)·λh0 + (x[h1, w0]·λw0 + x[h1, w1]·λw1)·λh1, PyTorch's order of
operations. Forward passes run output rows of all planes in a prange; backward passes scatter-add
into the input gradient, so they parallelize over planes (each thread owns whole planes: no races),
and the result does not depend on the thread count.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.stdint cimport int64_t

from ._omp cimport team


def linear_forward(const floating[:, :, ::1] x, floating[:, :, ::1] out,
                   const int64_t[::1] h0, const int64_t[::1] h1, const floating[::1] lh0, const floating[::1] lh1,
                   const int64_t[::1] w0, const int64_t[::1] w1, const floating[::1] lw0, const floating[::1] lw1,
                   int threads):
    """out[p, i, j] ← (x[p, h0ᵢ, w0ⱼ]·lw0ⱼ + x[p, h0ᵢ, w1ⱼ]·lw1ⱼ)·lh0ᵢ + (same on row h1ᵢ)·lh1ᵢ."""
    cdef Py_ssize_t planes = out.shape[0], out_h = out.shape[1], out_w = out.shape[2]
    cdef Py_ssize_t r, p, i, j
    cdef const floating* row0
    cdef const floating* row1
    cdef floating* dst
    cdef floating a, b, t0, t1
    if planes == 0 or out_h == 0 or out_w == 0:
        return
    for r in prange(planes * out_h, nogil=True, schedule='guided', num_threads=team(threads)):
        p = r // out_h
        i = r - p * out_h
        row0 = &x[p, h0[i], 0]
        row1 = &x[p, h1[i], 0]
        a = lh0[i]
        b = lh1[i]
        dst = &out[p, i, 0]
        for j in range(out_w):
            t0 = row0[w0[j]] * lw0[j] + row0[w1[j]] * lw1[j]
            t1 = row1[w0[j]] * lw0[j] + row1[w1[j]] * lw1[j]
            dst[j] = t0 * a + t1 * b


def linear_backward(const floating[:, :, ::1] grad, floating[:, :, ::1] dx,
                    const int64_t[::1] h0, const int64_t[::1] h1, const floating[::1] lh0, const floating[::1] lh1,
                    const int64_t[::1] w0, const int64_t[::1] w1, const floating[::1] lw0, const floating[::1] lw1,
                    int threads):
    """dx (zeroed by the caller) += the transpose of ``linear_forward`` applied to ``grad``."""
    cdef Py_ssize_t planes = grad.shape[0], out_h = grad.shape[1], out_w = grad.shape[2]
    cdef Py_ssize_t p, i, j
    cdef floating* row0
    cdef floating* row1
    cdef const floating* src
    cdef floating a, b, v
    if planes == 0 or out_h == 0 or out_w == 0:
        return
    for p in prange(planes, nogil=True, schedule='guided', num_threads=team(threads)):
        for i in range(out_h):
            row0 = &dx[p, h0[i], 0]
            row1 = &dx[p, h1[i], 0]
            a = lh0[i]
            b = lh1[i]
            src = &grad[p, i, 0]
            for j in range(out_w):
                v = src[j]
                row0[w0[j]] += a * lw0[j] * v
                row0[w1[j]] += a * lw1[j] * v
                row1[w0[j]] += b * lw0[j] * v
                row1[w1[j]] += b * lw1[j] * v


def nearest_forward(const floating[:, :, ::1] x, floating[:, :, ::1] out, const int64_t[::1] hi,
                    const int64_t[::1] wi, int threads):
    """out[p, i, j] ← x[p, hiᵢ, wiⱼ]."""
    cdef Py_ssize_t planes = out.shape[0], out_h = out.shape[1], out_w = out.shape[2]
    cdef Py_ssize_t r, p, i, j
    cdef const floating* row
    cdef floating* dst
    if planes == 0 or out_h == 0 or out_w == 0:
        return
    for r in prange(planes * out_h, nogil=True, schedule='guided', num_threads=team(threads)):
        p = r // out_h
        i = r - p * out_h
        row = &x[p, hi[i], 0]
        dst = &out[p, i, 0]
        for j in range(out_w):
            dst[j] = row[wi[j]]


def nearest_backward(const floating[:, :, ::1] grad, floating[:, :, ::1] dx, const int64_t[::1] hi,
                     const int64_t[::1] wi, int threads):
    """dx (zeroed by the caller)[p, hiᵢ, wiⱼ] += grad[p, i, j]."""
    cdef Py_ssize_t planes = grad.shape[0], out_h = grad.shape[1], out_w = grad.shape[2]
    cdef Py_ssize_t p, i, j
    cdef floating* row
    cdef const floating* src
    if planes == 0 or out_h == 0 or out_w == 0:
        return
    for p in prange(planes, nogil=True, schedule='guided', num_threads=team(threads)):
        for i in range(out_h):
            row = &dx[p, hi[i], 0]
            src = &grad[p, i, 0]
            for j in range(out_w):
                row[wi[j]] += src[j]
