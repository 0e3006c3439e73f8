/* Winograd F(2x2, 3x3) forward-pass transforms on the packed sgemm layout (float32, AVX-512 or
   AVX2+FMA), in explicit vectors of tiles.

   Input transform of a piece (tile rows [ty, ty + rows), tile columns [tx, tx + width) of one
   image), channel by channel: B on the right for each of its 2 rows + 2 input rows, loaded with
   masked loads straight from x (zero outside the image) and split into even and odd columns by
   register permutes, into eight flat arrays E[parity][col] (one row of `width` values per pair
   of input rows); then B^T on the left as flat vector loops over the piece's tiles, stored into
   the 32-column B panels of V_xi (element (c, l) at (l / 32) * 32 * C + c * 32 + l % 32, l the
   tile's index in its block). Output transform A^T M A (+ bias) per tile row and output
   channel: 16 masked loads of M_xi, the 2 x 2 outputs of each tile interleaved into its two
   output rows by permutes and stored into y with masked stores (nothing past Ho x Wo).

   The Cython transforms this replaces ran ~30 (input) and ~13 (output) cycles per tile and
   channel on Zen 4: byte-wise row copies, stride-2 gathers and short loops the compiler only
   vectorized to 4 lanes, whatever the -march. */
#ifndef FC_WINOGRAD_FWD_H
#define FC_WINOGRAD_FWD_H

#include <stddef.h>
#include <string.h>
#include "_sgemm.h"

/* Slack floats after each of the input transform's eight E arrays, of (rows + 1) * width floats
   each: its scratch is 8 * ((rows + 1) * width + FC_WF_SLACK) floats (make_tiling's v_scratch
   holds that for any piece of a block). */
#define FC_WF_SLACK 16

/* Prefetch rows [iy, iy + rows) (clipped to [0, H)) of an H x W plane, for reading (rw 0) or
   writing (rw 1): the plane the transform works on next. Its first touches missed the caches
   and stalled the masked loads otherwise (x and y stream from memory; a plane's rows are
   ~100 bytes apart from the next plane's, too many streams for the hardware prefetchers). */
#define FC_WF_PREFETCH(plane, H, W, iy, rows, rw)                                                  \
    do {                                                                                           \
        ptrdiff_t lo_ = (iy) < 0 ? 0 : (iy), hi_ = (iy) + (rows) < (H) ? (iy) + (rows) : (H);      \
        if (hi_ > lo_) {                                                                           \
            const char *p_ = (const char *)((plane) + lo_ * (W));                                  \
            const char *end_ = (const char *)((plane) + hi_ * (W));                                \
            for (; p_ < end_; p_ += 64) __builtin_prefetch(p_, (rw));                              \
        }                                                                                          \
    } while (0)

#if FC_SGEMM_X86

/* ---- per-variant vector primitives: VL lanes, masked load/store of the first n lanes, even/odd
   split of 2 VL consecutive floats, interleave of two vectors into 2 VL floats ---- */

#define FC_WF512_VL 16
#define FC_WF512_LOAD(p, n) _mm512_maskz_loadu_ps(fc_sgemm_lanes(n), (p))
#define FC_WF512_STORE(p, v, n) _mm512_mask_storeu_ps((p), fc_sgemm_lanes(n), (v))
#define FC_WF512_ZERO() _mm512_setzero_ps()
#define FC_WF512_SET1(x) _mm512_set1_ps(x)
#define FC_WF512_cols fc_wf512_cols
#define FC_WF512_split fc_wf512_split
#define FC_WF512_zip fc_wf512_zip
#define FC_WF512_LOADR(p, lo, hi) _mm512_maskz_loadu_ps((__mmask16)(fc_sgemm_lanes(hi) & ~fc_sgemm_lanes(lo)), (p))
FC_SGEMM_TARGET static inline void fc_wf512_split(__m512 a, __m512 b, __m512 *even, __m512 *odd)
{
    const __m512i ie = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i io = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    *even = _mm512_permutex2var_ps(a, ie, b);
    *odd = _mm512_permutex2var_ps(a, io, b);
}
FC_SGEMM_TARGET static inline void fc_wf512_zip(__m512 a, __m512 b, __m512 *lo, __m512 *hi)
{
    const __m512i il = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i ih = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    *lo = _mm512_permutex2var_ps(a, il, b);
    *hi = _mm512_permutex2var_ps(a, ih, b);
}

