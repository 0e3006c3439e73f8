# cython: language_level=3
"""The compiled predictor's executor: a static program of steps run in one loop with the GIL
released (fastconv/inference builds the programs; docs/design.md "Compiled predictor").

A step is a C struct: an opcode, operand locations, integer and float parameters and pointers
to constants (packed weights, biases, pooling tables), all fixed when the program is built. The
loop resolves each operand as a base pointer (the arena, an input, an output) plus an offset
and calls the operation's nogil entry point: the convolution paths' kernels (conv, winograd,
direct, depthwise, pointwise through their .pxd entry points), the GEMM, and this module's own
loops (_infer.h) for everything else. Producers (convolutions, linear, per-channel affine,
binary arithmetic) run a fused epilogue afterwards: y = act(y [+ residual]).

``run`` executes one program; ``run_split`` runs one program per thread over disjoint parts of
the batch in a ``prange`` (each with its own arena), the steps of each then calling their
kernels with one thread. A step's ``threads`` is the thread count its kernel gets; nothing
here reads global thread settings. Programs are immutable once built, so any number of
Python threads may run one program at once on different arenas.
"""
from ._omp cimport team
from cython.parallel cimport prange
from libc.stdlib cimport free, malloc, realloc
from libc.math cimport INFINITY
from libc.string cimport memset
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec

cimport numpy as cnp
import numpy as np

cnp.import_array()

from .conv cimport conv_forward_f32, conv_transpose_forward_f32
from .winograd cimport winograd_filter_f32, winograd_forward_f32
from .direct cimport direct_forward_f32, ocvec_forward_packed_f32
from .depthwise cimport channel_forward_f32, channel_rows_f32, depthwise_forward_f32, transpose_images
from .pointwise cimport pointwise_forward_f32
from .gemm cimport matmul_f32
from ._blas cimport fc_sgemm_b_prepacked, fc_sgemm_scratch, fc_sgemm_transpose_store, gemm

cdef extern from "_infer.h" nogil:
    void fc_inf_act(const float* x, const float* r, float* y, Py_ssize_t n, int act, float a0, float a1)
    void fc_inf_bias_cols(const float* x, const float* bias, const float* r, float* y, Py_ssize_t rows,
                          Py_ssize_t cols, int act, float a0, float a1)
    void fc_inf_channel_affine(const float* x, const float* m, const float* s, const float* t,
                               const float* r, float* y, Py_ssize_t p0, Py_ssize_t p1, Py_ssize_t C,
                               Py_ssize_t S, int act, float a0, float a1)
    void fc_inf_binary(int op, const float* a, const Py_ssize_t* sa, const float* b, const Py_ssize_t* sb,
                       float* y, const Py_ssize_t* shape, int nd, Py_ssize_t r0, Py_ssize_t r1)
    void fc_inf_copy(const float* src, const Py_ssize_t* ss, float* dst, const Py_ssize_t* ds,
                     const Py_ssize_t* shape, int nd, Py_ssize_t r0, Py_ssize_t r1)
    void fc_inf_fill(float* y, Py_ssize_t n, float v)
    void fc_inf_max_pool(const float* x, float* y, Py_ssize_t p0, Py_ssize_t p1, Py_ssize_t H, Py_ssize_t W,
                         Py_ssize_t Ho, Py_ssize_t Wo, const Py_ssize_t* rows, const Py_ssize_t* cols,
                         Py_ssize_t dh, Py_ssize_t dw)
    void fc_inf_max_pool_2x2(const float* x, float* y, Py_ssize_t p0, Py_ssize_t p1, Py_ssize_t H, Py_ssize_t W,
                             Py_ssize_t Ho, Py_ssize_t Wo, float* buf)
    void fc_inf_max_pool_sep(const float* x, float* y, Py_ssize_t p0, Py_ssize_t p1, Py_ssize_t H, Py_ssize_t W,
                             Py_ssize_t Ho, Py_ssize_t Wo, const Py_ssize_t* rows, Py_ssize_t dh, Py_ssize_t kw,
                             Py_ssize_t sw, Py_ssize_t pw, Py_ssize_t dw, float* buf)
    void fc_inf_avg_pool_sep(const float* x, float* y, Py_ssize_t p0, Py_ssize_t p1, Py_ssize_t H, Py_ssize_t W,
                             Py_ssize_t Ho, Py_ssize_t Wo, const Py_ssize_t* rows, const double* rs,
                             const double* cs, Py_ssize_t kw, Py_ssize_t sw, Py_ssize_t pw, double* buf)
    void fc_inf_avg_pool(const float* x, float* y, Py_ssize_t p0, Py_ssize_t p1, Py_ssize_t H, Py_ssize_t W,
                         Py_ssize_t Ho, Py_ssize_t Wo, const Py_ssize_t* rows, const Py_ssize_t* cols,
                         const double* rs, const double* cs)
    void fc_inf_plane_mean(const float* x, float* y, Py_ssize_t p0, Py_ssize_t p1, Py_ssize_t S)
    void fc_inf_normalize(const float* x, float* y, const float* w, const float* bias, Py_ssize_t A,
                          Py_ssize_t B, Py_ssize_t L, Py_ssize_t cpg, Py_ssize_t channels, int elementwise,
                          double eps, Py_ssize_t g0, Py_ssize_t g1)
    void fc_inf_softmax(const float* x, float* y, Py_ssize_t o0, Py_ssize_t o1, Py_ssize_t R,
                        Py_ssize_t inner, int log_form)
    void fc_inf_reduce(int op, const float* x, float* y, Py_ssize_t o0, Py_ssize_t o1, Py_ssize_t R,
                       Py_ssize_t inner)
    void fc_inf_nearest(const float* x, float* y, Py_ssize_t p0, Py_ssize_t p1, Py_ssize_t H, Py_ssize_t W,
                        Py_ssize_t Ho, Py_ssize_t Wo, const Py_ssize_t* ri, const Py_ssize_t* ci)
    void fc_inf_linear2d(const float* x, float* y, Py_ssize_t p0, Py_ssize_t p1, Py_ssize_t H,
                         Py_ssize_t W, Py_ssize_t Ho, Py_ssize_t Wo, const Py_ssize_t* ri0,
                         const Py_ssize_t* ri1, const float* rl0, const float* rl1,
                         const Py_ssize_t* ci0, const Py_ssize_t* ci1, const float* cl0,
                         const float* cl1)

# opcodes (fastconv/inference/_program.py names them)
cdef enum:
    OP_CONV_GEMM = 1
    OP_CONV_WINOGRAD = 2
    OP_CONV_IMPLICIT = 3
    OP_CONV_OCVEC = 4
    OP_CONV_CHANNEL = 5
    OP_CONV_PLANES = 6
    OP_CONV_POINTWISE = 7
    OP_CONV_PW_BATCHED = 8
    OP_CONV_TRANSPOSE = 9
    OP_CONV_PW_LAYOUT = 10
    OP_LINEAR = 11
    OP_MATMUL = 12
    OP_CHANNEL_AFFINE = 13
    OP_BINARY = 14
    OP_ACT = 15
    OP_COPY = 16
    OP_FILL = 17
    OP_MAX_POOL = 18
    OP_AVG_POOL = 19
    OP_PLANE_MEAN = 20
    OP_NORMALIZE = 21
    OP_SOFTMAX = 22
    OP_REDUCE = 23
    OP_NEAREST = 24
    OP_LINEAR2D = 25
    OP_BAND_CHAIN = 26

