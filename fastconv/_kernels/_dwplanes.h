/* 3×3 convolutions on NCHW planes (dilation 1, stride 1 or 2 per axis), float32, vectorized along
   the output rows: the depthwise forward (fc_dwp_plane: MobileNet's layers, where the plane
   loops of depthwise.pyx sum one tap at a time through memory, 9 passes over each output row,
   scalar at stride 2) and the forward of few input channels (fc_scv_rows: the first layer of
   a network on RGB images, whose im2col GEMM is 27 deep).

   Each plane's padded input rows are copied first into the calling thread's
   scratch, zeros around them, so that every tap of every output vector is one unaligned load
   with no border test: at column stride 1 the row as is, at stride 2 split into its even and odd
   columns (tap 0 reads even[ox], tap 1 odd[ox], tap 2 even[ox + 1]). Each output vector then
   sums its taps in registers, starting from the bias, and is stored once. Compiled for
   AVX-512, AVX2+FMA and the baseline (_shallow.h's FC_DISPATCH). */
#ifndef FC_DWPLANES_H
#define FC_DWPLANES_H

#include <math.h>
#include <string.h>
#include "_shallow.h"
#include "_sgemm.h"   /* fc_sgemm_grow: the per-thread buffers' grow-on-demand */

static __thread float *fc_dwp_buffer = NULL;
static __thread size_t fc_dwp_floats = 0;

/* The calling thread's scratch of at least n floats, kept for its next calls (NULL: no memory). */
static float *fc_dwp_scratch(size_t n)
{
    return fc_sgemm_grow(&fc_dwp_buffer, &fc_dwp_floats, n);
}

/* Padded input row r (input row r − ph, columns shifted right by pw), zeros where it lies outside
   the plane: at column stride 1 `half` columns into dst, at stride 2 its even columns into dst and
   its odd ones into dst + half (`half` each), read straight from x (a macro: the loops are
   compiled, and vectorized, for each variant's target). */
#define FC_DWP_SPAN(DST, SRC, STEP, LO, HI) {                                                  \
    const ptrdiff_t lo_ = (LO) < half ? ((LO) > 0 ? (LO) : 0) : half;                          \
    const ptrdiff_t hi_ = (HI) < half ? ((HI) > lo_ ? (HI) : lo_) : half;                      \
    ptrdiff_t j_ = 0;                                                                          \
    for (; j_ < lo_; j_++) (DST)[j_] = 0.0f;                                                   \
    for (; j_ < hi_; j_++) (DST)[j_] = (SRC)[(STEP) * j_];                                     \
    for (; j_ < half; j_++) (DST)[j_] = 0.0f;                                                  \
}
#define FC_DWP_ROW(r, dst) {                                                                   \
    const ptrdiff_t iy_ = (r) - ph;                                                            \
    if (iy_ < 0 || iy_ >= H) {                                                                 \
        for (ptrdiff_t j_ = 0; j_ < rs; j_++) (dst)[j_] = 0.0f;                                \
    } else if (sw == 1) {  /* column u = ix + pw */                                            \
        FC_DWP_SPAN((dst), x + iy_ * W - pw, 1, pw, pw + W)                                    \
    } else {  /* even column j: ix = 2j − pw; odd: ix = 2j + 1 − pw */                         \
        FC_DWP_SPAN((dst), x + iy_ * W - pw, 2, (pw + 1) / 2, (W + pw + 1) / 2)                \
        FC_DWP_SPAN((dst) + half, x + iy_ * W + 1 - pw, 2, pw / 2, (W + pw) / 2)               \
    }                                                                                          \
}

/* Output vector sums. FC_DWP_IN(VT, i, SH, WT) reads padded row i of a group of four output rows
   (its three tap vectors) and adds it to each output row r of the group whose filter row
   ky = i − r·SH is 0, 1 or 2 (constants: the compiler keeps only those), with the weights WT(3·ky)
   … WT(3·ky + 2) (vectors or scalars). */
#define FC_DWP_ADD(A, KY, WT)                                                                  \
    if ((KY) >= 0 && (KY) <= 2) {                                                              \
        A += WT(3 * (KY)) * x0; A += WT(3 * (KY) + 1) * x1; A += WT(3 * (KY) + 2) * x2; }
