# cython: language_level=3
"""2-D convolution kernels: im2col, col2im and the batched GEMMs between them.

Layout: NCHW images, weights (K, C/groups·kh·kw) row-major. A column buffer holds, for one
image and a block of output rows [oy0, oy1), one row per (channel, ky, kx) and one column per
output pixel of the block, so the convolution of that block is the GEMM W·cols.

Parallel scheme (see docs/design.md, "Convolution: parallel scheme"): with enough work items
(images, or image × row-block in the forward pass) they run in a ``prange`` with one column
buffer per thread and single-threaded BLAS (the Python caller keeps the kernels' BLAS at one
thread). With fewer items than threads, items run one after another and only im2col/col2im
are parallel over channels; ``num_threads`` 1 makes everything serial (tiny problems, where a
parallel region costs more than it saves).

The kernels trust their inputs (shapes, dtypes, contiguity are checked in Python) and never
read or write outside the arrays they are given.
"""
cimport cython
from cython cimport floating
from libc.math cimport INFINITY
from cython.parallel cimport prange, threadid
from libc.string cimport memcpy, memset

from ._blas cimport gemm
from ._omp cimport part_begin, team

# Shallow GEMMs for the "small depth" path (C·kh·kw ≤ SMALL_DEPTH in nn/functional/conv.py):
# the loops of _shallow.h with their B rows taken from the column buffer (B + t·ldb).
cdef extern from *:
    """
    #include "_shallow.h"
    #define FC_ROW_STRIDED(t) (B + (t) * ldb)
    #define FC_SMALL_NN_BODY(REAL, VT) FC_NN_LOOP(REAL, VT, FC_ROW_STRIDED)
    #define FC_SMALL_NT_BODY(REAL, VT) FC_NT_LOOP(REAL, VT, FC_ROW_STRIDED)
    #define FC_NN_PARAMS(REAL) (Py_ssize_t M, Py_ssize_t T, Py_ssize_t L, const REAL* A,       \
        Py_ssize_t as_m, Py_ssize_t as_t, const REAL* B, Py_ssize_t ldb, const REAL* bias,         \
        int accumulate, REAL* C, Py_ssize_t ldc)
    #define FC_NN_ARGS (M, T, L, A, as_m, as_t, B, ldb, bias, accumulate, C, ldc)
    #define FC_NT_PARAMS(REAL) (Py_ssize_t M, Py_ssize_t T, Py_ssize_t L, const REAL* A,       \
        Py_ssize_t lda, const REAL* B, Py_ssize_t ldb, REAL* D, Py_ssize_t ldd, REAL* rowsum)
    #define FC_NT_ARGS (M, T, L, A, lda, B, ldb, D, ldd, rowsum)
    FC_DISPATCH(fc_small_nn_f, FC_SMALL_NN_BODY, float, fc_vf, FC_NN_PARAMS(float), FC_NN_ARGS)
    FC_DISPATCH(fc_small_nn_d, FC_SMALL_NN_BODY, double, fc_vd, FC_NN_PARAMS(double), FC_NN_ARGS)
    FC_DISPATCH(fc_small_nt_f, FC_SMALL_NT_BODY, float, fc_vf, FC_NT_PARAMS(float), FC_NT_ARGS)
    FC_DISPATCH(fc_small_nt_d, FC_SMALL_NT_BODY, double, fc_vd, FC_NT_PARAMS(double), FC_NT_ARGS)
    """
    int fc_isa_cap
    int fc_isa_level() noexcept nogil
    void fc_small_nn_f(Py_ssize_t M, Py_ssize_t T, Py_ssize_t L, const float* A, Py_ssize_t as_m,
                       Py_ssize_t as_t, const float* B, Py_ssize_t ldb, const float* bias,
                       int accumulate, float* C, Py_ssize_t ldc) noexcept nogil
    void fc_small_nn_d(Py_ssize_t M, Py_ssize_t T, Py_ssize_t L, const double* A, Py_ssize_t as_m,
                       Py_ssize_t as_t, const double* B, Py_ssize_t ldb, const double* bias,
                       int accumulate, double* C, Py_ssize_t ldc) noexcept nogil
    void fc_small_nt_f(Py_ssize_t M, Py_ssize_t T, Py_ssize_t L, const float* A, Py_ssize_t lda,
                       const float* B, Py_ssize_t ldb, float* D, Py_ssize_t ldd,
                       float* rowsum) noexcept nogil
    void fc_small_nt_d(Py_ssize_t M, Py_ssize_t T, Py_ssize_t L, const double* A, Py_ssize_t lda,
                       const double* B, Py_ssize_t ldb, double* D, Py_ssize_t ldd,
                       double* rowsum) noexcept nogil


cdef inline void small_nn(Py_ssize_t M, Py_ssize_t T, Py_ssize_t L, const floating* A,
                          Py_ssize_t as_m, Py_ssize_t as_t, const floating* B, Py_ssize_t ldb,
                          const floating* bias, bint accumulate, floating* C,
                          Py_ssize_t ldc) noexcept nogil:
    """C = A·B (+ bias per row, or + C) for a short inner dimension T; A read with strides."""
    if floating is float:
        fc_small_nn_f(M, T, L, A, as_m, as_t, B, ldb, bias, accumulate, C, ldc)
    else:
        fc_small_nn_d(M, T, L, A, as_m, as_t, B, ldb, bias, accumulate, C, ldc)


