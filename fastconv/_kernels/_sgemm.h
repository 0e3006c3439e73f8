/* fastconv's own single-precision GEMM for CPUs with AVX-512 or AVX2+FMA (single-threaded;
   callers split work). The variant is picked at run time (__builtin_cpu_supports): one build
   runs on any x86-64. The AVX2 micro-kernels (below the AVX-512 ones) use the same packed
   layouts; see their comment for why and what they measured.

   Why: the BLAS the kernels reach through scipy (OpenBLAS) may run 256-bit kernels on an AVX-512
   machine (this project's reference machine pins OPENBLAS_CORETYPE=Haswell), which leaves half
   the FMA width unused; PyTorch's oneDNN does not. This is the classic packed GEMM (Goto & van de
   Geijn 2008, the BLIS loop order): B is packed into KC x NR column panels that stay in L1 while
   an MC x KC block of A, packed into MR-row panels, stays in L2; a 12 x 32 register-blocked
   micro-kernel (24 zmm accumulators) does the multiply-adds. Row-major throughout, the same
   contract as fastconv's BLAS wrapper (_blas.pxd gemm):

       C (m x n, row stride ldc) = alpha * op(A) * op(B) + beta * C
       op(A) is m x k: A stored m x k (row stride lda), or k x m with trans_a
       op(B) is k x n: B stored k x n (row stride ldb), or n x k with trans_b

   fc_sgemm returns 1 when it computed C, 0 when the caller must use BLAS instead (neither
   AVX-512 nor AVX2+FMA, a shape too narrow for 32-wide panels, or no memory for the packing
   buffers). Every load and
   store stays inside the m x k / k x n / m x n regions the arguments describe: partial panels
   are zero-padded in the packed copies and partial tiles are written with masked stores. */
#ifndef FASTCONV_SGEMM_H
#define FASTCONV_SGEMM_H

#include <stddef.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#include <immintrin.h>
#define FC_SGEMM_X86 1
#else
#define FC_SGEMM_X86 0
#endif

#define FC_SGEMM_MR 12   /* rows of a register tile (broadcast side) */
#define FC_SGEMM_NR 32   /* columns of a register tile: two 16-float zmm vectors */
#define FC_SGEMM_KC 256  /* depth of a packed block: a KC x NR panel of B is 32 KiB, in L1 */
#define FC_SGEMM_MC 192  /* rows of the packed A block: MC x KC floats = 192 KiB, in L2 */
#define FC_SGEMM_NC 4096 /* columns of the packed B block: KC x NC floats = 4 MiB, in L3 */

/* Below these op(B) columns / op(A) rows the 12 x 32 tiles are mostly padding; BLAS does better. */
#define FC_SGEMM_MIN_N 16
#define FC_SGEMM_MIN_M 4

/* Which micro-kernels this CPU runs (fc_sgemm_available()): AVX-512, AVX2 + FMA, or 0 = BLAS. */
#define FC_SGEMM_AVX512 2
#define FC_SGEMM_AVX2 1

/* *buf made to hold at least ``floats`` floats (64-byte aligned, grown on demand and never shrunk;
   *have its size): the per-thread buffers below. NULL when out of memory (*buf unchanged). */
static float *fc_sgemm_grow(float **buf, size_t *have, size_t floats)
{
    void *p = NULL;
    if (*have < floats) {
        if (posix_memalign(&p, 64, sizeof(float) * floats) != 0) return NULL;
        free(*buf);
        *buf = (float *)p;
        *have = floats;
    }
    return *buf;
}

/* A calling thread's scratch of at least ``floats`` floats (kept, like the packing buffers): the
   staging block of a product written in another layout. NULL when out of memory. */
static __thread float *fc_sgemm_scratch_buf = NULL;
static __thread size_t fc_sgemm_scratch_floats = 0;

static float *fc_sgemm_scratch(size_t floats)
{
    return fc_sgemm_grow(&fc_sgemm_scratch_buf, &fc_sgemm_scratch_floats, floats);
}

#if FC_SGEMM_X86

#define FC_SGEMM_TARGET __attribute__((target("avx512f")))

/* Per-thread packing buffers, grown on demand and kept for the thread's lifetime (OpenMP
   worker threads persist): at most MC*KC + KC*NC floats = 4.2 MiB per thread and module. */
static __thread float *fc_sgemm_packed_a = NULL;
static __thread size_t fc_sgemm_packed_a_floats = 0;
static __thread float *fc_sgemm_packed_b = NULL;
static __thread size_t fc_sgemm_packed_b_floats = 0;

static int fc_sgemm_buffers(size_t b_floats)
{
    return fc_sgemm_grow(&fc_sgemm_packed_a, &fc_sgemm_packed_a_floats, (size_t)FC_SGEMM_MC * FC_SGEMM_KC) != NULL
           && (b_floats == 0 || fc_sgemm_grow(&fc_sgemm_packed_b, &fc_sgemm_packed_b_floats, b_floats) != NULL);
}

static int fc_sgemm_cpu_level = -1;

/* The CPU's level, lowered by FASTCONV_SGEMM_ISA=avx2 or =blas (never raised): the tests run the
   AVX2 kernels and the BLAS fallback on AVX-512 machines through it. */
static int fc_sgemm_supported(void)
{
    if (fc_sgemm_cpu_level < 0) {
        const char *cap = getenv("FASTCONV_SGEMM_ISA");
        int level;
        __builtin_cpu_init();
        if (__builtin_cpu_supports("avx512f"))
            level = FC_SGEMM_AVX512;
        else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
            level = FC_SGEMM_AVX2;
        else
            level = 0;
        if (cap != NULL && strcmp(cap, "avx2") == 0 && level > FC_SGEMM_AVX2)
            level = FC_SGEMM_AVX2;
        else if (cap != NULL && strcmp(cap, "blas") == 0)
            level = 0;
        fc_sgemm_cpu_level = level;
    }
    return fc_sgemm_cpu_level;
}

/* Mask of the first w (0..16) lanes. */
FC_SGEMM_TARGET static inline __mmask16 fc_sgemm_lanes(int w)
{
    if (w >= 16) return (__mmask16)0xFFFF;
    if (w <= 0) return (__mmask16)0;
    return (__mmask16)((1u << w) - 1u);
}

/* Depth of each block of a k-deep product: k cut into equal blocks of at most KC (k = 288 runs as
   144 + 144, not 256 + 32). */
static inline int fc_sgemm_depth_step(int k)
{
    int blocks = (k + FC_SGEMM_KC - 1) / FC_SGEMM_KC;
    return (k + blocks - 1) / blocks;
}

/* Transpose a block of up to 16 x 16 floats: rows [0, rows) of src (row stride ld), columns
   [0, cols); missing rows and columns read as zero. On return out[j] holds column j. */
