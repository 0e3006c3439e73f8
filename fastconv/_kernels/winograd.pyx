# cython: language_level=3
"""Winograd F(2×2, 3×3) convolution (Lavin & Gray 2016) for 3×3, stride-1, undilated, ungrouped
convolutions: forward (also used for the input gradient) and the weight gradient.

Each 2×2 output tile is Aᵀ[(G g Gᵀ) ⊙ (Bᵀ d B)]A with d the 4×4 input patch starting at
(2·ty − ph, 2·tx − pw). Over all tiles and channels this is 16 independent GEMMs, one per
position ξ of the 4×4 transformed tile:  M_ξ (K×P) = U_ξ (K×C) · V_ξ (C×P).

Layouts: U is 16×K×C (filter transform, ``winograd_filter``). The P = N·tilesH·tilesW tiles are
numbered image by image, row by row, and processed in blocks of at most ``block_tiles`` tiles;
for one block of L tiles a thread's buffers hold V as 16×C×L and M as 16×K×L, so every GEMM is
contiguous. Blocks run in a ``prange`` with single-threaded BLAS (the Python caller pins it),
which bounds memory like the im2col column buffer and keeps batch 1 parallel.

Zero padding (any ph, pw, negative included) is a bounds check when a patch is loaded, and the
outputs of partial tiles past (Ho, Wo) are dropped, so any H, W and padding are handled and
nothing outside the given arrays is read or written. The weight gradient is the exact adjoint:
dU_ξ = Σ_tiles (A dY Aᵀ)_ξ · V_ξᵀ, then dg = Gᵀ dU G (dY read as zero past (Ho, Wo)).
"""
cimport cython
from cython cimport floating
from cython.parallel cimport prange, threadid
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memset

from ._blas cimport gemm


cdef inline void load_row(const floating* plane, Py_ssize_t H, Py_ssize_t W, Py_ssize_t iy,
                          Py_ssize_t ix, Py_ssize_t n, floating* dst) noexcept nogil:
    """dst[j] = plane[iy, ix + j] for j < n, zero outside the H×W plane."""
    cdef Py_ssize_t lo, hi
    if iy < 0 or iy >= H:
        memset(dst, 0, n * sizeof(floating))
        return
    lo = 0 if ix >= 0 else min(-ix, n)
    hi = min(n, W - ix) if W - ix > 0 else 0
    if hi < lo:
        hi = lo
    if lo > 0:
        memset(dst, 0, lo * sizeof(floating))
    if hi > lo:
        memcpy(dst + lo, plane + iy * W + ix + lo, (hi - lo) * sizeof(floating))
    if n > hi:
        memset(dst + hi, 0, (n - hi) * sizeof(floating))


cdef inline void load_strided(const floating* row, Py_ssize_t W, Py_ssize_t off, Py_ssize_t n,
                              floating* dst) noexcept nogil:
    """dst[j] = row[off + 2j] for j < n, zero where off + 2j is outside [0, W)."""
    cdef Py_ssize_t j, lo = 0, hi = 0
    if off < 0:
        lo = (1 - off) // 2
    if W - off > 0:
        hi = (W - off + 1) // 2
    if hi > n:
        hi = n
    if lo > hi:
        lo = hi
    for j in range(lo):
        dst[j] = 0
    for j in range(lo, hi):
        dst[j] = row[off + 2 * j]
    for j in range(hi, n):
        dst[j] = 0


cdef inline void load_pairs(const floating* plane, Py_ssize_t H, Py_ssize_t W, Py_ssize_t iy,
                            Py_ssize_t ix, Py_ssize_t pairs, floating* even, floating* odd) noexcept nogil:
    """even[j], odd[j] = plane[iy, ix + 2j], plane[iy, ix + 2j + 1] for j < pairs, zero outside
    the H×W plane (split so the tile transforms run as unit-stride, vectorizable loops)."""
    if iy < 0 or iy >= H:
        memset(even, 0, pairs * sizeof(floating))
        memset(odd, 0, pairs * sizeof(floating))
        return
    load_strided(plane + iy * W, W, ix, pairs, even)
    load_strided(plane + iy * W, W, ix + 1, pairs, odd)


cdef struct Segment:
    # a run of tiles in one row of tiles of one image: tiles [tx, tx + count) of row ty of image n
    Py_ssize_t n, ty, tx, count


