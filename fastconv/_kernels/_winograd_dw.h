/* Winograd F(2x2, 3x3) weight gradient on packed sgemm panels (float32, AVX-512 or AVX2+FMA).

   The weight gradient of a block of L tiles is 16 products dU_xi += V_xi . M_xi^T summed over the
   tiles, with V_xi (C x L) the transformed inputs and M_xi (K x L) the transformed output
   gradients. The tiles are the products' depth, so the sgemm wants each operand with the
   *channels* contiguous per tile: A = V_xi as 12-row panels over C (element (c, l) at
   (c / 12) * 12 * L + l * 12 + c % 12) and B = M_xi^T as 32-column panels over K ((l, k) at
   (k / 32) * 32 * L + l * 32 + k % 32), so du_xi comes out C x K. Transforms that run tile
   after tile along rows (the forward's) would need every 16 x C x L and 16 x K x L block
   transposed into panels, 16 values per tile and channel; here the image rows themselves are
   transposed instead (x and dY to channel-minor rows, about 4 values per tile and channel), and
   the transforms then run on vectors of channels and store whole panel rows.

   A piece (tile rows [ty, ty + rows), tile columns [tx, tx + width) of one image) first
   transposes the 2 * rows + 2 input rows and the 2 * rows dY rows it covers, then transforms
   tile by tile. Pixels outside the image or the output (padding, partial tiles past Ho x Wo) and
   channels past C or K read as zero, so every panel entry is finite and nothing outside x and
   dY is read. */
#ifndef FC_WINOGRAD_DW_H
#define FC_WINOGRAD_DW_H

#include <stddef.h>
#include <string.h>
#include "_sgemm.h"

/* Channel padding of the transposed x rows (a multiple of both vector widths) and of the dY
   rows (the 32-column B panels); rows of A per panel. */
#define FC_WG_CPAD 16
#define FC_WG_KPAD 32
#define FC_WG_GROUP 12

static ptrdiff_t fc_wg_round(ptrdiff_t n, ptrdiff_t to) { return (n + to - 1) / to * to; }

/* Floats of a piece's scratch for blocks of L tiles of an output tw tiles wide: the piece's x rows
   and dY rows, channel-minor, and 16 per-tile vectors of V (the 12-channel groups are copied from
   there). A piece is one tile row of at most min(tw, L) tiles or at most L / tw whole rows. */
static ptrdiff_t fc_wg_scratch_floats(ptrdiff_t C, ptrdiff_t K, ptrdiff_t tw, ptrdiff_t L)
{
    ptrdiff_t cs = fc_wg_round(C, FC_WG_CPAD), kp = fc_wg_round(K, FC_WG_KPAD);
    ptrdiff_t ga = fc_wg_round(C, FC_WG_GROUP);
    ptrdiff_t ls = fc_wg_round((ga > cs ? ga : cs) + 16, 16);
    ptrdiff_t w1 = tw < L ? tw : L, rows = L / tw;
    ptrdiff_t xs = 4 * (2 * w1 + 2), ds = 2 * 2 * w1;
    if (rows > 0) {
        if ((2 * rows + 2) * (2 * tw + 2) > xs) xs = (2 * rows + 2) * (2 * tw + 2);
        if (2 * rows * 2 * tw > ds) ds = 2 * rows * 2 * tw;
    }
    return xs * cs + ds * kp + 16 * ls;
}

#if FC_SGEMM_X86

typedef float fc_wg_v16 __attribute__((vector_size(64), aligned(4), may_alias));
typedef float fc_wg_v8 __attribute__((vector_size(32), aligned(4), may_alias));

/* dst[(r * ncols + s) * cs + c] = plane_c[iy0 + r, ix0 + s] for r < nrows, s < ncols, c < cs,
   with plane_c = base + c * hw for c < nplanes; zero for rows, columns and channels outside
   (nothing outside is read). 16 x 16 or 8 x 8 register transposes, a group of VL planes at a
   time over all the rows: VL sequential streams, which the hardware prefetchers follow (row by
   row over all planes, the transposes ran ~2x slower on 64 planes of 28 x 28 out of cache). */
