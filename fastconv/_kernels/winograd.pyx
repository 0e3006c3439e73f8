# cython: language_level=3
"""Winograd F(2×2, 3×3) convolution (Lavin & Gray 2016) for 3×3, stride-1, undilated, ungrouped
convolutions: forward (also used for the input gradient) and the weight gradient.

Each 2×2 output tile is Aᵀ[(G g Gᵀ) ⊙ (Bᵀ d B)]A with d the 4×4 input patch starting at
(2·ty − ph, 2·tx − pw). Over all tiles and channels this is 16 independent GEMMs, one per
position ξ of the 4×4 transformed tile:  M_ξ (K×L) = U_ξ (K×C) · V_ξ (C×L).

Blocks. The P = N·tilesH·tilesW tiles are numbered image by image, row by row, and processed in
blocks of at most ``block_tiles`` consecutive tiles (a multiple of the 32-wide sgemm panels where
possible). A block splits into a few *pieces*, rectangles of tiles of one image: the rest of a
partly covered tile row, a run of whole tile rows, the start of a tile row. Blocks are small
enough that V (16×C×L) and M (16×K×L) stay near L2; they run in a ``prange`` (one V/M buffer pair
per thread), which bounds memory and keeps batch 1 parallel.

Transforms run over a whole piece with long unit-stride loops: the input transform first applies
B on the right to every padded input row the piece needs (once, although neighbouring tile rows
share two rows), storing the four results with even and odd input rows separated, so the left
factor Bᵀ for all tiles of the piece is four flat loops per column index, e.g.
V_{0,c}[q] = E_even,c[q] − E_even,c[q + width]. The output transform Aᵀ M A and the gradient
transform A dY Aᵀ are flat over the piece the same way.

Layouts. A matrix with L columns (tiles) is stored in column panels of width ``pw``: panel q // pw
is rows × pw, row-major. With fastconv's packed sgemm (float32; AVX-512 or AVX2+FMA) V is
written straight into its 32-wide B panels and U is packed once per call into its 12-row A panels
(``winograd_filter`` with ``panel_rows`` 12), so the 16 GEMMs of a block call the micro-kernel
with no packing; the transforms then run as explicit AVX-512/AVX2 vector code
(``_winograd_fwd.h``: masked loads straight from x, register permutes for the even/odd split and
the output interleave, masked stores into y), which took the 64×32×28×28→64 forward pass from
~16 to ~13.5 ms (its transforms, compiled from the loops below, ran ~30 and ~13 cycles per tile
and channel on Zen 4). Otherwise (float64, neither AVX-512 nor AVX2+FMA) pw is the block width (a
plain C×L matrix) and the GEMMs go through the ``gemm`` wrapper (BLAS).

The weight gradient's products have the tiles as their depth, so their panels need the channels
contiguous per tile. With the packed sgemm, ``_winograd_dw.h`` transposes the rows of x and dY a
block covers to channel-minor order and runs both transforms on vectors of channels, writing
V_ξ and (A dY Aᵀ)_ξᵀ straight into sgemm panels (dU_ξ comes out C×K). Packing the tile-minor
transforms instead (through ``gemm``, as float64 does) moves four times as much data through
transposes: 64×32×28×28→64 dW pass 17.9 → 12.7 ms, its products at 104–114 % of numpy's sgemm
rate instead of 67–92 % (Zen 4, 1 thread).

Zero padding (any ph, pw, negative included) is a bounds check when an input row is loaded, and
the outputs of partial tiles past (Ho, Wo) are dropped, so any H, W and padding are handled and
nothing outside the given arrays is read or written. The weight gradient is the exact adjoint:
dU_ξ = Σ_tiles (A dY Aᵀ)_ξ · V_ξᵀ, then dg = Gᵀ dU G (dY read as zero past (Ho, Wo)).
"""
cimport cython
from cython cimport floating
from cython.parallel cimport prange, threadid

from ._omp cimport part_begin, team
from libc.stdint cimport uintptr_t
from libc.string cimport memcpy, memset

from ._blas cimport gemm


cdef extern from "_sgemm.h" nogil:
    enum:
        FC_SGEMM_MR
        FC_SGEMM_NR
    int fc_sgemm_packed_available()
    void fc_sgemm_packed(int m, int n, int k, const float* pa, const float* pb, float* c, int ldc)
    void fc_sgemm_packed_acc(int m, int n, int k, const float* pa, const float* pb, float* c,
                             int ldc, int accumulate)


cdef extern from "_winograd_fwd.h" nogil:
    enum:
        FC_WF_SLACK
    void fc_wf_inputs(const float* x, Py_ssize_t C, Py_ssize_t H, Py_ssize_t W, Py_ssize_t ph,
                      Py_ssize_t pw, Py_ssize_t ty, Py_ssize_t rows, Py_ssize_t tx, Py_ssize_t width,
                      Py_ssize_t l0, float* v, Py_ssize_t vxs, float* e)
    void fc_wf_outputs(const float* m, Py_ssize_t K, Py_ssize_t Ho, Py_ssize_t Wo, Py_ssize_t ldm,
                       Py_ssize_t mxs, Py_ssize_t q0, Py_ssize_t ty, Py_ssize_t rows, Py_ssize_t tx,
                       Py_ssize_t width, const float* bias, float* y)


cdef extern from "_winograd_dw.h" nogil:
    enum:
        FC_WG_GROUP
        FC_WG_KPAD
    Py_ssize_t fc_wg_scratch_floats(Py_ssize_t C, Py_ssize_t K, Py_ssize_t tw, Py_ssize_t L)
    void fc_wg_piece(const float* x, const float* dy, Py_ssize_t C, Py_ssize_t H, Py_ssize_t W,
                     Py_ssize_t K, Py_ssize_t Ho, Py_ssize_t Wo, Py_ssize_t ph, Py_ssize_t pw,
                     Py_ssize_t ty, Py_ssize_t rows, Py_ssize_t tx, Py_ssize_t width, Py_ssize_t l0,
                     Py_ssize_t L, float* apan, Py_ssize_t axs, float* bpan, Py_ssize_t bxs,
                     float* scratch)


# Elements between the 16 matrices V_ξ (or M_ξ) of a block beyond their size: a stride of exactly
# rows·L is often a large power of two, and 16 streams that far apart share cache sets. A multiple
# of 16 floats, so 64-byte aligned panels stay aligned.
DEF XI_PAD = 16
# Slack elements of a V buffer so that its start can be rounded up to 64 bytes (the B panels).
DEF ALIGN_SLACK = 16


cdef extern from *:
    void __builtin_prefetch(const void* addr) noexcept nogil


cdef inline void prefetch_rows(const floating* plane, Py_ssize_t H, Py_ssize_t W, Py_ssize_t iy,
                               Py_ssize_t rows) noexcept nogil:
    """Prefetch rows [iy, iy + rows) of an H×W plane (clipped): the next plane a transform reads
    while it works on this one (a miss on every first touch otherwise stalls the transforms)."""
    cdef Py_ssize_t lo = max(iy, 0), hi = min(iy + rows, H), i
    cdef const char* start
    if hi <= lo:
        return
    start = <const char*>(plane + lo * W)
    for i in range(0, (hi - lo) * W * <Py_ssize_t>sizeof(floating), 64):
        __builtin_prefetch(start + i)


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


