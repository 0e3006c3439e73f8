/* Channel-vectorized grouped convolution with G = C/groups = K/groups channels per group, G a
   power of two up to the vector width (ResNeXt's 4–16, ShuffleNet-style small groups), float32
   on AVX-512 or AVX2+FMA. The depthwise loops (_depthwise.h) are the case G = 1.

   Images are channel-minor (pixels × Cp); a vector of VL output channels covers VL/G whole
   groups, and output channel k reads input channels base(k) + j, j < G, base(k) = k − k mod G.
   So for each j the input vector is the loaded vector of the same channels permuted within
   groups (lane L takes lane base(L) + j: one vpermps), multiplied by the weights w[k, j, tap]
   laid out per (tap, j) as a vector over k. dX is the same with the roles of the channels
   swapped (lane c sums dY lanes base(c) + i against w[base(c) + i, c mod G, tap]) and dW sums
   dY · permuted x per (tap, j). Accumulators alternate over j so the multiply-adds of one tap
   form four independent chains. */
#ifndef FC_GROUPED_H
#define FC_GROUPED_H

#include "_depthwise.h"

typedef int fc_vi64 __attribute__((vector_size(64)));
typedef int fc_vi32 __attribute__((vector_size(32)));

/* mask[j] lane L = L − L mod G + j */
#define FC_GRP_MASKS(VI, VL)                                                                   \
    VI masks[16];                                                                              \
    for (int j_ = 0; j_ < G; j_++)                                                             \
        for (int l_ = 0; l_ < (int)(VL); l_++) masks[j_][l_] = l_ - l_ % (int)G + j_;

/* One output pixel's vector of channels c: a = bias + Σ taps, j of w · permuted x. */
#define FC_GRP_PIXEL(VT, OY, OX, OUT)                                                          \
{                                                                                              \
    VT a0 = FC_LD(VT, bias + c), a1 = {0}, a2 = {0}, a3 = {0};                                 \
    for (ptrdiff_t ky = 0; ky < kh; ky++) {                                                    \
        ptrdiff_t iy = (OY) * sh - ph + ky * dh;                                               \
        if (iy < 0 || iy >= H) continue;                                                       \
        for (ptrdiff_t kx = 0; kx < kw; kx++) {                                                \
            ptrdiff_t ix = (OX) * sw - pw + kx * dw;                                           \
            if (ix < 0 || ix >= W) continue;                                                   \
            VT xv = FC_LD(VT, xt + (iy * W + ix) * Cp + c);                                    \
            const float *wp = wt + (ky * kw + kx) * G * Cp + c;                                \
            ptrdiff_t j = 0;                                                                   \
            for (; j + 4 <= G; j += 4) {                                                       \
                a0 += FC_LD(VT, wp + j * Cp) * __builtin_shuffle(xv, masks[j]);                \
                a1 += FC_LD(VT, wp + (j + 1) * Cp) * __builtin_shuffle(xv, masks[j + 1]);      \
                a2 += FC_LD(VT, wp + (j + 2) * Cp) * __builtin_shuffle(xv, masks[j + 2]);      \
                a3 += FC_LD(VT, wp + (j + 3) * Cp) * __builtin_shuffle(xv, masks[j + 3]);      \
            }                                                                                  \
            for (; j < G; j++) a0 += FC_LD(VT, wp + j * Cp) * __builtin_shuffle(xv, masks[j]); \
        }                                                                                      \
    }                                                                                          \
    FC_ST(VT, (OUT) + c, (a0 + a1) + (a2 + a3));                                               \
}

/* Output rows [oy0, oy1): yt from xt, wt ((taps · G) × Cp: tap-major, then j) and bias (Cp).
   Tiles of 4 pixels along a row keep 4 independent sums and load each weight vector once for
   them (one pixel at a time, the G multiply-adds of a tap form one dependent chain); a tap
   whose 4 input pixels are not all inside the row, and the row's last pixels, go pixel by
   pixel. */
