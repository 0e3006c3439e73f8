/* The compiled predictor's own loops (fastconv/_kernels/infer.pyx): activations and fused
 * epilogues, per-channel affine, broadcast arithmetic, pooling, normalization with computed
 * statistics, softmax, reductions, strided copies and resampling. float32 data; sums in double.
 *
 * Every function works on a range of "rows" or planes so the executor can split it among
 * threads; none allocates. Element loops are compiled for AVX-512, AVX2 and the baseline with
 * the CPU's best picked at load time (GCC target_clones), as in elementwise.pyx.
 * NaN propagates through every activation and pool, as in the eager ops. */
#ifndef FC_INFER_H
#define FC_INFER_H

#include <math.h>
#include <stddef.h>
#include <string.h>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__GLIBC__)
#define FC_INF_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define FC_INF_CLONES
#endif

/* activation codes (infer.pyx ACT_* mirror them) */
enum {
    FC_ACT_NONE = 0,
    FC_ACT_CLAMP = 1,     /* min(max(z, a0), a1): ReLU (0, inf), ReLU6 (0, 6), hardtanh */
    FC_ACT_LEAKY = 2,     /* z > 0 ? z : z·a0 */
    FC_ACT_ELU = 3,       /* z > 0 ? z : a0·expm1(z) */
    FC_ACT_SIGMOID = 4,
    FC_ACT_TANH = 5,
    FC_ACT_SILU = 6,      /* z·sigmoid(z) */
    FC_ACT_GELU = 7,      /* z·Φ(z) (erf form) */
    FC_ACT_GELU_TANH = 8, /* the tanh approximation */
    FC_ACT_HARDSWISH = 9, /* z·min(max(z + 3, 0), 6)/6 */
    FC_ACT_HARDSIGMOID = 10,
    FC_ACT_AFFINE = 11,   /* a0·z + a1 (scalar arithmetic) */
    FC_ACT_EXP = 12,
    FC_ACT_LOG = 13,
    FC_ACT_SQRT = 14,
    FC_ACT_ABS = 15,
    FC_ACT_POW = 16,      /* z^a0 */
    FC_ACT_RDIV = 17,     /* a0 / z */
    FC_ACT_RPOW = 18,     /* a0^z */
    FC_ACT_SOFTPLUS = 19, /* log1p(exp(a0·z))/a0, linear above a1 */
    FC_ACT_MISH = 20,
};

/* sigmoid as the eager op computes it: exp of −|z| never overflows */
static inline float fc_inf_sigmoid(float z) {
    float e = expf(-fabsf(z));
    return z >= 0 ? 1.0f / (1.0f + e) : e / (1.0f + e);
}

static inline float fc_inf_act1(float z, int act, float a0, float a1) {
    switch (act) {
    case FC_ACT_CLAMP: z = z < a0 ? a0 : z; return z > a1 ? a1 : z;
    case FC_ACT_LEAKY: return z > 0 ? z : z * a0;
    case FC_ACT_ELU: return z > 0 ? z : a0 * expm1f(z < 0 ? z : 0);
    case FC_ACT_SIGMOID: return fc_inf_sigmoid(z);
    case FC_ACT_TANH: return tanhf(z);
    case FC_ACT_SILU: return z / (1.0f + expf(-z));
    case FC_ACT_GELU: return (float)(0.5 * (double)z * (1.0 + erf((double)z * 0.70710678118654752440)));
    case FC_ACT_GELU_TANH: {
        float u = 0.79788456080286535588f * (z + 0.044715f * z * z * z);
        return z / (1.0f + expf(-2.0f * u));
    }
    case FC_ACT_HARDSWISH: { float t = z + 3.0f; t = t < 0 ? 0 : t; t = t > 6 ? 6 : t; return z * t / 6.0f; }
    case FC_ACT_HARDSIGMOID: { float t = z + 3.0f; t = t < 0 ? 0 : t; t = t > 6 ? 6 : t; return t / 6.0f; }
    case FC_ACT_AFFINE: return a0 * z + a1;
    case FC_ACT_EXP: return expf(z);
    case FC_ACT_LOG: return logf(z);
    case FC_ACT_SQRT: return sqrtf(z);
    case FC_ACT_ABS: return fabsf(z);
    case FC_ACT_POW: return powf(z, a0);
    case FC_ACT_RDIV: return a0 / z;
    case FC_ACT_RPOW: return powf(a0, z);
    case FC_ACT_SOFTPLUS: return a0 * z > a1 ? z : log1pf(expf(a0 * z)) / a0;
    case FC_ACT_MISH: return z * tanhf(z > 20 ? z : log1pf(expf(z)));
    default: return z;
    }
}

/* y[i] = act(x[i] (+ r[i])) for n elements; r may be NULL, y may be x. The clamp, leaky and
 * plain-add cases are branch-free loops the compiler vectorizes. */
