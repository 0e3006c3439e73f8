/* Direct convolution vectorized over output channels: float32 forward and weight gradient,
   AVX-512 or AVX2+FMA.

   For few input channels and large or strided filters (an 11x11/4 first layer), im2col + GEMM
   spends much of its time building and streaming the column buffer (C*kh*kw rows, one column per
   output pixel). Here a register tile holds R consecutive output pixels of one output row (or,
   for narrow outputs, of the rows taken in order: FC_OCVEC_FLAT_BODY) times
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
#include "_sgemm.h"   /* its 16 x 16 (AVX-512) and 8 x 8 (AVX2) register transposes */

/* Output channels per block for the variant `level` (3 AVX-512, 2 AVX2; 0 when not supported)
   and K output channels: on AVX-512 4 vectors (64 channels) unless K is a multiple of 32 but not
   of 64, or at most 32, then 2 vectors (32 channels): a block's lanes past K are computed in
   vain (K = 32 in blocks of 64: 0.65-0.78x im2col, Zen 4); at most 16 channels, one vector
   (16 channels in blocks of 32 left half of every multiply-add idle). */
static ptrdiff_t fc_ocvec_block(int level, ptrdiff_t K)
{
    if (level == 3) return K <= 16 ? 16 : (K % 64 != 0 && (K % 32 == 0 || K <= 32)) ? 32 : 64;
    return level == 2 ? 16 : 0;
}

/* Output pixels per register tile for rows of Wo: among 4, 5, 6 (blocks of 4 vectors: 24
   accumulators and 4 weight vectors fill the 32 AVX-512 registers at 6), 8, 10, 12 (blocks
   of 2 AVX-512 vectors) or 8 to 16 in steps of 2 (one vector), the one whose tiles overshoot
   the row least (Wo = 55: 5), the longest among equals. */
static int fc_ocvec_tile(int level, ptrdiff_t K, ptrdiff_t Wo)
{
    const ptrdiff_t block = level == 3 ? fc_ocvec_block(level, K) : 0;
    const int step = block == 32 || block == 16 ? 2 : 1;
    const int rmin = block == 16 ? 8 : 4 * step, rmax = block == 16 ? 16 : 6 * step;
    int r, best = rmax;
    ptrdiff_t best_cols = (Wo + rmax - 1) / rmax * rmax;
    for (r = rmax - step; r >= rmin; r -= step) {
        ptrdiff_t cols = (Wo + r - 1) / r * r;
        if (cols < best_cols) { best = r; best_cols = cols; }
    }
    return best;
}

/* The multiply-adds of one register tile: for every tap t = (c, i, j) the block's KV weight
   vectors (w, advancing KB a tap) times the tile's R input pixels px[OFF] (r the pixel), px the
   tap's pixel at offset BASE of channel c's row i * dh. */
#define FC_OCVEC_TAPS(VT, KV, BASE, OFF)                                                           \
    for (c = 0; c < C; c++)                                                                        \
        for (i = 0; i < kh; i++) {                                                                 \
            const float *row = xp + (c * Hp + i * dh) * Wp + (BASE);                               \
            for (j = 0; j < kw; j++, w += KB) {                                                    \
                VT wv[KV];                                                                         \
                const float *px = row + j * dw;                                                    \
                for (q = 0; q < KV; q++) { wv[q] = FC_LD(VT, w + q * VL); FC_KEEP(wv[q]); }        \
                for (r = 0; r < R; r++) {                                                          \
                    const float a = px[OFF];                                                       \
                    for (q = 0; q < KV; q++) acc[r][q] += a * wv[q];                               \
                }                                                                                  \
            }                                                                                      \
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
                FC_OCVEC_TAPS(VT, KV, (oy * sh * Wp + ox0 * sw), r * sw)                             \
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
/* The same loops with the column stride fixed at 1: the R broadcasts of a tap then address
   the input at constant offsets instead of R computed ones (more registers than x86 has). */
#define FC_OCVEC_PARAMS_S1 (const float *xp, ptrdiff_t C, ptrdiff_t Hp, ptrdiff_t Wp, const float *wt, \
    const float *bias, ptrdiff_t K, ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t sh, ptrdiff_t sw_one,     \
    ptrdiff_t dh, ptrdiff_t dw, ptrdiff_t Ho, ptrdiff_t Wo, ptrdiff_t oy0, ptrdiff_t oy1, float *y)
