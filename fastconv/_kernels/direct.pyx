# cython: language_level=3
"""Implicit-GEMM ("direct") convolution for shallow stride-1 convolutions: no column buffer.

With stride 1, row t = (c, i, j) of the column matrix that im2col would build is a contiguous
run of the zero-padded image (C, Hp, Wp), starting at off[t] = c·Hp·Wp + i·dh·Wp + j·dw, when
the output pixels are numbered in the padded width, q = oy·Wp + ox. So

* forward: y = W·cols with the output pixels numbered q = oy·Wo + ox instead, reading kw
  shifted copies of the image, V_j[c, r, col] = x[c, r − ph, col + j·dw − pw] (zeros outside x,
  Ho + dh·(kh − 1) rows of Wo columns), where row t = (c, i, j) of cols starts at row i·dh of
  V_j: the loops write y itself, nothing to crop (1×3×32×32→16 forward kernel 0.87–0.94 of
  the padded-image scheme's time, alternated in one process on Zen 4);
* dW (and db) = dY·colsᵀ with dY widened to Wp columns, zeros in the extra ones;
* dX is the stride-1 convolution of dY, zero-padded by d·(k − 1) − p, with the filter
  transposed and rotated by 180° (needs p ≤ d·(k − 1), checked by the caller).

Compared with im2col this saves writing and reading a C·kh·kw times larger column buffer and
col2im's scatter; the padded copies are the size of one image (the forward's shifted copies kw
times that). Images run in a ``prange`` with per-thread scratch and per-thread dW/db partials,
or one after another.

The entry points check their arrays (dtype, shape, layout) through the numpy C API and size and
allocate their own outputs and scratch, so no input makes them read or write out of bounds.

``ocvec_forward`` is the other direct convolution here, for the forward of convolutions the
im2col path would take (any stride, padding, dilation; float32 on AVX-512 or AVX2+FMA): it
vectorizes over output channels instead of pixels (``_ocvec.h``), reading a zero-padded copy of
each image, so strided and large filters need no column buffer.
"""
cimport cython
from cython cimport floating
from cython.parallel cimport prange, threadid

from ._omp cimport part_begin, team
from libc.stdlib cimport free, malloc
from libc.string cimport memset
cimport numpy as cnp

cnp.import_array()

cdef extern from *:
    """
    #include "_shallow.h"
    #define FC_ROW_TABLE(t) (B + boff[t])
    #define FC_DIRECT_NN_BODY(REAL, VT) FC_NN_LOOP(REAL, VT, FC_ROW_TABLE)
    #define FC_DIRECT_NT_BODY(REAL, VT) FC_NT_LOOP(REAL, VT, FC_ROW_TABLE)
    #define FC_DNN_PARAMS(REAL) (Py_ssize_t M, Py_ssize_t T, Py_ssize_t L, const REAL* A,      \\
        Py_ssize_t as_m, Py_ssize_t as_t, const REAL* B, const Py_ssize_t* boff,                 \\
        const REAL* bias, int accumulate, REAL* C, Py_ssize_t ldc)
    #define FC_DNN_ARGS (M, T, L, A, as_m, as_t, B, boff, bias, accumulate, C, ldc)
    #define FC_DNT_PARAMS(REAL) (Py_ssize_t M, Py_ssize_t T, Py_ssize_t L, const REAL* A,      \\
        Py_ssize_t lda, const REAL* B, const Py_ssize_t* boff, REAL* D, Py_ssize_t ldd,           \\
        REAL* rowsum)
    #define FC_DNT_ARGS (M, T, L, A, lda, B, boff, D, ldd, rowsum)
    FC_DISPATCH(fc_direct_nn_f, FC_DIRECT_NN_BODY, float, fc_vf, FC_DNN_PARAMS(float), FC_DNN_ARGS)
    FC_DISPATCH(fc_direct_nn_d, FC_DIRECT_NN_BODY, double, fc_vd, FC_DNN_PARAMS(double), FC_DNN_ARGS)
    FC_DISPATCH(fc_direct_nt_f, FC_DIRECT_NT_BODY, float, fc_vf, FC_DNT_PARAMS(float), FC_DNT_ARGS)
    FC_DISPATCH(fc_direct_nt_d, FC_DIRECT_NT_BODY, double, fc_vd, FC_DNT_PARAMS(double), FC_DNT_ARGS)

    /* Row copies in whole vectors (the last one overlapping the previous when N is not a
       multiple of the width; shorter rows element by element). A libc memcpy/memset per short
       row (34 floats) cost ~6 µs of a 1×3×32×32→16 conv's fwd+bwd on Zen 4. */
    #include <string.h>
    #define FC_COPY_ROW(REAL, VT, D, S, N) {                                                    \
        const Py_ssize_t VL = sizeof(VT) / sizeof(REAL);                                        \
        Py_ssize_t q = 0;                                                                       \
        for (; q + VL <= (N); q += VL) FC_ST(VT, (D) + q, FC_LD(VT, (S) + q));                  \
        if (q < (N)) {                                                                          \
            if ((N) >= VL) FC_ST(VT, (D) + (N) - VL, FC_LD(VT, (S) + (N) - VL));                \
            else for (; q < (N); q++) (D)[q] = (S)[q];                                          \
        }                                                                                       \
    }
    /* dst (C, Hp, Wp) = src (C, H, W) placed at (top, left), zeros elsewhere; rows and columns
       that would fall outside the frame are not copied. Each element is written once where the
       row's zero margins fit in one vector each (a zero vector at each end of the row, then the
       data over them); else the frame is zeroed first and the rows copied over it. */
    #define FC_PAD_BODY(REAL, VT) {                                                             \
        const Py_ssize_t VL = sizeof(VT) / sizeof(REAL);                                        \
        Py_ssize_t x0 = left < 0 ? -left : 0, y0 = top < 0 ? -top : 0;                          \
        Py_ssize_t n = (W < Wp - left ? W : Wp - left) - x0, y1 = H < Hp - top ? H : Hp - top;  \
        Py_ssize_t d0 = left + x0, plane = Hp * Wp;                                             \
        if (n <= 0 || y1 <= y0) {                                                               \
            memset(dst, 0, (size_t)(C * plane) * sizeof(REAL));                                 \
            return;                                                                             \
        }                                                                                       \
        const int margins = Wp >= VL && d0 <= VL && Wp - d0 - n <= VL;                          \
        if (!margins) memset(dst, 0, (size_t)(C * plane) * sizeof(REAL));                       \
        const VT zero = {0};                                                                    \
        for (Py_ssize_t c = 0; c < C; c++) {                                                    \
            REAL* out = dst + c * plane;                                                        \
            if (margins) {                                                                      \
                memset(out, 0, (size_t)((y0 + top) * Wp) * sizeof(REAL));                       \
                memset(out + (y1 + top) * Wp, 0, (size_t)((Hp - y1 - top) * Wp) * sizeof(REAL)); \
            }                                                                                   \
            for (Py_ssize_t y = y0; y < y1; y++) {                                              \
                REAL* row = out + (y + top) * Wp;                                               \
                const REAL* s = src + (c * H + y) * W + x0;                                     \
                if (margins) { FC_ST(VT, row + Wp - VL, zero); FC_ST(VT, row, zero); }          \
                FC_COPY_ROW(REAL, VT, row + d0, s, n)                                           \
            }                                                                                   \
        }                                                                                       \
    }
    /* dst (channels, rows, width; channel stride dst_plane) = the first width elements of
       src's rows (row stride src_width, channel stride src_plane). */
    #define FC_CROP_BODY(REAL, VT) {                                                            \
        for (Py_ssize_t c = 0; c < channels; c++)                                               \
            for (Py_ssize_t r = 0; r < rows; r++) {                                             \
                REAL* d = dst + c * dst_plane + r * width;                                      \
                const REAL* s = src + c * src_plane + r * src_width;                            \
                FC_COPY_ROW(REAL, VT, d, s, width)                                              \
            }                                                                                   \
    }
    #define FC_PAD_PARAMS(REAL) (const REAL* src, Py_ssize_t C, Py_ssize_t H, Py_ssize_t W,        \
        Py_ssize_t top, Py_ssize_t left, Py_ssize_t Hp, Py_ssize_t Wp, REAL* dst)
    #define FC_PAD_ARGS (src, C, H, W, top, left, Hp, Wp, dst)
    #define FC_CROP_PARAMS(REAL) (const REAL* src, Py_ssize_t channels, Py_ssize_t rows,           \
        Py_ssize_t width, Py_ssize_t src_width, Py_ssize_t src_plane, REAL* dst,                 \
        Py_ssize_t dst_plane)
    #define FC_CROP_ARGS (src, channels, rows, width, src_width, src_plane, dst, dst_plane)
    FC_DISPATCH(fc_pad_f, FC_PAD_BODY, float, fc_vf, FC_PAD_PARAMS(float), FC_PAD_ARGS)
    FC_DISPATCH(fc_pad_d, FC_PAD_BODY, double, fc_vd, FC_PAD_PARAMS(double), FC_PAD_ARGS)
    FC_DISPATCH(fc_crop_f, FC_CROP_BODY, float, fc_vf, FC_CROP_PARAMS(float), FC_CROP_ARGS)
    FC_DISPATCH(fc_crop_d, FC_CROP_BODY, double, fc_vd, FC_CROP_PARAMS(double), FC_CROP_ARGS)
    """
    int fc_isa_cap
    int fc_isa_level() noexcept nogil
    Py_ssize_t fc_block_columns(size_t real_size) noexcept nogil
    void fc_direct_nn_f(Py_ssize_t M, Py_ssize_t T, Py_ssize_t L, const float* A, Py_ssize_t as_m,
                        Py_ssize_t as_t, const float* B, const Py_ssize_t* boff, const float* bias,
                        int accumulate, float* C, Py_ssize_t ldc) noexcept nogil
    void fc_direct_nn_d(Py_ssize_t M, Py_ssize_t T, Py_ssize_t L, const double* A, Py_ssize_t as_m,
                        Py_ssize_t as_t, const double* B, const Py_ssize_t* boff, const double* bias,
                        int accumulate, double* C, Py_ssize_t ldc) noexcept nogil
    void fc_direct_nt_f(Py_ssize_t M, Py_ssize_t T, Py_ssize_t L, const float* A, Py_ssize_t lda,
                        const float* B, const Py_ssize_t* boff, float* D, Py_ssize_t ldd,
                        float* rowsum) noexcept nogil
    void fc_direct_nt_d(Py_ssize_t M, Py_ssize_t T, Py_ssize_t L, const double* A, Py_ssize_t lda,
                        const double* B, const Py_ssize_t* boff, double* D, Py_ssize_t ldd,
                        double* rowsum) noexcept nogil
    void fc_pad_f(const float* src, Py_ssize_t C, Py_ssize_t H, Py_ssize_t W, Py_ssize_t top,
                  Py_ssize_t left, Py_ssize_t Hp, Py_ssize_t Wp, float* dst) noexcept nogil
    void fc_pad_d(const double* src, Py_ssize_t C, Py_ssize_t H, Py_ssize_t W, Py_ssize_t top,
                  Py_ssize_t left, Py_ssize_t Hp, Py_ssize_t Wp, double* dst) noexcept nogil
    void fc_crop_f(const float* src, Py_ssize_t channels, Py_ssize_t rows, Py_ssize_t width,
                   Py_ssize_t src_width, Py_ssize_t src_plane, float* dst,
                   Py_ssize_t dst_plane) noexcept nogil
    void fc_crop_d(const double* src, Py_ssize_t channels, Py_ssize_t rows, Py_ssize_t width,
                   Py_ssize_t src_width, Py_ssize_t src_plane, double* dst,
                   Py_ssize_t dst_plane) noexcept nogil


