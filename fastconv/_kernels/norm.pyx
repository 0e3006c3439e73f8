# cython: language_level=3
"""Normalization kernels: stable per-group moments, normalize + affine, closed-form backward.

Every kernel sees its input as a contiguous (A, B, L) array. Row b of the middle axis belongs
to statistics group ``b // cpg`` (the group spans x[:, b, :] for its cpg rows b) and to affine
channel ``b % channels``; with ``elementwise`` the affine parameters are indexed by l instead
(layer norm). The functional layer picks the view:

* batch norm     (N, C, S)        cpg 1   - statistics per channel over N and S
* instance norm  (1, N*C, S)      cpg 1   - per sample-channel
* group norm     (1, N*C, S)      cpg C/G - per sample-group, per-channel affine
* layer norm     (1, rows, M)     cpg 1   - per row, elementwise affine

Only the loops over elements run in parallel; the merges of per-tile partials and the
per-channel/per-group coefficient loops are tiny and run serially inside the same call (each
parallel region costs a fork/join, which is expensive on a shared machine).

Statistics: each (b, tile) work item reduces a cache-sized tile (at most TILE elements) with
a corrected two-pass mean/M2 (the second pass reads the tile from L1), and the tiles of a group
are merged with Chan's pairwise formula. So x is read from memory once, and a float32 input
with mean 1e4 and std 1e-2 keeps full precision (sums run in the input type only within
64-element blocks, see the reductions below). Work items span groups and tiles, so batch norm
(few channels, many elements each) parallelizes as well as instance norm. When each group is
contiguous and fits in cache, ``normalize_groups`` / ``backward_groups`` handle a whole group
per work item (statistics then normalize; gradient sums then dx), reading memory once;
``backward_rows`` does the same for layer norm's backward with a band of rows per step.

Kernels trust their inputs: shapes, dtypes and contiguity are validated in
fastconv/nn/functional/normalization.py.
"""
import numpy as np

from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport sqrt

from ._omp cimport team, team_for_work

cdef enum:
    TILE = 4096       # elements per statistics / normalize work item
    COL_BLOCK = 1024  # columns per work item of the elementwise (layer norm) gradient sums
    ROW_BLOCK = 64    # rows per work item of the elementwise (layer norm) gradient sums
    BLOCK = 64        # elements per block of a reduction accumulated in the input type

# Calls touching fewer elements per thread run on fewer threads (docs/design.md §2).
cdef double MIN_ELEMENTS_PER_THREAD = 1 << 15


cdef inline void _tiling(Py_ssize_t A, Py_ssize_t L, Py_ssize_t* rows, Py_ssize_t* cols,
                         Py_ssize_t* col_tiles, Py_ssize_t* tiles) noexcept nogil:
    """Cut one group's (A, L) plane into tiles of about TILE elements: rows x cols each."""
    if L >= TILE:
        rows[0] = 1
        cols[0] = TILE
    else:
        cols[0] = L if L > 0 else 1
        rows[0] = TILE // cols[0]
    col_tiles[0] = (L + cols[0] - 1) // cols[0]
    tiles[0] = ((A + rows[0] - 1) // rows[0]) * col_tiles[0]


# Reductions accumulate blocks of BLOCK elements in eight lanes of the input type, one lane
# array per loop (a shape gcc vectorizes without reassociation flags; two arrays updated in one
# loop are not), and add each block's total in double, so a
# float32 sum carries at most a block's worth of float rounding. Differences from a mean m use
# mf, m rounded to the input type (x - mf is exact for x near the mean), and correct for the
# residue m - mf in double.

cdef inline double _sum(const floating* p, Py_ssize_t n) noexcept nogil:
    """Σ p[i]."""
    cdef floating s[8]
    cdef double total = 0.0
    cdef Py_ssize_t i = 0, j, k
    while i + BLOCK <= n:
        for k in range(8):
            s[k] = 0
        for j in range(i, i + BLOCK, 8):
            for k in range(8):
                s[k] += p[j + k]
        total += ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]))
        i += BLOCK
    while i < n:
        total += p[i]
        i += 1
    return total


cdef inline void _chan_merge(double* count, double* mean, double* m2, double n_t, double mean_t,
                             double m2_t) noexcept nogil:
    """Merge a tile's (count n_t, mean, M2) into the running (count, mean, M2): Chan et al.'s
    pairwise formula, exact for any split of the data."""
    cdef double total = count[0] + n_t
    cdef double d = mean_t - mean[0]
    mean[0] = mean[0] + d * (n_t / total)
    m2[0] = m2[0] + m2_t + d * d * (count[0] * n_t / total)
    count[0] = total


