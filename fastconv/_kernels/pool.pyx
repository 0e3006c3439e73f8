# cython: language_level=3
"""Pooling kernels on (planes, H, W) arrays: max with switches, unpool, average, adaptive windows.

Every kernel parallelizes over planes (N·C), so each thread owns whole output and input planes:
scatter-adds in backward never race, and every plane is computed the same way whatever the
thread count (results are deterministic). Planes are handed out with a guided schedule (a thread
that is preempted leaves its remaining planes to the others), and calls touching fewer than
MIN_ELEMENTS_PER_THREAD elements per thread use fewer threads (one region's fork/join costs more
than such a share of the work). Shapes, dtypes, contiguity, index ranges and window
geometry are validated in Python (fastconv/nn/functional/pooling.py) before any call here.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport INFINITY
from libc.stdint cimport int32_t, int64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memset

from ._omp cimport team_for_work

cdef double MIN_ELEMENTS_PER_THREAD = 1 << 15  # see docs/design.md §2, "When to go parallel"

ctypedef fused index_t:
    # switches: int32 when only backward needs them (half the memory traffic), int64 when returned
    int32_t
    int64_t


cdef extern from *:
    """
    #include <stdint.h>
    #include <string.h>
    /* Branch-free selects (c ? a : b): on random data a branch would mispredict half the time,
       and compilers turn a plain float ternary back into a branch. */
    static inline float fc_select_float(int c, float a, float b) {
        uint32_t ua, ub, m = (uint32_t)0 - (uint32_t)(c != 0);
        memcpy(&ua, &a, 4); memcpy(&ub, &b, 4);
        ua = (ua & m) | (ub & ~m);
        memcpy(&a, &ua, 4);
        return a;
    }
    static inline double fc_select_double(int c, double a, double b) {
        uint64_t ua, ub, m = (uint64_t)0 - (uint64_t)(c != 0);
        memcpy(&ua, &a, 8); memcpy(&ub, &b, 8);
        ua = (ua & m) | (ub & ~m);
        memcpy(&a, &ua, 8);
        return a;
    }
    static inline Py_ssize_t fc_select_index(int c, Py_ssize_t a, Py_ssize_t b) {
        Py_ssize_t m = -(Py_ssize_t)(c != 0);
        return (a & m) | (b & ~m);
    }
    /* 2x2 windows at stride 2 on AVX-512 (float32): outputs [0, n) of one row from input rows
       r0, r1 (window ow reads columns 2ow, 2ow+1), 16 at a time, with PyTorch's max rule in
       row-major tap order; the switches (r0's row index h0 in the plane of width W) as int32
       (i32) or int64 (i64), or none. The loops that compilers make of the scalar code load the
       even and odd columns one element at a time; here two loads and two permutes a row. */
    #if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    #include <immintrin.h>
    #define FC_POOL_X86 1
    __attribute__((target("avx512f"))) static void fc_max2x2_row512(
            const float *r0, const float *r1, ptrdiff_t n, float *o, int32_t *i32, int64_t *i64,
            ptrdiff_t base, ptrdiff_t W) {
        const __m512i ev = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        const __m512i od = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
        const __m512i two = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        for (ptrdiff_t ow = 0; ow < n; ow += 16) {
            ptrdiff_t m = n - ow < 16 ? n - ow : 16;
            __mmask16 lo = m >= 8 ? 0xFFFF : (__mmask16)((1u << (2 * m)) - 1u);
            __mmask16 hi = m > 8 ? (__mmask16)((1u << (2 * m - 16)) - 1u) : 0;
            if (m == 16) hi = 0xFFFF;
            __m512 a0 = _mm512_maskz_loadu_ps(lo, r0 + 2 * ow), a1 = _mm512_maskz_loadu_ps(hi, r0 + 2 * ow + 16);
            __m512 b0 = _mm512_maskz_loadu_ps(lo, r1 + 2 * ow), b1 = _mm512_maskz_loadu_ps(hi, r1 + 2 * ow + 16);
            __m512 best = _mm512_permutex2var_ps(a0, ev, a1), v;
            __m512i k = _mm512_setzero_si512();
            __mmask16 up;
            v = _mm512_permutex2var_ps(a0, od, a1);
            up = _mm512_cmp_ps_mask(v, best, _CMP_GT_OQ) | _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
            best = _mm512_mask_mov_ps(best, up, v); k = _mm512_mask_mov_epi32(k, up, _mm512_set1_epi32(1));
            v = _mm512_permutex2var_ps(b0, ev, b1);
            up = _mm512_cmp_ps_mask(v, best, _CMP_GT_OQ) | _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
            best = _mm512_mask_mov_ps(best, up, v); k = _mm512_mask_mov_epi32(k, up, _mm512_set1_epi32((int)W));
            v = _mm512_permutex2var_ps(b0, od, b1);
            up = _mm512_cmp_ps_mask(v, best, _CMP_GT_OQ) | _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
            best = _mm512_mask_mov_ps(best, up, v); k = _mm512_mask_mov_epi32(k, up, _mm512_set1_epi32((int)W + 1));
            __mmask16 out = (__mmask16)((m == 16) ? 0xFFFF : ((1u << m) - 1u));
            _mm512_mask_storeu_ps(o + ow, out, best);
            if (i32 != NULL || i64 != NULL) {
                /* switch = base + 2 ow + tap offset (0, 1, W, W + 1); base + 2 ow fits int32 when
                   the caller asks for int32 switches */
                __m512i idx = _mm512_add_epi32(_mm512_add_epi32(two, k), _mm512_set1_epi32((int)(2 * ow)));
                if (i32 != NULL) {
                    _mm512_mask_storeu_epi32(i32 + ow, out, _mm512_add_epi32(idx, _mm512_set1_epi32((int)base)));
                } else {
                    __m512i q0 = _mm512_add_epi64(_mm512_cvtepi32_epi64(_mm512_castsi512_si256(idx)), _mm512_set1_epi64(base));
                    __m512i q1 = _mm512_add_epi64(_mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(idx, 1)), _mm512_set1_epi64(base));
                    _mm512_mask_storeu_epi64(i64 + ow, (__mmask8)(out & 0xFF), q0);
                    _mm512_mask_storeu_epi64(i64 + ow + 8, (__mmask8)(out >> 8), q1);
                }
            }
        }
    }
    static int fc_pool_avx512(void) {
        static int level = -1;
        if (level < 0) level = __builtin_cpu_supports("avx512f") ? 1 : 0;
        return level;
    }
    #else
    #define FC_POOL_X86 0
    static void fc_max2x2_row512(const float *r0, const float *r1, ptrdiff_t n, float *o, int32_t *i32,
                                 int64_t *i64, ptrdiff_t base, ptrdiff_t W) {
        (void)r0; (void)r1; (void)n; (void)o; (void)i32; (void)i64; (void)base; (void)W;
    }
    static int fc_pool_avx512(void) { return 0; }
    #endif
    """
    float fc_select_float(int c, float a, float b) noexcept nogil
    double fc_select_double(int c, double a, double b) noexcept nogil
    Py_ssize_t fc_select_index(int c, Py_ssize_t a, Py_ssize_t b) noexcept nogil
    void fc_max2x2_row512(const float* r0, const float* r1, Py_ssize_t n, float* o, int32_t* i32,
                          int64_t* i64, Py_ssize_t base, Py_ssize_t W) noexcept nogil
    int fc_pool_avx512() noexcept nogil


cdef inline floating _select(int c, floating a, floating b) noexcept nogil:
    if floating is float:
        return fc_select_float(c, a, b)
    else:
        return fc_select_double(c, a, b)


cdef inline int _takes_max(floating v, floating best) noexcept nogil:
    """PyTorch's max rule: a larger value or any NaN replaces the current best (ties keep it)."""
    return (v > best) | (v != v)