#define FC_GRP_FWD_BODY(VT, VI)                                                                \
{                                                                                              \
    const ptrdiff_t VL = sizeof(VT) / sizeof(float);                                           \
    FC_GRP_MASKS(VI, VL)                                                                       \
    for (ptrdiff_t oy = oy0; oy < oy1; oy++) {                                                 \
        ptrdiff_t ox = 0;                                                                      \
        for (; ox + 4 <= Wo; ox += 4)                                                          \
        for (ptrdiff_t c = 0; c < Cp; c += VL) {                                               \
            VT a0 = FC_LD(VT, bias + c), a1 = a0, a2 = a0, a3 = a0;                            \
            for (ptrdiff_t ky = 0; ky < kh; ky++) {                                            \
                ptrdiff_t iy = oy * sh - ph + ky * dh;                                         \
                if (iy < 0 || iy >= H) continue;                                               \
                for (ptrdiff_t kx = 0; kx < kw; kx++) {                                        \
                    ptrdiff_t ix0 = ox * sw - pw + kx * dw;                                    \
                    const float *wp = wt + (ky * kw + kx) * G * Cp + c;                        \
                    if (ix0 >= 0 && ix0 + 3 * sw < W) {                                        \
                        const float *xp = xt + (iy * W + ix0) * Cp + c;                        \
                        VT x0 = FC_LD(VT, xp), x1 = FC_LD(VT, xp + sw * Cp);                   \
                        VT x2 = FC_LD(VT, xp + 2 * sw * Cp), x3 = FC_LD(VT, xp + 3 * sw * Cp); \
                        for (ptrdiff_t j = 0; j < G; j++) {                                    \
                            VT wv = FC_LD(VT, wp + j * Cp);                                    \
                            a0 += wv * __builtin_shuffle(x0, masks[j]);                        \
                            a1 += wv * __builtin_shuffle(x1, masks[j]);                        \
                            a2 += wv * __builtin_shuffle(x2, masks[j]);                        \
                            a3 += wv * __builtin_shuffle(x3, masks[j]);                        \
                        }                                                                      \
                    } else {                                                                   \
                        for (ptrdiff_t q = 0; q < 4; q++) {                                    \
                            ptrdiff_t ix = ix0 + q * sw;                                       \
                            if (ix < 0 || ix >= W) continue;                                   \
                            VT xv = FC_LD(VT, xt + (iy * W + ix) * Cp + c), s = {0};           \
                            for (ptrdiff_t j = 0; j < G; j++)                                  \
                                s += FC_LD(VT, wp + j * Cp) * __builtin_shuffle(xv, masks[j]); \
                            if (q == 0) a0 += s; else if (q == 1) a1 += s;                     \
                            else if (q == 2) a2 += s; else a3 += s;                            \
                        }                                                                      \
                    }                                                                          \
                }                                                                              \
            }                                                                                  \
            float *out = yt + (oy * Wo + ox) * Cp + c;                                         \
            FC_ST(VT, out, a0); FC_ST(VT, out + Cp, a1);                                       \
            FC_ST(VT, out + 2 * Cp, a2); FC_ST(VT, out + 3 * Cp, a3);                          \
        }                                                                                      \
        for (; ox < Wo; ox++)                                                                  \
            for (ptrdiff_t c = 0; c < Cp; c += VL)                                             \
                FC_GRP_PIXEL(VT, oy, ox, yt + (oy * Wo + ox) * Cp)                             \
    }                                                                                          \
}

/* Input rows [iy0, iy1) of dX: dxt from dyt with wt ((taps · G) × Cp, the dX layout). */
#define FC_GRP_DX_BODY(VT, VI)                                                                 \
{                                                                                              \
    const ptrdiff_t VL = sizeof(VT) / sizeof(float);                                           \
    FC_GRP_MASKS(VI, VL)                                                                       \
    for (ptrdiff_t iy = iy0; iy < iy1; iy++)                                                   \
    for (ptrdiff_t ix = 0; ix < W; ix++) {                                                     \
        float *out = dxt + (iy * W + ix) * Cp;                                                 \
        for (ptrdiff_t c = 0; c < Cp; c += VL) {                                               \
            VT a0 = FC_LD(VT, zero), a1 = a0, a2 = a0, a3 = a0;                                \
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
                    VT gv = FC_LD(VT, dyt + (oy * Wo + ox) * Cp + c);                          \
                    const float *wp = wt + (ky * kw + kx) * G * Cp + c;                        \
                    ptrdiff_t i = 0;                                                           \
                    for (; i + 4 <= G; i += 4) {                                               \
                        a0 += FC_LD(VT, wp + i * Cp) * __builtin_shuffle(gv, masks[i]);        \
                        a1 += FC_LD(VT, wp + (i + 1) * Cp) * __builtin_shuffle(gv, masks[i + 1]); \
                        a2 += FC_LD(VT, wp + (i + 2) * Cp) * __builtin_shuffle(gv, masks[i + 2]); \
                        a3 += FC_LD(VT, wp + (i + 3) * Cp) * __builtin_shuffle(gv, masks[i + 3]); \
                    }                                                                          \
                    for (; i < G; i++)                                                         \
                        a0 += FC_LD(VT, wp + i * Cp) * __builtin_shuffle(gv, masks[i]);        \
                }                                                                              \
            }                                                                                  \
            FC_ST(VT, out + c, (a0 + a1) + (a2 + a3));                                         \
        }                                                                                      \
    }                                                                                          \
}