# activation codes (_infer.h's FC_ACT_*) the executor itself tests
cdef enum:
    ACT_CLAMP = 1

OPCODES = {
    "conv_gemm": OP_CONV_GEMM, "conv_winograd": OP_CONV_WINOGRAD, "conv_implicit": OP_CONV_IMPLICIT,
    "conv_ocvec": OP_CONV_OCVEC, "conv_channel": OP_CONV_CHANNEL, "conv_planes": OP_CONV_PLANES,
    "conv_pointwise": OP_CONV_POINTWISE, "conv_pw_batched": OP_CONV_PW_BATCHED,
    "conv_transpose": OP_CONV_TRANSPOSE, "conv_pw_layout": OP_CONV_PW_LAYOUT, "linear": OP_LINEAR, "matmul": OP_MATMUL,
    "channel_affine": OP_CHANNEL_AFFINE, "binary": OP_BINARY, "act": OP_ACT, "copy": OP_COPY,
    "fill": OP_FILL, "max_pool": OP_MAX_POOL, "avg_pool": OP_AVG_POOL, "plane_mean": OP_PLANE_MEAN,
    "normalize": OP_NORMALIZE, "softmax": OP_SOFTMAX, "reduce": OP_REDUCE, "nearest": OP_NEAREST,
    "linear2d": OP_LINEAR2D, "band_chain": OP_BAND_CHAIN,
}

cdef enum:
    MAX_SRC = 4
    NI = 48
    NF = 6
    NC = 8
    MAX_BASES = 64
    MAX_THREADS = 256
    # elements of one parallel work item of the flat loops
    BLOCK = 16384
    PW_BLOCK_FLOATS = 32768  # a channel-minor 1×1 step's output block, finished while in L2
    PW_BLOCK_MIN_ROWS = 384  # and at least this many pixels: each block's GEMM packs the whole
                             # weight again, ~1/10 of its multiply-adds' time at 384 rows
    PANEL_COLUMNS = 32       # output channels of one prepacked weight panel (_sgemm.h's NR)


cdef struct Ref:
    int base              # index into the run's base pointers; -1: absent
    Py_ssize_t off        # elements from that base's start


cdef struct Step:
    int op
    int threads
    Ref src[MAX_SRC]
    Ref dst
    Ref work
    Ref res               # the epilogue's residual (base -1: none)
    int act
    float a0, a1
    Py_ssize_t i[NI]
    double f[NF]
    const void* c[NC]


cdef inline float* at(float** bases, Ref r) noexcept nogil:
    return NULL if r.base < 0 else bases[r.base] + r.off


cdef inline Py_ssize_t part(Py_ssize_t total, Py_ssize_t parts, Py_ssize_t t) noexcept nogil:
    return (total * t) // parts


cdef inline bint clamp_in_kernel(const Step* s, const float* r) noexcept nogil:
    """Whether the step's kernel applies its activation: a clamp (ReLU, ReLU6) with no residual
    on the paths whose kernels take clamp bounds (the im2col/shallow forward, the depthwise
    planes), so the output is written once instead of clamped in a second pass."""
    return s.act == ACT_CLAMP and r == NULL and (s.op == OP_CONV_GEMM or s.op == OP_CONV_PLANES)


cdef void epilogue(const Step* s, float* y, float* r, Py_ssize_t n) noexcept nogil:
    """y = act(y [+ r]) over n elements, in blocks across the step's threads."""
    cdef Py_ssize_t blocks, b, lo
    if (s.act == 0 and r == NULL) or clamp_in_kernel(s, r):
        return
    if s.threads <= 1 or n < 2 * BLOCK:
        fc_inf_act(y, r, y, n, s.act, s.a0, s.a1)
        return
    blocks = (n + BLOCK - 1) // BLOCK
    for b in prange(blocks, schedule='static', num_threads=team(s.threads)):
        lo = b * BLOCK
        fc_inf_act(y + lo, r + lo if r != NULL else NULL, y + lo, min(BLOCK, n - lo), s.act, s.a0, s.a1)


cdef int run_conv(const Step* s, float** bases, bint first) noexcept nogil:
    cdef const float* x = at(bases, s.src[0])
    cdef float* y = at(bases, s.dst)
    cdef float* work = at(bases, s.work)
    cdef const Py_ssize_t* i = s.i
    cdef const float* w = <const float*>s.c[0]
    cdef const float* bias = <const float*>s.c[1]
    cdef int t = s.threads
    cdef Py_ssize_t n, k, q, N, C, K, P
    cdef float* xs
    cdef bint clamp = clamp_in_kernel(s, at(bases, s.res))
    cdef float lo = <float>s.a0 if clamp else -INFINITY, hi = <float>s.a1 if clamp else INFINITY
    if s.op == OP_CONV_GEMM:
        conv_forward_f32(x, w, bias, y, work, i[19], i[0], i[1], i[2], i[3], i[4], i[5], i[6],
                         <int>i[7], <int>i[8], <int>i[9], <int>i[10], <int>i[11], <int>i[12],
                         <int>i[13], <int>i[14], <int>i[15], <int>i[16], <bint>i[17], t, <bint>i[18],
                         lo, hi)
    elif s.op == OP_CONV_WINOGRAD:
        # the filter transformed into the workspace first (u, i[15] elements), then V and M buffers;
        # a layer that keeps its transformed filter (i[18]) has it as its weight constant
        if first and not i[18]:  # the chunks of one step share the transformed filter
            winograd_filter_f32(w, work, i[4], i[1], i[16], t)
        winograd_forward_f32(x, w if i[18] else work, bias, y, work + i[15], i[12], work + i[15] + i[14], i[13], i[0], i[1],
                             i[2], i[3], i[4], i[5], i[6], <int>i[7], <int>i[8], i[9], <bint>i[10],
                             <bint>i[11], i[17], t)
    elif s.op == OP_CONV_IMPLICIT:
        if direct_forward_f32(x, w, bias, y, work, i[14], i[0], i[1], i[2], i[3], i[4], <int>i[5],
                              <int>i[6], <int>i[7], <int>i[8], <int>i[9], <int>i[10], i[11], i[12],
                              <bint>i[13], t) != 0:
            return -1
    elif s.op == OP_CONV_OCVEC:
        ocvec_forward_packed_f32(x, w, bias, y, work, i[15], i[0], i[1], i[2], i[3], i[4], <int>i[5],
                                 <int>i[6], <int>i[7], <int>i[8], <int>i[9], <int>i[10], <int>i[11],
                                 <int>i[12], i[13], i[14], t)
    elif s.op == OP_CONV_CHANNEL:
        channel_forward_f32(x, w, bias, y, work + i[17], work + i[18], work + i[19], i[0], i[1], i[2],
                            i[3], i[4], i[5], i[6], <int>i[7], <int>i[8], <int>i[9], <int>i[10],
                            <int>i[11], <int>i[12], <int>i[13], <int>i[14], i[15], t, i[16],
                            <bint>i[24], <bint>i[25])
    elif s.op == OP_CONV_PLANES:
        depthwise_forward_f32(x, w, bias, y, i[0], i[1], i[2], i[3], i[4], i[5], i[6], <int>i[7],
                              <int>i[8], <int>i[9], <int>i[10], <int>i[11], <int>i[12], <int>i[13],
                              <int>i[14], t, lo, hi)
    elif s.op == OP_CONV_POINTWISE or s.op == OP_CONV_PW_BATCHED:
        N = i[0]; C = i[1]; K = i[4]; P = i[5] * i[6]
        if i[7] != 1 or i[8] != 1:  # strided: the pixels a 1×1 filter reads, subsampled first
            subsample(x, work, N * C, i[2], i[3], i[5], i[6], i[7], i[8], t)
            x = work
            work = work + N * C * P
        if s.op == OP_CONV_POINTWISE:
            pointwise_forward_f32(w, x, bias, y, N, C, P, K, t)
        else:
            pointwise_batched(w, x, bias, y, work, N, C, P, K, t)
    elif s.op == OP_CONV_PW_LAYOUT:
        pointwise_layout(w, x, bias, y, work, i[0], i[1], i[2] * i[3], i[4], <bint>i[24], <bint>i[25], t)
    elif s.op == OP_CONV_TRANSPOSE:
        conv_transpose_forward_f32(x, w, bias, y, work, i[19], i[0], i[1], i[2], i[3], i[4], i[5],
                                   i[6], <int>i[7], <int>i[8], <int>i[9], <int>i[10], <int>i[11],
                                   <int>i[12], <int>i[13], <int>i[14], <int>i[15], <int>i[16],
                                   <bint>i[17], t)
    return 0