#define FC_OCVEC_BODY_S1(VT, KV, RT) { const ptrdiff_t sw = 1; (void)sw_one; FC_OCVEC_BODY(VT, KV, RT) }

/* The weight gradient the same way: dw[k * T + t] += sum over the output pixels p = (oy, ox) of
   dyt[p * Kp + k] * xp[tapoff[t] + oy * sh * Wp + ox * sw] for one image, t < T, k < K, with
   dyt the image's dY transposed (Ho * Wo rows of Kp channels, zero past K) and xp its padded
   copy. A register tile holds R taps x one block of KB channels; the pixels run in chunks of
   FC_OCVEC_CHUNK (their dyt rows stay in L1 while every tap group passes over them), each
   pixel loading the block's KB values of dY and broadcasting R input values. */
#define FC_OCVEC_CHUNK 256
#define FC_OCVEC_DW_BODY(VT, KV, RT)                                                                \
{                                                                                                  \
    enum { VL = sizeof(VT) / sizeof(float), KB = KV * VL, R = RT };                                \
    const ptrdiff_t L = Ho * Wo, blocks = (K + KB - 1) / KB;                                       \
    ptrdiff_t p0, t0, kb, p, r, q, l;                                                              \
    for (p0 = 0; p0 < L; p0 += FC_OCVEC_CHUNK) {                                                   \
        const ptrdiff_t p1 = p0 + FC_OCVEC_CHUNK < L ? p0 + FC_OCVEC_CHUNK : L;                    \
        for (kb = 0; kb < blocks; kb++) {                                                          \
            for (t0 = 0; t0 < T; t0 += R) {                                                        \
                const ptrdiff_t nt = T - t0 < R ? T - t0 : R;                                      \
                ptrdiff_t off[R];                                                                  \
                VT acc[R][KV];                                                                     \
                ptrdiff_t oy = p0 / Wo, ox = p0 - oy * Wo;                                         \
                for (r = 0; r < R; r++) {                                                          \
                    off[r] = tapoff[t0 + (r < nt ? r : nt - 1)];                                   \
                    for (q = 0; q < KV; q++) acc[r][q] = (VT){0};                                  \
                }                                                                                  \
                for (p = p0; p < p1; p++) {                                                        \
                    const float *xb = xp + oy * sh * Wp + ox * sw;                                 \
                    const float *dv = dyt + p * Kp + kb * KB;                                      \
                    VT d[KV];                                                                      \
                    for (q = 0; q < KV; q++) { d[q] = FC_LD(VT, dv + q * VL); FC_KEEP(d[q]); }     \
                    for (r = 0; r < R; r++) {                                                      \
                        const float a = xb[off[r]];                                                \
                        for (q = 0; q < KV; q++) acc[r][q] += a * d[q];                            \
                    }                                                                              \
                    if (++ox == Wo) { ox = 0; oy++; }                                              \
                }                                                                                  \
                for (r = 0; r < nt; r++)                                                           \
                    for (q = 0; q < KV; q++)                                                       \
                        for (l = 0; l < VL; l++) {                                                 \
                            const ptrdiff_t k = kb * KB + q * VL + l;                              \
                            if (k >= K) break;                                                     \
                            dw[k * T + t0 + r] += acc[r][q][l];                                    \
                        }                                                                          \
            }                                                                                      \
        }                                                                                          \
    }                                                                                              \
}