#define FC_WG_ROWS(NAME, TARGET, VL, VEC, TRANSPOSE, STORE)                                         \
TARGET static void NAME(const float *base, ptrdiff_t hw, ptrdiff_t nplanes, ptrdiff_t H,           \
                        ptrdiff_t W, ptrdiff_t iy0, ptrdiff_t nrows, ptrdiff_t ix0,                \
                        ptrdiff_t ncols, float *dst, ptrdiff_t cs)                                 \
{                                                                                                  \
    ptrdiff_t lo, hi, s, c0, r;                                                                    \
    int j;                                                                                         \
    VEC out[VL];                                                                                   \
    lo = ix0 < 0 ? -ix0 : 0;                                                                       \
    if (lo > ncols) lo = ncols;                                                                    \
    hi = W - ix0 < ncols ? W - ix0 : ncols;                                                        \
    if (hi < lo) hi = lo;                                                                          \
    for (r = 0; r < nrows; r++) {                                                                  \
        float *d = dst + r * ncols * cs;                                                           \
        if (iy0 + r < 0 || iy0 + r >= H) {                                                         \
            memset(d, 0, (size_t)(ncols * cs) * sizeof(float));                                    \
            continue;                                                                              \
        }                                                                                          \
        if (lo > 0) memset(d, 0, (size_t)(lo * cs) * sizeof(float));                               \
        if (hi < ncols) memset(d + hi * cs, 0, (size_t)((ncols - hi) * cs) * sizeof(float));        \
    }                                                                                              \
    for (c0 = 0; c0 < cs; c0 += VL) {                                                              \
        int planes = nplanes - c0 >= VL ? VL : (int)(nplanes - c0);                                \
        for (r = 0; r < nrows; r++) {                                                              \
            const ptrdiff_t iy = iy0 + r;                                                          \
            float *d = dst + r * ncols * cs + c0;                                                  \
            if (iy < 0 || iy >= H) continue;                                                       \
            if (planes <= 0) {                                                                     \
                for (s = lo; s < hi; s++) memset(d + s * cs, 0, VL * sizeof(float));               \
                continue;                                                                          \
            }                                                                                      \
            for (s = lo; s < hi; s += VL) {                                                        \
                int cnt = hi - s < VL ? (int)(hi - s) : VL;                                        \
                TRANSPOSE(base + c0 * hw + iy * W + ix0 + s, hw, planes, cnt, out);                \
                for (j = 0; j < cnt; j++) STORE(d + (s + j) * cs, out[j]);                         \
            }                                                                                      \
        }                                                                                          \
    }                                                                                              \
}

/* One piece: transformed inputs into the A panels (V_xi at apan + xi * axs) and transformed
   output gradients into the B panels (M_xi^T at bpan + xi * bxs) of tiles l0, l0 + 1, ... of a
   block of L tiles. x and dy point at the piece's image. */