FC_INF_CLONES static void fc_inf_act(const float *x, const float *r, float *y, ptrdiff_t n, int act,
                                     float a0, float a1) {
    ptrdiff_t i;
    if (act == FC_ACT_NONE) {
        if (r)
            for (i = 0; i < n; i++) y[i] = x[i] + r[i];
        else if (y != x)
            memcpy(y, x, (size_t)n * sizeof(float));
        return;
    }
    if (act == FC_ACT_CLAMP) {
        if (r)
            for (i = 0; i < n; i++) {
                float z = x[i] + r[i];
                z = z < a0 ? a0 : z;
                y[i] = z > a1 ? a1 : z;
            }
        else
            for (i = 0; i < n; i++) {
                float z = x[i];
                z = z < a0 ? a0 : z;
                y[i] = z > a1 ? a1 : z;
            }
        return;
    }
    if (act == FC_ACT_LEAKY) {
        if (r)
            for (i = 0; i < n; i++) { float z = x[i] + r[i]; y[i] = z > 0 ? z : z * a0; }
        else
            for (i = 0; i < n; i++) { float z = x[i]; y[i] = z > 0 ? z : z * a0; }
        return;
    }
    if (act == FC_ACT_AFFINE && !r) {
        for (i = 0; i < n; i++) y[i] = a0 * x[i] + a1;
        return;
    }
    for (i = 0; i < n; i++) y[i] = fc_inf_act1(r ? x[i] + r[i] : x[i], act, a0, a1);
}

/* rows × cols: y = act(x + bias[col] (+ r)) (bias NULL: act(x (+ r))), in one pass over each row
 * for the clamp (ReLU, ReLU6) and no activation, so that GEMM blocks' epilogues (channel-minor:
 * a bias per column) do not loop twice and call per row; linear layers with inner = 1 call it
 * per element. */
FC_INF_CLONES static void fc_inf_bias_cols(const float *x, const float *bias, const float *r, float *y,
                                           ptrdiff_t rows, ptrdiff_t cols, int act, float a0,
                                           float a1) {
    for (ptrdiff_t m = 0; m < rows; m++) {
        const float *xr = x + m * cols;
        float *yr = y + m * cols;
        const float *rr = r ? r + m * cols : NULL;
        ptrdiff_t k;
        if (!bias) {
            fc_inf_act(xr, rr, yr, cols, act, a0, a1);
        } else if (act == FC_ACT_CLAMP) {
            if (rr)
                for (k = 0; k < cols; k++) {
                    float z = xr[k] + bias[k] + rr[k];
                    z = z < a0 ? a0 : z;
                    yr[k] = z > a1 ? a1 : z;
                }
            else
                for (k = 0; k < cols; k++) {
                    float z = xr[k] + bias[k];
                    z = z < a0 ? a0 : z;
                    yr[k] = z > a1 ? a1 : z;
                }
        } else {
            if (rr)
                for (k = 0; k < cols; k++) yr[k] = xr[k] + bias[k] + rr[k];
            else
                for (k = 0; k < cols; k++) yr[k] = xr[k] + bias[k];
            if (act != FC_ACT_NONE) fc_inf_act(yr, NULL, yr, cols, act, a0, a1);
        }
    }
}

/* planes [p0, p1) of (N·C, S): y = act((x − m[c])·s[c] + t[c] (+ r)), c = plane % C: batch
 * norm's eval affine with the mean subtracted first, as the eager kernel rounds it */
FC_INF_CLONES static void fc_inf_channel_affine(const float *x, const float *m, const float *s,
                                                const float *t, const float *r, float *y,
                                                ptrdiff_t p0, ptrdiff_t p1, ptrdiff_t C, ptrdiff_t S,
                                                int act, float a0, float a1) {
    for (ptrdiff_t p = p0; p < p1; p++) {
        ptrdiff_t c = p % C;
        const float *xp = x + p * S;
        float *yp = y + p * S;
        float mc = m[c], sc = s[c], tc = t[c];
        if (r) {
            const float *rp = r + p * S;
            for (ptrdiff_t i = 0; i < S; i++) yp[i] = (xp[i] - mc) * sc + tc + rp[i];
        } else {
            for (ptrdiff_t i = 0; i < S; i++) yp[i] = (xp[i] - mc) * sc + tc;
        }
        if (act != FC_ACT_NONE) fc_inf_act(yp, NULL, yp, S, act, a0, a1);
    }
}

/* binary operators */
enum { FC_BIN_ADD = 0, FC_BIN_SUB = 1, FC_BIN_MUL = 2, FC_BIN_DIV = 3, FC_BIN_POW = 4,
       FC_BIN_MAX = 5, FC_BIN_MIN = 6 };