cdef inline Py_ssize_t _first_tap(Py_ssize_t start, Py_ssize_t dilation) noexcept nogil:
    """Index of the first kernel tap k with start + k*dilation >= 0."""
    if start >= 0:
        return 0
    return (-start + dilation - 1) // dilation


cdef inline Py_ssize_t _end_tap(Py_ssize_t start, Py_ssize_t kernel, Py_ssize_t dilation,
                                Py_ssize_t size) noexcept nogil:
    """One past the last kernel tap k with start + k*dilation < size (at most kernel)."""
    cdef Py_ssize_t n
    if start >= size:
        return 0
    n = (size - start + dilation - 1) // dilation
    return n if n < kernel else kernel


cdef Py_ssize_t* _tap_ranges(Py_ssize_t n_out, Py_ssize_t size, Py_ssize_t kernel, Py_ssize_t stride,
                              Py_ssize_t padding, Py_ssize_t dilation) noexcept nogil:
    """For each output position o: [first tap, end tap) inside the input (2*n_out entries, malloc'd)."""
    cdef Py_ssize_t* r = <Py_ssize_t*>malloc(2 * n_out * sizeof(Py_ssize_t) + 1)
    cdef Py_ssize_t o, start
    if r == NULL:
        return NULL
    for o in range(n_out):
        start = o * stride - padding
        r[2 * o] = _first_tap(start, dilation)
        r[2 * o + 1] = _end_tap(start, kernel, dilation, size)
    return r