cdef int run_conv_chunked(const Step* s, float** bases, float* y, float* r) noexcept nogil:
    """A one-thread convolution over i[23] images at a time, each chunk's epilogue right after it
    while its output is still in cache (i[21], i[22]: elements of one input and output image)."""
    cdef Step sub = s[0]
    cdef Py_ssize_t n0, count, N = s.i[0], chunk = s.i[23], xs = s.i[21], ys = s.i[22]
    n0 = 0
    while n0 < N:
        count = min(chunk, N - n0)
        sub.i[0] = count
        sub.src[0].off = s.src[0].off + n0 * xs
        sub.dst.off = s.dst.off + n0 * ys
        if run_conv(&sub, bases, n0 == 0) != 0:
            return -1
        epilogue(&sub, y + n0 * ys, r + n0 * ys if r != NULL else NULL, count * ys)
        n0 += count
    return 0


cdef void subsample(const float* x, float* xs, Py_ssize_t planes, Py_ssize_t H, Py_ssize_t W,
                    Py_ssize_t Ho, Py_ssize_t Wo, Py_ssize_t sh, Py_ssize_t sw, int threads) noexcept nogil:
    """xs (planes, Ho, Wo) = x[:, ::sh, ::sw] cropped."""
    cdef Py_ssize_t p, oy, ox
    if threads <= 1:
        for p in range(planes):
            for oy in range(Ho):
                for ox in range(Wo):
                    xs[(p * Ho + oy) * Wo + ox] = x[(p * H + oy * sh) * W + ox * sw]
        return
    for p in prange(planes, schedule='static', num_threads=team(threads)):
        for oy in range(Ho):
            for ox in range(Wo):
                xs[(p * Ho + oy) * Wo + ox] = x[(p * H + oy * sh) * W + ox * sw]


cdef void pointwise_layout(const float* w, const float* x, const float* bias, float* y, float* work,
                           Py_ssize_t N, Py_ssize_t C, Py_ssize_t P, Py_ssize_t K, bint x_minor,
                           bint y_minor, int threads) noexcept nogil:
    """1×1 convolution (stride 1) of small images with one side stored channel-minor (each image
    P × C or P × K): the batch's pixels in one GEMM, (N·P) × C times wᵀ, an NCHW side's images
    transposed through the workspace (N·P·C or N·P·K floats, then a transpose scratch per thread
    of P or K times the vector width). Large images: ``pointwise_blocks``."""
    if N == 0 or K == 0 or P == 0:
        return
    if x_minor and y_minor:
        matmul_f32(False, True, x, w, y, <int>(N * P), <int>K, <int>C, threads)
        add_bias_minor(y, bias, N * P, K)
    elif y_minor:
        transpose_images(x, work, N, C, P, work + N * P * C, threads)
        matmul_f32(False, True, work, w, y, <int>(N * P), <int>K, <int>C, threads)
        add_bias_minor(y, bias, N * P, K)
    else:
        matmul_f32(False, True, x, w, work, <int>(N * P), <int>K, <int>C, threads)
        add_bias_minor(work, bias, N * P, K)
        transpose_images(work, y, N, P, K, work + N * P * K, threads)


cdef void panel_block(const Step* s, const float* panels, const float* x, const float* bias, float* y,
                      const float* r, Py_ssize_t C, Py_ssize_t P, Py_ssize_t K, bint x_minor, bint y_minor,
                      Py_ssize_t n, Py_ssize_t p0, Py_ssize_t count, Py_ssize_t k0, Py_ssize_t k1) noexcept nogil:
    """``pointwise_block`` on the weight's prepacked panels (i[27] > 0), output channels [k0, k1)
    only (k0 on a panel boundary): the pixels' rows times the panels, read in either layout; an
    NCHW output goes through the calling thread's scratch block (``panel_nchw_piece``)."""
    cdef Py_ssize_t kc = k1 - k0, q, q0, c0, lda = C if x_minor else P
    cdef const float* a = x + (n * P + p0) * C if x_minor else x + n * C * P + p0
    cdef float piece[12 * PANEL_COLUMNS]
    cdef const float* pb = panels + k0 * C
    cdef const float* bk = bias + k0 if bias != NULL else NULL
    cdef float* yb
    cdef float* t
    if kc <= 0 or count <= 0:
        return
    if y_minor:
        yb = y + (n * P + p0) * K + k0
        fc_sgemm_b_prepacked(not x_minor, <int>count, <int>kc, <int>C, a, <int>lda, pb, yb, <int>K)
        if bias == NULL and r == NULL and s.act == 0:
            return
        if kc == K and bk != NULL:  # whole rows: one pass
            fc_inf_bias_cols(yb, bk, r + (n * P + p0) * K if r != NULL else NULL, yb, count, K, s.act, s.a0, s.a1)
            return
        for q in range(count):
            if bk != NULL:
                fc_inf_bias_cols(yb + q * K, bk, r + (n * P + p0 + q) * K + k0 if r != NULL else NULL, yb + q * K,
                                 1, kc, s.act, s.a0, s.a1)
            else:
                fc_inf_act(yb + q * K, r + (n * P + p0 + q) * K + k0 if r != NULL else NULL, yb + q * K, kc,
                           s.act, s.a0, s.a1)
        return
    t = fc_sgemm_scratch(<size_t>(count * kc))
    if t != NULL:
        panel_nchw_piece(s, pb, a, <int>lda, not x_minor, bk, y, r, C, P, K, n, p0, count, k0, kc, t)
        return
    # no memory for the scratch block: pieces of one register tile through a stack buffer
    for q0 in range(0, count, 12):
        for c0 in range(k0, k1, 32):  # PANEL_COLUMNS (a literal: Cython needs a step of known sign)
            panel_nchw_piece(s, panels + c0 * C, a + (q0 * C if x_minor else q0), <int>lda, not x_minor,
                             bias + c0 if bias != NULL else NULL, y, r, C, P, K, n, p0 + q0, min(12, count - q0),
                             c0, min(PANEL_COLUMNS, k1 - c0), piece)