cdef struct Tiling:
    # tiles of the output, their blocks, and the buffer layout of one block
    Py_ssize_t tiles_w, tiles_img, tiles       # tiles per row, per image, in all
    Py_ssize_t max_tiles                       # tiles per block (the last may have fewer)
    Py_ssize_t vpw, vxs                   # V: panel width, elements between V_ξ and V_ξ+1
    Py_ssize_t ldm, mxs                   # M: row stride, elements between M_ξ and M_ξ+1
    Py_ssize_t v_scratch, m_scratch       # row scratch after the 16 V_ξ / M_ξ
    Py_ssize_t v_elements, m_elements     # whole buffers (V with its alignment slack)


cdef struct Piece:
    # tile rows [ty, ty + rows) × tile columns [tx, tx + width) of image n
    Py_ssize_t n, ty, rows, tx, width


cdef inline void fill_tiling(Py_ssize_t N, Py_ssize_t C, Py_ssize_t K, Py_ssize_t Ho, Py_ssize_t Wo,
                             Py_ssize_t block_tiles, bint panels, Tiling* t) noexcept nogil:
    """Fill ``t`` for N images, C channels in, K out, an Ho×Wo output and blocks of
    ``block_tiles`` ≥ 1 tiles (checked by the caller: ``make_tiling``, or the nogil entry point's)."""
    cdef Py_ssize_t w
    t.tiles_w = (Wo + 1) // 2
    t.tiles_img = ((Ho + 1) // 2) * t.tiles_w
    t.tiles = N * t.tiles_img
    t.max_tiles = block_tiles
    t.vpw = FC_SGEMM_NR if panels else block_tiles
    t.vxs = C * ((block_tiles + t.vpw - 1) // t.vpw) * t.vpw + XI_PAD
    t.ldm = block_tiles
    t.mxs = K * t.ldm + XI_PAD
    # input transform: one padded input row of a piece (≤ w tiles wide), then 8 arrays
    # (4 column combinations × even/odd input rows) of (rows + 1)·w ≤ block_tiles + w elements
    # (+ slack: the vector transforms of _winograd_fwd.h use the same layout)
    w = min(t.tiles_w, block_tiles)
    t.v_scratch = 2 * w + 2 + 8 * (block_tiles + w + FC_WF_SLACK)
    # gradient transform: 4 dY arrays (the output transform needs none)
    t.m_scratch = 4 * block_tiles
    t.v_elements = ALIGN_SLACK + 16 * t.vxs + t.v_scratch
    t.m_elements = 16 * t.mxs + t.m_scratch


cdef int make_tiling(Py_ssize_t N, Py_ssize_t C, Py_ssize_t K, Py_ssize_t Ho, Py_ssize_t Wo,
                     Py_ssize_t block_tiles, bint panels, Tiling* t) except -1:
    """``fill_tiling`` after checking ``block_tiles``."""
    if block_tiles < 1:
        raise ValueError("winograd: block_tiles must be positive")
    fill_tiling(N, C, K, Ho, Wo, block_tiles, panels, t)
    return 0


cdef inline Py_ssize_t piece_at(const Tiling* t, Py_ssize_t p, Py_ssize_t end, Piece* pc) noexcept nogil:
    """The piece starting at tile p (< end): the rest of its tile row when p is not at a row's
    start or fewer than a row's tiles remain before ``end``, else the whole rows of its image up
    to ``end``. Returns its tile count."""
    cdef Py_ssize_t rest = p % t.tiles_img
    pc.n = p // t.tiles_img
    pc.ty = rest // t.tiles_w
    pc.tx = rest % t.tiles_w
    if pc.tx > 0 or end - p < t.tiles_w:
        pc.rows = 1
        pc.width = min(t.tiles_w - pc.tx, end - p)
    else:
        pc.rows = min((end - p) // t.tiles_w, t.tiles_img // t.tiles_w - pc.ty)
        pc.width = t.tiles_w
    return pc.rows * pc.width


cdef inline Py_ssize_t panel_offset(Py_ssize_t rows, Py_ssize_t pw, Py_ssize_t r, Py_ssize_t q) noexcept nogil:
    """Element (r, q) of a matrix with ``rows`` rows stored in column panels of width pw."""
    return (q // pw) * rows * pw + r * pw + q % pw


cdef inline void rows_bt(const floating* ee, const floating* eo, Py_ssize_t width, Py_ssize_t n,
                         floating* o0, floating* o1, floating* o2, floating* o3) noexcept nogil:
    """Bᵀ on the left for n tiles: rows (r0, r1, r2, r3) = (ee[i], eo[i], ee[i + width], eo[i + width])."""
    cdef Py_ssize_t i
    for i in range(n):
        o0[i] = ee[i] - ee[i + width]
    for i in range(n):
        o1[i] = eo[i] + ee[i + width]
    for i in range(n):
        o2[i] = ee[i + width] - eo[i]
    for i in range(n):
        o3[i] = eo[i] - eo[i + width]


cdef void transform_inputs(const floating* x, Py_ssize_t C, Py_ssize_t H, Py_ssize_t W,
                           Py_ssize_t ph, Py_ssize_t pw, const Tiling* t, Py_ssize_t s0,
                           Py_ssize_t s1, floating* v, floating* scratch) noexcept nogil:
    """v (16 matrices C × L in panels of width t.vpw, t.vxs apart) = Bᵀ d B of tiles [s0, s1),
    all channels."""
    cdef Piece p
    cdef Py_ssize_t vxs = t.vxs, vpw = t.vpw
    cdef Py_ssize_t c, s, q0, nq, r, i, col, qa, qb, run, width, se, off
    cdef const floating* plane
    cdef floating* d = scratch                       # one padded input row of the piece
    cdef floating* e = scratch + 2 * min(t.tiles_w, t.max_tiles) + 2  # e[(4·parity + col)·se + (r // 2)·width + i]
    cdef floating* ev
    cdef const floating* ee
    cdef const floating* eo
    cdef floating* o0
    cdef floating* o1
    cdef floating* o2
    cdef floating* o3
    s = s0
    q0 = 0
    while s < s1:  # pieces outer: the C planes of an image are read in one sweep
        s += piece_at(t, s, s1, &p)
        for c in range(C):
            width = p.width
            nq = p.rows * width
            se = (p.rows + 1) * width
            plane = x + (p.n * C + c) * H * W
            if c + 1 < C:
                prefetch_rows(plane + H * W, H, W, 2 * p.ty - ph, 2 * p.rows + 2)
            # B on the right: (a0, a1, a2, a3) → (a0 − a2, a1 + a2, a2 − a1, a1 − a3) per tile column
            for r in range(2 * p.rows + 2):
                load_row(plane, H, W, 2 * p.ty - ph + r, 2 * p.tx - pw, 2 * width + 2, d)
                ev = e + (r % 2) * 4 * se + (r // 2) * width
                for i in range(width):
                    ev[i] = d[2 * i] - d[2 * i + 2]
                ev = ev + se
                for i in range(width):
                    ev[i] = d[2 * i + 1] + d[2 * i + 2]
                ev = ev + se
                for i in range(width):
                    ev[i] = d[2 * i + 2] - d[2 * i + 1]
                ev = ev + se
                for i in range(width):
                    ev[i] = d[2 * i + 1] - d[2 * i + 3]
            # Bᵀ on the left: rows (r0, r1, r2, r3) = (even[q], odd[q], even[q + w], odd[q + w])
            qa = q0
            while qa < q0 + nq:
                qb = min(q0 + nq, (qa // vpw + 1) * vpw)
                run = qb - qa
                off = qa - q0
                for col in range(4):
                    ee = e + col * se + off
                    eo = e + (4 + col) * se + off
                    o0 = v + col * vxs + panel_offset(C, vpw, c, qa)
                    o1 = o0 + 4 * vxs
                    o2 = o0 + 8 * vxs
                    o3 = o0 + 12 * vxs
                    if run == 32:  # a whole sgemm panel: a constant trip count the compiler unrolls
                        rows_bt(ee, eo, width, 32, o0, o1, o2, o3)
                    else:
                        rows_bt(ee, eo, width, run, o0, o1, o2, o3)
                qa = qb
        q0 += p.rows * p.width


cdef inline void output_run(const floating* m, Py_ssize_t mxs, Py_ssize_t n, floating b,
                            floating* r0, floating* r1) noexcept nogil:
    """Aᵀ M A + b for n consecutive tiles of one channel (m: M_0 of the first, M_ξ at ξ·mxs):
    their two output rows, interleaved, into r0[2i], r0[2i+1] and r1[2i], r1[2i+1]. One pass
    with 16 load streams; r0/r1 are the caller's local arrays, so no aliasing is possible and
    the loop vectorizes without run-time checks."""
    cdef Py_ssize_t i
    cdef floating a0, a1, a2, a3, b0, b1, b2, b3
    for i in range(n):
        # Aᵀ on the left (rows of M: a = M0 + M1 + M2, b = M1 − M2 − M3), then A on the right
        a0 = m[i] + m[4 * mxs + i] + m[8 * mxs + i]
        b0 = m[4 * mxs + i] - m[8 * mxs + i] - m[12 * mxs + i]
        a1 = m[mxs + i] + m[5 * mxs + i] + m[9 * mxs + i]
        b1 = m[5 * mxs + i] - m[9 * mxs + i] - m[13 * mxs + i]
        a2 = m[2 * mxs + i] + m[6 * mxs + i] + m[10 * mxs + i]
        b2 = m[6 * mxs + i] - m[10 * mxs + i] - m[14 * mxs + i]
        a3 = m[3 * mxs + i] + m[7 * mxs + i] + m[11 * mxs + i]
        b3 = m[7 * mxs + i] - m[11 * mxs + i] - m[15 * mxs + i]
        r0[2 * i] = a0 + a1 + a2 + b
        r0[2 * i + 1] = a1 - a2 - a3 + b
        r1[2 * i] = b0 + b1 + b2 + b
        r1[2 * i + 1] = b1 - b2 - b3 + b


# Tiles per pass of the fused output transform: its two local output-row buffers hold 2·OUT_RUN values.
DEF OUT_RUN = 256


cdef void transform_outputs(const floating* m, Py_ssize_t K, Py_ssize_t Ho, Py_ssize_t Wo,
                            const Tiling* t, Py_ssize_t s0, Py_ssize_t s1, const floating* bias,
                            floating* y) noexcept nogil:
    """y tiles [s0, s1) = Aᵀ M A (+ bias[k]), dropping outputs past (Ho, Wo): runs of whole tile
    rows of a piece (or parts of one row wider than OUT_RUN) through ``output_run``, then their
    output rows into y."""
    cdef Piece p
    cdef Py_ssize_t mxs = t.mxs, ldm = t.ldm
    cdef Py_ssize_t k, s, q0, i, i0, nr, j0, nj, oy, n_cols, width
    cdef floating b
    cdef floating r0[2 * OUT_RUN]
    cdef floating r1[2 * OUT_RUN]
    cdef floating* out
    s = s0
    q0 = 0
    while s < s1:  # pieces outer: the K planes of an image are written in one sweep
        s += piece_at(t, s, s1, &p)
        for k in range(K):
            b = bias[k] if bias != NULL else 0
            width = p.width
            if width <= OUT_RUN:
                n_cols = min(2 * width, Wo - 2 * p.tx)
                i0 = 0
                while i0 < p.rows:
                    nr = min(OUT_RUN // width, p.rows - i0)
                    output_run(m + k * ldm + q0 + i0 * width, mxs, nr * width, b, r0, r1)
                    for i in range(nr):
                        oy = 2 * (p.ty + i0 + i)
                        out = y + ((p.n * K + k) * Ho + oy) * Wo + 2 * p.tx
                        if oy < Ho:
                            memcpy(out, r0 + 2 * i * width, n_cols * sizeof(floating))
                        if oy + 1 < Ho:
                            memcpy(out + Wo, r1 + 2 * i * width, n_cols * sizeof(floating))
                    i0 += nr
            else:
                for i in range(p.rows):
                    oy = 2 * (p.ty + i)
                    for j0 in range(0, width, OUT_RUN):
                        nj = min(OUT_RUN, width - j0)
                        output_run(m + k * ldm + q0 + i * width + j0, mxs, nj, b, r0, r1)
                        n_cols = min(2 * nj, Wo - 2 * (p.tx + j0))
                        out = y + ((p.n * K + k) * Ho + oy) * Wo + 2 * (p.tx + j0)
                        if oy < Ho:
                            memcpy(out, r0, n_cols * sizeof(floating))
                        if oy + 1 < Ho:
                            memcpy(out + Wo, r1, n_cols * sizeof(floating))
        q0 += p.rows * p.width


cdef void transform_grads(const floating* dy, Py_ssize_t K, Py_ssize_t Ho, Py_ssize_t Wo,
                          const Tiling* t, Py_ssize_t s0, Py_ssize_t s1, floating* dm,
                          floating* scratch) noexcept nogil:
    """dm (16 matrices K × L, row stride t.ldm, t.mxs apart) = A dY Aᵀ for tiles [s0, s1), dY
    zero past (Ho, Wo)."""
    cdef Piece p
    cdef Py_ssize_t mxs = t.mxs, ldm = t.ldm
    cdef Py_ssize_t k, s, q0, nq, i
    cdef const floating* plane
    # dY rows 2ty (g0) and 2ty + 1 (g1) of every tile, even (e) and odd (o) columns
    cdef floating* g0e
    cdef floating* g0o
    cdef floating* g1e
    cdef floating* g1o
    cdef floating* o
    s = s0
    q0 = 0
    while s < s1:  # pieces outer: the K planes of an image are read in one sweep
        s += piece_at(t, s, s1, &p)
        for k in range(K):
            nq = p.rows * p.width
            g0e = scratch
            g0o = scratch + nq
            g1e = scratch + 2 * nq
            g1o = scratch + 3 * nq
            plane = dy + (p.n * K + k) * Ho * Wo
            if k + 1 < K:
                prefetch_rows(plane + Ho * Wo, Ho, Wo, 2 * p.ty, 2 * p.rows)
            for i in range(p.rows):
                load_pairs(plane, Ho, Wo, 2 * (p.ty + i), 2 * p.tx, p.width, g0e + i * p.width, g0o + i * p.width)
                load_pairs(plane, Ho, Wo, 2 * (p.ty + i) + 1, 2 * p.tx, p.width, g1e + i * p.width,
                           g1o + i * p.width)
            # rows of A·dY: (g0, g0 + g1, g0 − g1, −g1); a row (e, f) becomes (e, e + f, e − f, −f)
            o = dm + k * ldm + q0
            for i in range(nq):
                o[i] = g0e[i]
            o = o + mxs
            for i in range(nq):
                o[i] = g0e[i] + g0o[i]
            o = o + mxs
            for i in range(nq):
                o[i] = g0e[i] - g0o[i]
            o = o + mxs
            for i in range(nq):
                o[i] = -g0o[i]
            o = o + mxs
            for i in range(nq):
                o[i] = g0e[i] + g1e[i]
            o = o + mxs
            for i in range(nq):
                o[i] = (g0e[i] + g1e[i]) + (g0o[i] + g1o[i])
            o = o + mxs
            for i in range(nq):
                o[i] = (g0e[i] + g1e[i]) - (g0o[i] + g1o[i])
            o = o + mxs
            for i in range(nq):
                o[i] = -(g0o[i] + g1o[i])
            o = o + mxs
            for i in range(nq):
                o[i] = g0e[i] - g1e[i]
            o = o + mxs
            for i in range(nq):
                o[i] = (g0e[i] - g1e[i]) + (g0o[i] - g1o[i])
            o = o + mxs
            for i in range(nq):
                o[i] = (g0e[i] - g1e[i]) - (g0o[i] - g1o[i])
            o = o + mxs
            for i in range(nq):
                o[i] = g1o[i] - g0o[i]
            o = o + mxs
            for i in range(nq):
                o[i] = -g1e[i]
            o = o + mxs
            for i in range(nq):
                o[i] = -g1e[i] - g1o[i]
            o = o + mxs
            for i in range(nq):
                o[i] = g1o[i] - g1e[i]
            o = o + mxs
            for i in range(nq):
                o[i] = g1o[i]
        q0 += p.rows * p.width


# Rows of the sgemm A panels: ``winograd_filter``'s ``panel_rows`` for the panel layout.
PANEL_ROWS = FC_SGEMM_MR


def packed_product(const float[::1] a_panels, const float[::1] b_panels, float[:, ::1] c,
                   int depth, int repeats=1):
    """c (m × n) = A·B on pre-packed panels, as the forward passes call the sgemm for each
    Winograd product (packing excluded), ``repeats`` times: for benchmarks. ``a_panels`` holds A
    (m × depth) as 12-row panels, ``b_panels`` B (depth × n) as 32-column panels, 64-byte
    aligned; sizes, alignment and the CPU's support are checked."""
    cdef int m = c.shape[0], n = c.shape[1], r
    cdef Py_ssize_t need_a = (m + FC_SGEMM_MR - 1) // FC_SGEMM_MR * FC_SGEMM_MR * depth
    cdef Py_ssize_t need_b = (n + 31) // 32 * 32 * depth
    if not fc_sgemm_packed_available():
        raise ValueError("packed_product: this CPU has no packed sgemm (needs AVX-512 or AVX2+FMA)")
    if depth < 1 or m < 1 or n < 1 or a_panels.shape[0] < need_a or b_panels.shape[0] < need_b:
        raise ValueError(f"packed_product: expected panels of at least {need_a} and {need_b} "
                         f"elements for a {m}×{n} product of depth {depth}, got "
                         f"{a_panels.shape[0]} and {b_panels.shape[0]}")
    if (<size_t>&b_panels[0]) % 64 or (<size_t>&a_panels[0]) % 64:
        raise ValueError("packed_product: expected 64-byte aligned panels")
    with nogil:
        for r in range(repeats):
            fc_sgemm_packed(m, n, depth, &a_panels[0], &b_panels[0], &c[0, 0], n)


cdef extern from "_sgemm.h":
    int fc_sgemm_cpu_level
    int fc_sgemm_supported()


_CPU_SGEMM_VARIANT = fc_sgemm_supported()


def sgemm_variants():
    """Variants of the packed sgemm (and the weight gradient's panel transforms) this CPU can run
    in this module: 1 AVX2+FMA, 2 AVX-512 (none without the packed sgemm)."""
    return list(range(1, _CPU_SGEMM_VARIANT + 1))


def set_sgemm_variant(int level):
    """Run this module's packed sgemm and panel transforms as variant ``level`` (tests: the AVX2
    kernels on an AVX-512 CPU); returns the previous variant."""
    cdef int previous = fc_sgemm_supported()
    if level not in sgemm_variants():
        raise ValueError(f"set_sgemm_variant: expected one of {sgemm_variants()}, got {level}")
    global fc_sgemm_cpu_level
    fc_sgemm_cpu_level = level
    return previous


def panel_layout(bint float32):
    """Whether the kernels use the packed-panel layouts (fastconv's packed sgemm, the vector
    transforms) for this dtype: float32 on a CPU with AVX-512 or AVX2+FMA."""
    return bool(float32 and fc_sgemm_packed_available())


def filter_elements(Py_ssize_t c_in, Py_ssize_t c_out, bint panels):
    """Elements of the transformed filter of a pass with c_in channels in and c_out out: 16
    matrices c_out × c_in, in 12-row panels (rows padded with zeros) when ``panels``."""
    cdef Py_ssize_t rows = (c_out + FC_SGEMM_MR - 1) // FC_SGEMM_MR * FC_SGEMM_MR if panels else c_out
    return 16 * rows * c_in


def work_elements(Py_ssize_t C, Py_ssize_t K, Py_ssize_t Ho, Py_ssize_t Wo, Py_ssize_t block_tiles,
                  bint panels):
    """(V, M) buffer elements per thread for blocks of ``block_tiles`` tiles of an Ho×Wo output:
    the transformed tiles of a block plus transform scratch."""
    cdef Tiling t
    make_tiling(1, C, K, Ho, Wo, block_tiles, panels, &t)
    return t.v_elements, t.m_elements


# Filters transformed together by ``filter_batch`` (their results are contiguous in u).
DEF FILTER_BATCH = 16


cdef inline void filter_batch(const floating* g9, Py_ssize_t src_stride, Py_ssize_t n, bint flip,
                              floating* dst, Py_ssize_t stride) noexcept nogil:
    """dst[ξ·stride + j] = (G g_j Gᵀ)_ξ for n ≤ FILTER_BATCH 3×3 filters g_j = g9 + j·src_stride
    (row-major; rotated by 180° with ``flip``). Local arrays, loops over j: vectorized."""
    cdef floating g[9][FILTER_BATCH]
    cdef floating t[12][FILTER_BATCH]
    cdef Py_ssize_t r, j, q
    cdef floating* d
    for q in range(n):
        for r in range(9):
            g[r][q] = g9[q * src_stride + (8 - r if flip else r)]
    # t = G·g (4×3)
    for j in range(3):
        for q in range(n):
            t[j][q] = g[j][q]
            t[3 + j][q] = (g[j][q] + g[3 + j][q] + g[6 + j][q]) * 0.5
            t[6 + j][q] = (g[j][q] - g[3 + j][q] + g[6 + j][q]) * 0.5
            t[9 + j][q] = g[6 + j][q]
    # u = t·Gᵀ (4×4)
    for r in range(4):
        d = dst + 4 * r * stride
        for q in range(n):
            d[q] = t[r * 3][q]
        d = d + stride
        for q in range(n):
            d[q] = (t[r * 3][q] + t[r * 3 + 1][q] + t[r * 3 + 2][q]) * 0.5
        d = d + stride
        for q in range(n):
            d[q] = (t[r * 3][q] - t[r * 3 + 1][q] + t[r * 3 + 2][q]) * 0.5
        d = d + stride
        for q in range(n):
            d[q] = t[r * 3 + 2][q]


cdef inline void zero_panel_rows(floating* u, Py_ssize_t o, Py_ssize_t K, Py_ssize_t C,
                                 Py_ssize_t panel_rows, Py_ssize_t stride) noexcept nogil:
    """Zero the rows past K of the 12-row A panel starting at filter o, in each of the 16 U_ξ:
    written by the thread that transforms that panel (a memset of all of U before the region
    left its lines in the first core's cache for the others to fetch)."""
    cdef Py_ssize_t xi, i, used = K - o
    if used >= panel_rows:
        return
    for xi in range(16):
        for i in range(C):
            memset(u + xi * stride + o * C + i * panel_rows + used, 0, (panel_rows - used) * sizeof(floating))


cdef inline void filter_unit(const floating* w0, floating* u0, Py_ssize_t j, Py_ssize_t K, Py_ssize_t C,
                             bint flip_transpose, Py_ssize_t panel_rows, Py_ssize_t stride) noexcept nogil:
    """Unit j of ``transform_filters``: the 12-row panel j (its padding rows zeroed), or with plain
    rows (panel_rows 1) output row j."""
    cdef Py_ssize_t c_out = C if flip_transpose else K, c_in = K if flip_transpose else C, i, oo
    cdef Py_ssize_t o = j * panel_rows
    if panel_rows > 1:  # the ≤ panel_rows filters of a panel at one input channel are contiguous
        zero_panel_rows(u0, o, c_out, c_in, panel_rows, stride)
        for i in range(c_in):
            for oo in range(0, min(panel_rows, c_out - o), FILTER_BATCH):
                filter_batch(w0 + ((i * C + o + oo) if flip_transpose else ((o + oo) * C + i)) * 9,
                             (1 if flip_transpose else C) * 9,
                             min(FILTER_BATCH, panel_rows - oo, c_out - o - oo), flip_transpose,
                             u0 + o * c_in + i * panel_rows + oo, stride)
    else:  # plain rows: a row's filters (all input channels) are contiguous
        for i in range(0, c_in, FILTER_BATCH):
            filter_batch(w0 + ((i * C + j) if flip_transpose else (j * C + i)) * 9,
                         (C if flip_transpose else 1) * 9, min(FILTER_BATCH, c_in - i), flip_transpose,
                         u0 + j * c_in + i, stride)


cdef void transform_filters(const floating* w0, floating* u0, Py_ssize_t K, Py_ssize_t C, bint flip_transpose,
                            Py_ssize_t panel_rows, int num_threads) noexcept nogil:
    """``winograd_filter`` on raw arrays (w K×C×3×3, u of 16 panel-padded matrices), panels (or
    rows) in a prange with several threads, in a plain loop (no region) with one."""
    cdef Py_ssize_t c_out = C if flip_transpose else K, c_in = K if flip_transpose else C
    cdef Py_ssize_t units = (c_out + panel_rows - 1) // panel_rows, stride = units * panel_rows * c_in, j
    if K == 0 or C == 0:
        return
    if num_threads > 1:
        for j in prange(units, schedule='guided', num_threads=team(num_threads)):
            filter_unit(w0, u0, j, K, C, flip_transpose, panel_rows, stride)
    else:
        for j in range(units):
            filter_unit(w0, u0, j, K, C, flip_transpose, panel_rows, stride)


def winograd_filter(const floating[:, :, :, ::1] w, floating[::1] u, bint flip_transpose,
                    Py_ssize_t panel_rows, int num_threads):
    """u = G g Gᵀ per filter: 16 matrices (one per ξ) of the pass's c_out × c_in filters, each in
    row panels of ``panel_rows`` rows (1: plain row-major; FC_SGEMM_MR: the sgemm A panels, rows
    past c_out zero). The filter g is w[k, c] (K×C×3×3): c_out = K, c_in = C; with
    ``flip_transpose`` it is w[k, c] rotated by 180° with c_out = C, c_in = K, the filter of the
    input-gradient convolution. Panels are filled in storage order (contiguous writes), split
    over ``num_threads`` threads.
    """
    cdef Py_ssize_t K = w.shape[0], C = w.shape[1]
    cdef Py_ssize_t c_out = C if flip_transpose else K, c_in = K if flip_transpose else C
    if panel_rows < 1:
        raise ValueError("winograd_filter: panel_rows must be positive")
    if u.shape[0] < 16 * ((c_out + panel_rows - 1) // panel_rows) * panel_rows * c_in:
        raise ValueError("winograd_filter: u too small")
    if K == 0 or C == 0:
        return
    with nogil:
        transform_filters(&w[0, 0, 0, 0], &u[0], K, C, flip_transpose, panel_rows, num_threads)


cdef inline void filter_grad_batch(const floating* a16, Py_ssize_t stride, Py_ssize_t n,
                                   floating* dw9, Py_ssize_t out_stride) noexcept nogil:
    """dw9[j·out_stride : j·out_stride + 9] (3×3, row-major) = Gᵀ a_j G for n ≤ FILTER_BATCH 4×4
    matrices a_j[ξ] = a16[ξ·stride + j]. Local arrays, loops over j: vectorized."""
    cdef floating a[16][FILTER_BATCH]
    cdef floating t[12][FILTER_BATCH]
    cdef floating o[9][FILTER_BATCH]
    cdef Py_ssize_t r, j, q
    for r in range(16):
        for q in range(n):
            a[r][q] = a16[r * stride + q]
    # t = Gᵀ·a (3×4)
    for j in range(4):
        for q in range(n):
            t[j][q] = a[j][q] + (a[4 + j][q] + a[8 + j][q]) * 0.5
            t[4 + j][q] = (a[4 + j][q] - a[8 + j][q]) * 0.5
            t[8 + j][q] = (a[4 + j][q] + a[8 + j][q]) * 0.5 + a[12 + j][q]
    # dw = t·G (3×3)
    for r in range(3):
        for q in range(n):
            o[r * 3][q] = t[r * 4][q] + (t[r * 4 + 1][q] + t[r * 4 + 2][q]) * 0.5
            o[r * 3 + 1][q] = (t[r * 4 + 1][q] - t[r * 4 + 2][q]) * 0.5
            o[r * 3 + 2][q] = (t[r * 4 + 1][q] + t[r * 4 + 2][q]) * 0.5 + t[r * 4 + 3][q]
    for q in range(n):
        for r in range(9):
            dw9[out_stride * q + r] = o[r][q]


def winograd_filter_grad(const floating[:, :, ::1] du, floating[:, :, :, ::1] dw, int num_threads,
                         bint transposed=False):
    """dw[k, c] (3×3) = Gᵀ dU[:, k, c] G, du being 16×K×C (16×C×K when ``transposed``: the
    panel layout's dU): the adjoint of ``winograd_filter`` (split over ``num_threads`` threads
    by k, or by c when ``transposed``)."""
    cdef Py_ssize_t K = dw.shape[0], C = dw.shape[1], k, c
    cdef Py_ssize_t s0, s1
    if du.shape[0] != 16 or du.shape[1] != (C if transposed else K) or du.shape[2] != (K if transposed else C):
        raise ValueError(f"winograd_filter_grad: du must be {'16×C×K' if transposed else '16×K×C'} for "
                         f"dw's K×C = {K}×{C}, got {tuple(du.shape)[:3]}")
    if K == 0 or C == 0:
        return
    s0 = du.strides[0] // sizeof(floating)
    s1 = du.strides[1] // sizeof(floating)
    with nogil:
        if transposed:
            for c in prange(C, schedule='guided', num_threads=team(num_threads)):
                for k in range(0, K, FILTER_BATCH):
                    filter_grad_batch(&du[0, 0, 0] + c * s1 + k, s0, min(FILTER_BATCH, K - k),
                                      &dw[k, c, 0, 0], 9 * C)
        else:
            for k in prange(K, schedule='guided', num_threads=team(num_threads)):
                for c in range(0, C, FILTER_BATCH):
                    filter_grad_batch(&du[0, 0, 0] + k * s1 + c, s0, min(FILTER_BATCH, C - c),
                                      &dw[k, c, 0, 0], 9)


cdef inline floating* aligned_v(floating* v) noexcept nogil:
    """v rounded up to 64 bytes (the buffer has ALIGN_SLACK spare elements for it)."""
    cdef uintptr_t misalign = (<uintptr_t>v) % 64
    if misalign == 0 or misalign % sizeof(floating) != 0:
        return v
    return v + (64 - misalign) // sizeof(floating)


cdef inline void zero_panel_tails(floating* v, Py_ssize_t vxs, Py_ssize_t C, Py_ssize_t L,
                                  Py_ssize_t pw) noexcept nogil:
    """Zero the columns past L of the last B panel of each V_ξ: the micro-kernel multiplies whole
    panels, so those columns must hold finite values (garbage could be slow denormals). The
    thread that owns the buffer writes them, once per block, instead of a memset of every
    thread's buffer before the region, whose lines the other threads then fetch from its cache."""
    cdef Py_ssize_t xi, r, last = (L - 1) // pw, used = L - last * pw
    if used == pw:
        return
    for xi in range(16):
        for r in range(C):
            memset(v + xi * vxs + (last * C + r) * pw + used, 0, (pw - used) * sizeof(floating))


cdef void forward_block(const floating* x, const floating* u, const floating* bias, floating* y,
                        Py_ssize_t C, Py_ssize_t H, Py_ssize_t W, Py_ssize_t K, Py_ssize_t Ho,
                        Py_ssize_t Wo, Py_ssize_t ph, Py_ssize_t pw, const Tiling* t,
                        Py_ssize_t s0, Py_ssize_t s1, Py_ssize_t k0, Py_ssize_t k1, bint panels,
                        floating* vbuf, floating* m) noexcept nogil:
    """Tiles [s0, s1): transform, 16 GEMMs M_ξ = U_ξ·V_ξ, inverse transform into y; output
    channels [k0, k1) only (k0 a multiple of the panel rows; a part other than [0, K) needs
    ``panels``)."""
    cdef Py_ssize_t xi, L = s1 - s0
    cdef Py_ssize_t ustride = (K + FC_SGEMM_MR - 1) // FC_SGEMM_MR * FC_SGEMM_MR * C if panels else K * C
    cdef floating* v = aligned_v(vbuf)
    cdef floating* scratch = vbuf + ALIGN_SLACK + 16 * t.vxs
    cdef Piece p
    cdef Py_ssize_t s, q0
    if floating is float:
        if panels:  # vector transforms (_winograd_fwd.h), products on the panels they write
            zero_panel_tails(v, t.vxs, C, L, t.vpw)
            s = s0
            q0 = 0
            while s < s1:
                s += piece_at(t, s, s1, &p)
                fc_wf_inputs(x + p.n * C * H * W, C, H, W, ph, pw, p.ty, p.rows, p.tx, p.width, q0,
                             v, t.vxs, scratch)
                q0 += p.rows * p.width
            for xi in range(16):
                fc_sgemm_packed(<int>(k1 - k0), <int>L, <int>C, u + xi * ustride + k0 * C, v + xi * t.vxs,
                                m + xi * t.mxs + k0 * t.ldm, <int>t.ldm)
            s = s0
            q0 = 0
            while s < s1:
                s += piece_at(t, s, s1, &p)
                fc_wf_outputs(m + k0 * t.ldm, k1 - k0, Ho, Wo, t.ldm, t.mxs, q0, p.ty, p.rows, p.tx,
                              p.width, bias + k0 if bias != NULL else NULL,
                              y + (p.n * K + k0) * Ho * Wo)
                q0 += p.rows * p.width
            return
    transform_inputs(x, C, H, W, ph, pw, t, s0, s1, v, scratch)
    if not panels:
        for xi in range(16):
            gemm(False, False, <int>K, <int>L, <int>C, <floating>1, u + xi * ustride, <int>C,
                 v + xi * t.vxs, <int>t.vpw, <floating>0, m + xi * t.mxs, <int>t.ldm)
    transform_outputs(m, K, Ho, Wo, t, s0, s1, bias, y)


cdef void forward_blocks(const floating* x, const floating* u, const floating* bias, floating* y,
                         floating* vwork, Py_ssize_t vstride, floating* mwork, Py_ssize_t mstride,
                         Py_ssize_t C, Py_ssize_t H, Py_ssize_t W, Py_ssize_t K, Py_ssize_t Ho,
                         Py_ssize_t Wo, Py_ssize_t ph, Py_ssize_t pw, const Tiling* t, bint panels,
                         bint parallel, Py_ssize_t channel_parts, int num_threads) noexcept nogil:
    """Every block of tiles, on V/M buffers ``vstride``/``mstride`` elements apart (one per
    thread when ``parallel``). ``parallel`` runs the blocks in a prange; with ``channel_parts`` > 1
    (``panels`` only) it runs that many parts of the output channels instead (whole U panels),
    each part every block: each thread then reads only its share of U and the threads' shares
    are equal however few the tiles, for one input transform per thread and block."""
    cdef Py_ssize_t nblocks = (t.tiles + t.max_tiles - 1) // t.max_tiles, b, s0, th, q
    cdef Py_ssize_t kpanels = (K + FC_SGEMM_MR - 1) // FC_SGEMM_MR, k0, k1
    if parallel and panels and channel_parts > 1:
        for q in prange(channel_parts, schedule='dynamic', num_threads=team(num_threads)):
            th = threadid()
            k0 = part_begin(q, channel_parts, kpanels) * FC_SGEMM_MR
            k1 = min(K, part_begin(q + 1, channel_parts, kpanels) * FC_SGEMM_MR)
            for b in range(nblocks if k1 > k0 else 0):  # more parts than panels: some are empty
                s0 = b * t.max_tiles
                forward_block(x, u, bias, y, C, H, W, K, Ho, Wo, ph, pw, t, s0, min(s0 + t.max_tiles, t.tiles),
                              k0, k1, panels, vwork + th * vstride, mwork + th * mstride)
    elif parallel:
        for b in prange(nblocks, schedule='dynamic', num_threads=team(num_threads)):
            th = threadid()
            s0 = b * t.max_tiles
            forward_block(x, u, bias, y, C, H, W, K, Ho, Wo, ph, pw, t, s0, min(s0 + t.max_tiles, t.tiles),
                          0, K, panels, vwork + th * vstride, mwork + th * mstride)
    else:
        for b in range(nblocks):
            s0 = b * t.max_tiles
            forward_block(x, u, bias, y, C, H, W, K, Ho, Wo, ph, pw, t, s0, min(s0 + t.max_tiles, t.tiles),
                          0, K, panels, vwork, mwork)


cdef int check_work(floating[:, ::1] vwork, floating[:, ::1] mwork, const Tiling* t, bint parallel,
                    int num_threads) except -1:
    cdef Py_ssize_t threads = num_threads if parallel else 1
    if (vwork.shape[0] < threads or mwork.shape[0] < threads
            or vwork.shape[1] < t.v_elements or mwork.shape[1] < t.m_elements):
        raise ValueError("winograd: work buffers too small for the block size")
    return 0


def winograd_forward(const floating[:, :, :, ::1] x, const floating[::1] u,
                     const floating[::1] bias, bint has_bias, floating[:, :, :, ::1] y,
                     floating[:, ::1] vwork, floating[:, ::1] mwork, int ph, int pw,
                     Py_ssize_t block_tiles, bint panels, bint parallel, int num_threads,
                     Py_ssize_t channel_parts=1):
    """y = conv2d(x, g) + bias for 3×3 filters given as u = winograd_filter(g) (16 K×C matrices,
    in 12-row panels when ``panels``, else plain).

    ``ph``/``pw`` are the top/left padding (may be negative: a crop); y's shape fixes the
    output size. Blocks are ``block_tiles`` consecutive tiles; ``vwork``/``mwork`` hold one buffer per thread of ``work_elements`` elements. With
    ``parallel`` blocks run in a prange (BLAS must be single-threaded), otherwise one after
    another. ``panels`` (float32 with the packed sgemm only, see ``panel_layout``) selects the
    packed layouts. ``channel_parts`` > 1 (``parallel`` with ``panels``) splits the output
    channels into that many parts instead of the blocks (``forward_blocks``).
    """
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t K = y.shape[1], Ho = y.shape[2], Wo = y.shape[3]
    cdef Tiling t
    cdef const floating* bptr = &bias[0] if has_bias else NULL
    if N == 0 or Ho == 0 or Wo == 0 or K == 0:
        return
    if panels and not (floating is float and fc_sgemm_packed_available()):
        raise ValueError("winograd_forward: the panel layout needs float32 and AVX-512 or AVX2+FMA")
    if y.shape[0] != N or u.shape[0] < filter_elements(C, K, panels):
        raise ValueError("winograd_forward: shapes of u, x and y disagree")
    if channel_parts < 1 or (channel_parts > 1 and not (parallel and panels)):
        raise ValueError(f"winograd_forward: expected channel_parts 1, or more with parallel panels, got "
                         f"{channel_parts}")
    if C == 0:
        return
    make_tiling(N, C, K, Ho, Wo, block_tiles, panels, &t)
    check_work(vwork, mwork, &t, parallel, num_threads)
    with nogil:
        forward_blocks(&x[0, 0, 0, 0], &u[0], bptr, &y[0, 0, 0, 0], &vwork[0, 0], vwork.shape[1], &mwork[0, 0],
                       mwork.shape[1], C, H, W, K, Ho, Wo, ph, pw, &t, panels, parallel, channel_parts,
                       num_threads)


cdef void weight_grad_block(const floating* x, const floating* dy, floating* du,
                            Py_ssize_t C, Py_ssize_t H, Py_ssize_t W, Py_ssize_t K, Py_ssize_t Ho,
                            Py_ssize_t Wo, Py_ssize_t ph, Py_ssize_t pw, const Tiling* t,
                            Py_ssize_t s0, Py_ssize_t s1, floating* v, floating* m) noexcept nogil:
    """Tiles [s0, s1): du_ξ += (A dY Aᵀ)_ξ · V_ξᵀ."""
    cdef Py_ssize_t xi, L = s1 - s0
    transform_inputs(x, C, H, W, ph, pw, t, s0, s1, v, v + ALIGN_SLACK + 16 * t.vxs)
    transform_grads(dy, K, Ho, Wo, t, s0, s1, m, m + 16 * t.mxs)
    for xi in range(16):
        gemm(False, True, <int>K, <int>C, <int>L, <floating>1, m + xi * t.mxs, <int>t.ldm,
             v + xi * t.vxs, <int>t.vpw, <floating>1, du + xi * K * C, <int>C)


cdef struct GradPanels:
    # the weight gradient's packed layout (``_winograd_dw.h``) for blocks of max_tiles tiles
    Py_ssize_t axs, bxs                   # elements between the A panels of V_ξ and V_ξ+1, B of M_ξ
    Py_ssize_t v_elements, m_elements     # per thread: A panels + piece scratch; B panels + slack


cdef void grad_panels(Py_ssize_t C, Py_ssize_t K, Py_ssize_t Wo, Py_ssize_t block_tiles,
                      GradPanels* g) noexcept nogil:
    g.axs = (C + FC_WG_GROUP - 1) // FC_WG_GROUP * FC_WG_GROUP * block_tiles + XI_PAD
    g.bxs = (K + FC_WG_KPAD - 1) // FC_WG_KPAD * FC_WG_KPAD * block_tiles + XI_PAD
    g.v_elements = 16 * g.axs + fc_wg_scratch_floats(C, K, (Wo + 1) // 2, block_tiles)
    g.m_elements = ALIGN_SLACK + 16 * g.bxs


def weight_grad_elements(Py_ssize_t C, Py_ssize_t K, Py_ssize_t Ho, Py_ssize_t Wo,
                         Py_ssize_t block_tiles):
    """(V, M) buffer elements per thread of ``winograd_weight_grad`` with ``panels``."""
    cdef GradPanels g
    if block_tiles < 1:
        raise ValueError("winograd: block_tiles must be positive")
    grad_panels(C, K, Wo, block_tiles, &g)
    return g.v_elements, g.m_elements


cdef void weight_grad_block_panels(const float* x, const float* dy, float* du, Py_ssize_t C,
                                   Py_ssize_t H, Py_ssize_t W, Py_ssize_t K, Py_ssize_t Ho,
                                   Py_ssize_t Wo, Py_ssize_t ph, Py_ssize_t pw, const Tiling* t,
                                   const GradPanels* g, Py_ssize_t s0, Py_ssize_t s1, float* v,
                                   float* m) noexcept nogil:
    """Tiles [s0, s1): V_ξ and M_ξᵀ straight into sgemm panels, then du_ξ (C×K) += V_ξ · M_ξᵀ."""
    cdef Piece p
    cdef Py_ssize_t s = s0, q0 = 0, L = s1 - s0, xi
    cdef float* bpan = aligned_v(m)
    while s < s1:
        s += piece_at(t, s, s1, &p)
        fc_wg_piece(x + p.n * C * H * W, dy + p.n * K * Ho * Wo, C, H, W, K, Ho, Wo, ph, pw,
                    p.ty, p.rows, p.tx, p.width, q0, L, v, g.axs, bpan, g.bxs, v + 16 * g.axs)
        q0 += p.rows * p.width
    for xi in range(16):
        fc_sgemm_packed_acc(<int>C, <int>K, <int>L, v + xi * g.axs, bpan + xi * g.bxs,
                            du + xi * C * K, <int>K, 1)


def winograd_weight_grad(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] dy,
                         floating[:, ::1] du_parts, floating[:, ::1] vwork, floating[:, ::1] mwork,
                         int ph, int pw, Py_ssize_t block_tiles, bint parallel, int num_threads,
                         bint panels=False):
    """du_parts[p] += Σ over partition p's tile blocks of (A dY Aᵀ)_ξ · V_ξᵀ (16×K×C each), or with
    ``panels`` (float32 with the packed sgemm, see ``panel_layout``) its transpose V_ξ · (A dY
    Aᵀ)_ξᵀ (16×C×K each), computed on sgemm panels the transforms write directly.

    With ``parallel`` the blocks are cut into ``num_threads`` contiguous partitions, each summed
    in block order into its own part by whichever thread takes it (so the sums do not depend on
    how many threads run). The caller sums the parts in order and maps them back with
    ``winograd_filter_grad``.
    Blocks and buffers as in ``winograd_forward``: plain layout (``work_elements`` without
    panels), or ``weight_grad_elements`` with ``panels``.
    """
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t K = dy.shape[1], Ho = dy.shape[2], Wo = dy.shape[3]
    cdef Py_ssize_t nblocks, b, s0, th, p, threads = num_threads if parallel else 1
    cdef Tiling t
    cdef GradPanels g
    cdef bint panels_ok = fc_sgemm_packed_available() if floating is float else False
    if N == 0 or Ho == 0 or Wo == 0 or K == 0 or C == 0:
        return
    if dy.shape[0] != N or du_parts.shape[1] < 16 * K * C or du_parts.shape[0] < threads:
        raise ValueError("winograd_weight_grad: shapes of x, dy and du_parts disagree")
    make_tiling(N, C, K, Ho, Wo, block_tiles, False, &t)
    nblocks = (t.tiles + t.max_tiles - 1) // t.max_tiles
    if panels:
        if not panels_ok:
            raise ValueError("winograd_weight_grad: the panel layout needs float32 and AVX-512 or AVX2+FMA")
        grad_panels(C, K, Wo, block_tiles, &g)
        if (vwork.shape[0] < threads or mwork.shape[0] < threads
                or vwork.shape[1] < g.v_elements or mwork.shape[1] < g.m_elements):
            raise ValueError("winograd_weight_grad: work buffers too small for the block size")
        if floating is float:
            with nogil:
                if parallel:
                    for p in prange(threads, schedule='dynamic', num_threads=team(num_threads)):
                        th = threadid()
                        for b in range(part_begin(p, threads, nblocks), part_begin(p + 1, threads, nblocks)):
                            s0 = b * t.max_tiles
                            weight_grad_block_panels(&x[0, 0, 0, 0], &dy[0, 0, 0, 0], &du_parts[p, 0], C, H,
                                                     W, K, Ho, Wo, ph, pw, &t, &g, s0,
                                                     min(s0 + t.max_tiles, t.tiles), &vwork[th, 0], &mwork[th, 0])
                else:
                    for b in range(nblocks):
                        s0 = b * t.max_tiles
                        weight_grad_block_panels(&x[0, 0, 0, 0], &dy[0, 0, 0, 0], &du_parts[0, 0], C, H, W,
                                                 K, Ho, Wo, ph, pw, &t, &g, s0, min(s0 + t.max_tiles, t.tiles),
                                                 &vwork[0, 0], &mwork[0, 0])
        return
    check_work(vwork, mwork, &t, parallel, num_threads)
    with nogil:
        if parallel:
            for p in prange(threads, schedule='dynamic', num_threads=team(num_threads)):
                th = threadid()
                for b in range(part_begin(p, threads, nblocks), part_begin(p + 1, threads, nblocks)):
                    s0 = b * t.max_tiles
                    weight_grad_block(&x[0, 0, 0, 0], &dy[0, 0, 0, 0], &du_parts[p, 0], C, H, W, K, Ho,
                                      Wo, ph, pw, &t, s0, min(s0 + t.max_tiles, t.tiles), &vwork[th, 0],
                                      &mwork[th, 0])
        else:
            for b in range(nblocks):
                s0 = b * t.max_tiles
                weight_grad_block(&x[0, 0, 0, 0], &dy[0, 0, 0, 0], &du_parts[0, 0], C, H, W, K, Ho, Wo,
                                  ph, pw, &t, s0, min(s0 + t.max_tiles, t.tiles), &vwork[0, 0], &mwork[0, 0])


# ---- nogil entry point (winograd.pxd): the compiled predictor's executor calls it -----------------

cdef void winograd_forward_f32(const float* x, const float* u, const float* bias, float* y,
                               float* vwork, Py_ssize_t vstride, float* mwork, Py_ssize_t mstride,
                               Py_ssize_t N, Py_ssize_t C, Py_ssize_t H, Py_ssize_t W, Py_ssize_t K,
                               Py_ssize_t Ho, Py_ssize_t Wo, int ph, int pw, Py_ssize_t block_tiles,
                               bint panels, bint parallel, Py_ssize_t channel_parts,
                               int num_threads) noexcept nogil:
    """``winograd_forward`` on raw contiguous float32 arrays (u from ``winograd_filter`` with the
    same ``panels``; bias NULL: none), V/M buffers one per thread, ``vstride``/``mstride``
    elements apart, each at least ``work_elements`` long. No parallel region unless
    ``parallel``."""
    cdef Tiling t
    if N == 0 or Ho == 0 or Wo == 0 or K == 0 or C == 0 or block_tiles < 1:
        return
    fill_tiling(N, C, K, Ho, Wo, block_tiles, panels, &t)
    forward_blocks(x, u, bias, y, vwork, vstride, mwork, mstride, C, H, W, K, Ho, Wo, ph, pw, &t, panels,
                   parallel, channel_parts if parallel and panels else 1, num_threads)


cdef void winograd_filter_f32(const float* w, float* u, Py_ssize_t K, Py_ssize_t C, Py_ssize_t panel_rows,
                              int num_threads) noexcept nogil:
    """``winograd_filter`` (forward orientation: c_out = K, c_in = C) on raw float32 arrays, u of
    ``filter_elements(C, K, panel_rows > 1)`` elements; serial with one thread."""
    if panel_rows >= 1:
        transform_filters(w, u, K, C, False, panel_rows, num_threads)
