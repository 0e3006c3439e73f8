/* Depthwise forward on NCHW planes for 3×3 filters (dilation 1, stride 1 or 2 per axis), float32,
   vectorized along the output rows: the layers MobileNets are made of, where the plane loops of
   depthwise.pyx sum one tap at a time through memory (9 passes over each output row, scalar at
   stride 2).

   Each call handles one plane. Its padded input rows are copied first into the calling thread's
   scratch, zeros around them, so that every tap of every output vector is one unaligned load
   with no border test: at column stride 1 the row as is, at stride 2 split into its even and odd
   columns (tap 0 reads even[ox], tap 1 odd[ox], tap 2 even[ox + 1]). Each output vector then
   sums its nine taps in registers, starting from the bias, and is stored once. Compiled for
   AVX-512, AVX2+FMA and the baseline (_shallow.h's FC_DISPATCH). */
#ifndef FC_DWPLANES_H
#define FC_DWPLANES_H

#include <stdlib.h>
#include <string.h>
#include "_shallow.h"

static __thread float *fc_dwp_buffer = NULL;
static __thread size_t fc_dwp_floats = 0;

/* The calling thread's scratch of at least n floats, kept for its next calls (NULL: no memory). */
static float *fc_dwp_scratch(size_t n)
{
    if (n > fc_dwp_floats) {
        float *grown = (float *)malloc(n * sizeof(float));
        if (grown == NULL) return NULL;
        free(fc_dwp_buffer);
        fc_dwp_buffer = grown;
        fc_dwp_floats = n;
    }
    return fc_dwp_buffer;
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

/* Output vector sums. FC_DWP_IN(i, SH) reads padded row i of a group of four output rows (its
   three tap vectors) and adds it to each output row r of the group whose filter row i − r·SH is
   0, 1 or 2 (constants: the compiler keeps only those). */
#define FC_DWP_ADD(A, KY)                                                                      \
    if ((KY) == 0) { A += w0 * x0; A += w1 * x1; A += w2 * x2; }                               \
    else if ((KY) == 1) { A += w3 * x0; A += w4 * x1; A += w5 * x2; }                          \
    else if ((KY) == 2) { A += w6 * x0; A += w7 * x1; A += w8 * x2; }
#define FC_DWP_IN(VT, i, SH) {                                                                 \
    const float *q_ = p + (i) * rs + ox;                                                       \
    VT x0 = FC_LD(VT, q_ + c0), x1 = FC_LD(VT, q_ + c1), x2 = FC_LD(VT, q_ + c2);               \
    FC_KEEP(x0); FC_KEEP(x1); FC_KEEP(x2);  /* one load each, not one per use */               \
    FC_DWP_ADD(a0, (i)) FC_DWP_ADD(a1, (i) - (SH)) FC_DWP_ADD(a2, (i) - 2 * (SH))              \
    FC_DWP_ADD(a3, (i) - 3 * (SH)) }
#define FC_DWP_STORE(VT, A, ROW)                                                               \
    if (ox + VL <= Wo) FC_ST(VT, y + (ROW) * Wo + ox, A);                                      \
    else { float last_[64]; FC_ST(VT, last_, A);                                               \
           for (ptrdiff_t k_ = 0; k_ < Wo - ox; k_++) y[(ROW) * Wo + ox + k_] = last_[k_]; }
/* Output rows oy … oy+3 (SH: the row stride, a constant). */
#define FC_DWP_FOUR(VT, SH)                                                                    \
    for (ptrdiff_t ox = 0; ox < Wo; ox += VL) {                                                \
        const float *p = buf + oy * (SH) * rs;                                                 \
        VT a0 = b, a1 = b, a2 = b, a3 = b;                                                     \
        FC_DWP_IN(VT, 0, SH) FC_DWP_IN(VT, 1, SH) FC_DWP_IN(VT, 2, SH) FC_DWP_IN(VT, 3, SH)    \
        FC_DWP_IN(VT, 4, SH) FC_DWP_IN(VT, 5, SH)                                              \
        if ((SH) == 2) { FC_DWP_IN(VT, 6, SH) FC_DWP_IN(VT, 7, SH) FC_DWP_IN(VT, 8, SH) }      \
        FC_DWP_STORE(VT, a0, oy) FC_DWP_STORE(VT, a1, oy + 1)                                  \
        FC_DWP_STORE(VT, a2, oy + 2) FC_DWP_STORE(VT, a3, oy + 3)                              \
    }