cdef inline void _deviation_sums(const floating* p, Py_ssize_t n, double m, double* s1,
                                 double* s2) noexcept nogil:
    """s1 += Σ (p[i] - m) and s2 += Σ (p[i] - m)²."""
    cdef floating a[8]
    cdef floating q[8]
    cdef floating mf = <floating>m
    cdef floating d
    cdef double t1 = 0.0, t2 = 0.0, r = m - mf
    cdef Py_ssize_t i = 0, j, k
    while i + BLOCK <= n:
        for k in range(8):
            a[k] = 0
            q[k] = 0
        for j in range(i, i + BLOCK, 8):
            for k in range(8):
                a[k] += p[j + k] - mf
        for j in range(i, i + BLOCK, 8):
            for k in range(8):
                q[k] += (p[j + k] - mf) * (p[j + k] - mf)
        t1 += ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]))
        t2 += ((q[0] + q[1]) + (q[2] + q[3])) + ((q[4] + q[5]) + (q[6] + q[7]))
        i += BLOCK
    while i < n:
        d = p[i] - mf
        t1 += d
        t2 += <double>d * d
        i += 1
    # Σ (d - r) and Σ (d - r)² with d = p - mf, r = m - mf
    s1[0] += t1 - n * r
    s2[0] += t2 - 2.0 * r * t1 + n * r * r


cdef inline void _grad_sums(const floating* dy, const floating* x, Py_ssize_t n, double m,
                            bint with_x, double* s1, double* s2) noexcept nogil:
    """s1 += Σ dy and (with_x) s2 += Σ dy·(x - m)."""
    cdef floating a[8]
    cdef floating b[8]
    cdef floating mf = <floating>m
    cdef double t1 = 0.0, t2 = 0.0
    cdef Py_ssize_t i = 0, j, k
    if not with_x:
        s1[0] += _sum(dy, n)
        return
    while i + BLOCK <= n:
        for k in range(8):
            a[k] = 0
            b[k] = 0
        for j in range(i, i + BLOCK, 8):
            for k in range(8):
                a[k] += dy[j + k]
        for j in range(i, i + BLOCK, 8):
            for k in range(8):
                b[k] += dy[j + k] * (x[j + k] - mf)
        t1 += ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]))
        t2 += ((b[0] + b[1]) + (b[2] + b[3])) + ((b[4] + b[5]) + (b[6] + b[7]))
        i += BLOCK
    while i < n:
        t1 += dy[i]
        t2 += dy[i] * (x[i] - mf)
        i += 1
    s1[0] += t1
    s2[0] += t2 - (m - mf) * t1


cdef inline void _weighted_grad_sums(const floating* dy, const floating* x, const floating* w,
                                     Py_ssize_t n, double m, double* s1, double* s2) noexcept nogil:
    """s1 += Σ w·dy and s2 += Σ w·dy·(x - m) (w may be NULL: weight 1)."""
    cdef floating a[8]
    cdef floating b[8]
    cdef floating mf = <floating>m
    cdef floating g
    cdef double t1 = 0.0, t2 = 0.0
    cdef Py_ssize_t i = 0, j, k
    if w == NULL:
        _grad_sums(dy, x, n, m, True, s1, s2)
        return
    while i + BLOCK <= n:
        for k in range(8):
            a[k] = 0
            b[k] = 0
        for j in range(i, i + BLOCK, 8):
            for k in range(8):
                a[k] += dy[j + k] * w[j + k]
        for j in range(i, i + BLOCK, 8):
            for k in range(8):
                b[k] += dy[j + k] * w[j + k] * (x[j + k] - mf)
        t1 += ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]))
        t2 += ((b[0] + b[1]) + (b[2] + b[3])) + ((b[4] + b[5]) + (b[6] + b[7]))
        i += BLOCK
    while i < n:
        g = dy[i] * w[i]
        t1 += g
        t2 += g * (x[i] - mf)
        i += 1
    s1[0] += t1
    s2[0] += t2 - (m - mf) * t1


cdef inline void _column_sums(const floating* dy, const floating* x, Py_ssize_t n, double m, double r,
                              bint with_x, floating* cw, floating* cb) noexcept nogil:
    """cw[i] += dy·x̂ (with_x) and cb[i] += dy, x̂ = (x - m)·r: one row's share of the column
    sums, accumulated in the input type over at most ROW_BLOCK rows."""
    cdef Py_ssize_t i
    cdef floating mf = <floating>m
    cdef floating rf = <floating>r
    cdef floating c = <floating>((m - mf) * r)
    if with_x:
        for i in range(n):
            cw[i] += dy[i] * ((x[i] - mf) * rf - c)
            cb[i] += dy[i]
    else:
        for i in range(n):
            cb[i] += dy[i]