#define FC_OCVEC_DW_PARAMS (const float *xp, ptrdiff_t Wp, const ptrdiff_t *tapoff, ptrdiff_t T, \
    const float *dyt, ptrdiff_t Kp, ptrdiff_t K, ptrdiff_t sh, ptrdiff_t sw, ptrdiff_t Ho,          \
    ptrdiff_t Wo, float *dw)

#if FC_X86
static FC_AVX512 void fc_ocvec_dw_avx512 FC_OCVEC_DW_PARAMS FC_OCVEC_DW_BODY(fc_vf64, 4, 6)
static FC_AVX512 void fc_ocvec_dw_avx512_2 FC_OCVEC_DW_PARAMS FC_OCVEC_DW_BODY(fc_vf64, 2, 12)
static FC_AVX512 void fc_ocvec_dw_avx512_1 FC_OCVEC_DW_PARAMS FC_OCVEC_DW_BODY(fc_vf64, 1, 16)
static FC_AVX2 void fc_ocvec_dw_avx2 FC_OCVEC_DW_PARAMS FC_OCVEC_DW_BODY(fc_vf32, 2, 6)

/* One image's weight gradient on the variant `level`, blocks of fc_ocvec_block(level, K). */
static void fc_ocvec_dw(int level, const float *xp, ptrdiff_t Wp, const ptrdiff_t *tapoff,
                        ptrdiff_t T, const float *dyt, ptrdiff_t Kp, ptrdiff_t K, ptrdiff_t sh,
                        ptrdiff_t sw, ptrdiff_t Ho, ptrdiff_t Wo, float *dw)
{
    if (level == 3 && fc_ocvec_block(level, K) == 16)
        fc_ocvec_dw_avx512_1(xp, Wp, tapoff, T, dyt, Kp, K, sh, sw, Ho, Wo, dw);
    else if (level == 3 && fc_ocvec_block(level, K) == 32)
        fc_ocvec_dw_avx512_2(xp, Wp, tapoff, T, dyt, Kp, K, sh, sw, Ho, Wo, dw);
    else if (level == 3)
        fc_ocvec_dw_avx512(xp, Wp, tapoff, T, dyt, Kp, K, sh, sw, Ho, Wo, dw);
    else if (level == 2)
        fc_ocvec_dw_avx2(xp, Wp, tapoff, T, dyt, Kp, K, sh, sw, Ho, Wo, dw);
}

