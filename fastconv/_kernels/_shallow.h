/* Shallow GEMM loops shared by conv.pyx (im2col's shallow path) and direct.pyx (implicit GEMM).

   OpenBLAS runs GEMMs with an inner dimension or a row count of 9-27 at ~25 % of its sgemm
   rate. These loops keep a block of output columns in vector registers while they sum over the
   short dimension. Their "B" operand is a set of T rows given by a ROW(t) macro: rows of a
   column buffer (B + t*ldb) for im2col, or rows of a padded image at offsets boff[t] for the
   implicit GEMM, so one loop body serves both. On x86 each loop is compiled for AVX-512,
   AVX2+FMA and the baseline and picked per call by CPU features, so the modules still run on
   any x86-64 CPU (plain build elsewhere). Every including module has its own fc_isa_cap. */
#ifndef FC_SHALLOW_H
#define FC_SHALLOW_H

#include <stddef.h>

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define FC_X86 1
#define FC_AVX512 __attribute__((target("avx512f,avx512vl,avx2,fma")))
#define FC_AVX2 __attribute__((target("avx2,fma")))
#else
#define FC_X86 0
#endif

/* The same body compiled for AVX-512, AVX2+FMA and the baseline, chosen per call by CPU
   features (arch-based target_clones would match CPU models, not features). Each variant gets
   GCC vector-extension types of its own register width (64, 32 and 16 bytes): a 64-byte type
   in an AVX2 function is lowered to stack spills, ~10x slower (measured on Zen 3). Locals of
   these types stay in registers, where gcc spilled plain accumulator arrays to the stack; they
   are unaligned and may alias their element type. */
#define FC_VEC(REAL, BYTES) REAL __attribute__((vector_size(BYTES), aligned(sizeof(REAL)), may_alias))
typedef FC_VEC(float, 64) fc_vf64;
typedef FC_VEC(float, 32) fc_vf32;
typedef FC_VEC(float, 16) fc_vf16;
typedef FC_VEC(double, 64) fc_vd64;
typedef FC_VEC(double, 32) fc_vd32;
typedef FC_VEC(double, 16) fc_vd16;

/* Highest variant the dispatch may pick (3 AVX-512, 2 AVX2, 1 baseline): lowered only by tests,
   so every variant the CPU runs is checked on it. */
static int fc_isa_cap = 3;
#if FC_X86
static int fc_isa_level(void) {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl")) return 3;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return 2;
    return 1;
}
#define FC_DISPATCH(NAME, BODY, REAL, VT, PARAMS, ARGS)                                      \
static FC_AVX512 void NAME##_avx512 PARAMS BODY(REAL, VT##64)                                \
static FC_AVX2 void NAME##_avx2 PARAMS BODY(REAL, VT##32)                                    \
static void NAME##_base PARAMS BODY(REAL, VT##16)                                            \
static void NAME PARAMS {                                                                    \
    int level = fc_isa_level();                                                              \
    if (level > fc_isa_cap) level = fc_isa_cap;                                              \
    if (level == 3) NAME##_avx512 ARGS;                                                      \
    else if (level == 2) NAME##_avx2 ARGS;                                                   \
    else NAME##_base ARGS;                                                                   \
}
#else
static int fc_isa_level(void) { return 1; }
#define FC_DISPATCH(NAME, BODY, REAL, VT, PARAMS, ARGS) static void NAME PARAMS BODY(REAL, VT##16)
#endif

#define FC_BLK_MAX 64
/* Columns per block of FC_NN_LOOP (4 vectors) for elements of real_size bytes in the variant
   the dispatch picks: callers that pad their rows round them up to this, not to FC_BLK_MAX. */
static Py_ssize_t fc_block_columns(size_t real_size) {
    int level = fc_isa_level();
    if (level > fc_isa_cap) level = fc_isa_cap;
    return (Py_ssize_t)(4 * (level == 3 ? 64 : level == 2 ? 32 : 16) / real_size);
}
#define FC_LD(VT, P) (*(const VT*)(P))
#define FC_ST(VT, P, V) (*(VT*)(P) = (V))
/* Keep a vector in a register (an empty asm that "modifies" it): stops gcc from folding its
   load into each FMA that uses it, i.e. from loading it once per use. */