FC_INF_CLONES static void fc_inf_binary_row(int op, const float *a, ptrdiff_t sa, const float *b,
                                            ptrdiff_t sb, float *y, ptrdiff_t n) {
    ptrdiff_t i;
#define FC_BIN_LOOP(EXPR)                                                                       \
    if (sa == 1 && sb == 1) { for (i = 0; i < n; i++) { float u = a[i], v = b[i]; y[i] = EXPR; } } \
    else if (sa == 1) { float v = b[0]; for (i = 0; i < n; i++) { float u = a[i]; y[i] = EXPR; } } \
    else if (sb == 1) { float u = a[0]; for (i = 0; i < n; i++) { float v = b[i]; y[i] = EXPR; } } \
    else { float u = a[0], v = b[0]; float w = EXPR; for (i = 0; i < n; i++) y[i] = w; }
    switch (op) {
    case FC_BIN_ADD: FC_BIN_LOOP(u + v) break;
    case FC_BIN_SUB: FC_BIN_LOOP(u - v) break;
    case FC_BIN_MUL: FC_BIN_LOOP(u * v) break;
    case FC_BIN_DIV: FC_BIN_LOOP(u / v) break;
    case FC_BIN_POW: FC_BIN_LOOP(powf(u, v)) break;
    case FC_BIN_MAX: FC_BIN_LOOP((u > v || u != u) ? u : v) break;
    case FC_BIN_MIN: FC_BIN_LOOP((u < v || u != u) ? u : v) break;
    }
#undef FC_BIN_LOOP
}

/* Offsets through two stride sets of row `row` of the outer axes shape[0..nd-1) (row-major). */
static inline void fc_inf_row_offsets(ptrdiff_t row, const ptrdiff_t *shape, int nd, const ptrdiff_t *s1,
                                      const ptrdiff_t *s2, ptrdiff_t *o1, ptrdiff_t *o2) {
    ptrdiff_t rest = row, a = 0, b = 0;
    for (int d = nd - 2; d >= 0; d--) {
        ptrdiff_t i = rest % shape[d];
        rest /= shape[d];
        a += i * s1[d];
        b += i * s2[d];
    }
    *o1 = a;
    *o2 = b;
}

/* y (contiguous, shape[0..nd)) = a op b, a and b read through strides (0: broadcast); rows
 * [r0, r1) of the outer shape[0..nd-1) (nd ≤ 6; the last axis is the row) */
static void fc_inf_binary(int op, const float *a, const ptrdiff_t *sa, const float *b, const ptrdiff_t *sb,
                          float *y, const ptrdiff_t *shape, int nd, ptrdiff_t r0, ptrdiff_t r1) {
    ptrdiff_t n = shape[nd - 1];
    for (ptrdiff_t row = r0; row < r1; row++) {
        ptrdiff_t oa, ob;
        fc_inf_row_offsets(row, shape, nd, sa, sb, &oa, &ob);
        fc_inf_binary_row(op, a + oa, sa[nd - 1], b + ob, sb[nd - 1], y + row * n, n);
    }
}

/* dst[i] = src[Σ i_d·ss[d]] written at Σ i_d·ds[d] for i over shape (nd ≤ 6), rows [r0, r1)
 * of the outer axes; the last axis is copied with memcpy when both strides are 1 */
static void fc_inf_copy(const float *src, const ptrdiff_t *ss, float *dst, const ptrdiff_t *ds,
                        const ptrdiff_t *shape, int nd, ptrdiff_t r0, ptrdiff_t r1) {
    ptrdiff_t n = shape[nd - 1], s_last = ss[nd - 1], d_last = ds[nd - 1];
    for (ptrdiff_t row = r0; row < r1; row++) {
        ptrdiff_t os, od;
        fc_inf_row_offsets(row, shape, nd, ss, ds, &os, &od);
        const float *s = src + os;
        float *t = dst + od;
        if (s_last == 1 && d_last == 1)
            memcpy(t, s, (size_t)n * sizeof(float));
        else
            for (ptrdiff_t i = 0; i < n; i++) t[i * d_last] = s[i * s_last];
    }
}

FC_INF_CLONES static void fc_inf_fill(float *y, ptrdiff_t n, float v) {
    for (ptrdiff_t i = 0; i < n; i++) y[i] = v;
}

/* sum of n floats: 8 lanes over blocks of 64, block totals in double (as the eager kernels) */
FC_INF_CLONES static double fc_inf_sum(const float *p, ptrdiff_t n) {
    float s[8];
    double total = 0.0;
    ptrdiff_t i = 0;
    for (; i + 64 <= n; i += 64) {
        for (int k = 0; k < 8; k++) s[k] = 0;
        for (int j = 0; j < 64; j += 8)
            for (int k = 0; k < 8; k++) s[k] += p[i + j + k];
        total += (double)(((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7])));
    }
    for (; i < n; i++) total += p[i];
    return total;
}

static inline float fc_inf_nanmax(float m, float v);

/* ---- pooling ------------------------------------------------------------------------------
 * A window axis is a table of (base, first, end) per output index: taps base + i·dilation for
 * first ≤ i < end, all inside the input (computed once per plan, in Python). */

/* planes [p0, p1) of (P, H, W) → (P, Ho, Wo): window maxima, −inf for a window without taps;
 * a NaN wins and stays */