static FC_AVX512 void fc_ocvec_image_avx512_4 FC_OCVEC_PARAMS FC_OCVEC_BODY(fc_vf64, 4, 4)
static FC_AVX512 void fc_ocvec_image_avx512_4_s1 FC_OCVEC_PARAMS_S1 FC_OCVEC_BODY_S1(fc_vf64, 4, 4)
static FC_AVX512 void fc_ocvec_image_avx512_5 FC_OCVEC_PARAMS FC_OCVEC_BODY(fc_vf64, 4, 5)
static FC_AVX512 void fc_ocvec_image_avx512_5_s1 FC_OCVEC_PARAMS_S1 FC_OCVEC_BODY_S1(fc_vf64, 4, 5)
static FC_AVX512 void fc_ocvec_image_avx512_6 FC_OCVEC_PARAMS FC_OCVEC_BODY(fc_vf64, 4, 6)
static FC_AVX512 void fc_ocvec_image_avx512_6_s1 FC_OCVEC_PARAMS_S1 FC_OCVEC_BODY_S1(fc_vf64, 4, 6)
static FC_AVX512 void fc_ocvec_image_avx512_1x8 FC_OCVEC_PARAMS FC_OCVEC_BODY(fc_vf64, 1, 8)
static FC_AVX512 void fc_ocvec_image_avx512_1x8_s1 FC_OCVEC_PARAMS_S1 FC_OCVEC_BODY_S1(fc_vf64, 1, 8)
static FC_AVX512 void fc_ocvec_image_avx512_1x10 FC_OCVEC_PARAMS FC_OCVEC_BODY(fc_vf64, 1, 10)
static FC_AVX512 void fc_ocvec_image_avx512_1x10_s1 FC_OCVEC_PARAMS_S1 FC_OCVEC_BODY_S1(fc_vf64, 1, 10)
static FC_AVX512 void fc_ocvec_image_avx512_1x12 FC_OCVEC_PARAMS FC_OCVEC_BODY(fc_vf64, 1, 12)
static FC_AVX512 void fc_ocvec_image_avx512_1x12_s1 FC_OCVEC_PARAMS_S1 FC_OCVEC_BODY_S1(fc_vf64, 1, 12)
static FC_AVX512 void fc_ocvec_image_avx512_1x14 FC_OCVEC_PARAMS FC_OCVEC_BODY(fc_vf64, 1, 14)
static FC_AVX512 void fc_ocvec_image_avx512_1x14_s1 FC_OCVEC_PARAMS_S1 FC_OCVEC_BODY_S1(fc_vf64, 1, 14)
static FC_AVX512 void fc_ocvec_image_avx512_1x16 FC_OCVEC_PARAMS FC_OCVEC_BODY(fc_vf64, 1, 16)
static FC_AVX512 void fc_ocvec_image_avx512_1x16_s1 FC_OCVEC_PARAMS_S1 FC_OCVEC_BODY_S1(fc_vf64, 1, 16)
static FC_AVX512 void fc_ocvec_image_avx512_2x8 FC_OCVEC_PARAMS FC_OCVEC_BODY(fc_vf64, 2, 8)
static FC_AVX512 void fc_ocvec_image_avx512_2x8_s1 FC_OCVEC_PARAMS_S1 FC_OCVEC_BODY_S1(fc_vf64, 2, 8)
static FC_AVX512 void fc_ocvec_image_avx512_2x10 FC_OCVEC_PARAMS FC_OCVEC_BODY(fc_vf64, 2, 10)
static FC_AVX512 void fc_ocvec_image_avx512_2x10_s1 FC_OCVEC_PARAMS_S1 FC_OCVEC_BODY_S1(fc_vf64, 2, 10)
static FC_AVX512 void fc_ocvec_image_avx512_2x12 FC_OCVEC_PARAMS FC_OCVEC_BODY(fc_vf64, 2, 12)
static FC_AVX512 void fc_ocvec_image_avx512_2x12_s1 FC_OCVEC_PARAMS_S1 FC_OCVEC_BODY_S1(fc_vf64, 2, 12)
static FC_AVX2 void fc_ocvec_image_avx2_4 FC_OCVEC_PARAMS FC_OCVEC_BODY(fc_vf32, 2, 4)
static FC_AVX2 void fc_ocvec_image_avx2_4_s1 FC_OCVEC_PARAMS_S1 FC_OCVEC_BODY_S1(fc_vf32, 2, 4)
static FC_AVX2 void fc_ocvec_image_avx2_5 FC_OCVEC_PARAMS FC_OCVEC_BODY(fc_vf32, 2, 5)
static FC_AVX2 void fc_ocvec_image_avx2_5_s1 FC_OCVEC_PARAMS_S1 FC_OCVEC_BODY_S1(fc_vf32, 2, 5)
static FC_AVX2 void fc_ocvec_image_avx2_6 FC_OCVEC_PARAMS FC_OCVEC_BODY(fc_vf32, 2, 6)
static FC_AVX2 void fc_ocvec_image_avx2_6_s1 FC_OCVEC_PARAMS_S1 FC_OCVEC_BODY_S1(fc_vf32, 2, 6)

/* The same sum over output pixels taken in row-major order across rows: a tile holds R
   consecutive pixels of the flattened Ho x Wo range [q0, q1) (the oy0, oy1 parameters), each at
   its own input offset, so rows narrower than a few tiles (a 7 x 7 output: rows of 4 + 3 pixels)
   waste no accumulators. A last tile's lanes past the range repeat its last pixel (never read
   outside xp). */