#define FC_DWP_IN(VT, i, SH, WT) {                                                             \
    const float *q_ = p + (i) * rs + ox;                                                       \
    VT x0 = FC_LD(VT, q_ + c0), x1 = FC_LD(VT, q_ + c1), x2 = FC_LD(VT, q_ + c2);               \
    FC_KEEP(x0); FC_KEEP(x1); FC_KEEP(x2);  /* one load each, not one per use */               \
    FC_DWP_ADD(a0, (i), WT) FC_DWP_ADD(a1, (i) - (SH), WT) FC_DWP_ADD(a2, (i) - 2 * (SH), WT)  \
    FC_DWP_ADD(a3, (i) - 3 * (SH), WT) }
/* The padded rows a group of four output rows reads (6 at row stride 1, 9 at 2), or one row (3). */
#define FC_DWP_FOUR_ROWS(VT, SH, WT)                                                           \
    FC_DWP_IN(VT, 0, SH, WT) FC_DWP_IN(VT, 1, SH, WT) FC_DWP_IN(VT, 2, SH, WT)                 \
    FC_DWP_IN(VT, 3, SH, WT) FC_DWP_IN(VT, 4, SH, WT) FC_DWP_IN(VT, 5, SH, WT)                 \
    if ((SH) == 2) { FC_DWP_IN(VT, 6, SH, WT) FC_DWP_IN(VT, 7, SH, WT) FC_DWP_IN(VT, 8, SH, WT) }
#define FC_DWP_ONE_ROW(VT, WT)                                                                 \
    FC_DWP_IN(VT, 0, 3, WT) FC_DWP_IN(VT, 1, 3, WT) FC_DWP_IN(VT, 2, 3, WT)                    \
    (void)a1; (void)a2; (void)a3;
/* A clamped to [lo, hi] (NaN kept, as the executor's clamp): the fused ReLU/ReLU6 of the
   compiled predictor; ±inf for none. Bit selects through the comparison masks (C has no vector ?:). */
#define FC_DWP_CLAMP(A) {                                                                      \
    __typeof__((A) < (A)) below_ = (A) < lov, above_ = (A) > hiv;                               \
    A = (__typeof__(A))(((__typeof__(below_))(A) & ~below_) | ((__typeof__(below_))lov & below_)); \
    A = (__typeof__(A))(((__typeof__(above_))(A) & ~above_) | ((__typeof__(above_))hiv & above_)); }
#define FC_DWP_STORE(VT, A, Y, ROW)                                                            \
    if (clamp) FC_DWP_CLAMP(A)                                                                 \
    if (ox + VL <= Wo) FC_ST(VT, (Y) + (ROW) * Wo + ox, A);                                    \
    else { float last_[64]; FC_ST(VT, last_, A);                                               \
           for (ptrdiff_t k_ = 0; k_ < Wo - ox; k_++) (Y)[(ROW) * Wo + ox + k_] = last_[k_]; }
#define FC_DWP_STORE4(VT, Y, ROW)                                                              \
    FC_DWP_STORE(VT, a0, Y, ROW) FC_DWP_STORE(VT, a1, Y, (ROW) + 1)                            \
    FC_DWP_STORE(VT, a2, Y, (ROW) + 2) FC_DWP_STORE(VT, a3, Y, (ROW) + 3)
/* the depthwise filter's nine weights, as vectors */
#define FC_DWP_WV(j) wv[j]
/* Output rows oy … oy+3 of the depthwise plane (SH: the row stride, a constant). */
#define FC_DWP_FOUR(VT, SH)                                                                    \
    for (ptrdiff_t ox = 0; ox < Wo; ox += VL) {                                                \
        const float *p = buf + oy * (SH) * rs;                                                 \
        VT a0 = b, a1 = b, a2 = b, a3 = b;                                                     \
        FC_DWP_FOUR_ROWS(VT, SH, FC_DWP_WV)                                                    \
        FC_DWP_STORE4(VT, y, oy)                                                               \
    }

/* One output plane y (Ho × Wo) = bias + 3×3 depthwise conv of x (H × W) with w (9 taps), stride
   (sh, sw), top/left padding (ph, pw), any bottom/right extent (rows and columns past the input
   read zeros), each output clamped to [lo, hi] (±inf: none). Output rows go four at a time,
   each padded input row's tap vectors loaded once for all four (at row stride 1, 18 loads for
   36 multiply-adds, not 36). Returns 0, or -1 without touching y when its scratch cannot be
   allocated. */