#define FC_WG_PIECE(NAME, TARGET, VT, VL, ROWS, COPY12)                                            \
TARGET static void NAME(const float *x, const float *dy, ptrdiff_t C, ptrdiff_t H, ptrdiff_t W,   \
                        ptrdiff_t K, ptrdiff_t Ho, ptrdiff_t Wo, ptrdiff_t ph, ptrdiff_t pw,       \
                        ptrdiff_t ty, ptrdiff_t rows, ptrdiff_t tx, ptrdiff_t width, ptrdiff_t l0, \
                        ptrdiff_t L, float *apan, ptrdiff_t axs, float *bpan, ptrdiff_t bxs,       \
                        float *scratch)                                                            \
{                                                                                                  \
    const ptrdiff_t cs = fc_wg_round(C, FC_WG_CPAD), kp = fc_wg_round(K, FC_WG_KPAD);              \
    const ptrdiff_t ga = fc_wg_round(C, FC_WG_GROUP), groups = ga / FC_WG_GROUP;                   \
    const ptrdiff_t ls = fc_wg_round((ga > cs ? ga : cs) + 16, 16);                                \
    const ptrdiff_t ncx = 2 * width + 2, ncd = 2 * width, xrow = ncx * cs;                         \
    float *xr = scratch, *dr = xr + (2 * rows + 2) * xrow, *loc = dr + 2 * rows * ncd * kp;        \
    ptrdiff_t i, j, c0, k0, xi, g, a;                                                              \
    memset(loc, 0, (size_t)(16 * ls) * sizeof(float)); /* channels past cs stay zero */            \
    ROWS(x, H * W, C, H, W, 2 * ty - ph, 2 * rows + 2, 2 * tx - pw, ncx, xr, cs);                  \
    ROWS(dy, Ho * Wo, K, Ho, Wo, 2 * ty, 2 * rows, 2 * tx, ncd, dr, kp);                           \
    for (i = 0; i < rows; i++) {                                                                   \
        const float *r0 = xr + 2 * i * xrow, *r1 = r0 + xrow, *r2 = r1 + xrow, *r3 = r2 + xrow;    \
        const float *drow = dr + 2 * i * ncd * kp;                                                 \
        for (j = 0; j < width; j++) {                                                              \
            const ptrdiff_t l = l0 + i * width + j, col = 2 * j * cs;                              \
            /* V = B^T d B: B on the right per input row, then B^T on the left */                  \
            for (c0 = 0; c0 < cs; c0 += VL) {                                                      \
                const float *p[4] = {r0 + col + c0, r1 + col + c0, r2 + col + c0, r3 + col + c0};  \
                VT t[4][4];                                                                        \
                for (a = 0; a < 4; a++) {                                                          \
                    VT d0 = FC_LD(VT, p[a]), d1 = FC_LD(VT, p[a] + cs);                            \
                    VT d2 = FC_LD(VT, p[a] + 2 * cs), d3 = FC_LD(VT, p[a] + 3 * cs);               \
                    t[a][0] = d0 - d2; t[a][1] = d1 + d2; t[a][2] = d2 - d1; t[a][3] = d1 - d3;    \
                }                                                                                  \
                for (g = 0; g < 4; g++) {                                                          \
                    FC_ST(VT, loc + g * ls + c0, t[0][g] - t[2][g]);                               \
                    FC_ST(VT, loc + (4 + g) * ls + c0, t[1][g] + t[2][g]);                         \
                    FC_ST(VT, loc + (8 + g) * ls + c0, t[2][g] - t[1][g]);                         \
                    FC_ST(VT, loc + (12 + g) * ls + c0, t[1][g] - t[3][g]);                        \
                }                                                                                  \
            }                                                                                      \
            for (xi = 0; xi < 16; xi++)                                                            \
                for (g = 0; g < groups; g++)                                                       \
                    COPY12(apan + xi * axs + g * FC_WG_GROUP * L + l * FC_WG_GROUP,                \
                           loc + xi * ls + g * FC_WG_GROUP);                                       \
            /* A dY A^T of the 2x2 dY patch (e, f: even and odd columns of its rows 0 and 1) */    \
            for (k0 = 0; k0 < kp; k0 += VL) {                                                      \
                const float *q0 = drow + 2 * j * kp + k0, *q1 = q0 + ncd * kp;                     \
                VT e0 = FC_LD(VT, q0), f0 = FC_LD(VT, q0 + kp);                                    \
                VT e1 = FC_LD(VT, q1), f1 = FC_LD(VT, q1 + kp);                                    \
                VT s = e0 + e1, sf = f0 + f1, d = e0 - e1, df = f0 - f1;                           \
                float *o = bpan + (k0 / FC_WG_KPAD) * FC_WG_KPAD * L + l * FC_WG_KPAD + k0 % FC_WG_KPAD; \
                FC_ST(VT, o, e0); FC_ST(VT, o + bxs, e0 + f0);                                     \
                FC_ST(VT, o + 2 * bxs, e0 - f0); FC_ST(VT, o + 3 * bxs, -f0);                      \
                FC_ST(VT, o + 4 * bxs, s); FC_ST(VT, o + 5 * bxs, s + sf);                         \
                FC_ST(VT, o + 6 * bxs, s - sf); FC_ST(VT, o + 7 * bxs, -sf);                       \
                FC_ST(VT, o + 8 * bxs, d); FC_ST(VT, o + 9 * bxs, d + df);                         \
                FC_ST(VT, o + 10 * bxs, d - df); FC_ST(VT, o + 11 * bxs, -df);                     \
                FC_ST(VT, o + 12 * bxs, -e1); FC_ST(VT, o + 13 * bxs, -(e1 + f1));                 \
                FC_ST(VT, o + 14 * bxs, f1 - e1); FC_ST(VT, o + 15 * bxs, f1);                     \
            }                                                                                      \
        }                                                                                          \
    }                                                                                              \
}