cdef inline void _max_window(const floating* plane, Py_ssize_t W, Py_ssize_t h0, Py_ssize_t w0,
                             Py_ssize_t i0, Py_ssize_t i1, Py_ssize_t j0, Py_ssize_t j1,
                             Py_ssize_t dh, Py_ssize_t dw, floating* best_out, index_t* pos_out) noexcept nogil:
    """Max of one window over its in-bounds taps [i0, i1) x [j0, j1); position stored when pos_out.

    A window without in-bounds taps (possible with dilation and ceil_mode) yields -inf and -1.
    """
    cdef Py_ssize_t i, j, pos
    cdef Py_ssize_t best_pos = (h0 + i0 * dh) * W + w0 + j0 * dw if i0 < i1 and j0 < j1 else -1
    cdef floating v, best = -INFINITY
    cdef int upd
    for i in range(i0, i1):
        pos = (h0 + i * dh) * W + w0
        for j in range(j0, j1):
            v = plane[pos + j * dw]
            upd = _takes_max(v, best)
            best = _select(upd, v, best)
            best_pos = fc_select_index(upd, pos + j * dw, best_pos)
    best_out[0] = best
    if pos_out != NULL:
        pos_out[0] = <index_t>best_pos


cdef inline void _max_row_interior(const floating* plane, Py_ssize_t W, Py_ssize_t h0, Py_ssize_t i0,
                                   Py_ssize_t i1, Py_ssize_t kw, Py_ssize_t sw, Py_ssize_t pw,
                                   Py_ssize_t dh, Py_ssize_t dw, Py_ssize_t c0, Py_ssize_t c1,
                                   floating* o_row, index_t* i_row) noexcept nogil:
    """Outputs c0..c1 of one row, whose windows lie inside the input horizontally.

    Taps are visited in the same row-major order for every output, but the loop over outputs is
    innermost: the max chains of neighbouring outputs are independent, so they overlap in the CPU.
    Without such outputs (windows clipped by a huge kernel or padding) nothing is visited: the
    tap loops would cost kh·kw with nothing to compute.
    """
    cdef Py_ssize_t ow, i, j, w, off, row_start
    cdef const floating* row
    cdef floating v
    cdef int upd
    if c1 <= c0:
        return
    for ow in range(c0, c1):
        o_row[ow] = -INFINITY
        if i_row != NULL:
            i_row[ow] = <index_t>((h0 + i0 * dh) * W + ow * sw - pw if i0 < i1 else -1)
    for i in range(i0, i1):
        row_start = (h0 + i * dh) * W
        row = plane + row_start
        for j in range(kw):
            off = j * dw - pw
            if i_row != NULL:
                for ow in range(c0, c1):
                    w = ow * sw + off
                    v = row[w]
                    upd = _takes_max(v, o_row[ow])
                    o_row[ow] = _select(upd, v, o_row[ow])
                    i_row[ow] = <index_t>fc_select_index(upd, row_start + w, i_row[ow])
            else:
                for ow in range(c0, c1):
                    v = row[ow * sw + off]
                    o_row[ow] = _select(_takes_max(v, o_row[ow]), v, o_row[ow])