#if FC_X86
#define FC_KEEP(V) __asm__("" : "+x"(V))
#else
#define FC_KEEP(V) ((void)0)
#endif

/* C[m, p] = init + sum_t A[m*as_m + t*as_t] * ROW(t)[p]  (m < M, p < L, t < T);
   init = bias[m] (bias != NULL), C[m, p] (accumulate != 0) or 0. Blocks of 4 vectors of
   columns, three or two rows at a time, then a last single row, all in registers; a last block
   of 1–3 whole vectors in tiles of 8 rows × 1 vector; other columns past the last full block
   one row at a time (the direct kernels pad their rows so this never runs). */
#define FC_NN_TILE_INIT(VT, c, m, x0, x1, x2, x3)                                           \
    if (accumulate) {                                                                        \
        x0 = FC_LD(VT, c); x1 = FC_LD(VT, c + VL); x2 = FC_LD(VT, c + 2 * VL); x3 = FC_LD(VT, c + 3 * VL); \
    } else {                                                                                 \
        x0 = x1 = x2 = x3 = (VT){0} + (bias ? bias[m] : 0);                                  \
    }
#define FC_NN_TILE_STORE(VT, c, x0, x1, x2, x3)                                             \
    FC_ST(VT, c, x0); FC_ST(VT, c + VL, x1); FC_ST(VT, c + 2 * VL, x2); FC_ST(VT, c + 3 * VL, x3);