cdef extern from "_ocvec.h" nogil:
    int fc_ocvec_tile(int level, Py_ssize_t K, Py_ssize_t Wo)
    Py_ssize_t fc_ocvec_block(int level, Py_ssize_t K)
    int fc_ocvec_level()
    void fc_ocvec_transpose(int level, const float* src, Py_ssize_t rows, Py_ssize_t cols,
                            Py_ssize_t ld_src, float* dst, Py_ssize_t rows_out, Py_ssize_t ld_dst)
    void fc_ocvec_dw(int level, const float* xp, Py_ssize_t Wp, const Py_ssize_t* tapoff,
                     Py_ssize_t T, const float* dyt, Py_ssize_t Kp, Py_ssize_t K, Py_ssize_t sh,
                     Py_ssize_t sw, Py_ssize_t Ho, Py_ssize_t Wo, float* dw)
    void fc_ocvec_image(int level, const float* xp, Py_ssize_t C, Py_ssize_t Hp, Py_ssize_t Wp,
                        const float* wt, const float* bias, Py_ssize_t K, Py_ssize_t kh,
                        Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t dh, Py_ssize_t dw,
                        Py_ssize_t Ho, Py_ssize_t Wo, Py_ssize_t oy0, Py_ssize_t oy1, float* y)
    void fc_ocvec_part(int level, const float* xp, Py_ssize_t C, Py_ssize_t Hp, Py_ssize_t Wp,
                       const float* wt, const float* bias, Py_ssize_t K, Py_ssize_t kh,
                       Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t dh, Py_ssize_t dw,
                       Py_ssize_t Ho, Py_ssize_t Wo, Py_ssize_t t, Py_ssize_t parts, float* y)


cdef inline void direct_nn(Py_ssize_t M, Py_ssize_t T, Py_ssize_t L, const floating* A,
                           Py_ssize_t as_m, Py_ssize_t as_t, const floating* B,
                           const Py_ssize_t* boff, const floating* bias, floating* C,
                           Py_ssize_t ldc) noexcept nogil:
    """C[m, q] = bias[m] + Σ_t A[m, t]·B[boff[t] + q] (q < L; bias may be NULL)."""
    if floating is float:
        fc_direct_nn_f(M, T, L, A, as_m, as_t, B, boff, bias, 0, C, ldc)
    else:
        fc_direct_nn_d(M, T, L, A, as_m, as_t, B, boff, bias, 0, C, ldc)


cdef inline void direct_nt(Py_ssize_t M, Py_ssize_t T, Py_ssize_t L, const floating* A,
                           Py_ssize_t lda, const floating* B, const Py_ssize_t* boff, floating* D,
                           Py_ssize_t ldd, floating* rowsum) noexcept nogil:
    """D[m, t] += Σ_q A[m, q]·B[boff[t] + q] (q < L); rowsum (unless NULL) += A's row sums."""
    if floating is float:
        fc_direct_nt_f(M, T, L, A, lda, B, boff, D, ldd, rowsum)
    else:
        fc_direct_nt_d(M, T, L, A, lda, B, boff, D, ldd, rowsum)


cdef struct Frame:
    # an image (C, H, W) placed at (top, left) in a zero frame (C, Hp, Wp); rows/columns that
    # would fall outside the frame are not copied
    Py_ssize_t C, H, W, top, left, Hp, Wp


cdef inline void pad_into(const floating* src, const Frame* f, floating* dst) noexcept nogil:
    """dst (C, Hp, Wp) = src (C, H, W) placed at (top, left), zeros elsewhere."""
    if floating is float:
        fc_pad_f(src, f.C, f.H, f.W, f.top, f.left, f.Hp, f.Wp, dst)
    else:
        fc_pad_d(src, f.C, f.H, f.W, f.top, f.left, f.Hp, f.Wp, dst)


cdef inline void crop_rows(const floating* src, Py_ssize_t channels, Py_ssize_t rows,
                           Py_ssize_t width, Py_ssize_t src_width, Py_ssize_t src_plane,
                           floating* dst, Py_ssize_t dst_plane) noexcept nogil:
    """dst (channels, rows, width; channel stride dst_plane) = the first ``width`` columns of
    src's rows (row stride src_width, channel stride src_plane): the implicit GEMM's output
    without its extra columns."""
    if floating is float:
        fc_crop_f(src, channels, rows, width, src_width, src_plane, dst, dst_plane)
    else:
        fc_crop_d(src, channels, rows, width, src_width, src_plane, dst, dst_plane)


cdef struct Shape:
    Py_ssize_t C, H, W, K, kh, kw, ph, pw, dh, dw, Ho, Wo
    Py_ssize_t Hp, Wp      # the padded input: Ho + dh·(kh − 1), Wo + dw·(kw − 1); Hp is
                           # also the rows of the forward's shifted copies (of Wo columns)
    Py_ssize_t Hq, Wq      # the padded dY of the dX pass: H + dh·(kh − 1), W + dw·(kw − 1)
    Py_ssize_t L, T        # output pixels per channel (Ho·Wo) and taps (C·kh·kw)


cdef Shape make_shape(Py_ssize_t C, Py_ssize_t H, Py_ssize_t W, Py_ssize_t K, Py_ssize_t kh,
                      Py_ssize_t kw, Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t dh, Py_ssize_t dw,
                      Py_ssize_t Ho, Py_ssize_t Wo) noexcept:
    cdef Shape s
    s.C = C; s.H = H; s.W = W; s.K = K; s.kh = kh; s.kw = kw; s.ph = ph; s.pw = pw
    s.dh = dh; s.dw = dw; s.Ho = Ho; s.Wo = Wo
    s.Hp = Ho + dh * (kh - 1); s.Wp = Wo + dw * (kw - 1)
    s.Hq = H + dh * (kh - 1); s.Wq = W + dw * (kw - 1)
    s.L = Ho * Wo; s.T = C * kh * kw
    return s