cdef void panel_nchw_piece(const Step* s, const float* pb, const float* a, int lda, bint trans_a, const float* bk,
                           float* y, const float* r, Py_ssize_t C, Py_ssize_t P, Py_ssize_t K, Py_ssize_t n,
                           Py_ssize_t p0, Py_ssize_t count, Py_ssize_t k0, Py_ssize_t kc, float* t) noexcept nogil:
    """Pixels p0 … p0+count times output channels k0 … k0+kc of ``panel_block`` into an NCHW y: the
    product into ``t`` (count × kc), bias and activation there while it is in cache, written
    transposed, then the residual."""
    cdef Py_ssize_t k
    cdef float* yb = y + (n * K + k0) * P + p0
    fc_sgemm_b_prepacked(trans_a, <int>count, <int>kc, <int>C, a, lda, pb, t, <int>kc)
    if bk != NULL and r == NULL:
        fc_inf_bias_cols(t, bk, NULL, t, count, kc, s.act, s.a0, s.a1)
    elif bk != NULL:
        fc_inf_bias_cols(t, bk, NULL, t, count, kc, 0, 0, 0)
    fc_sgemm_transpose_store(<int>count, <int>kc, t, kc, yb, P)
    if r != NULL or (bk == NULL and s.act != 0):
        for k in range(kc):
            fc_inf_act(yb + k * P, r + (n * K + k0 + k) * P + p0 if r != NULL else NULL, yb + k * P, count,
                       s.act, s.a0, s.a1)


cdef void pointwise_block(const Step* s, const float* w, const float* x, const float* bias, float* y,
                          const float* r, Py_ssize_t C, Py_ssize_t P, Py_ssize_t K, bint x_minor,
                          bint y_minor, Py_ssize_t n, Py_ssize_t p0, Py_ssize_t count) noexcept nogil:
    """Pixels p0 … p0+count of image n (of P pixels; both sides channel-minor: of the batch seen as
    one image) on one thread: the GEMM reading either layout in place, then bias, residual and
    activation while the block is in cache."""
    cdef Py_ssize_t k, q
    cdef float* yb
    cdef const float* rb
    if s.i[27] > 0:
        panel_block(s, w, x, bias, y, r, C, P, K, x_minor, y_minor, n, p0, count, 0, K)
        return
    if y_minor:
        yb = y + (n * P + p0) * K
        rb = r + (n * P + p0) * K if r != NULL else NULL
        if x_minor:  # y (count × K) = x rows · wᵀ
            gemm(False, True, <int>count, <int>K, <int>C, <float>1, x + (n * P + p0) * C, <int>C, w,
                 <int>C, <float>0, yb, <int>K)
        else:  # y (count × K) = (x columns p0… of the C × P image)ᵀ · wᵀ
            gemm(True, True, <int>count, <int>K, <int>C, <float>1, x + n * C * P + p0, <int>P, w,
                 <int>C, <float>0, yb, <int>K)
        if bias != NULL or rb != NULL or s.act != 0:
            fc_inf_bias_cols(yb, bias, rb, yb, count, K, s.act, s.a0, s.a1)
        return
    # y_n (K × P, NCHW) columns p0… = w · (x rows p0…)ᵀ
    yb = y + n * K * P + p0
    gemm(False, True, <int>K, <int>count, <int>C, <float>1, w, <int>C, x + (n * P + p0) * C, <int>C,
         <float>0, yb, <int>P)
    for k in range(K):
        if bias != NULL:
            for q in range(count):
                yb[k * P + q] += bias[k]
        if s.act != 0 or r != NULL:
            fc_inf_act(yb + k * P, r + n * K * P + k * P + p0 if r != NULL else NULL, yb + k * P, count,
                       s.act, s.a0, s.a1)


