/* Direct convolution vectorized over output channels (float32 forward, AVX-512 or AVX2+FMA).

   For few input channels and large or strided filters (an 11x11/4 first layer), im2col + GEMM
   spends much of its time building and streaming the column buffer (C*kh*kw rows, one column per
   output pixel). Here a register tile holds R consecutive output pixels of one output row times
   one block of KB output channels (AVX-512: up to 6 pixels x 4 vectors of 16 channels or 12 x
   2, 24 accumulators; AVX2: up to 6 x 2 vectors of 8); for every filter tap it loads the block's KB weights
   (contiguous: the weights are repacked per call as [block][tap][KB]) and broadcasts the R input
   pixels, R * KB multiply-adds per R + KB / VL loads. The input is a zero-padded copy of one
   image (so the taps need no bounds checks), wide enough for the last pixel tile of a row; the
   accumulators go to y's channel planes at the end. Measured on Zen 4, 8x3x224x224 -> 64, 11x11
   stride 4: 97 GF/s (numpy's sgemm: 97), where im2col + GEMM ran at ~60. */
#ifndef FC_OCVEC_H
#define FC_OCVEC_H

#include <stddef.h>
#include "_shallow.h"

/* Output channels per block for the variant `level` (3 AVX-512, 2 AVX2; 0 when not supported)
   and K output channels: on AVX-512 4 vectors (64 channels) unless K is a multiple of 32 but not
   of 64, or at most 32, then 2 vectors (32 channels): a block's lanes past K are computed in
   vain (K = 32 in blocks of 64: 0.65-0.78x im2col, Zen 4). */
static ptrdiff_t fc_ocvec_block(int level, ptrdiff_t K)
{
    if (level == 3) return (K % 64 != 0 && (K % 32 == 0 || K <= 32)) ? 32 : 64;
    return level == 2 ? 16 : 0;
}

/* Output pixels per register tile for rows of Wo: among 4, 5, 6 (blocks of 4 vectors: 24
   accumulators and 4 weight vectors fill the 32 AVX-512 registers at 6) or 8, 10, 12 (blocks
   of 2 AVX-512 vectors), the one whose tiles overshoot the row least (Wo = 55: 5). */
static int fc_ocvec_tile(int level, ptrdiff_t K, ptrdiff_t Wo)
{
    const int wide = level == 3 && fc_ocvec_block(level, K) == 32;
    const int step = wide ? 2 : 1, rmin = 4 * step, rmax = 6 * step;
    int r, best = rmax;
    ptrdiff_t best_cols = (Wo + rmax - 1) / rmax * rmax;
    for (r = rmax - step; r >= rmin; r -= step) {
        ptrdiff_t cols = (Wo + r - 1) / r * r;
        if (cols < best_cols) { best = r; best_cols = cols; }
    }
    return best;
}

/* Rows [oy0, oy1) of y[k, oy, ox] (one image, K planes Ho x Wo) = bias[k] + sum over the taps
   t = (c, i, j) of wt[kb][t][k % KB] * xp[c, oy * sh + i * dh, ox * sw + j * dw], k = kb * KB + k % KB < K.
   xp: C planes Hp x Wp holding at least ((Wo + R - 1) / R * R - 1) * sw + (kw - 1) * dw + 1
   columns (R = RT, the tile) and (Ho - 1) * sh + (kh - 1) * dh + 1 rows; wt: ceil(K / KB) blocks of C * kh * kw
   rows of KB weights; bias: ceil(K / KB) * KB values. */
#define FC_OCVEC_BODY(VT, KV, RT)                                                                  \
{                                                                                                  \
    enum { VL = sizeof(VT) / sizeof(float), KB = KV * VL, R = RT };                                \
    const ptrdiff_t T = C * kh * kw, blocks = (K + KB - 1) / KB;                                   \
    ptrdiff_t kb, oy, ox0, c, i, j, r, q, l;                                                       \
    for (kb = 0; kb < blocks; kb++) {                                                              \
        const float *wb = wt + kb * T * KB;                                                        \
        for (oy = oy0; oy < oy1; oy++) {                                                           \
            for (ox0 = 0; ox0 < Wo; ox0 += R) {                                                    \
                const ptrdiff_t nr = Wo - ox0 < R ? Wo - ox0 : R;                                  \
                const float *w = wb;                                                               \
                VT acc[R][KV];                                                                     \
                for (r = 0; r < R; r++)                                                            \
                    for (q = 0; q < KV; q++) acc[r][q] = FC_LD(VT, bias + kb * KB + q * VL);       \
                for (c = 0; c < C; c++)                                                            \
                    for (i = 0; i < kh; i++) {                                                     \
                        const float *row = xp + (c * Hp + oy * sh + i * dh) * Wp + ox0 * sw;       \
                        for (j = 0; j < kw; j++, w += KB) {                                        \
                            VT wv[KV];                                                             \
                            const float *px = row + j * dw;                                        \
                            for (q = 0; q < KV; q++) { wv[q] = FC_LD(VT, w + q * VL); FC_KEEP(wv[q]); } \
                            for (r = 0; r < R; r++) {                                              \
                                const float a = px[r * sw];                                        \
                                for (q = 0; q < KV; q++) acc[r][q] += a * wv[q];                   \
                            }                                                                      \
                        }                                                                          \
                    }                                                                              \
                for (q = 0; q < KV; q++)                                                           \
                    for (l = 0; l < VL; l++) {                                                     \
                        const ptrdiff_t k = kb * KB + q * VL + l;                                  \
                        float *out = y + (k * Ho + oy) * Wo + ox0;                                 \
                        if (k >= K) break;                                                         \
                        for (r = 0; r < nr; r++) out[r] = acc[r][q][l];                            \
                    }                                                                              \
            }                                                                                      \
        }                                                                                          \
    }                                                                                              \
}