static void fc_inf_max_pool(const float *x, float *y, ptrdiff_t p0, ptrdiff_t p1, ptrdiff_t H,
                            ptrdiff_t W, ptrdiff_t Ho, ptrdiff_t Wo, const ptrdiff_t *rows,
                            const ptrdiff_t *cols, ptrdiff_t dh, ptrdiff_t dw) {
    for (ptrdiff_t p = p0; p < p1; p++) {
        const float *plane = x + p * H * W;
        float *out = y + p * Ho * Wo;
        for (ptrdiff_t oy = 0; oy < Ho; oy++) {
            ptrdiff_t rb = rows[3 * oy], r0 = rows[3 * oy + 1], r1 = rows[3 * oy + 2];
            for (ptrdiff_t ox = 0; ox < Wo; ox++) {
                ptrdiff_t cb = cols[3 * ox], c0 = cols[3 * ox + 1], c1 = cols[3 * ox + 2];
                float best = -INFINITY;
                for (ptrdiff_t i = r0; i < r1; i++) {
                    const float *row = plane + (rb + i * dh) * W + cb;
                    for (ptrdiff_t j = c0; j < c1; j++) {
                        best = fc_inf_nanmax(best, row[j * dw]);
                    }
                }
                out[oy * Wo + ox] = best;
            }
        }
    }
}

/* ---- max pooling with one window shape: explicit AVX-512 / AVX2 code --------------------------
 * GCC leaves these loops scalar (rows of 7–112 outputs are shorter than its vector loops pay
 * for, and the NaN-propagating select defeats it), so they are written with intrinsics and a
 * masked tail, picked at run time. nanmax(m, v) = v when v > m or v is NaN, and keeps a NaN m. */
#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define FC_INF_X86 1
#endif

static inline float fc_inf_nanmax(float m, float v) { return ((v > m) | (v != v)) && (m == m) ? v : m; }

static int fc_inf_isa(void) {
    static int level = -1;
    if (level < 0) {
#ifdef FC_INF_X86
        __builtin_cpu_init();
        level = __builtin_cpu_supports("avx512f") ? 3
              : (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) ? 2 : 1;
#else
        level = 1;
#endif
    }
    return level;
}

#ifdef FC_INF_X86
__attribute__((target("avx512f"))) static inline __m512 fc_nanmax16(__m512 m, __m512 v) {
    __mmask16 take = _mm512_cmp_ps_mask(v, m, _CMP_NLE_UQ) & _mm512_cmp_ps_mask(m, m, _CMP_ORD_Q);
    return _mm512_mask_mov_ps(m, take, v);
}

__attribute__((target("avx2,fma"))) static inline __m256 fc_nanmax8(__m256 m, __m256 v) {
    __m256 take = _mm256_and_ps(_mm256_cmp_ps(v, m, _CMP_NLE_UQ), _mm256_cmp_ps(m, m, _CMP_ORD_Q));
    return _mm256_blendv_ps(m, v, take);
}

static inline __mmask16 fc_mask16(ptrdiff_t n) { return n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1); }

/* b[c] = nanmax(b[c], src[c]) (or = src[c] when first) for c < n */
__attribute__((target("avx512f"))) static void fc_rowmax_512(float *b, const float *src, ptrdiff_t n, int first) {
    for (ptrdiff_t c = 0; c < n; c += 16) {
        __mmask16 k = fc_mask16(n - c);
        __m512 v = _mm512_maskz_loadu_ps(k, src + c);
        _mm512_mask_storeu_ps(b + c, k, first ? v : fc_nanmax16(_mm512_maskz_loadu_ps(k, b + c), v));
    }
}

/* out[ox] = nanmax over j < kw of buf[ox·sw + j·dw], sw ∈ {1, 2} vectorized */
__attribute__((target("avx512f"))) static void fc_colmax_512(const float *buf, float *out, ptrdiff_t Wo, ptrdiff_t kw,
                                                            ptrdiff_t sw, ptrdiff_t dw) {
    const __m512i ev = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    for (ptrdiff_t ox = 0; ox < Wo; ox += 16) {
        ptrdiff_t n = Wo - ox < 16 ? Wo - ox : 16;
        __mmask16 k = fc_mask16(n);
        __m512 m = _mm512_setzero_ps();
        for (ptrdiff_t j = 0; j < kw; j++) {
            const float *src = buf + ox * sw + j * dw;
            __m512 v;
            if (sw == 1) {
                v = _mm512_maskz_loadu_ps(k, src);
            } else {  /* stride 2: the even elements of 2n values */
                __m512 lo = _mm512_maskz_loadu_ps(fc_mask16(2 * n - 1), src);
                __m512 hi = _mm512_maskz_loadu_ps(n > 8 ? fc_mask16(2 * n - 17) : 0, src + 16);
                v = _mm512_permutex2var_ps(lo, ev, hi);
            }
            m = j ? fc_nanmax16(m, v) : v;
        }
        _mm512_mask_storeu_ps(out + ox, k, m);
    }
}

__attribute__((target("avx2,fma"))) static void fc_rowmax_256(float *b, const float *src, ptrdiff_t n, int first) {
    ptrdiff_t c = 0;
    for (; c + 8 <= n; c += 8) {
        __m256 v = _mm256_loadu_ps(src + c);
        _mm256_storeu_ps(b + c, first ? v : fc_nanmax8(_mm256_loadu_ps(b + c), v));
    }
    for (; c < n; c++) b[c] = first ? src[c] : fc_inf_nanmax(b[c], src[c]);
}
#endif