/* dW/db partials of output rows [oy0, oy1): part ((taps · G + 1) × Cp, the last row db). Per
   tap, j runs in steps of 4 (2 when G = 2), each pixel's dY and x vectors loaded once for them. */
#define FC_GRP_DW_BODY(VT, VI)                                                                 \
{                                                                                              \
    const ptrdiff_t VL = sizeof(VT) / sizeof(float);                                           \
    const ptrdiff_t JB = G >= 4 ? 4 : G;                                                       \
    FC_GRP_MASKS(VI, VL)                                                                       \
    for (ptrdiff_t c = 0; c < Cp; c += VL) {                                                   \
        for (ptrdiff_t ky = 0; ky < kh; ky++)                                                  \
        for (ptrdiff_t kx = 0; kx < kw; kx++)                                                  \
        for (ptrdiff_t j = 0; j < G; j += JB) {                                                \
            VT a0 = FC_LD(VT, zero), a1 = a0, a2 = a0, a3 = a0;                                \
            for (ptrdiff_t oy = oy0; oy < oy1; oy++) {                                         \
                ptrdiff_t iy = oy * sh - ph + ky * dh;                                         \
                if (iy < 0 || iy >= H) continue;                                               \
                for (ptrdiff_t ox = 0; ox < Wo; ox++) {                                        \
                    ptrdiff_t ix = ox * sw - pw + kx * dw;                                     \
                    if (ix < 0 || ix >= W) continue;                                           \
                    VT d = FC_LD(VT, dyt + (oy * Wo + ox) * Cp + c);                           \
                    VT xv = FC_LD(VT, xt + (iy * W + ix) * Cp + c);                            \
                    a0 += d * __builtin_shuffle(xv, masks[j]);                                 \
                    a1 += d * __builtin_shuffle(xv, masks[j + 1]);                             \
                    if (JB == 4) {                                                             \
                        a2 += d * __builtin_shuffle(xv, masks[j + 2]);                         \
                        a3 += d * __builtin_shuffle(xv, masks[j + 3]);                         \
                    }                                                                          \
                }                                                                              \
            }                                                                                  \
            float *dst = part + ((ky * kw + kx) * G + j) * Cp + c;                             \
            FC_ST(VT, dst, a0);                                                                \
            FC_ST(VT, dst + Cp, a1);                                                           \
            if (JB == 4) {                                                                     \
                FC_ST(VT, dst + 2 * Cp, a2);                                                   \
                FC_ST(VT, dst + 3 * Cp, a3);                                                   \
            }                                                                                  \
        }                                                                                      \
        if (need_db) {                                                                         \
            VT a0 = FC_LD(VT, zero);                                                           \
            for (ptrdiff_t p = oy0 * Wo; p < oy1 * Wo; p++) a0 += FC_LD(VT, dyt + p * Cp + c); \
            FC_ST(VT, part + kh * kw * G * Cp + c, a0);                                        \
        }                                                                                      \
    }                                                                                          \
}

#define FC_GRP_FWD_P ptrdiff_t G, FC_DWC_FWD_P
#define FC_GRP_FWD_A G, FC_DWC_FWD_A
#define FC_GRP_DX_P ptrdiff_t G, FC_DWC_DX_P
#define FC_GRP_DX_A G, FC_DWC_DX_A
#define FC_GRP_DW_P ptrdiff_t G, FC_DWC_DW_P
#define FC_GRP_DW_A G, FC_DWC_DW_A

FC_CHANNEL_VARIANTS(fc_grp_fwd, FC_GRP_FWD_P, FC_GRP_FWD_A, FC_GRP_FWD_BODY, (fc_vf64, fc_vi64), (fc_vf32, fc_vi32))
FC_CHANNEL_VARIANTS(fc_grp_dx, FC_GRP_DX_P, FC_GRP_DX_A, FC_GRP_DX_BODY, (fc_vf64, fc_vi64), (fc_vf32, fc_vi32))
FC_CHANNEL_VARIANTS(fc_grp_dw, FC_GRP_DW_P, FC_GRP_DW_A, FC_GRP_DW_BODY, (fc_vf64, fc_vi64), (fc_vf32, fc_vi32))

#endif /* FC_GROUPED_H */