#define FC_OCVEC_FLAT_BODY(VT, KV, RT)                                                             \
{                                                                                                  \
    enum { VL = sizeof(VT) / sizeof(float), KB = KV * VL, R = RT };                                \
    const ptrdiff_t T = C * kh * kw, blocks = (K + KB - 1) / KB, plane = Ho * Wo, p1 = oy1;       \
    ptrdiff_t kb, p0, c, i, j, r, q, l;                                                            \
    for (kb = 0; kb < blocks; kb++) {                                                              \
        const float *wb = wt + kb * T * KB;                                                        \
        for (p0 = oy0; p0 < p1; p0 += R) {                                                         \
            const ptrdiff_t nr = p1 - p0 < R ? p1 - p0 : R;                                        \
            const float *w = wb;                                                                   \
            ptrdiff_t off[R];                                                                      \
            VT acc[R][KV];                                                                         \
            for (r = 0; r < R; r++) {                                                              \
                const ptrdiff_t p = p0 + (r < nr ? r : nr - 1);                                    \
                off[r] = p / Wo * sh * Wp + p % Wo * sw;                                           \
                for (q = 0; q < KV; q++) acc[r][q] = FC_LD(VT, bias + kb * KB + q * VL);           \
            }                                                                                      \
            FC_OCVEC_TAPS(VT, KV, 0, off[r])                                                       \
            for (q = 0; q < KV; q++)                                                               \
                for (l = 0; l < VL; l++) {                                                         \
                    const ptrdiff_t k = kb * KB + q * VL + l;                                      \
                    float *out = y + k * plane + p0;                                               \
                    if (k >= K) break;                                                             \
                    for (r = 0; r < nr; r++) out[r] = acc[r][q][l];                                \
                }                                                                                  \
        }                                                                                          \
    }                                                                                              \
}

static FC_AVX512 void fc_ocvec_flat_avx512_4 FC_OCVEC_PARAMS FC_OCVEC_FLAT_BODY(fc_vf64, 4, 4)
static FC_AVX512 void fc_ocvec_flat_avx512_5 FC_OCVEC_PARAMS FC_OCVEC_FLAT_BODY(fc_vf64, 4, 5)
static FC_AVX512 void fc_ocvec_flat_avx512_6 FC_OCVEC_PARAMS FC_OCVEC_FLAT_BODY(fc_vf64, 4, 6)
static FC_AVX512 void fc_ocvec_flat_avx512_1x8 FC_OCVEC_PARAMS FC_OCVEC_FLAT_BODY(fc_vf64, 1, 8)
static FC_AVX512 void fc_ocvec_flat_avx512_1x10 FC_OCVEC_PARAMS FC_OCVEC_FLAT_BODY(fc_vf64, 1, 10)
static FC_AVX512 void fc_ocvec_flat_avx512_1x12 FC_OCVEC_PARAMS FC_OCVEC_FLAT_BODY(fc_vf64, 1, 12)
static FC_AVX512 void fc_ocvec_flat_avx512_1x14 FC_OCVEC_PARAMS FC_OCVEC_FLAT_BODY(fc_vf64, 1, 14)
static FC_AVX512 void fc_ocvec_flat_avx512_1x16 FC_OCVEC_PARAMS FC_OCVEC_FLAT_BODY(fc_vf64, 1, 16)
static FC_AVX512 void fc_ocvec_flat_avx512_2x8 FC_OCVEC_PARAMS FC_OCVEC_FLAT_BODY(fc_vf64, 2, 8)
static FC_AVX512 void fc_ocvec_flat_avx512_2x10 FC_OCVEC_PARAMS FC_OCVEC_FLAT_BODY(fc_vf64, 2, 10)
static FC_AVX512 void fc_ocvec_flat_avx512_2x12 FC_OCVEC_PARAMS FC_OCVEC_FLAT_BODY(fc_vf64, 2, 12)
static FC_AVX2 void fc_ocvec_flat_avx2_4 FC_OCVEC_PARAMS FC_OCVEC_FLAT_BODY(fc_vf32, 2, 4)
static FC_AVX2 void fc_ocvec_flat_avx2_5 FC_OCVEC_PARAMS FC_OCVEC_FLAT_BODY(fc_vf32, 2, 5)
static FC_AVX2 void fc_ocvec_flat_avx2_6 FC_OCVEC_PARAMS FC_OCVEC_FLAT_BODY(fc_vf32, 2, 6)

