/* Channel-vectorized depthwise convolution (groups == C == K), float32, AVX-512 or AVX2+FMA.

   Images are copied channel-minor (pixels × Cp channels, Cp = C rounded up to the vector width,
   zeros past C), so every tap of every output pixel is a run of whole vectors over channels:
   the loops below keep up to four vectors of output channels in registers while they sum over
   the taps, with no per-column border arithmetic and no short loops, whatever the image size,
   stride, dilation or padding. This is oneDNN's channel-blocked layout used inside one pass;
   the public layout stays NCHW (the caller transposes in and out).

   All three passes are gathers (each output element is written once, by one thread):
   forward y[p] = Σ_taps w[tap] · x[p's tap]; dX[q] = Σ over the taps and output pixels that
   read q of w[tap] · dY[p]; dW/db partials of one row block of one image. */
#ifndef FC_DEPTHWISE_H
#define FC_DEPTHWISE_H

#include "_shallow.h"
#include "_ocvec.h"

#define FC_DWC_ACC4(VT, VL, EXPR_W, EXPR_X)                                                    \
    {   const float *wp_ = (EXPR_W), *xp_ = (EXPR_X);                                          \
        a0 += FC_LD(VT, wp_) * FC_LD(VT, xp_);                                                 \
        a1 += FC_LD(VT, wp_ + VL) * FC_LD(VT, xp_ + VL);                                       \
        a2 += FC_LD(VT, wp_ + 2 * VL) * FC_LD(VT, xp_ + 2 * VL);                               \
        a3 += FC_LD(VT, wp_ + 3 * VL) * FC_LD(VT, xp_ + 3 * VL); }

/* Output pixels [oxa, oxb) of row oy: any geometry, every tap checked against the borders. */
#define FC_DWC_FWD_PIXELS(VT, OXA, OXB)                                                        \
    for (ptrdiff_t ox = (OXA); ox < (OXB); ox++) {                                             \
        float *out = yt + (oy * Wo + ox) * Cp;                                                 \
        ptrdiff_t c = 0;                                                                       \
        for (; c + 4 * VL <= Cp; c += 4 * VL) {                                                \
            VT a0 = FC_LD(VT, bias + c), a1 = FC_LD(VT, bias + c + VL);                        \
            VT a2 = FC_LD(VT, bias + c + 2 * VL), a3 = FC_LD(VT, bias + c + 3 * VL);           \
            for (ptrdiff_t ky = 0; ky < kh; ky++) {                                            \
                ptrdiff_t iy = oy * sh - ph + ky * dh;                                         \
                if (iy < 0 || iy >= H) continue;                                               \
                for (ptrdiff_t kx = 0; kx < kw; kx++) {                                        \
                    ptrdiff_t ix = ox * sw - pw + kx * dw;                                     \
                    if (ix < 0 || ix >= W) continue;                                           \
                    FC_DWC_ACC4(VT, VL, wt + (ky * kw + kx) * Cp + c, xt + (iy * W + ix) * Cp + c) \
                }                                                                              \
            }                                                                                  \
            FC_ST(VT, out + c, a0); FC_ST(VT, out + c + VL, a1);                               \
            FC_ST(VT, out + c + 2 * VL, a2); FC_ST(VT, out + c + 3 * VL, a3);                  \
        }                                                                                      \
        for (; c < Cp; c += VL) {                                                              \
            VT a0 = FC_LD(VT, bias + c);                                                       \
            for (ptrdiff_t ky = 0; ky < kh; ky++) {                                            \
                ptrdiff_t iy = oy * sh - ph + ky * dh;                                         \
                if (iy < 0 || iy >= H) continue;                                               \
                for (ptrdiff_t kx = 0; kx < kw; kx++) {                                        \
                    ptrdiff_t ix = ox * sw - pw + kx * dw;                                     \
                    if (ix < 0 || ix >= W) continue;                                           \
                    a0 += FC_LD(VT, wt + (ky * kw + kx) * Cp + c)                              \
                          * FC_LD(VT, xt + (iy * W + ix) * Cp + c);                            \
                }                                                                              \
            }                                                                                  \
            FC_ST(VT, out + c, a0);                                                            \
        }                                                                                      \
    }