#define FC_NN_LOOP(REAL, VT, ROW) {                                                          \
    const Py_ssize_t VL = sizeof(VT) / sizeof(REAL), BLK = 4 * VL;                           \
    for (Py_ssize_t p0 = 0; p0 < L; p0 += BLK) {                                             \
        Py_ssize_t r = L - p0 < BLK ? L - p0 : BLK;                                          \
        Py_ssize_t m = 0;                                                                    \
        if (r == BLK) {                                                                      \
            /* with 32 vector registers (64-byte vectors) four rows at a time (16 sums, each B  \
               vector loaded once for four FMAs: 1×3×32×32→16 forward loop 9.5 → 9.1–9.3 µs on \
               Zen 4); then three rows at a time (12 sums in registers, each B vector loaded   \
               once for three FMAs), then pairs and a last single row; 4 rows go as two pairs */ \
            if (sizeof(VT) == 64) for (; M - m >= 4; m += 4) {                               \
                const REAL *a0 = A + m * as_m, *a1 = a0 + as_m, *a2 = a1 + as_m, *a3 = a2 + as_m; \
                REAL *c0 = C + m * ldc + p0, *c1 = c0 + ldc, *c2 = c1 + ldc, *c3 = c2 + ldc;  \
                VT x0, x1, x2, x3, y0, y1, y2, y3, z0, z1, z2, z3, u0, u1, u2, u3;           \
                FC_NN_TILE_INIT(VT, c0, m, x0, x1, x2, x3)                                   \
                FC_NN_TILE_INIT(VT, c1, m + 1, y0, y1, y2, y3)                               \
                FC_NN_TILE_INIT(VT, c2, m + 2, z0, z1, z2, z3)                               \
                FC_NN_TILE_INIT(VT, c3, m + 3, u0, u1, u2, u3)                               \
                for (Py_ssize_t t = 0; t < T; t++) {                                         \
                    const REAL* b = ROW(t) + p0;                                             \
                    REAL w0 = a0[t * as_t], w1 = a1[t * as_t], w2 = a2[t * as_t], w3 = a3[t * as_t]; \
                    VT v = FC_LD(VT, b); FC_KEEP(v);                                         \
                    x0 += w0 * v; y0 += w1 * v; z0 += w2 * v; u0 += w3 * v;                  \
                    v = FC_LD(VT, b + VL); FC_KEEP(v);                                       \
                    x1 += w0 * v; y1 += w1 * v; z1 += w2 * v; u1 += w3 * v;                  \
                    v = FC_LD(VT, b + 2 * VL); FC_KEEP(v);                                   \
                    x2 += w0 * v; y2 += w1 * v; z2 += w2 * v; u2 += w3 * v;                  \
                    v = FC_LD(VT, b + 3 * VL); FC_KEEP(v);                                   \
                    x3 += w0 * v; y3 += w1 * v; z3 += w2 * v; u3 += w3 * v;                  \
                }                                                                            \
                FC_NN_TILE_STORE(VT, c0, x0, x1, x2, x3)                                     \
                FC_NN_TILE_STORE(VT, c1, y0, y1, y2, y3)                                     \
                FC_NN_TILE_STORE(VT, c2, z0, z1, z2, z3)                                     \
                FC_NN_TILE_STORE(VT, c3, u0, u1, u2, u3)                                     \
            }                                                                                \
            for (; M - m >= 3 && M - m != 4; m += 3) {                                       \
                const REAL *a0 = A + m * as_m, *a1 = a0 + as_m, *a2 = a1 + as_m;             \
                REAL *c0 = C + m * ldc + p0, *c1 = c0 + ldc, *c2 = c1 + ldc;                 \
                VT x0, x1, x2, x3, y0, y1, y2, y3, z0, z1, z2, z3;                           \
                FC_NN_TILE_INIT(VT, c0, m, x0, x1, x2, x3)                                   \
                FC_NN_TILE_INIT(VT, c1, m + 1, y0, y1, y2, y3)                               \
                FC_NN_TILE_INIT(VT, c2, m + 2, z0, z1, z2, z3)                               \
                for (Py_ssize_t t = 0; t < T; t++) {                                         \
                    const REAL* b = ROW(t) + p0;                                             \
                    REAL w0 = a0[t * as_t], w1 = a1[t * as_t], w2 = a2[t * as_t];            \
                    VT v = FC_LD(VT, b); FC_KEEP(v);                                         \
                    x0 += w0 * v; y0 += w1 * v; z0 += w2 * v;                                \
                    v = FC_LD(VT, b + VL); FC_KEEP(v);                                       \
                    x1 += w0 * v; y1 += w1 * v; z1 += w2 * v;                                \
                    v = FC_LD(VT, b + 2 * VL); FC_KEEP(v);                                   \
                    x2 += w0 * v; y2 += w1 * v; z2 += w2 * v;                                \
                    v = FC_LD(VT, b + 3 * VL); FC_KEEP(v);                                   \
                    x3 += w0 * v; y3 += w1 * v; z3 += w2 * v;                                \
                }                                                                            \
                FC_NN_TILE_STORE(VT, c0, x0, x1, x2, x3)                                     \
                FC_NN_TILE_STORE(VT, c1, y0, y1, y2, y3)                                     \
                FC_NN_TILE_STORE(VT, c2, z0, z1, z2, z3)                                     \
            }                                                                                \
            for (; m + 2 <= M; m += 2) {                                                     \
                const REAL *a0 = A + m * as_m, *a1 = a0 + as_m;                              \
                REAL *c0 = C + m * ldc + p0, *c1 = c0 + ldc;                                 \
                VT x0, x1, x2, x3, y0, y1, y2, y3;                                           \
                FC_NN_TILE_INIT(VT, c0, m, x0, x1, x2, x3)                                   \
                FC_NN_TILE_INIT(VT, c1, m + 1, y0, y1, y2, y3)                               \
                for (Py_ssize_t t = 0; t < T; t++) {                                         \
                    const REAL* b = ROW(t) + p0;                                             \
                    REAL w0 = a0[t * as_t], w1 = a1[t * as_t];                               \
                    VT b0 = FC_LD(VT, b), b1 = FC_LD(VT, b + VL), b2 = FC_LD(VT, b + 2 * VL), b3 = FC_LD(VT, b + 3 * VL); \
                    x0 += w0 * b0; x1 += w0 * b1; x2 += w0 * b2; x3 += w0 * b3;              \
                    y0 += w1 * b0; y1 += w1 * b1; y2 += w1 * b2; y3 += w1 * b3;              \
                }                                                                            \
                FC_NN_TILE_STORE(VT, c0, x0, x1, x2, x3)                                     \
                FC_NN_TILE_STORE(VT, c1, y0, y1, y2, y3)                                     \
            }                                                                                \
            if (m < M) {  /* last row: t split into even and odd halves, 8 independent sums */  \
                const REAL* a0 = A + m * as_m;                                               \
                REAL* c0 = C + m * ldc + p0;                                                 \
                VT x0, x1, x2, x3, y0 = {0}, y1 = {0}, y2 = {0}, y3 = {0};                   \
                FC_NN_TILE_INIT(VT, c0, m, x0, x1, x2, x3)                                   \
                Py_ssize_t t = 0;                                                            \
                for (; t + 2 <= T; t += 2) {                                                 \
                    const REAL *b = ROW(t) + p0, *e = ROW(t + 1) + p0;                       \
                    REAL w0 = a0[t * as_t], w1 = a0[(t + 1) * as_t];                         \
                    x0 += w0 * FC_LD(VT, b); x1 += w0 * FC_LD(VT, b + VL);                   \
                    x2 += w0 * FC_LD(VT, b + 2 * VL); x3 += w0 * FC_LD(VT, b + 3 * VL);      \
                    y0 += w1 * FC_LD(VT, e); y1 += w1 * FC_LD(VT, e + VL);                   \
                    y2 += w1 * FC_LD(VT, e + 2 * VL); y3 += w1 * FC_LD(VT, e + 3 * VL);      \
                }                                                                            \
                if (t < T) {                                                                 \
                    const REAL* b = ROW(t) + p0;                                             \
                    REAL w0 = a0[t * as_t];                                                  \
                    x0 += w0 * FC_LD(VT, b); x1 += w0 * FC_LD(VT, b + VL);                   \
                    x2 += w0 * FC_LD(VT, b + 2 * VL); x3 += w0 * FC_LD(VT, b + 3 * VL);      \
                }                                                                            \
                x0 += y0; x1 += y1; x2 += y2; x3 += y3;                                      \
                FC_NN_TILE_STORE(VT, c0, x0, x1, x2, x3)                                     \
                m++;                                                                         \
            }                                                                                \
        } else if (r % VL == 0) {                                                            \
            /* 1–3 whole vectors of columns (a 4×4 image is one): tiles of 8 rows × 1 vector, \
               each B vector loaded once for 8 FMAs, not a 4-vector block mostly dropped */   \
            for (Py_ssize_t q0 = p0; q0 < p0 + r; q0 += VL) {                                \
                Py_ssize_t mm = 0;                                                           \
                for (; M - mm >= 8; mm += 8) {                                               \
                    const REAL* a0 = A + mm * as_m;                                          \
                    REAL* c0 = C + mm * ldc + q0;                                            \
                    VT s[8];                                                                 \
                    for (int i = 0; i < 8; i++) {                                            \
                        if (accumulate) s[i] = FC_LD(VT, c0 + i * ldc);                      \
                        else s[i] = (VT){0} + (bias ? bias[mm + i] : 0);                     \
                    }                                                                        \
                    for (Py_ssize_t t = 0; t < T; t++) {                                     \
                        VT v = FC_LD(VT, ROW(t) + q0); FC_KEEP(v);                           \
                        const REAL* at = a0 + t * as_t;                                      \
                        for (int i = 0; i < 8; i++) s[i] += at[i * as_m] * v;                \
                    }                                                                        \
                    for (int i = 0; i < 8; i++) FC_ST(VT, c0 + i * ldc, s[i]);               \
                }                                                                            \
                for (; mm < M; mm++) {                                                       \
                    const REAL* a0 = A + mm * as_m;                                          \
                    REAL* c0 = C + mm * ldc + q0;                                            \
                    VT x;                                                                    \
                    if (accumulate) x = FC_LD(VT, c0);                                       \
                    else x = (VT){0} + (bias ? bias[mm] : 0);                                \
                    for (Py_ssize_t t = 0; t < T; t++) x += a0[t * as_t] * FC_LD(VT, ROW(t) + q0); \
                    FC_ST(VT, c0, x);                                                        \
                }                                                                            \
            }                                                                                \
            m = M;                                                                           \
        }                                                                                    \
        for (; m < M; m++) {                                                                 \
            const REAL* a = A + m * as_m;                                                    \
            REAL* c = C + m * ldc + p0;                                                      \
            REAL acc[FC_BLK_MAX];                                                            \
            REAL v = bias ? bias[m] : (REAL)0;                                               \
            for (Py_ssize_t q = 0; q < r; q++) acc[q] = accumulate ? c[q] : v;               \
            for (Py_ssize_t t = 0; t < T; t++) {                                             \
                const REAL* b = ROW(t) + p0;                                                 \
                REAL w0 = a[t * as_t];                                                       \
                for (Py_ssize_t q = 0; q < r; q++) acc[q] += w0 * b[q];                      \
            }                                                                                \
            for (Py_ssize_t q = 0; q < r; q++) c[q] = acc[q];                                \
        }                                                                                    \
    }                                                                                        \
}

