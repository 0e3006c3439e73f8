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

#include "_shallow.h"

typedef int fc_vi64 __attribute__((vector_size(64)));
typedef int fc_vi32 __attribute__((vector_size(32)));

/* mask[j] lane L = L − L mod G + j */
#define FC_GRP_MASKS(VI, VL)                                                                   \
    VI masks[16];                                                                              \
    for (int j_ = 0; j_ < G; j_++)                                                             \
        for (int l_ = 0; l_ < (int)(VL); l_++) masks[j_][l_] = l_ - l_ % (int)G + j_;

/* Output rows [oy0, oy1): yt from xt, wt ((taps · G) × Cp: tap-major, then j) and bias (Cp). */
#define FC_GRP_FWD_BODY(VT, VI)                                                                \
{                                                                                              \
    const ptrdiff_t VL = sizeof(VT) / sizeof(float);                                           \
    FC_GRP_MASKS(VI, VL)                                                                       \
    for (ptrdiff_t oy = oy0; oy < oy1; oy++)                                                   \
    for (ptrdiff_t ox = 0; ox < Wo; ox++) {                                                    \
        float *out = yt + (oy * Wo + ox) * Cp;                                                 \
        for (ptrdiff_t c = 0; c < Cp; c += VL) {                                               \
            VT a0 = FC_LD(VT, bias + c), a1 = {0}, a2 = {0}, a3 = {0};                      \
            for (ptrdiff_t ky = 0; ky < kh; ky++) {                                            \
                ptrdiff_t iy = oy * sh - ph + ky * dh;                                         \
                if (iy < 0 || iy >= H) continue;                                               \
                for (ptrdiff_t kx = 0; kx < kw; kx++) {                                        \
                    ptrdiff_t ix = ox * sw - pw + kx * dw;                                     \
                    if (ix < 0 || ix >= W) continue;                                           \
                    VT xv = FC_LD(VT, xt + (iy * W + ix) * Cp + c);                            \
                    const float *wp = wt + (ky * kw + kx) * G * Cp + c;                        \
                    ptrdiff_t j = 0;                                                           \
                    for (; j + 4 <= G; j += 4) {                                               \
                        a0 += FC_LD(VT, wp + j * Cp) * __builtin_shuffle(xv, masks[j]);        \
                        a1 += FC_LD(VT, wp + (j + 1) * Cp) * __builtin_shuffle(xv, masks[j + 1]); \
                        a2 += FC_LD(VT, wp + (j + 2) * Cp) * __builtin_shuffle(xv, masks[j + 2]); \
                        a3 += FC_LD(VT, wp + (j + 3) * Cp) * __builtin_shuffle(xv, masks[j + 3]); \
                    }                                                                          \
                    for (; j < G; j++)                                                         \
                        a0 += FC_LD(VT, wp + j * Cp) * __builtin_shuffle(xv, masks[j]);        \
                }                                                                              \
            }                                                                                  \
            FC_ST(VT, out + c, (a0 + a1) + (a2 + a3));                                         \
        }                                                                                      \
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

#define FC_GRP_GEOM ptrdiff_t G, ptrdiff_t Cp, ptrdiff_t H, ptrdiff_t W, ptrdiff_t Ho,          \
    ptrdiff_t Wo, ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t sh, ptrdiff_t sw, ptrdiff_t ph,          \
    ptrdiff_t pw, ptrdiff_t dh, ptrdiff_t dw
#define FC_GRP_ARGS_GEOM G, Cp, H, W, Ho, Wo, kh, kw, sh, sw, ph, pw, dh, dw

#if FC_X86
static FC_AVX512 void fc_grp_fwd_avx512(const float *xt, const float *wt, const float *bias, float *yt,
    FC_GRP_GEOM, ptrdiff_t oy0, ptrdiff_t oy1) FC_GRP_FWD_BODY(fc_vf64, fc_vi64)
static FC_AVX2 void fc_grp_fwd_avx2(const float *xt, const float *wt, const float *bias, float *yt,
    FC_GRP_GEOM, ptrdiff_t oy0, ptrdiff_t oy1) FC_GRP_FWD_BODY(fc_vf32, fc_vi32)
static FC_AVX512 void fc_grp_dx_avx512(const float *dyt, const float *wt, const float *zero, float *dxt,
    FC_GRP_GEOM, ptrdiff_t iy0, ptrdiff_t iy1) FC_GRP_DX_BODY(fc_vf64, fc_vi64)
static FC_AVX2 void fc_grp_dx_avx2(const float *dyt, const float *wt, const float *zero, float *dxt,
    FC_GRP_GEOM, ptrdiff_t iy0, ptrdiff_t iy1) FC_GRP_DX_BODY(fc_vf32, fc_vi32)
static FC_AVX512 void fc_grp_dw_avx512(const float *xt, const float *dyt, const float *zero, float *part,
    int need_db, FC_GRP_GEOM, ptrdiff_t oy0, ptrdiff_t oy1) FC_GRP_DW_BODY(fc_vf64, fc_vi64)
static FC_AVX2 void fc_grp_dw_avx2(const float *xt, const float *dyt, const float *zero, float *part,
    int need_db, FC_GRP_GEOM, ptrdiff_t oy0, ptrdiff_t oy1) FC_GRP_DW_BODY(fc_vf32, fc_vi32)

static void fc_grp_fwd(int level, const float *xt, const float *wt, const float *bias, float *yt,
                       FC_GRP_GEOM, ptrdiff_t oy0, ptrdiff_t oy1)
{
    if (level == 3) fc_grp_fwd_avx512(xt, wt, bias, yt, FC_GRP_ARGS_GEOM, oy0, oy1);
    else fc_grp_fwd_avx2(xt, wt, bias, yt, FC_GRP_ARGS_GEOM, oy0, oy1);
}
static void fc_grp_dx(int level, const float *dyt, const float *wt, const float *zero, float *dxt,
                      FC_GRP_GEOM, ptrdiff_t iy0, ptrdiff_t iy1)
{
    if (level == 3) fc_grp_dx_avx512(dyt, wt, zero, dxt, FC_GRP_ARGS_GEOM, iy0, iy1);
    else fc_grp_dx_avx2(dyt, wt, zero, dxt, FC_GRP_ARGS_GEOM, iy0, iy1);
}
static void fc_grp_dw(int level, const float *xt, const float *dyt, const float *zero, float *part,
                      int need_db, FC_GRP_GEOM, ptrdiff_t oy0, ptrdiff_t oy1)
{
    if (level == 3) fc_grp_dw_avx512(xt, dyt, zero, part, need_db, FC_GRP_ARGS_GEOM, oy0, oy1);
    else fc_grp_dw_avx2(xt, dyt, zero, part, need_db, FC_GRP_ARGS_GEOM, oy0, oy1);
}
#else  /* the Python side offers this path only where fc_ocvec_level() >= 2 (x86) */
static void fc_grp_fwd(int level, const float *xt, const float *wt, const float *bias, float *yt,
                       FC_GRP_GEOM, ptrdiff_t oy0, ptrdiff_t oy1) {}
static void fc_grp_dx(int level, const float *dyt, const float *wt, const float *zero, float *dxt,
                      FC_GRP_GEOM, ptrdiff_t iy0, ptrdiff_t iy1) {}
static void fc_grp_dw(int level, const float *xt, const float *dyt, const float *zero, float *part,
                      int need_db, FC_GRP_GEOM, ptrdiff_t oy0, ptrdiff_t oy1) {}
#endif

#endif /* FC_GROUPED_H */