#define FC_WF256_VL 8
#define FC_WF256_LOAD(p, n) _mm256_maskload_ps((p), fc_sgemm2_lanes(n))
#define FC_WF256_STORE(p, v, n) _mm256_maskstore_ps((p), fc_sgemm2_lanes(n), (v))
#define FC_WF256_ZERO() _mm256_setzero_ps()
#define FC_WF256_SET1(x) _mm256_set1_ps(x)
#define FC_WF256_cols fc_wf256_cols
#define FC_WF256_split fc_wf256_split
#define FC_WF256_zip fc_wf256_zip
#define FC_WF256_LOADR(p, lo, hi) _mm256_maskload_ps((p), _mm256_andnot_si256(fc_sgemm2_lanes(lo), fc_sgemm2_lanes(hi)))
FC_SGEMM2_TARGET static inline void fc_wf256_split(__m256 a, __m256 b, __m256 *even, __m256 *odd)
{
    /* per 128-bit lane (a0 a2 b0 b2 | a4 a6 b4 b6), then the 64-bit pairs put in order */
    *even = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, 0x88)), 0xD8));
    *odd = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, 0xDD)), 0xD8));
}
FC_SGEMM2_TARGET static inline void fc_wf256_zip(__m256 a, __m256 b, __m256 *lo, __m256 *hi)
{
    __m256 l = _mm256_unpacklo_ps(a, b), h = _mm256_unpackhi_ps(a, b);
    *lo = _mm256_permute2f128_ps(l, h, 0x20);
    *hi = _mm256_permute2f128_ps(l, h, 0x31);
}