cdef inline void segment_at(Py_ssize_t p, Py_ssize_t end, Py_ssize_t tiles_w, Py_ssize_t tiles_img,
                            Segment* s) noexcept nogil:
    """The run of tiles starting at global tile p and ending at the row's end or at ``end``."""
    cdef Py_ssize_t rest = p % tiles_img
    s.n = p // tiles_img
    s.ty = rest // tiles_w
    s.tx = rest % tiles_w
    s.count = min(tiles_w - s.tx, end - p)


# Elements between the 16 matrices V_ξ (or M_ξ) of a block beyond rows·L: a stride of exactly
# rows·L is often a large power of two, and 16 streams that far apart share cache sets.
DEF XI_PAD = 16


cdef inline Py_ssize_t xi_stride(Py_ssize_t rows, Py_ssize_t L) noexcept nogil:
    return rows * L + XI_PAD


cdef void transform_inputs(const floating* x, Py_ssize_t C, Py_ssize_t H, Py_ssize_t W,
                           Py_ssize_t tiles_w, Py_ssize_t tiles_img, Py_ssize_t ph, Py_ssize_t pw,
                           Py_ssize_t p0, Py_ssize_t L, floating* v, floating* rows) noexcept nogil:
    """v (16 matrices C×L, ``xi_stride(C, L)`` apart) = Bᵀ d B of tiles [p0, p0+L), all channels.

    ``rows`` is scratch of 8·(2·tiles_w + 2) elements: the 4 input rows of a run of tiles split
    into even and odd columns, then their Bᵀ combinations; every loop is unit-stride with one
    store stream, so the compiler vectorizes it.
    """
    cdef Segment sg
    cdef Py_ssize_t width = tiles_w + 1, stride = xi_stride(C, L)
    cdef Py_ssize_t c, p, q0, i, j, r, cnt, e
    cdef const floating* plane
    cdef floating* d = rows           # d[(2r + parity)·width + j]: input row r, column 2j + parity
    cdef floating* t = rows + 8 * width  # same layout for Bᵀ·d
    cdef floating* te
    cdef floating* to
    cdef floating* o0
    cdef floating* o1
    cdef floating* o2
    cdef floating* o3
    for c in range(C):
        p = p0
        while p < p0 + L:
            segment_at(p, p0 + L, tiles_w, tiles_img, &sg)
            q0 = p - p0
            cnt = sg.count
            plane = x + (sg.n * C + c) * H * W
            for r in range(4):
                load_pairs(plane, H, W, 2 * sg.ty - ph + r, 2 * sg.tx - pw, cnt + 1,
                           d + 2 * r * width, d + (2 * r + 1) * width)
            # Bᵀ rows: t0 = d0 − d2, t1 = d1 + d2, t2 = d2 − d1, t3 = d1 − d3 (even and odd halves)
            for e in range(2):
                for j in range(cnt + 1):
                    t[e * width + j] = d[e * width + j] - d[(4 + e) * width + j]
                for j in range(cnt + 1):
                    t[(2 + e) * width + j] = d[(2 + e) * width + j] + d[(4 + e) * width + j]
                for j in range(cnt + 1):
                    t[(4 + e) * width + j] = d[(4 + e) * width + j] - d[(2 + e) * width + j]
                for j in range(cnt + 1):
                    t[(6 + e) * width + j] = d[(2 + e) * width + j] - d[(6 + e) * width + j]
            for r in range(4):
                # columns 2i, 2i+1, 2i+2, 2i+3 of row r are te[i], to[i], te[i+1], to[i+1]
                te = t + 2 * r * width
                to = te + width
                o0 = v + (r * 4) * stride + c * L + q0
                o1 = o0 + stride
                o2 = o1 + stride
                o3 = o2 + stride
                for i in range(cnt):
                    o0[i] = te[i] - te[i + 1]
                for i in range(cnt):
                    o1[i] = to[i] + te[i + 1]
                for i in range(cnt):
                    o2[i] = te[i + 1] - to[i]
                for i in range(cnt):
                    o3[i] = to[i] - to[i + 1]
            p += cnt