#ifndef FC_LD
#define FC_LD(VT, P) (*(const VT*)(P))
#define FC_ST(VT, P, V) (*(VT*)(P) = (V))
#endif

#define FC_WG_STORE512(P, V) _mm512_storeu_ps((P), (V))
#define FC_WG_STORE256(P, V) _mm256_storeu_ps((P), (V))
#define FC_WG_COPY12_512(D, S) _mm512_mask_storeu_ps((D), (__mmask16)0x0FFF, _mm512_loadu_ps(S))
#define FC_WG_COPY12_256(D, S) \
    do { _mm256_storeu_ps((D), _mm256_loadu_ps(S)); _mm_storeu_ps((D) + 8, _mm_loadu_ps((S) + 8)); } while (0)

FC_WG_ROWS(fc_wg_rows512, FC_SGEMM_TARGET, 16, __m512, fc_sgemm_transpose16, FC_WG_STORE512)
FC_WG_ROWS(fc_wg_rows256, FC_SGEMM2_TARGET, 8, __m256, fc_sgemm2_transpose8, FC_WG_STORE256)
FC_WG_PIECE(fc_wg_piece512, FC_SGEMM_TARGET, fc_wg_v16, 16, fc_wg_rows512, FC_WG_COPY12_512)
FC_WG_PIECE(fc_wg_piece256, FC_SGEMM2_TARGET, fc_wg_v8, 8, fc_wg_rows256, FC_WG_COPY12_256)

/* The piece on the sgemm's variant (callers check fc_sgemm_packed_available() first). */
static void fc_wg_piece(const float *x, const float *dy, ptrdiff_t C, ptrdiff_t H, ptrdiff_t W,
                        ptrdiff_t K, ptrdiff_t Ho, ptrdiff_t Wo, ptrdiff_t ph, ptrdiff_t pw,
                        ptrdiff_t ty, ptrdiff_t rows, ptrdiff_t tx, ptrdiff_t width, ptrdiff_t l0,
                        ptrdiff_t L, float *apan, ptrdiff_t axs, float *bpan, ptrdiff_t bxs,
                        float *scratch)
{
    if (fc_sgemm_supported() == FC_SGEMM_AVX512)
        fc_wg_piece512(x, dy, C, H, W, K, Ho, Wo, ph, pw, ty, rows, tx, width, l0, L, apan, axs,
                       bpan, bxs, scratch);
    else if (fc_sgemm_supported() == FC_SGEMM_AVX2)
        fc_wg_piece256(x, dy, C, H, W, K, Ho, Wo, ph, pw, ty, rows, tx, width, l0, L, apan, axs,
                       bpan, bxs, scratch);
}

#else  /* not x86: the packed layouts are never chosen */

static void fc_wg_piece(const float *x, const float *dy, ptrdiff_t C, ptrdiff_t H, ptrdiff_t W,
                        ptrdiff_t K, ptrdiff_t Ho, ptrdiff_t Wo, ptrdiff_t ph, ptrdiff_t pw,
                        ptrdiff_t ty, ptrdiff_t rows, ptrdiff_t tx, ptrdiff_t width, ptrdiff_t l0,
                        ptrdiff_t L, float *apan, ptrdiff_t axs, float *bpan, ptrdiff_t bxs,
                        float *scratch)
{
    (void)x; (void)dy; (void)C; (void)H; (void)W; (void)K; (void)Ho; (void)Wo; (void)ph; (void)pw;
    (void)ty; (void)rows; (void)tx; (void)width; (void)l0; (void)L; (void)apan; (void)axs;
    (void)bpan; (void)bxs; (void)scratch;
}

#endif
#endif /* FC_WINOGRAD_DW_H */