cdef Py_ssize_t* tap_offsets(Py_ssize_t channels, Py_ssize_t kh, Py_ssize_t kw,
                             Py_ssize_t channel_step, Py_ssize_t row_step,
                             Py_ssize_t column_step) noexcept nogil:
    """off[(c·kh + i)·kw + j] = c·channel_step + i·row_step + j·column_step: where tap (c, i, j)'s
    row of the column matrix starts in a copy of the image (malloc'ed; NULL if out of memory).
    The padded image (C, Hp, Wp) has steps (Hp·Wp, dh·Wp, dw); the forward's shifted copies
    (kw, C, Hp, Wo) have (Hp·Wo, dh·Wo, C·Hp·Wo)."""
    cdef Py_ssize_t c, i, j, t = 0
    cdef Py_ssize_t* off = <Py_ssize_t*>malloc(max(channels * kh * kw, 1) * sizeof(Py_ssize_t))
    if off == NULL:
        return NULL
    for c in range(channels):
        for i in range(kh):
            for j in range(kw):
                off[t] = c * channel_step + i * row_step + j * column_step
                t += 1
    return off


# ---- scratch layout (per thread) --------------------------------------------------------------
# The loops run over whole blocks of columns (4 vectors: at most SLACK elements): the
# backward's wide outputs have rows of round_up(L, SLACK) elements, the forward's last partial
# block goes to a tail buffer of SLACK columns, and the padded images and shifted copies have
# SLACK zeros after them, which only the dropped columns of a last block read. So the loops
# never take their slow partial-block path. They compute round_up(L, block) columns for the
# variant in use, so small images do not pay for the widest block; the layout does not depend
# on the variant.
DEF SLACK = 64


cdef inline Py_ssize_t round_up(Py_ssize_t n, Py_ssize_t block) noexcept nogil:
    return (n + block - 1) // block * block


cdef inline Py_ssize_t computed(Py_ssize_t n, Py_ssize_t itemsize) noexcept nogil:
    """Columns the loops compute for n wanted: whole vectors of the dispatched variant (whole
    blocks, then the narrow tiles' 1–3 vectors)."""
    return round_up(n, fc_block_columns(itemsize) // 4)


cdef inline Py_ssize_t dx_columns(const Shape* s) noexcept nogil:
    """Row length of the wide dX: (H − 1)·Wq + W pixels, rounded up."""
    return round_up((s.H - 1) * s.Wq + s.W, SLACK)


cdef inline Py_ssize_t copies_size(const Shape* s) noexcept nogil:
    """The forward's kw shifted copies of one image."""
    return s.kw * s.C * s.Hp * s.Wo


cdef Py_ssize_t forward_scratch(const Shape* s) noexcept nogil:
    """The shifted copies (+ slack) and the tail block of y: whole blocks of columns go
    straight into y, a last partial one through this buffer (K rows of SLACK), so nothing is
    written past a row of y."""
    return copies_size(s) + SLACK + s.K * SLACK


cdef Py_ssize_t backward_scratch(const Shape* s, bint need_dx, bint need_dw) noexcept nogil:
    """The forward's shifted copies of the input (+ slack) (dW); padded dY (+ slack) and the
    wide dX (dX)."""
    cdef Py_ssize_t n = 0
    if need_dw:
        n += copies_size(s) + SLACK
    if need_dx:
        n += s.K * s.Hq * s.Wq + SLACK + s.C * dx_columns(s)
    return n


def workspace_elements(Py_ssize_t C, Py_ssize_t H, Py_ssize_t W, Py_ssize_t K, int kh, int kw,
                       int dh, int dw, Py_ssize_t Ho, Py_ssize_t Wo, bint need_dx, bint need_dw):
    """(forward, backward) scratch elements per thread, and the shared transformed filter of the
    dX pass (C·K·kh·kw when ``need_dx``)."""
    cdef Shape s = make_shape(C, H, W, K, kh, kw, 0, 0, dh, dw, Ho, Wo)
    return (forward_scratch(&s), backward_scratch(&s, need_dx, need_dw),
            C * K * kh * kw if need_dx else 0)


# ---- arguments: checked here (cheaper than typed memoryviews, which cost ~0.15 µs each to
# acquire, a lot next to a batch-1 convolution), so no input can make a loop leave its arrays ----

cdef int real_type(object a, str op, str name) except -1:
    """The numpy type number of ``a``, an ndarray of float32 or float64."""
    if not cnp.PyArray_Check(a):
        raise TypeError(f"{op}: expected {name} as a numpy array, got {type(a).__name__}")
    cdef int typenum = cnp.PyArray_TYPE(<cnp.ndarray>a)
    if typenum != cnp.NPY_FLOAT32 and typenum != cnp.NPY_FLOAT64:
        raise TypeError(f"{op}: expected {name} of dtype float32 or float64, got {a.dtype}")
    return typenum


cdef int check_kind(object a, int typenum, int ndim, str op, str name) except -1:
    """``a`` must be an ndarray of ``typenum`` with ``ndim`` dimensions."""
    if not cnp.PyArray_Check(a):
        raise TypeError(f"{op}: expected {name} as a numpy array, got {type(a).__name__}")
    if cnp.PyArray_TYPE(<cnp.ndarray>a) != typenum:
        raise TypeError(f"{op}: expected {name} of dtype {cnp.PyArray_DescrFromType(typenum)}, "
                        f"got {a.dtype}")
    if cnp.PyArray_NDIM(<cnp.ndarray>a) != ndim:
        raise ValueError(f"{op}: expected a {ndim}-d {name}, got {name} of shape {a.shape}")
    return 0


cdef int check_array(object a, int typenum, tuple shape, str op, str name) except -1:
    """``a`` must be an aligned C-contiguous ndarray of ``typenum`` and ``shape``."""
    cdef int d
    check_kind(a, typenum, len(shape), op, name)
    for d in range(len(shape)):
        if cnp.PyArray_DIM(<cnp.ndarray>a, d) != <Py_ssize_t>shape[d]:
            raise ValueError(f"{op}: expected {name} of shape {shape}, got {a.shape}")
    if not (cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>a) and cnp.PyArray_ISALIGNED(<cnp.ndarray>a)):
        raise ValueError(f"{op}: expected {name} as an aligned C-contiguous array")
    return 0


cdef cnp.ndarray new_array(tuple shape, int typenum, bint zeros):
    """A new C-contiguous array of ``shape`` (at most 4 dimensions), zeroed or not."""
    cdef cnp.npy_intp dims[4]
    cdef int nd = len(shape), d
    for d in range(nd):
        dims[d] = shape[d]
    if zeros:
        return cnp.PyArray_ZEROS(nd, dims, typenum, 0)
    return cnp.PyArray_EMPTY(nd, dims, typenum, 0)


cdef inline Py_ssize_t dim(object a, int d) noexcept:
    return cnp.PyArray_DIM(<cnp.ndarray>a, d)


cdef inline void* data(object a) noexcept:
    return cnp.PyArray_DATA(<cnp.ndarray>a)


cdef int check_geometry(str op, int kh, int kw, int dh, int dw, Py_ssize_t out_h,
                        Py_ssize_t out_w) except -1:
    if kh < 1 or kw < 1 or dh < 1 or dw < 1 or out_h < 1 or out_w < 1:
        raise ValueError(f"{op}: expected kernel, dilation and output sizes ≥ 1, got kernel "
                         f"({kh}, {kw}), dilation ({dh}, {dw}), output ({out_h}, {out_w})")
    return 0


# ---- forward ------------------------------------------------------------------------------------

cdef void shifted_copies(const floating* x, const Shape* s, floating* v) noexcept nogil:
    """v = the kw shifted copies V_j of image x (C, H, W), then SLACK zeros (read only by a
    last block's dropped columns)."""
    shifted_channels(x, s, v, 0, s.C)


cdef void shifted_channels(const floating* x, const Shape* s, floating* v, Py_ssize_t c0,
                           Py_ssize_t c1) noexcept nogil:
    """Channels [c0, c1) of ``shifted_copies``' v (at their places in it), and its SLACK zeros."""
    cdef Py_ssize_t j, size = s.C * s.Hp * s.Wo, plane = s.Hp * s.Wo
    for j in range(s.kw):
        if floating is float:
            fc_pad_f(x + c0 * s.H * s.W, c1 - c0, s.H, s.W, s.ph, s.pw - j * s.dw, s.Hp, s.Wo,
                     v + j * size + c0 * plane)
        else:
            fc_pad_d(x + c0 * s.H * s.W, c1 - c0, s.H, s.W, s.ph, s.pw - j * s.dw, s.Hp, s.Wo,
                     v + j * size + c0 * plane)
    memset(v + s.kw * size, 0, SLACK * sizeof(floating))


