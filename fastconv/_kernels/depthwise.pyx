# cython: language_level=3
"""Depthwise and channel-multiplier convolution (groups == C, K = m·C) as direct loops.

Each output plane (n, k) reads one input plane (n, k // m) through kh·kw taps. Per tap the
valid output columns form one range (computed once per tap), so the innermost loop is a
branch-free ``y[ox] += w·x[ox·s + off]``, which gcc vectorizes for stride 1. There is no
column buffer and no GEMM: a depthwise layer does kh·kw multiply-adds per output, far too few
for a GEMM's packing to pay off.

* forward: planes (n, k) in a ``prange``;
* dX: input planes (n, c) in a ``prange``, each gathering its m output planes by scatter-adds
  per tap (each inner loop writes distinct columns, so it vectorizes at stride 1 too);
* dW and db: output channels in a ``prange``; each thread sums its channels' products over
  images and rows in a fixed order into per-column partials (no float reduction in the
  innermost loop, so it vectorizes), then sums the partials: the result does not depend on the
  thread count.

The entry points check that the arrays agree (dtype and layout through the memoryview types,
shapes here), so no input makes them read or write out of bounds.
"""
from cython cimport floating
from libc.math cimport INFINITY
from cython.parallel cimport prange, threadid

from ._omp cimport team