cdef void transform_outputs(const floating* m, Py_ssize_t K, Py_ssize_t Ho, Py_ssize_t Wo,
                            Py_ssize_t tiles_w, Py_ssize_t tiles_img, Py_ssize_t p0, Py_ssize_t L,
                            const floating* bias, floating* y, floating* rows) noexcept nogil:
    """y tiles [p0, p0+L) = Aᵀ M A (+ bias[k]), dropping outputs past (Ho, Wo).

    ``rows`` is scratch of 10·(2·tiles_w + 2) elements: the 8 rows of Aᵀ·M per run of tiles and
    the two output rows.
    """
    cdef Segment sg
    cdef Py_ssize_t width = 2 * tiles_w + 2, stride = xi_stride(K, L)
    cdef Py_ssize_t k, p, q0, i, j, oy, ox, n_cols, cnt
    cdef floating b
    cdef floating* s = rows
    cdef floating* r0 = rows + 8 * width
    cdef floating* r1 = rows + 9 * width
    cdef floating* sa
    cdef floating* sb
    cdef const floating* m0
    cdef const floating* m1
    cdef const floating* m2
    cdef const floating* m3
    cdef floating* out
    for k in range(K):
        b = bias[k] if bias != NULL else 0
        p = p0
        while p < p0 + L:
            segment_at(p, p0 + L, tiles_w, tiles_img, &sg)
            q0 = p - p0
            cnt = sg.count
            # s[j] = M_{0j} + M_{1j} + M_{2j},  s[4 + j] = M_{1j} − M_{2j} − M_{3j}  (Aᵀ·M)
            for j in range(4):
                m0 = m + j * stride + k * L + q0
                m1 = m0 + 4 * stride
                m2 = m0 + 8 * stride
                m3 = m0 + 12 * stride
                sa = s + j * width
                sb = s + (4 + j) * width
                for i in range(cnt):
                    sa[i] = m0[i] + m1[i] + m2[i]
                for i in range(cnt):
                    sb[i] = m1[i] - m2[i] - m3[i]
            for i in range(cnt):
                r0[2 * i] = s[i] + s[width + i] + s[2 * width + i] + b
                r0[2 * i + 1] = s[width + i] - s[2 * width + i] - s[3 * width + i] + b
            for i in range(cnt):
                r1[2 * i] = s[4 * width + i] + s[5 * width + i] + s[6 * width + i] + b
                r1[2 * i + 1] = s[5 * width + i] - s[6 * width + i] - s[7 * width + i] + b
            oy = 2 * sg.ty
            ox = 2 * sg.tx
            n_cols = min(2 * cnt, Wo - ox)
            out = y + ((sg.n * K + k) * Ho + oy) * Wo + ox
            memcpy(out, r0, n_cols * sizeof(floating))
            if oy + 1 < Ho:
                memcpy(out + Wo, r1, n_cols * sizeof(floating))
            p += cnt