cdef void pointwise_blocks(const Step* s, const float* w, const float* x, const float* bias, float* y,
                           const float* r, Py_ssize_t N, Py_ssize_t C, Py_ssize_t P, Py_ssize_t K,
                           bint x_minor, bint y_minor, int threads) noexcept nogil:
    """A channel-minor 1×1 convolution (stride 1) with its epilogue, in blocks of about
    PW_BLOCK_FLOATS outputs across the threads (``pointwise_block``): no transposes and no pass
    over the whole output after the GEMM. Both sides minor, the batch is one long image."""
    cdef Py_ssize_t images = 1 if x_minor and y_minor else N
    cdef Py_ssize_t pixels = N * P if x_minor and y_minor else P
    cdef Py_ssize_t rows = max(PW_BLOCK_MIN_ROWS, PW_BLOCK_FLOATS // max(K, 1))
    cdef Py_ssize_t per_image, b, n, p0, parts = 1, item, j, panels = (K + PANEL_COLUMNS - 1) // PANEL_COLUMNS
    if s.i[27] > 0:  # prepacked panels: the plan's block rows, and column parts for few blocks
        rows = s.i[27]
        parts = max(1, min(s.i[28], panels))
    per_image = (pixels + rows - 1) // rows
    if images == 0 or K == 0 or pixels == 0:
        return
    if parts > 1:
        for item in prange(images * per_image * parts, schedule='static', num_threads=team(threads)):
            b = item // parts
            j = item - b * parts
            n = b // per_image
            p0 = (b - n * per_image) * rows
            panel_block(s, w, x, bias, y, r, C, pixels, K, x_minor, y_minor, n, p0, min(rows, pixels - p0),
                        part(panels, parts, j) * PANEL_COLUMNS, min(K, part(panels, parts, j + 1) * PANEL_COLUMNS))
        return
    if threads <= 1 or images * per_image < 2:
        for b in range(images * per_image):
            n = b // per_image
            p0 = (b - n * per_image) * rows
            pointwise_block(s, w, x, bias, y, r, C, pixels, K, x_minor, y_minor, n, p0, min(rows, pixels - p0))
        return
    for b in prange(images * per_image, schedule='static', num_threads=team(threads)):
        n = b // per_image
        p0 = (b - n * per_image) * rows
        pointwise_block(s, w, x, bias, y, r, C, pixels, K, x_minor, y_minor, n, p0, min(rows, pixels - p0))


cdef inline void add_bias_minor(float* y, const float* bias, Py_ssize_t rows, Py_ssize_t K) noexcept nogil:
    """y (rows × K) += bias (K) in every row (nothing when bias is NULL)."""
    cdef Py_ssize_t r, k
    if bias == NULL:
        return
    for r in range(rows):
        for k in range(K):
            y[r * K + k] += bias[k]


cdef void pointwise_batched(const float* w, const float* x, const float* bias, float* y, float* work,
                            Py_ssize_t N, Py_ssize_t C, Py_ssize_t P, Py_ssize_t K,
                            int threads) noexcept nogil:
    """1×1 convolution as one GEMM over the batch: xc (C, N·P) = x channel-major, yc (K, N·P) =
    w·xc (+ bias), y (N, K, P) = yc split back into images."""
    cdef float* xc = work
    cdef float* yc = work + C * N * P
    cdef Py_ssize_t n, c, k, q
    cdef float b
    if P == 1:  # the batch is a matrix already: y (N, K) = x (N, C) · wᵀ, nothing to gather or split
        matmul_f32(False, True, x, w, y, <int>N, <int>K, <int>C, threads)
        if bias != NULL:
            for n in range(N):
                for k in range(K):
                    y[n * K + k] += bias[k]
        return
    for n in range(N):
        for c in range(C):
            for q in range(P):
                xc[c * N * P + n * P + q] = x[(n * C + c) * P + q]
    matmul_f32(False, False, w, xc, yc, <int>K, <int>(N * P), <int>C, threads)
    for n in range(N):
        for k in range(K):
            b = bias[k] if bias != NULL else 0
            for q in range(P):
                y[(n * K + k) * P + q] = yc[k * N * P + n * P + q] + b


cdef int run_step(const Step* s, float** bases) noexcept nogil:
    cdef const float* x = at(bases, s.src[0])
    cdef float* y = at(bases, s.dst)
    cdef float* r = at(bases, s.res)
    cdef const Py_ssize_t* i = s.i
    cdef int t = s.threads
    cdef Py_ssize_t j, lo, hi, n
    if s.op == OP_BAND_CHAIN:
        run_band_chain(s, bases)
    elif s.op == OP_CONV_PW_LAYOUT and i[26]:  # blocks with their epilogue
        pointwise_blocks(s, <const float*>s.c[0], x, <const float*>s.c[1], y, r, i[0], i[1], i[2] * i[3], i[4],
                         <bint>i[24], <bint>i[25], t)
    elif s.op <= OP_CONV_PW_LAYOUT:
        if t <= 1 and 0 < i[23] < i[0] and (s.act != 0 or r != NULL):
            return run_conv_chunked(s, bases, y, r)
        if run_conv(s, bases, True) != 0:
            return -1
        epilogue(s, y, r, i[20])
    elif s.op == OP_LINEAR:
        # y (M, K) = x (M, C) · wᵀ, then bias + residual + activation per row
        matmul_f32(False, True, x, <const float*>s.c[0], y, <int>i[0], <int>i[2], <int>i[1], t)
        if s.c[1] != NULL:
            if t <= 1 or i[0] < 2 * t:
                fc_inf_bias_cols(y, <const float*>s.c[1], r, y, i[0], i[2], s.act, s.a0, s.a1)
            else:
                for j in prange(t, schedule='static', num_threads=team(t)):
                    lo = part(i[0], t, j)
                    hi = part(i[0], t, j + 1)
                    fc_inf_bias_cols(y + lo * i[2], <const float*>s.c[1], r + lo * i[2] if r != NULL else NULL,
                                     y + lo * i[2], hi - lo, i[2], s.act, s.a0, s.a1)
        else:
            epilogue(s, y, r, i[0] * i[2])
    elif s.op == OP_MATMUL:
        run_matmul(s, bases)
        epilogue(s, y, r, i[0] * i[1] * i[2])
    elif s.op == OP_CHANNEL_AFFINE:
        if t <= 1 or i[0] < 2 * t:
            fc_inf_channel_affine(x, <const float*>s.c[0], <const float*>s.c[1], <const float*>s.c[2], r, y,
                                  0, i[0], i[1], i[2], s.act, s.a0, s.a1)
        else:
            for j in prange(t, schedule='static', num_threads=team(t)):
                fc_inf_channel_affine(x, <const float*>s.c[0], <const float*>s.c[1], <const float*>s.c[2], r,
                                      y, part(i[0], t, j), part(i[0], t, j + 1), i[1], i[2], s.act, s.a0, s.a1)
    elif s.op == OP_BINARY:
        n = rows_of(i + 2, <int>i[1])
        if t <= 1 or n < 2 * t:
            fc_inf_binary(<int>i[0], x, i + 8, at(bases, s.src[1]), i + 14, y, i + 2, <int>i[1], 0, n)
        else:
            for j in prange(t, schedule='static', num_threads=team(t)):
                fc_inf_binary(<int>i[0], x, i + 8, at(bases, s.src[1]), i + 14, y, i + 2, <int>i[1],
                              part(n, t, j), part(n, t, j + 1))
        epilogue(s, y, r, i[20])
    elif s.op == OP_ACT:
        if t <= 1 or i[0] < 2 * BLOCK:
            fc_inf_act(x, r, y, i[0], s.act, s.a0, s.a1)
        else:
            for j in prange((i[0] + BLOCK - 1) // BLOCK, schedule='static', num_threads=team(t)):
                lo = j * BLOCK
                fc_inf_act(x + lo, r + lo if r != NULL else NULL, y + lo, min(BLOCK, i[0] - lo), s.act,
                           s.a0, s.a1)
    elif s.op == OP_COPY:
        n = rows_of(i + 1, <int>i[0])
        if t <= 1 or n < 2 * t:
            fc_inf_copy(x, i + 7, y, i + 13, i + 1, <int>i[0], 0, n)
        else:
            for j in prange(t, schedule='static', num_threads=team(t)):
                fc_inf_copy(x, i + 7, y, i + 13, i + 1, <int>i[0], part(n, t, j), part(n, t, j + 1))
    elif s.op == OP_FILL:
        fc_inf_fill(y, i[0], <float>s.f[0])
    elif s.op == OP_MAX_POOL or s.op == OP_AVG_POOL:
        if t <= 1 or i[0] < 2 * t:
            pool_planes(s, x, y, at(bases, s.work), 0, i[0])
        else:
            for j in prange(t, schedule='static', num_threads=team(t)):
                pool_planes(s, x, y, at(bases, s.work) + j * i[11], part(i[0], t, j), part(i[0], t, j + 1))
    elif s.op == OP_PLANE_MEAN:
        if t <= 1 or i[0] < 2 * t:
            fc_inf_plane_mean(x, y, 0, i[0], i[1])
        else:
            for j in prange(t, schedule='static', num_threads=team(t)):
                fc_inf_plane_mean(x, y, part(i[0], t, j), part(i[0], t, j + 1), i[1])
    elif s.op == OP_NORMALIZE:
        n = i[1] // i[3]  # groups
        if t <= 1 or n < 2 * t:
            fc_inf_normalize(x, y, <const float*>s.c[0], <const float*>s.c[1], i[0], i[1], i[2], i[3], i[4],
                             <int>i[5], s.f[0], 0, n)
        else:
            for j in prange(t, schedule='static', num_threads=team(t)):
                fc_inf_normalize(x, y, <const float*>s.c[0], <const float*>s.c[1], i[0], i[1], i[2], i[3],
                                 i[4], <int>i[5], s.f[0], part(n, t, j), part(n, t, j + 1))
        epilogue(s, y, r, i[0] * i[1] * i[2])
    elif s.op == OP_SOFTMAX:
        if t <= 1 or i[0] < 2 * t:
            fc_inf_softmax(x, y, 0, i[0], i[1], i[2], <int>i[3])
        else:
            for j in prange(t, schedule='static', num_threads=team(t)):
                fc_inf_softmax(x, y, part(i[0], t, j), part(i[0], t, j + 1), i[1], i[2], <int>i[3])
    elif s.op == OP_REDUCE:
        if t <= 1 or i[1] < 2 * t:
            fc_inf_reduce(<int>i[0], x, y, 0, i[1], i[2], i[3])
        else:
            for j in prange(t, schedule='static', num_threads=team(t)):
                fc_inf_reduce(<int>i[0], x, y, part(i[1], t, j), part(i[1], t, j + 1), i[2], i[3])
    elif s.op == OP_NEAREST:
        if t <= 1 or i[0] < 2 * t:
            fc_inf_nearest(x, y, 0, i[0], i[1], i[2], i[3], i[4], <const Py_ssize_t*>s.c[0],
                           <const Py_ssize_t*>s.c[1])
        else:
            for j in prange(t, schedule='static', num_threads=team(t)):
                fc_inf_nearest(x, y, part(i[0], t, j), part(i[0], t, j + 1), i[1], i[2], i[3], i[4],
                               <const Py_ssize_t*>s.c[0], <const Py_ssize_t*>s.c[1])
    elif s.op == OP_LINEAR2D:
        if t <= 1 or i[0] < 2 * t:
            linear2d(s, x, y, 0, i[0])
        else:
            for j in prange(t, schedule='static', num_threads=team(t)):
                linear2d(s, x, y, part(i[0], t, j), part(i[0], t, j + 1))
    return 0


cdef void pool_planes(const Step* s, const float* x, float* y, float* buf, Py_ssize_t p0,
                      Py_ssize_t p1) noexcept nogil:
    """Planes [p0, p1) of a pooling step: i = (planes, H, W, Ho, Wo, dh, dw, kw, sw, pw, separable,
    buffer elements per thread); c = (row table, column table, row scales, column scales)."""
    cdef const Py_ssize_t* i = s.i
    if s.op == OP_MAX_POOL:
        if i[10] == 2:
            fc_inf_max_pool_2x2(x, y, p0, p1, i[1], i[2], i[3], i[4], buf)
        elif i[10]:
            fc_inf_max_pool_sep(x, y, p0, p1, i[1], i[2], i[3], i[4], <const Py_ssize_t*>s.c[0], i[5], i[7],
                                i[8], i[9], i[6], buf)
        else:
            fc_inf_max_pool(x, y, p0, p1, i[1], i[2], i[3], i[4], <const Py_ssize_t*>s.c[0],
                            <const Py_ssize_t*>s.c[1], i[5], i[6])
    elif i[10]:
        fc_inf_avg_pool_sep(x, y, p0, p1, i[1], i[2], i[3], i[4], <const Py_ssize_t*>s.c[0],
                            <const double*>s.c[2], <const double*>s.c[3], i[7], i[8], i[9], <double*>buf)
    else:
        fc_inf_avg_pool(x, y, p0, p1, i[1], i[2], i[3], i[4], <const Py_ssize_t*>s.c[0],
                        <const Py_ssize_t*>s.c[1], <const double*>s.c[2], <const double*>s.c[3])


cdef inline void linear2d(const Step* s, const float* x, float* y, Py_ssize_t p0, Py_ssize_t p1) noexcept nogil:
    fc_inf_linear2d(x, y, p0, p1, s.i[1], s.i[2], s.i[3], s.i[4], <const Py_ssize_t*>s.c[0],
                    <const Py_ssize_t*>s.c[1], <const float*>s.c[2], <const float*>s.c[3],
                    <const Py_ssize_t*>s.c[4], <const Py_ssize_t*>s.c[5], <const float*>s.c[6],
                    <const float*>s.c[7])


cdef inline Py_ssize_t rows_of(const Py_ssize_t* shape, int nd) noexcept nogil:
    """Rows of a shape: the product of all but its last axis."""
    cdef Py_ssize_t n = 1
    cdef int d
    for d in range(nd - 1):
        n *= shape[d]
    return n


cdef void run_matmul(const Step* s, float** bases) noexcept nogil:
    """y[b] (m×n) = a[b] (m×k) · op(B[b]) for i[0] batches; B from src[1] or the constant c[0];
    i[4], i[5]: batch strides of a and B (0: shared); i[6]: B stored n×k (transposed)."""
    cdef const float* a = at(bases, s.src[0])
    cdef const float* b = <const float*>s.c[0] if s.c[0] != NULL else at(bases, s.src[1])
    cdef float* y = at(bases, s.dst)
    cdef const Py_ssize_t* i = s.i
    cdef Py_ssize_t q
    for q in range(i[0]):
        matmul_f32(False, <bint>i[6], a + q * i[4], b + q * i[5], y + q * i[1] * i[2], <int>i[1], <int>i[2],
                   <int>i[3], s.threads)


cdef int run_steps(const Step* steps, Py_ssize_t count, float** bases) noexcept nogil:
    """Run every step; returns the index of a step that failed (out of memory), else -1."""
    cdef Py_ssize_t k = 0
    while k < count:
        if run_step(&steps[k], bases) != 0:
            return <int>k
        k += span(&steps[k])
    return -1


cdef inline Py_ssize_t span(const Step* s) noexcept nogil:
    """Steps a step runs: a band chain its own and the i[0] steps after it, any other step 1."""
    return 1 + s.i[0] if s.op == OP_BAND_CHAIN else 1


# ---- band chains: expand 1×1 → depthwise → project 1×1 (MobileNet's inverted residual) -------
#
# Header step (i[0] = 3 steps follow, i[1] = depthwise output rows per band) followed by the three
# steps as the plan built them: a conv_pw_layout writing channel-minor, a conv_channel reading and
# writing channel-minor, a conv_pw_layout reading it. The chain runs them band by band of the
# depthwise output's rows, each band's expanded rows computed just before the depthwise reads
# them and projected right after, so the expanded activations (6× the block's channels) are used
# while in cache instead of streaming through memory three times. The plan builder forms a chain
# only from steps that ``inference/bands.is_chain`` accepts: the kernels here trust their layout.

cdef inline Py_ssize_t rows_from(const Step* d, Py_ssize_t oy) noexcept nogil:
    """First depthwise input row that output row ``oy`` reads (clipped to the image)."""
    return max(0, oy * d.i[9] - d.i[11])


cdef inline Py_ssize_t rows_until(const Step* d, Py_ssize_t oy_end) noexcept nogil:
    """Input rows the depthwise outputs before row ``oy_end`` need: [0, rows_until)."""
    if oy_end <= 0:
        return 0
    return min(d.i[3], (oy_end - 1) * d.i[9] - d.i[11] + (d.i[7] - 1) * d.i[13] + 1)


cdef void chain_expand(const Step* e, float** bases, Py_ssize_t n, Py_ssize_t r0, Py_ssize_t r1) noexcept nogil:
    """Rows [r0, r1) of image n's expanded (channel-minor) activations, with their epilogue."""
    if r1 > r0:
        pointwise_block(e, <const float*>e.c[0], at(bases, e.src[0]), <const float*>e.c[1], at(bases, e.dst),
                        at(bases, e.res), e.i[1], e.i[2] * e.i[3], e.i[4], <bint>e.i[24], <bint>e.i[25], n,
                        r0 * e.i[3], (r1 - r0) * e.i[3])


cdef void chain_band(const Step* d, const Step* p, float** bases, Py_ssize_t n, Py_ssize_t oy0,
                     Py_ssize_t oy1) noexcept nogil:
    """Depthwise output rows [oy0, oy1) of image n (bias, then activation), then their projection."""
    cdef const Py_ssize_t* i = d.i
    cdef Py_ssize_t Cp = i[2], Po = i[5] * i[6]
    cdef float* y = at(bases, d.dst) + n * Po * Cp
    channel_rows_f32(at(bases, d.src[0]) + n * i[3] * i[4] * Cp, <const float*>d.c[0], <const float*>d.c[1], y,
                     Cp, i[3], i[4], i[5], i[6], <int>i[7], <int>i[8], <int>i[9], <int>i[10], <int>i[11],
                     <int>i[12], <int>i[13], <int>i[14], oy0, oy1)
    if d.act != 0:
        fc_inf_act(y + oy0 * i[6] * Cp, NULL, y + oy0 * i[6] * Cp, (oy1 - oy0) * i[6] * Cp, d.act, d.a0, d.a1)
    pointwise_block(p, <const float*>p.c[0], at(bases, p.src[0]), <const float*>p.c[1], at(bases, p.dst),
                    at(bases, p.res), p.i[1], Po, p.i[4], <bint>p.i[24], <bint>p.i[25], n, oy0 * i[6],
                    (oy1 - oy0) * i[6])


cdef void chain_rows(const Step* h, float** bases, Py_ssize_t n, Py_ssize_t oy0, Py_ssize_t oy1,
                     Py_ssize_t done, Py_ssize_t limit) noexcept nogil:
    """Depthwise output rows [oy0, oy1) of image n band by band, expanding the input rows each band
    needs from ``done`` on but none from ``limit`` on (another part computed those)."""
    cdef const Step* d = h + 2
    cdef Py_ssize_t oy = oy0, ob, need
    while oy < oy1:
        ob = min(oy1, oy + h.i[1])
        need = min(rows_until(d, ob), limit)
        if need > done:
            chain_expand(h + 1, bases, n, done, need)
            done = need
        chain_band(d, h + 3, bases, n, oy, ob)
        oy = ob


cdef inline Py_ssize_t own_from(const Step* d, Py_ssize_t t, Py_ssize_t T) noexcept nogil:
    """First input row part t of T expands (its output rows' first input row; the image's end for
    t = T): parts own contiguous, disjoint row ranges."""
    if t >= T:
        return d.i[3]
    return 0 if t == 0 else rows_from(d, part(d.i[5], T, t))


cdef inline Py_ssize_t shared_until(const Step* d, Py_ssize_t t, Py_ssize_t T) noexcept nogil:
    """End of part t's own rows that the part before it reads too (expanded before the parts run)."""
    return max(own_from(d, t, T), min(rows_until(d, part(d.i[5], T, t)), own_from(d, t + 1, T)))


cdef void run_band_chain(const Step* h, float** bases) noexcept nogil:
    """A band chain (see above). Images go to threads whole when there are enough of them; else
    each image's output rows are cut into one part per thread, each part expanding only the input
    rows it owns: the rows two parts read are expanded first, on the calling thread, so no row is
    computed twice or read before it is written."""
    cdef const Step* d = h + 2
    cdef Py_ssize_t N = d.i[0], Ho = d.i[5], H = d.i[3], n, t, T = h.threads
    cdef bint split = T > 1 and N < T and Ho >= 2 * T
    if split:
        for t in range(1, T):  # the rows a part shares must lie in the next part's own rows
            if rows_until(d, part(Ho, T, t)) > own_from(d, t + 1, T):
                split = False
    if not split:
        if T <= 1 or N < 2:
            for n in range(N):
                chain_rows(h, bases, n, 0, Ho, 0, H)
        else:
            for n in prange(N, schedule='static', num_threads=team(T)):
                chain_rows(h, bases, n, 0, Ho, 0, H)
        return
    for n in range(N):
        for t in range(1, T):
            chain_expand(h + 1, bases, n, own_from(d, t, T), shared_until(d, t, T))
        for t in prange(T, schedule='static', num_threads=team(T)):
            chain_rows(h, bases, n, part(Ho, T, t), part(Ho, T, t + 1), shared_until(d, t, T),
                       own_from(d, t + 1, T))


cdef class Program:
    """A static list of steps (see the module docstring); built once, run many times."""

    cdef Step* steps
    cdef Py_ssize_t count, capacity
    cdef list keep          # the constants the steps point into
    cdef public list names  # a label per step (errors, profiling)

    def __cinit__(self):
        self.steps = NULL
        self.count = 0
        self.capacity = 0
        self.keep = []
        self.names = []

    def __dealloc__(self):
        free(self.steps)

    def __len__(self):
        return self.count

    def ops(self):
        """The operation name of every step."""
        names = {v: k for k, v in OPCODES.items()}
        return [names[self.steps[k].op] for k in range(self.count)]

    def add(self, str op, int threads, srcs, dst, work=None, ints=(), floats=(), consts=(), int act=0,
            double a0=0, double a1=0, res=None, str name=""):
        """Append a step: ``srcs``/``dst``/``work``/``res`` as (base, offset) pairs or None,
        ``ints``/``floats`` its parameters, ``consts`` contiguous arrays (float32, float64 or
        intp: the kernel reads their memory for the program's life) or None."""
        if op not in OPCODES:
            raise ValueError(f"Program.add: unknown operation {op!r}")
        if len(srcs) > MAX_SRC or len(ints) > NI or len(floats) > NF or len(consts) > NC:
            raise ValueError(f"Program.add: too many operands or parameters for {op!r}")
        cdef Step* grown
        if self.count == self.capacity:
            grown = <Step*>realloc(self.steps, max(16, 2 * self.capacity) * sizeof(Step))
            if grown == NULL:
                raise MemoryError()
            self.steps = grown
            self.capacity = max(16, 2 * self.capacity)
        cdef Step* s = &self.steps[self.count]
        memset(s, 0, sizeof(Step))
        s.op = OPCODES[op]
        s.threads = max(threads, 1)
        cdef int k
        for k in range(MAX_SRC):
            s.src[k] = make_ref(srcs[k] if k < len(srcs) else None)
        s.dst = make_ref(dst)
        s.work = make_ref(work)
        s.res = make_ref(res)
        s.act = act
        s.a0 = <float>a0
        s.a1 = <float>a1
        for k, v in enumerate(ints):
            s.i[k] = v
        for k, v in enumerate(floats):
            s.f[k] = v
        cdef object arr
        for k, arr in enumerate(consts):
            if arr is None:
                continue
            if not isinstance(arr, np.ndarray) or not arr.flags.c_contiguous or arr.dtype not in (
                    np.float32, np.float64, np.intp):
                raise TypeError(f"Program.add: constants of {op!r} must be contiguous float32, float64 "
                                f"or intp arrays, got {type(arr).__name__} {getattr(arr, 'dtype', '')}")
            s.c[k] = <const void*>cnp.PyArray_DATA(<cnp.ndarray>arr)
            self.keep.append(arr)
        self.count += 1
        self.names.append(name or op)


cdef Ref make_ref(object pair) except *:
    cdef Ref r
    if pair is None:
        r.base = -1
        r.off = 0
        return r
    base, off = pair
    if not 0 <= base < MAX_BASES or off < 0:
        raise ValueError(f"Program.add: bad operand location {pair!r}")
    r.base = base
    r.off = off
    return r


cdef int fill_bases(list arrays, float** out) except -1:
    if len(arrays) > MAX_BASES:
        raise ValueError(f"run: at most {MAX_BASES} buffers")
    cdef Py_ssize_t k
    for k, a in enumerate(arrays):
        if a is None:
            out[k] = NULL
            continue
        if not cnp.PyArray_Check(a) or cnp.PyArray_TYPE(<cnp.ndarray>a) != cnp.NPY_FLOAT32 \
                or not cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>a):
            raise TypeError("run: buffers must be C-contiguous float32 arrays")
        out[k] = <float*>cnp.PyArray_DATA(<cnp.ndarray>a)
    return 0


def run(Program program, list bases):
    """Run ``program`` on the buffers ``bases`` (C-contiguous float32: the arena, the inputs,
    the outputs, as the program numbers them) with the GIL released."""
    cdef float* ptrs[MAX_BASES]
    fill_bases(bases, ptrs)
    cdef int failed
    with nogil:
        failed = run_steps(program.steps, program.count, ptrs)
    if failed >= 0:
        raise MemoryError(f"inference: out of memory in step {failed} ({program.names[failed]})")


def run_jobs(list jobs_per_thread):
    """Run jobs, each a (program, buffers) pair: the jobs of ``jobs_per_thread[t]`` one after
    another on thread t, the threads at once in a ``prange`` (one thread: no parallel region).
    The data-parallel mode gives each thread its part of the batch in micro-batches, each with
    the thread's own arena."""
    cdef Py_ssize_t T = len(jobs_per_thread), t, j, total = 0
    if not 0 < T <= MAX_THREADS:
        raise ValueError("run_jobs: between 1 and 256 threads")
    for jobs in jobs_per_thread:
        total += len(jobs)
    cdef float** ptrs = <float**>malloc(max(total, 1) * MAX_BASES * sizeof(float*))
    cdef Step** steps = <Step**>malloc(max(total, 1) * sizeof(Step*))
    cdef Py_ssize_t* counts = <Py_ssize_t*>malloc(max(total, 1) * sizeof(Py_ssize_t))
    cdef Py_ssize_t* first = <Py_ssize_t*>malloc((T + 1) * sizeof(Py_ssize_t))
    cdef int* failed = <int*>malloc(max(total, 1) * sizeof(int))
    cdef Program p
    if ptrs == NULL or steps == NULL or counts == NULL or first == NULL or failed == NULL:
        free(ptrs); free(steps); free(counts); free(first); free(failed)
        raise MemoryError()
    try:
        j = 0
        for t in range(T):
            first[t] = j
            for p, bases in jobs_per_thread[t]:
                steps[j] = p.steps
                counts[j] = p.count
                fill_bases(bases, ptrs + j * MAX_BASES)
                failed[j] = -1
                j += 1
        first[T] = j
        with nogil:
            if T == 1:
                run_thread_jobs(steps, counts, ptrs, failed, 0, first[1])
            else:
                for t in prange(T, schedule='static', num_threads=team(T)):
                    run_thread_jobs(steps, counts, ptrs, failed, first[t], first[t + 1])
        j = 0
        for t in range(T):
            for p, _ in jobs_per_thread[t]:
                if failed[j] >= 0:
                    raise MemoryError(f"inference: out of memory in step {failed[j]} ({p.names[failed[j]]})")
                j += 1
    finally:
        free(ptrs); free(steps); free(counts); free(first); free(failed)


cdef void run_thread_jobs(Step** steps, Py_ssize_t* counts, float** ptrs, int* failed, Py_ssize_t j0,
                          Py_ssize_t j1) noexcept nogil:
    cdef Py_ssize_t j
    for j in range(j0, j1):
        failed[j] = run_steps(steps[j], counts[j], ptrs + j * MAX_BASES)
        if failed[j] >= 0:
            return


cdef inline double now() noexcept nogil:
    cdef timespec t
    clock_gettime(CLOCK_MONOTONIC, &t)
    return t.tv_sec + 1e-9 * t.tv_nsec


def run_timed(Program program, list bases):
    """``run``, returning the seconds each step took (a profile of the program)."""
    cdef float* ptrs[MAX_BASES]
    fill_bases(bases, ptrs)
    cdef Py_ssize_t k, count = program.count
    cdef double[::1] seconds = np.zeros(max(count, 1))
    cdef double t0
    cdef int failed = -1
    with nogil:
        k = 0
        while k < count:  # a band chain's time is its header's, its steps' 0
            t0 = now()
            if run_step(&program.steps[k], ptrs) != 0:
                failed = <int>k
                break
            seconds[k] = now() - t0
            k += span(&program.steps[k])
    if failed >= 0:
        raise MemoryError(f"inference: out of memory in step {failed} ({program.names[failed]})")
    return np.asarray(seconds)[:count]