static void fc_inf_rowmax(int isa, float *b, const float *src, ptrdiff_t n, int first) {
#ifdef FC_INF_X86
    if (isa == 3) { fc_rowmax_512(b, src, n, first); return; }
    if (isa == 2) { fc_rowmax_256(b, src, n, first); return; }
#endif
    for (ptrdiff_t c = 0; c < n; c++) b[c] = first ? src[c] : fc_inf_nanmax(b[c], src[c]);
}

static void fc_inf_colmax(int isa, const float *buf, float *out, ptrdiff_t Wo, ptrdiff_t kw, ptrdiff_t sw,
                          ptrdiff_t dw) {
#ifdef FC_INF_X86
    if (isa == 3 && (sw == 1 || sw == 2)) { fc_colmax_512(buf, out, Wo, kw, sw, dw); return; }
#endif
    for (ptrdiff_t ox = 0; ox < Wo; ox++) {
        float m = buf[ox * sw];
        for (ptrdiff_t j = 1; j < kw; j++) m = fc_inf_nanmax(m, buf[ox * sw + j * dw]);
        out[ox] = m;
    }
}

/* max pooling with one window shape (kernel kh×kw, stride, padding, dilation): per output row
 * the maxima down its window's rows into buf (the padded row: −inf outside the image, Wp =
 * (Wo − 1)·sw + (kw − 1)·dw + 1 elements), then along each window of buf; rows come from the
 * (base, first, end) table of fc_inf_max_pool. With no padding, the rows are maxed straight
 * from the image when a window spans one row (kh = 1) and into buf otherwise. */
static void fc_inf_max_pool_sep(const float *x, float *y, ptrdiff_t p0, ptrdiff_t p1, ptrdiff_t H, ptrdiff_t W,
                                ptrdiff_t Ho, ptrdiff_t Wo, const ptrdiff_t *rows, ptrdiff_t dh, ptrdiff_t kw,
                                ptrdiff_t sw, ptrdiff_t pw, ptrdiff_t dw, float *buf) {
    int isa = fc_inf_isa();
    ptrdiff_t Wp = (Wo - 1) * sw + (kw - 1) * dw + 1;
    ptrdiff_t n = W < Wp - pw ? W : Wp - pw;
    for (ptrdiff_t p = p0; p < p1; p++) {
        const float *plane = x + p * H * W;
        for (ptrdiff_t oy = 0; oy < Ho; oy++) {
            ptrdiff_t rb = rows[3 * oy], r0 = rows[3 * oy + 1], r1 = rows[3 * oy + 2];
            float *out = y + (p * Ho + oy) * Wo;
            if (r0 >= r1 || n <= 0) {
                for (ptrdiff_t ox = 0; ox < Wo; ox++) out[ox] = -INFINITY;
                continue;
            }
            for (ptrdiff_t i = 0; i < pw; i++) buf[i] = -INFINITY;
            for (ptrdiff_t i = pw + n; i < Wp; i++) buf[i] = -INFINITY;
            for (ptrdiff_t r = r0; r < r1; r++)
                fc_inf_rowmax(isa, buf + pw, plane + (rb + r * dh) * W, n, r == r0);
            fc_inf_colmax(isa, buf, out, Wo, kw, sw, dw);
        }
    }
}

#ifdef FC_INF_X86
/* 16 outputs of a 2×2/2 window row from input rows a and b (n ≤ 16 outputs) */
__attribute__((target("avx512f"))) static void fc_pool2x2_512(const float *a, const float *b, float *o, ptrdiff_t Wo) {
    const __m512i ev = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i od = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    for (ptrdiff_t ox = 0; ox < Wo; ox += 16) {
        ptrdiff_t n = Wo - ox < 16 ? Wo - ox : 16;
        __mmask16 m0 = fc_mask16(2 * n), m1 = n > 8 ? fc_mask16(2 * n - 16) : 0;
        __m512 v0 = fc_nanmax16(_mm512_maskz_loadu_ps(m0, a + 2 * ox), _mm512_maskz_loadu_ps(m0, b + 2 * ox));
        __m512 v1 = fc_nanmax16(_mm512_maskz_loadu_ps(m1, a + 2 * ox + 16),
                                _mm512_maskz_loadu_ps(m1, b + 2 * ox + 16));
        __m512 r = fc_nanmax16(_mm512_permutex2var_ps(v0, ev, v1), _mm512_permutex2var_ps(v0, od, v1));
        _mm512_mask_storeu_ps(o + ox, fc_mask16(n), r);
    }
}

/* The lanes of fc_pool2x2_plane512's permutes for Wo <= 8 outputs a row: ev[l] and od[l] the
   even and odd input columns of output l (lanes [Wo, 2Wo): the second row pair's, from 16 on). */
static void fc_pool2x2_lanes(ptrdiff_t Wo, int *ev, int *od) {
    for (int l = 0; l < 16; l++) {
        int pick = l < Wo ? 2 * l : 16 + 2 * (l - (int)Wo);
        ev[l] = pick < 32 ? pick : 0;
        od[l] = pick + 1 < 32 ? pick + 1 : 0;
    }
}