/* Whether rows [oy0, oy1) of Wo pixels run as flattened tiles: when those need fewer tile
   slots than whole-row tiles (7 x 7: 50 slots against 56). At column stride 1 the row tiles
   keep their constant-offset twins unless the flattened ones save at least 1/16 of the slots. */
static int fc_ocvec_flat(int level, ptrdiff_t K, ptrdiff_t sw, ptrdiff_t Wo, ptrdiff_t oy0,
                         ptrdiff_t oy1)
{
    const ptrdiff_t rows = oy1 - oy0, pixels = rows * Wo;
    const ptrdiff_t rt = fc_ocvec_tile(level, K, Wo), ft = fc_ocvec_tile(level, K, pixels);
    const ptrdiff_t row_slots = rows * ((Wo + rt - 1) / rt * rt), flat_slots = (pixels + ft - 1) / ft * ft;
    return sw == 1 ? flat_slots * 16 <= row_slots * 15 : flat_slots < row_slots;
}

/* Rows [oy0, oy1) of one image on the variant `level` from fc_ocvec_level, with the block of
   fc_ocvec_block(level, K) channels the weights were packed for: row tiles of
   fc_ocvec_tile(level, K, Wo) pixels, or flattened tiles (fc_ocvec_flat); with `pixels`, oy0 and
   oy1 bound a range of the flattened Ho x Wo pixels instead, always in flattened tiles. */
static void fc_ocvec_run(int level, const float *xp, ptrdiff_t C, ptrdiff_t Hp, ptrdiff_t Wp,
                         const float *wt, const float *bias, ptrdiff_t K, ptrdiff_t kh,
                         ptrdiff_t kw, ptrdiff_t sh, ptrdiff_t sw, ptrdiff_t dh, ptrdiff_t dw,
                         ptrdiff_t Ho, ptrdiff_t Wo, ptrdiff_t oy0, ptrdiff_t oy1, int pixels, float *y)
{
#define FC_OCVEC_CALL(NAME)                                                                        \
    do {                                                                                           \
        if (flat) fc_ocvec_flat_##NAME(xp, C, Hp, Wp, wt, bias, K, kh, kw, sh, sw, dh, dw, Ho, Wo, q0, q1, y); \
        else if (sw == 1) fc_ocvec_image_##NAME##_s1(xp, C, Hp, Wp, wt, bias, K, kh, kw, sh, 1, dh, dw, Ho, Wo, oy0, oy1, y); \
        else fc_ocvec_image_##NAME(xp, C, Hp, Wp, wt, bias, K, kh, kw, sh, sw, dh, dw, Ho, Wo, oy0, oy1, y); \
    } while (0)
    const int flat = pixels || (oy1 > oy0 && fc_ocvec_flat(level, K, sw, Wo, oy0, oy1));
    const ptrdiff_t q0 = pixels ? oy0 : oy0 * Wo, q1 = pixels ? oy1 : oy1 * Wo;
    const int r = fc_ocvec_tile(level, K, flat ? q1 - q0 : Wo);
    if (q1 <= q0) return;
    if (level == 3 && fc_ocvec_block(level, K) == 16) {
        if (r == 8) FC_OCVEC_CALL(avx512_1x8);
        else if (r == 10) FC_OCVEC_CALL(avx512_1x10);
        else if (r == 12) FC_OCVEC_CALL(avx512_1x12);
        else if (r == 14) FC_OCVEC_CALL(avx512_1x14);
        else FC_OCVEC_CALL(avx512_1x16);
    } else if (level == 3 && fc_ocvec_block(level, K) == 32) {
        if (r == 8) FC_OCVEC_CALL(avx512_2x8);
        else if (r == 10) FC_OCVEC_CALL(avx512_2x10);
        else FC_OCVEC_CALL(avx512_2x12);
    } else if (level == 3) {
        if (r == 4) FC_OCVEC_CALL(avx512_4);
        else if (r == 5) FC_OCVEC_CALL(avx512_5);
        else FC_OCVEC_CALL(avx512_6);
    } else if (level == 2) {
        if (r == 4) FC_OCVEC_CALL(avx2_4);
        else if (r == 5) FC_OCVEC_CALL(avx2_5);
        else FC_OCVEC_CALL(avx2_6);
    }
#undef FC_OCVEC_CALL
}