cdef inline void _column_sums2(const floating* dy, const floating* x, Py_ssize_t stride, Py_ssize_t n,
                               const double* m, const double* r, bint with_x,
                               floating* cw, floating* cb) noexcept nogil:
    """``_column_sums`` of two rows ``stride`` apart at once: half the accumulator loads and
    stores, while the pointer count stays low enough for gcc's alias checks to vectorize it."""
    cdef Py_ssize_t i
    cdef const floating* d1 = dy + stride
    cdef const floating* x1 = x + stride
    cdef floating m0 = <floating>m[0], m1 = <floating>m[1]
    cdef floating r0 = <floating>r[0], r1 = <floating>r[1]
    cdef floating c0 = <floating>((m[0] - m0) * r[0]), c1 = <floating>((m[1] - m1) * r[1])
    if with_x:
        for i in range(n):
            cw[i] += dy[i] * ((x[i] - m0) * r0 - c0) + d1[i] * ((x1[i] - m1) * r1 - c1)
            cb[i] += dy[i] + d1[i]
    else:
        for i in range(n):
            cb[i] += dy[i] + d1[i]


# The streaming loops below run in the input's precision (four float32 lanes per SSE op instead
# of two doubles). To keep full precision when |mean| >> std they subtract the mean rounded to
# the input type, mf, which is exact for x near the mean (Sterbenz), and fold the rounding
# residue m - mf into a per-call constant computed in double.

cdef inline void _scale_shift(const floating* x, floating* y, Py_ssize_t n, double m, double scale,
                              double shift) noexcept nogil:
    """y = (x - m)·scale + shift."""
    cdef Py_ssize_t i
    cdef floating mf = <floating>m
    cdef floating sc = <floating>scale
    cdef floating sh = <floating>(shift - (m - mf) * scale)
    for i in range(n):
        y[i] = (x[i] - mf) * sc + sh


cdef inline void _elementwise_affine(const floating* x, floating* y, Py_ssize_t n, double m, double r,
                                     const floating* w, const floating* b) noexcept nogil:
    """y = (x - m)·r·w[i] + b[i]; w or b may be NULL (absent)."""
    cdef Py_ssize_t i
    cdef floating mf = <floating>m
    cdef floating rf = <floating>r
    cdef floating c = <floating>((m - mf) * r)
    if w != NULL and b != NULL:
        for i in range(n):
            y[i] = ((x[i] - mf) * rf - c) * w[i] + b[i]
    elif w != NULL:
        for i in range(n):
            y[i] = ((x[i] - mf) * rf - c) * w[i]
    elif b != NULL:
        for i in range(n):
            y[i] = ((x[i] - mf) * rf - c) + b[i]
    else:
        _scale_shift(x, y, n, m, r, 0.0)


cdef inline void _input_grad(const floating* dy, const floating* x, floating* dx, const floating* w,
                             Py_ssize_t n, double alpha, double beta, double gamma, double m) noexcept nogil:
    """dx = alpha·u·dy - beta - gamma·(x - m), u = w[i] (or 1 when w is NULL)."""
    cdef Py_ssize_t i
    cdef floating mf = <floating>m
    cdef floating af = <floating>alpha
    cdef floating gf = <floating>gamma
    cdef floating c = <floating>(beta - gamma * (m - mf))
    if w != NULL:
        for i in range(n):
            dx[i] = af * w[i] * dy[i] - gf * (x[i] - mf) - c
    else:
        for i in range(n):
            dx[i] = af * dy[i] - gf * (x[i] - mf) - c