/* row[first + i] for lanes i with 0 <= first + i < W, zero elsewhere (masked lanes are not read). */
#define FC_WF_COLS(NAME, TARGET, VEC, P)                                                           \
TARGET static inline VEC NAME(const float *row, ptrdiff_t first, ptrdiff_t W)                      \
{                                                                                                  \
    ptrdiff_t lo = first < 0 ? -first : 0, hi = W - first;                                         \
    if (hi > P##_VL) hi = P##_VL;                                                                  \
    if (hi <= lo) return P##_ZERO();                                                               \
    return P##_LOADR(row + first, (int)lo, (int)hi);                                               \
}
FC_WF_COLS(fc_wf512_cols, FC_SGEMM_TARGET, __m512, FC_WF512)
FC_WF_COLS(fc_wf256_cols, FC_SGEMM2_TARGET, __m256, FC_WF256)

/* x (this piece's image: C planes H x W) -> V_xi panels for tiles l0 .. l0 + rows * width - 1.
   e: 8 * ((rows + 1) * width + FC_WF_SLACK) floats. */
#define FC_WF_INPUTS(NAME, TARGET, P)                                                              \
TARGET static void NAME(const float *x, ptrdiff_t C, ptrdiff_t H, ptrdiff_t W, ptrdiff_t ph,       \
                        ptrdiff_t pw, ptrdiff_t ty, ptrdiff_t rows, ptrdiff_t tx, ptrdiff_t width, \
                        ptrdiff_t l0, float *v, ptrdiff_t vxs, float *e)                           \
{                                                                                                  \
    const int VL = P##_VL;                                                                         \
    const ptrdiff_t se = (rows + 1) * width + FC_WF_SLACK, nq = rows * width;                      \
    const ptrdiff_t ix0 = 2 * tx - pw;                                                             \
    ptrdiff_t c, r, j0, q, qa, qb, col;                                                            \
    for (c = 0; c < C; c++) {                                                                      \
        const float *plane = x + c * H * W;                                                        \
        if (c + 1 < C) FC_WF_PREFETCH(plane + H * W, H, W, 2 * ty - ph, 2 * rows + 2, 0);          \
        /* B on the right: (d0, d1, d2, d3) -> (d0 - d2, d1 + d2, d2 - d1, d1 - d3) per tile */    \
        for (r = 0; r < 2 * rows + 2; r++) {                                                       \
            const ptrdiff_t iy = 2 * ty - ph + r;                                                  \
            float *ev = e + (r % 2) * 4 * se + (r / 2) * width;                                    \
            for (j0 = 0; j0 < width; j0 += VL) {                                                   \
                const ptrdiff_t s0 = 2 * j0;          /* first column of the 2 VL + 2 read */    \
                __typeof__(P##_ZERO()) a0, a1, b0, b1, d0, d1, d2, d3;                              \
                if (iy < 0 || iy >= H) {                                                           \
                    a0 = a1 = b0 = b1 = P##_ZERO();                                                \
                } else {  /* columns outside [0, W) read as zero, masked lanes are not read */     \
                    const float *row = plane + iy * W;                                             \
                    a0 = P##_cols(row, ix0 + s0, W);                                               \
                    a1 = P##_cols(row, ix0 + s0 + VL, W);                                          \
                    b0 = P##_cols(row, ix0 + s0 + 2, W);                                           \
                    b1 = P##_cols(row, ix0 + s0 + 2 + VL, W);                                      \
                }                                                                                  \
                P##_split(a0, a1, &d0, &d1);          /* d[2j], d[2j + 1] */                       \
                P##_split(b0, b1, &d2, &d3);          /* d[2j + 2], d[2j + 3] */                   \
                {                                                                                  \
                    const int n = width - j0 < VL ? (int)(width - j0) : VL;                        \
                    P##_STORE(ev + j0, d0 - d2, n);                                                \
                    P##_STORE(ev + se + j0, d1 + d2, n);                                           \
                    P##_STORE(ev + 2 * se + j0, d2 - d1, n);                                       \
                    P##_STORE(ev + 3 * se + j0, d1 - d3, n);                                       \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
        /* B^T on the left, flat over the piece, in runs inside one 32-column panel */            \
        for (qa = 0; qa < nq; qa = qb) {                                                           \
            const ptrdiff_t l = l0 + qa;                                                           \
            qb = qa + (32 - l % 32);                                                               \
            if (qb > nq) qb = nq;                                                                  \
            float *o = v + (l / 32) * 32 * C + c * 32 + l % 32;                                    \
            for (col = 0; col < 4; col++) {                                                        \
                const float *ee = e + col * se + qa, *eo = e + (4 + col) * se + qa;                \
                float *o0 = o + col * vxs;                                                         \
                for (q = 0; q < qb - qa; q += VL) {                                                \
                    const int n = qb - qa - q < VL ? (int)(qb - qa - q) : VL;                      \
                    __typeof__(P##_ZERO()) r0 = P##_LOAD(ee + q, n), r1 = P##_LOAD(eo + q, n);      \
                    __typeof__(P##_ZERO()) r2 = P##_LOAD(ee + q + width, n);                        \
                    __typeof__(P##_ZERO()) r3 = P##_LOAD(eo + q + width, n);                        \
                    P##_STORE(o0 + q, r0 - r2, n);                                                 \
                    P##_STORE(o0 + 4 * vxs + q, r1 + r2, n);                                       \
                    P##_STORE(o0 + 8 * vxs + q, r2 - r1, n);                                       \
                    P##_STORE(o0 + 12 * vxs + q, r1 - r3, n);                                      \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    }                                                                                              \
}

/* y (this piece's image: K planes Ho x Wo) = A^T M A (+ bias[k]) for tiles q0 .. q0 + rows *
   width - 1 of the block (M_xi at m + xi * mxs, row stride ldm). */
#define FC_WF_OUTPUTS(NAME, TARGET, P)                                                             \
TARGET static void NAME(const float *m, ptrdiff_t K, ptrdiff_t Ho, ptrdiff_t Wo, ptrdiff_t ldm,    \
                        ptrdiff_t mxs, ptrdiff_t q0, ptrdiff_t ty, ptrdiff_t rows, ptrdiff_t tx,   \
                        ptrdiff_t width, const float *bias, float *y)                              \
{                                                                                                  \
    const int VL = P##_VL;                                                                         \
    ptrdiff_t k, i, j0;                                                                            \
    for (k = 0; k < K; k++) {                                                                      \
        const __typeof__(P##_ZERO()) b = P##_SET1(bias ? bias[k] : 0.0f);                         \
        if (k + 1 < K) FC_WF_PREFETCH(y + (k + 1) * Ho * Wo, Ho, Wo, 2 * ty, 2 * rows, 1);         \
        for (i = 0; i < rows; i++) {                                                               \
            const ptrdiff_t oy = 2 * (ty + i);                                                     \
            float *out = y + (k * Ho + oy) * Wo;                                                   \
            const float *mk = m + k * ldm + q0 + i * width;                                        \
            for (j0 = 0; j0 < width; j0 += VL) {                                                   \
                const int n = width - j0 < VL ? (int)(width - j0) : VL;                            \
                const float *p = mk + j0;                                                          \
                __typeof__(P##_ZERO()) a[4], bb[4], y00, y01, y10, y11, lo, hi;                    \
                int jj;                                                                            \
                for (jj = 0; jj < 4; jj++) { /* A^T on the left: rows of M summed */              \
                    __typeof__(P##_ZERO()) m0 = P##_LOAD(p + jj * mxs, n);                         \
                    __typeof__(P##_ZERO()) m1 = P##_LOAD(p + (4 + jj) * mxs, n);                   \
                    __typeof__(P##_ZERO()) m2 = P##_LOAD(p + (8 + jj) * mxs, n);                   \
                    __typeof__(P##_ZERO()) m3 = P##_LOAD(p + (12 + jj) * mxs, n);                  \
                    a[jj] = m0 + m1 + m2;                                                          \
                    bb[jj] = m1 - m2 - m3;                                                         \
                }                                                                                  \
                y00 = a[0] + a[1] + a[2] + b;                                                      \
                y01 = a[1] - a[2] - a[3] + b;                                                      \
                y10 = bb[0] + bb[1] + bb[2] + b;                                                   \
                y11 = bb[1] - bb[2] - bb[3] + b;                                                   \
                {                                                                                  \
                    ptrdiff_t cols = Wo - 2 * (tx + j0);                                           \
                    if (cols > 2 * n) cols = 2 * n;                                                \
                    const int c0 = cols < VL ? (int)cols : VL, c1 = (int)cols - c0;                \
                    float *o = out + 2 * (tx + j0);                                                \
                    P##_zip(y00, y01, &lo, &hi);                                                   \
                    P##_STORE(o, lo, c0);                                                          \
                    if (c1 > 0) P##_STORE(o + VL, hi, c1);                                         \
                    if (oy + 1 < Ho) {                                                             \
                        P##_zip(y10, y11, &lo, &hi);                                               \
                        P##_STORE(o + Wo, lo, c0);                                                 \
                        if (c1 > 0) P##_STORE(o + Wo + VL, hi, c1);                                \
                    }                                                                              \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    }                                                                                              \
}

FC_WF_INPUTS(fc_wf_inputs512, FC_SGEMM_TARGET, FC_WF512)
FC_WF_INPUTS(fc_wf_inputs256, FC_SGEMM2_TARGET, FC_WF256)
FC_WF_OUTPUTS(fc_wf_outputs512, FC_SGEMM_TARGET, FC_WF512)
FC_WF_OUTPUTS(fc_wf_outputs256, FC_SGEMM2_TARGET, FC_WF256)

/* The transforms on the sgemm's variant (callers check fc_sgemm_packed_available() first). */
static void fc_wf_inputs(const float *x, ptrdiff_t C, ptrdiff_t H, ptrdiff_t W, ptrdiff_t ph,
                         ptrdiff_t pw, ptrdiff_t ty, ptrdiff_t rows, ptrdiff_t tx, ptrdiff_t width,
                         ptrdiff_t l0, float *v, ptrdiff_t vxs, float *e)
{
    if (fc_sgemm_supported() == FC_SGEMM_AVX512)
        fc_wf_inputs512(x, C, H, W, ph, pw, ty, rows, tx, width, l0, v, vxs, e);
    else if (fc_sgemm_supported() == FC_SGEMM_AVX2)
        fc_wf_inputs256(x, C, H, W, ph, pw, ty, rows, tx, width, l0, v, vxs, e);
}

static void fc_wf_outputs(const float *m, ptrdiff_t K, ptrdiff_t Ho, ptrdiff_t Wo, ptrdiff_t ldm,
                          ptrdiff_t mxs, ptrdiff_t q0, ptrdiff_t ty, ptrdiff_t rows, ptrdiff_t tx,
                          ptrdiff_t width, const float *bias, float *y)
{
    if (fc_sgemm_supported() == FC_SGEMM_AVX512)
        fc_wf_outputs512(m, K, Ho, Wo, ldm, mxs, q0, ty, rows, tx, width, bias, y);
    else if (fc_sgemm_supported() == FC_SGEMM_AVX2)
        fc_wf_outputs256(m, K, Ho, Wo, ldm, mxs, q0, ty, rows, tx, width, bias, y);
}

#else  /* not x86: the packed layouts are never chosen */

static void fc_wf_inputs(const float *x, ptrdiff_t C, ptrdiff_t H, ptrdiff_t W, ptrdiff_t ph,
                         ptrdiff_t pw, ptrdiff_t ty, ptrdiff_t rows, ptrdiff_t tx, ptrdiff_t width,
                         ptrdiff_t l0, float *v, ptrdiff_t vxs, float *e)
{
    (void)x; (void)C; (void)H; (void)W; (void)ph; (void)pw; (void)ty; (void)rows; (void)tx;
    (void)width; (void)l0; (void)v; (void)vxs; (void)e;
}

static void fc_wf_outputs(const float *m, ptrdiff_t K, ptrdiff_t Ho, ptrdiff_t Wo, ptrdiff_t ldm,
                          ptrdiff_t mxs, ptrdiff_t q0, ptrdiff_t ty, ptrdiff_t rows, ptrdiff_t tx,
                          ptrdiff_t width, const float *bias, float *y)
{
    (void)m; (void)K; (void)Ho; (void)Wo; (void)ldm; (void)mxs; (void)q0; (void)ty; (void)rows;
    (void)tx; (void)width; (void)bias; (void)y;
}

#endif
#endif /* FC_WINOGRAD_FWD_H */