#define FC_OCVEC_PARAMS (const float *xp, ptrdiff_t C, ptrdiff_t Hp, ptrdiff_t Wp, const float *wt, \
    const float *bias, ptrdiff_t K, ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t sh, ptrdiff_t sw,          \
    ptrdiff_t dh, ptrdiff_t dw, ptrdiff_t Ho, ptrdiff_t Wo, ptrdiff_t oy0, ptrdiff_t oy1, float *y)

#if FC_X86
static FC_AVX512 void fc_ocvec_image_avx512_4 FC_OCVEC_PARAMS FC_OCVEC_BODY(fc_vf64, 4, 4)
static FC_AVX512 void fc_ocvec_image_avx512_5 FC_OCVEC_PARAMS FC_OCVEC_BODY(fc_vf64, 4, 5)
static FC_AVX512 void fc_ocvec_image_avx512_6 FC_OCVEC_PARAMS FC_OCVEC_BODY(fc_vf64, 4, 6)
static FC_AVX512 void fc_ocvec_image_avx512_2x8 FC_OCVEC_PARAMS FC_OCVEC_BODY(fc_vf64, 2, 8)
static FC_AVX512 void fc_ocvec_image_avx512_2x10 FC_OCVEC_PARAMS FC_OCVEC_BODY(fc_vf64, 2, 10)
static FC_AVX512 void fc_ocvec_image_avx512_2x12 FC_OCVEC_PARAMS FC_OCVEC_BODY(fc_vf64, 2, 12)
static FC_AVX2 void fc_ocvec_image_avx2_4 FC_OCVEC_PARAMS FC_OCVEC_BODY(fc_vf32, 2, 4)
static FC_AVX2 void fc_ocvec_image_avx2_5 FC_OCVEC_PARAMS FC_OCVEC_BODY(fc_vf32, 2, 5)
static FC_AVX2 void fc_ocvec_image_avx2_6 FC_OCVEC_PARAMS FC_OCVEC_BODY(fc_vf32, 2, 6)

/* One image on the variant `level` from fc_ocvec_level, with the block of
   fc_ocvec_block(level, K) channels the weights were packed for and fc_ocvec_tile(level, K, Wo)
   pixels per tile. */
static void fc_ocvec_image(int level, const float *xp, ptrdiff_t C, ptrdiff_t Hp, ptrdiff_t Wp,
                           const float *wt, const float *bias, ptrdiff_t K, ptrdiff_t kh,
                           ptrdiff_t kw, ptrdiff_t sh, ptrdiff_t sw, ptrdiff_t dh, ptrdiff_t dw,
                           ptrdiff_t Ho, ptrdiff_t Wo, ptrdiff_t oy0, ptrdiff_t oy1, float *y)
{
#define FC_OCVEC_CALL(NAME) NAME(xp, C, Hp, Wp, wt, bias, K, kh, kw, sh, sw, dh, dw, Ho, Wo, oy0, oy1, y)
    const int r = fc_ocvec_tile(level, K, Wo);
    if (level == 3 && fc_ocvec_block(level, K) == 32) {
        if (r == 8) FC_OCVEC_CALL(fc_ocvec_image_avx512_2x8);
        else if (r == 10) FC_OCVEC_CALL(fc_ocvec_image_avx512_2x10);
        else FC_OCVEC_CALL(fc_ocvec_image_avx512_2x12);
    } else if (level == 3) {
        if (r == 4) FC_OCVEC_CALL(fc_ocvec_image_avx512_4);
        else if (r == 5) FC_OCVEC_CALL(fc_ocvec_image_avx512_5);
        else FC_OCVEC_CALL(fc_ocvec_image_avx512_6);
    } else if (level == 2) {
        if (r == 4) FC_OCVEC_CALL(fc_ocvec_image_avx2_4);
        else if (r == 5) FC_OCVEC_CALL(fc_ocvec_image_avx2_5);
        else FC_OCVEC_CALL(fc_ocvec_image_avx2_6);
    }
#undef FC_OCVEC_CALL
}
#else
static void fc_ocvec_image(int level, const float *xp, ptrdiff_t C, ptrdiff_t Hp, ptrdiff_t Wp,
                           const float *wt, const float *bias, ptrdiff_t K, ptrdiff_t kh,
                           ptrdiff_t kw, ptrdiff_t sh, ptrdiff_t sw, ptrdiff_t dh, ptrdiff_t dw,
                           ptrdiff_t Ho, ptrdiff_t Wo, ptrdiff_t oy0, ptrdiff_t oy1, float *y)
{
    (void)level; (void)xp; (void)C; (void)Hp; (void)Wp; (void)wt; (void)bias; (void)K; (void)kh;
    (void)kw; (void)sh; (void)sw; (void)dh; (void)dw; (void)Ho; (void)Wo; (void)oy0; (void)oy1;
    (void)y;
}
#endif

/* The variant this CPU runs within the cap (3 AVX-512, 2 AVX2+FMA), 0 when neither. */
static int fc_ocvec_level(void)
{
    int level = fc_isa_level();
    if (level > fc_isa_cap) level = fc_isa_cap;
    return level >= 2 ? level : 0;
}

#endif /* FC_OCVEC_H */