cdef inline void _max_row_2x2(const floating* plane, Py_ssize_t W, Py_ssize_t h0, Py_ssize_t sw,
                              Py_ssize_t pw, Py_ssize_t c0, Py_ssize_t c1, floating* o_row,
                              index_t* i_row) noexcept nogil:
    """``_max_row_interior`` for 2x2 windows (dilation 1) whose two rows are inside the input: the
    four taps in registers, visited in the same row-major order with the same max rule; the winning
    tap k (0..3) is kept by integer arithmetic, so the loop has no branches (and vectorizes for
    float32)."""
    cdef const floating* r0 = plane + h0 * W
    cdef const floating* r1 = r0 + W
    cdef Py_ssize_t ow, w
    cdef floating best, v
    cdef int upd, k
    if floating is float:  # stride 2, no padding inside [c0, c1): the AVX-512 loop
        if sw == 2 and c1 > c0 and fc_pool_avx512():
            w = c0 * 2 - pw
            if index_t is int32_t:
                fc_max2x2_row512(r0 + w, r1 + w, c1 - c0, o_row + c0, i_row + c0 if i_row != NULL else NULL,
                                 NULL, h0 * W + w, W)
            else:
                fc_max2x2_row512(r0 + w, r1 + w, c1 - c0, o_row + c0, NULL,
                                 i_row + c0 if i_row != NULL else NULL, h0 * W + w, W)
            return
    if i_row != NULL:
        for ow in range(c0, c1):
            w = ow * sw - pw
            best = r0[w]
            v = r0[w + 1]
            upd = _takes_max(v, best)
            best = _select(upd, v, best)
            k = upd
            v = r1[w]
            upd = _takes_max(v, best)
            best = _select(upd, v, best)
            k = k + upd * (2 - k)
            v = r1[w + 1]
            upd = _takes_max(v, best)
            o_row[ow] = _select(upd, v, best)
            k = k + upd * (3 - k)
            i_row[ow] = <index_t>((h0 + (k >> 1)) * W + w + (k & 1))
    else:
        for ow in range(c0, c1):
            w = ow * sw - pw
            best = r0[w]
            v = r0[w + 1]
            best = _select(_takes_max(v, best), v, best)
            v = r1[w]
            best = _select(_takes_max(v, best), v, best)
            v = r1[w + 1]
            o_row[ow] = _select(_takes_max(v, best), v, best)