/* A narrow plane (Wo <= 8): two output rows a vector, from the row pairs (a, a + W) and
   (a + 2W, a + 3W), whose outputs are contiguous in y: lanes [0, Wo) take the even/odd columns of
   the first pair, lanes [Wo, 2Wo) those of the second (ev, od from fc_pool2x2_lanes); an odd last
   row as fc_pool2x2_512 does. */
__attribute__((target("avx512f"))) static void fc_pool2x2_plane512(const float *x, ptrdiff_t W, ptrdiff_t Ho,
                                                                  ptrdiff_t Wo, const int *ev, const int *od,
                                                                  float *y) {
    const __m512i e = _mm512_loadu_si512(ev), d = _mm512_loadu_si512(od);
    const __mmask16 m = fc_mask16(2 * Wo);
    ptrdiff_t oy = 0;
    for (; oy + 1 < Ho; oy += 2) {
        const float *a = x + 2 * oy * W;
        __m512 v0 = fc_nanmax16(_mm512_maskz_loadu_ps(m, a), _mm512_maskz_loadu_ps(m, a + W));
        __m512 v1 = fc_nanmax16(_mm512_maskz_loadu_ps(m, a + 2 * W), _mm512_maskz_loadu_ps(m, a + 3 * W));
        __m512 r = fc_nanmax16(_mm512_permutex2var_ps(v0, e, v1), _mm512_permutex2var_ps(v0, d, v1));
        _mm512_mask_storeu_ps(y + oy * Wo, m, r);
    }
    if (oy < Ho)
        fc_pool2x2_512(x + 2 * oy * W, x + (2 * oy + 1) * W, y + oy * Wo, Wo);
}

__attribute__((target("avx2,fma"))) static void fc_pool2x2_256(const float *a, const float *b, float *o, ptrdiff_t Wo) {
    ptrdiff_t ox = 0;
    for (; ox + 8 <= Wo; ox += 8) {
        __m256 v0 = fc_nanmax8(_mm256_loadu_ps(a + 2 * ox), _mm256_loadu_ps(b + 2 * ox));
        __m256 v1 = fc_nanmax8(_mm256_loadu_ps(a + 2 * ox + 8), _mm256_loadu_ps(b + 2 * ox + 8));
        /* even/odd lanes of (v0, v1): shuffle within 128-bit halves, then order the 64-bit pairs */
        __m256 e = _mm256_shuffle_ps(v0, v1, _MM_SHUFFLE(2, 0, 2, 0));
        __m256 d = _mm256_shuffle_ps(v0, v1, _MM_SHUFFLE(3, 1, 3, 1));
        __m256 r = fc_nanmax8(e, d);
        r = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(r), _MM_SHUFFLE(3, 1, 2, 0)));
        _mm256_storeu_ps(o + ox, r);
    }
    for (; ox < Wo; ox++)
        o[ox] = fc_inf_nanmax(fc_inf_nanmax(a[2 * ox], a[2 * ox + 1]), fc_inf_nanmax(b[2 * ox], b[2 * ox + 1]));
}
#endif

/* 2×2 windows at stride 2 inside the image (the common case): both rows and the pairs in one pass */
static void fc_inf_max_pool_2x2(const float *x, float *y, ptrdiff_t p0, ptrdiff_t p1, ptrdiff_t H,
                                ptrdiff_t W, ptrdiff_t Ho, ptrdiff_t Wo, float *buf) {
    int isa = fc_inf_isa();
    (void)buf;
#ifdef FC_INF_X86
    int ev[16], od[16];
    if (isa == 3 && Wo <= 8) fc_pool2x2_lanes(Wo, ev, od);  /* once for all planes */
#endif
    for (ptrdiff_t p = p0; p < p1; p++) {
#ifdef FC_INF_X86
        if (isa == 3 && Wo <= 8) { fc_pool2x2_plane512(x + p * H * W, W, Ho, Wo, ev, od, y + p * Ho * Wo); continue; }
#endif
        for (ptrdiff_t oy = 0; oy < Ho; oy++) {
            const float *a = x + (p * H + 2 * oy) * W, *b = a + W;
            float *o = y + (p * Ho + oy) * Wo;
#ifdef FC_INF_X86
            if (isa == 3) { fc_pool2x2_512(a, b, o, Wo); continue; }
            if (isa == 2) { fc_pool2x2_256(a, b, o, Wo); continue; }
#endif
            for (ptrdiff_t ox = 0; ox < Wo; ox++)
                o[ox] = fc_inf_nanmax(fc_inf_nanmax(a[2 * ox], a[2 * ox + 1]), fc_inf_nanmax(b[2 * ox], b[2 * ox + 1]));
        }
    }
}

/* average pooling with one window shape: window sums down the rows into buf (double, 0 outside
 * the image), then along each window, times the divisor's factors rs[oy]·cs[ox] */
FC_INF_CLONES static void fc_inf_sum_rows(const float *plane, ptrdiff_t W, const ptrdiff_t *row, double *buf,
                                          ptrdiff_t Wp, ptrdiff_t pw) {
    ptrdiff_t rb = row[0], r0 = row[1], r1 = row[2];
    ptrdiff_t n = W < Wp - pw ? W : Wp - pw;
    for (ptrdiff_t i = 0; i < Wp; i++) buf[i] = 0;
    double *b = buf + pw;
    for (ptrdiff_t r = r0; r < r1; r++) {
        const float *src = plane + (rb + r) * W;
        for (ptrdiff_t c = 0; c < n; c++) b[c] += src[c];
    }
}