/* D[m, t] += sum_p A[m*lda + p] * ROW(t)[p]  (m < M, t < T, p < L): A·Bᵀ, as tiles of R rows
   × 4 columns of D summed in 4·R vector partials, R = 4 with 64-byte vectors (32 registers:
   16 sums, 8 loads; half a load per FMA) and R = 2 otherwise (16 registers: 8 sums, 6 loads).
   Rows past M repeat the last row, whose sums are dropped; a last tile of fewer than 4 columns
   computes only those (FC_NT_BY_TAPS). FC_KEEP holds each loaded vector in a register for all its FMAs: left alone, gcc folds
   the loads into the FMAs and loads every B vector once per row, which made the loop load-bound
   (dW of a 1×3×32×32→16 conv: 18.7 → 12.6 µs on Zen 3 with R = 2; chunking the sum over p to
   keep the rows in L1 gained nothing). The 4-row tile took that dW from 16.1 to ~11.5 µs on Zen 4
   (unaligned 64-byte loads cost two load slots there, so loads per FMA bound the loop).
   When L is not a multiple of the vector width (but at least one vector), the last partial
   vector is the one ending at L, its products masked to the lanes the full vectors did not
   cover (bit-and with a lane mask: exact, and nothing past the rows is read); element by
   element it cost 1.2 of those 13 µs (L = 1086). Shorter rows go element by element.
   rowsum[m] += sum_p A[m*lda + p] when rowsum != NULL (conv's bias gradient). */