/* Output pixels [OXA, OXB) of one output row of a 3×3 filter (dilation 1, column stride S, a
   constant) whose taps all lie inside the input: per channel vector the nine weights stay in
   registers and four neighbouring pixels share their input loads (4·S + 2 a filter row, not 12),
   ~0.5-0.75 loads per multiply-add instead of 2. X/Y: the channel-minor input and output rows
   (pixel 0 of the input row the filter's first row reads, of the output row); LEFT: the
   columns output pixel 0's first tap lies left of input column 0 (the padding); tap t's
   weights at WT + t·WSTEP (a negative step reads the filter rotated by 180°, as dX needs);
   BIAS: Cp values or NULL (zeros). */
#define FC_DWC_3X3_ROW(VT, S, OXA, OXB, X, WIN, LEFT, Y, WT, WSTEP, BIAS)                     \
    for (ptrdiff_t c = 0; c < Cp; c += VL) {                                                   \
        const float *wc = (WT) + c;                                                            \
        const ptrdiff_t ws_ = (WSTEP);                                                         \
        const VT w0 = FC_LD(VT, wc), w1 = FC_LD(VT, wc + ws_), w2 = FC_LD(VT, wc + 2 * ws_);   \
        const VT w3 = FC_LD(VT, wc + 3 * ws_), w4 = FC_LD(VT, wc + 4 * ws_);                   \
        const VT w5 = FC_LD(VT, wc + 5 * ws_), w6 = FC_LD(VT, wc + 6 * ws_);                   \
        const VT w7 = FC_LD(VT, wc + 7 * ws_), w8 = FC_LD(VT, wc + 8 * ws_);                   \
        VT b = (VT){0};                                                                        \
        if ((BIAS) != NULL) b = FC_LD(VT, (BIAS) + c);                                         \
        const float *r0 = (X) + c;                                                             \
        float *yrow_ = (Y) + c;                                                                \
        ptrdiff_t ox = (OXA);                                                                  \
        for (; ox + 4 <= (OXB); ox += 4) {                                                     \
            VT a0 = b, a1 = b, a2 = b, a3 = b;                                                 \
            for (int ky = 0; ky < 3; ky++) {                                                   \
                const float *q = r0 + (ky * (WIN) + ox * (S) - (LEFT)) * Cp;                   \
                const VT wa = ky == 0 ? w0 : ky == 1 ? w3 : w6;                                \
                const VT wb = ky == 0 ? w1 : ky == 1 ? w4 : w7;                                \
                const VT wc_ = ky == 0 ? w2 : ky == 1 ? w5 : w8;                               \
                const VT x0 = FC_LD(VT, q), x1 = FC_LD(VT, q + Cp), x2 = FC_LD(VT, q + 2 * Cp); \
                const VT x3 = FC_LD(VT, q + 3 * Cp), x4 = FC_LD(VT, q + 4 * Cp);               \
                const VT x5 = FC_LD(VT, q + 5 * Cp);                                           \
                if ((S) == 1) {                                                                \
                    a0 += wa * x0 + wb * x1 + wc_ * x2;                                        \
                    a1 += wa * x1 + wb * x2 + wc_ * x3;                                        \
                    a2 += wa * x2 + wb * x3 + wc_ * x4;                                        \
                    a3 += wa * x3 + wb * x4 + wc_ * x5;                                        \
                } else {                                                                       \
                    const VT x6 = FC_LD(VT, q + 6 * Cp), x7 = FC_LD(VT, q + 7 * Cp);           \
                    const VT x8 = FC_LD(VT, q + 8 * Cp);                                       \
                    a0 += wa * x0 + wb * x1 + wc_ * x2;                                        \
                    a1 += wa * x2 + wb * x3 + wc_ * x4;                                        \
                    a2 += wa * x4 + wb * x5 + wc_ * x6;                                        \
                    a3 += wa * x6 + wb * x7 + wc_ * x8;                                        \
                }                                                                              \
            }                                                                                  \
            float *out = yrow_ + ox * Cp;                                                      \
            FC_ST(VT, out, a0); FC_ST(VT, out + Cp, a1);                                       \
            FC_ST(VT, out + 2 * Cp, a2); FC_ST(VT, out + 3 * Cp, a3);                          \
        }                                                                                      \
        for (; ox < (OXB); ox++) {                                                             \
            VT a0 = b;                                                                         \
            for (int ky = 0; ky < 3; ky++) {                                                   \
                const float *q = r0 + (ky * (WIN) + ox * (S) - (LEFT)) * Cp;                   \
                a0 += (ky == 0 ? w0 : ky == 1 ? w3 : w6) * FC_LD(VT, q)                        \
                      + (ky == 0 ? w1 : ky == 1 ? w4 : w7) * FC_LD(VT, q + Cp)                 \
                      + (ky == 0 ? w2 : ky == 1 ? w5 : w8) * FC_LD(VT, q + 2 * Cp);            \
            }                                                                                  \
            FC_ST(VT, yrow_ + ox * Cp, a0);                                                    \
        }                                                                                      \
    }