cdef inline void small_nt(Py_ssize_t M, Py_ssize_t T, Py_ssize_t L, const floating* A,
                          Py_ssize_t lda, const floating* B, Py_ssize_t ldb, floating* D,
                          Py_ssize_t ldd, floating* rowsum) noexcept nogil:
    """D (M×T) += A·Bᵀ with A M×L and B T×L; rowsum (unless NULL) += A's row sums."""
    if floating is float:
        fc_small_nt_f(M, T, L, A, lda, B, ldb, D, ldd, rowsum)
    else:
        fc_small_nt_d(M, T, L, A, lda, B, ldb, D, ldd, rowsum)


# the few-channel 3×3 forward on plane loops (the shallow path's, float32)
cdef extern from "_dwplanes.h" nogil:
    int fc_scv_rows(const float* xs, const float* w, const float* bias, float* y, ptrdiff_t C, ptrdiff_t H,
                    ptrdiff_t W, ptrdiff_t K, ptrdiff_t Ho, ptrdiff_t Wo, ptrdiff_t sh, ptrdiff_t sw, ptrdiff_t ph,
                    ptrdiff_t pw, ptrdiff_t oy0, ptrdiff_t oy1, float lo, float hi)


# dst[i] += src[i]: the rows of col2im. In C with restrict-qualified pointers so gcc vectorizes
# the loop (Cython's two floating* could alias, which kept it scalar: ~4 instructions per element).
cdef extern from *:
    """
    static inline void fc_add_row_f(float* __restrict__ dst, const float* __restrict__ src, Py_ssize_t n)
    { for (Py_ssize_t i = 0; i < n; i++) dst[i] += src[i]; }
    static inline void fc_add_row_d(double* __restrict__ dst, const double* __restrict__ src, Py_ssize_t n)
    { for (Py_ssize_t i = 0; i < n; i++) dst[i] += src[i]; }
    """
    void fc_add_row_f(float* dst, const float* src, Py_ssize_t n) noexcept nogil
    void fc_add_row_d(double* dst, const double* src, Py_ssize_t n) noexcept nogil


cdef inline void add_row(floating* dst, const floating* src, Py_ssize_t n) noexcept nogil:
    if floating is float:
        fc_add_row_f(dst, src, n)
    else:
        fc_add_row_d(dst, src, n)


cdef struct Geometry:
    # image the columns are taken from / scattered into
    Py_ssize_t C, H, W
    # kernel, stride, padding, dilation
    Py_ssize_t kh, kw, sh, sw, ph, pw, dh, dw
    # output grid of the convolution
    Py_ssize_t Ho, Wo


cdef inline void valid_outputs(Py_ssize_t off, Py_ssize_t stride, Py_ssize_t size,
                               Py_ssize_t n_out, Py_ssize_t* lo, Py_ssize_t* hi) noexcept nogil:
    """Outputs o in [lo, hi) read input o·stride + off inside [0, size)."""
    cdef Py_ssize_t a, b
    if off >= 0:
        a = 0
    else:
        a = (-off + stride - 1) // stride
    if size - 1 - off < 0:
        b = 0
    else:
        b = (size - 1 - off) // stride + 1
    if b > n_out:
        b = n_out
    if a > b:
        a = b
    lo[0] = a
    hi[0] = b


cdef void im2col_block(const floating* x, const Geometry* g, Py_ssize_t c0, Py_ssize_t c1,
                       Py_ssize_t oy0, Py_ssize_t oy1, floating* cols, Py_ssize_t L) noexcept nogil:
    """Columns of channels [c0, c1) for output rows [oy0, oy1), rows of cols L apart (at least
    the block's (oy1 - oy0)·Wo columns); zero where padding is read."""
    cdef Py_ssize_t c, i, j, oy, ox, iy, off, xlo, xhi, base
    cdef const floating* plane
    cdef floating* dst
    for c in range(c0, c1):
        plane = x + c * g.H * g.W
        for i in range(g.kh):
            for j in range(g.kw):
                off = j * g.dw - g.pw
                valid_outputs(off, g.sw, g.W, g.Wo, &xlo, &xhi)
                dst = cols + ((c * g.kh + i) * g.kw + j) * L
                for oy in range(oy0, oy1):
                    iy = oy * g.sh - g.ph + i * g.dh
                    if iy < 0 or iy >= g.H or xlo == xhi:
                        memset(dst, 0, g.Wo * sizeof(floating))
                    else:
                        base = iy * g.W + off
                        if xlo > 0:
                            memset(dst, 0, xlo * sizeof(floating))
                        if g.sw == 1:
                            memcpy(dst + xlo, plane + base + xlo, (xhi - xlo) * sizeof(floating))
                        else:
                            for ox in range(xlo, xhi):
                                dst[ox] = plane[base + ox * g.sw]
                        if xhi < g.Wo:
                            memset(dst + xhi, 0, (g.Wo - xhi) * sizeof(floating))
                    dst += g.Wo