cdef void shifted_rows(const floating* x, const Shape* s, floating* v, Py_ssize_t a,
                       Py_ssize_t b) noexcept nogil:
    """Rows [a, b) of every plane of ``shifted_copies``' v (the rows a block of output rows
    reads), and its SLACK zeros: what one thread needs for its chunk of columns."""
    cdef Py_ssize_t j, c, size = s.C * s.Hp * s.Wo, plane = s.Hp * s.Wo
    cdef Py_ssize_t src0 = max(a - s.ph, 0), src1 = min(b - s.ph, s.H)
    cdef Py_ssize_t rows = max(src1 - src0, 0), top = src0 + s.ph - a
    for j in range(s.kw):
        for c in range(s.C):
            if floating is float:
                fc_pad_f(x + (c * s.H + src0) * s.W, 1, rows, s.W, top, s.pw - j * s.dw, b - a,
                         s.Wo, v + j * size + c * plane + a * s.Wo)
            else:
                fc_pad_d(x + (c * s.H + src0) * s.W, 1, rows, s.W, top, s.pw - j * s.dw, b - a,
                         s.Wo, v + j * size + c * plane + a * s.Wo)
    memset(v + s.kw * size, 0, SLACK * sizeof(floating))


cdef bint splits_columns(Py_ssize_t L, int num_threads, bint parallel) noexcept nogil:
    """Whether the forward splits each image's columns across the threads (fewer images than
    threads, more than one block of columns): then each thread has a scratch row too."""
    return not parallel and num_threads > 1 and L > fc_block_columns(sizeof(float))


cdef bint splits_rows(Py_ssize_t L, Py_ssize_t K, int num_threads, bint parallel) noexcept nogil:
    """Whether the forward splits each image's output channels across the threads instead
    (fewer images than threads, at most one block of columns, an 8-row tile per thread or more):
    then each thread has a scratch row too."""
    return (not parallel and num_threads > 1 and L <= fc_block_columns(sizeof(float))
            and K >= 8 * num_threads)


cdef bint splits_channels(Py_ssize_t C, int num_threads, bint parallel) noexcept nogil:
    """Whether the backward splits each image's input channels across the threads (fewer images
    than threads, at least one channel per thread): then each thread has a scratch row too."""
    return not parallel and num_threads > 1 and C >= num_threads


def backward_buffers(Py_ssize_t C, int num_threads, bint parallel):
    """Scratch rows of ``direct_backward``: one per thread when images run in a prange or the
    threads split each image's channels, else one (dW/db partials: one per thread only when
    images run in a prange)."""
    return max(num_threads, 1) if parallel or splits_channels(C, num_threads, parallel) else 1


def forward_buffers(Py_ssize_t K, Py_ssize_t out_h, Py_ssize_t out_w, int num_threads, bint parallel):
    """Scratch rows of ``direct_forward``: one per thread when images run in a prange or the
    threads split each image's columns or output channels, else one."""
    cdef Py_ssize_t L = out_h * out_w
    return (max(num_threads, 1) if parallel or splits_columns(L, num_threads, parallel)
            or splits_rows(L, K, num_threads, parallel) else 1)


cdef void forward_image(const floating* x, const floating* w, const floating* bias, floating* y,
                        floating* scratch, const Py_ssize_t* off, const Shape* s) noexcept nogil:
    """y (K, Ho·Wo) = w·cols + bias for one image: whole blocks of columns straight into y, a
    last partial block through the tail buffer."""
    shifted_copies(x, s, scratch)
    forward_columns(scratch, w, bias, y, scratch + copies_size(s) + SLACK, off, s, 0, s.L, 0, s.K)


cdef void forward_columns(const floating* v, const floating* w, const floating* bias, floating* y,
                          floating* tail, const Py_ssize_t* off, const Shape* s, Py_ssize_t c0,
                          Py_ssize_t c1, Py_ssize_t k0, Py_ssize_t k1) noexcept nogil:
    """Columns [c0, c1) of output channels [k0, k1) of y (K, Ho·Wo) from the shifted copies v
    (c0 a multiple of the vector width): whole blocks of columns straight into y, the rest in
    whole vectors (the loops' narrow tiles), straight into y when it is whole vectors, else
    (only where c1 is the row's end) through ``tail`` (K × SLACK): its last vector reads into
    the next plane or the slack, and those columns are dropped."""
    cdef Py_ssize_t block = fc_block_columns(sizeof(floating)), vector = block // 4
    cdef Py_ssize_t full = c1 - (c1 - c0) % block, m = k1 - k0
    cdef const floating* wk = w + k0 * s.T
    cdef const floating* bk = bias + k0 if bias != NULL else NULL
    cdef floating* yk = y + k0 * s.L
    if m <= 0:
        return
    if full > c0:
        direct_nn(m, s.T, full - c0, wk, s.T, 1, v + c0, off, bk, yk + c0, s.L)
    if full < c1 and (c1 - full) % vector == 0:
        direct_nn(m, s.T, c1 - full, wk, s.T, 1, v + full, off, bk, yk + full, s.L)
    elif full < c1:
        direct_nn(m, s.T, round_up(c1 - full, vector), wk, s.T, 1, v + full, off, bk,
                  tail + k0 * SLACK, SLACK)
        crop_rows(tail + k0 * SLACK, m, 1, c1 - full, SLACK, SLACK, yk + full, s.L)