#define FC_NT_TAPS(REAL, ROW)                                                                \
    const Py_ssize_t last = T - 1;                                                           \
    const REAL *b0 = ROW(t), *b1 = ROW(t + 1 < T ? t + 1 : last);                            \
    const REAL *b2 = ROW(t + 2 < T ? t + 2 : last), *b3 = ROW(t + 3 < T ? t + 3 : last);
/* r[0..3] += the lane sums of s0..s3: each folded to one 16-byte vector (halves added), then
   a 4 x 4 (float) or 2 x 2 (double) transpose-and-add. Lane by lane, these sums cost 256 scalar
   adds per 4 x 4 tile, a fifth of the dW loop at L = 1088 (78 % of sgemm there, 102 % at 4352). */
#define FC_NT_FOLD16(REAL, VT, s, out) {                                                     \
    typedef REAL fc_h32_ __attribute__((vector_size(32), aligned(sizeof(REAL)), may_alias)); \
    if (sizeof(VT) == 64) {                                                                  \
        fc_h32_ a_ = ((const fc_h32_*)&(s))[0] + ((const fc_h32_*)&(s))[1];                  \
        out = ((const __typeof__(out)*)&a_)[0] + ((const __typeof__(out)*)&a_)[1];           \
    } else if (sizeof(VT) == 32) {                                                           \
        out = ((const __typeof__(out)*)&(s))[0] + ((const __typeof__(out)*)&(s))[1];         \
    } else {                                                                                 \
        out = *(const __typeof__(out)*)&(s);                                                 \
    }                                                                                        \
}
#define FC_NT_HSUM4_float(VT, s0, s1, s2, s3, r) {                                          \
    typedef int fc_i4_ __attribute__((vector_size(16)));                                     \
    fc_vf16 a, b, c, d;                                                                      \
    FC_NT_FOLD16(float, VT, s0, a) FC_NT_FOLD16(float, VT, s1, b)                            \
    FC_NT_FOLD16(float, VT, s2, c) FC_NT_FOLD16(float, VT, s3, d)                            \
    fc_vf16 ab = __builtin_shuffle(a, b, (fc_i4_){0, 4, 1, 5}) + __builtin_shuffle(a, b, (fc_i4_){2, 6, 3, 7}); \
    fc_vf16 cd = __builtin_shuffle(c, d, (fc_i4_){0, 4, 1, 5}) + __builtin_shuffle(c, d, (fc_i4_){2, 6, 3, 7}); \
    fc_vf16 t4 = __builtin_shuffle(ab, cd, (fc_i4_){0, 1, 4, 5}) + __builtin_shuffle(ab, cd, (fc_i4_){2, 3, 6, 7}); \
    r[0] += t4[0]; r[1] += t4[1]; r[2] += t4[2]; r[3] += t4[3];                              \
}
#define FC_NT_HSUM4_double(VT, s0, s1, s2, s3, r) {                                         \
    typedef long long fc_l2_ __attribute__((vector_size(16)));                               \
    fc_vd16 a, b, c, d;                                                                      \
    FC_NT_FOLD16(double, VT, s0, a) FC_NT_FOLD16(double, VT, s1, b)                          \
    FC_NT_FOLD16(double, VT, s2, c) FC_NT_FOLD16(double, VT, s3, d)                          \
    fc_vd16 ab = __builtin_shuffle(a, b, (fc_l2_){0, 2}) + __builtin_shuffle(a, b, (fc_l2_){1, 3}); \
    fc_vd16 cd = __builtin_shuffle(c, d, (fc_l2_){0, 2}) + __builtin_shuffle(c, d, (fc_l2_){1, 3}); \
    r[0] += ab[0]; r[1] += ab[1]; r[2] += cd[0]; r[3] += cd[1];                              \
}
#define FC_NT_HSUM4(REAL, VT, s0, s1, s2, s3, r) FC_NT_HSUM4_##REAL(VT, s0, s1, s2, s3, r)
#define FC_NT_TAIL(a, r)                                                                     \
    if (!masked) for (Py_ssize_t p = LV; p < L; p++) {                                       \
        r[0] += a[p] * b0[p]; r[1] += a[p] * b1[p]; r[2] += a[p] * b2[p]; r[3] += a[p] * b3[p]; \
    }