static void fc_inf_avg_pool_sep(const float *x, float *y, ptrdiff_t p0, ptrdiff_t p1, ptrdiff_t H, ptrdiff_t W,
                                ptrdiff_t Ho, ptrdiff_t Wo, const ptrdiff_t *rows, const double *rs,
                                const double *cs, ptrdiff_t kw, ptrdiff_t sw, ptrdiff_t pw, double *buf) {
    ptrdiff_t Wp = (Wo - 1) * sw + kw;
    for (ptrdiff_t p = p0; p < p1; p++)
        for (ptrdiff_t oy = 0; oy < Ho; oy++) {
            fc_inf_sum_rows(x + p * H * W, W, rows + 3 * oy, buf, Wp, pw);
            float *out = y + (p * Ho + oy) * Wo;
            for (ptrdiff_t ox = 0; ox < Wo; ox++) {
                double acc = 0;
                for (ptrdiff_t j = 0; j < kw; j++) acc += buf[ox * sw + j];
                out[ox] = (float)(acc * rs[oy] * cs[ox]);
            }
        }
}

/* planes [p0, p1): window sums (double) times rs[oy]·cs[ox] (the divisor's factors) */
static void fc_inf_avg_pool(const float *x, float *y, ptrdiff_t p0, ptrdiff_t p1, ptrdiff_t H,
                            ptrdiff_t W, ptrdiff_t Ho, ptrdiff_t Wo, const ptrdiff_t *rows,
                            const ptrdiff_t *cols, const double *rs, const double *cs) {
    for (ptrdiff_t p = p0; p < p1; p++) {
        const float *plane = x + p * H * W;
        float *out = y + p * Ho * Wo;
        for (ptrdiff_t oy = 0; oy < Ho; oy++) {
            ptrdiff_t rb = rows[3 * oy], r0 = rows[3 * oy + 1], r1 = rows[3 * oy + 2];
            for (ptrdiff_t ox = 0; ox < Wo; ox++) {
                ptrdiff_t cb = cols[3 * ox], c0 = cols[3 * ox + 1], c1 = cols[3 * ox + 2];
                double acc = 0;
                for (ptrdiff_t i = r0; i < r1; i++) {
                    const float *row = plane + (rb + i) * W + cb;
                    for (ptrdiff_t j = c0; j < c1; j++) acc += row[j];
                }
                out[oy * Wo + ox] = (float)(acc * rs[oy] * cs[ox]);
            }
        }
    }
}

/* planes [p0, p1) of (P, S) → (P): means */
static void fc_inf_plane_mean(const float *x, float *y, ptrdiff_t p0, ptrdiff_t p1, ptrdiff_t S) {
    for (ptrdiff_t p = p0; p < p1; p++) y[p] = S ? (float)(fc_inf_sum(x + p * S, S) / (double)S) : 0.0f;
}

/* ---- normalization with computed statistics -------------------------------------------------
 * x as (A, B, L): group g holds rows [g·cpg, (g+1)·cpg) of every a; affine channel of row b is
 * b % channels (or per l when elementwise). Groups [g0, g1): mean and variance in double
 * (two passes), then y = (x − mean)·rstd·w + b. */
static void fc_inf_normalize(const float *x, float *y, const float *w, const float *bias,
                             ptrdiff_t A, ptrdiff_t B, ptrdiff_t L, ptrdiff_t cpg, ptrdiff_t channels,
                             int elementwise, double eps, ptrdiff_t g0, ptrdiff_t g1) {
    for (ptrdiff_t g = g0; g < g1; g++) {
        double sum = 0, sq = 0, count = (double)(A * cpg * L);
        for (ptrdiff_t a = 0; a < A; a++)
            for (ptrdiff_t b = g * cpg; b < (g + 1) * cpg; b++) sum += fc_inf_sum(x + (a * B + b) * L, L);
        double mean = count > 0 ? sum / count : 0;
        for (ptrdiff_t a = 0; a < A; a++)
            for (ptrdiff_t b = g * cpg; b < (g + 1) * cpg; b++) {
                const float *xr = x + (a * B + b) * L;
                for (ptrdiff_t l = 0; l < L; l++) { double d = xr[l] - mean; sq += d * d; }
            }
        double rstd = 1.0 / sqrt((count > 0 ? sq / count : 0) + eps);
        for (ptrdiff_t a = 0; a < A; a++)
            for (ptrdiff_t b = g * cpg; b < (g + 1) * cpg; b++) {
                const float *xr = x + (a * B + b) * L;
                float *yr = y + (a * B + b) * L;
                if (elementwise) {
                    for (ptrdiff_t l = 0; l < L; l++)
                        yr[l] = (float)(((double)xr[l] - mean) * rstd * (w ? w[l] : 1.0f) + (bias ? bias[l] : 0.0f));
                } else {
                    ptrdiff_t c = b % channels;
                    double sc = rstd * (w ? w[c] : 1.0f), sh = bias ? bias[c] : 0.0f;
                    for (ptrdiff_t l = 0; l < L; l++) yr[l] = (float)(((double)xr[l] - mean) * sc + sh);
                }
            }
    }
}