cdef void col2im_block(const floating* cols, const Geometry* g, Py_ssize_t c0, Py_ssize_t c1,
                       Py_ssize_t oy0, Py_ssize_t oy1, floating* x, Py_ssize_t L) noexcept nogil:
    """Scatter-add columns of channels [c0, c1), output rows [oy0, oy1), rows of cols L apart,
    into image x."""
    cdef Py_ssize_t c, i, j, oy, ox, iy, off, xlo, xhi, base
    cdef floating* plane
    cdef const floating* src
    for c in range(c0, c1):
        plane = x + c * g.H * g.W
        for i in range(g.kh):
            for j in range(g.kw):
                off = j * g.dw - g.pw
                valid_outputs(off, g.sw, g.W, g.Wo, &xlo, &xhi)
                src = cols + ((c * g.kh + i) * g.kw + j) * L
                for oy in range(oy0, oy1):
                    iy = oy * g.sh - g.ph + i * g.dh
                    if iy >= 0 and iy < g.H:
                        base = iy * g.W + off
                        if g.sw == 1:
                            add_row(plane + base + xlo, src + xlo, xhi - xlo)
                        else:
                            for ox in range(xlo, xhi):
                                plane[base + ox * g.sw] += src[ox]
                    src += g.Wo


cdef void fill_channels(floating* y, Py_ssize_t c0, Py_ssize_t c1, Py_ssize_t plane,
                        Py_ssize_t start, Py_ssize_t length, const floating* values) noexcept nogil:
    """y[c, start:start+length] = values[c] (or 0 when values is NULL) for channels [c0, c1)."""
    cdef Py_ssize_t c, p
    cdef floating v
    for c in range(c0, c1):
        if values == NULL:
            memset(y + c * plane + start, 0, length * sizeof(floating))
        else:
            v = values[c]
            for p in range(start, start + length):
                y[c * plane + p] = v


cdef Geometry make_geometry(Py_ssize_t C, Py_ssize_t H, Py_ssize_t W, Py_ssize_t Ho, Py_ssize_t Wo,
                            int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw) noexcept:
    cdef Geometry g
    g.C = C; g.H = H; g.W = W; g.Ho = Ho; g.Wo = Wo
    g.kh = kh; g.kw = kw; g.sh = sh; g.sw = sw; g.ph = ph; g.pw = pw; g.dh = dh; g.dw = dw
    return g


cdef void forward_item(const floating* x, const floating* w, const floating* bias, floating* y,
                       floating* cols, const Geometry* g, Py_ssize_t K, Py_ssize_t groups,
                       Py_ssize_t oy0, Py_ssize_t oy1, int channel_threads,
                       bint small, float clamp_lo=-INFINITY, float clamp_hi=INFINITY) noexcept nogil:
    """y (one image, K×Ho×Wo) rows [oy0, oy1) = W·im2col(x) + bias, group by group
    (``small``: groups 1, the shallow GEMM instead of BLAS, or for float32 3×3 filters at
    dilation 1 and stride ≤ 2 on one thread the direct plane loops); im2col split over channels
    among ``channel_threads`` threads when > 1. Outputs clamped to [clamp_lo, clamp_hi] (±inf:
    none; the compiled predictor's fused ReLU/ReLU6)."""
    cdef Py_ssize_t Cg = g.C // groups, Kg = K // groups
    cdef Py_ssize_t R = Cg * g.kh * g.kw, L = (oy1 - oy0) * g.Wo, plane = g.Ho * g.Wo
    cdef Py_ssize_t c, grp
    cdef floating beta = 0
    if floating is float:  # 3×3 on few channels: the plane loops of _dwplanes.h, no column buffer
        if (small and channel_threads <= 1 and g.kh == 3 and g.kw == 3 and g.dh == 1 and g.dw == 1
                and g.sh <= 2 and g.sw <= 2):
            if fc_scv_rows(x, w, bias, y, g.C, g.H, g.W, K, g.Ho, g.Wo, g.sh, g.sw, g.ph, g.pw, oy0, oy1,
                           clamp_lo, clamp_hi) == 0:
                return
    if channel_threads > 1:
        for c in prange(g.C, schedule='guided', num_threads=team(channel_threads)):
            im2col_block(x, g, c, c + 1, oy0, oy1, cols, L)
    else:
        im2col_block(x, g, 0, g.C, oy0, oy1, cols, L)
    if small:
        small_nn(K, R, L, w, R, 1, cols, L, bias, False, y + oy0 * g.Wo, plane)
    else:
        if bias != NULL:
            fill_channels(y, 0, K, plane, oy0 * g.Wo, L, bias)
            beta = 1
        for grp in range(groups):
            gemm(False, False, <int>Kg, <int>L, <int>R, <floating>1, w + grp * Kg * R, <int>R,
                 cols + grp * R * L, <int>L, beta, y + grp * Kg * plane + oy0 * g.Wo, <int>plane)
    if clamp_lo > -INFINITY or clamp_hi < INFINITY:  # the item's rows, while in cache
        clamp_rows(y + oy0 * g.Wo, K, plane, L, clamp_lo, clamp_hi)