#define FC_NT_STORE(row, ok, r)                                                              \
    if (ok) for (int q = 0; q < 4 && t + q < T; q++) D[(row) * ldd + t + q] += r[q];
/* One vector of columns at p of a tile row: s_i0..s_i(NB-1) += u · v0..v(NB-1) through OP. NB,
   the tile's taps (4, or 1-3 for the last tile of a row), is a constant: a last tile of fewer
   taps computes only those (repeating the last tap cost 1 of every 28 FMAs of the 27-tap dW of
   a 3-channel 3×3 conv and 3 of 12 for a 1-channel one). */
#define FC_NT_FMA(OP, NB, u, si0, si1, si2, si3)                                             \
    si0 += OP(u * v0);                                                                       \
    if (NB > 1) si1 += OP(u * v1);                                                           \
    if (NB > 2) si2 += OP(u * v2);                                                           \
    if (NB > 3) si3 += OP(u * v3);
#define FC_NT_PLAIN(x) (x)
#define FC_NT_MASKED(x) ((__typeof__(x))((VI)(x) & keep))
#define FC_NT_LOAD_TAPS(VT, NB)                                                              \
    VT v0 = FC_LD(VT, b0 + p); FC_KEEP(v0);                                                  \
    VT v1 = NB > 1 ? FC_LD(VT, b1 + p) : v0; if (NB > 1) FC_KEEP(v1);                        \
    VT v2 = NB > 2 ? FC_LD(VT, b2 + p) : v0; if (NB > 2) FC_KEEP(v2);                        \
    VT v3 = NB > 3 ? FC_LD(VT, b3 + p) : v0; if (NB > 3) FC_KEEP(v3);