cdef inline Py_ssize_t floor_div(Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    """⌊a / b⌋ for b > 0 (C division truncates toward zero)."""
    if a >= 0:
        return a // b
    return -((-a + b - 1) // b)


cdef inline Py_ssize_t ceil_div(Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    """⌈a / b⌉ for a >= 0, b > 0."""
    return (a + b - 1) // b


cdef inline void tap_range(Py_ssize_t off, Py_ssize_t s, Py_ssize_t size, Py_ssize_t out,
                           Py_ssize_t* lo, Py_ssize_t* hi) noexcept nogil:
    """Output indices o in [lo, hi) with 0 <= o·s + off < size, clipped to [0, out)."""
    cdef Py_ssize_t a = floor_div(-off + s - 1, s)
    cdef Py_ssize_t b = floor_div(size - 1 - off, s) + 1
    if a < 0:
        a = 0
    if b > out:
        b = out
    if b < a:
        b = a
    lo[0] = a
    hi[0] = b


def _check(x_shape, w_shape, y_shape, int sh, int sw, int ph, int pw, int dh, int dw):
    """Raise unless x (N, C, H, W), w (K, kh·kw) and y (N, K, OH, OW) describe one depthwise
    convolution with K a multiple of C and every output tap inside the padded input."""
    n, c, h, w = x_shape[0], x_shape[1], x_shape[2], x_shape[3]
    k = w_shape[0]
    if y_shape[0] != n or y_shape[1] != k or c <= 0 or k % c:
        raise ValueError(f"depthwise: shapes disagree: x {tuple(x_shape[:4])}, w {tuple(w_shape[:2])}, "
                         f"y {tuple(y_shape[:4])}")
    if min(sh, sw, dh, dw) < 1 or min(ph, pw) < 0:
        raise ValueError("depthwise: stride and dilation must be >= 1, padding >= 0")


cdef extern from "_dwplanes.h" nogil:
    int fc_isa_level()
    int fc_isa_cap
    int fc_dwp_plane(const float* x, const float* w, float bias, float* y, ptrdiff_t H, ptrdiff_t W,
                     ptrdiff_t Ho, ptrdiff_t Wo, ptrdiff_t sh, ptrdiff_t sw, ptrdiff_t ph, ptrdiff_t pw,
                     float lo, float hi)


def plane_variants():
    """Variants of the vector plane loops this CPU runs (1 baseline, 2 AVX2+FMA, 3 AVX-512)."""
    return list(range(1, fc_isa_level() + 1))


def set_variant_cap(int level):
    """Let this module's vector loops (the plane loops and the channel-vectorized ones) use at most
    variant ``level`` (tests); returns the previous cap."""
    global fc_isa_cap
    if level < 1 or level > 3:
        raise ValueError(f"depthwise.set_variant_cap: expected a level in 1..3, got {level}")
    previous = fc_isa_cap
    fc_isa_cap = level
    return previous


cdef void plane_forward(const floating* xp, const floating* wp, floating* yp, floating b,
                        Py_ssize_t H, Py_ssize_t W, Py_ssize_t OH, Py_ssize_t OW,
                        Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t sh, Py_ssize_t sw,
                        Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t dh, Py_ssize_t dw,
                        float clamp_lo, float clamp_hi) noexcept nogil:
    """One output plane; each output clamped to [clamp_lo, clamp_hi] (±inf: none; the compiled
    predictor's fused ReLU/ReLU6)."""
    cdef Py_ssize_t oy, ox, ky, kx, iy, off, lo, hi
    cdef floating wv, v
    cdef floating* yrow
    cdef const floating* xrow
    if floating is float:  # MobileNet's 3×3 layers: the vector loops of _dwplanes.h
        if KH == 3 and KW == 3 and dh == 1 and dw == 1 and sh <= 2 and sw <= 2:
            if fc_dwp_plane(xp, wp, b, yp, H, W, OH, OW, sh, sw, ph, pw, clamp_lo, clamp_hi) == 0:
                return
    for oy in range(OH):
        yrow = yp + oy * OW
        for ox in range(OW):
            yrow[ox] = b
        for ky in range(KH):
            iy = oy * sh - ph + ky * dh
            if iy < 0 or iy >= H:
                continue
            xrow = xp + iy * W
            for kx in range(KW):
                wv = wp[ky * KW + kx]
                off = kx * dw - pw
                tap_range(off, sw, W, OW, &lo, &hi)
                if sw == 1:
                    for ox in range(lo, hi):
                        yrow[ox] += wv * xrow[ox + off]
                else:
                    for ox in range(lo, hi):
                        yrow[ox] += wv * xrow[ox * sw + off]
    if clamp_lo > -INFINITY or clamp_hi < INFINITY:
        for ox in range(OH * OW):
            v = yp[ox]
            v = clamp_lo if v < clamp_lo else v
            yp[ox] = clamp_hi if v > clamp_hi else v


def depthwise_forward(const floating[:, :, :, ::1] x, const floating[:, ::1] w,
                      const floating[::1] bias, bint has_bias, floating[:, :, :, ::1] y,
                      int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw, int threads):
    """y = depthwise conv2d(x, w) (+ bias); w is (K, kh·kw) with K = m·C."""
    _check(x.shape, w.shape, y.shape, sh, sw, ph, pw, dh, dw)
    if w.shape[1] != kh * kw or (has_bias and bias.shape[0] != w.shape[0]):
        raise ValueError("depthwise_forward: weight or bias shape disagrees with the filter")
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t K = y.shape[1], OH = y.shape[2], OW = y.shape[3]
    cdef Py_ssize_t mult = K // C, p, n, k
    if N == 0 or K == 0 or OH == 0 or OW == 0:
        return
    cdef const floating* xb = &x[0, 0, 0, 0]
    cdef const floating* wb = &w[0, 0]
    cdef floating* yb = &y[0, 0, 0, 0]
    cdef floating b
    for p in prange(N * K, nogil=True, schedule="guided", num_threads=team(threads)):
        n = p // K
        k = p % K
        b = bias[k] if has_bias else 0
        plane_forward(xb + (n * C + k // mult) * H * W, wb + k * kh * kw, yb + p * OH * OW, b,
                      H, W, OH, OW, kh, kw, sh, sw, ph, pw, dh, dw, -INFINITY, INFINITY)


cdef void plane_grad_input(const floating* dyp, const floating* wp, floating* dxp,
                           Py_ssize_t H, Py_ssize_t W, Py_ssize_t OH, Py_ssize_t OW,
                           Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t sh, Py_ssize_t sw,
                           Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t dh, Py_ssize_t dw) noexcept nogil:
    """dx plane += the scatter of one dY plane through the taps of one filter."""
    cdef Py_ssize_t oy, ox, ky, kx, iy, off, lo, hi
    cdef floating wv
    cdef floating* dxrow
    cdef const floating* dyrow
    for oy in range(OH):
        dyrow = dyp + oy * OW
        for ky in range(KH):
            iy = oy * sh - ph + ky * dh
            if iy < 0 or iy >= H:
                continue
            dxrow = dxp + iy * W
            for kx in range(KW):
                wv = wp[ky * KW + kx]
                off = kx * dw - pw
                tap_range(off, sw, W, OW, &lo, &hi)
                if sw == 1:
                    for ox in range(lo, hi):
                        dxrow[ox + off] += wv * dyrow[ox]
                else:
                    for ox in range(lo, hi):
                        dxrow[ox * sw + off] += wv * dyrow[ox]


def depthwise_grad_input(const floating[:, :, :, ::1] dy, const floating[:, ::1] w,
                         floating[:, :, :, ::1] dx, int kh, int kw, int sh, int sw, int ph, int pw,
                         int dh, int dw, int threads):
    """dx (N, C, H, W) = the input gradient of a depthwise conv2d given dY (N, K, OH, OW)."""
    _check(dx.shape, w.shape, dy.shape, sh, sw, ph, pw, dh, dw)
    if w.shape[1] != kh * kw:
        raise ValueError("depthwise_grad_input: weight shape disagrees with the filter")
    cdef Py_ssize_t N = dx.shape[0], C = dx.shape[1], H = dx.shape[2], W = dx.shape[3]
    cdef Py_ssize_t K = dy.shape[1], OH = dy.shape[2], OW = dy.shape[3]
    cdef Py_ssize_t mult = K // C, p, n, c, j, q, plane = H * W
    if N == 0 or C == 0 or plane == 0:
        return
    cdef const floating* dyb = &dy[0, 0, 0, 0] if OH * OW > 0 else NULL
    cdef const floating* wb = &w[0, 0]
    cdef floating* dxb = &dx[0, 0, 0, 0]
    for p in prange(N * C, nogil=True, schedule="guided", num_threads=team(threads)):
        n = p // C
        c = p % C
        for q in range(plane):
            dxb[p * plane + q] = 0
        if OH * OW == 0:
            continue
        for j in range(mult):
            plane_grad_input(dyb + (n * K + c * mult + j) * OH * OW, wb + (c * mult + j) * kh * kw,
                             dxb + p * plane, H, W, OH, OW, kh, kw, sh, sw, ph, pw, dh, dw)


def grad_weight_work_elements(int kh, int kw, Py_ssize_t out_w):
    """Elements of one thread's partial sums in ``depthwise_grad_weight``."""
    return (kh * kw + 1) * max(out_w, 1)


def depthwise_grad_weight(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] dy,
                          floating[:, ::1] dw_out, floating[::1] db, bint need_db,
                          floating[:, ::1] work, int kh, int kw, int sh, int sw, int ph, int pw,
                          int dh, int dw, int threads):
    """dW (K, kh·kw) and, with ``need_db``, db (K,) of a depthwise conv2d; the sums over images,
    rows and columns run in the same order at any thread count. ``work`` holds one row of
    ``grad_weight_work_elements`` per thread."""
    _check(x.shape, dw_out.shape, dy.shape, sh, sw, ph, pw, dh, dw)
    if dw_out.shape[1] != kh * kw or (need_db and db.shape[0] != dw_out.shape[0]):
        raise ValueError("depthwise_grad_weight: dW or db shape disagrees with the filter")
    threads = max(threads, 1)
    if work.shape[0] < threads or work.shape[1] < grad_weight_work_elements(kh, kw, dy.shape[3]):
        raise ValueError("depthwise_grad_weight: work buffer too small")
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t K = dy.shape[1], OH = dy.shape[2], OW = dy.shape[3]
    cdef Py_ssize_t mult = K // C, taps = kh * kw, k, n, oy, ox, ky, kx, iy, off, lo, hi, t
    cdef Py_ssize_t width = OW if OW > 0 else 1
    cdef floating* acc
    cdef floating* accb
    cdef const floating* xp
    cdef const floating* dyp
    cdef const floating* xrow
    cdef const floating* dyrow
    cdef floating total
    if K == 0:
        return
    if N == 0 or OH * OW == 0 or H * W == 0:
        for k in range(K):
            for t in range(taps):
                dw_out[k, t] = 0
            if need_db:
                db[k] = 0
        return
    cdef const floating* xb = &x[0, 0, 0, 0]
    cdef const floating* dyb = &dy[0, 0, 0, 0]
    cdef floating* workb = &work[0, 0]
    cdef Py_ssize_t ldwork = work.shape[1]
    for k in prange(K, nogil=True, schedule="guided", num_threads=team(threads)):
        # per-column partial sums of every tap (and of dY for db), summed at the end
        lo = 0  # assigned in the body, so private to each thread (tap_range writes them through pointers)
        hi = 0
        acc = workb + threadid() * ldwork
        accb = acc + taps * width
        for t in range((taps + 1) * width):
            acc[t] = 0
        for n in range(N):
            xp = xb + (n * C + k // mult) * H * W
            dyp = dyb + (n * K + k) * OH * OW
            for oy in range(OH):
                dyrow = dyp + oy * OW
                if need_db:
                    for ox in range(OW):
                        accb[ox] += dyrow[ox]
                for ky in range(kh):
                    iy = oy * sh - ph + ky * dh
                    if iy < 0 or iy >= H:
                        continue
                    xrow = xp + iy * W
                    for kx in range(kw):
                        off = kx * dw - pw
                        tap_range(off, sw, W, OW, &lo, &hi)
                        t = (ky * kw + kx) * width
                        if sw == 1:
                            for ox in range(lo, hi):
                                acc[t + ox] += dyrow[ox] * xrow[ox + off]
                        else:
                            for ox in range(lo, hi):
                                acc[t + ox] += dyrow[ox] * xrow[ox * sw + off]
        for t in range(taps):
            total = 0
            for ox in range(OW):
                total = total + acc[t * width + ox]
            dw_out[k, t] = total
        if need_db:
            total = 0
            for ox in range(OW):
                total = total + accb[ox]
            db[k] = total


# ---- channel-vectorized path (float32, groups == C == K; _depthwise.h) ---------------------------

cdef extern from "_grouped.h" nogil:
    void fc_grp_fwd(int level, ptrdiff_t G, const float* xt, const float* wt, const float* bias,
                    float* yt, ptrdiff_t Cp, ptrdiff_t H, ptrdiff_t W, ptrdiff_t Ho, ptrdiff_t Wo,
                    ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t sh, ptrdiff_t sw, ptrdiff_t ph,
                    ptrdiff_t pw, ptrdiff_t dh, ptrdiff_t dw, ptrdiff_t oy0, ptrdiff_t oy1)
    void fc_grp_dx(int level, ptrdiff_t G, const float* dyt, const float* wt, const float* zero,
                   float* dxt, ptrdiff_t Cp, ptrdiff_t H, ptrdiff_t W, ptrdiff_t Ho, ptrdiff_t Wo,
                   ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t sh, ptrdiff_t sw, ptrdiff_t ph,
                   ptrdiff_t pw, ptrdiff_t dh, ptrdiff_t dw, ptrdiff_t iy0, ptrdiff_t iy1)
    void fc_grp_dw(int level, ptrdiff_t G, const float* xt, const float* dyt, const float* zero,
                   float* part, int need_db, ptrdiff_t Cp, ptrdiff_t H, ptrdiff_t W, ptrdiff_t Ho,
                   ptrdiff_t Wo, ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t sh, ptrdiff_t sw,
                   ptrdiff_t ph, ptrdiff_t pw, ptrdiff_t dh, ptrdiff_t dw, ptrdiff_t oy0, ptrdiff_t oy1)


cdef void rows_forward(int level, Py_ssize_t G, const float* xt, const float* wt, const float* bias,
                       float* yt, Py_ssize_t Cp, Py_ssize_t H, Py_ssize_t W, Py_ssize_t Ho,
                       Py_ssize_t Wo, int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw,
                       Py_ssize_t r0, Py_ssize_t r1) noexcept nogil:
    """Output rows [r0, r1) by the depthwise loops (G = 1) or the grouped ones."""
    if G == 1:
        fc_dwc_fwd(level, xt, wt, bias, yt, Cp, H, W, Ho, Wo, kh, kw, sh, sw, ph, pw, dh, dw, r0, r1)
    else:
        fc_grp_fwd(level, G, xt, wt, bias, yt, Cp, H, W, Ho, Wo, kh, kw, sh, sw, ph, pw, dh, dw, r0, r1)


cdef void rows_grad_input(int level, Py_ssize_t G, const float* dyt, const float* wt,
                          const float* zero, float* dxt, Py_ssize_t Cp, Py_ssize_t H, Py_ssize_t W,
                          Py_ssize_t Ho, Py_ssize_t Wo, int kh, int kw, int sh, int sw, int ph,
                          int pw, int dh, int dw, Py_ssize_t r0, Py_ssize_t r1) noexcept nogil:
    if G == 1:
        fc_dwc_dx(level, dyt, wt, zero, dxt, Cp, H, W, Ho, Wo, kh, kw, sh, sw, ph, pw, dh, dw, r0, r1)
    else:
        fc_grp_dx(level, G, dyt, wt, zero, dxt, Cp, H, W, Ho, Wo, kh, kw, sh, sw, ph, pw, dh, dw, r0, r1)


cdef void rows_grad_weight(int level, Py_ssize_t G, const float* xt, const float* dyt,
                           const float* zero, float* part, bint need_db, Py_ssize_t Cp,
                           Py_ssize_t H, Py_ssize_t W, Py_ssize_t Ho, Py_ssize_t Wo, int kh, int kw,
                           int sh, int sw, int ph, int pw, int dh, int dw, Py_ssize_t r0,
                           Py_ssize_t r1) noexcept nogil:
    if G == 1:
        fc_dwc_dw(level, xt, dyt, zero, part, need_db, Cp, H, W, Ho, Wo, kh, kw, sh, sw, ph, pw,
                  dh, dw, r0, r1)
    else:
        fc_grp_dw(level, G, xt, dyt, zero, part, need_db, Cp, H, W, Ho, Wo, kh, kw, sh, sw, ph, pw,
                  dh, dw, r0, r1)


cdef extern from "_depthwise.h" nogil:
    int fc_ocvec_level()
    void fc_ocvec_transpose(int level, const float* src, ptrdiff_t rows, ptrdiff_t cols,
                            ptrdiff_t ld_src, float* dst, ptrdiff_t rows_out, ptrdiff_t ld_dst)
    void fc_dwc_fwd(int level, const float* xt, const float* wt, const float* bias, float* yt,
                    ptrdiff_t Cp, ptrdiff_t H, ptrdiff_t W, ptrdiff_t Ho, ptrdiff_t Wo,
                    ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t sh, ptrdiff_t sw, ptrdiff_t ph,
                    ptrdiff_t pw, ptrdiff_t dh, ptrdiff_t dw, ptrdiff_t oy0, ptrdiff_t oy1)
    void fc_dwc_dx(int level, const float* dyt, const float* wt, const float* zero, float* dxt,
                   ptrdiff_t Cp, ptrdiff_t H, ptrdiff_t W, ptrdiff_t Ho, ptrdiff_t Wo,
                   ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t sh, ptrdiff_t sw, ptrdiff_t ph,
                   ptrdiff_t pw, ptrdiff_t dh, ptrdiff_t dw, ptrdiff_t iy0, ptrdiff_t iy1)
    void fc_dwc_dw(int level, const float* xt, const float* dyt, const float* zero, float* part,
                   int need_db, ptrdiff_t Cp, ptrdiff_t H, ptrdiff_t W, ptrdiff_t Ho, ptrdiff_t Wo,
                   ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t sh, ptrdiff_t sw, ptrdiff_t ph,
                   ptrdiff_t pw, ptrdiff_t dh, ptrdiff_t dw, ptrdiff_t oy0, ptrdiff_t oy1)


def channel_width():
    """Channels per vector of the channel-vectorized loops (16 on AVX-512, 8 on AVX2+FMA), or 0
    when the CPU has neither (the plane loops serve every case then)."""
    level = fc_ocvec_level()
    return 16 if level == 3 else 8 if level == 2 else 0


def channel_padded(Py_ssize_t c):
    """C rounded up to the vector width: the channel-minor copies' row length."""
    cdef Py_ssize_t vl = channel_width()
    return ceil_div(c, vl) * vl if vl else c


cdef void to_channel_minor(int level, const float* src, Py_ssize_t C, Py_ssize_t P, float* dst,
                           Py_ssize_t Cp) noexcept nogil:
    """dst (P × Cp) = src (C × P) transposed, zeros in channels C..Cp."""
    fc_ocvec_transpose(level, src, C, P, P, dst, Cp, Cp)


cdef void from_channel_minor(int level, const float* src, Py_ssize_t P, Py_ssize_t Cp,
                             Py_ssize_t C, float* dst, float* scratch) noexcept nogil:
    """dst (C × P) = the first C channels of src (P × Cp) transposed."""
    from_channel_minor_rows(level, src, P, Cp, C, dst, P, scratch)


cdef void from_channel_minor_rows(int level, const float* src, Py_ssize_t P, Py_ssize_t Cp,
                                  Py_ssize_t C, float* dst, Py_ssize_t ld_dst,
                                  float* scratch) noexcept nogil:
    """Columns 0..P of dst (C rows, ``ld_dst`` apart) = the first C channels of src (P × Cp)
    transposed. The register transposes store whole vectors of pixels, so the whole vectors go
    straight into dst and the last P mod VL pixels of each channel through scratch (C × VL)."""
    cdef Py_ssize_t vl = 16 if level == 3 else 8
    cdef Py_ssize_t full = P - P % vl, c, p
    if full > 0:
        fc_ocvec_transpose(level, src, full, C, Cp, dst, full, ld_dst)
    if full < P:
        fc_ocvec_transpose(level, src + full * Cp, P - full, C, Cp, scratch, vl, vl)
        for c in range(C):
            for p in range(full, P):
                dst[c * ld_dst + p] = scratch[c * vl + p - full]


cdef inline Py_ssize_t pixel_chunk(Py_ssize_t P, int parts) noexcept nogil:
    """Pixels per chunk when one image's transposes are split ``parts`` ways: whole vectors of
    16 (the register transposes' width), so only the last chunk has a partial vector."""
    return ceil_div(ceil_div(P, parts), 16) * 16


def channel_rows_per_item(Py_ssize_t n, Py_ssize_t rows, Py_ssize_t row_elements, int threads):
    """Rows per work item: items of ~16k elements (a block's channel-minor rows stay in L1/L2),
    at least as many items as threads. Depends on the thread count: only the forward and dX
    (no sums across items) use it; dW takes ``channel_dw_rows_per_item``."""
    cdef Py_ssize_t per = max(1, min(rows, 16384 // max(row_elements, 1)))
    while per > 1 and n * (ceil_div(rows, per)) < threads:
        per = ceil_div(per, 2)
    return per


def channel_dw_rows_per_item(Py_ssize_t n, Py_ssize_t rows, Py_ssize_t row_elements):
    """Rows per dW work item, from the geometry alone (so the partial sums, and their sum, are
    the same at any thread count): ~16k elements, and images cut into up to 4 blocks when
    there are fewer than 4 images (a batch-1 backward uses both threads)."""
    cdef Py_ssize_t per = max(1, min(rows, 16384 // max(row_elements, 1)))
    if n < 4:
        per = min(per, max(1, ceil_div(rows, 4 // max(n, 1))))
    return per


def channel_images_per_thread(Py_ssize_t n, int threads):
    """Whether the channel-vectorized passes run whole images per thread (each image transposed,
    computed and transposed back while it is in the thread's caches, through per-thread
    buffers) rather than one image at a time split into row blocks (buffers per image)."""
    return n >= max(threads, 1)


def channel_forward(const float[:, :, ::1] x, const float[:, ::1] wt, const float[::1] bias,
                    float[:, :, ::1] y, float[:, :, ::1] xt, float[:, :, ::1] yt,
                    float[:, ::1] scratch, Py_ssize_t H, Py_ssize_t W, Py_ssize_t Ho, Py_ssize_t Wo,
                    int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw,
                    Py_ssize_t rows_per_item, int threads, Py_ssize_t G=1):
    """y (N, C, Ho·Wo) = depthwise (G = 1) or grouped (G = C/groups = K/groups channels per
    group, a power of two up to the vector width) conv2d of x (N, C, H·W) with wt (taps·G, Cp:
    w[k, j, tap] at row tap·G + j, lane k) and bias (Cp),
    through channel-minor copies xt (·, H·W, Cp) and yt (·, Ho·Wo, Cp): one per thread when
    ``channel_images_per_thread``, else one per image; scratch holds one (C × VL) block per
    thread for the transposes back."""
    cdef int level = fc_ocvec_level()
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], Cp = xt.shape[2], P = H * W, Po = Ho * Wo
    cdef Py_ssize_t vl = channel_width()
    threads = max(threads, 1)
    cdef bint per_thread = channel_images_per_thread(N, threads)
    cdef Py_ssize_t copies = threads if per_thread else N
    if level < 2 or Cp % vl or Cp < C or x.shape[2] != P or wt.shape[0] != kh * kw * G \
            or G < 1 or G > vl or vl % G or C % G or wt.shape[1] != Cp or bias.shape[0] != Cp or y.shape[0] != N or y.shape[1] != C \
            or y.shape[2] != Po or xt.shape[0] < copies or xt.shape[1] != P or yt.shape[0] < copies \
            or yt.shape[1] != Po or yt.shape[2] != Cp or scratch.shape[0] < threads \
            or scratch.shape[1] < C * vl or rows_per_item < 1:
        raise ValueError("depthwise channel_forward: arrays disagree with the geometry")
    if N == 0 or C == 0 or Po == 0:
        return
    cdef Py_ssize_t blocks = ceil_div(Ho, rows_per_item), item, n, r0, r1, t
    if per_thread:
        for n in prange(N, nogil=True, schedule="dynamic", num_threads=team(threads)):
            t = threadid()
            to_channel_minor(level, &x[n, 0, 0], C, P, &xt[t, 0, 0], Cp)
            rows_forward(level, G, &xt[t, 0, 0], &wt[0, 0], &bias[0], &yt[t, 0, 0], Cp, H, W, Ho,
                         Wo, kh, kw, sh, sw, ph, pw, dh, dw, 0, Ho)
            from_channel_minor(level, &yt[t, 0, 0], Po, Cp, C, &y[n, 0, 0], &scratch[t, 0])
        return
    # fewer images than threads: the transposes too are split, by chunks of pixels
    cdef Py_ssize_t pin = pixel_chunk(P, threads), pout = pixel_chunk(Po, threads), p0
    for item in prange(N * threads, nogil=True, schedule="dynamic", num_threads=team(threads)):
        n = item // threads
        p0 = (item % threads) * pin
        if p0 < P:
            fc_ocvec_transpose(level, &x[n, 0, 0] + p0, C, min(pin, P - p0), P, &xt[n, 0, 0] + p0 * Cp,
                               Cp, Cp)
    for item in prange(N * blocks, nogil=True, schedule="dynamic", num_threads=team(threads)):
        n = item // blocks
        r0 = (item % blocks) * rows_per_item
        r1 = min(r0 + rows_per_item, Ho)
        rows_forward(level, G, &xt[n, 0, 0], &wt[0, 0], &bias[0], &yt[n, 0, 0], Cp, H, W, Ho, Wo,
                     kh, kw, sh, sw, ph, pw, dh, dw, r0, r1)
    for item in prange(N * threads, nogil=True, schedule="dynamic", num_threads=team(threads)):
        n = item // threads
        p0 = (item % threads) * pout
        if p0 < Po:
            from_channel_minor_rows(level, &yt[n, 0, 0] + p0 * Cp, min(pout, Po - p0), Cp, C,
                                    &y[n, 0, 0] + p0, Po, &scratch[threadid(), 0])


def channel_backward(const float[:, :, ::1] x, const float[:, :, ::1] dy, const float[:, ::1] wt,
                     float[:, :, ::1] dx, float[:, :, ::1] parts, bint need_dx, bint need_dw,
                     bint need_db, float[:, :, ::1] xt, float[:, :, ::1] dyt, float[:, :, ::1] dxt,
                     float[:, ::1] scratch, Py_ssize_t H, Py_ssize_t W, Py_ssize_t Ho,
                     Py_ssize_t Wo, int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw,
                     Py_ssize_t dx_rows_per_item, Py_ssize_t dw_rows_per_item, int threads,
                     Py_ssize_t G=1):
    """dx (N, C, H·W) and/or the dW/db partials (items, taps·G + 1, Cp; summed by the caller in
    item order; items are row blocks of ``channel_dw_rows_per_item``, the same at any thread
    count) of a depthwise conv2d, through channel-minor copies of dY (dyt), x (xt, for dW)
    and dX (dxt), per thread or per image as in ``channel_forward``."""
    cdef int level = fc_ocvec_level()
    cdef Py_ssize_t N = dy.shape[0], C = dy.shape[1], Cp = dyt.shape[2], P = H * W, Po = Ho * Wo
    cdef Py_ssize_t vl = channel_width()
    cdef Py_ssize_t dx_blocks = ceil_div(H, max(dx_rows_per_item, 1))
    cdef Py_ssize_t dw_blocks = ceil_div(Ho, max(dw_rows_per_item, 1)), item, n, r0, r1, t, b
    cdef float zero[16]
    threads = max(threads, 1)
    cdef bint per_thread = channel_images_per_thread(N, threads)
    cdef Py_ssize_t copies = threads if per_thread else N
    for item in range(16):
        zero[item] = 0
    if level < 2 or Cp % vl or Cp < C or dy.shape[2] != Po or wt.shape[0] != kh * kw * G \
            or G < 1 or G > vl or vl % G or C % G or wt.shape[1] != Cp or dyt.shape[0] < copies or dyt.shape[1] != Po \
            or dx_rows_per_item < 1 or dw_rows_per_item < 1:
        raise ValueError("depthwise channel_backward: arrays disagree with the geometry")
    if need_dx and (dx.shape[0] != N or dx.shape[1] != C or dx.shape[2] != P
                    or dxt.shape[0] < copies or dxt.shape[1] != P or dxt.shape[2] != Cp
                    or scratch.shape[0] < threads or scratch.shape[1] < C * vl):
        raise ValueError("depthwise channel_backward: dX arrays disagree with the geometry")
    if need_dw and (x.shape[0] != N or x.shape[1] != C or x.shape[2] != P or xt.shape[0] < copies
                    or xt.shape[1] != P or xt.shape[2] != Cp or parts.shape[0] != N * dw_blocks
                    or parts.shape[1] != kh * kw * G + 1 or parts.shape[2] != Cp):
        raise ValueError("depthwise channel_backward: dW arrays disagree with the geometry")
    if N == 0 or C == 0:
        return
    if Po == 0:
        if need_dx:
            dx[:, :, :] = 0
        if need_dw:
            parts[:, :, :] = 0
        return
    if per_thread:
        for n in prange(N, nogil=True, schedule="dynamic", num_threads=team(threads)):
            t = threadid()
            to_channel_minor(level, &dy[n, 0, 0], C, Po, &dyt[t, 0, 0], Cp)
            if need_dx:
                rows_grad_input(level, G, &dyt[t, 0, 0], &wt[0, 0], zero, &dxt[t, 0, 0], Cp, H, W,
                                Ho, Wo, kh, kw, sh, sw, ph, pw, dh, dw, 0, H)
                from_channel_minor(level, &dxt[t, 0, 0], P, Cp, C, &dx[n, 0, 0], &scratch[t, 0])
            if need_dw:
                to_channel_minor(level, &x[n, 0, 0], C, P, &xt[t, 0, 0], Cp)
                for b in range(dw_blocks):
                    rows_grad_weight(level, G, &xt[t, 0, 0], &dyt[t, 0, 0], zero,
                                     &parts[n * dw_blocks + b, 0, 0], need_db, Cp, H, W, Ho, Wo, kh,
                                     kw, sh, sw, ph, pw, dh, dw, b * dw_rows_per_item,
                                     min((b + 1) * dw_rows_per_item, Ho))
        return
    for n in prange(N, nogil=True, schedule="dynamic", num_threads=team(threads)):
        to_channel_minor(level, &dy[n, 0, 0], C, Po, &dyt[n, 0, 0], Cp)
        if need_dw:
            to_channel_minor(level, &x[n, 0, 0], C, P, &xt[n, 0, 0], Cp)
    if need_dx:
        for item in prange(N * dx_blocks, nogil=True, schedule="dynamic", num_threads=team(threads)):
            n = item // dx_blocks
            r0 = (item % dx_blocks) * dx_rows_per_item
            r1 = min(r0 + dx_rows_per_item, H)
            rows_grad_input(level, G, &dyt[n, 0, 0], &wt[0, 0], zero, &dxt[n, 0, 0], Cp, H, W, Ho,
                            Wo, kh, kw, sh, sw, ph, pw, dh, dw, r0, r1)
        for n in prange(N, nogil=True, schedule="dynamic", num_threads=team(threads)):
            from_channel_minor(level, &dxt[n, 0, 0], P, Cp, C, &dx[n, 0, 0],
                               &scratch[threadid(), 0])
    if need_dw:
        for item in prange(N * dw_blocks, nogil=True, schedule="dynamic", num_threads=team(threads)):
            n = item // dw_blocks
            r0 = (item % dw_blocks) * dw_rows_per_item
            r1 = min(r0 + dw_rows_per_item, Ho)
            rows_grad_weight(level, G, &xt[n, 0, 0], &dyt[n, 0, 0], zero, &parts[item, 0, 0],
                             need_db, Cp, H, W, Ho, Wo, kh, kw, sh, sw, ph, pw, dh, dw, r0, r1)


# ---- nogil entry points (depthwise.pxd): the compiled predictor's executor calls these ------------

cdef void channel_forward_f32(const float* x, const float* wt, const float* bias, float* y,
                              float* xt, float* yt, float* scratch, Py_ssize_t N, Py_ssize_t C,
                              Py_ssize_t Cp, Py_ssize_t H, Py_ssize_t W, Py_ssize_t Ho,
                              Py_ssize_t Wo, int kh, int kw, int sh, int sw, int ph, int pw, int dh,
                              int dw, Py_ssize_t rows_per_item, int threads,
                              Py_ssize_t G, bint x_minor, bint y_minor) noexcept nogil:
    """``channel_forward`` on raw contiguous float32 arrays: wt (taps·G, Cp) and bias (Cp) as
    there; xt/yt hold channel-minor copies of H·W / Ho·Wo rows of Cp (one per thread when
    ``channel_images_per_thread``, else one per image), scratch one C·VL block per thread. With
    one thread nothing opens a parallel region. ``x_minor``/``y_minor``: x or y is itself stored
    channel-minor (images of H·W / Ho·Wo rows of Cp = C), so that side is read or written in
    place, without its transpose."""
    cdef int level = fc_ocvec_level()
    cdef Py_ssize_t P = H * W, Po = Ho * Wo, blocks, item, n, r0, r1, t
    cdef Py_ssize_t vl = 16 if level == 3 else 8
    cdef const float* src
    cdef float* dst
    threads = max(threads, 1)
    if N == 0 or C == 0 or Po == 0 or level < 2:
        return
    if threads == 1:
        for n in range(N):
            channel_image_forward(level, G, x, wt, bias, y, xt, yt, scratch, n, C, Cp, H, W, Ho, Wo,
                                  kh, kw, sh, sw, ph, pw, dh, dw, x_minor, y_minor)
        return
    if N >= threads:
        for n in prange(N, schedule="static", num_threads=team(threads)):
            t = threadid()
            channel_image_forward(level, G, x, wt, bias, y, xt + t * P * Cp, yt + t * Po * Cp,
                                  scratch + t * C * vl, n, C, Cp, H, W, Ho, Wo, kh, kw, sh, sw, ph, pw,
                                  dh, dw, x_minor, y_minor)
        return
    blocks = ceil_div(Ho, rows_per_item)
    src = xt
    dst = y if y_minor else yt
    if x_minor:
        src = x
    else:
        for n in prange(N, schedule="static", num_threads=team(threads)):
            to_channel_minor(level, x + n * C * P, C, P, xt + n * P * Cp, Cp)
    for item in prange(N * blocks, schedule="static", num_threads=team(threads)):
        n = item // blocks
        r0 = (item % blocks) * rows_per_item
        r1 = min(r0 + rows_per_item, Ho)
        rows_forward(level, G, src + n * P * Cp, wt, bias, dst + n * Po * Cp, Cp, H, W, Ho, Wo,
                     kh, kw, sh, sw, ph, pw, dh, dw, r0, r1)
    if not y_minor:
        for n in prange(N, schedule="static", num_threads=team(threads)):
            from_channel_minor(level, yt + n * Po * Cp, Po, Cp, C, y + n * C * Po,
                               scratch + threadid() * C * vl)


cdef void transpose_images(const float* src, float* dst, Py_ssize_t N, Py_ssize_t rows,
                           Py_ssize_t cols, float* scratch, int threads) noexcept nogil:
    """dst[n] (cols × rows) = src[n] (rows × cols) transposed for N images (any sizes), by the
    register transposes of ``from_channel_minor``; scratch holds cols·VL floats per thread. The
    compiled predictor's 1×1 steps beside a channel-minor depthwise step use it."""
    cdef int level = fc_ocvec_level()
    cdef Py_ssize_t vl = 16 if level == 3 else 8, n
    if threads <= 1 or N < 2:
        for n in range(N):
            from_channel_minor(level, src + n * rows * cols, rows, cols, cols, dst + n * rows * cols, scratch)
        return
    for n in prange(N, schedule="static", num_threads=team(threads)):
        from_channel_minor(level, src + n * rows * cols, rows, cols, cols, dst + n * rows * cols,
                           scratch + threadid() * cols * vl)


cdef inline void channel_image_forward(int level, Py_ssize_t G, const float* x, const float* wt,
                                       const float* bias, float* y, float* xt, float* yt,
                                       float* scratch, Py_ssize_t n, Py_ssize_t C, Py_ssize_t Cp,
                                       Py_ssize_t H, Py_ssize_t W, Py_ssize_t Ho, Py_ssize_t Wo,
                                       int kh, int kw, int sh, int sw, int ph, int pw, int dh,
                                       int dw, bint x_minor, bint y_minor) noexcept nogil:
    """Image n of ``channel_forward_f32`` through one thread's xt/yt (or in place)."""
    cdef Py_ssize_t P = H * W, Po = Ho * Wo
    cdef const float* src
    cdef float* dst
    if x_minor:
        src = x + n * P * Cp
    else:
        to_channel_minor(level, x + n * C * P, C, P, xt, Cp)
        src = xt
    dst = y + n * Po * Cp if y_minor else yt
    rows_forward(level, G, src, wt, bias, dst, Cp, H, W, Ho, Wo, kh, kw, sh, sw, ph, pw, dh, dw, 0, Ho)
    if not y_minor:
        from_channel_minor(level, yt, Po, Cp, C, y + n * C * Po, scratch)


cdef void channel_rows_f32(const float* xt, const float* wt, const float* bias, float* yt,
                           Py_ssize_t Cp, Py_ssize_t H, Py_ssize_t W, Py_ssize_t Ho, Py_ssize_t Wo,
                           int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw,
                           Py_ssize_t r0, Py_ssize_t r1) noexcept nogil:
    """Output rows [r0, r1) of one channel-minor image (H·W rows of Cp in, Ho·Wo out) by the
    depthwise loops, with bias, on the calling thread: for callers that interleave the rows with
    their producer and consumer (the compiled predictor's band chains)."""
    rows_forward(fc_ocvec_level(), 1, xt, wt, bias, yt, Cp, H, W, Ho, Wo, kh, kw, sh, sw, ph, pw, dh,
                 dw, r0, r1)


cdef void depthwise_forward_f32(const float* x, const float* w, const float* bias, float* y,
                                Py_ssize_t N, Py_ssize_t C, Py_ssize_t H, Py_ssize_t W,
                                Py_ssize_t K, Py_ssize_t Ho, Py_ssize_t Wo, int kh, int kw, int sh,
                                int sw, int ph, int pw, int dh, int dw, int threads, float clamp_lo,
                                float clamp_hi) noexcept nogil:
    """``depthwise_forward`` (the per-plane loops, channel multiplier K/C) on raw contiguous
    float32 arrays; w is (K, kh·kw), bias (K) or NULL, outputs clamped to [clamp_lo, clamp_hi]
    (±inf: none). One thread: no parallel region."""
    cdef Py_ssize_t mult = K // C, p, n, k
    cdef float b
    if N == 0 or K == 0 or Ho == 0 or Wo == 0:
        return
    if threads <= 1:
        for p in range(N * K):
            n = p // K
            k = p % K
            plane_forward(x + (n * C + k // mult) * H * W, w + k * kh * kw, y + p * Ho * Wo,
                          bias[k] if bias != NULL else 0, H, W, Ho, Wo, kh, kw, sh, sw, ph, pw, dh, dw,
                          clamp_lo, clamp_hi)
        return
    for p in prange(N * K, schedule="static", num_threads=team(threads)):
        n = p // K
        k = p % K
        b = bias[k] if bias != NULL else 0
        plane_forward(x + (n * C + k // mult) * H * W, w + k * kh * kw, y + p * Ho * Wo, b,
                      H, W, Ho, Wo, kh, kw, sh, sw, ph, pw, dh, dw, clamp_lo, clamp_hi)