/* Output rows [oy0, oy1) of one image: yt (Ho·Wo × Cp) from xt (H·W × Cp), wt (taps × Cp),
   bias (Cp, zeros when the layer has none). 3×3 filters at column stride 1 or 2 (dilation 1)
   take FC_DWC_3X3_ROW on the pixels whose taps are all inside the image, the rest the
   checked loop. */
#define FC_DWC_FWD_BODY(VT)                                                                    \
{                                                                                              \
    const ptrdiff_t VL = sizeof(VT) / sizeof(float);                                           \
    const int fast = kh == 3 && kw == 3 && dh == 1 && dw == 1 && (sw == 1 || sw == 2);         \
    /* the pixels whose three columns lie inside the image: ox·sw − pw ≥ 0 and ≤ W − 3 */      \
    const ptrdiff_t ox_lo = fast ? (pw + sw - 1) / sw : 0;                                     \
    ptrdiff_t ox_hi = fast && W - 3 + pw >= 0 ? (W - 3 + pw) / sw + 1 : 0;                     \
    if (ox_hi > Wo) ox_hi = Wo;                                                                \
    for (ptrdiff_t oy = oy0; oy < oy1; oy++) {                                                 \
        const ptrdiff_t top = oy * sh - ph;                                                    \
        if (fast && top >= 0 && top + 2 < H && ox_lo < ox_hi) {                                \
            FC_DWC_FWD_PIXELS(VT, 0, ox_lo)                                                    \
            const float *xrow = xt + top * W * Cp;                                             \
            float *yrow = yt + oy * Wo * Cp;                                                   \
            if (sw == 1) { FC_DWC_3X3_ROW(VT, 1, ox_lo, ox_hi, xrow, W, pw, yrow, wt, Cp, bias) } \
            else { FC_DWC_3X3_ROW(VT, 2, ox_lo, ox_hi, xrow, W, pw, yrow, wt, Cp, bias) }      \
            FC_DWC_FWD_PIXELS(VT, ox_hi, Wo)                                                   \
        } else {                                                                               \
            FC_DWC_FWD_PIXELS(VT, 0, Wo)                                                       \
        }                                                                                      \
    }                                                                                          \
}

/* Input pixels [IXA, IXB) of row iy of one image's dX: dxt (H·W × Cp) from dyt (Ho·Wo × Cp): the
   output pixels that read input pixel (iy, ix) through tap (ky, kx) are oy = (iy + ph − ky·dh) / sh
   when that divides exactly and lies in [0, Ho), the same across. */
#define FC_DWC_DX_PIXELS(VT, IXA, IXB)                                                         \
    for (ptrdiff_t ix = (IXA); ix < (IXB); ix++) {                                             \
        float *out = dxt + (iy * W + ix) * Cp;                                                 \
        for (ptrdiff_t c = 0; c < Cp; c += VL) {                                               \
            VT a0 = FC_LD(VT, zero);                                                           \
            for (ptrdiff_t ky = 0; ky < kh; ky++) {                                            \
                ptrdiff_t ty = iy + ph - ky * dh;                                              \
                if (ty < 0 || ty % sh) continue;                                               \
                ptrdiff_t oy = ty / sh;                                                        \
                if (oy >= Ho) continue;                                                        \
                for (ptrdiff_t kx = 0; kx < kw; kx++) {                                        \
                    ptrdiff_t tx = ix + pw - kx * dw;                                          \
                    if (tx < 0 || tx % sw) continue;                                           \
                    ptrdiff_t ox = tx / sw;                                                    \
                    if (ox >= Wo) continue;                                                    \
                    a0 += FC_LD(VT, wt + (ky * kw + kx) * Cp + c)                              \
                          * FC_LD(VT, dyt + (oy * Wo + ox) * Cp + c);                          \
                }                                                                              \
            }                                                                                  \
            FC_ST(VT, out + c, a0);                                                            \
        }                                                                                      \
    }