FC_SGEMM_TARGET static inline void fc_sgemm_transpose16(const float *src, ptrdiff_t ld, int rows,
                                                         int cols, __m512 out[16])
{
    __m512 r[16], t[16];
    __mmask16 m = fc_sgemm_lanes(cols);
    int i;
    for (i = 0; i < 16; i++)
        r[i] = i < rows ? _mm512_maskz_loadu_ps(m, src + (ptrdiff_t)i * ld) : _mm512_setzero_ps();
    /* 2x2 blocks of scalars, then 4x4 (pairs), then 128-bit lanes twice */
    for (i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (i = 0; i < 16; i += 4) {
        r[i] = _mm512_shuffle_ps(t[i], t[i + 2], 0x44);
        r[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], 0xEE);
        r[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        r[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
    }
    /* r[4q + s] now holds, in each 128-bit lane L, column 4L + s of rows 4q..4q+3 */
    for (i = 0; i < 4; i++) {
        t[i] = _mm512_shuffle_f32x4(r[i], r[4 + i], 0x88);       /* lanes 0,2 of r[i], 0,2 of r[4+i] */
        t[4 + i] = _mm512_shuffle_f32x4(r[i], r[4 + i], 0xDD);   /* lanes 1,3 */
        t[8 + i] = _mm512_shuffle_f32x4(r[8 + i], r[12 + i], 0x88);
        t[12 + i] = _mm512_shuffle_f32x4(r[8 + i], r[12 + i], 0xDD);
    }
    for (i = 0; i < 4; i++) {
        out[i] = _mm512_shuffle_f32x4(t[i], t[8 + i], 0x88);          /* columns 0..3 */
        out[8 + i] = _mm512_shuffle_f32x4(t[i], t[8 + i], 0xDD);      /* columns 8..11 */
        out[4 + i] = _mm512_shuffle_f32x4(t[4 + i], t[12 + i], 0x88); /* columns 4..7 */
        out[12 + i] = _mm512_shuffle_f32x4(t[4 + i], t[12 + i], 0xDD);/* columns 12..15 */
    }
}

/* Pack rows [row0, row0+h) x depth [p0, p0+kc) of alpha*op(A) as an MR-row panel: dst[p*MR + i]. */
FC_SGEMM_TARGET static void fc_sgemm_pack_a(int trans_a, const float *a, ptrdiff_t lda,
                                            ptrdiff_t row0, ptrdiff_t p0, int h, int kc,
                                            float alpha, float *dst)
{
    int i, p;
    if (trans_a) {            /* A stored k x m: a panel row p is contiguous in i */
        __mmask16 m = fc_sgemm_lanes(h);
        __m512 va = _mm512_set1_ps(alpha);
        for (p = 0; p < kc; p++) {
            __m512 v = _mm512_maskz_loadu_ps(m, a + (p0 + p) * lda + row0);
            _mm512_mask_storeu_ps(dst + (ptrdiff_t)p * FC_SGEMM_MR, (__mmask16)0x0FFF, _mm512_mul_ps(va, v));
        }
    } else {                  /* A stored m x k: transpose 16-deep slices of the h rows */
        __m512 cols[16], va = _mm512_set1_ps(alpha);
        for (p = 0; p < kc; p += 16) {
            int depth = kc - p < 16 ? kc - p : 16;
            fc_sgemm_transpose16(a + row0 * lda + p0 + p, lda, h, depth, cols);
            for (i = 0; i < depth; i++)
                _mm512_mask_storeu_ps(dst + (ptrdiff_t)(p + i) * FC_SGEMM_MR, (__mmask16)0x0FFF,
                                      _mm512_mul_ps(va, cols[i]));
        }
    }
}

/* Pack depth [p0, p0+kc) x columns [col0, col0+w) of op(B) as an NR-column panel: dst[p*NR + j]. */
FC_SGEMM_TARGET static void fc_sgemm_pack_b(int trans_b, const float *b, ptrdiff_t ldb,
                                            ptrdiff_t p0, ptrdiff_t col0, int kc, int w, float *dst)
{
    int j, p, i;
    if (!trans_b) {           /* B stored k x n: each panel row is a (masked) 32-float copy */
        __mmask16 m0 = fc_sgemm_lanes(w), m1 = fc_sgemm_lanes(w - 16);
        for (p = 0; p < kc; p++) {
            const float *src = b + (p0 + p) * ldb + col0;
            float *d = dst + (ptrdiff_t)p * FC_SGEMM_NR;
            _mm512_store_ps(d, _mm512_maskz_loadu_ps(m0, src));
            _mm512_store_ps(d + 16, _mm512_maskz_loadu_ps(m1, src + 16));
        }
    } else {                  /* B stored n x k: transpose 16 x 16 blocks (rows of B = panel columns) */
        __m512 cols[16];
        for (j = 0; j < FC_SGEMM_NR; j += 16) {
            int rows = w - j < 0 ? 0 : (w - j < 16 ? w - j : 16);
            for (p = 0; p < kc; p += 16) {
                int depth = kc - p < 16 ? kc - p : 16;
                fc_sgemm_transpose16(b + (col0 + j) * ldb + p0 + p, ldb, rows, depth, cols);
                for (i = 0; i < depth; i++)
                    _mm512_store_ps(dst + (ptrdiff_t)(p + i) * FC_SGEMM_NR + j, cols[i]);
            }
        }
    }
}

/* Rows [0, min(h, R)) of a tile's accumulators lo (columns 0-15) and hi (16-31) into C, added
   to it with ``accumulate``; columns past w untouched. A statement macro with R constant, so the
   loops unroll and the accumulators stay in registers (a loop with an early exit made GCC keep
   them in a stack array, cleared with rep stos on every tile). */
#define FC_SGEMM_STORE_TILE(R)                                                                    \
    if (w == FC_SGEMM_NR) {                                                                       \
        _Pragma("GCC unroll 12")                                                                  \
        for (i = 0; i < (R); i++) {                                                               \
            if (i < h) {                                                                          \
                float *ci = c + (ptrdiff_t)i * ldc;                                               \
                if (accumulate) {                                                                 \
                    lo[i] = _mm512_add_ps(lo[i], _mm512_loadu_ps(ci));                            \
                    hi[i] = _mm512_add_ps(hi[i], _mm512_loadu_ps(ci + 16));                       \
                }                                                                                 \
                _mm512_storeu_ps(ci, lo[i]);                                                      \
                _mm512_storeu_ps(ci + 16, hi[i]);                                                 \
            }                                                                                     \
        }                                                                                         \
    } else {                                                                                      \
        __mmask16 m0 = fc_sgemm_lanes(w), m1 = fc_sgemm_lanes(w - 16);                            \
        _Pragma("GCC unroll 12")                                                                  \
        for (i = 0; i < (R); i++) {                                                               \
            if (i < h) {                                                                          \
                float *ci = c + (ptrdiff_t)i * ldc;                                               \
                if (accumulate) {                                                                 \
                    lo[i] = _mm512_add_ps(lo[i], _mm512_maskz_loadu_ps(m0, ci));                  \
                    hi[i] = _mm512_add_ps(hi[i], _mm512_maskz_loadu_ps(m1, ci + 16));             \
                }                                                                                 \
                _mm512_mask_storeu_ps(ci, m0, lo[i]);                                             \
                _mm512_mask_storeu_ps(ci + 16, m1, hi[i]);                                        \
            }                                                                                     \
        }                                                                                         \
    }


/* C tile (h x w, h <= R, w <= NR) = [C +] R rows of packed_a (an MR-row panel, kc deep) .
   packed_b (kc x NR). R = MR for whole panels; R = 4 or 8 for a tail panel of at most that many
   rows (same packed layout, MR-float steps): only R rows of multiply-adds instead of MR (K = 64
   would otherwise compute 72). */
#define FC_SGEMM_TILE(R)                                                                          \
FC_SGEMM_TARGET static void fc_sgemm_tile_##R(int kc, const float *restrict pa,                   \
                                              const float *restrict pb, float *restrict c,       \
                                              ptrdiff_t ldc, int h, int w, int accumulate)       \
{                                                                                                 \
    __m512 lo[R], hi[R];                                                                          \
    int i, p;                                                                                     \
    _Pragma("GCC unroll 12")                                                                      \
    for (i = 0; i < R; i++) {                                                                     \
        lo[i] = _mm512_setzero_ps();                                                              \
        hi[i] = _mm512_setzero_ps();                                                              \
    }                                                                                             \
    for (p = 0; p < kc; p++) {                                                                    \
        __m512 b0 = _mm512_load_ps(pb), b1 = _mm512_load_ps(pb + 16);                             \
        _Pragma("GCC unroll 12")                                                                  \
        for (i = 0; i < R; i++) {                                                                 \
            __m512 ai = _mm512_set1_ps(pa[i]);                                                    \
            lo[i] = _mm512_fmadd_ps(ai, b0, lo[i]);                                               \
            hi[i] = _mm512_fmadd_ps(ai, b1, hi[i]);                                               \
        }                                                                                         \
        pa += FC_SGEMM_MR;                                                                        \
        pb += FC_SGEMM_NR;                                                                        \
    }                                                                                             \
    FC_SGEMM_STORE_TILE(R)                                                                        \
}
FC_SGEMM_TILE(4)
FC_SGEMM_TILE(8)
FC_SGEMM_TILE(12)
#undef FC_SGEMM_TILE
#undef FC_SGEMM_STORE_TILE

FC_SGEMM_TARGET static void fc_sgemm_run(int trans_a, int trans_b, int m, int n, int k, float alpha,
                                         const float *a, int lda, const float *b, int ldb,
                                         float beta, float *c, int ldc)
{
    float *pa = fc_sgemm_packed_a, *pb = fc_sgemm_packed_b;
    ptrdiff_t i, j;
    int jc, pc, ic, jr, ir, kstep;
    if (beta != 0.0f && beta != 1.0f) {
        for (i = 0; i < m; i++)
            for (j = 0; j < n; j++) c[i * ldc + j] *= beta;
    }
    kstep = fc_sgemm_depth_step(k);
    for (jc = 0; jc < n; jc += FC_SGEMM_NC) {
        int nc = n - jc < FC_SGEMM_NC ? n - jc : FC_SGEMM_NC;
        for (pc = 0; pc < k; pc += kstep) {
            int kc = k - pc < kstep ? k - pc : kstep;
            int accumulate = pc > 0 || beta != 0.0f;
            for (jr = 0; jr < nc; jr += FC_SGEMM_NR) {
                int w = nc - jr < FC_SGEMM_NR ? nc - jr : FC_SGEMM_NR;
                fc_sgemm_pack_b(trans_b, b, ldb, pc, (ptrdiff_t)jc + jr, kc, w, pb + (ptrdiff_t)jr * kc);
            }
            for (ic = 0; ic < m; ic += FC_SGEMM_MC) {
                int mc = m - ic < FC_SGEMM_MC ? m - ic : FC_SGEMM_MC;
                for (ir = 0; ir < mc; ir += FC_SGEMM_MR) {
                    int h = mc - ir < FC_SGEMM_MR ? mc - ir : FC_SGEMM_MR;
                    fc_sgemm_pack_a(trans_a, a, lda, (ptrdiff_t)ic + ir, pc, h, kc, alpha,
                                    pa + (ptrdiff_t)ir * kc);
                }
                for (jr = 0; jr < nc; jr += FC_SGEMM_NR) {
                    int w = nc - jr < FC_SGEMM_NR ? nc - jr : FC_SGEMM_NR;
                    for (ir = 0; ir < mc; ir += FC_SGEMM_MR) {
                        int h = mc - ir < FC_SGEMM_MR ? mc - ir : FC_SGEMM_MR;
                        float *ct = c + ((ptrdiff_t)ic + ir) * ldc + jc + jr;
                        /* a tail of few rows runs only their multiply-adds (49 rows: 52, not 60) */
                        if (h <= 4)
                            fc_sgemm_tile_4(kc, pa + (ptrdiff_t)ir * kc, pb + (ptrdiff_t)jr * kc, ct, ldc, h, w,
                                            accumulate);
                        else if (h <= 8)
                            fc_sgemm_tile_8(kc, pa + (ptrdiff_t)ir * kc, pb + (ptrdiff_t)jr * kc, ct, ldc, h, w,
                                            accumulate);
                        else
                            fc_sgemm_tile_12(kc, pa + (ptrdiff_t)ir * kc, pb + (ptrdiff_t)jr * kc, ct, ldc, h,
                                             w, accumulate);
                    }
                }
            }
        }
    }
}

/* ---- AVX2 + FMA micro-kernels (CPUs without AVX-512, e.g. Zen 3), same packed layouts ----

   The packed A panels (MR = 12 rows, dst[p*MR + i]) and B panels (NR = 32 columns,
   dst[p*NR + j]) are the AVX-512 ones, so the Winograd transforms that write them stay as they
   are. 16 ymm registers cannot hold a 12 x 32 tile (48 vectors), so the macro-kernel walks each
   32-column panel as two 16-column halves (one 64-byte line of every 128-byte panel row) and
   each 12-row panel as two 6-row halves: a 6 x 16 register tile is 12 ymm accumulators, 2 B
   vectors and 1 broadcast (the BLIS Haswell shape). A 16-column half of a B panel stays in L1
   while the loop runs down the whole packed A block. Tail row counts run 4- or 2-row kernels
   (rows past h in a panel are zero, so only the stores are cut). Measured on a Zen 3 EPYC (one
   core, interleaved with scipy's OpenBLAS 0.3.30, Haswell kernels): the 6 x 16 tile runs at ~90 % of
   the FMA peak from L1; whole GEMMs 1024^3 0.95x OpenBLAS, 64x784x288 1.30x, 64x3025x363
   1.07-1.11x, 256x196x1152 1.00-1.02x, 64x126x32 1.20x, 64x126x64 1.23x, 256x49x128 0.93-0.95x
   (these include packing, which the Winograd panels skip). */

#define FC_SGEMM2_TARGET __attribute__((target("avx2,fma")))
/* Block sizes as for AVX-512 (so the same buffers): KC = 192 and 128, and running the two
   column halves inside each 6-row step instead of outside, measured within noise. */
#define FC_SGEMM2_KC FC_SGEMM_KC
#define FC_SGEMM2_MC FC_SGEMM_MC

static const int fc_sgemm2_mask_src[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};

/* Mask of the first w (clamped to 0..8) lanes of a ymm vector. */
FC_SGEMM2_TARGET static inline __m256i fc_sgemm2_lanes(int w)
{
    w = w < 0 ? 0 : (w > 8 ? 8 : w);
    return _mm256_loadu_si256((const __m256i *)(fc_sgemm2_mask_src + 8 - w));
}

/* Mask of the first w (clamped to 0..4) lanes of an xmm vector. */
FC_SGEMM2_TARGET static inline __m128i fc_sgemm2_lanes4(int w)
{
    w = w < 0 ? 0 : (w > 4 ? 4 : w);
    return _mm_loadu_si128((const __m128i *)(fc_sgemm2_mask_src + 8 - w));
}

/* Transpose a block of up to 8 x 8 floats: rows [0, rows) of src (row stride ld), columns
   [0, cols); missing rows and columns read as zero (masked loads do not touch them). On return
   out[j] holds column j. */
FC_SGEMM2_TARGET static inline void fc_sgemm2_transpose8(const float *src, ptrdiff_t ld, int rows,
                                                         int cols, __m256 out[8])
{
    __m256 r[8], t[8];
    __m256i m = fc_sgemm2_lanes(cols);
    int i;
    for (i = 0; i < 8; i++) {
        if (i >= rows) r[i] = _mm256_setzero_ps();
        else if (cols >= 8) r[i] = _mm256_loadu_ps(src + (ptrdiff_t)i * ld);
        else r[i] = _mm256_maskload_ps(src + (ptrdiff_t)i * ld, m);
    }
    for (i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
    /* r[4q + s] holds column s (low 128-bit lane) and 4 + s (high lane) of rows 4q..4q+3 */
    for (i = 0; i < 8; i += 4) {
        r[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
        r[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);
        r[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        r[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
    }
    for (i = 0; i < 4; i++) {
        out[i] = _mm256_permute2f128_ps(r[i], r[4 + i], 0x20);
        out[4 + i] = _mm256_permute2f128_ps(r[i], r[4 + i], 0x31);
    }
}

/* fc_sgemm_pack_a for AVX2: rows [row0, row0+h) x depth [p0, p0+kc) of alpha*op(A) as one
   MR-row panel dst[p*MR + i], rows past h zero. */
FC_SGEMM2_TARGET static void fc_sgemm2_pack_a(int trans_a, const float *a, ptrdiff_t lda,
                                              ptrdiff_t row0, ptrdiff_t p0, int h, int kc,
                                              float alpha, float *dst)
{
    int i, p;
    __m256 va = _mm256_set1_ps(alpha);
    if (trans_a) {            /* A stored k x m: a panel row p is contiguous in i */
        __m256i m0 = fc_sgemm2_lanes(h);
        __m128i m1 = fc_sgemm2_lanes4(h - 8);
        for (p = 0; p < kc; p++) {
            const float *src = a + (p0 + p) * lda + row0;
            float *d = dst + (ptrdiff_t)p * FC_SGEMM_MR;
            __m256 v0;
            __m128 v1;
            if (h >= FC_SGEMM_MR) {
                v0 = _mm256_loadu_ps(src);
                v1 = _mm_loadu_ps(src + 8);
            } else {
                v0 = _mm256_maskload_ps(src, m0);
                v1 = _mm_maskload_ps(src + 8, m1);
            }
            _mm256_storeu_ps(d, _mm256_mul_ps(va, v0));
            _mm_storeu_ps(d + 8, _mm_mul_ps(_mm256_castps256_ps128(va), v1));
        }
    } else {                  /* A stored m x k: transpose 8-deep slices, rows 0..7 then 8..11 */
        __m256 cols[8];
        const float *src = a + row0 * lda + p0;
        for (p = 0; p < kc; p += 8) {
            int depth = kc - p < 8 ? kc - p : 8;
            fc_sgemm2_transpose8(src + p, lda, h < 8 ? h : 8, depth, cols);
            for (i = 0; i < depth; i++)
                _mm256_storeu_ps(dst + (ptrdiff_t)(p + i) * FC_SGEMM_MR, _mm256_mul_ps(va, cols[i]));
            if (h > 8) {
                fc_sgemm2_transpose8(src + 8 * lda + p, lda, h - 8, depth, cols);
                for (i = 0; i < depth; i++)
                    _mm_storeu_ps(dst + (ptrdiff_t)(p + i) * FC_SGEMM_MR + 8,
                                  _mm256_castps256_ps128(_mm256_mul_ps(va, cols[i])));
            } else {
                for (i = 0; i < depth; i++)
                    _mm_storeu_ps(dst + (ptrdiff_t)(p + i) * FC_SGEMM_MR + 8, _mm_setzero_ps());
            }
        }
    }
}

/* fc_sgemm_pack_b for AVX2: depth [p0, p0+kc) x columns [col0, col0+w) of op(B) as one NR-column
   panel dst[p*NR + j] (dst 32-byte aligned), columns past w zero. */
FC_SGEMM2_TARGET static void fc_sgemm2_pack_b(int trans_b, const float *b, ptrdiff_t ldb,
                                              ptrdiff_t p0, ptrdiff_t col0, int kc, int w, float *dst)
{
    int j, p, i, q;
    if (!trans_b) {           /* B stored k x n: each panel row is a (masked) 32-float copy */
        if (w >= FC_SGEMM_NR) {
            for (p = 0; p < kc; p++) {
                const float *src = b + (p0 + p) * ldb + col0;
                float *d = dst + (ptrdiff_t)p * FC_SGEMM_NR;
                for (q = 0; q < 4; q++) _mm256_store_ps(d + 8 * q, _mm256_loadu_ps(src + 8 * q));
            }
        } else {
            __m256i mq[4];
            for (q = 0; q < 4; q++) mq[q] = fc_sgemm2_lanes(w - 8 * q);
            for (p = 0; p < kc; p++) {
                const float *src = b + (p0 + p) * ldb + col0;
                float *d = dst + (ptrdiff_t)p * FC_SGEMM_NR;
                for (q = 0; q < 4; q++)
                    _mm256_store_ps(d + 8 * q, 8 * q < w ? _mm256_maskload_ps(src + 8 * q, mq[q])
                                                         : _mm256_setzero_ps());
            }
        }
    } else {                  /* B stored n x k: transpose 8 x 8 blocks (rows of B = panel columns) */
        __m256 cols[8];
        for (j = 0; j < FC_SGEMM_NR; j += 8) {
            int rows = w - j < 0 ? 0 : (w - j < 8 ? w - j : 8);
            for (p = 0; p < kc; p += 8) {
                int depth = kc - p < 8 ? kc - p : 8;
                fc_sgemm2_transpose8(b + (col0 + j) * ldb + p0 + p, ldb, rows, depth, cols);
                for (i = 0; i < depth; i++)
                    _mm256_store_ps(dst + (ptrdiff_t)(p + i) * FC_SGEMM_NR + j, cols[i]);
            }
        }
    }
}

/* C sub-tile (h x w, h <= R, w <= 16) = [C +] A (R rows of an MR-row panel, kc deep) . B (16
   columns of an NR-column panel). pa/pb point at the first row/column; steps are MR/NR floats. */
#define FC_SGEMM2_SUBTILE(R)                                                                      \
FC_SGEMM2_TARGET static void fc_sgemm2_tile_##R(int kc, const float *restrict pa,                 \
                                                const float *restrict pb, float *restrict c,     \
                                                ptrdiff_t ldc, int h, int w, int accumulate)     \
{                                                                                                 \
    __m256 lo[R], hi[R];                                                                          \
    int i, p;                                                                                     \
    _Pragma("GCC unroll 8")                                                                       \
    for (i = 0; i < R; i++) {                                                                     \
        lo[i] = _mm256_setzero_ps();                                                              \
        hi[i] = _mm256_setzero_ps();                                                              \
        if (i < h) {   /* C rows are ldc apart: no hardware prefetch; hide the miss under the loop */ \
            _mm_prefetch((const char *)(c + (ptrdiff_t)i * ldc), _MM_HINT_T0);                    \
            _mm_prefetch((const char *)(c + (ptrdiff_t)i * ldc + w - 1), _MM_HINT_T0);            \
        }                                                                                         \
    }                                                                                             \
    for (p = 0; p < kc; p++) {                                                                    \
        __m256 b0 = _mm256_load_ps(pb), b1 = _mm256_load_ps(pb + 8);                              \
        _Pragma("GCC unroll 8")                                                                   \
        for (i = 0; i < R; i++) {                                                                 \
            __m256 ai = _mm256_broadcast_ss(pa + i);                                              \
            lo[i] = _mm256_fmadd_ps(ai, b0, lo[i]);                                               \
            hi[i] = _mm256_fmadd_ps(ai, b1, hi[i]);                                               \
        }                                                                                         \
        pa += FC_SGEMM_MR;                                                                        \
        pb += FC_SGEMM_NR;                                                                        \
    }                                                                                             \
    if (w >= 16) {                                                                                \
        _Pragma("GCC unroll 8")                                                                   \
        for (i = 0; i < R; i++) {  /* constant trip count: unrolled, lo/hi stay in registers */ \
            float *ci = c + (ptrdiff_t)i * ldc;                                                   \
            if (i >= h) break;                                                                    \
            if (accumulate) {                                                                     \
                lo[i] = _mm256_add_ps(lo[i], _mm256_loadu_ps(ci));                                \
                hi[i] = _mm256_add_ps(hi[i], _mm256_loadu_ps(ci + 8));                            \
            }                                                                                     \
            _mm256_storeu_ps(ci, lo[i]);                                                          \
            _mm256_storeu_ps(ci + 8, hi[i]);                                                      \
        }                                                                                         \
    } else {                                                                                      \
        __m256i m0 = fc_sgemm2_lanes(w), m1 = fc_sgemm2_lanes(w - 8);                             \
        _Pragma("GCC unroll 8")                                                                   \
        for (i = 0; i < R; i++) {  /* constant trip count: unrolled, lo/hi stay in registers */ \
            float *ci = c + (ptrdiff_t)i * ldc;                                                   \
            if (i >= h) break;                                                                    \
            if (accumulate) {                                                                     \
                lo[i] = _mm256_add_ps(lo[i], _mm256_maskload_ps(ci, m0));                         \
                hi[i] = _mm256_add_ps(hi[i], _mm256_maskload_ps(ci + 8, m1));                     \
            }                                                                                     \
            _mm256_maskstore_ps(ci, m0, lo[i]);                                                   \
            if (w > 8) _mm256_maskstore_ps(ci + 8, m1, hi[i]);                                    \
        }                                                                                         \
    }                                                                                             \
}
FC_SGEMM2_SUBTILE(6)
FC_SGEMM2_SUBTILE(4)
FC_SGEMM2_SUBTILE(2)
#undef FC_SGEMM2_SUBTILE

/* C tile (h x w, h <= MR, w <= 8) = [C +] a whole MR-row A panel . the first 8 columns of B:
   for the last half of a panel with at most 8 columns (n = 49 = 32 + 16 + 1), where a 6 x 16
   tile would do 16 columns of work for 1. 12 accumulators, one B vector per step. */
FC_SGEMM2_TARGET static void fc_sgemm2_tile_12x8(int kc, const float *restrict pa,
                                                 const float *restrict pb, float *restrict c,
                                                 ptrdiff_t ldc, int h, int w, int accumulate)
{
    __m256 acc[FC_SGEMM_MR];
    __m256i m0 = fc_sgemm2_lanes(w);
    int i, p;
    _Pragma("GCC unroll 12")
    for (i = 0; i < FC_SGEMM_MR; i++) {
        acc[i] = _mm256_setzero_ps();
        if (i < h) _mm_prefetch((const char *)(c + (ptrdiff_t)i * ldc), _MM_HINT_T0);
    }
    for (p = 0; p < kc; p++) {
        __m256 b0 = _mm256_load_ps(pb);
        _Pragma("GCC unroll 12")
        for (i = 0; i < FC_SGEMM_MR; i++)
            acc[i] = _mm256_fmadd_ps(_mm256_broadcast_ss(pa + i), b0, acc[i]);
        pa += FC_SGEMM_MR;
        pb += FC_SGEMM_NR;
    }
    _Pragma("GCC unroll 12")
    for (i = 0; i < FC_SGEMM_MR; i++) {
        float *ci = c + (ptrdiff_t)i * ldc;
        if (i >= h) break;
        if (accumulate) acc[i] = _mm256_add_ps(acc[i], _mm256_maskload_ps(ci, m0));
        _mm256_maskstore_ps(ci, m0, acc[i]);
    }
}

/* C (h x w, h <= mc, w <= NR) = [C +] packed A block (mc rows: ceil(mc / MR) panels, kc deep) .
   one packed B panel (kc x NR). Column halves outside, 6-row sub-tiles inside. */
FC_SGEMM2_TARGET static void fc_sgemm2_panel(int kc, int mc, const float *pa, ptrdiff_t a_panel,
                                             const float *pb, float *c, ptrdiff_t ldc, int w,
                                             int accumulate)
{
    int jh, ir;
    for (jh = 0; jh < w; jh += 16) {
        int ww = w - jh < 16 ? w - jh : 16;
        if (ww <= 8 && mc > 6) {   /* narrow last half: 12 x 8 tiles (6-row ones on a short tail) */
            for (ir = 0; ir < mc; ir += FC_SGEMM_MR) {
                int h = mc - ir < FC_SGEMM_MR ? mc - ir : FC_SGEMM_MR;
                const float *a = pa + (ptrdiff_t)(ir / FC_SGEMM_MR) * a_panel;
                float *ct = c + (ptrdiff_t)ir * ldc + jh;
                if (h > 6)
                    fc_sgemm2_tile_12x8(kc, a, pb + jh, ct, ldc, h, ww, accumulate);
                else if (h > 4)
                    fc_sgemm2_tile_6(kc, a, pb + jh, ct, ldc, h, ww, accumulate);
                else if (h > 2)
                    fc_sgemm2_tile_4(kc, a, pb + jh, ct, ldc, h, ww, accumulate);
                else
                    fc_sgemm2_tile_2(kc, a, pb + jh, ct, ldc, h, ww, accumulate);
            }
            continue;
        }
        for (ir = 0; ir < mc; ir += 6) {
            int hh = mc - ir < 6 ? mc - ir : 6;
            const float *a = pa + (ptrdiff_t)(ir / FC_SGEMM_MR) * a_panel + ir % FC_SGEMM_MR;
            float *ct = c + (ptrdiff_t)ir * ldc + jh;
            if (hh > 4)
                fc_sgemm2_tile_6(kc, a, pb + jh, ct, ldc, hh, ww, accumulate);
            else if (hh > 2)
                fc_sgemm2_tile_4(kc, a, pb + jh, ct, ldc, hh, ww, accumulate);
            else
                fc_sgemm2_tile_2(kc, a, pb + jh, ct, ldc, hh, ww, accumulate);
        }
    }
}

FC_SGEMM2_TARGET static void fc_sgemm2_run(int trans_a, int trans_b, int m, int n, int k, float alpha,
                                           const float *a, int lda, const float *b, int ldb,
                                           float beta, float *c, int ldc)
{
    float *pa = fc_sgemm_packed_a, *pb = fc_sgemm_packed_b;
    ptrdiff_t i, j;
    int jc, pc, ic, jr, ir, kstep;
    if (beta != 0.0f && beta != 1.0f) {
        for (i = 0; i < m; i++)
            for (j = 0; j < n; j++) c[i * ldc + j] *= beta;
    }
    kstep = fc_sgemm_depth_step(k);
    for (jc = 0; jc < n; jc += FC_SGEMM_NC) {
        int nc = n - jc < FC_SGEMM_NC ? n - jc : FC_SGEMM_NC;
        for (pc = 0; pc < k; pc += kstep) {
            int kc = k - pc < kstep ? k - pc : kstep;
            int accumulate = pc > 0 || beta != 0.0f;
            if (m <= FC_SGEMM2_MC) {
                /* one A block: each B panel is used once, so pack it right before its use (it
                   stays in L1/L2) instead of packing all of B first (kc x nc, often past L2) */
                for (ir = 0; ir < m; ir += FC_SGEMM_MR) {
                    int h = m - ir < FC_SGEMM_MR ? m - ir : FC_SGEMM_MR;
                    fc_sgemm2_pack_a(trans_a, a, lda, ir, pc, h, kc, alpha, pa + (ptrdiff_t)ir * kc);
                }
                for (jr = 0; jr < nc; jr += FC_SGEMM_NR) {
                    int w = nc - jr < FC_SGEMM_NR ? nc - jr : FC_SGEMM_NR;
                    fc_sgemm2_pack_b(trans_b, b, ldb, pc, (ptrdiff_t)jc + jr, kc, w, pb);
                    fc_sgemm2_panel(kc, m, pa, (ptrdiff_t)FC_SGEMM_MR * kc, pb,
                                    c + jc + jr, ldc, w, accumulate);
                }
                continue;
            }
            for (jr = 0; jr < nc; jr += FC_SGEMM_NR) {
                int w = nc - jr < FC_SGEMM_NR ? nc - jr : FC_SGEMM_NR;
                fc_sgemm2_pack_b(trans_b, b, ldb, pc, (ptrdiff_t)jc + jr, kc, w, pb + (ptrdiff_t)jr * kc);
            }
            for (ic = 0; ic < m; ic += FC_SGEMM2_MC) {
                int mc = m - ic < FC_SGEMM2_MC ? m - ic : FC_SGEMM2_MC;
                for (ir = 0; ir < mc; ir += FC_SGEMM_MR) {
                    int h = mc - ir < FC_SGEMM_MR ? mc - ir : FC_SGEMM_MR;
                    fc_sgemm2_pack_a(trans_a, a, lda, (ptrdiff_t)ic + ir, pc, h, kc, alpha,
                                     pa + (ptrdiff_t)ir * kc);
                }
                for (jr = 0; jr < nc; jr += FC_SGEMM_NR) {
                    int w = nc - jr < FC_SGEMM_NR ? nc - jr : FC_SGEMM_NR;
                    fc_sgemm2_panel(kc, mc, pa, (ptrdiff_t)FC_SGEMM_MR * kc, pb + (ptrdiff_t)jr * kc,
                                    c + (ptrdiff_t)ic * ldc + jc + jr, ldc, w, accumulate);
                }
            }
        }
    }
}

/* fc_sgemm_packed (prepacked operands, layout below) on the AVX2 micro-kernels. */
FC_SGEMM2_TARGET static void fc_sgemm2_packed(int m, int n, int k, const float *pa, const float *pb,
                                              float *c, int ldc, int accumulate)
{
    int pc, jr, kstep;
    kstep = fc_sgemm_depth_step(k);
    for (pc = 0; pc < k; pc += kstep) {
        int kc = k - pc < kstep ? k - pc : kstep;
        for (jr = 0; jr < n; jr += FC_SGEMM_NR) {
            int w = n - jr < FC_SGEMM_NR ? n - jr : FC_SGEMM_NR;
            fc_sgemm2_panel(kc, m, pa + (ptrdiff_t)pc * FC_SGEMM_MR, (ptrdiff_t)FC_SGEMM_MR * k,
                            pb + (ptrdiff_t)jr * k + (ptrdiff_t)pc * FC_SGEMM_NR, c + jr, ldc, w,
                            pc > 0 || accumulate);
        }
    }
}

/* y[j * ldy + i] = t[i * ldt + j] for i < rows, j < cols: a block computed pixel-major (rows of
   channels) written channel-major (NCHW), 16 x 16 at a time through registers. */
FC_SGEMM_TARGET static void fc_sgemm_transpose_store512(int rows, int cols, const float *t, ptrdiff_t ldt,
                                                        float *y, ptrdiff_t ldy)
{
    __m512 col[16];
    int i0, j0, j;
    for (i0 = 0; i0 < rows; i0 += 16) {
        int h = rows - i0 < 16 ? rows - i0 : 16;
        __mmask16 m = fc_sgemm_lanes(h);
        for (j0 = 0; j0 < cols; j0 += 16) {
            int w = cols - j0 < 16 ? cols - j0 : 16;
            fc_sgemm_transpose16(t + (ptrdiff_t)i0 * ldt + j0, ldt, h, w, col);
            for (j = 0; j < w; j++) _mm512_mask_storeu_ps(y + (ptrdiff_t)(j0 + j) * ldy + i0, m, col[j]);
        }
    }
}

static void fc_sgemm_transpose_store(int rows, int cols, const float *t, ptrdiff_t ldt, float *y, ptrdiff_t ldy)
{
    int i, j;
    if (fc_sgemm_supported() == FC_SGEMM_AVX512) {
        fc_sgemm_transpose_store512(rows, cols, t, ldt, y, ldy);
        return;
    }
    for (j = 0; j < cols; j++)
        for (i = 0; i < rows; i++) y[(ptrdiff_t)j * ldy + i] = t[(ptrdiff_t)i * ldt + j];
}

/* Multiply-add rows a tile pass computes for h rows: whole 12-row tiles, a tail on a 4-, 8- or
   12-row tile. */
static int fc_sgemm_rows_run(int h)
{
    int tail = h % FC_SGEMM_MR;
    return h - tail + (tail == 0 ? 0 : tail <= 4 ? 4 : tail <= 8 ? 8 : FC_SGEMM_MR);
}

/* Useful fraction of the multiply-adds when C (m x n) runs m on the tiles' rows and n on their
   32-column panels. */
static double fc_sgemm_fill(int m, int n)
{
    int panels = (n + FC_SGEMM_NR - 1) / FC_SGEMM_NR;
    return (double)m / fc_sgemm_rows_run(m) * (double)n / ((double)panels * FC_SGEMM_NR);
}

/* Whether C = op(A) op(B) should run as C^T = op(B)^T op(A)^T, written back transposed: when the
   other orientation fills the tiles better by TRANSPOSE_GAIN (a 7x7 image's 49 pixels as columns
   fill 49/64 of two panels, as rows 49/52 of the row tiles), the product is deep enough for the
   write-back to be small (TRANSPOSE_MIN_K), and alpha = 1, beta = 0, so both orientations sum
   every element in the same order: the bits do not depend on the orientation (nor on how the
   threads cut a product). */
#define FC_SGEMM_TRANSPOSE_GAIN 1.12
#define FC_SGEMM_TRANSPOSE_MIN_K 64
static int fc_sgemm_transposed_better(int m, int n, int k, float alpha, float beta)
{
    return alpha == 1.0f && beta == 0.0f && k >= FC_SGEMM_TRANSPOSE_MIN_K && n >= FC_SGEMM_MIN_N
           && m >= FC_SGEMM_NR && fc_sgemm_fill(n, m) > FC_SGEMM_TRANSPOSE_GAIN * fc_sgemm_fill(m, n);
}

static int fc_sgemm(int trans_a, int trans_b, int m, int n, int k, float alpha,
                    const float *a, int lda, const float *b, int ldb,
                    float beta, float *c, int ldc);

/* C = alpha op(A) op(B) + beta C made as C^T = alpha op(B)^T op(A)^T in a scratch copy, written
   back transposed (16 x 16 through registers when beta is 0); 0 when out of memory. */
static int fc_sgemm_via_transpose(int trans_a, int trans_b, int m, int n, int k, float alpha,
                                  const float *a, int lda, const float *b, int ldb,
                                  float beta, float *c, int ldc)
{
    float *t = (float *)malloc(sizeof(float) * (size_t)m * (size_t)n);
    if (t == NULL || !fc_sgemm(!trans_b, !trans_a, n, m, k, alpha, b, ldb, a, lda, 0.0f, t, m)) {
        free(t);
        return 0;
    }
    if (beta == 0.0f)
        fc_sgemm_transpose_store(n, m, t, m, c, ldc);
    else
        for (int i = 0; i < m; i++) {
            float *ci = c + (size_t)i * ldc;
            for (int j = 0; j < n; j++) ci[j] = t[(size_t)j * m + i] + beta * ci[j];
        }
    free(t);
    return 1;
}

static int fc_sgemm(int trans_a, int trans_b, int m, int n, int k, float alpha,
                    const float *a, int lda, const float *b, int ldb,
                    float beta, float *c, int ldc)
{
    if (m < FC_SGEMM_MIN_M || n < FC_SGEMM_MIN_N || k < 1) return 0;
    if (!fc_sgemm_supported()) return 0;
    /* The transposed orientation when it fills the tiles better (fc_sgemm_transposed_better), or
       when op(B) is narrower than a tile's 32 columns while op(A) has many rows (a 1x1
       convolution of a small image: K x C times C x 16 pixels), where the tiles would be half
       padding: the narrow side goes on the tiles' 12 broadcast rows (short row tails have their
       own tiles). */
    if ((fc_sgemm_transposed_better(m, n, k, alpha, beta) || (n < FC_SGEMM_NR && m >= 2 * FC_SGEMM_NR))
        && fc_sgemm_via_transpose(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc))
        return 1;
    {
        size_t kc = k < FC_SGEMM_KC ? (size_t)k : FC_SGEMM_KC;
        size_t nc = n < FC_SGEMM_NC ? (size_t)n : FC_SGEMM_NC;
        nc = (nc + FC_SGEMM_NR - 1) / FC_SGEMM_NR * FC_SGEMM_NR;
        if (!fc_sgemm_buffers(kc * nc)) return 0;
    }
    if (fc_sgemm_supported() == FC_SGEMM_AVX512)
        fc_sgemm_run(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    else
        fc_sgemm2_run(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return 1;
}

/* Nonzero when fc_sgemm can run here: FC_SGEMM_AVX512 or FC_SGEMM_AVX2 (the variant), else 0. */
static int fc_sgemm_available(void)
{
    return fc_sgemm_supported();
}

/* ---- Prepacked operands (callers that pack once and multiply many times: the Winograd kernels) ----

   A (m x k) as ceil(m / MR) row panels: element (i, p) at (i / MR) * MR * k + p * MR + i % MR, rows
   past m zero. B (k x n) as ceil(n / NR) column panels: element (p, j) at (j / NR) * NR * k + p * NR
   + j % NR, the array 64-byte aligned; columns past n may hold any finite values (they only reach
   lanes of C that are masked off). fc_sgemm_packed sets C (m x n, row stride ldc) = A . B. */

static int fc_sgemm_packed_available(void)
{
    return fc_sgemm_supported();
}


FC_SGEMM_TARGET static void fc_sgemm_packed512(int m, int n, int k, const float *pa, const float *pb,
                                               float *c, int ldc, int accumulate)
{
    int pc, jr, ir, kstep;
    kstep = fc_sgemm_depth_step(k);
    for (pc = 0; pc < k; pc += kstep) {
        int kc = k - pc < kstep ? k - pc : kstep;
        for (jr = 0; jr < n; jr += FC_SGEMM_NR) {
            int w = n - jr < FC_SGEMM_NR ? n - jr : FC_SGEMM_NR;
            const float *b = pb + (ptrdiff_t)jr * k + (ptrdiff_t)pc * FC_SGEMM_NR;
            for (ir = 0; ir < m; ir += FC_SGEMM_MR) {
                int h = m - ir < FC_SGEMM_MR ? m - ir : FC_SGEMM_MR;
                const float *a = pa + (ptrdiff_t)ir * k + (ptrdiff_t)pc * FC_SGEMM_MR;
                float *ct = c + (ptrdiff_t)ir * ldc + jr;
                if (h <= 4 && kstep == k)
                    fc_sgemm_tile_4(kc, a, b, ct, ldc, h, w, accumulate);
                else if (h <= 8 && kstep == k)
                    fc_sgemm_tile_8(kc, a, b, ct, ldc, h, w, accumulate);
                else
                    fc_sgemm_tile_12(kc, a, b, ct, ldc, h, w, pc > 0 || accumulate);
            }
        }
    }
}

/* C [+]= A . B on packed panels: C is overwritten, or added to with ``accumulate`` (the Winograd
   weight gradient sums its blocks' products). Callers check fc_sgemm_packed_available() first. */
static void fc_sgemm_packed_acc(int m, int n, int k, const float *pa, const float *pb, float *c,
                                int ldc, int accumulate)
{
    int i, j;
    if (m <= 0 || n <= 0) return;
    if (k <= 0) {
        if (!accumulate)
            for (i = 0; i < m; i++)
                for (j = 0; j < n; j++) c[(ptrdiff_t)i * ldc + j] = 0.0f;
        return;
    }
    if (fc_sgemm_supported() == FC_SGEMM_AVX512)
        fc_sgemm_packed512(m, n, k, pa, pb, c, ldc, accumulate);
    else if (fc_sgemm_supported() == FC_SGEMM_AVX2)
        fc_sgemm2_packed(m, n, k, pa, pb, c, ldc, accumulate);
}

/* C = A . B on packed panels. Callers check fc_sgemm_packed_available() first. */
static void fc_sgemm_packed(int m, int n, int k, const float *pa, const float *pb, float *c, int ldc)
{
    fc_sgemm_packed_acc(m, n, k, pa, pb, c, ldc, 0);
}

/* ---- Prepacked B: a constant operand packed once (the compiled predictor's 1x1 weights) ----

   fc_sgemm_pack_b_panels packs op(B) (k x n) whole in the B layout of fc_sgemm_packed
   (ceil(n / NR) * NR * k floats at a 64-byte aligned dst, columns past n zero);
   fc_sgemm_b_prepacked then sets C (m x n) = op(A) . B, packing only A. A weight multiplied by
   many small products (a 7x7 image's 49 pixels, an image's blocks of pixels) is then packed once,
   not once per product: packing its k x n floats costs about as much as 5-6 rows of the product
   (measured from 4 to 49 rows). Both return 0 (nothing done) where the packed kernels do not
   run; callers then keep op(B). */

static int fc_sgemm_pack_b_panels(int trans_b, int k, int n, const float *b, int ldb, float *dst)
{
    int jr, level = fc_sgemm_supported();
    if (k < 1 || n < 1 || level == 0 || ((uintptr_t)dst & 63u) != 0) return 0;
    for (jr = 0; jr < n; jr += FC_SGEMM_NR) {
        int w = n - jr < FC_SGEMM_NR ? n - jr : FC_SGEMM_NR;
        if (level == FC_SGEMM_AVX512)
            fc_sgemm_pack_b(trans_b, b, ldb, 0, jr, k, w, dst + (ptrdiff_t)jr * k);
        else
            fc_sgemm2_pack_b(trans_b, b, ldb, 0, jr, k, w, dst + (ptrdiff_t)jr * k);
    }
    return 1;
}

/* Rows [0, mc) of a packed A block (12-row panels, kc deep) times one packed B panel (kc x NR) into
   C (w columns), on the AVX-512 tiles; the AVX2 counterpart is fc_sgemm2_panel. */
FC_SGEMM_TARGET static void fc_sgemm_panel512(int kc, int mc, const float *pa, const float *pb, float *c,
                                              ptrdiff_t ldc, int w, int accumulate)
{
    int ir;
    for (ir = 0; ir < mc; ir += FC_SGEMM_MR) {
        int h = mc - ir < FC_SGEMM_MR ? mc - ir : FC_SGEMM_MR;
        const float *a = pa + (ptrdiff_t)ir * kc;
        float *ct = c + (ptrdiff_t)ir * ldc;
        if (h <= 4)
            fc_sgemm_tile_4(kc, a, pb, ct, ldc, h, w, accumulate);
        else if (h <= 8)
            fc_sgemm_tile_8(kc, a, pb, ct, ldc, h, w, accumulate);
        else
            fc_sgemm_tile_12(kc, a, pb, ct, ldc, h, w, accumulate);
    }
}

/* C = op(A) . B packed, on either ISA's packing and tiles (the same layouts and block sizes). */
static void fc_sgemm_b_prepacked_run(int level, int trans_a, int m, int n, int k, const float *a, int lda,
                                     const float *pb, float *c, int ldc)
{
    float *pa = fc_sgemm_packed_a;
    int pc, ic, jr, ir, kstep;
    kstep = fc_sgemm_depth_step(k);
    for (pc = 0; pc < k; pc += kstep) {
        int kc = k - pc < kstep ? k - pc : kstep;
        for (ic = 0; ic < m; ic += FC_SGEMM_MC) {
            int mc = m - ic < FC_SGEMM_MC ? m - ic : FC_SGEMM_MC;
            for (ir = 0; ir < mc; ir += FC_SGEMM_MR) {
                int h = mc - ir < FC_SGEMM_MR ? mc - ir : FC_SGEMM_MR;
                if (level == FC_SGEMM_AVX512)
                    fc_sgemm_pack_a(trans_a, a, lda, (ptrdiff_t)ic + ir, pc, h, kc, 1.0f, pa + (ptrdiff_t)ir * kc);
                else
                    fc_sgemm2_pack_a(trans_a, a, lda, (ptrdiff_t)ic + ir, pc, h, kc, 1.0f, pa + (ptrdiff_t)ir * kc);
            }
            for (jr = 0; jr < n; jr += FC_SGEMM_NR) {
                int w = n - jr < FC_SGEMM_NR ? n - jr : FC_SGEMM_NR;
                const float *b = pb + (ptrdiff_t)jr * k + (ptrdiff_t)pc * FC_SGEMM_NR;
                float *ct = c + (ptrdiff_t)ic * ldc + jr;
                if (level == FC_SGEMM_AVX512)
                    fc_sgemm_panel512(kc, mc, pa, b, ct, ldc, w, pc > 0);
                else
                    fc_sgemm2_panel(kc, mc, pa, (ptrdiff_t)FC_SGEMM_MR * kc, b, ct, ldc, w, pc > 0);
            }
        }
    }
}

/* c (n) = a (k, element stride inc) . B packed: one row, memory-bound on B, so four partial sums
   per vector keep the loads streaming instead of waiting on one chain of multiply-adds. */
FC_SGEMM_TARGET static void fc_sgemv_panels512(int n, int k, const float *a, ptrdiff_t inc,
                                               const float *pb, float *c)
{
    int jr, p, q;
    for (jr = 0; jr < n; jr += FC_SGEMM_NR) {
        int w = n - jr < FC_SGEMM_NR ? n - jr : FC_SGEMM_NR;
        const float *b = pb + (ptrdiff_t)jr * k;
        __m512 lo[4], hi[4];
        for (q = 0; q < 4; q++) {
            lo[q] = _mm512_setzero_ps();
            hi[q] = _mm512_setzero_ps();
        }
        for (p = 0; p + 4 <= k; p += 4) {
            _Pragma("GCC unroll 4")
            for (q = 0; q < 4; q++) {
                __m512 ap = _mm512_set1_ps(a[(ptrdiff_t)(p + q) * inc]);
                lo[q] = _mm512_fmadd_ps(ap, _mm512_load_ps(b + (ptrdiff_t)(p + q) * FC_SGEMM_NR), lo[q]);
                hi[q] = _mm512_fmadd_ps(ap, _mm512_load_ps(b + (ptrdiff_t)(p + q) * FC_SGEMM_NR + 16), hi[q]);
            }
        }
        for (; p < k; p++) {
            __m512 ap = _mm512_set1_ps(a[(ptrdiff_t)p * inc]);
            lo[0] = _mm512_fmadd_ps(ap, _mm512_load_ps(b + (ptrdiff_t)p * FC_SGEMM_NR), lo[0]);
            hi[0] = _mm512_fmadd_ps(ap, _mm512_load_ps(b + (ptrdiff_t)p * FC_SGEMM_NR + 16), hi[0]);
        }
        lo[0] = _mm512_add_ps(_mm512_add_ps(lo[0], lo[1]), _mm512_add_ps(lo[2], lo[3]));
        hi[0] = _mm512_add_ps(_mm512_add_ps(hi[0], hi[1]), _mm512_add_ps(hi[2], hi[3]));
        _mm512_mask_storeu_ps(c + jr, fc_sgemm_lanes(w), lo[0]);
        _mm512_mask_storeu_ps(c + jr + 16, fc_sgemm_lanes(w - 16), hi[0]);
    }
}

FC_SGEMM2_TARGET static void fc_sgemv_panels2(int n, int k, const float *a, ptrdiff_t inc,
                                              const float *pb, float *c)
{
    int jr, p, q, j;
    for (jr = 0; jr < n; jr += FC_SGEMM_NR) {
        int w = n - jr < FC_SGEMM_NR ? n - jr : FC_SGEMM_NR;
        const float *b = pb + (ptrdiff_t)jr * k;
        __m256 acc[2][4];
        float out[FC_SGEMM_NR];
        for (q = 0; q < 2; q++)
            for (j = 0; j < 4; j++) acc[q][j] = _mm256_setzero_ps();
        for (p = 0; p < k; p++) {
            __m256 ap = _mm256_set1_ps(a[(ptrdiff_t)p * inc]);
            const float *bp = b + (ptrdiff_t)p * FC_SGEMM_NR;
            _Pragma("GCC unroll 4")
            for (j = 0; j < 4; j++)
                acc[p & 1][j] = _mm256_fmadd_ps(ap, _mm256_load_ps(bp + 8 * j), acc[p & 1][j]);
        }
        for (j = 0; j < 4; j++) _mm256_storeu_ps(out + 8 * j, _mm256_add_ps(acc[0][j], acc[1][j]));
        for (j = 0; j < w; j++) c[jr + j] = out[j];
    }
}

static int fc_sgemm_b_prepacked(int trans_a, int m, int n, int k, const float *a, int lda,
                                const float *pb, float *c, int ldc)
{
    int level = fc_sgemm_supported();
    if (m < 1 || n < 1 || k < 1 || level == 0 || !fc_sgemm_buffers(0)) return 0;
    if (m == 1) {  /* a row: op(A) is a (stride 1) or, stored k x 1, a column of stride lda */
        if (level == FC_SGEMM_AVX512)
            fc_sgemv_panels512(n, k, a, trans_a ? lda : 1, pb, c);
        else
            fc_sgemv_panels2(n, k, a, trans_a ? lda : 1, pb, c);
        return 1;
    }
    fc_sgemm_b_prepacked_run(level, trans_a, m, n, k, a, lda, pb, c, ldc);
    return 1;
}

#else  /* not x86: always defer to BLAS */

static int fc_sgemm_available(void)
{
    return 0;
}

static int fc_sgemm(int trans_a, int trans_b, int m, int n, int k, float alpha,
                    const float *a, int lda, const float *b, int ldb,
                    float beta, float *c, int ldc)
{
    (void)trans_a; (void)trans_b; (void)m; (void)n; (void)k; (void)alpha; (void)a; (void)lda;
    (void)b; (void)ldb; (void)beta; (void)c; (void)ldc;
    return 0;
}

static int fc_sgemm_packed_available(void)
{
    return 0;
}

static void fc_sgemm_packed_acc(int m, int n, int k, const float *pa, const float *pb, float *c,
                                int ldc, int accumulate)
{
    (void)m; (void)n; (void)k; (void)pa; (void)pb; (void)c; (void)ldc; (void)accumulate;
}

static void fc_sgemm_packed(int m, int n, int k, const float *pa, const float *pb, float *c, int ldc)
{
    (void)m; (void)n; (void)k; (void)pa; (void)pb; (void)c; (void)ldc;
}

static void fc_sgemm_transpose_store(int rows, int cols, const float *t, ptrdiff_t ldt, float *y, ptrdiff_t ldy)
{
    int i, j;
    for (j = 0; j < cols; j++)
        for (i = 0; i < rows; i++) y[(ptrdiff_t)j * ldy + i] = t[(ptrdiff_t)i * ldt + j];
}

static int fc_sgemm_pack_b_panels(int trans_b, int k, int n, const float *b, int ldb, float *dst)
{
    (void)trans_b; (void)k; (void)n; (void)b; (void)ldb; (void)dst;
    return 0;
}

static int fc_sgemm_b_prepacked(int trans_a, int m, int n, int k, const float *a, int lda,
                                const float *pb, float *c, int ldc)
{
    (void)trans_a; (void)m; (void)n; (void)k; (void)a; (void)lda; (void)pb; (void)c; (void)ldc;
    return 0;
}

#endif
#endif