def max_pool2d_forward(const floating[:, :, ::1] x, floating[:, :, ::1] out, index_t[:, :, ::1] idx,
                       Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw,
                       Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t dh, Py_ssize_t dw, bint with_indices):
    """Window maxima and their flat positions h*W+w in the input plane.

    Padding never wins (it acts as -inf); ties keep the first maximum in row-major window
    order; a NaN wins over numbers and a later NaN over an earlier one (PyTorch's rule). A window
    with no tap inside the input gives -inf and index -1 (PyTorch's index there points outside the
    window). ``idx`` is written only when ``with_indices``. The in-bounds tap ranges of every window row
    and column are tabulated once; columns whose windows lie inside the input take a fast path.
    """
    cdef Py_ssize_t P = x.shape[0], H = x.shape[1], W = x.shape[2]
    cdef Py_ssize_t OH = out.shape[1], OW = out.shape[2]
    cdef Py_ssize_t p, oh, ow, i0, i1, h0, c0, c1, last
    cdef const floating* plane
    cdef floating* o_row
    cdef index_t* i_row
    cdef Py_ssize_t* rows
    cdef Py_ssize_t* cols
    # the common 2x2 window: a branch-free loop that gcc vectorizes for float32 (6-7 ns -> 2.5 ns
    # per output at 1 thread); for float64 it does not, and the general loop is faster there
    cdef bint pair = floating is float and kh == 2 and kw == 2 and dh == 1 and dw == 1
    # interior columns: w0 = ow*sw - pw >= 0 and w0 + (kw-1)*dw <= W-1
    c0 = (pw + sw - 1) // sw
    last = W - 1 - (kw - 1) * dw + pw
    c1 = last // sw + 1 if last >= 0 else 0
    if c1 > OW:
        c1 = OW
    if c0 > OW:
        c0 = OW
    if c1 < c0:
        c1 = c0
    rows = _tap_ranges(OH, H, kh, sh, ph, dh)
    cols = _tap_ranges(OW, W, kw, sw, pw, dw)
    if rows == NULL or cols == NULL:
        free(rows)
        free(cols)
        raise MemoryError()
    try:
        for p in prange(P, nogil=True, schedule='guided',
                            num_threads=team_for_work(<double>P * (H * W), MIN_ELEMENTS_PER_THREAD)):
            plane = &x[p, 0, 0]
            for oh in range(OH):
                h0 = oh * sh - ph
                i0 = rows[2 * oh]
                i1 = rows[2 * oh + 1]
                o_row = &out[p, oh, 0]
                i_row = &idx[p, oh, 0] if with_indices else NULL
                for ow in range(c0):
                    _max_window(plane, W, h0, ow * sw - pw, i0, i1, cols[2 * ow], cols[2 * ow + 1], dh, dw,
                                o_row + ow, i_row + ow if with_indices else NULL)
                if pair and i0 == 0 and i1 == 2:
                    _max_row_2x2(plane, W, h0, sw, pw, c0, c1, o_row, i_row)
                else:
                    _max_row_interior(plane, W, h0, i0, i1, kw, sw, pw, dh, dw, c0, c1, o_row, i_row)
                for ow in range(c1, OW):
                    _max_window(plane, W, h0, ow * sw - pw, i0, i1, cols[2 * ow], cols[2 * ow + 1], dh, dw,
                                o_row + ow, i_row + ow if with_indices else NULL)
    finally:
        free(rows)
        free(cols)


def adaptive_max_pool2d_forward(const floating[:, :, ::1] x, floating[:, :, ::1] out,
                                index_t[:, :, ::1] idx, bint with_indices):
    """Maxima over PyTorch's adaptive windows [floor(i*H/OH), ceil((i+1)*H/OH)), with positions."""
    cdef Py_ssize_t P = x.shape[0], H = x.shape[1], W = x.shape[2]
    cdef Py_ssize_t OH = out.shape[1], OW = out.shape[2]
    cdef Py_ssize_t p, oh, ow, h, w, h0, h1, w0, w1, best_pos
    cdef floating v, best
    cdef int upd
    for p in prange(P, nogil=True, schedule='guided',
                        num_threads=team_for_work(<double>P * (H * W), MIN_ELEMENTS_PER_THREAD)):
        for oh in range(OH):
            h0 = (oh * H) // OH
            h1 = ((oh + 1) * H + OH - 1) // OH
            for ow in range(OW):
                w0 = (ow * W) // OW
                w1 = ((ow + 1) * W + OW - 1) // OW
                best = -INFINITY
                best_pos = h0 * W + w0
                for h in range(h0, h1):
                    for w in range(w0, w1):
                        v = x[p, h, w]
                        upd = _takes_max(v, best)
                        best = _select(upd, v, best)
                        best_pos = fc_select_index(upd, h * W + w, best_pos)
                out[p, oh, ow] = best
                if with_indices:
                    idx[p, oh, ow] = <index_t>best_pos