#define FC_NT_STEP2(VT, OP, NB) {                                                            \
    VT u0 = FC_LD(VT, a0 + p), u1 = FC_LD(VT, a1 + p);                                       \
    FC_NT_LOAD_TAPS(VT, NB)                                                                  \
    FC_NT_FMA(OP, NB, u0, s00, s01, s02, s03) FC_NT_FMA(OP, NB, u1, s10, s11, s12, s13)      \
}
#define FC_NT_STEP4(VT, OP, NB) {                                                            \
    FC_NT_LOAD_TAPS(VT, NB)                                                                  \
    VT u = FC_LD(VT, a0 + p); FC_KEEP(u);                                                    \
    FC_NT_FMA(OP, NB, u, s00, s01, s02, s03)                                                 \
    u = FC_LD(VT, a1 + p); FC_KEEP(u);                                                       \
    FC_NT_FMA(OP, NB, u, s10, s11, s12, s13)                                                 \
    u = FC_LD(VT, a2 + p); FC_KEEP(u);                                                       \
    FC_NT_FMA(OP, NB, u, s20, s21, s22, s23)                                                 \
    u = FC_LD(VT, a3 + p); FC_KEEP(u);                                                       \
    FC_NT_FMA(OP, NB, u, s30, s31, s32, s33)                                                 \
}
/* the sums of one tile of rows × NB taps over the row (full vectors, then the masked one) */
#define FC_NT_SUMS2(VT, NB) {                                                                \
    for (Py_ssize_t p = 0; p < LV; p += VL) FC_NT_STEP2(VT, FC_NT_PLAIN, NB)                 \
    if (masked) { const Py_ssize_t p = L - VL; FC_NT_STEP2(VT, FC_NT_MASKED, NB) }           \
}
#define FC_NT_SUMS4(VT, NB) {                                                                \
    for (Py_ssize_t p = 0; p < LV; p += VL) FC_NT_STEP4(VT, FC_NT_PLAIN, NB)                 \
    if (masked) { const Py_ssize_t p = L - VL; FC_NT_STEP4(VT, FC_NT_MASKED, NB) }           \
}
/* SUMS(VT, NB) for the taps this tile has */
#define FC_NT_BY_TAPS(SUMS, VT)                                                              \
    if (T - t >= 4) SUMS(VT, 4) else if (T - t == 3) SUMS(VT, 3)                             \
    else if (T - t == 2) SUMS(VT, 2) else SUMS(VT, 1)
#define FC_NT_ROWS2(REAL, VT, ROW)                                                           \
    for (Py_ssize_t m = 0; m < M; m += 2) {                                                  \
        const int ok1 = m + 1 < M;                                                           \
        const REAL *a0 = A + m * lda, *a1 = ok1 ? a0 + lda : a0;                             \
        for (Py_ssize_t t = 0; t < T; t += 4) {                                              \
            FC_NT_TAPS(REAL, ROW)                                                            \
            VT s00 = {0}, s01 = {0}, s02 = {0}, s03 = {0};                                   \
            VT s10 = {0}, s11 = {0}, s12 = {0}, s13 = {0};                                   \
            FC_NT_BY_TAPS(FC_NT_SUMS2, VT)                                                   \
            REAL r0[4] = {0}, r1[4] = {0};                                                   \
            FC_NT_HSUM4(REAL, VT, s00, s01, s02, s03, r0)                                     \
            FC_NT_HSUM4(REAL, VT, s10, s11, s12, s13, r1)                                     \
            FC_NT_TAIL(a0, r0) FC_NT_TAIL(a1, r1)                                            \
            FC_NT_STORE(m, 1, r0) FC_NT_STORE(m + 1, ok1, r1)                                \
        }                                                                                    \
    }