cdef void transform_grads(const floating* dy, Py_ssize_t K, Py_ssize_t Ho, Py_ssize_t Wo,
                          Py_ssize_t tiles_w, Py_ssize_t tiles_img, Py_ssize_t p0, Py_ssize_t L,
                          floating* dm, floating* rows) noexcept nogil:
    """dm (16 matrices K×L, ``xi_stride(K, L)`` apart) = A dY Aᵀ for tiles [p0, p0+L), dY zero
    past (Ho, Wo).

    ``rows`` is scratch of 10·(2·tiles_w + 2) elements: the two dY rows of a run of tiles split
    into even and odd columns, and the rows of A·dY in the same layout.
    """
    cdef Segment sg
    cdef Py_ssize_t width = tiles_w + 1, stride = xi_stride(K, L)
    cdef Py_ssize_t k, p, q0, i, r, cnt
    # q[(2r + parity)·width + i]: row r of A·dY = (g0), (g0 + g1), (g0 − g1), (−g1), column 2i + parity
    cdef floating* q = rows
    cdef floating* qe
    cdef floating* qo
    cdef floating* o0
    cdef floating* o1
    cdef floating* o2
    cdef floating* o3
    for k in range(K):
        p = p0
        while p < p0 + L:
            segment_at(p, p0 + L, tiles_w, tiles_img, &sg)
            q0 = p - p0
            cnt = sg.count
            load_pairs(dy + (sg.n * K + k) * Ho * Wo, Ho, Wo, 2 * sg.ty, 2 * sg.tx, cnt, q, q + width)
            load_pairs(dy + (sg.n * K + k) * Ho * Wo, Ho, Wo, 2 * sg.ty + 1, 2 * sg.tx, cnt,
                       q + 6 * width, q + 7 * width)
            for i in range(cnt):
                q[2 * width + i] = q[i] + q[6 * width + i]
            for i in range(cnt):
                q[3 * width + i] = q[width + i] + q[7 * width + i]
            for i in range(cnt):
                q[4 * width + i] = q[i] - q[6 * width + i]
            for i in range(cnt):
                q[5 * width + i] = q[width + i] - q[7 * width + i]
            for i in range(cnt):
                q[6 * width + i] = -q[6 * width + i]
            for i in range(cnt):
                q[7 * width + i] = -q[7 * width + i]
            for r in range(4):
                # a row (e, f) of A·dY becomes (e, e + f, e − f, −f) in A·dY·Aᵀ
                qe = q + 2 * r * width
                qo = qe + width
                o0 = dm + (4 * r) * stride + k * L + q0
                o1 = o0 + stride
                o2 = o1 + stride
                o3 = o2 + stride
                for i in range(cnt):
                    o0[i] = qe[i]
                for i in range(cnt):
                    o1[i] = qe[i] + qo[i]
                for i in range(cnt):
                    o2[i] = qe[i] - qo[i]
                for i in range(cnt):
                    o3[i] = -qo[i]
            p += cnt