#define FC_DWP_BODY(REAL, VT) {                                                                \
    const ptrdiff_t VL = sizeof(VT) / sizeof(float);                                           \
    const VT lov = (VT){0} + lo, hiv = (VT){0} + hi;                                           \
    const int clamp = lo > -INFINITY || hi < INFINITY;                                         \
    const ptrdiff_t half = (Wo + VL - 1) / VL * VL + VL;  /* padded row (per phase at stride 2) */ \
    const ptrdiff_t rs = sw == 2 ? 2 * half : half;      /* one padded row in the scratch */    \
    const ptrdiff_t hp = (Ho - 1) * sh + 3;                                                     \
    float *buf = fc_dwp_scratch((size_t)(hp * rs));                                             \
    if (buf == NULL) return -1;                                                                \
    for (ptrdiff_t r = 0; r < hp; r++) FC_DWP_ROW(r, buf + r * rs)                              \
    VT wv[9];                                                                                  \
    for (int t_ = 0; t_ < 9; t_++) wv[t_] = (VT){0} + w[t_];                                   \
    const VT b = (VT){0} + bias;                                                               \
    /* column offsets of taps 0, 1, 2 in a scratch row */                                      \
    const ptrdiff_t c0 = 0, c1 = sw == 2 ? half : 1, c2 = sw == 2 ? 1 : 2;                      \
    ptrdiff_t oy = 0;                                                                          \
    if (sh == 1) for (; oy + 4 <= Ho; oy += 4) { FC_DWP_FOUR(VT, 1) }                           \
    else for (; oy + 4 <= Ho; oy += 4) { FC_DWP_FOUR(VT, 2) }                                   \
    for (; oy < Ho; oy++) {                                                                    \
        for (ptrdiff_t ox = 0; ox < Wo; ox += VL) {                                            \
            const float *p = buf + oy * sh * rs;                                               \
            VT a0 = b, a1 = b, a2 = b, a3 = b;                                                 \
            FC_DWP_ONE_ROW(VT, FC_DWP_WV)                                                      \
            FC_DWP_STORE(VT, a0, y, oy)                                                        \
        }                                                                                      \
    }                                                                                          \
    return 0;                                                                                  \
}

/* y rows [oy0, oy1) of K output planes (Ho × Wo, y the first) = bias[k] (bias may be NULL) + Σ_c
   the 3×3 convolution of x's input plane c (C planes of H × W) with w[k, c] (w: K × C·9), stride
   (sh, sw), top/left padding (ph, pw), clamped to [lo, hi]. The padded rows the block reads, of every input plane, go
   to the thread's scratch once; then each output channel in turn (its rows written in order:
   interleaving the channels' planes touched a page per channel and row) sums, per group of four
   output rows and output vector, its C·9 taps in four registers, the input vectors read from
   the scratch and the weights broadcast from w. Returns -1 when out of memory. */
#define FC_SCV_WK(j) wk[j]
#define FC_SCV_FOUR(VT, SH)                                                                    \
    for (ptrdiff_t ox = 0; ox < Wo; ox += VL) {                                                \
        VT a0 = bk, a1 = bk, a2 = bk, a3 = bk;                                                 \
        for (ptrdiff_t c = 0; c < C; c++) {                                                    \
            const float *p = buf + (c * hp + (oy - oy0) * (SH)) * rs;                          \
            const float *wk = w + (k * C + c) * 9;                                             \
            FC_DWP_FOUR_ROWS(VT, SH, FC_SCV_WK)                                                \
        }                                                                                      \
        FC_DWP_STORE4(VT, yk, oy)                                                              \
    }