#else
static void fc_ocvec_dw(int level, const float *xp, ptrdiff_t Wp, const ptrdiff_t *tapoff,
                        ptrdiff_t T, const float *dyt, ptrdiff_t Kp, ptrdiff_t K, ptrdiff_t sh,
                        ptrdiff_t sw, ptrdiff_t Ho, ptrdiff_t Wo, float *dw)
{
    (void)level; (void)xp; (void)Wp; (void)tapoff; (void)T; (void)dyt; (void)Kp; (void)K;
    (void)sh; (void)sw; (void)Ho; (void)Wo; (void)dw;
}

static void fc_ocvec_run(int level, const float *xp, ptrdiff_t C, ptrdiff_t Hp, ptrdiff_t Wp,
                         const float *wt, const float *bias, ptrdiff_t K, ptrdiff_t kh,
                         ptrdiff_t kw, ptrdiff_t sh, ptrdiff_t sw, ptrdiff_t dh, ptrdiff_t dw,
                         ptrdiff_t Ho, ptrdiff_t Wo, ptrdiff_t oy0, ptrdiff_t oy1, int pixels, float *y)
{
    (void)level; (void)xp; (void)C; (void)Hp; (void)Wp; (void)wt; (void)bias; (void)K; (void)kh;
    (void)kw; (void)sh; (void)sw; (void)dh; (void)dw; (void)Ho; (void)Wo; (void)oy0; (void)oy1;
    (void)pixels; (void)y;
}
#endif

static void fc_ocvec_image(int level, const float *xp, ptrdiff_t C, ptrdiff_t Hp, ptrdiff_t Wp,
                           const float *wt, const float *bias, ptrdiff_t K, ptrdiff_t kh,
                           ptrdiff_t kw, ptrdiff_t sh, ptrdiff_t sw, ptrdiff_t dh, ptrdiff_t dw,
                           ptrdiff_t Ho, ptrdiff_t Wo, ptrdiff_t oy0, ptrdiff_t oy1, float *y)
{
    fc_ocvec_run(level, xp, C, Hp, Wp, wt, bias, K, kh, kw, sh, sw, dh, dw, Ho, Wo, oy0, oy1, 0, y);
}

/* Part t of `parts` of one image: its share of the rows when they divide evenly, else its even
   share of the flattened pixels (7 x 7 on 2 threads: 24 and 25 pixels, not rows of 28 and 21). */
static void fc_ocvec_part(int level, const float *xp, ptrdiff_t C, ptrdiff_t Hp, ptrdiff_t Wp,
                          const float *wt, const float *bias, ptrdiff_t K, ptrdiff_t kh,
                          ptrdiff_t kw, ptrdiff_t sh, ptrdiff_t sw, ptrdiff_t dh, ptrdiff_t dw,
                          ptrdiff_t Ho, ptrdiff_t Wo, ptrdiff_t t, ptrdiff_t parts, float *y)
{
    if (Ho % parts == 0)
        fc_ocvec_run(level, xp, C, Hp, Wp, wt, bias, K, kh, kw, sh, sw, dh, dw, Ho, Wo,
                     Ho * t / parts, Ho * (t + 1) / parts, 0, y);
    else
        fc_ocvec_run(level, xp, C, Hp, Wp, wt, bias, K, kh, kw, sh, sw, dh, dw, Ho, Wo,
                     Ho * Wo * t / parts, Ho * Wo * (t + 1) / parts, 1, y);
}