/* Input rows [iy0, iy1) of one image's dX. A stride-1 3×3 filter's dX is the forward of dY with
   the filter rotated by 180° and padding 2 − p: its interior pixels take FC_DWC_3X3_ROW. */
#define FC_DWC_DX_BODY(VT)                                                                     \
{                                                                                              \
    const ptrdiff_t VL = sizeof(VT) / sizeof(float);                                           \
    const int fast = kh == 3 && kw == 3 && dh == 1 && dw == 1 && sh == 1 && sw == 1;           \
    /* input columns whose nine taps read dY inside: 0 ≤ ix + pw − 2 and ix + pw < Wo */      \
    const ptrdiff_t ix_lo = fast && pw < 2 ? 2 - pw : 0;                                       \
    ptrdiff_t ix_hi = fast ? Wo - pw : 0;                                                      \
    if (ix_hi > W) ix_hi = W;                                                                  \
    for (ptrdiff_t iy = iy0; iy < iy1; iy++) {                                                 \
        const ptrdiff_t top = iy + ph - 2;                                                     \
        if (fast && top >= 0 && top + 2 < Ho && ix_lo < ix_hi) {                               \
            FC_DWC_DX_PIXELS(VT, 0, ix_lo)                                                     \
            const float *dyrow = dyt + top * Wo * Cp;                                          \
            float *dxrow = dxt + iy * W * Cp;                                                  \
            FC_DWC_3X3_ROW(VT, 1, ix_lo, ix_hi, dyrow, Wo, 2 - pw, dxrow, wt + 8 * Cp, -Cp,    \
                           (const float *)NULL)                                                \
            FC_DWC_DX_PIXELS(VT, ix_hi, W)                                                     \
        } else {                                                                               \
            FC_DWC_DX_PIXELS(VT, 0, W)                                                         \
        }                                                                                      \
    }                                                                                          \
}

/* dW/db partial sums of output rows [oy0, oy1) of one image: part ((taps + 1) × Cp, the last
   row db) = Σ dY[p] · x[p's tap] over those rows, tap by tap with the sums in registers. Each
   tap's columns inside the image are computed once (no per-pixel border test), and four
   accumulators take the pixels in turn (one would wait on each multiply-add's latency); their
   order is fixed, so the sums do not depend on the thread count. */
#define FC_DWC_DW_BODY(VT)                                                                     \
{                                                                                              \
    const ptrdiff_t VL = sizeof(VT) / sizeof(float);                                           \
    for (ptrdiff_t c = 0; c < Cp; c += VL) {                                                   \
        for (ptrdiff_t ky = 0; ky < kh; ky++)                                                  \
        for (ptrdiff_t kx = 0; kx < kw; kx++) {                                                \
            /* ix = ox·sw − pw + kx·dw inside [0, W) for ox in [lo, hi) */                     \
            const ptrdiff_t off = kx * dw - pw;                                                \
            const ptrdiff_t lo = off >= 0 ? 0 : (-off + sw - 1) / sw;                          \
            ptrdiff_t hi = W - 1 - off < 0 ? 0 : (W - 1 - off) / sw + 1;                       \
            if (hi > Wo) hi = Wo;                                                              \
            VT a0 = FC_LD(VT, zero), a1 = a0, a2 = a0, a3 = a0;                                \
            for (ptrdiff_t oy = oy0; oy < oy1; oy++) {                                         \
                ptrdiff_t iy = oy * sh - ph + ky * dh;                                         \
                if (iy < 0 || iy >= H) continue;                                               \
                const float *d = dyt + oy * Wo * Cp + c;                                       \
                const float *xr = xt + iy * W * Cp + c;                                        \
                ptrdiff_t ox = lo;                                                             \
                for (; ox + 4 <= hi; ox += 4) {                                                \
                    a0 += FC_LD(VT, d + ox * Cp) * FC_LD(VT, xr + (ox * sw + off) * Cp);       \
                    a1 += FC_LD(VT, d + (ox + 1) * Cp) * FC_LD(VT, xr + ((ox + 1) * sw + off) * Cp); \
                    a2 += FC_LD(VT, d + (ox + 2) * Cp) * FC_LD(VT, xr + ((ox + 2) * sw + off) * Cp); \
                    a3 += FC_LD(VT, d + (ox + 3) * Cp) * FC_LD(VT, xr + ((ox + 3) * sw + off) * Cp); \
                }                                                                              \
                for (; ox < hi; ox++) a0 += FC_LD(VT, d + ox * Cp) * FC_LD(VT, xr + (ox * sw + off) * Cp); \
            }                                                                                  \
            FC_ST(VT, part + (ky * kw + kx) * Cp + c, (a0 + a1) + (a2 + a3));                  \
        }                                                                                      \
        if (need_db) {                                                                         \
            VT a0 = FC_LD(VT, zero);                                                           \
            for (ptrdiff_t p = oy0 * Wo; p < oy1 * Wo; p++) a0 += FC_LD(VT, dyt + p * Cp + c); \
            FC_ST(VT, part + kh * kw * Cp + c, a0);                                            \
        }                                                                                      \
    }                                                                                          \
}