/* One output plane y (Ho × Wo) = bias + 3×3 depthwise conv of x (H × W) with w (9 taps), stride
   (sh, sw), top/left padding (ph, pw), any bottom/right extent (rows and columns past the input
   read zeros). Output rows go four at a time, each padded input row's tap vectors loaded once
   for all four (at row stride 1, 18 loads for 36 multiply-adds, not 36). Returns 0, or -1
   without touching y when its scratch cannot be allocated. */
#define FC_DWP_BODY(REAL, VT) {                                                                \
    const ptrdiff_t VL = sizeof(VT) / sizeof(float);                                           \
    const ptrdiff_t half = (Wo + VL - 1) / VL * VL + VL;  /* padded row (per phase at stride 2) */ \
    const ptrdiff_t rs = sw == 2 ? 2 * half : half;      /* one padded row in the scratch */    \
    const ptrdiff_t hp = (Ho - 1) * sh + 3;                                                     \
    float *buf = fc_dwp_scratch((size_t)(hp * rs));                                             \
    if (buf == NULL) return -1;                                                                \
    for (ptrdiff_t r = 0; r < hp; r++) FC_DWP_ROW(r, buf + r * rs)                              \
    const VT w0 = (VT){0} + w[0], w1 = (VT){0} + w[1], w2 = (VT){0} + w[2];                    \
    const VT w3 = (VT){0} + w[3], w4 = (VT){0} + w[4], w5 = (VT){0} + w[5];                    \
    const VT w6 = (VT){0} + w[6], w7 = (VT){0} + w[7], w8 = (VT){0} + w[8];                    \
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
            FC_DWP_IN(VT, 0, 3) FC_DWP_IN(VT, 1, 3) FC_DWP_IN(VT, 2, 3)                        \
            (void)a1; (void)a2; (void)a3;                                                      \
            FC_DWP_STORE(VT, a0, oy)                                                           \
        }                                                                                      \
    }                                                                                          \
    return 0;                                                                                  \
}

/* The row loops stay loops (gcc would turn them into memcpy/memset calls, which cost more than
   copying the short rows). */
#define FC_DWP_LOOPS __attribute__((optimize("no-tree-loop-distribute-patterns")))
#if FC_X86
static FC_AVX512 FC_DWP_LOOPS int fc_dwp_run_fc_vf64(const float *x, const float *w, float bias, float *y, ptrdiff_t H,
                                        ptrdiff_t W, ptrdiff_t Ho, ptrdiff_t Wo, ptrdiff_t sh, ptrdiff_t sw,
                                        ptrdiff_t ph, ptrdiff_t pw) FC_DWP_BODY(float, fc_vf64)
static FC_AVX2 FC_DWP_LOOPS int fc_dwp_run_fc_vf32(const float *x, const float *w, float bias, float *y, ptrdiff_t H,
                                      ptrdiff_t W, ptrdiff_t Ho, ptrdiff_t Wo, ptrdiff_t sh, ptrdiff_t sw,
                                      ptrdiff_t ph, ptrdiff_t pw) FC_DWP_BODY(float, fc_vf32)
#endif
static FC_DWP_LOOPS int fc_dwp_run_fc_vf16(const float *x, const float *w, float bias, float *y, ptrdiff_t H,
                              ptrdiff_t W, ptrdiff_t Ho, ptrdiff_t Wo, ptrdiff_t sh, ptrdiff_t sw,
                              ptrdiff_t ph, ptrdiff_t pw) FC_DWP_BODY(float, fc_vf16)

/* The plane on the widest variant the CPU runs (fc_isa_cap lowers it in tests). */
static int fc_dwp_plane(const float *x, const float *w, float bias, float *y, ptrdiff_t H, ptrdiff_t W,
                        ptrdiff_t Ho, ptrdiff_t Wo, ptrdiff_t sh, ptrdiff_t sw, ptrdiff_t ph, ptrdiff_t pw)
{
    int level = fc_isa_level();
    if (level > fc_isa_cap) level = fc_isa_cap;
#if FC_X86
    if (level == 3) return fc_dwp_run_fc_vf64(x, w, bias, y, H, W, Ho, Wo, sh, sw, ph, pw);
    if (level == 2) return fc_dwp_run_fc_vf32(x, w, bias, y, H, W, Ho, Wo, sh, sw, ph, pw);
#endif
    return fc_dwp_run_fc_vf16(x, w, bias, y, H, W, Ho, Wo, sh, sw, ph, pw);
}

#endif /* FC_DWPLANES_H */