def scatter_add_planes(const floating[:, ::1] src, const index_t[:, ::1] idx, floating[:, ::1] dst):
    """dst[p] = 0, then dst[p, idx[p, k]] += src[p, k]: the max-pool backward (switch routing).

    Indices outside [0, L) are skipped, so no input can make it write out of bounds.
    """
    cdef Py_ssize_t P = dst.shape[0], L = dst.shape[1], M = src.shape[1]
    cdef Py_ssize_t p, k, q
    for p in prange(P, nogil=True, schedule='guided',
                        num_threads=team_for_work(<double>P * (L + M), MIN_ELEMENTS_PER_THREAD)):
        memset(&dst[p, 0], 0, L * sizeof(floating))
        for k in range(M):
            q = idx[p, k]
            if 0 <= q < L:  # an empty window's switch points outside the plane: no gradient
                dst[p, q] += src[p, k]


def scatter_planes(const floating[:, ::1] src, const int64_t[:, ::1] idx, floating[:, ::1] dst):
    """dst[p] = 0, then dst[p, idx[p, k]] = src[p, k] (later k wins): the max-unpool forward."""
    cdef Py_ssize_t P = dst.shape[0], L = dst.shape[1], M = src.shape[1]
    cdef Py_ssize_t p, k, q
    for p in prange(P, nogil=True, schedule='guided',
                        num_threads=team_for_work(<double>P * (L + M), MIN_ELEMENTS_PER_THREAD)):
        memset(&dst[p, 0], 0, L * sizeof(floating))
        for k in range(M):
            q = idx[p, k]
            if 0 <= q < L:
                dst[p, q] = src[p, k]


def gather_planes(const floating[:, ::1] src, const int64_t[:, ::1] idx, floating[:, ::1] dst):
    """dst[p, k] = src[p, idx[p, k]]: the max-unpool backward."""
    cdef Py_ssize_t P = dst.shape[0], M = dst.shape[1], L = src.shape[1]
    cdef Py_ssize_t p, k, q
    for p in prange(P, nogil=True, schedule='guided',
                        num_threads=team_for_work(<double>P * (L + M), MIN_ELEMENTS_PER_THREAD)):
        for k in range(M):
            q = idx[p, k]
            dst[p, k] = src[p, q] if 0 <= q < L else 0


cdef struct AxisWindow:
    Py_ssize_t lo      # first input position inside the window
    Py_ssize_t hi      # one past the last
    double scale       # 1 / (this axis' factor of the divisor)


cdef AxisWindow* _avg_windows(Py_ssize_t n_out, Py_ssize_t size, Py_ssize_t kernel, Py_ssize_t stride,
                              Py_ssize_t padding, bint count_include_pad,
                              Py_ssize_t divisor_override) noexcept nogil:
    """The average-pool windows along one axis (malloc'd, n_out entries).

    PyTorch's divisor factorizes over the axes: the window clipped to the padded input
    (count_include_pad) or to the input. A divisor_override is put on one axis (the caller
    passes 1 for the other); 0 means none.
    """
    cdef AxisWindow* r = <AxisWindow*>malloc(n_out * sizeof(AxisWindow) + 1)
    cdef Py_ssize_t o, start, end, span
    if r == NULL:
        return NULL
    for o in range(n_out):
        start = o * stride - padding
        end = start + kernel
        if end > size + padding:
            end = size + padding
        r[o].lo = start if start > 0 else 0
        r[o].hi = end if end < size else size
        span = end - start if count_include_pad else r[o].hi - r[o].lo
        if divisor_override != 0:
            r[o].scale = 1.0 / <double>divisor_override
        else:
            r[o].scale = 1.0 / <double>span if span > 0 else 0.0
    return r