#define FC_SCV_BODY(REAL, VT) {                                                                \
    const ptrdiff_t VL = sizeof(VT) / sizeof(float);                                           \
    const VT lov = (VT){0} + lo, hiv = (VT){0} + hi;                                           \
    const int clamp = lo > -INFINITY || hi < INFINITY;                                         \
    const ptrdiff_t half = (Wo + VL - 1) / VL * VL + VL;                                        \
    const ptrdiff_t rs = sw == 2 ? 2 * half : half;                                             \
    const ptrdiff_t hp = (oy1 - oy0 - 1) * sh + 3;  /* padded rows of each plane the block reads */ \
    if (oy1 <= oy0) return 0;                                                                  \
    float *buf = fc_dwp_scratch((size_t)(C * hp * rs));                                         \
    if (buf == NULL) return -1;                                                                \
    for (ptrdiff_t c = 0; c < C; c++) {                                                        \
        const float *x = xs + c * H * W;                                                       \
        for (ptrdiff_t r = 0; r < hp; r++) FC_DWP_ROW(oy0 * sh + r, buf + (c * hp + r) * rs)    \
    }                                                                                          \
    const ptrdiff_t c0 = 0, c1 = sw == 2 ? half : 1, c2 = sw == 2 ? 1 : 2;                      \
    for (ptrdiff_t k = 0; k < K; k++) {                                                        \
        const VT bk = (VT){0} + (bias ? bias[k] : 0.0f);                                       \
        float *yk = y + k * Ho * Wo;                                                           \
        ptrdiff_t oy = oy0;                                                                    \
        if (sh == 1) for (; oy + 4 <= oy1; oy += 4) { FC_SCV_FOUR(VT, 1) }                      \
        else for (; oy + 4 <= oy1; oy += 4) { FC_SCV_FOUR(VT, 2) }                              \
        for (; oy < oy1; oy++)                                                                 \
            for (ptrdiff_t ox = 0; ox < Wo; ox += VL) {                                        \
                VT a0 = bk, a1 = bk, a2 = bk, a3 = bk;                                         \
                for (ptrdiff_t c = 0; c < C; c++) {                                            \
                    const float *p = buf + (c * hp + (oy - oy0) * sh) * rs;                    \
                    const float *wk = w + (k * C + c) * 9;                                     \
                    FC_DWP_ONE_ROW(VT, FC_SCV_WK)                                              \
                }                                                                              \
                FC_DWP_STORE(VT, a0, yk, oy)                                                   \
            }                                                                                  \
    }                                                                                          \
    return 0;                                                                                  \
}

/* NAME on the widest variant the CPU runs (fc_isa_cap lowers it in tests): BODY compiled for
   AVX-512, AVX2+FMA and the baseline, returning int. The row loops stay loops (gcc would turn
   them into memcpy/memset calls, which cost more than copying the short rows). */
#define FC_DWP_LOOPS __attribute__((optimize("no-tree-loop-distribute-patterns")))
#if FC_X86
#define FC_DWP_VARIANTS(NAME, PARAMS, ARGS, BODY)                                              \
static FC_AVX512 FC_DWP_LOOPS int NAME##_avx512 PARAMS BODY(float, fc_vf64)                   \
static FC_AVX2 FC_DWP_LOOPS int NAME##_avx2 PARAMS BODY(float, fc_vf32)                       \
static FC_DWP_LOOPS int NAME##_base PARAMS BODY(float, fc_vf16)                               \
static int NAME PARAMS {                                                                       \
    int level = fc_isa_level();                                                                \
    if (level > fc_isa_cap) level = fc_isa_cap;                                                \
    if (level == 3) return NAME##_avx512 ARGS;                                                 \
    if (level == 2) return NAME##_avx2 ARGS;                                                   \
    return NAME##_base ARGS;                                                                   \
}
#else
#define FC_DWP_VARIANTS(NAME, PARAMS, ARGS, BODY) static FC_DWP_LOOPS int NAME PARAMS BODY(float, fc_vf16)
#endif

FC_DWP_VARIANTS(fc_dwp_plane,
                (const float *x, const float *w, float bias, float *y, ptrdiff_t H, ptrdiff_t W, ptrdiff_t Ho,
                 ptrdiff_t Wo, ptrdiff_t sh, ptrdiff_t sw, ptrdiff_t ph, ptrdiff_t pw, float lo, float hi),
                (x, w, bias, y, H, W, Ho, Wo, sh, sw, ph, pw, lo, hi), FC_DWP_BODY)
FC_DWP_VARIANTS(fc_scv_rows,
                (const float *xs, const float *w, const float *bias, float *y, ptrdiff_t C, ptrdiff_t H,
                 ptrdiff_t W, ptrdiff_t K, ptrdiff_t Ho, ptrdiff_t Wo, ptrdiff_t sh, ptrdiff_t sw, ptrdiff_t ph,
                 ptrdiff_t pw, ptrdiff_t oy0, ptrdiff_t oy1, float lo, float hi),
                (xs, w, bias, y, C, H, W, K, Ho, Wo, sh, sw, ph, pw, oy0, oy1, lo, hi), FC_SCV_BODY)

#endif /* FC_DWPLANES_H */