/* dst[c * ld_dst + r] = r < rows ? src[r * ld_src + c] : 0, for r < rows_out and c < cols
   (rows_out a multiple of the variant's vector width: 16 floats for `level` 3, 8 for 2): the
   weight repacking of the forward ([block][tap][KB] from (K, taps)) and dY's channel-minor copy
   in the weight gradient. Register transposes of 16 x 16 (8 x 8) tiles, the rows past `rows`
   read as zeros and every column stored whole; element by element the repacking read the
   weights a row apart (~1 cycle an element: 4 µs of a 1x32x14x14->32 forward's ~50). */
#if FC_SGEMM_X86
/* one variant: VL x VL tiles through TRANSPOSE (out[j] = column j), each column stored whole */
#define FC_OCVEC_TRANSPOSE(NAME, TARGET, VL, VEC, TRANSPOSE, STORE)                                 \
TARGET static void NAME(const float *src, ptrdiff_t rows, ptrdiff_t cols, ptrdiff_t ld_src,         \
                        float *dst, ptrdiff_t rows_out, ptrdiff_t ld_dst)                           \
{                                                                                                   \
    VEC col[VL];                                                                                    \
    for (ptrdiff_t r0 = 0; r0 < rows_out; r0 += VL) {                                               \
        const int h = rows - r0 >= VL ? VL : rows - r0 > 0 ? (int)(rows - r0) : 0;                  \
        for (ptrdiff_t c0 = 0; c0 < cols; c0 += VL) {                                               \
            const int w = cols - c0 >= VL ? VL : (int)(cols - c0);                                  \
            TRANSPOSE(src + (h > 0 ? r0 * ld_src + c0 : 0), ld_src, h, w, col);                     \
            for (int j = 0; j < w; j++) STORE(dst + (c0 + j) * ld_dst + r0, col[j]);               \
        }                                                                                           \
    }                                                                                               \
}
FC_OCVEC_TRANSPOSE(fc_ocvec_transpose16, FC_SGEMM_TARGET, 16, __m512, fc_sgemm_transpose16, _mm512_storeu_ps)
FC_OCVEC_TRANSPOSE(fc_ocvec_transpose8, FC_SGEMM2_TARGET, 8, __m256, fc_sgemm2_transpose8, _mm256_storeu_ps)
#undef FC_OCVEC_TRANSPOSE
#endif

static void fc_ocvec_transpose(int level, const float *src, ptrdiff_t rows, ptrdiff_t cols,
                               ptrdiff_t ld_src, float *dst, ptrdiff_t rows_out, ptrdiff_t ld_dst)
{
#if FC_SGEMM_X86
    if (level == 3) { fc_ocvec_transpose16(src, rows, cols, ld_src, dst, rows_out, ld_dst); return; }
    if (level == 2) { fc_ocvec_transpose8(src, rows, cols, ld_src, dst, rows_out, ld_dst); return; }
#endif
    for (ptrdiff_t c = 0; c < cols; c++)
        for (ptrdiff_t r = 0; r < rows_out; r++)
            dst[c * ld_dst + r] = r < rows ? src[r * ld_src + c] : 0.0f;
}

/* The variant this CPU runs within the cap (3 AVX-512, 2 AVX2+FMA), 0 when neither. */
static int fc_ocvec_level(void)
{
    int level = fc_isa_level();
    if (level > fc_isa_cap) level = fc_isa_cap;
    return level >= 2 ? level : 0;
}

#endif /* FC_OCVEC_H */