cdef inline void clamp_rows(floating* y, Py_ssize_t K, Py_ssize_t plane, Py_ssize_t L, float lo,
                            float hi) noexcept nogil:
    """y[k·plane + i] clamped to [lo, hi] for k < K, i < L (NaN kept)."""
    cdef Py_ssize_t k, i
    cdef floating v
    for k in range(K):
        for i in range(L):
            v = y[k * plane + i]
            v = lo if v < lo else v
            y[k * plane + i] = hi if v > hi else v


def shallow_variants():
    """Variants of the shallow loops this CPU can run (1 baseline, 2 AVX2+FMA, 3 AVX-512)."""
    return list(range(1, fc_isa_level() + 1))


def set_shallow_variant_cap(int level):
    """Let the shallow loops use at most variant ``level`` (tests); returns the previous cap."""
    global fc_isa_cap
    if level < 1 or level > 3:
        raise ValueError(f"set_shallow_variant_cap: expected a level in 1..3, got {level}")
    previous = fc_isa_cap
    fc_isa_cap = level
    return previous


def conv_forward(const floating[:, :, :, ::1] x, const floating[:, ::1] w, const floating[::1] bias,
                 bint has_bias, floating[:, :, :, ::1] y, floating[:, ::1] work,
                 int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw, int groups,
                 int block_rows, bint parallel_items, int num_threads, bint small=False):
    """y = conv2d(x, w) + bias through im2col + GEMM, in blocks of ``block_rows`` output rows.

    ``small`` (groups 1 only) replaces BLAS by the shallow GEMM loops above.

    ``work`` holds one column buffer per thread (≥ C·kh·kw·block_rows·Wo elements each).
    With ``parallel_items`` the (image, row block) items run in a prange; otherwise serially,
    with im2col parallel over channels when ``num_threads`` > 1. BLAS must run single-threaded.
    """
    cdef Py_ssize_t N = x.shape[0], K = y.shape[1], Ho = y.shape[2], Wo = y.shape[3]
    cdef Geometry g = make_geometry(x.shape[1], x.shape[2], x.shape[3], Ho, Wo,
                                    kh, kw, sh, sw, ph, pw, dh, dw)
    cdef Py_ssize_t nblocks = (Ho + block_rows - 1) // block_rows
    cdef Py_ssize_t item, n, oy0, oy1
    cdef const floating* bptr = &bias[0] if has_bias else NULL
    if N == 0 or Ho == 0 or Wo == 0:
        return
    with nogil:
        if parallel_items:
            for item in prange(N * nblocks, schedule='dynamic', num_threads=team(num_threads)):
                n = item // nblocks
                oy0 = (item % nblocks) * block_rows
                oy1 = min(oy0 + block_rows, Ho)
                forward_item(&x[n, 0, 0, 0], &w[0, 0], bptr, &y[n, 0, 0, 0],
                             &work[threadid(), 0], &g, K, groups, oy0, oy1, 1, small)
        else:
            for item in range(N * nblocks):
                n = item // nblocks
                oy0 = (item % nblocks) * block_rows
                oy1 = min(oy0 + block_rows, Ho)
                forward_item(&x[n, 0, 0, 0], &w[0, 0], bptr, &y[n, 0, 0, 0],
                             &work[0, 0], &g, K, groups, oy0, oy1, num_threads, small)


cdef void dw_panel(const floating* dy, const floating* cols, floating* dw_acc, floating* db_acc,
                   Py_ssize_t k0, Py_ssize_t k1, Py_ssize_t Kg, Py_ssize_t R, Py_ssize_t L,
                   Py_ssize_t plane_out, Py_ssize_t groups, bint small) noexcept nogil:
    """dw_acc rows [k0, k1) of every group += dY·colsᵀ (dy at the block's first output pixel)."""
    cdef Py_ssize_t grp
    if k1 <= k0:
        return
    if small:
        small_nt(k1 - k0, R, L, dy + k0 * plane_out, plane_out, cols, L, dw_acc + k0 * R, R,
                 db_acc + k0 if db_acc != NULL else NULL)
        return
    for grp in range(groups):
        gemm(False, True, <int>(k1 - k0), <int>R, <int>L, <floating>1,
             dy + (grp * Kg + k0) * plane_out, <int>plane_out,
             cols + grp * R * L, <int>L, <floating>1, dw_acc + (grp * Kg + k0) * R, <int>R)


cdef void dx_panel(const floating* w, const floating* dy, floating* dcols, Py_ssize_t l0,
                   Py_ssize_t l1, Py_ssize_t Kg, Py_ssize_t R, Py_ssize_t L, Py_ssize_t plane_out,
                   Py_ssize_t groups, bint small) noexcept nogil:
    """Columns [l0, l1) of dcols = Wᵀ·dY, group by group."""
    cdef Py_ssize_t grp
    if l1 <= l0:
        return
    if small:
        small_nn(R, Kg, l1 - l0, w, 1, R, dy + l0, plane_out, NULL, False, dcols + l0, L)
        return
    for grp in range(groups):
        gemm(True, False, <int>R, <int>(l1 - l0), <int>Kg, <floating>1, w + grp * Kg * R, <int>R,
             dy + grp * Kg * plane_out + l0, <int>plane_out,
             <floating>0, dcols + grp * R * L + l0, <int>L)