/* NAME_avx512 and NAME_avx2 compiled from BODY with the types T512 / T256 (parenthesized
   argument lists of BODY), and NAME(level, ...) calling the one for `level` (3 AVX-512, else
   AVX2+FMA). P is the parameter list and A the argument list, as macros. Without x86 NAME does
   nothing: the Python side offers these paths only where fc_ocvec_level() >= 2. */
#if FC_SGEMM_X86
#define FC_CHANNEL_VARIANTS(NAME, P, A, BODY, T512, T256)                                      \
static FC_AVX512 void NAME##_avx512(P) BODY T512                                               \
static FC_AVX2 void NAME##_avx2(P) BODY T256                                                   \
static void NAME(int level, P) { if (level == 3) NAME##_avx512(A); else NAME##_avx2(A); }
#else
#define FC_CHANNEL_VARIANTS(NAME, P, A, BODY, T512, T256) static void NAME(int level, P) {}
#endif

#define FC_DWC_GEOM ptrdiff_t Cp, ptrdiff_t H, ptrdiff_t W, ptrdiff_t Ho, ptrdiff_t Wo,          \
    ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t sh, ptrdiff_t sw, ptrdiff_t ph, ptrdiff_t pw,          \
    ptrdiff_t dh, ptrdiff_t dw
#define FC_DWC_GEOM_A Cp, H, W, Ho, Wo, kh, kw, sh, sw, ph, pw, dh, dw
#define FC_DWC_FWD_P const float *xt, const float *wt, const float *bias, float *yt, FC_DWC_GEOM,  \
    ptrdiff_t oy0, ptrdiff_t oy1
#define FC_DWC_FWD_A xt, wt, bias, yt, FC_DWC_GEOM_A, oy0, oy1
#define FC_DWC_DX_P const float *dyt, const float *wt, const float *zero, float *dxt, FC_DWC_GEOM, \
    ptrdiff_t iy0, ptrdiff_t iy1
#define FC_DWC_DX_A dyt, wt, zero, dxt, FC_DWC_GEOM_A, iy0, iy1
#define FC_DWC_DW_P const float *xt, const float *dyt, const float *zero, float *part,            \
    int need_db, FC_DWC_GEOM, ptrdiff_t oy0, ptrdiff_t oy1
#define FC_DWC_DW_A xt, dyt, zero, part, need_db, FC_DWC_GEOM_A, oy0, oy1

FC_CHANNEL_VARIANTS(fc_dwc_fwd, FC_DWC_FWD_P, FC_DWC_FWD_A, FC_DWC_FWD_BODY, (fc_vf64), (fc_vf32))
FC_CHANNEL_VARIANTS(fc_dwc_dx, FC_DWC_DX_P, FC_DWC_DX_A, FC_DWC_DX_BODY, (fc_vf64), (fc_vf32))
FC_CHANNEL_VARIANTS(fc_dwc_dw, FC_DWC_DW_P, FC_DWC_DW_A, FC_DWC_DW_BODY, (fc_vf64), (fc_vf32))

#endif /* FC_DEPTHWISE_H */