def winograd_filter(const floating[:, :, :, ::1] w, floating[:, :, ::1] u, bint flip_transpose):
    """u (16×K×C) = G g Gᵀ per filter g = w[k, c] (K×C×3×3).

    With ``flip_transpose`` u is 16×C×K and g = w[k, c] rotated by 180°: the filter of the
    input-gradient convolution.
    """
    cdef Py_ssize_t K = w.shape[0], C = w.shape[1], k, c, r, j
    cdef floating g[9]
    cdef floating t[12]
    cdef floating* dst
    cdef Py_ssize_t stride = K * C
    with nogil:
        for k in range(K):
            for c in range(C):
                for r in range(9):
                    g[r] = w[k, c, 2 - r // 3, 2 - r % 3] if flip_transpose else w[k, c, r // 3, r % 3]
                # t = G·g (4×3)
                for j in range(3):
                    t[j] = g[j]
                    t[3 + j] = (g[j] + g[3 + j] + g[6 + j]) * 0.5
                    t[6 + j] = (g[j] - g[3 + j] + g[6 + j]) * 0.5
                    t[9 + j] = g[6 + j]
                dst = &u[0, c, k] if flip_transpose else &u[0, k, c]
                # u = t·Gᵀ (4×4)
                for r in range(4):
                    dst[(r * 4 + 0) * stride] = t[r * 3]
                    dst[(r * 4 + 1) * stride] = (t[r * 3] + t[r * 3 + 1] + t[r * 3 + 2]) * 0.5
                    dst[(r * 4 + 2) * stride] = (t[r * 3] - t[r * 3 + 1] + t[r * 3 + 2]) * 0.5
                    dst[(r * 4 + 3) * stride] = t[r * 3 + 2]


def winograd_filter_grad(const floating[:, :, ::1] du, floating[:, :, :, ::1] dw):
    """dw[k, c] (3×3) = Gᵀ dU[:, k, c] G, du being 16×K×C: the adjoint of ``winograd_filter``."""
    cdef Py_ssize_t K = dw.shape[0], C = dw.shape[1], k, c, j, r
    cdef floating a[16]
    cdef floating t[12]
    with nogil:
        for k in range(K):
            for c in range(C):
                for r in range(16):
                    a[r] = du[r, k, c]
                # t = Gᵀ·a (3×4)
                for j in range(4):
                    t[j] = a[j] + (a[4 + j] + a[8 + j]) * 0.5
                    t[4 + j] = (a[4 + j] - a[8 + j]) * 0.5
                    t[8 + j] = (a[4 + j] + a[8 + j]) * 0.5 + a[12 + j]
                # dw = t·G (3×3)
                for r in range(3):
                    dw[k, c, r, 0] = t[r * 4] + (t[r * 4 + 1] + t[r * 4 + 2]) * 0.5
                    dw[k, c, r, 1] = (t[r * 4 + 1] - t[r * 4 + 2]) * 0.5
                    dw[k, c, r, 2] = (t[r * 4 + 1] + t[r * 4 + 2]) * 0.5 + t[r * 4 + 3]


def work_elements(Py_ssize_t C, Py_ssize_t K, Py_ssize_t Wo, Py_ssize_t block_tiles):
    """(V, M) buffer elements per thread: the transformed tiles of a block plus row scratch."""
    cdef Py_ssize_t width = 2 * ((Wo + 1) // 2) + 2
    return 16 * xi_stride(C, block_tiles) + 8 * width, 16 * xi_stride(K, block_tiles) + 10 * width


cdef void forward_block(const floating* x, const floating* u, const floating* bias, floating* y,
                        Py_ssize_t C, Py_ssize_t H, Py_ssize_t W, Py_ssize_t K, Py_ssize_t Ho,
                        Py_ssize_t Wo, Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t tiles_w,
                        Py_ssize_t tiles_img, Py_ssize_t p0, Py_ssize_t L, Py_ssize_t block_tiles,
                        floating* v, floating* m) noexcept nogil:
    """Tiles [p0, p0+L): transform, 16 GEMMs M_ξ = U_ξ·V_ξ, inverse transform into y."""
    cdef Py_ssize_t xi
    transform_inputs(x, C, H, W, tiles_w, tiles_img, ph, pw, p0, L, v, v + 16 * xi_stride(C, block_tiles))
    for xi in range(16):
        gemm(False, False, <int>K, <int>L, <int>C, <floating>1, u + xi * K * C, <int>C,
             v + xi * xi_stride(C, L), <int>L, <floating>0, m + xi * xi_stride(K, L), <int>L)
    transform_outputs(m, K, Ho, Wo, tiles_w, tiles_img, p0, L, bias, y, m + 16 * xi_stride(K, block_tiles))


cdef int check_work(floating[:, ::1] vwork, floating[:, ::1] mwork, Py_ssize_t C, Py_ssize_t K,
                    Py_ssize_t Wo, Py_ssize_t block_tiles, bint parallel, int num_threads) except -1:
    cdef Py_ssize_t threads = num_threads if parallel else 1
    need_v, need_m = work_elements(C, K, Wo, block_tiles)
    if (block_tiles < 1 or vwork.shape[0] < threads or mwork.shape[0] < threads
            or vwork.shape[1] < need_v or mwork.shape[1] < need_m):
        raise ValueError("winograd: work buffers too small for the block size")
    return 0


def winograd_forward(const floating[:, :, :, ::1] x, const floating[:, :, ::1] u,
                     const floating[::1] bias, bint has_bias, floating[:, :, :, ::1] y,
                     floating[:, ::1] vwork, floating[:, ::1] mwork, int ph, int pw,
                     Py_ssize_t block_tiles, bint parallel, int num_threads):
    """y = conv2d(x, g) + bias for 3×3 filters given as u = winograd_filter(g) (16×K×C).

    ``ph``/``pw`` are the top/left padding (may be negative: a crop); y's shape fixes the
    output size. ``vwork``/``mwork`` hold one buffer per thread of ``work_elements`` elements.
    With ``parallel`` tile blocks run in a prange (BLAS must be single-threaded), otherwise one
    after another.
    """
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t K = y.shape[1], Ho = y.shape[2], Wo = y.shape[3]
    cdef Py_ssize_t tiles_w = (Wo + 1) // 2, tiles_img = ((Ho + 1) // 2) * tiles_w
    cdef Py_ssize_t P = N * tiles_img
    cdef Py_ssize_t nblocks, b, p0, t
    cdef const floating* bptr = &bias[0] if has_bias else NULL
    if P == 0 or K == 0 or C == 0:
        return
    if u.shape[0] != 16 or u.shape[1] != K or u.shape[2] != C or y.shape[0] != N:
        raise ValueError("winograd_forward: shapes of u, x and y disagree")
    check_work(vwork, mwork, C, K, Wo, block_tiles, parallel, num_threads)
    nblocks = (P + block_tiles - 1) // block_tiles
    with nogil:
        if parallel:
            for b in prange(nblocks, schedule='static', num_threads=num_threads):
                t = threadid()
                p0 = b * block_tiles
                forward_block(&x[0, 0, 0, 0], &u[0, 0, 0], bptr, &y[0, 0, 0, 0], C, H, W, K, Ho, Wo,
                              ph, pw, tiles_w, tiles_img, p0, min(block_tiles, P - p0), block_tiles,
                              &vwork[t, 0], &mwork[t, 0])
        else:
            for b in range(nblocks):
                p0 = b * block_tiles
                forward_block(&x[0, 0, 0, 0], &u[0, 0, 0], bptr, &y[0, 0, 0, 0], C, H, W, K, Ho, Wo,
                              ph, pw, tiles_w, tiles_img, p0, min(block_tiles, P - p0), block_tiles,
                              &vwork[0, 0], &mwork[0, 0])


cdef void weight_grad_block(const floating* x, const floating* dy, floating* du,
                            Py_ssize_t C, Py_ssize_t H, Py_ssize_t W, Py_ssize_t K, Py_ssize_t Ho,
                            Py_ssize_t Wo, Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t tiles_w,
                            Py_ssize_t tiles_img, Py_ssize_t p0, Py_ssize_t L, Py_ssize_t block_tiles,
                            floating* v, floating* m) noexcept nogil:
    """Tiles [p0, p0+L): du_ξ += (A dY Aᵀ)_ξ · V_ξᵀ."""
    cdef Py_ssize_t xi
    transform_inputs(x, C, H, W, tiles_w, tiles_img, ph, pw, p0, L, v, v + 16 * xi_stride(C, block_tiles))
    transform_grads(dy, K, Ho, Wo, tiles_w, tiles_img, p0, L, m, m + 16 * xi_stride(K, block_tiles))
    for xi in range(16):
        gemm(False, True, <int>K, <int>C, <int>L, <floating>1, m + xi * xi_stride(K, L), <int>L,
             v + xi * xi_stride(C, L), <int>L, <floating>1, du + xi * K * C, <int>C)


def winograd_weight_grad(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] dy,
                         floating[:, ::1] du_parts, floating[:, ::1] vwork, floating[:, ::1] mwork,
                         int ph, int pw, Py_ssize_t block_tiles, bint parallel, int num_threads):
    """du_parts[t] += Σ over thread t's tile blocks of (A dY Aᵀ)_ξ · V_ξᵀ (16×K×C each).

    The caller sums the parts over threads and maps them back with ``winograd_filter_grad``.
    Buffers as in ``winograd_forward``.
    """
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t K = dy.shape[1], Ho = dy.shape[2], Wo = dy.shape[3]
    cdef Py_ssize_t tiles_w = (Wo + 1) // 2, tiles_img = ((Ho + 1) // 2) * tiles_w
    cdef Py_ssize_t P = N * tiles_img
    cdef Py_ssize_t nblocks, b, p0, t
    if P == 0 or K == 0 or C == 0:
        return
    if dy.shape[0] != N or du_parts.shape[1] < 16 * K * C or du_parts.shape[0] < (num_threads if parallel else 1):
        raise ValueError("winograd_weight_grad: shapes of x, dy and du_parts disagree")
    check_work(vwork, mwork, C, K, Wo, block_tiles, parallel, num_threads)
    nblocks = (P + block_tiles - 1) // block_tiles
    with nogil:
        if parallel:
            for b in prange(nblocks, schedule='static', num_threads=num_threads):
                t = threadid()
                p0 = b * block_tiles
                weight_grad_block(&x[0, 0, 0, 0], &dy[0, 0, 0, 0], &du_parts[t, 0], C, H, W, K, Ho, Wo,
                                  ph, pw, tiles_w, tiles_img, p0, min(block_tiles, P - p0), block_tiles,
                                  &vwork[t, 0], &mwork[t, 0])
        else:
            for b in range(nblocks):
                p0 = b * block_tiles
                weight_grad_block(&x[0, 0, 0, 0], &dy[0, 0, 0, 0], &du_parts[0, 0], C, H, W, K, Ho, Wo,
                                  ph, pw, tiles_w, tiles_img, p0, min(block_tiles, P - p0), block_tiles,
                                  &vwork[0, 0], &mwork[0, 0])