cdef void dx_channels(const floating* w, const floating* dy, floating* dcols, Py_ssize_t c0,
                      Py_ssize_t c1, Py_ssize_t Cg, Py_ssize_t Kg, Py_ssize_t taps, Py_ssize_t L,
                      Py_ssize_t plane_out, Py_ssize_t groups, bint small) noexcept nogil:
    """The dcols = Wᵀ·dY rows of input channels [c0, c1) (taps rows each), group by group."""
    cdef Py_ssize_t grp, a, b, R = Cg * taps
    for grp in range(c0 // Cg, (c1 + Cg - 1) // Cg):
        a = max(c0, grp * Cg) - grp * Cg
        b = min(c1, (grp + 1) * Cg) - grp * Cg
        if b <= a:
            continue
        if small:
            small_nn((b - a) * taps, Kg, L, w + a * taps, 1, R, dy, plane_out, NULL, False,
                     dcols + a * taps * L, L)
        else:
            gemm(True, False, <int>((b - a) * taps), <int>L, <int>Kg, <floating>1,
                 w + grp * Kg * R + a * taps, <int>R, dy + grp * Kg * plane_out, <int>plane_out,
                 <floating>0, dcols + (grp * R + a * taps) * L, <int>L)


cdef void backward_image(const floating* x, const floating* w, const floating* dy,
                         floating* dx, floating* dw_acc, floating* db_acc, const floating* dx_init,
                         floating* cols, floating* dcols, const Geometry* g, Py_ssize_t K,
                         Py_ssize_t groups, Py_ssize_t block_rows, bint need_dx, bint need_dw,
                         Py_ssize_t panels, bint small) noexcept nogil:
    """One image: dw_acc += dY·im2col(x)ᵀ and dx = col2im(Wᵀ·dY) (+ dx_init per channel);
    ``small``: groups 1, shallow GEMM loops instead of BLAS, and db_acc (unless NULL) += the
    row sums of dY (the bias gradient) in the dW pass. ``panels`` > 1: that many threads split
    im2col/col2im over channels, the dW GEMM over output channels and the dX GEMM over columns
    (each thread writes its own rows or columns, so no atomics); 1 runs serially."""
    cdef Py_ssize_t Cg = g.C // groups, Kg = K // groups
    cdef Py_ssize_t R = Cg * g.kh * g.kw, plane_out = g.Ho * g.Wo
    cdef Py_ssize_t oy0, oy1, L, c, p
    cdef bint parallel_channels = panels > 1
    if need_dx:
        if parallel_channels:
            for c in prange(g.C, schedule='guided', num_threads=team(<int>panels)):
                fill_channels(dx, c, c + 1, g.H * g.W, 0, g.H * g.W, dx_init)
        else:
            fill_channels(dx, 0, g.C, g.H * g.W, 0, g.H * g.W, dx_init)
    oy0 = 0
    while oy0 < g.Ho:
        oy1 = min(oy0 + block_rows, g.Ho)
        L = (oy1 - oy0) * g.Wo
        if need_dw:
            if parallel_channels:
                for c in prange(g.C, schedule='guided', num_threads=team(<int>panels)):
                    im2col_block(x, g, c, c + 1, oy0, oy1, cols, L)
                for p in prange(panels, schedule='dynamic', num_threads=team(<int>panels)):
                    dw_panel(dy + oy0 * g.Wo, cols, dw_acc, db_acc, p * Kg // panels,
                             (p + 1) * Kg // panels, Kg, R, L, plane_out, groups, small)
            else:
                im2col_block(x, g, 0, g.C, oy0, oy1, cols, L)
                dw_panel(dy + oy0 * g.Wo, cols, dw_acc, db_acc, 0, Kg, Kg, R, L, plane_out,
                         groups, small)
        if need_dx:
            if parallel_channels and g.C >= 2 * panels:
                # each thread the column rows of its channels, then their col2im: no barrier
                # between the two, and a block of few columns (a 7×7 image) stays whole
                for p in prange(panels, schedule='dynamic', num_threads=team(<int>panels)):
                    dx_channels(w, dy + oy0 * g.Wo, dcols, p * g.C // panels, (p + 1) * g.C // panels,
                                Cg, Kg, g.kh * g.kw, L, plane_out, groups, small)
                    col2im_block(dcols, g, p * g.C // panels, (p + 1) * g.C // panels, oy0, oy1, dx, L)
            elif parallel_channels:
                for p in prange(panels, schedule='dynamic', num_threads=team(<int>panels)):
                    dx_panel(w, dy + oy0 * g.Wo, dcols, p * L // panels, (p + 1) * L // panels,
                             Kg, R, L, plane_out, groups, small)
                for c in prange(g.C, schedule='guided', num_threads=team(<int>panels)):
                    col2im_block(dcols, g, c, c + 1, oy0, oy1, dx, L)
            else:
                dx_panel(w, dy + oy0 * g.Wo, dcols, 0, L, Kg, R, L, plane_out, groups, small)
                col2im_block(dcols, g, 0, g.C, oy0, oy1, dx, L)
        oy0 = oy1


cdef void backward_images(const floating* x, const floating* w, const floating* dy, floating* dx,
                          floating* dw_acc, const floating* dx_init, floating* cols, floating* dcols,
                          floating* dyb, const Geometry* g, Py_ssize_t K, Py_ssize_t nb,
                          bint need_dx, bint need_dw, Py_ssize_t panels) noexcept nogil:
    """nb images side by side (groups 1, GEMM): dY gathered into one K × nb·P matrix ``dyb`` and
    the images' columns into one R × nb·P buffer (P = Ho·Wo), so the dW product is nb·P deep and
    the dX product nb·P wide instead of nb products over P pixels each (a 7×7 output: 49 deep,
    the K × R gradient read and written once per image). ``panels`` > 1 threads split the gather
    over channels, im2col/col2im over channels and the products as ``backward_image`` does."""
    cdef Py_ssize_t R = g.C * g.kh * g.kw, P = g.Ho * g.Wo, L = nb * P, image = g.C * g.H * g.W
    cdef Py_ssize_t i, k, c, p, q0, q1
    cdef bint par = panels > 1
    if par:
        for k in prange(K, schedule='guided', num_threads=team(<int>panels)):
            for i in range(nb):
                memcpy(dyb + k * L + i * P, dy + (i * K + k) * P, P * sizeof(floating))
    else:
        for k in range(K):
            for i in range(nb):
                memcpy(dyb + k * L + i * P, dy + (i * K + k) * P, P * sizeof(floating))
    if need_dw:
        if par:
            for c in prange(g.C, schedule='guided', num_threads=team(<int>panels)):
                for i in range(nb):
                    im2col_block(x + i * image, g, c, c + 1, 0, g.Ho, cols + i * P, L)
        else:
            for i in range(nb):
                im2col_block(x + i * image, g, 0, g.C, 0, g.Ho, cols + i * P, L)
        if par:
            for p in prange(panels, schedule='dynamic', num_threads=team(<int>panels)):
                q0 = p * K // panels
                q1 = (p + 1) * K // panels
                if q1 > q0:
                    gemm(False, True, <int>(q1 - q0), <int>R, <int>L, <floating>1, dyb + q0 * L, <int>L,
                         cols, <int>L, <floating>1, dw_acc + q0 * R, <int>R)
        else:
            gemm(False, True, <int>K, <int>R, <int>L, <floating>1, dyb, <int>L, cols, <int>L,
                 <floating>1, dw_acc, <int>R)
    if need_dx:
        if par:
            for p in prange(panels, schedule='dynamic', num_threads=team(<int>panels)):
                q0 = p * L // panels
                q1 = (p + 1) * L // panels
                if q1 > q0:
                    gemm(True, False, <int>R, <int>(q1 - q0), <int>K, <floating>1, w, <int>R,
                         dyb + q0, <int>L, <floating>0, dcols + q0, <int>L)
            for c in prange(g.C, schedule='guided', num_threads=team(<int>panels)):
                for i in range(nb):
                    fill_channels(dx + i * image, c, c + 1, g.H * g.W, 0, g.H * g.W, dx_init)
                    col2im_block(dcols + i * P, g, c, c + 1, 0, g.Ho, dx + i * image, L)
        else:
            gemm(True, False, <int>R, <int>L, <int>K, <floating>1, w, <int>R, dyb, <int>L,
                 <floating>0, dcols, <int>L)
            for i in range(nb):
                fill_channels(dx + i * image, 0, g.C, g.H * g.W, 0, g.H * g.W, dx_init)
                col2im_block(dcols + i * P, g, 0, g.C, 0, g.Ho, dx + i * image, L)


cdef void backward_range(const floating* x, const floating* w, const floating* dy, floating* dx,
                         floating* dw_acc, floating* db_acc, const floating* dx_init, floating* cols,
                         floating* dcols, floating* dyb, const Geometry* g, Py_ssize_t K,
                         Py_ssize_t groups, Py_ssize_t block_rows, Py_ssize_t n0, Py_ssize_t n1,
                         Py_ssize_t images, bint side_dw, bint need_dx, bint need_dw,
                         Py_ssize_t panels, bint small) noexcept nogil:
    """Images [n0, n1) in order: ``images`` at a time side by side (``backward_images``) when
    more than one, the dW product too only with ``side_dw``; else one by one (``backward_image``)."""
    cdef Py_ssize_t n = n0, m, i, image = g.C * g.H * g.W, out = K * g.Ho * g.Wo
    while n < n1:
        m = min(images, n1 - n)
        if m > 1:
            if need_dx or side_dw:
                backward_images(x + n * image if need_dw else NULL, w, dy + n * out,
                                dx + n * image if need_dx else NULL, dw_acc, dx_init, cols, dcols,
                                dyb, g, K, m, need_dx, need_dw and side_dw, panels)
            if need_dw and not side_dw:
                for i in range(n, n + m):
                    backward_image(x + i * image, w, dy + i * out, NULL, dw_acc, db_acc, dx_init,
                                   cols, dcols, g, K, groups, block_rows, False, True, panels, small)
        else:
            backward_image(x + n * image if need_dw else NULL, w, dy + n * out,
                           dx + n * image if need_dx else NULL, dw_acc, db_acc, dx_init, cols, dcols,
                           g, K, groups, block_rows, need_dx, need_dw, panels, small)
        n += m


def conv_backward(const floating[:, :, :, ::1] x, const floating[:, ::1] w,
                  const floating[:, :, :, ::1] dy, floating[:, :, :, ::1] dx,
                  floating[:, ::1] dw_parts, floating[:, ::1] db_parts, bint need_db,
                  const floating[::1] dx_init, bint has_dx_init,
                  floating[:, ::1] work, floating[:, ::1] dwork, floating[:, ::1] gather,
                  bint need_dx, bint need_dw, Py_ssize_t C, Py_ssize_t H, Py_ssize_t W,
                  int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw, int groups,
                  int block_rows, bint parallel_items, int num_threads, bint small=False,
                  Py_ssize_t images=1, bint side_dw=False):
    """Gradients of y = conv2d(x, w): dw_parts[p] += dY·colsᵀ per partition p, dx = col2im(Wᵀ·dY).

    The image (x and dx) is N×C×H×W with N from dy; ``x`` is read only when ``need_dw``,
    ``w`` only when ``need_dx``, ``dx`` written only when ``need_dx``. ``dx_init`` (per
    channel of dx) is the value dx starts from — conv_transpose2d's bias. ``work``/``dwork``
    hold one column buffer per thread. With ``parallel_items`` the images are cut into
    ``num_threads`` contiguous partitions, each summed in image order into its own row of
    ``dw_parts`` by whichever thread takes it, so the sums do not depend on how many threads run;
    the caller adds the rows up in order. ``small`` (groups 1 only) replaces BLAS by the shallow
    GEMM loops above; with it and ``need_dw``, ``need_db`` also accumulates dY's channel sums
    into ``db_parts[p]`` (K each). ``images`` > 1 (groups 1, not ``small``, whole images per
    column buffer): that many images at a time side by side (``backward_images``), for the dW
    product only with ``side_dw``; ``work`` and ``dwork`` then hold R × images·Ho·Wo columns and
    ``gather`` K × images·Ho·Wo per thread.
    """
    cdef Py_ssize_t N = dy.shape[0], K = dy.shape[1], Ho = dy.shape[2], Wo = dy.shape[3]
    cdef Geometry g = make_geometry(C, H, W, Ho, Wo,
                                    kh, kw, sh, sw, ph, pw, dh, dw)
    cdef Py_ssize_t n, t, p
    cdef Py_ssize_t image = g.C * g.H * g.W
    cdef const floating* xptr = &x[0, 0, 0, 0] if need_dw else NULL
    cdef const floating* wptr = &w[0, 0] if need_dx else NULL
    cdef floating* dxptr = &dx[0, 0, 0, 0] if need_dx else NULL
    cdef floating* dwptr = &dw_parts[0, 0] if need_dw else NULL
    cdef bint fuse_db = small and need_dw and need_db
    cdef floating* dbptr = &db_parts[0, 0] if fuse_db else NULL
    cdef Py_ssize_t bstride = db_parts.shape[1]
    cdef floating* cptr = &work[0, 0] if need_dw else NULL
    cdef floating* dcptr = &dwork[0, 0] if need_dx else NULL
    cdef const floating* init = &dx_init[0] if has_dx_init else NULL
    cdef floating* gptr = &gather[0, 0] if images > 1 else NULL
    cdef Py_ssize_t wstride = work.shape[1], dwstride = dwork.shape[1], pstride = dw_parts.shape[1]
    cdef Py_ssize_t gstride = gather.shape[1]
    cdef Py_ssize_t span = images * Ho * Wo
    if images > 1 and (groups != 1 or small or block_rows < Ho
                       or gather.shape[1] < K * span
                       or (need_dw and side_dw and work.shape[1] < C * kh * kw * span)
                       or (need_dw and work.shape[1] < C * kh * kw * Ho * Wo)
                       or (need_dx and dwork.shape[1] < C * kh * kw * span)):
        raise ValueError(f"conv_backward: {images} images side by side need groups 1, GEMM products, "
                         f"whole images per block and buffers of {C * kh * kw * span} columns and "
                         f"{K * span} gathered values per thread; got groups {groups}, small {small}, "
                         f"block_rows {block_rows} of {Ho}, buffers {work.shape[1]}, {dwork.shape[1]}, "
                         f"{gather.shape[1]}")
    if N == 0 or not (need_dx or need_dw):
        return
    if Ho == 0 or Wo == 0:
        if need_dx:
            with nogil:
                for n in range(N):
                    fill_channels(dxptr + n * image, 0, g.C, g.H * g.W, 0, g.H * g.W, init)
        return
    with nogil:
        if parallel_items:
            for p in prange(num_threads, schedule='dynamic', num_threads=team(num_threads)):
                t = threadid()
                backward_range(xptr, wptr, &dy[0, 0, 0, 0], dxptr,
                               dwptr + p * pstride if need_dw else NULL,
                               dbptr + p * bstride if fuse_db else NULL, init,
                               cptr + t * wstride if need_dw else NULL,
                               dcptr + t * dwstride if need_dx else NULL,
                               gptr + t * gstride if images > 1 else NULL, &g, K, groups, block_rows,
                               part_begin(p, num_threads, N), part_begin(p + 1, num_threads, N),
                               images, side_dw, need_dx, need_dw, 1, small)
        else:
            backward_range(xptr, wptr, &dy[0, 0, 0, 0], dxptr, dwptr, dbptr, init, cptr, dcptr,
                           gptr if images > 1 else NULL, &g, K, groups, block_rows, 0, N, images,
                           side_dw, need_dx, need_dw, max(num_threads, 1), small)


# ---- nogil entry points (conv.pxd): the compiled predictor's executor calls these -----------------

cdef void conv_forward_f32(const float* x, const float* w, const float* bias, float* y,
                           float* work, Py_ssize_t work_stride, Py_ssize_t N, Py_ssize_t C,
                           Py_ssize_t H, Py_ssize_t W, Py_ssize_t K, Py_ssize_t Ho, Py_ssize_t Wo,
                           int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw,
                           int groups, int block_rows, bint parallel_items, int num_threads,
                           bint small, float clamp_lo, float clamp_hi) noexcept nogil:
    """``conv_forward`` on raw contiguous float32 arrays: x (N, C, H, W), w (K, C/groups·kh·kw),
    bias (K) or NULL, y (N, K, Ho, Wo), clamped to [clamp_lo, clamp_hi] (±inf: none); ``work``
    holds one column buffer per thread, ``work_stride`` elements apart. Serial when
    ``parallel_items`` is false and ``num_threads`` is 1 (no parallel region: callable from
    inside one)."""
    cdef Geometry g
    g.C = C; g.H = H; g.W = W; g.Ho = Ho; g.Wo = Wo
    g.kh = kh; g.kw = kw; g.sh = sh; g.sw = sw; g.ph = ph; g.pw = pw; g.dh = dh; g.dw = dw
    cdef Py_ssize_t nblocks = (Ho + block_rows - 1) // block_rows
    cdef Py_ssize_t item, n, oy0, oy1, image = C * H * W, out = K * Ho * Wo
    if N == 0 or Ho == 0 or Wo == 0:
        return
    if parallel_items:
        for item in prange(N * nblocks, schedule='static', num_threads=team(num_threads)):
            n = item // nblocks
            oy0 = (item % nblocks) * block_rows
            oy1 = min(oy0 + block_rows, Ho)
            forward_item(x + n * image, w, bias, y + n * out, work + threadid() * work_stride, &g,
                         K, groups, oy0, oy1, False, small, clamp_lo, clamp_hi)
    else:
        for item in range(N * nblocks):
            n = item // nblocks
            oy0 = (item % nblocks) * block_rows
            oy1 = min(oy0 + block_rows, Ho)
            forward_item(x + n * image, w, bias, y + n * out, work, &g, K, groups, oy0, oy1,
                         num_threads > 1, small, clamp_lo, clamp_hi)


cdef void conv_transpose_forward_f32(const float* x, const float* w, const float* bias, float* y,
                                     float* dwork, Py_ssize_t work_stride, Py_ssize_t N,
                                     Py_ssize_t C, Py_ssize_t H, Py_ssize_t W, Py_ssize_t K,
                                     Py_ssize_t Ho, Py_ssize_t Wo, int kh, int kw, int sh, int sw,
                                     int ph, int pw, int dh, int dw, int groups, int block_rows,
                                     bint parallel_items, int num_threads) noexcept nogil:
    """conv_transpose2d as conv2d's input-gradient pass (``conv_backward`` with dX only): x is
    conv2d's dY (N, K, Ho, Wo), w its (K, C/groups·kh·kw) weight matrix, y (N, C, H, W) starts
    from bias (C) or 0; ``dwork``: one column buffer per thread, ``work_stride`` apart."""
    cdef Geometry g
    g.C = C; g.H = H; g.W = W; g.Ho = Ho; g.Wo = Wo
    g.kh = kh; g.kw = kw; g.sh = sh; g.sw = sw; g.ph = ph; g.pw = pw; g.dh = dh; g.dw = dw
    cdef Py_ssize_t n, image = C * H * W, out = K * Ho * Wo
    if N == 0:
        return
    if Ho == 0 or Wo == 0:
        for n in range(N):
            fill_channels(y + n * image, 0, C, H * W, 0, H * W, bias)
        return
    if parallel_items:
        for n in prange(N, schedule='static', num_threads=team(num_threads)):
            backward_image(<const float*>NULL, w, x + n * out, y + n * image, <float*>NULL,
                           <float*>NULL, bias, <float*>NULL, dwork + threadid() * work_stride, &g,
                           K, groups, block_rows, True, False, 1, False)
    else:
        for n in range(N):
            backward_image(<const float*>NULL, w, x + n * out, y + n * image, <float*>NULL,
                           <float*>NULL, bias, <float*>NULL, dwork, &g, K, groups, block_rows,
                           True, False, max(num_threads, 1), False)