def moments(const floating[:, :, ::1] x, double[::1] mean, double[::1] var):
    """Mean and biased variance of every x[:, b, :] into mean[b], var[b] (stable, see module doc)."""
    cdef Py_ssize_t A = x.shape[0], B = x.shape[1], L = x.shape[2]
    cdef Py_ssize_t rows, cols, col_tiles, T
    _tiling(A, L, &rows, &cols, &col_tiles, &T)
    if B == 0:
        return
    if T == 0:
        mean[:] = 0.0
        var[:] = 0.0
        return
    part_arr = np.empty((2, B * T), dtype=np.float64)
    cdef double[:, ::1] part = part_arr
    cdef const floating* xp = &x[0, 0, 0]
    cdef Py_ssize_t i, b, t, a, a0, a1, l0, l1
    cdef double s, m, q, n_t, n_acc, d
    with nogil:
        for i in prange(B * T, schedule='guided',
                        num_threads=team_for_work(<double>A * B * L, MIN_ELEMENTS_PER_THREAD)):
            # items in memory order (row tile, b, column tile); t = the tile's index within b
            b = (i // col_tiles) % B
            t = (i // (B * col_tiles)) * col_tiles + i % col_tiles
            a0 = (t // col_tiles) * rows
            a1 = a0 + rows if a0 + rows < A else A
            l0 = (t % col_tiles) * cols
            l1 = l0 + cols if l0 + cols < L else L
            n_t = <double>((a1 - a0) * (l1 - l0))
            s = 0.0
            for a in range(a0, a1):
                s = s + _sum(xp + (a * B + b) * L + l0, l1 - l0)
            m = s / n_t
            # corrected two-pass: exact even when the first-pass mean m carries rounding
            d = 0.0
            q = 0.0
            for a in range(a0, a1):
                _deviation_sums(xp + (a * B + b) * L + l0, l1 - l0, m, &d, &q)
            part[0, b * T + t] = m + d / n_t
            part[1, b * T + t] = q - d * d / n_t
        for b in range(B):
            # Chan et al.: merge (count, mean, M2) of the tiles one by one
            n_acc = 0.0
            m = 0.0
            q = 0.0
            for t in range(T):
                a0 = (t // col_tiles) * rows
                a1 = a0 + rows if a0 + rows < A else A
                l0 = (t % col_tiles) * cols
                l1 = l0 + cols if l0 + cols < L else L
                n_t = <double>((a1 - a0) * (l1 - l0))
                _chan_merge(&n_acc, &m, &q, n_t, part[0, b * T + t], part[1, b * T + t])
            mean[b] = m
            var[b] = q / n_acc


def normalize(const floating[:, :, ::1] x, const double[::1] mean, const double[::1] rstd,
              const floating[::1] weight, const floating[::1] bias, bint has_weight, bint has_bias,
              Py_ssize_t cpg, Py_ssize_t channels, bint elementwise, floating[:, :, ::1] y):
    """y = (x - mean[g])·rstd[g]·weight + bias with g = b // cpg (affine per channel or per l)."""
    cdef Py_ssize_t A = x.shape[0], B = x.shape[1], L = x.shape[2]
    cdef Py_ssize_t chunks = (L + TILE - 1) // TILE
    if A * B * chunks == 0:
        return
    cdef const floating* xp = &x[0, 0, 0]
    cdef floating* yp = &y[0, 0, 0]
    cdef const floating* wp = &weight[0] if has_weight else NULL
    cdef const floating* bp = &bias[0] if has_bias else NULL
    cdef Py_ssize_t i, row, b, g, c, l0, l1, off
    cdef double scale, shift
    for i in prange(A * B * chunks, nogil=True, schedule='guided',
                    num_threads=team_for_work(<double>A * B * L, MIN_ELEMENTS_PER_THREAD)):
        row = i // chunks
        b = row % B
        g = b // cpg
        l0 = (i % chunks) * TILE
        l1 = l0 + TILE if l0 + TILE < L else L
        off = row * L + l0
        if elementwise:
            _elementwise_affine(xp + off, yp + off, l1 - l0, mean[g], rstd[g],
                                wp + l0 if has_weight else NULL, bp + l0 if has_bias else NULL)
        else:
            c = b % channels
            scale = rstd[g] * wp[c] if has_weight else rstd[g]
            shift = bp[c] if has_bias else 0.0
            _scale_shift(xp + off, yp + off, l1 - l0, mean[g], scale, shift)


def normalize_groups(const floating[:, :, ::1] x, const floating[::1] weight, const floating[::1] bias,
                     bint has_weight, bint has_bias, Py_ssize_t cpg, Py_ssize_t channels, bint elementwise,
                     double eps, double[::1] mean, double[::1] var, double[::1] rstd, floating[:, :, ::1] y):
    """``moments`` and ``normalize`` fused for a (1, B, L) view whose groups (cpg·L contiguous
    elements) fit in cache: one work item per group computes its exact two-pass statistics and
    normalizes it while it is still cached, so x is read from memory once instead of twice."""
    cdef Py_ssize_t B = x.shape[1], L = x.shape[2]
    cdef Py_ssize_t G = B // cpg, n = cpg * L
    if G == 0 or n == 0:
        return
    cdef const floating* xp = &x[0, 0, 0]
    cdef floating* yp = &y[0, 0, 0]
    cdef const floating* wp = &weight[0] if has_weight else NULL
    cdef const floating* bp = &bias[0] if has_bias else NULL
    cdef Py_ssize_t g, j, b, c, off, t0, nt
    cdef double m, v, d, q, r, scale, shift, mt, n_acc
    for g in prange(G, nogil=True, schedule='guided',
                    num_threads=team_for_work(<double>B * L, MIN_ELEMENTS_PER_THREAD)):
        # corrected two-pass per tile (the second pass from L1), tiles merged with Chan's
        # formula: one sweep over the group, the normalize sweep then reads it from cache
        m = 0.0
        v = 0.0
        n_acc = 0.0
        t0 = 0
        while t0 < n:
            nt = TILE if t0 + TILE <= n else n - t0
            mt = _sum(xp + g * n + t0, nt) / nt
            d = 0.0
            q = 0.0
            _deviation_sums(xp + g * n + t0, nt, mt, &d, &q)
            _chan_merge(&n_acc, &m, &v, <double>nt, mt + d / nt, q - d * d / nt)
            t0 = t0 + nt
        v = v / n
        r = 1.0 / sqrt(v + eps)
        mean[g] = m
        var[g] = v
        rstd[g] = r
        for j in range(cpg):
            b = g * cpg + j
            off = b * L
            if elementwise:
                _elementwise_affine(xp + off, yp + off, L, m, r, wp, bp)
            else:
                c = b % channels
                scale = r * wp[c] if has_weight else r
                shift = bp[c] if has_bias else 0.0
                _scale_shift(xp + off, yp + off, L, m, scale, shift)


cdef void _channel_affine_grads(const double[:, ::1] sums, Py_ssize_t channels,
                                double[::1] dweight, double[::1] dbias) noexcept nogil:
    """dbias[c] = Σ sums[0, b] and dweight[c] = Σ sums[1, b] over the rows b ≡ c (mod channels)."""
    cdef Py_ssize_t B = sums.shape[1], b, c
    cdef double s1, s2
    for c in range(channels):
        s1 = 0.0
        s2 = 0.0
        b = c
        while b < B:
            s1 = s1 + sums[0, b]
            s2 = s2 + sums[1, b]
            b = b + channels
        dbias[c] = s1
        dweight[c] = s2


def backward_groups(const floating[:, :, ::1] dy, const floating[:, :, ::1] x,
                    const double[::1] mean, const double[::1] rstd,
                    const floating[::1] weight, bint has_weight, Py_ssize_t cpg, Py_ssize_t channels,
                    floating[:, :, ::1] dx, double[::1] dweight, double[::1] dbias, bint need_affine):
    """``backward`` for a (1, B, L) view with per-channel affine whose groups fit in cache: one
    work item per group computes its sums and then dx while dy and x are still cached."""
    cdef Py_ssize_t B = x.shape[1], L = x.shape[2]
    cdef Py_ssize_t G = B // cpg
    sums_arr = np.zeros((2, B), dtype=np.float64)
    cdef double[:, ::1] sums = sums_arr
    if G == 0 or L == 0:
        if need_affine:
            dweight[:] = 0.0
            dbias[:] = 0.0
        return
    cdef const floating* dyp = &dy[0, 0, 0]
    cdef const floating* xp = &x[0, 0, 0]
    cdef floating* dxp = &dx[0, 0, 0]
    cdef const floating* wp = &weight[0] if has_weight else NULL
    cdef double count = <double>(cpg * L)
    cdef Py_ssize_t g, j, b, off
    cdef double m, r, s1, s2, t1, t2, u
    with nogil:
        for g in prange(G, schedule='guided', num_threads=team_for_work(<double>B * L, MIN_ELEMENTS_PER_THREAD)):
            m = mean[g]
            r = rstd[g]
            t1 = 0.0
            t2 = 0.0
            for j in range(cpg):
                b = g * cpg + j
                s1 = 0.0
                s2 = 0.0
                _grad_sums(dyp + b * L, xp + b * L, L, m, True, &s1, &s2)
                sums[0, b] = s1
                sums[1, b] = s2 * r
                u = wp[b % channels] if has_weight else 1.0
                t1 = t1 + u * s1
                t2 = t2 + u * s2 * r
            t1 = t1 / count
            t2 = t2 / count
            for j in range(cpg):
                b = g * cpg + j
                u = wp[b % channels] if has_weight else 1.0
                _input_grad(dyp + b * L, xp + b * L, dxp + b * L, NULL, L, r * u, r * t1, r * r * t2, m)
        if need_affine:
            _channel_affine_grads(sums, channels, dweight, dbias)


cdef void _elementwise_sums(const floating[:, :, ::1] dy, const floating[:, :, ::1] x,
                            const double[::1] mean, const double[::1] rstd, const floating* w,
                            bint with_x, bint need_rows, bint need_cols, double[:, ::1] sums,
                            double[::1] dweight, double[::1] dbias):
    """One read of dy and x on a (1, rows, L) view with affine parameters per l (layer norm).

    Rows: sums[0, r] = Σ_l dy·w, sums[1, r] = Σ_l dy·w·x̂. Columns: dweight[l] = Σ_r dy·x̂,
    dbias[l] = Σ_r dy. Work items are (row block, column block); each writes its own slots of
    the partial buffers (column partials in the input type, at most ROW_BLOCK rows each), which
    are summed in double afterwards, so no two threads write one address.
    """
    cdef Py_ssize_t R = dy.shape[1], L = dy.shape[2]
    cdef Py_ssize_t row_blocks = (R + ROW_BLOCK - 1) // ROW_BLOCK
    cdef Py_ssize_t col_blocks = (L + COL_BLOCK - 1) // COL_BLOCK
    col_arr = np.zeros((2, row_blocks if need_cols else 0, L),
                       dtype=np.float32 if floating is float else np.float64)
    row_arr = np.empty((2, R, col_blocks if need_rows else 0), dtype=np.float64)
    cdef floating[:, :, ::1] col_part = col_arr
    cdef double[:, :, ::1] row_part = row_arr
    cdef const floating* dyp = &dy[0, 0, 0]
    cdef const floating* xp = &x[0, 0, 0]
    cdef floating* cw
    cdef floating* cb
    cdef Py_ssize_t i, rb, cbk, r0, r1, row, l, l0, l1, off
    cdef double m, s1, s2, s1a, s2a
    with nogil:
        for i in prange(row_blocks * col_blocks, schedule='guided',
                        num_threads=team_for_work(<double>R * L, MIN_ELEMENTS_PER_THREAD)):
            rb = i // col_blocks
            cbk = i % col_blocks
            l0 = cbk * COL_BLOCK
            l1 = l0 + COL_BLOCK if l0 + COL_BLOCK < L else L
            r0 = rb * ROW_BLOCK
            r1 = r0 + ROW_BLOCK if r0 + ROW_BLOCK < R else R
            cw = &col_part[0, rb, 0] if need_cols else NULL
            cb = &col_part[1, rb, 0] if need_cols else NULL
            if need_cols:
                row = r0
                while row + 2 <= r1:
                    off = row * L + l0
                    _column_sums2(dyp + off, xp + off, L, l1 - l0, &mean[row] if with_x else &rstd[row],
                                  &rstd[row], with_x, cw + l0, cb + l0)
                    row = row + 2
                while row < r1:
                    off = row * L + l0
                    _column_sums(dyp + off, xp + off, l1 - l0, mean[row] if with_x else 0.0, rstd[row],
                                 with_x, cw + l0, cb + l0)
                    row = row + 1
            for row in range(r0, r1):
                m = mean[row] if with_x else 0.0
                off = row * L + l0
                if need_rows:
                    s1 = 0.0
                    s2 = 0.0
                    _weighted_grad_sums(dyp + off, xp + off, w + l0 if w != NULL else NULL, l1 - l0, m,
                                        &s1, &s2)
                    row_part[0, row, cbk] = s1
                    row_part[1, row, cbk] = s2 * rstd[row]
        if need_rows:
            for row in range(R):
                s1a = 0.0
                s2a = 0.0
                for cbk in range(col_blocks):
                    s1a = s1a + row_part[0, row, cbk]
                    s2a = s2a + row_part[1, row, cbk]
                sums[0, row] = s1a
                sums[1, row] = s2a
        if need_cols:
            for l in prange(L, schedule='guided',
                            num_threads=team_for_work(<double>row_blocks * L, MIN_ELEMENTS_PER_THREAD)):
                s1a = 0.0
                s2a = 0.0
                for rb in range(row_blocks):
                    s1a = s1a + col_part[0, rb, l]
                    s2a = s2a + col_part[1, rb, l]
                dweight[l] = s1a
                dbias[l] = s2a


def backward_rows(const floating[:, :, ::1] dy, const floating[:, :, ::1] x,
                  const double[::1] mean, const double[::1] rstd,
                  const floating[::1] weight, bint has_weight, Py_ssize_t band, int num_threads,
                  floating[:, :, ::1] dx, double[::1] dweight, double[::1] dbias, bint need_affine):
    """``backward`` (input gradient included) for a (1, R, L) view with affine parameters per l
    (layer norm) whose bands of ``band`` rows (dy and x) fit in a thread's share of the cache.

    The rows are cut into ``num_threads`` contiguous partitions (each with its own column sums,
    whichever thread runs it, so the sums do not depend on the team), taken a band at a time. One sweep over the band
    from memory, in column chunks of COL_BLOCK, adds dy·x̂ and dy of its rows (two at a time)
    into the thread's column sums in the input type and gives the row sums (the chunk re-read
    from L1); dx then re-reads the band from cache. The column sums are flushed into the
    thread's float64 totals every ROW_BLOCK rows. So dy and x are read from memory once, and
    the column sums cost a read-modify-write of one (L,) buffer per two rows instead of
    partial buffers of the whole (R, L) size.
    """
    cdef Py_ssize_t R = dy.shape[1], L = dy.shape[2]
    cdef int T = num_threads if num_threads < R else <int>R
    if T < 1:
        T = 1
    if band < 1:
        band = 1
    if R == 0 or L == 0:
        if need_affine:
            dweight[:] = 0.0
            dbias[:] = 0.0
        return
    ftype = np.float32 if floating is float else np.float64
    part_arr = np.zeros((T, 2, L if need_affine else 0), dtype=ftype)
    total_arr = np.zeros((T, 2, L if need_affine else 0), dtype=np.float64)
    rows_arr = np.empty((T, 2, band), dtype=np.float64)
    cdef floating[:, :, ::1] part = part_arr
    cdef double[:, :, ::1] total = total_arr
    cdef double[:, :, ::1] rsum = rows_arr
    cdef const floating* dyp = &dy[0, 0, 0]
    cdef const floating* xp = &x[0, 0, 0]
    cdef floating* dxp = &dx[0, 0, 0]
    cdef const floating* wp = &weight[0] if has_weight else NULL
    cdef floating* pw
    cdef floating* pb
    cdef double* dw
    cdef double* db
    cdef double* s1
    cdef double* s2
    cdef double count = <double>L
    cdef double r, p1, p2
    cdef Py_ssize_t t, r0, r1, b0, b1, row, k, l, l0, l1, n, off, pending
    with nogil:
        for t in prange(T, schedule='dynamic', num_threads=team(T)):
            r0 = t * R // T
            r1 = (t + 1) * R // T
            s1 = &rsum[t, 0, 0]
            s2 = &rsum[t, 1, 0]
            if need_affine:
                pw = &part[t, 0, 0]
                pb = &part[t, 1, 0]
                dw = &total[t, 0, 0]
                db = &total[t, 1, 0]
            pending = 0
            b0 = r0
            while b0 < r1:
                b1 = b0 + band if b0 + band < r1 else r1
                for k in range(b1 - b0):
                    s1[k] = 0.0
                    s2[k] = 0.0
                l0 = 0
                while l0 < L:
                    l1 = l0 + COL_BLOCK if l0 + COL_BLOCK < L else L
                    n = l1 - l0
                    if need_affine:
                        row = b0
                        while row + 2 <= b1:
                            _column_sums2(dyp + row * L + l0, xp + row * L + l0, L, n, &mean[row],
                                          &rstd[row], True, pw + l0, pb + l0)
                            row = row + 2
                        if row < b1:
                            _column_sums(dyp + row * L + l0, xp + row * L + l0, n, mean[row], rstd[row],
                                         True, pw + l0, pb + l0)
                    for row in range(b0, b1):
                        off = row * L + l0
                        _weighted_grad_sums(dyp + off, xp + off, wp + l0 if wp != NULL else NULL, n,
                                            mean[row], &s1[row - b0], &s2[row - b0])
                    l0 = l1
                # dx = r·(dx̂ - mean(dx̂) - x̂·mean(dx̂·x̂)) with dx̂ = dy·w, x̂ = (x - m)·r, where
                # s1 = Σ dx̂ and r·s2 = Σ dx̂·x̂ over the row; in column chunks, so that the rows
                # of the band share each chunk of w from L1
                l0 = 0
                while l0 < L:
                    l1 = l0 + COL_BLOCK if l0 + COL_BLOCK < L else L
                    for row in range(b0, b1):
                        off = row * L + l0
                        r = rstd[row]
                        p1 = s1[row - b0]
                        p2 = s2[row - b0]
                        _input_grad(dyp + off, xp + off, dxp + off, wp + l0 if wp != NULL else NULL,
                                    l1 - l0, r, r * p1 / count, r * r * r * p2 / count, mean[row])
                    l0 = l1
                pending = pending + (b1 - b0)
                b0 = b1
                if need_affine and (pending + band > ROW_BLOCK or b0 >= r1):
                    # the partial column sums span at most ROW_BLOCK rows: into the float64 totals
                    for l in range(L):
                        dw[l] = dw[l] + pw[l]
                        db[l] = db[l] + pb[l]
                        pw[l] = 0
                        pb[l] = 0
                    pending = 0
        if need_affine:
            for l in prange(L, schedule='guided', num_threads=team(T)):
                p1 = 0.0
                p2 = 0.0
                for t in range(T):
                    p1 = p1 + total[t, 0, l]
                    p2 = p2 + total[t, 1, l]
                dweight[l] = p1
                dbias[l] = p2


def backward(const floating[:, :, ::1] dy, const floating[:, :, ::1] x,
             const double[::1] mean, const double[::1] rstd,
             const floating[::1] weight, bint has_weight,
             Py_ssize_t cpg, Py_ssize_t channels, bint elementwise, bint with_x,
             floating[:, :, ::1] dx, bint need_dx,
             double[::1] dweight, double[::1] dbias, bint need_affine):
    """Closed-form gradients of y = x̂·w + b with x̂ = (x - mean)·rstd and batch statistics.

    dx = rstd·(dx̂ - mean_g(dx̂) - x̂·mean_g(dx̂·x̂)) with dx̂ = dy·w; dweight = Σ dy·x̂ and
    dbias = Σ dy per channel (per l when ``elementwise``). Without ``with_x`` (bias gradient
    only) x and mean are not read. ``dweight``/``dbias`` are float64 of the weight's length.
    """
    cdef Py_ssize_t A = x.shape[0], B = x.shape[1], L = x.shape[2]
    cdef Py_ssize_t G = B // cpg if cpg > 0 else 0
    cdef Py_ssize_t rows, cols, col_tiles, T, chunks
    cdef Py_ssize_t i, b, t, a, a0, a1, l0, l1, g, c, j, off, row
    cdef double m, r, s1, s2, u, count, k1, k2
    _tiling(A, L, &rows, &cols, &col_tiles, &T)
    if A * B * L == 0:
        if need_affine:
            dweight[:] = 0.0
            dbias[:] = 0.0
        return
    cdef const floating* dyp = &dy[0, 0, 0]
    cdef const floating* xp = &x[0, 0, 0]
    cdef floating* dxp = &dx[0, 0, 0] if need_dx else NULL
    cdef const floating* wp = &weight[0] if has_weight else NULL
    cdef bint row_sums = not elementwise and (need_dx or need_affine)

    # 1. per-row sums s1[b] = Σ dy, s2[b] = Σ dy·x̂ (per tile, then over the tiles); the
    #    elementwise case gets its row sums (weighted by w[l]) from _elementwise_sums in step 2
    part_arr = np.zeros((2, B * T if row_sums else 0), dtype=np.float64)
    sums_arr = np.zeros((2, B), dtype=np.float64)
    cdef double[:, ::1] part = part_arr
    cdef double[:, ::1] sums = sums_arr
    if row_sums:
        with nogil:
            for i in prange(B * T, schedule='guided',
                            num_threads=team_for_work(<double>A * B * L, MIN_ELEMENTS_PER_THREAD)):
                b = (i // col_tiles) % B
                t = (i // (B * col_tiles)) * col_tiles + i % col_tiles
                a0 = (t // col_tiles) * rows
                a1 = a0 + rows if a0 + rows < A else A
                l0 = (t % col_tiles) * cols
                l1 = l0 + cols if l0 + cols < L else L
                m = mean[b // cpg] if with_x else 0.0
                s1 = 0.0
                s2 = 0.0
                for a in range(a0, a1):
                    off = (a * B + b) * L + l0
                    _grad_sums(dyp + off, xp + off, l1 - l0, m, with_x, &s1, &s2)
                part[0, b * T + t] = s1
                part[1, b * T + t] = s2 * rstd[b // cpg] if with_x else 0.0
            for b in range(B):
                s1 = 0.0
                s2 = 0.0
                for t in range(T):
                    s1 = s1 + part[0, b * T + t]
                    s2 = s2 + part[1, b * T + t]
                sums[0, b] = s1
                sums[1, b] = s2

    # 2. affine gradients (and the elementwise row sums)
    if elementwise:
        _elementwise_sums(dy, x, mean, rstd, wp, with_x, need_dx, need_affine, sums, dweight, dbias)
    elif need_affine:
        with nogil:
            _channel_affine_grads(sums, channels, dweight, dbias)

    if not need_dx:
        return

    # 3. group means of dx̂ and dx̂·x̂, then dx in one streaming pass
    coef_arr = np.empty((2, G), dtype=np.float64)
    cdef double[:, ::1] coef = coef_arr
    count = <double>(A * cpg * L)
    with nogil:
        for g in range(G):
            s1 = 0.0
            s2 = 0.0
            for j in range(cpg):
                b = g * cpg + j
                u = wp[b % channels] if (has_weight and not elementwise) else 1.0
                s1 = s1 + u * sums[0, b]
                s2 = s2 + u * sums[1, b]
            coef[0, g] = s1 / count
            coef[1, g] = s2 / count
        chunks = (L + TILE - 1) // TILE
        for i in prange(A * B * chunks, schedule='guided',
                        num_threads=team_for_work(<double>A * B * L, MIN_ELEMENTS_PER_THREAD)):
            row = i // chunks
            b = row % B
            g = b // cpg
            l0 = (i % chunks) * TILE
            l1 = l0 + TILE if l0 + TILE < L else L
            off = row * L + l0
            r = rstd[g]
            k1 = coef[0, g]
            k2 = coef[1, g]
            if elementwise:
                _input_grad(dyp + off, xp + off, dxp + off, wp + l0 if has_weight else NULL,
                            l1 - l0, r, r * k1, r * r * k2, mean[g])
            else:
                u = wp[b % channels] if has_weight else 1.0
                _input_grad(dyp + off, xp + off, dxp + off, NULL,
                            l1 - l0, r * u, r * k1, r * r * k2, mean[g])