def avg_pool2d_forward(const floating[:, :, ::1] x, floating[:, :, ::1] out,
                       Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw,
                       Py_ssize_t ph, Py_ssize_t pw, bint count_include_pad, Py_ssize_t divisor_override):
    """Window means: sum of the valid part times 1/divisor (PyTorch's divisor); empty windows give 0."""
    cdef Py_ssize_t P = x.shape[0], H = x.shape[1], W = x.shape[2]
    cdef Py_ssize_t OH = out.shape[1], OW = out.shape[2]
    cdef Py_ssize_t p, oh, ow, h, w, ha, hb, wa, wb
    cdef double acc, row_scale
    cdef const floating* plane
    cdef const floating* row
    cdef AxisWindow* rows = _avg_windows(OH, H, kh, sh, ph, count_include_pad, divisor_override)
    cdef AxisWindow* cols = _avg_windows(OW, W, kw, sw, pw, count_include_pad, 0 if divisor_override == 0 else 1)
    if rows == NULL or cols == NULL:
        free(rows)
        free(cols)
        raise MemoryError()
    try:
        for p in prange(P, nogil=True, schedule='guided',
                            num_threads=team_for_work(<double>P * (H * W), MIN_ELEMENTS_PER_THREAD)):
            plane = &x[p, 0, 0]
            for oh in range(OH):
                ha = rows[oh].lo
                hb = rows[oh].hi
                row_scale = rows[oh].scale
                for ow in range(OW):
                    wa = cols[ow].lo
                    wb = cols[ow].hi
                    acc = 0
                    for h in range(ha, hb):
                        row = plane + h * W
                        for w in range(wa, wb):
                            acc = acc + row[w]
                    out[p, oh, ow] = <floating>(acc * row_scale * cols[ow].scale)
    finally:
        free(rows)
        free(cols)


def avg_pool2d_backward(const floating[:, :, ::1] grad_out, floating[:, :, ::1] grad_in,
                        Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw,
                        Py_ssize_t ph, Py_ssize_t pw, bint count_include_pad, Py_ssize_t divisor_override):
    """Each window spreads grad/divisor over its valid input positions (scatter-add per plane)."""
    cdef Py_ssize_t P = grad_in.shape[0], H = grad_in.shape[1], W = grad_in.shape[2]
    cdef Py_ssize_t OH = grad_out.shape[1], OW = grad_out.shape[2]
    cdef Py_ssize_t p, oh, ow, h, w, ha, hb, wa, wb
    cdef double row_scale
    cdef floating g
    cdef floating* plane
    cdef floating* row
    cdef AxisWindow* rows = _avg_windows(OH, H, kh, sh, ph, count_include_pad, divisor_override)
    cdef AxisWindow* cols = _avg_windows(OW, W, kw, sw, pw, count_include_pad, 0 if divisor_override == 0 else 1)
    if rows == NULL or cols == NULL:
        free(rows)
        free(cols)
        raise MemoryError()
    cdef bint disjoint = sh >= kh and sw >= kw
    try:
        for p in prange(P, nogil=True, schedule='guided',
                            num_threads=team_for_work(<double>P * (H * W), MIN_ELEMENTS_PER_THREAD)):
            plane = &grad_in[p, 0, 0]
            if disjoint:
                _avg_backward_disjoint(&grad_out[p, 0, 0], OH, OW, plane, H, W, rows, cols)
                continue
            memset(plane, 0, H * W * sizeof(floating))
            for oh in range(OH):
                ha = rows[oh].lo
                hb = rows[oh].hi
                row_scale = rows[oh].scale
                for ow in range(OW):
                    wa = cols[ow].lo
                    wb = cols[ow].hi
                    g = <floating>(grad_out[p, oh, ow] * row_scale * cols[ow].scale)
                    for h in range(ha, hb):
                        row = plane + h * W
                        for w in range(wa, wb):
                            row[w] += g
    finally:
        free(rows)
        free(cols)