/* ---- softmax and reductions over the middle axis of (outer, R, inner) ------------------------ */

static void fc_inf_softmax(const float *x, float *y, ptrdiff_t o0, ptrdiff_t o1, ptrdiff_t R,
                           ptrdiff_t inner, int log_form) {
    for (ptrdiff_t o = o0; o < o1; o++)
        for (ptrdiff_t q = 0; q < inner; q++) {
            const float *xs = x + o * R * inner + q;
            float *ys = y + o * R * inner + q;
            float mx = -INFINITY;
            for (ptrdiff_t r = 0; r < R; r++) { float v = xs[r * inner]; if (v > mx || v != v) mx = v; }
            double total = 0;
            for (ptrdiff_t r = 0; r < R; r++) total += expf(xs[r * inner] - mx);
            if (log_form) {
                float lt = (float)log(total);
                for (ptrdiff_t r = 0; r < R; r++) ys[r * inner] = xs[r * inner] - mx - lt;
            } else {
                for (ptrdiff_t r = 0; r < R; r++) ys[r * inner] = (float)(expf(xs[r * inner] - mx) / total);
            }
        }
}

enum { FC_RED_SUM = 0, FC_RED_MEAN = 1, FC_RED_MAX = 2, FC_RED_MIN = 3 };

static void fc_inf_reduce(int op, const float *x, float *y, ptrdiff_t o0, ptrdiff_t o1, ptrdiff_t R,
                          ptrdiff_t inner) {
    for (ptrdiff_t o = o0; o < o1; o++) {
        if (inner == 1 && (op == FC_RED_SUM || op == FC_RED_MEAN)) {
            double t = fc_inf_sum(x + o * R, R);
            y[o] = (float)(op == FC_RED_MEAN ? (R ? t / R : NAN) : t);
            continue;
        }
        for (ptrdiff_t q = 0; q < inner; q++) {
            const float *xs = x + o * R * inner + q;
            if (op == FC_RED_SUM || op == FC_RED_MEAN) {
                double t = 0;
                for (ptrdiff_t r = 0; r < R; r++) t += xs[r * inner];
                y[o * inner + q] = (float)(op == FC_RED_MEAN ? (R ? t / R : NAN) : t);
            } else {
                float best = xs[0];
                for (ptrdiff_t r = 1; r < R; r++) {
                    float v = xs[r * inner];
                    if (best != best) break;
                    if (v != v || (op == FC_RED_MAX ? v > best : v < best)) best = v;
                }
                y[o * inner + q] = best;
            }
        }
    }
}

/* ---- resampling: planes [p0, p1) of (P, H, W) → (P, Ho, Wo) ---------------------------------- */

static void fc_inf_nearest(const float *x, float *y, ptrdiff_t p0, ptrdiff_t p1, ptrdiff_t H, ptrdiff_t W,
                           ptrdiff_t Ho, ptrdiff_t Wo, const ptrdiff_t *ri, const ptrdiff_t *ci) {
    for (ptrdiff_t p = p0; p < p1; p++)
        for (ptrdiff_t oy = 0; oy < Ho; oy++) {
            const float *row = x + (p * H + ri[oy]) * W;
            float *out = y + (p * Ho + oy) * Wo;
            for (ptrdiff_t ox = 0; ox < Wo; ox++) out[ox] = row[ci[ox]];
        }
}

/* (bi)linear: per output row r0/r1 source rows with weights rl0/rl1, per column likewise;
 * y = rl0·(cl0·x[r0,c0] + cl1·x[r0,c1]) + rl1·(cl0·x[r1,c0] + cl1·x[r1,c1]) in float32 */
static void fc_inf_linear2d(const float *x, float *y, ptrdiff_t p0, ptrdiff_t p1, ptrdiff_t H, ptrdiff_t W,
                            ptrdiff_t Ho, ptrdiff_t Wo, const ptrdiff_t *ri0, const ptrdiff_t *ri1,
                            const float *rl0, const float *rl1, const ptrdiff_t *ci0, const ptrdiff_t *ci1,
                            const float *cl0, const float *cl1) {
    for (ptrdiff_t p = p0; p < p1; p++)
        for (ptrdiff_t oy = 0; oy < Ho; oy++) {
            const float *a = x + (p * H + ri0[oy]) * W;
            const float *b = x + (p * H + ri1[oy]) * W;
            float wa = rl0[oy], wb = rl1[oy];
            float *out = y + (p * Ho + oy) * Wo;
            for (ptrdiff_t ox = 0; ox < Wo; ox++) {
                float top = a[ci0[ox]] * cl0[ox] + a[ci1[ox]] * cl1[ox];
                float bot = b[ci0[ox]] * cl0[ox] + b[ci1[ox]] * cl1[ox];
                out[ox] = top * wa + bot * wb;
            }
        }
}

#endif