#define FC_NT_ROWS4(REAL, VT, ROW)                                                           \
    for (Py_ssize_t m = 0; m < M; m += 4) {                                                  \
        const int ok1 = m + 1 < M, ok2 = m + 2 < M, ok3 = m + 3 < M;                         \
        const REAL* a0 = A + m * lda;                                                        \
        const REAL* a1 = ok1 ? a0 + lda : a0;                                                \
        const REAL* a2 = ok2 ? a0 + 2 * lda : a1;                                            \
        const REAL* a3 = ok3 ? a0 + 3 * lda : a2;                                            \
        for (Py_ssize_t t = 0; t < T; t += 4) {                                              \
            FC_NT_TAPS(REAL, ROW)                                                            \
            VT s00 = {0}, s01 = {0}, s02 = {0}, s03 = {0};                                   \
            VT s10 = {0}, s11 = {0}, s12 = {0}, s13 = {0};                                   \
            VT s20 = {0}, s21 = {0}, s22 = {0}, s23 = {0};                                   \
            VT s30 = {0}, s31 = {0}, s32 = {0}, s33 = {0};                                   \
            FC_NT_BY_TAPS(FC_NT_SUMS4, VT)                                                   \
            REAL r0[4] = {0}, r1[4] = {0}, r2[4] = {0}, r3[4] = {0};                         \
            FC_NT_HSUM4(REAL, VT, s00, s01, s02, s03, r0)                                     \
            FC_NT_HSUM4(REAL, VT, s10, s11, s12, s13, r1)                                     \
            FC_NT_HSUM4(REAL, VT, s20, s21, s22, s23, r2)                                     \
            FC_NT_HSUM4(REAL, VT, s30, s31, s32, s33, r3)                                     \
            FC_NT_TAIL(a0, r0) FC_NT_TAIL(a1, r1) FC_NT_TAIL(a2, r2) FC_NT_TAIL(a3, r3)      \
            FC_NT_STORE(m, 1, r0) FC_NT_STORE(m + 1, ok1, r1)                                \
            FC_NT_STORE(m + 2, ok2, r2) FC_NT_STORE(m + 3, ok3, r3)                          \
        }                                                                                    \
    }
#define FC_NT_LOOP(REAL, VT, ROW) {                                                          \
    /* lane-wise integers of REAL's width */                                                 \
    typedef __typeof__(_Generic((REAL)0, float: (int)0, default: (long long)0)) VI __attribute__((vector_size(sizeof(VT)))); \
    const Py_ssize_t VL = sizeof(VT) / sizeof(REAL), LV = L - L % VL;                        \
    const int masked = LV < L && L >= VL;                                                    \
    VI keep = {0};  /* lanes of the vector ending at L that the full vectors did not cover */ \
    for (Py_ssize_t q = 0; q < VL; q++) keep[q] = L - VL + q >= LV ? -1 : 0;                 \
    if (sizeof(VT) == 64) { FC_NT_ROWS4(REAL, VT, ROW) } else { FC_NT_ROWS2(REAL, VT, ROW) } \
    if (rowsum) {                                                                            \
        for (Py_ssize_t mm = 0; mm < M; mm++) {                                              \
            const REAL* a = A + mm * lda;                                                    \
            VT s0 = {0}, s1 = {0};                                                           \
            Py_ssize_t p = 0;                                                                \
            for (; p + 2 * VL <= LV; p += 2 * VL) {                                          \
                s0 += FC_LD(VT, a + p); s1 += FC_LD(VT, a + p + VL);                         \
            }                                                                                \
            for (; p < LV; p += VL) s0 += FC_LD(VT, a + p);                                  \
            REAL r0 = 0;                                                                     \
            for (Py_ssize_t q = 0; q < VL; q++) r0 += s0[q] + s1[q];                         \
            for (; p < L; p++) r0 += a[p];                                                   \
            rowsum[mm] += r0;                                                                \
        }                                                                                    \
    }                                                                                        \
}

#endif /* FC_SHALLOW_H */