cdef void forward_all(const floating* x, const floating* w, const floating* bias, floating* y,
                      floating* work, Py_ssize_t stride, Py_ssize_t N, const Py_ssize_t* off,
                      const Shape* s, bint parallel, int num_threads) noexcept nogil:
    cdef Py_ssize_t n, xs = s.C * s.H * s.W, ys = s.K * s.Ho * s.Wo, t, chunk, c0, c1
    cdef Py_ssize_t block = fc_block_columns(sizeof(floating))
    cdef floating* own
    if parallel:
        for n in prange(N, schedule='dynamic', num_threads=team(num_threads)):
            forward_image(x + n * xs, w, bias, y + n * ys, work + threadid() * stride, off, s)
    elif splits_columns(s.L, num_threads, parallel):
        # fewer images than threads: each image's columns in chunks of whole vectors (only the
        # last chunk ends in a partial vector, through the tail), each thread copying the rows
        # its chunk reads into its own scratch (read from the other core's cache, the copies
        # cost more than making them again)
        chunk = round_up((s.L + num_threads - 1) // num_threads, block // 4)
        for n in range(N):
            for t in prange(num_threads, schedule='static', num_threads=team(num_threads)):
                c0 = t * chunk
                if c0 < s.L:
                    c1 = min(c0 + chunk, s.L)
                    own = work + t * stride
                    shifted_rows(x + n * xs, s, own, c0 // s.Wo,
                                 min((c1 + s.Wo - 1) // s.Wo + (s.kh - 1) * s.dh, s.Hp))
                    forward_columns(own, w, bias, y + n * ys, own + copies_size(s) + SLACK, off, s,
                                    c0, c1, 0, s.K)
    elif splits_rows(s.L, s.K, num_threads, parallel):
        # fewer images than threads and at most one block of columns (small images): each
        # image's output channels in contiguous partitions of whole 8-row tiles, each thread
        # making its own shifted copies (small here) and reading only its rows of the weights
        for n in range(N):
            for t in prange(num_threads, schedule='static', num_threads=team(num_threads)):
                own = work + t * stride
                c0 = t * s.K // num_threads // 8 * 8
                c1 = (t + 1) * s.K // num_threads // 8 * 8 if t + 1 < num_threads else s.K
                if c1 > c0:
                    shifted_copies(x + n * xs, s, own)
                    forward_columns(own, w, bias, y + n * ys, own + copies_size(s) + SLACK, off, s,
                                    0, s.L, c0, c1)
    else:
        for n in range(N):
            forward_image(x + n * xs, w, bias, y + n * ys, work, off, s)


def direct_forward(x, w, bias, int kh, int kw, int ph, int pw, int dh, int dw, Py_ssize_t out_h,
                   Py_ssize_t out_w, bint parallel, int num_threads):
    """y = conv2d(x, w) + bias, stride 1, for x (N, C, H, W), w as a (K, C·kh·kw) matrix, bias
    (K,) or None, top/left padding (ph, pw) and an (out_h, out_w) output (which gives the
    bottom/right padding). Returns y (N, K, out_h, out_w). The scratch is one row per thread
    (``parallel``: images in a prange) or one row (images one after another)."""
    cdef str op = "direct_forward"
    cdef int typenum = real_type(x, op, "x")
    check_kind(x, typenum, 4, op, "x")
    check_kind(w, typenum, 2, op, "w")
    check_geometry(op, kh, kw, dh, dw, out_h, out_w)
    cdef Py_ssize_t N = dim(x, 0), K = dim(w, 0)
    cdef Shape s = make_shape(dim(x, 1), dim(x, 2), dim(x, 3), K, kh, kw, ph, pw, dh, dw, out_h, out_w)
    check_array(x, typenum, (N, s.C, s.H, s.W), op, "x")
    check_array(w, typenum, (K, s.T), op, "w")
    if bias is not None:
        check_array(bias, typenum, (K,), op, "bias")
    cdef Py_ssize_t buffers = forward_buffers(K, out_h, out_w, num_threads, parallel)
    cdef Py_ssize_t stride = forward_scratch(&s)
    cdef cnp.ndarray y = new_array((N, K, out_h, out_w), typenum, False)
    if N == 0 or K == 0:
        return y
    cdef cnp.ndarray work = new_array((buffers, stride), typenum, False)
    cdef Py_ssize_t* off = tap_offsets(s.C, kh, kw, s.Hp * s.Wo, dh * s.Wo, s.C * s.Hp * s.Wo)
    if off == NULL:
        raise MemoryError(f"{op}: no memory for the tap offsets")
    cdef void* px = data(x)
    cdef void* pw_ = data(w)
    cdef void* pb = data(bias) if bias is not None else NULL
    cdef void* py = data(y)
    cdef void* pwork = data(work)
    with nogil:
        if typenum == cnp.NPY_FLOAT32:
            forward_all(<const float*>px, <const float*>pw_, <const float*>pb, <float*>py,
                        <float*>pwork, stride, N, off, &s, parallel, num_threads)
        else:
            forward_all(<const double*>px, <const double*>pw_, <const double*>pb, <double*>py,
                        <double*>pwork, stride, N, off, &s, parallel, num_threads)
    free(off)
    return y


# ---- backward -----------------------------------------------------------------------------------

cdef void rotated_transpose(const floating* w, const Shape* s, floating* wt) noexcept nogil:
    """wt[c, (k·kh + i)·kw + j] = w[k, c, kh − 1 − i, kw − 1 − j]: the dX pass's filter. Each
    (k, c) block of kh·kw taps is copied reversed (rotating by 180° reverses the flattened block),
    so the loop is a pointer walk, not four-level index arithmetic per element (which cost ~15
    instructions an element: ~6,500 for the 432 taps of 1×3×32×32→16, a 23 µs backward)."""
    cdef Py_ssize_t k, c, q, taps = s.kh * s.kw, t = s.K * taps
    cdef const floating* src
    cdef floating* dst
    for c in range(s.C):
        for k in range(s.K):
            src = w + (k * s.C + c) * taps + taps - 1
            dst = wt + c * t + k * taps
            for q in range(taps):
                dst[q] = src[-q]


cdef void backward_image(const floating* x, const floating* wt, const floating* dy, floating* dx,
                         floating* dw_acc, floating* db_acc, floating* scratch,
                         const Py_ssize_t* off_x, const Py_ssize_t* off_dy, const Shape* s,
                         bint need_dx, bint need_dw, Py_ssize_t c0, Py_ssize_t c1) noexcept nogil:
    """One image, input channels [c0, c1) (all of them: [0, C)): dw_acc (K, C·kh·kw) += dY·colsᵀ
    in those channels' columns, db_acc (unless NULL) += dY's row sums, those channels of dx =
    the rotated filter's convolution of padded dY.

    dW reads dY as it is against the forward's shifted copies of x (tap (c, i, j)'s row of the
    column matrix is a contiguous Ho·Wo run of copy j), so its sums run over exactly the Ho·Wo
    pixels. Against a padded x they ran over (Ho − 1)·Wp + Wo, wasting the zero columns between
    rows (6 % of the 1×3×32×32→16 dW loop, 25 % at Wo = 8) and, without dX, needing dY widened."""
    cdef Frame f
    cdef Py_ssize_t taps = s.kh * s.kw, T = s.C * taps, cols = dx_columns(s)
    cdef Py_ssize_t top = s.dh * (s.kh - 1) - s.ph, left = s.dw * (s.kw - 1) - s.pw
    cdef floating* xv = scratch
    cdef floating* dyp = scratch + (copies_size(s) + SLACK if need_dw else 0)
    cdef floating* rest = dyp + (s.K * s.Hq * s.Wq + SLACK if need_dx else 0)
    if need_dw:
        shifted_channels(x, s, xv, c0, c1)
        direct_nt(s.K, (c1 - c0) * taps, s.L, dy, s.L, xv, off_x + c0 * taps, dw_acc + c0 * taps,
                  T, db_acc)
    if need_dx:
        f.C = s.K; f.H = s.Ho; f.W = s.Wo; f.top = top; f.left = left; f.Hp = s.Hq; f.Wp = s.Wq
        pad_into(dy, &f, dyp)
        memset(dyp + s.K * s.Hq * s.Wq, 0, SLACK * sizeof(floating))
        T = s.K * taps
        direct_nn(c1 - c0, T, computed((s.H - 1) * s.Wq + s.W, sizeof(floating)), wt + c0 * T, T, 1,
                  dyp, off_dy, NULL, rest + c0 * cols, cols)
        crop_rows(rest + c0 * cols, c1 - c0, s.H, s.W, s.Wq, cols, dx + c0 * s.H * s.W, s.H * s.W)


cdef void backward_all(const floating* x, const floating* w, const floating* dy, floating* dx,
                       floating* dw_parts, floating* db_parts, floating* work, Py_ssize_t stride,
                       floating* wt, Py_ssize_t N, const Py_ssize_t* off_x,
                       const Py_ssize_t* off_dy, const Shape* s, bint need_dx, bint need_dw,
                       bint parallel, int num_threads) noexcept nogil:
    """Every image's backward_image. When parallel, the images are cut into ``num_threads``
    contiguous partitions, each summed in image order into its own row of dw_parts/db_parts by
    whichever thread takes it (the sums do not depend on how many threads run)."""
    cdef Py_ssize_t n, t, p, image = s.C * s.H * s.W, out = s.K * s.Ho * s.Wo
    cdef Py_ssize_t size = s.K * s.C * s.kh * s.kw
    if need_dx:
        rotated_transpose(w, s, wt)
    if parallel:
        for p in prange(num_threads, schedule='dynamic', num_threads=team(num_threads)):
            t = threadid()
            for n in range(part_begin(p, num_threads, N), part_begin(p + 1, num_threads, N)):
                backward_image(x + n * image if need_dw else NULL, wt, dy + n * out,
                               dx + n * image if need_dx else NULL,
                               dw_parts + p * size if need_dw else NULL,
                               db_parts + p * s.K if db_parts != NULL else NULL,
                               work + t * stride, off_x, off_dy, s, need_dx, need_dw, 0, s.C)
    elif splits_channels(s.C, num_threads, parallel):
        # fewer images than threads: each image's input channels in contiguous partitions (dW's
        # columns and dX's rows of those channels: disjoint outputs, no partial sums), each
        # partition copying what it reads into its own scratch; partition 0 sums db
        for n in range(N):
            for p in prange(num_threads, schedule='static', num_threads=team(num_threads)):
                backward_image(x + n * image if need_dw else NULL, wt, dy + n * out,
                               dx + n * image if need_dx else NULL, dw_parts,
                               db_parts if p == 0 else NULL, work + p * stride, off_x, off_dy, s,
                               need_dx, need_dw, part_begin(p, num_threads, s.C),
                               part_begin(p + 1, num_threads, s.C))
    else:
        for n in range(N):
            backward_image(x + n * image if need_dw else NULL, wt, dy + n * out,
                           dx + n * image if need_dx else NULL, dw_parts, db_parts, work,
                           off_x, off_dy, s, need_dx, need_dw, 0, s.C)


cdef void sum_rows(const floating* parts, Py_ssize_t rows, Py_ssize_t size,
                   floating* total) noexcept nogil:
    """total = the sum of the ``rows`` rows of ``parts`` (rows × size)."""
    cdef Py_ssize_t r, i
    for i in range(size):
        total[i] = parts[i]
    for r in range(1, rows):
        for i in range(size):
            total[i] += parts[r * size + i]


def direct_backward(x, w, dy, Py_ssize_t C, Py_ssize_t H, Py_ssize_t W, int kh, int kw, int ph,
                    int pw, int dh, int dw, bint need_dx, bint need_dw, bint need_db,
                    bint parallel, int num_threads):
    """Gradients of y = direct_forward(x, w) for dY ``dy`` (N, K, Ho, Wo) and an input of C × H ×
    W: returns (dx (N, C, H, W), dw (K, C, kh, kw), db (K,)), each None unless asked for (db
    only with dw, summed in the dW pass). ``x`` is read only for dW, ``w`` (the (K, C·kh·kw)
    matrix) only for dX; either may be None when not read. dX is the convolution of padded dY
    with the rotated, transposed filter, so it needs every padding ≤ dilation·(kernel − 1).
    With ``parallel``, each thread sums dW and db into a row of partials, added up at the end."""
    cdef str op = "direct_backward"
    cdef int typenum = real_type(dy, op, "dy")
    check_kind(dy, typenum, 4, op, "dy")
    cdef Py_ssize_t N = dim(dy, 0), K = dim(dy, 1)
    check_geometry(op, kh, kw, dh, dw, dim(dy, 2), dim(dy, 3))
    cdef Shape s = make_shape(C, H, W, K, kh, kw, ph, pw, dh, dw, dim(dy, 2), dim(dy, 3))
    cdef Py_ssize_t size = K * C * kh * kw, buffers = max(num_threads, 1) if parallel else 1
    need_db = need_db and need_dw
    check_array(dy, typenum, (N, K, s.Ho, s.Wo), op, "dy")
    if need_dw:
        check_array(x, typenum, (N, C, H, W), op, "x")
    if need_dx:
        check_array(w, typenum, (K, C * kh * kw), op, "w")
        if (ph > dh * (kh - 1) or pw > dw * (kw - 1) or s.Hp - H - ph > dh * (kh - 1)
                or s.Wp - W - pw > dw * (kw - 1)):
            raise ValueError(f"{op}: dX needs every padding ≤ dilation·(kernel − 1), got padding "
                             f"({ph}, {pw}) and output ({s.Ho}, {s.Wo}) for input ({H}, {W}), "
                             f"kernel ({kh}, {kw}), dilation ({dh}, {dw})")
    cdef bint early = N == 0 or not (need_dx or need_dw)
    cdef object dx = new_array((N, C, H, W), typenum, False) if need_dx else None
    cdef object dw_out = new_array((K, C, kh, kw), typenum, buffers == 1 or early) if need_dw else None
    cdef object db_out = new_array((K,), typenum, buffers == 1 or early) if need_db else None
    if early:
        return dx, dw_out, db_out
    cdef object dw_parts = dw_out, db_parts = db_out
    if buffers > 1:
        dw_parts = new_array((buffers, size), typenum, True) if need_dw else None
        db_parts = new_array((buffers, K), typenum, True) if need_db else None
    cdef Py_ssize_t stride = backward_scratch(&s, need_dx, need_dw)
    cdef cnp.ndarray work = new_array((backward_buffers(C, num_threads, parallel), stride), typenum, False)
    cdef object wt = new_array((C * K * kh * kw,), typenum, False) if need_dx else None
    cdef Py_ssize_t* off_x = tap_offsets(C, kh, kw, s.Hp * s.Wo, dh * s.Wo, C * s.Hp * s.Wo)
    cdef Py_ssize_t* off_dy = tap_offsets(K, kh, kw, s.Hq * s.Wq, dh * s.Wq, dw)
    if off_x == NULL or off_dy == NULL:
        free(off_x)
        free(off_dy)
        raise MemoryError(f"{op}: no memory for the tap offsets")
    cdef void* px = data(x) if need_dw else NULL
    cdef void* pw_ = data(w) if need_dx else NULL
    cdef void* pdx = data(dx) if need_dx else NULL
    cdef void* pwt = data(wt) if need_dx else NULL
    cdef void* pdw = data(dw_parts) if need_dw else NULL
    cdef void* pdb = data(db_parts) if need_db else NULL
    cdef void* pdy = data(dy)
    cdef void* pwork = data(work)
    cdef void* pdw_out = data(dw_out) if need_dw else NULL
    cdef void* pdb_out = data(db_out) if need_db else NULL
    with nogil:
        if typenum == cnp.NPY_FLOAT32:
            backward_all(<const float*>px, <const float*>pw_, <const float*>pdy, <float*>pdx,
                         <float*>pdw, <float*>pdb, <float*>pwork, stride, <float*>pwt, N,
                         off_x, off_dy, &s, need_dx, need_dw, parallel, num_threads)
        else:
            backward_all(<const double*>px, <const double*>pw_, <const double*>pdy,
                         <double*>pdx, <double*>pdw, <double*>pdb, <double*>pwork, stride,
                         <double*>pwt, N, off_x, off_dy, &s, need_dx, need_dw, parallel,
                         num_threads)
    free(off_x)
    free(off_dy)
    if buffers > 1:
        with nogil:
            if typenum == cnp.NPY_FLOAT32:
                if need_dw:
                    sum_rows(<const float*>pdw, buffers, size, <float*>pdw_out)
                if need_db:
                    sum_rows(<const float*>pdb, buffers, K, <float*>pdb_out)
            else:
                if need_dw:
                    sum_rows(<const double*>pdw, buffers, size, <double*>pdw_out)
                if need_db:
                    sum_rows(<const double*>pdb, buffers, K, <double*>pdb_out)
    return dx, dw_out, db_out


def variants():
    """Variants of the loops this CPU can run (1 baseline, 2 AVX2+FMA, 3 AVX-512)."""
    return list(range(1, fc_isa_level() + 1))


def set_variant_cap(int level):
    """Let the loops use at most variant ``level`` (tests); returns the previous cap."""
    global fc_isa_cap
    if level < 1 or level > 3:
        raise ValueError(f"set_variant_cap: expected a level in 1..3, got {level}")
    previous = fc_isa_cap
    fc_isa_cap = level
    return previous


def shallow_product(const floating[:, ::1] a, const floating[::1] b, const Py_ssize_t[::1] offsets,
                    floating[:, ::1] c, bint transposed):
    """The implicit-GEMM loops alone, for benchmarks and tests.

    NN (``transposed`` false): c[m, q] = Σ_t a[m, t]·b[offsets[t] + q] with a M×T, c M×L.
    NT (``transposed``): c[m, t] += Σ_q a[m, q]·b[offsets[t] + q] with a M×L, c M×T.
    Every row read from b (offsets[t] .. offsets[t] + L) must lie inside it."""
    cdef Py_ssize_t M = a.shape[0], T = offsets.shape[0], t
    cdef Py_ssize_t L = a.shape[1] if transposed else c.shape[1]
    if c.shape[0] != M or (c.shape[1] if transposed else a.shape[1]) != T:
        raise ValueError(f"shallow_product: expected a and c with {M} rows and {T} taps, got a "
                         f"{tuple(a.shape)[:2]}, c {tuple(c.shape)[:2]}, {T} offsets")
    for t in range(T):
        if offsets[t] < 0 or offsets[t] + L > b.shape[0]:
            raise ValueError(f"shallow_product: row {t} (offset {offsets[t]}, {L} elements) lies "
                             f"outside b of {b.shape[0]} elements")
    if M == 0 or T == 0 or L == 0:
        return
    with nogil:
        if transposed:
            direct_nt(M, T, L, &a[0, 0], L, &b[0], &offsets[0], &c[0, 0], T, NULL)
        else:
            direct_nn(M, T, L, &a[0, 0], T, 1, &b[0], &offsets[0], NULL, &c[0, 0], L)


# ---- output-channel-vectorized direct forward (_ocvec.h) ---------------------------------------

def ocvec_available():
    """Whether ``ocvec_forward`` runs here: float32 loops for AVX-512 or AVX2+FMA (within the
    variant cap)."""
    return fc_ocvec_level() != 0


def ocvec_tile(Py_ssize_t out_channels, Py_ssize_t out_w):
    """Output pixels per register tile of ``ocvec_forward`` for rows of ``out_w`` (4 to 6, or 8
    to 12 in blocks of 32 channels: the least overshoot)."""
    return fc_ocvec_tile(fc_ocvec_level(), out_channels, out_w)


def ocvec_block(Py_ssize_t out_channels):
    """Output channels per block of ``ocvec_forward``'s loops here for ``out_channels`` (64 or
    32 on AVX-512, 16 on AVX2; 0 when unavailable): K a multiple of it wastes no lanes."""
    return fc_ocvec_block(fc_ocvec_level(), out_channels)


cdef struct OcvecLayout:
    # the scratch of both ocvec entry points, sized in one place (their *_elements declare it)
    Py_ssize_t Hp, Wp      # the zero-padded image the loops read: rows and columns the output's
                           # last pixel tile reaches
    Py_ssize_t frame       # its elements, C·Hp·Wp
    Py_ssize_t KB, Kp      # the loops' channel block, K rounded up to it
    Py_ssize_t copies      # padded images: one per thread (each thread pads what it reads,
                           # in its own cache), one when serial
    bint split_rows        # N < threads > 1: the threads split each image's output rows, and
                           # ``ocvec_forward`` packs the weights once per thread


cdef OcvecLayout ocvec_layout(Py_ssize_t N, Py_ssize_t C, Py_ssize_t K, Py_ssize_t kh,
                              Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t dh,
                              Py_ssize_t dw, Py_ssize_t Ho, Py_ssize_t Wo,
                              int num_threads) noexcept nogil:
    cdef OcvecLayout f
    cdef int level = fc_ocvec_level()
    f.Hp = (Ho - 1) * sh + (kh - 1) * dh + 1
    f.Wp = (round_up(Wo, fc_ocvec_tile(level, K, Wo)) - 1) * sw + (kw - 1) * dw + 1
    f.frame = C * f.Hp * f.Wp
    f.KB = fc_ocvec_block(level, K)
    f.Kp = round_up(K, f.KB) if f.KB > 0 else K
    f.copies = num_threads if num_threads > 1 else 1
    f.split_rows = N < num_threads and num_threads > 1
    return f


def ocvec_workspace_elements(Py_ssize_t N, Py_ssize_t C, Py_ssize_t K, int kh, int kw, int sh,
                             int sw, int dh, int dw, Py_ssize_t Ho, Py_ssize_t Wo, int num_threads):
    """Scratch elements of ``ocvec_forward``: the repacked weights and bias, and one padded
    image per thread; when the threads split each image's rows (N < threads), the weights are
    repacked per thread too, so that each thread's loops read them from its own cache."""
    cdef OcvecLayout f = ocvec_layout(N, C, K, kh, kw, sh, sw, dh, dw, Ho, Wo, num_threads)
    return (f.copies if f.split_rows else 1) * f.Kp * (C * kh * kw + 1) + f.copies * f.frame


cdef void pack_ocvec_weights(int level, const float* w, const float* bias, Py_ssize_t K,
                             Py_ssize_t T, Py_ssize_t KB, float* wt, float* bias_out) noexcept nogil:
    """wt[kb][t][kk] = w[kb·KB + kk, t] and bias_out[k] = bias[k] (zeros past K; bias NULL: 0):
    each block of KB rows of w transposed by register tiles."""
    cdef Py_ssize_t blocks = (K + KB - 1) // KB, kb, k
    for kb in range(blocks):
        fc_ocvec_transpose(level, w + kb * KB * T, min(KB, K - kb * KB), T, T, wt + kb * T * KB, KB, KB)
    for k in range(blocks * KB):
        bias_out[k] = bias[k] if bias != NULL and k < K else 0


cdef int ocvec_checks(str op, object x, int kh, int kw, int sh, int sw, int ph, int pw, int dh,
                      int dw, Py_ssize_t out_h, Py_ssize_t out_w) except -1:
    """The checks both ocvec entry points share: loops for this CPU, a 4-d float32 x, and the
    geometry (strides ≥ 1, paddings ≥ 0). Returns the loops' variant."""
    cdef int level = fc_ocvec_level()
    if level == 0:
        raise ValueError(f"{op}: needs a CPU with AVX-512 or AVX2+FMA")
    check_kind(x, cnp.NPY_FLOAT32, 4, op, "x")
    check_geometry(op, kh, kw, dh, dw, out_h, out_w)
    if sh < 1 or sw < 1 or ph < 0 or pw < 0:
        raise ValueError(f"{op}: expected strides ≥ 1 and paddings ≥ 0, got stride ({sh}, {sw}), "
                         f"padding ({ph}, {pw})")
    return level


def ocvec_forward(x, w, bias, int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw,
                  Py_ssize_t out_h, Py_ssize_t out_w, int num_threads):
    """y = conv2d(x, w) + bias (groups 1) by the output-channel-vectorized loops of
    ``_ocvec.h``: float32 x (N, C, H, W), w as the (K, C·kh·kw) matrix, bias (K,) or None, any
    stride, top/left padding (ph, pw) ≥ 0, dilation, and an (out_h, out_w) output. Images run
    in a prange when there are at least ``num_threads``, else the threads split each image's
    output rows. Returns y (N, K, out_h, out_w)."""
    cdef str op = "ocvec_forward"
    cdef int level = ocvec_checks(op, x, kh, kw, sh, sw, ph, pw, dh, dw, out_h, out_w)
    check_kind(w, cnp.NPY_FLOAT32, 2, op, "w")
    cdef Py_ssize_t N = dim(x, 0), C = dim(x, 1), H = dim(x, 2), W = dim(x, 3), K = dim(w, 0)
    cdef Py_ssize_t T = C * kh * kw
    check_array(x, cnp.NPY_FLOAT32, (N, C, H, W), op, "x")
    check_array(w, cnp.NPY_FLOAT32, (K, T), op, "w")
    if bias is not None:
        check_array(bias, cnp.NPY_FLOAT32, (K,), op, "bias")
    cdef cnp.ndarray y = new_array((N, K, out_h, out_w), cnp.NPY_FLOAT32, False)
    if N == 0 or K == 0:
        return y
    cdef int threads = max(num_threads, 1)
    cdef OcvecLayout f = ocvec_layout(N, C, K, kh, kw, sh, sw, dh, dw, out_h, out_w, threads)
    cdef Py_ssize_t KB = f.KB, padded_k = f.Kp, frame = f.frame, packed = f.Kp * (T + 1)
    cdef cnp.ndarray work = new_array(
        (ocvec_workspace_elements(N, C, K, kh, kw, sh, sw, dh, dw, out_h, out_w, threads),),
        cnp.NPY_FLOAT32, False)
    cdef float* wt = <float*>data(work)
    cdef float* bp = wt + padded_k * T
    cdef float* frames = bp + padded_k
    cdef const float* px = <const float*>data(x)
    cdef float* py = <float*>data(y)
    cdef const float* pw_ = <const float*>data(w)
    cdef const float* pb = <const float*>data(bias) if bias is not None else NULL
    cdef Py_ssize_t r, n
    cdef float* own
    with nogil:
        if f.split_rows:
            # each thread packs the weights and pads the image it reads: read from another
            # core's cache, they cost more than packing them again
            for r in prange(threads, schedule='static', num_threads=team(threads)):
                own = wt + r * (packed + frame)
                pack_ocvec_weights(level, pw_, pb, K, T, KB, own, own + padded_k * T)
                for n in range(N):
                    fc_pad_f(px + n * C * H * W, C, H, W, ph, pw, f.Hp, f.Wp, own + packed)
                    fc_ocvec_part(level, own + packed, C, f.Hp, f.Wp, own, own + padded_k * T, K, kh,
                                  kw, sh, sw, dh, dw, out_h, out_w, r, threads, py + n * K * out_h * out_w)
        else:
            pack_ocvec_weights(level, pw_, pb, K, T, KB, wt, bp)
            ocvec_forward_packed_f32(px, wt, bp, py, frames, frame, N, C, H, W, K, kh, kw, sh, sw,
                                     ph, pw, dh, dw, out_h, out_w, threads)
    return y


cdef inline void transpose_channels(int level, const float* src, Py_ssize_t K, Py_ssize_t L,
                                    Py_ssize_t Kp, float* dst) noexcept nogil:
    """dst[p·Kp + k] = src[k·L + p] for p < L, k < K, and 0 for K ≤ k < Kp: one image's dY with
    the channels contiguous per pixel (Kp a multiple of the vector width)."""
    fc_ocvec_transpose(level, src, K, L, L, dst, Kp, Kp)


def ocvec_weight_grad_elements(Py_ssize_t N, Py_ssize_t C, Py_ssize_t K, int kh, int kw, int sh,
                               int sw, int dh, int dw, Py_ssize_t Ho, Py_ssize_t Wo, int num_threads):
    """Scratch elements of ``ocvec_weight_grad`` beyond its result: per thread (images in a
    prange when N ≥ threads > 1) a padded image, the transposed dY and, with several threads, a
    dW partial."""
    cdef OcvecLayout f = ocvec_layout(N, C, K, kh, kw, sh, sw, dh, dw, Ho, Wo, num_threads)
    return f.copies * (f.frame + Ho * Wo * f.Kp + (K * C * kh * kw if f.copies > 1 else 0))


def ocvec_weight_grad(x, dy, int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw,
                      int num_threads):
    """dW (K, C, kh, kw) of y = conv2d(x, w) (groups 1, float32) for dY ``dy`` (N, K, Ho, Wo), by
    the output-channel-vectorized loops of ``_ocvec.h``: each image padded once and its dY
    transposed to pixel-major rows, then register tiles of taps × channels over the pixels.
    When there are at least ``num_threads`` images they are cut into that many contiguous
    partitions, each summed into its own dW partial by whichever thread takes it; else one
    after another."""
    cdef str op = "ocvec_weight_grad"
    check_kind(dy, cnp.NPY_FLOAT32, 4, op, "dy")  # its shape gives the output size checked next
    cdef int level = ocvec_checks(op, x, kh, kw, sh, sw, ph, pw, dh, dw, dim(dy, 2), dim(dy, 3))
    cdef Py_ssize_t N = dim(x, 0), C = dim(x, 1), H = dim(x, 2), W = dim(x, 3)
    cdef Py_ssize_t K = dim(dy, 1), Ho = dim(dy, 2), Wo = dim(dy, 3), T = C * kh * kw
    check_array(x, cnp.NPY_FLOAT32, (N, C, H, W), op, "x")
    check_array(dy, cnp.NPY_FLOAT32, (N, K, Ho, Wo), op, "dy")
    cdef int threads = max(num_threads, 1)
    cdef OcvecLayout f = ocvec_layout(N, C, K, kh, kw, sh, sw, dh, dw, Ho, Wo, threads)
    cdef bint by_image = f.copies > 1
    cdef Py_ssize_t parts = f.copies
    cdef cnp.ndarray dw_out = new_array((K, C, kh, kw), cnp.NPY_FLOAT32, True)
    if N == 0 or K == 0 or T == 0:
        return dw_out
    cdef Py_ssize_t Kp = f.Kp, L = Ho * Wo, frame = f.frame, stride = frame + L * Kp
    cdef cnp.ndarray work = new_array((parts * stride,), cnp.NPY_FLOAT32, False)
    cdef object partials = new_array((parts, K * T), cnp.NPY_FLOAT32, True) if parts > 1 else None
    cdef Py_ssize_t* off = tap_offsets(C, kh, kw, f.Hp * f.Wp, dh * f.Wp, dw)
    if off == NULL:
        raise MemoryError(f"{op}: no memory for the tap offsets")
    cdef const float* px = <const float*>data(x)
    cdef const float* pdy = <const float*>data(dy)
    cdef float* pwork = <float*>data(work)
    cdef float* pdw = <float*>data(dw_out)
    cdef float* pparts = <float*>data(partials) if parts > 1 else NULL
    cdef Py_ssize_t n, p, image = C * H * W, out = K * L
    cdef float* scratch
    with nogil:
        if by_image:
            for p in prange(parts, schedule='dynamic', num_threads=team(<int>parts)):
                scratch = pwork + threadid() * stride
                for n in range(part_begin(p, parts, N), part_begin(p + 1, parts, N)):
                    fc_pad_f(px + n * image, C, H, W, ph, pw, f.Hp, f.Wp, scratch)
                    transpose_channels(level, pdy + n * out, K, L, Kp, scratch + frame)
                    fc_ocvec_dw(level, scratch, f.Wp, off, T, scratch + frame, Kp, K, sh, sw, Ho, Wo,
                                pparts + p * K * T)
        else:
            for n in range(N):
                fc_pad_f(px + n * image, C, H, W, ph, pw, f.Hp, f.Wp, pwork)
                transpose_channels(level, pdy + n * out, K, L, Kp, pwork + frame)
                fc_ocvec_dw(level, pwork, f.Wp, off, T, pwork + frame, Kp, K, sh, sw, Ho, Wo, pdw)
    free(off)
    if parts > 1:
        with nogil:
            sum_rows(<const float*>pparts, parts, K * T, pdw)
    return dw_out


# ---- nogil entry points (direct.pxd): the compiled predictor's executor calls these ---------------

cdef int direct_forward_f32(const float* x, const float* w, const float* bias, float* y,
                            float* work, Py_ssize_t stride, Py_ssize_t N, Py_ssize_t C,
                            Py_ssize_t H, Py_ssize_t W, Py_ssize_t K, int kh, int kw, int ph,
                            int pw, int dh, int dw, Py_ssize_t out_h, Py_ssize_t out_w,
                            bint parallel, int num_threads) noexcept nogil:
    """``direct_forward`` on raw contiguous float32 arrays into y, with ``work`` holding one
    scratch row (``forward_scratch`` elements, ``workspace_elements``' first value) per thread,
    ``stride`` apart. Returns -1 when the tap table cannot be allocated, else 0."""
    cdef Shape s
    s.C = C; s.H = H; s.W = W; s.K = K; s.kh = kh; s.kw = kw; s.ph = ph; s.pw = pw
    s.dh = dh; s.dw = dw; s.Ho = out_h; s.Wo = out_w
    s.Hp = out_h + dh * (kh - 1); s.Wp = out_w + dw * (kw - 1)
    s.Hq = H + dh * (kh - 1); s.Wq = W + dw * (kw - 1)
    s.L = out_h * out_w; s.T = C * kh * kw
    if N == 0 or K == 0:
        return 0
    cdef Py_ssize_t* off = tap_offsets(C, kh, kw, s.Hp * out_w, dh * out_w, C * s.Hp * out_w)
    if off == NULL:
        return -1
    forward_all(x, w, bias, y, work, stride, N, off, &s, parallel, num_threads)
    free(off)
    return 0


cdef void ocvec_forward_packed_f32(const float* x, const float* wt, const float* bp, float* y,
                                   float* frames, Py_ssize_t frame_stride, Py_ssize_t N,
                                   Py_ssize_t C, Py_ssize_t H, Py_ssize_t W, Py_ssize_t K, int kh,
                                   int kw, int sh, int sw, int ph, int pw, int dh, int dw,
                                   Py_ssize_t out_h, Py_ssize_t out_w, int num_threads) noexcept nogil:
    """``ocvec_forward`` with the weights and bias already packed by ``ocvec_pack`` (so nothing
    is repacked per call): frames holds one zero-padded image per copy of ``ocvec_layout``,
    ``frame_stride`` apart. With one thread nothing opens a parallel region."""
    cdef int level = fc_ocvec_level()
    cdef int threads = max(num_threads, 1)
    cdef OcvecLayout f = ocvec_layout(N, C, K, kh, kw, sh, sw, dh, dw, out_h, out_w, threads)
    cdef Py_ssize_t n, r, image = C * H * W, out = K * out_h * out_w
    if N == 0 or K == 0 or level == 0:
        return
    if threads == 1:
        for n in range(N):
            fc_pad_f(x + n * image, C, H, W, ph, pw, f.Hp, f.Wp, frames)
            fc_ocvec_image(level, frames, C, f.Hp, f.Wp, wt, bp, K, kh, kw, sh, sw, dh, dw,
                           out_h, out_w, 0, out_h, y + n * out)
    elif N >= threads:
        for n in prange(N, schedule='static', num_threads=team(threads)):
            fc_pad_f(x + n * image, C, H, W, ph, pw, f.Hp, f.Wp, frames + threadid() * frame_stride)
            fc_ocvec_image(level, frames + threadid() * frame_stride, C, f.Hp, f.Wp, wt, bp, K, kh,
                           kw, sh, sw, dh, dw, out_h, out_w, 0, out_h, y + n * out)
    else:  # the threads split each image (fc_ocvec_part), each padding it into its own frame
        for r in prange(threads, schedule='static', num_threads=team(threads)):
            for n in range(N):
                fc_pad_f(x + n * image, C, H, W, ph, pw, f.Hp, f.Wp, frames + r * frame_stride)
                fc_ocvec_part(level, frames + r * frame_stride, C, f.Hp, f.Wp, wt, bp, K, kh, kw,
                              sh, sw, dh, dw, out_h, out_w, r, threads, y + n * out)


def ocvec_pack(w, bias):
    """(wt, bias_out): w as the (K, T) float32 matrix repacked as ``ocvec_forward`` does per call
    ([block][tap][channel], zeros past K) and the bias padded to the block (zeros when None),
    for ``ocvec_forward_packed_f32``."""
    cdef str op = "ocvec_pack"
    cdef int level = fc_ocvec_level()
    if level == 0:
        raise ValueError(f"{op}: needs a CPU with AVX-512 or AVX2+FMA")
    check_kind(w, cnp.NPY_FLOAT32, 2, op, "w")
    cdef Py_ssize_t K = dim(w, 0), T = dim(w, 1)
    if bias is not None:
        check_array(bias, cnp.NPY_FLOAT32, (K,), op, "bias")
    cdef Py_ssize_t KB = fc_ocvec_block(level, K)
    cdef Py_ssize_t Kp = round_up(K, KB) if KB > 0 else K
    cdef cnp.ndarray wt = new_array((max(Kp * T, 1),), cnp.NPY_FLOAT32, True)
    cdef cnp.ndarray bp = new_array((max(Kp, 1),), cnp.NPY_FLOAT32, True)
    cdef const float* pw_ = <const float*>data(w)
    cdef const float* pb = <const float*>data(bias) if bias is not None else NULL
    cdef float* pwt = <float*>data(wt)
    cdef float* pbp = <float*>data(bp)
    if K > 0 and T > 0:
        with nogil:
            pack_ocvec_weights(level, pw_, pb, K, T, KB, pwt, pbp)
    return wt, bp


def ocvec_frame_elements(Py_ssize_t N, Py_ssize_t C, Py_ssize_t K, int kh, int kw, int sh, int sw,
                         int dh, int dw, Py_ssize_t Ho, Py_ssize_t Wo, int num_threads):
    """(elements of one padded image, copies) of ``ocvec_forward_packed_f32``'s frames."""
    cdef OcvecLayout f = ocvec_layout(N, C, K, kh, kw, sh, sw, dh, dw, Ho, Wo, max(num_threads, 1))
    return f.frame, f.copies