cdef void _avg_backward_disjoint(const floating* g, Py_ssize_t OH, Py_ssize_t OW, floating* plane,
                                 Py_ssize_t H, Py_ssize_t W, const AxisWindow* rows,
                                 const AxisWindow* cols) noexcept nogil:
    """One plane's input gradient when no two windows overlap (stride ≥ kernel on both axes):
    each position gets at most one window's share, so it is written once, zeros where no window
    reaches, instead of a zeroing pass and a read-modify-write per share (2/2 on 64×64×56×56:
    the backward ran ~20 ms, most of the fwd+bwd)."""
    cdef Py_ssize_t oh, ow, h, w, ha, hb, wa, wb, h_done = 0, w_done
    cdef floating v
    cdef floating* row
    for oh in range(OH):
        ha = min(max(rows[oh].lo, h_done), H)  # clamped: nothing outside the plane is written
        hb = min(rows[oh].hi, H)
        if ha > h_done:
            memset(plane + h_done * W, 0, (ha - h_done) * W * sizeof(floating))
        for h in range(ha, hb):
            row = plane + h * W
            w_done = 0
            for ow in range(OW):
                wa = min(max(cols[ow].lo, w_done), W)
                wb = min(cols[ow].hi, W)
                for w in range(w_done, wa):
                    row[w] = 0
                v = <floating>(g[oh * OW + ow] * rows[oh].scale * cols[ow].scale)
                for w in range(wa, wb):
                    row[w] = v
                w_done = max(w_done, max(wa, wb))
            for w in range(w_done, W):
                row[w] = 0
        h_done = max(h_done, max(ha, hb))
    if h_done < H:
        memset(plane + h_done * W, 0, (H - h_done) * W * sizeof(floating))


def adaptive_avg_pool2d_forward(const floating[:, :, ::1] x, floating[:, :, ::1] out):
    """Means over PyTorch's adaptive windows [floor(i*H/OH), ceil((i+1)*H/OH))."""
    cdef Py_ssize_t P = x.shape[0], H = x.shape[1], W = x.shape[2]
    cdef Py_ssize_t OH = out.shape[1], OW = out.shape[2]
    cdef Py_ssize_t p, oh, ow, h, w, h0, h1, w0, w1
    cdef double acc
    for p in prange(P, nogil=True, schedule='guided',
                        num_threads=team_for_work(<double>P * (H * W), MIN_ELEMENTS_PER_THREAD)):
        for oh in range(OH):
            h0 = (oh * H) // OH
            h1 = ((oh + 1) * H + OH - 1) // OH
            for ow in range(OW):
                w0 = (ow * W) // OW
                w1 = ((ow + 1) * W + OW - 1) // OW
                acc = 0
                for h in range(h0, h1):
                    for w in range(w0, w1):
                        acc = acc + x[p, h, w]
                out[p, oh, ow] = <floating>(acc / ((h1 - h0) * (w1 - w0)))


def adaptive_avg_pool2d_backward(const floating[:, :, ::1] grad_out, floating[:, :, ::1] grad_in):
    """Each adaptive window spreads grad/area over its positions (scatter-add per plane)."""
    cdef Py_ssize_t P = grad_in.shape[0], H = grad_in.shape[1], W = grad_in.shape[2]
    cdef Py_ssize_t OH = grad_out.shape[1], OW = grad_out.shape[2]
    cdef Py_ssize_t p, oh, ow, h, w, h0, h1, w0, w1
    cdef floating g
    for p in prange(P, nogil=True, schedule='guided',
                        num_threads=team_for_work(<double>P * (H * W), MIN_ELEMENTS_PER_THREAD)):
        memset(&grad_in[p, 0, 0], 0, H * W * sizeof(floating))
        for oh in range(OH):
            h0 = (oh * H) // OH
            h1 = ((oh + 1) * H + OH - 1) // OH
            for ow in range(OW):
                w0 = (ow * W) // OW
                w1 = ((ow + 1) * W + OW - 1) // OW
                g = <floating>(grad_out[p, oh, ow] / <double>((h1 - h0) * (w1 - w0)))
                for h in range(h0, h1):
                    for w in range(w0, w1):
                        grad_in[p, h, w] += g
