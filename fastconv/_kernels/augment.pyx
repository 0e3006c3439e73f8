# cython: language_level=3
"""Batched data augmentation: one gather through per-image row/column index maps.

Any chain of crops, paddings (constant, edge, reflect, symmetric) and flips acts on each axis of
an image separately, so it is an index map per image and axis: output row ``y`` of image ``n``
reads source row ``rows[n, y]``, output column ``x`` reads ``cols[n, x]``; a negative entry
``-1 - s`` means "padding": the value of fill slot ``s``. Slots are numbered in the order the
paddings were applied, so where a padded row meets a padded column the later padding (the higher
slot) is the one that wrote the pixel. Python composes the maps (cheap, vectorized over the
batch); these kernels do the one pass over the pixels.

``remap_u8_hwc`` reads uint8 images (N, H, W, C) and writes float32 (N, C, OH, OW) through a
per-channel lookup table of 256 values (the conversion and normalization of every possible byte,
computed in Python with the same float32 operations as the per-sample path, so results are
bit-identical to it). ``remap_nchw`` gathers float (N, C, H, W) batches; ``normalize_nchw``
computes ``(x - mean[c]) / std[c]``. Kernels trust their inputs: every index is checked in Python.
"""
from cython cimport floating
from cython.parallel cimport prange

from ._omp cimport team


def remap_u8_hwc(const unsigned char[:, :, :, ::1] src, const Py_ssize_t[:, ::1] rows,
                 const Py_ssize_t[:, ::1] cols, const float[:, ::1] lut, const float[:, ::1] fills,
                 float[:, :, :, ::1] out, int num_threads):
    """out[n, c, y, x] = lut[c, src[n, rows[n, y], cols[n, x], c]] (or a fill slot's value)."""
    cdef Py_ssize_t n_img = out.shape[0], channels = out.shape[1]
    cdef Py_ssize_t oh = out.shape[2], ow = out.shape[3]
    cdef Py_ssize_t item, n, c, y, x, r, k
    if n_img == 0 or channels == 0 or oh == 0 or ow == 0:
        return
    with nogil:
        for item in prange(n_img * channels * oh, schedule="guided", num_threads=team(num_threads)):
            n = item // (channels * oh)
            c = (item // oh) % channels
            y = item % oh
            r = rows[n, y]
            if r < 0:
                for x in range(ow):
                    k = cols[n, x]
                    out[n, c, y, x] = fills[-1 - (k if k < r else r), c]
                continue
            for x in range(ow):
                k = cols[n, x]
                if k < 0:
                    out[n, c, y, x] = fills[-1 - k, c]
                else:
                    out[n, c, y, x] = lut[c, src[n, r, k, c]]


def remap_nchw(const floating[:, :, :, ::1] src, const Py_ssize_t[:, ::1] rows,
               const Py_ssize_t[:, ::1] cols, const floating[:, ::1] fills,
               floating[:, :, :, ::1] out, int num_threads):
    """out[n, c, y, x] = src[n, c, rows[n, y], cols[n, x]] (or a fill slot's value)."""
    cdef Py_ssize_t n_img = out.shape[0], channels = out.shape[1]
    cdef Py_ssize_t oh = out.shape[2], ow = out.shape[3]
    cdef Py_ssize_t item, n, c, y, x, r, k
    if n_img == 0 or channels == 0 or oh == 0 or ow == 0:
        return
    with nogil:
        for item in prange(n_img * channels * oh, schedule="guided", num_threads=team(num_threads)):
            n = item // (channels * oh)
            c = (item // oh) % channels
            y = item % oh
            r = rows[n, y]
            if r < 0:
                for x in range(ow):
                    k = cols[n, x]
                    out[n, c, y, x] = fills[-1 - (k if k < r else r), c]
                continue
            for x in range(ow):
                k = cols[n, x]
                if k < 0:
                    out[n, c, y, x] = fills[-1 - k, c]
                else:
                    out[n, c, y, x] = src[n, c, r, k]


def normalize_nchw(const floating[:, :, :, ::1] src, const floating[::1] mean, const floating[::1] std,
                   floating[:, :, :, ::1] out, int num_threads):
    """out[n, c] = (src[n, c] - mean[c]) / std[c] (the division kept: bit-identical to numpy's)."""
    cdef Py_ssize_t n_img = src.shape[0], channels = src.shape[1]
    cdef Py_ssize_t h = src.shape[2], w = src.shape[3]
    cdef Py_ssize_t item, n, c, y, x
    cdef floating m, s
    if n_img == 0 or channels == 0 or h == 0 or w == 0:
        return
    with nogil:
        for item in prange(n_img * channels, schedule="guided", num_threads=team(num_threads)):
            n = item // channels
            c = item % channels
            m = mean[c]
            s = std[c]
            for y in range(h):
                for x in range(w):
                    out[n, c, y, x] = (src[n, c, y, x] - m) / s
