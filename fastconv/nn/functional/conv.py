"""2-D convolution and transposed convolution (NCHW) as Functions over the im2col/GEMM kernels.

Validation happens here, before any kernel runs; the kernels in ``fastconv._kernels.conv``
trust what they get. Both ops share the same three kernels: the forward GEMM of conv2d is the
backward-data GEMM of conv_transpose2d and vice versa. Backward recomputes the column buffer
from the saved input instead of keeping it (see docs/design.md, "Convolution: parallel scheme").
"""
from __future__ import annotations

import functools
from typing import NamedTuple, Optional, Tuple, Union

import numpy as np

from ..._kernels import _omp
from ..._kernels import conv as _conv
from ..._kernels import direct as _direct
from ..._kernels import winograd as _winograd
from ..._kernels.gemm import packed_sgemm_available
from ..._validation import check_ndim, check_same_dtype, int_pair
from ..._config import run_with_kernel_blas
from ...autograd.function import Function, shape_nbytes
from ._args import as_float_tensor
from ...tensor import Tensor

IntPair = Union[int, Tuple[int, int]]

# Largest column buffer per thread, in elements: bounds memory for large images and keeps the
# buffer near the caches; row blocks of the output are processed one at a time beyond it.
COLUMN_BLOCK_ELEMENTS = 1 << 18
# Below this many flops per thread a parallel region costs more than it saves: run serially.
MIN_FLOPS_PER_THREAD = 1e6
# Winograd F(2×2, 3×3) path (see DESIGN.md): None = automatic (``_use_winograd``), True = always
# when the configuration allows it (3×3, stride 1, dilation 1, groups 1), False = never. Private
# switch for tests and benchmarks.
_WINOGRAD: Optional[bool] = None
# Automatic rule (the same at any thread count): Winograd when both channel counts are at least
# WINOGRAD_MIN_CHANNELS, the call has at least WINOGRAD_MIN_TILES 2×2 tiles in all (the filter
# transforms and per-call buffers cost ∝ C·K and need enough tiles to pay off), and C·K is at least
# WINOGRAD_NARROW_CHANNELS unless Ho·Wo ≥ WINOGRAD_NARROW_MIN_PIXELS (with 16 channels the GEMMs
# are too shallow to repay the transforms except on large images). Measured fwd+bwd, x, w, b
# requiring grad, Winograd / im2col time at 1 | 2 threads (grid: 7, 10, 14, 28, 56 px; C, K in
# 16..256; batch 1, 8, 32): 1×{64..256}×{7,10}→{64..256} (16–25 tiles) 1.01–1.93 | 1.34–2.43,
# 1×32×14→64 1.06 | 1.22, 1×128×14→256 1.10 | 1.06 (49 tiles) lose; 8×{32..256}×7→{32..256}
# (128 tiles) 0.67–0.96 | 0.45–0.96; 14×14 batch 8 C=K=32 0.82 | 0.86, C=64 0.68 | 0.73;
# 28×28 0.54–0.90 | 0.62–1.03; 56×56 0.48–0.77 | 0.52–0.77; 64×32×28→64 0.59 | 0.70. 16 channels:
# C=16 K=32 loses below 56×56 (8×16×14→32 1.07 | 1.31, 1×16×28→32 1.22 | 1.21) and wins at 56×56
# (0.89–1.00 | 0.92–0.94); C=K=16 0.83–1.03 | 0.78–1.15. Against the oracle this rule costs 0.3 %
# | 4 % of the grid's total time (the previous rule: 6 % | 10 %). Re-checked with the AVX2 packed
# sgemm (Zen 3, no AVX-512; 1 | 2 threads), rule unchanged: Winograd 8×32×14→32 0.79 | 0.92,
# 64×32×28→64 0.71 | 0.83, 8×64×7→64 0.70 | 0.79, 32×128×14→256 0.53 | 0.61, 8×16×56→16 0.88 | 0.86
# win; 8×16×14→32 1.18 | 1.15, 1×16×28→32 1.06 | 1.04, 1×32×14→64 1.06 | 1.09, 1×128×14→256
# 0.98 | 1.06 lose or tie. C·K = 512 below 3000 px is mixed: C = 16, K = 32 on 14–28 px, batch
# 8–64, 0.84–0.98 | 0.91–1.14; 32×32×28→16 0.70 | 0.84 (left to im2col: no threshold on C·K
# separates these at both thread counts).
WINOGRAD_MIN_CHANNELS = 16
WINOGRAD_MIN_TILES = 64
WINOGRAD_NARROW_CHANNELS = 1024
WINOGRAD_NARROW_MIN_PIXELS = 3000
# Shallow-GEMM path (docs/design.md): for groups 1 and a small depth C·kh·kw the GEMMs after im2col
# have an inner dimension (forward, dW) or a row count (dX) equal to that depth, where a GEMM's
# packing and tile edges dominate; the kernels' own register-blocked loops replace it there.
# Same column buffers, so saved and workspace bytes are those of the im2col path (plus per-thread
# bias-gradient partials). None = automatic (``_use_small_depth``), True = always when groups is 1,
# False = never. Rule: depth ≤ SMALL_DEPTH; with float32 on BLAS (neither AVX-512 nor AVX2+FMA, so
# no packed sgemm) also depth ≤ SMALL_DEPTH_NARROW with K ≤ SMALL_NARROW_K.
# Measured fwd+bwd (shallow / GEMM time, same process, 1 and 2 threads) against the packed AVX-512
# sgemm: depth 9: 64×1×28→32 0.65/0.70, 32×1×28→16 0.61/0.61, 8×1×64→64 0.88/0.69,
# 16×1×32→128 0.83/0.69, 8×1×32→256 0.75/0.71, 1×1×28→32 0.79/0.79; depth 27 loses now:
# 16×3×32→32 1.24/1.29, 8×3×64→64 1.45/1.26, 8×3×32→128 1.47/1.56, 64×3×32→64 1.27/1.36, batch 1
# 1×3×32→16 1.03/1.04, K = 8 0.94/0.98. Against OpenBLAS (earlier): depth 27 with K ≤ 32 won
# (1×3×32→16 0.87, 16×3×32→32 0.83–0.91, 8×3×64→32 0.92, 8×3×32→8 0.64), K ≥ 64 did not (0.98–1.06).
# Against the AVX2 packed sgemm (Zen 3, no AVX-512; 1 | 2 threads) the rule holds: depth 27 loses
# or ties, 8×3×32→16 1.41 | 1.02, →32 1.34 | 1.22, →64 1.31 | 1.08, 16×3×32→32 1.19 | 1.10,
# 64×3×32→64 1.63 | 1.27, 1×3×32→16 1.11 | 0.98, K = 8 (1×3×32→8) 0.97 | 0.96; depth 18
# (8×2×32→32) 1.23 | 1.11; depth 9 wins (64×1×28→32 0.85 | 0.83).
_SMALL_DEPTH: Optional[bool] = None
_PACKED_SGEMM = packed_sgemm_available()
SMALL_DEPTH = 9
SMALL_DEPTH_NARROW = 27
SMALL_NARROW_K = 32
# Implicit-GEMM ("direct") path (docs/design.md, _kernels/direct.pyx): stride 1, groups 1, shallow
# depth; the shallow loops read rows of shifted or zero-padded copies of the image in place, so
# there is no column buffer, no col2im, and dX is a direct convolution of padded dY. None = automatic
# (``_use_direct``), True = always when eligible, False = never; forcing ``_SMALL_DEPTH`` also
# turns the automatic choice off. Rule: C ≥ DIRECT_MIN_CHANNELS, C·kh·kw ≤ DIRECT_MAX_DEPTH,
# K ≤ DIRECT_MAX_K, and at least as many images as threads when the call runs parallel (images
# are its only parallel axis). Measured fwd+bwd through conv2d, 3×3 pad 1, direct / im2col time
# (Zen 3, AVX2; Winograd off; 1 thread unless said): C = 2..8, K ≤ 32: 32×32 px 0.62–0.87
# (batch 1 and 8), 16×16 0.72–0.80, 8×8 0.87–1.15; at 2 threads 0.56–0.99 (batch 8, 64). K = 64
# loses on small images (8×8 1.03–1.42, 16×16 1.04–1.08) and wins only at 32×32 (0.85–1.08).
# C = 1 loses to the shallow im2col path (1.04–1.68): dX reads each vector of dY for one FMA per
# input channel, where im2col's dX (Wᵀ·dY, then col2im) reuses it kh·kw times.
_DIRECT: Optional[bool] = None
DIRECT_MIN_CHANNELS = 2
DIRECT_MAX_DEPTH = 72
DIRECT_MAX_K = 32
# Elements of the transformed tiles of one block (V and M together) per thread: like
# COLUMN_BLOCK_ELEMENTS, bounds memory and keeps a block near the caches. Measured per pass
# (64×32×28→64, 32×128×14→256; budgets 2^17..2^20): 2^19 best or within noise at 1 thread and
# best at 2 threads; 2^17–2^18 lose 5–25 % (more blocks, shorter loops, GEMMs narrower than the
# L2 would allow), 2^20 loses up to 20 % at 2 threads (both threads stream through L3).
WINOGRAD_BLOCK_ELEMENTS = 1 << 19
# Output-channel-vectorized direct forward (docs/design.md, _kernels/_ocvec.h): for the im2col
# path's convolutions, float32 on AVX-512 or AVX2+FMA, the forward runs register tiles of 4–6
# output pixels × one block of output channels (64 or 32 on AVX-512, 16 on AVX2) over the taps,
# with no column buffer; its dW the same way over a transposed dY (1.12–1.60× faster than
# im2col's), its dX at stride 1 as the same forward on dY (_ocvec_dx_as_conv), else im2col's.
# Measured forward speedups over im2col + GEMM on
# Zen 4, 1 thread (2 threads alike): 8×3×224→64 11×11/4 1.44–1.60 (batch 1: 1.43), 7×7/2 1.49–1.55,
# 3×3/2 with C = 8..512: 1.16–1.92 (16×64×56→128 1.29, 64×32×8→64 1.91), 5×5/1 with C = 32..256
# 1.38–1.72. It loses where a channel block is partly used (K = 32 on AVX-512: 0.65–0.78, K = 96:
# 0.95), for 1×1 filters (0.87–0.97: a plain GEMM), for few taps (C·kh·kw = 27: 0.65–0.92, its
# stores of y outweigh the multiply-adds; stride 1 with 75 taps 0.90, where im2col is a cheap
# copy), and for 4608 taps and K = 512 at 14×14 (0.64–0.83: each block's weights stream from L3).
# The AVX2 loops (capped on the same CPU) beat even the AVX-512 im2col + GEMM on these shapes,
# 1.02–1.46. For K a multiple of 32 but not of 64 the AVX-512 loops take blocks of 32 channels
# and tiles of 8–12 pixels, which win from 27 taps on, at stride 1 too: 32×32×28→32 3×3/2 1.58–1.66,
# 16×3×64→32 3×3/2 1.23–1.31, 8×3×64→32 5×5/1 1.25–1.35, 16×16×64→32 5×5 1.40, 8×3×224→96 11×11/4
# 1.25–1.26 (64-channel blocks at K = 64 are 1.02–1.2× faster still, but lose below ~64 taps).
# So: K a multiple of the block, kh·kw > 1, OCVEC_MIN_TAPS (stride 1: OCVEC_MIN_TAPS_STRIDE1;
# 32-channel blocks: OCVEC_MIN_TAPS_WIDE) ≤ C·kh·kw ≤ OCVEC_MAX_TAPS, row tiles ≤
# OCVEC_MAX_TILE_WASTE × the row.
_OCVEC: Optional[bool] = None  # tests force it on/off; None: the rule
OCVEC_MIN_TAPS = 64
OCVEC_MIN_TAPS_STRIDE1 = 256
OCVEC_MIN_TAPS_WIDE = 27
OCVEC_MAX_TAPS = 4096
OCVEC_MAX_TILE_WASTE = 1.34


class ConvGeometry(NamedTuple):
    """Everything the kernels need besides the arrays (padding is top/left; the output size
    already accounts for any extra bottom/right padding)."""

    kh: int
    kw: int
    sh: int
    sw: int
    ph: int
    pw: int
    dh: int
    dw: int
    groups: int
    out_h: int
    out_w: int


# ---- shared planning ---------------------------------------------------------------------------

_PLAN_CACHE_SIZE = 512


def _memoized_plan(plan):
    """Memoize a planning function on its arguments, the thread count and the tunables it reads.

    Plans are pure functions of shapes and these module settings, and a training loop asks for
    the same few every step: computing one in Python costs several µs per kernel call, which
    matters at batch 1. Changing a tunable (tests do) or the thread count changes the key."""
    cache = {}

    @functools.wraps(plan)
    def planned(*args, **kwargs):
        key = (args, tuple(kwargs.items()), _omp.get_max_threads(), MIN_FLOPS_PER_THREAD,
               COLUMN_BLOCK_ELEMENTS, WINOGRAD_BLOCK_ELEMENTS)
        try:
            return cache[key]
        except KeyError:
            pass
        except TypeError:  # unhashable arguments (shapes given as lists): plan without the cache
            return plan(*args, **kwargs)
        if len(cache) >= _PLAN_CACHE_SIZE:
            cache.clear()
        result = cache[key] = plan(*args, **kwargs)
        return result

    return planned


def _row_block(rows_total: int, elements_per_row: int) -> int:
    """Output rows per column buffer: all of them unless that exceeds the element budget."""
    return max(1, min(rows_total, COLUMN_BLOCK_ELEMENTS // max(1, elements_per_row)))


def _forward_plan(n: int, out_h: int, elements_per_row: int, threads: int) -> Tuple[int, bool]:
    """(rows per block, parallel over items?) for the forward GEMM pass.

    Items are (image, row block) pairs. With fewer images than threads, rows are split further
    so every thread gets an item; a single thread runs the items serially.
    """
    block = _row_block(out_h, elements_per_row)
    if threads <= 1:
        return block, False
    blocks = -(-out_h // block)
    if n * blocks < threads or (n * blocks) % threads:
        # split rows so the item count is a multiple of the thread count (load balance)
        per_image = max(blocks, -(-threads // max(n, 1)))
        while (n * per_image) % threads and per_image < out_h:
            per_image += 1
        block = max(1, -(-out_h // per_image))
    blocks = -(-out_h // block)
    return block, n * blocks >= threads


def _threads_for(flops: float) -> int:
    """OpenMP threads worth using for a kernel call of ``flops`` multiply-adds×2."""
    threads = _omp.get_max_threads()
    if threads > 1 and flops < MIN_FLOPS_PER_THREAD * threads:
        return max(1, int(flops // MIN_FLOPS_PER_THREAD))
    return threads


@_memoized_plan
def _forward_setup(image_shape, out_channels: int, g: "ConvGeometry"):
    """(threads, rows per block, parallel over items?, column elements per output row)."""
    n, c = image_shape[0], image_shape[1]
    row_elems = c * g.kh * g.kw * g.out_w
    threads = _threads_for(2.0 * n * out_channels * row_elems * g.out_h / g.groups)
    block, parallel = _forward_plan(n, g.out_h, row_elems, threads)
    return threads, block, parallel, row_elems


class BackwardPlan(NamedTuple):
    threads: int          # OpenMP threads for the call
    parallel: bool        # images in a prange (else serially, im2col/col2im over channels)
    buffers: int          # column buffers (one per thread when parallel)
    block_rows: int       # output rows per column buffer
    row_elements: int     # column-buffer elements per output row


@_memoized_plan
def _backward_plan(image_shape, out_channels: int, g: "ConvGeometry") -> BackwardPlan:
    n, c = image_shape[0], image_shape[1]
    row_elems = c * g.kh * g.kw * g.out_w
    threads = _threads_for(2.0 * n * out_channels * row_elems * g.out_h / g.groups)
    parallel = threads > 1 and n >= threads
    return BackwardPlan(threads, parallel, threads if parallel else 1, _row_block(g.out_h, row_elems),
                        row_elems)


def _work_buffer(threads: int, elements: int, dtype) -> np.ndarray:
    return np.empty((max(threads, 1), max(elements, 1)), dtype=dtype)


_DUMMIES: dict = {}


def _dummy(dtype, ndim: int) -> np.ndarray:
    """A zero-size array standing in for an argument a kernel will not read (one per dtype and
    rank, made read-only: nothing can be written into it anyway)."""
    key = (dtype, ndim)
    array = _DUMMIES.get(key)
    if array is None:
        array = _DUMMIES[key] = np.empty((0,) * ndim, dtype=dtype)
    return array


def _use_small_depth(image_shape, out_channels: int, g: ConvGeometry) -> bool:
    """Whether conv2d's im2col path uses the shallow GEMM loops instead of a GEMM: groups 1 and
    depth C·kh·kw ≤ SMALL_DEPTH, or (when float32 products run on BLAS) ≤ SMALL_DEPTH_NARROW
    with K ≤ SMALL_NARROW_K (unless forced by ``_SMALL_DEPTH``)."""
    if _SMALL_DEPTH is False or g.groups != 1:
        return False
    depth = image_shape[1] * g.kh * g.kw
    return (bool(_SMALL_DEPTH) or depth <= SMALL_DEPTH
            or (not _PACKED_SGEMM and depth <= SMALL_DEPTH_NARROW and out_channels <= SMALL_NARROW_K))


def _conv_forward_kernel(x: np.ndarray, w2: np.ndarray, bias: Optional[np.ndarray],
                         out_shape: Tuple[int, int, int, int], g: ConvGeometry,
                         small: bool = False) -> np.ndarray:
    """y = conv2d(x, w2) (+ bias) with w2 the weight as a (K, C/groups·kh·kw) matrix
    (``small``: groups 1, shallow GEMM loops instead of BLAS)."""
    y = np.empty(out_shape, dtype=x.dtype)
    threads, block, parallel, row_elems = _forward_setup(x.shape, out_shape[1], g)
    work = _work_buffer(threads if parallel else 1, row_elems * block, x.dtype)
    has_bias = bias is not None
    run_with_kernel_blas(_conv.conv_forward, x, w2, bias if has_bias else _dummy(x.dtype, 1), has_bias,
         y, work, g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, g.dh, g.dw, g.groups, block, parallel, threads,
         small)
    return y


def _conv_backward_kernel(x: Optional[np.ndarray], w2: Optional[np.ndarray], dy: np.ndarray,
                          image_shape: Tuple[int, int, int, int], weight_matrix_shape: Tuple[int, int],
                          g: ConvGeometry, need_dx: bool, need_dw: bool,
                          dx_init: Optional[np.ndarray] = None, small: bool = False,
                          need_db: bool = False):
    """(dx, dw2, db) of y = conv2d(x, w2) given dY, w2 being the (K, C/groups·kh·kw) weight matrix.

    Either gradient may be skipped (returned as None): x is read only for dw2, w2 only for dx.
    ``dx_init`` (per channel of dx) is added to dx: conv_transpose2d's bias. db (dY summed per
    channel) is fused into the dW pass when ``small``, ``need_dw`` and ``need_db``; else None.
    """
    dtype = dy.dtype
    n, c, h, w = image_shape
    threads, parallel, used, block, row_elems = _backward_plan(image_shape, dy.shape[1], g)
    dx = np.empty(image_shape, dtype=dtype) if need_dx else _dummy(dtype, 4)
    dw_parts = (np.zeros((used, weight_matrix_shape[0] * weight_matrix_shape[1]), dtype=dtype)
                if need_dw else _dummy(dtype, 2))
    work = _work_buffer(used, row_elems * block, dtype) if need_dw else _dummy(dtype, 2)
    dwork = _work_buffer(used, row_elems * block, dtype) if need_dx else _dummy(dtype, 2)
    fuse_db = small and need_dw and need_db
    db_parts = np.zeros((used, dy.shape[1]), dtype=dtype) if fuse_db else _dummy(dtype, 2)
    has_init = dx_init is not None
    run_with_kernel_blas(_conv.conv_backward, x if need_dw else _dummy(dtype, 4),
         w2 if need_dx else _dummy(dtype, 2), dy, dx, dw_parts, db_parts, fuse_db,
         dx_init if has_init else _dummy(dtype, 1), has_init, work, dwork,
         need_dx, need_dw, c, h, w, g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, g.dh, g.dw, g.groups, block,
         parallel, threads, small)
    dw2 = None
    if need_dw:
        dw2 = (dw_parts[0] if used == 1 else dw_parts.sum(axis=0)).reshape(weight_matrix_shape)
    db = (db_parts[0] if used == 1 else db_parts.sum(axis=0)) if fuse_db else None
    return (dx if need_dx else None), dw2, db


def _backward_workspace(image_shape, out_channels: int, g: ConvGeometry, itemsize: int) -> int:
    """Bytes of the two column buffers (im2col and Wᵀ·dY) of one backward kernel call."""
    plan = _backward_plan(image_shape, out_channels, g)
    return 2 * plan.buffers * plan.row_elements * plan.block_rows * itemsize


# ---- implicit GEMM (direct) ---------------------------------------------------------------------

def _direct_eligible(image_shape, g: ConvGeometry) -> bool:
    """Stride 1, groups 1, and every padding ≤ dilation·(kernel − 1) (so dX is a convolution of
    dY padded by the complement)."""
    if (g.sh, g.sw, g.groups) != (1, 1, 1):
        return False
    reach_h, reach_w = g.dh * (g.kh - 1), g.dw * (g.kw - 1)
    bottom = g.out_h + reach_h - image_shape[2] - g.ph
    right = g.out_w + reach_w - image_shape[3] - g.pw
    return max(g.ph, bottom) <= reach_h and max(g.pw, right) <= reach_w


def _use_direct(image_shape, out_channels: int, g: ConvGeometry) -> bool:
    """Whether conv2d takes the implicit-GEMM path: eligible and (unless forced by ``_DIRECT``)
    the rule above, with no shallow path forced."""
    if _DIRECT is False or not _direct_eligible(image_shape, g):
        return False
    if _DIRECT:
        return True
    n, channels = image_shape[0], image_shape[1]
    if (_SMALL_DEPTH or channels < DIRECT_MIN_CHANNELS or out_channels > DIRECT_MAX_K
            or channels * g.kh * g.kw > DIRECT_MAX_DEPTH):
        return False
    threads = _direct_plan(image_shape, out_channels, g).threads
    return threads == 1 or n >= threads


class DirectPlan(NamedTuple):
    weight_size: int      # elements of the weight (K·C·kh·kw)
    threads: int          # OpenMP threads for the call
    parallel: bool        # images in a prange (else one after another)
    buffers: int          # scratch rows and dW/db partials (one per thread when parallel)
    forward: int          # forward scratch elements per buffer
    backward: int         # backward scratch elements per buffer
    filter: int           # elements of the dX pass's rotated filter


@_memoized_plan
def _direct_plan(image_shape, out_channels: int, g: ConvGeometry, need_dx: bool = True,
                 need_dw: bool = True) -> DirectPlan:
    n, c, h, w = image_shape
    threads = _threads_for(2.0 * n * out_channels * c * g.kh * g.kw * g.out_h * g.out_w)
    parallel = threads > 1 and n >= threads
    fwd, bwd, filt = _direct.workspace_elements(c, h, w, out_channels, g.kh, g.kw, g.dh, g.dw,
                                                g.out_h, g.out_w, need_dx, need_dw)
    return DirectPlan(out_channels * c * g.kh * g.kw, threads, parallel, threads if parallel else 1,
                      fwd, bwd, filt)


def _direct_forward_kernel(x: np.ndarray, w2: np.ndarray, bias: Optional[np.ndarray], out_shape,
                           g: ConvGeometry, plan: "DirectPlan") -> np.ndarray:
    """y = conv2d(x, w2) (+ bias) on the implicit-GEMM path (w2: the (K, C·kh·kw) weight); the
    kernel allocates y and its scratch."""
    return _direct.direct_forward(x, w2, bias, g.kh, g.kw, g.ph, g.pw, g.dh, g.dw, out_shape[2],
                                  out_shape[3], plan.parallel, plan.threads)


def _direct_backward_kernel(x, w2, dy: np.ndarray, image_shape, weight_shape, g: ConvGeometry,
                            need_dx: bool, need_dw: bool, need_db: bool, plan: "DirectPlan"):
    """(dx, dw, db) on the implicit-GEMM path in one kernel call (which allocates them, its
    scratch and, with several threads, the dW/db partials); skipped ones are None (db is
    computed only with dw). x is read only for dw, w2 only for dx. ``plan`` is the forward's
    (both gradients): a call needing one gets its own."""
    if not (need_dx and need_dw):
        plan = _direct_plan(image_shape, dy.shape[1], g, need_dx, need_dw)
    _, c, h, w = image_shape
    return _direct.direct_backward(x, w2, dy, c, h, w, g.kh, g.kw, g.ph, g.pw, g.dh, g.dw,
                                   need_dx, need_dw, need_db, plan.parallel, plan.threads)


def _direct_backward_workspace(image_shape, weight_shape, g: ConvGeometry, itemsize: int) -> int:
    """Bytes of the backward call beyond its gradients: scratch, rotated filter and (with
    several threads) the dW/db partials."""
    plan = _direct_plan(image_shape, weight_shape[0], g)
    partials = plan.buffers * (weight_shape[0] + plan.weight_size) if plan.buffers > 1 else 0
    return (plan.buffers * plan.backward + plan.filter + partials) * itemsize


# ---- output-channel-vectorized path ---------------------------------------------------------------

def _use_ocvec(image_shape, out_channels: int, g: ConvGeometry) -> bool:
    """Whether conv2d's im2col-path forward runs the output-channel-vectorized loops instead
    (float32 only: the caller checks the dtype); the rule's measurements are next to
    OCVEC_MAX_TAPS."""
    if _OCVEC is False or g.groups != 1 or not _direct.ocvec_available():
        return False
    if _OCVEC:
        return True
    block, tile = _direct.ocvec_block(out_channels), _direct.ocvec_tile(out_channels, g.out_w)
    tiles = -(-g.out_w // tile) * tile
    taps = image_shape[1] * g.kh * g.kw
    if block == 32:  # AVX-512 blocks of 2 vectors, tiles of 8–12 pixels
        min_taps = OCVEC_MIN_TAPS_WIDE
    else:
        min_taps = OCVEC_MIN_TAPS_STRIDE1 if g.sh == 1 and g.sw == 1 else OCVEC_MIN_TAPS
    return (out_channels % block == 0 and g.kh * g.kw > 1 and min_taps <= taps <= OCVEC_MAX_TAPS
            and tiles <= OCVEC_MAX_TILE_WASTE * g.out_w)


def _ocvec_threads(image_shape, out_channels: int, g: ConvGeometry) -> int:
    n, c = image_shape[0], image_shape[1]
    return _threads_for(2.0 * n * out_channels * c * g.kh * g.kw * g.out_h * g.out_w)


def _ocvec_forward_kernel(x: np.ndarray, w2: np.ndarray, bias: Optional[np.ndarray], out_shape,
                          g: ConvGeometry) -> np.ndarray:
    """y = conv2d(x, w2) (+ bias) for float32 by the output-channel-vectorized loops (w2: the
    (K, C·kh·kw) weight); the kernel allocates y and its scratch."""
    return _direct.ocvec_forward(x, w2, bias, g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, g.dh, g.dw,
                                 out_shape[2], out_shape[3], _ocvec_threads(x.shape, out_shape[1], g))


def _ocvec_weight_grad_kernel(x: np.ndarray, dy: np.ndarray, g: ConvGeometry) -> np.ndarray:
    """dW (K, C, kh, kw) of a float32 conv2d by the output-channel-vectorized loops (allocated
    in the weight's shape, so the engine keeps it as .grad without a copy)."""
    return _direct.ocvec_weight_grad(x, dy, g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, g.dh, g.dw,
                                     _ocvec_threads(x.shape, dy.shape[1], g))


def _ocvec_dx_as_conv(image_shape, out_channels: int, g: ConvGeometry) -> bool:
    """Whether the ocvec path's dX runs as the vectorized forward of dY with the rotated,
    transposed filter: when dX is such a convolution at all (``_direct_eligible``: stride 1,
    every padding ≤ dilation·(kernel − 1)) and C is a multiple of the channel block dX's loops
    take. Measured dX speedups over im2col's (Zen 4, 1 thread): C = 64 (block 64) 1.52, C = 32
    (block 32) 1.18; C = 16 in blocks of 32 loses (0.71)."""
    block = _direct.ocvec_block(image_shape[1])
    return _direct_eligible(image_shape, g) and block > 0 and image_shape[1] % block == 0


def _ocvec_dx_kernel(weight: np.ndarray, dy: np.ndarray, image_shape, g: ConvGeometry) -> np.ndarray:
    """dX of a stride-1 float32 conv2d as the vectorized forward of dY (K channels in, C out)
    with the filter transposed and rotated by 180°, top/left padding d·(k − 1) − p."""
    k, c, kh, kw = weight.shape
    w_rot = np.ascontiguousarray(weight.transpose(1, 0, 2, 3)[:, :, ::-1, ::-1]).reshape(c, k * kh * kw)
    return _direct.ocvec_forward(dy, w_rot, None, kh, kw, 1, 1, g.dh * (kh - 1) - g.ph,
                                 g.dw * (kw - 1) - g.pw, g.dh, g.dw, image_shape[2], image_shape[3],
                                 _ocvec_threads(image_shape, k, g))


def _ocvec_backward_workspace(image_shape, out_channels: int, g: ConvGeometry, itemsize: int) -> int:
    """Transient bytes of the ocvec path's backward: its dX pass (im2col's Wᵀ·dY column
    buffers, or the rotated filter and the vectorized forward's scratch) or its dW pass
    (padded image, transposed dY and partials per thread), which run one after the other."""
    if _ocvec_dx_as_conv(image_shape, out_channels, g):
        n, c, h, w = image_shape
        dx_pass = itemsize * (c * out_channels * g.kh * g.kw + _direct.ocvec_workspace_elements(
            n, out_channels, c, g.kh, g.kw, 1, 1, g.dh, g.dw, h, w,
            _ocvec_threads(image_shape, out_channels, g)))
    else:
        dx_pass = _backward_workspace(image_shape, out_channels, g, itemsize) // 2
    dw_pass = itemsize * _direct.ocvec_weight_grad_elements(
        image_shape[0], image_shape[1], out_channels, g.kh, g.kw, g.sh, g.sw, g.dh, g.dw,
        g.out_h, g.out_w, _ocvec_threads(image_shape, out_channels, g))
    return max(dx_pass, dw_pass)


# ---- Winograd F(2×2, 3×3) ------------------------------------------------------------------------

def _winograd_eligible(g: ConvGeometry) -> bool:
    """3×3, stride 1, dilation 1, groups 1: the configurations the Winograd kernels compute."""
    return (g.kh, g.kw, g.sh, g.sw, g.dh, g.dw, g.groups) == (3, 3, 1, 1, 1, 1, 1)


def _use_winograd(image_shape, weight_shape, g: ConvGeometry) -> bool:
    """Whether conv2d takes the Winograd path: eligible, and (unless forced by ``_WINOGRAD``)
    C, K ≥ WINOGRAD_MIN_CHANNELS, N·tiles ≥ WINOGRAD_MIN_TILES and C·K ≥ WINOGRAD_NARROW_CHANNELS
    or Ho·Wo ≥ WINOGRAD_NARROW_MIN_PIXELS."""
    if _WINOGRAD is False or not _winograd_eligible(g):
        return False
    if _WINOGRAD:
        return True
    channels, kernels = image_shape[1], weight_shape[0]
    tiles = image_shape[0] * ((g.out_h + 1) // 2) * ((g.out_w + 1) // 2)
    return (min(channels, kernels) >= WINOGRAD_MIN_CHANNELS
            and tiles >= WINOGRAD_MIN_TILES
            and (channels * kernels >= WINOGRAD_NARROW_CHANNELS
                 or g.out_h * g.out_w >= WINOGRAD_NARROW_MIN_PIXELS))


class WinogradPlan(NamedTuple):
    threads: int          # OpenMP threads for the call
    parallel: bool        # tile blocks in a prange (else one after another)
    buffers: int          # V/M buffer pairs (one per thread when parallel)
    block_tiles: int      # tiles per block
    panels: bool          # sgemm panel layouts (float32 on AVX-512 or AVX2+FMA)
    u_elements: int       # elements of the transformed filter
    v_elements: int       # elements of one V buffer (with its scratch)
    m_elements: int       # elements of one M buffer (with its scratch)


@_memoized_plan
def _winograd_plan(n: int, c_in: int, c_out: int, out_h: int, out_w: int, itemsize: int,
                   weight_grad: bool = False) -> WinogradPlan:
    """Plan of one Winograd pass over n images: c_in channels in, c_out × out_h × out_w out.

    Blocks hold at most WINOGRAD_BLOCK_ELEMENTS transformed elements (16·(c_in + c_out) per
    tile). They are whole tile rows when a row fits (the transforms then see no partial rows), as
    many as fit or fewer when that fills the 32-tile sgemm panels better (for 14 tiles a row, 9
    rows = 126 tiles = 4 panels less 2 columns); else a multiple of 32 tiles. Calls with few tiles
    get at least 4 blocks per thread (of at least 32 tiles). With several threads
    there are at least as many blocks as threads and, when there are few, a multiple of them.
    All passes use the sgemm panel layouts for float32 when the CPU has AVX-512 or AVX2+FMA (the
    weight gradient's own: ``weight_grad_elements``)."""
    tiles_w, tiles_h = (out_w + 1) // 2, (out_h + 1) // 2
    tiles, rows_total = n * tiles_h * tiles_w, n * tiles_h
    threads = _threads_for(2.0 * n * c_out * c_in * 9 * out_h * out_w)
    parallel = threads > 1 and tiles > 1
    max_tiles = max(1, WINOGRAD_BLOCK_ELEMENTS // (16 * (c_in + c_out)))
    # at least 4 blocks per thread when that leaves 32 tiles: small calls get small, reused
    # buffers (a fresh ~1 MB buffer per call costs page faults: 32×32×7×7→32 ran 2.4× slower)
    max_tiles = min(max_tiles, max(32, tiles // (4 * threads)))
    if tiles_w <= max_tiles:
        r_max = min(max_tiles // tiles_w, -(-rows_total // threads) if parallel else rows_total)

        def fill(r):  # fraction of the computed panel columns that are real tiles
            return r * tiles_w / (-(-r * tiles_w // 32) * 32)

        rows = max(range(max(1, (r_max + 1) // 2), r_max + 1), key=lambda r: (round(fill(r), 2), r))
        blocks = -(-rows_total // rows)
        if parallel and blocks < 4 * threads and blocks % threads:
            rows = -(-rows_total // (-(-blocks // threads) * threads))
        block = rows * tiles_w
    else:
        block = max_tiles - max_tiles % 32 if max_tiles >= 32 else max_tiles
        if parallel:
            block = min(block, -(-tiles // threads))
    panels = _winograd.panel_layout(itemsize == 4)
    if weight_grad:
        v, m = (_winograd.weight_grad_elements(c_in, c_out, out_h, out_w, block) if panels
                else _winograd.work_elements(c_in, c_out, out_h, out_w, block, False))
        return WinogradPlan(threads, parallel, threads if parallel else 1, block, panels, 0, v, m)
    v, m = _winograd.work_elements(c_in, c_out, out_h, out_w, block, panels)
    return WinogradPlan(threads, parallel, threads if parallel else 1, block, panels,
                        _winograd.filter_elements(c_in, c_out, panels), v, m)


def _winograd_pass_bytes(plan: WinogradPlan, itemsize: int) -> int:
    """Transient bytes of a forward pass: the transformed filter and the V/M buffers."""
    return (plan.u_elements + plan.buffers * (plan.v_elements + plan.m_elements)) * itemsize


def _winograd_forward_kernel(x: np.ndarray, weight: np.ndarray, bias: Optional[np.ndarray],
                             out_shape, ph: int, pw: int, flip: bool) -> np.ndarray:
    """y = conv2d(x, weight) + bias for a (K, C, 3, 3) weight, stride 1, top/left padding (ph, pw).

    With ``flip`` x has K channels and the filter is the weight transposed and rotated by 180°:
    the input-gradient convolution (out_shape has C channels).
    """
    n, c_in = x.shape[0], x.shape[1]
    c_out = out_shape[1]
    plan = _winograd_plan(n, c_in, c_out, out_shape[2], out_shape[3], x.dtype.itemsize)
    u = np.empty(plan.u_elements, dtype=x.dtype)
    _winograd.winograd_filter(weight, u, flip, _winograd.PANEL_ROWS if plan.panels else 1, plan.threads)
    y = np.empty(out_shape, dtype=x.dtype)
    vwork = np.empty((plan.buffers, plan.v_elements), dtype=x.dtype)
    mwork = np.empty((plan.buffers, plan.m_elements), dtype=x.dtype)
    has_bias = bias is not None
    run_with_kernel_blas(_winograd.winograd_forward, x, u, bias if has_bias else _dummy(x.dtype, 1),
                         has_bias, y, vwork, mwork, ph, pw, plan.block_tiles, plan.panels,
                         plan.parallel, plan.threads)
    return y


def _winograd_weight_grad_kernel(x: np.ndarray, dy: np.ndarray, ph: int, pw: int, weight_shape) -> np.ndarray:
    """dW of y = conv2d(x, w) on the Winograd path: the adjoint of its 16 GEMMs and transforms."""
    n, c = x.shape[0], x.shape[1]
    k = dy.shape[1]
    plan = _winograd_plan(n, c, k, dy.shape[2], dy.shape[3], dy.dtype.itemsize, weight_grad=True)
    du = np.zeros((plan.buffers, 16 * k * c), dtype=dy.dtype)
    vwork = np.empty((plan.buffers, plan.v_elements), dtype=dy.dtype)
    mwork = np.empty((plan.buffers, plan.m_elements), dtype=dy.dtype)
    run_with_kernel_blas(_winograd.winograd_weight_grad, x, dy, du, vwork, mwork, ph, pw,
                         plan.block_tiles, plan.parallel, plan.threads, plan.panels)
    del vwork, mwork
    total = du[0] if plan.buffers == 1 else du.sum(axis=0)
    dw = np.empty(weight_shape, dtype=dy.dtype)
    # the panel layout's products give each dU_ξ transposed (C×K)
    _winograd.winograd_filter_grad(total.reshape((16, c, k) if plan.panels else (16, k, c)), dw,
                                   plan.threads, plan.panels)
    return dw


def _winograd_backward_workspace(image_shape, out_channels: int, g: ConvGeometry, itemsize: int) -> int:
    """Largest transient bytes of the Winograd backward: its dX pass or its dW pass (sequential).

    The dW pass holds the per-thread dU parts with the V/M buffers, then the parts with their
    sum (when there are several threads)."""
    n, c, h, w = image_shape
    dx_plan = _winograd_plan(n, out_channels, c, h, w, itemsize)
    dw_plan = _winograd_plan(n, c, out_channels, g.out_h, g.out_w, itemsize, weight_grad=True)
    dx_pass = _winograd_pass_bytes(dx_plan, itemsize)
    parts = dw_plan.buffers * 16 * c * out_channels * itemsize
    du_sum = 16 * c * out_channels * itemsize if dw_plan.buffers > 1 else 0
    dw_pass = parts + max(dw_plan.buffers * (dw_plan.v_elements + dw_plan.m_elements) * itemsize, du_sum)
    return max(dx_pass, dw_pass)


def _contiguous(a: np.ndarray) -> np.ndarray:
    return a if a.flags.c_contiguous else np.ascontiguousarray(a)


# ---- Functions -------------------------------------------------------------------------------

def _path_settings():
    """The thread count and the module switches and thresholds the path choice and the plans read
    (tests change them)."""
    return (_omp.get_max_threads(), _WINOGRAD, _DIRECT, _SMALL_DEPTH, _PACKED_SGEMM,
            WINOGRAD_MIN_CHANNELS, WINOGRAD_MIN_TILES, WINOGRAD_NARROW_CHANNELS,
            WINOGRAD_NARROW_MIN_PIXELS, DIRECT_MIN_CHANNELS, DIRECT_MAX_DEPTH, DIRECT_MAX_K,
            SMALL_DEPTH, SMALL_DEPTH_NARROW, SMALL_NARROW_K, MIN_FLOPS_PER_THREAD,
            COLUMN_BLOCK_ELEMENTS, WINOGRAD_BLOCK_ELEMENTS, _OCVEC, OCVEC_MIN_TAPS,
            OCVEC_MIN_TAPS_STRIDE1, OCVEC_MIN_TAPS_WIDE, OCVEC_MAX_TAPS, OCVEC_MAX_TILE_WASTE,
            _direct.ocvec_block(64))


@_memoized_plan
def _memoized_path(image_shape, weight_shape, g: ConvGeometry, settings):
    if _use_winograd(image_shape, weight_shape, g):
        return "winograd", None
    if _use_direct(image_shape, weight_shape[0], g):
        return "direct", _direct_plan(image_shape, weight_shape[0], g)
    if _use_small_depth(image_shape, weight_shape[0], g):
        return "small", None
    return ("ocvec" if _use_ocvec(image_shape, weight_shape[0], g) else "gemm"), None


# The last path chosen for each geometry object, by id: (geometry, image shape, weight shape,
# settings, (path, plan)). conv2d hands the same geometry object to every call it validated
# before, so this finds the choice without hashing the shapes, the geometry and the settings
# (~1.2 µs, the memo's key, next to ~0.4 µs for these comparisons). The entry holds the geometry,
# so its id is not reused while the entry lives.
_PATHS: dict = {}


def _conv_path(image_shape, weight_shape, g: ConvGeometry):
    """(path, plan) of conv2d: 'winograd', 'direct' (implicit GEMM, with its DirectPlan), 'small'
    (im2col with the shallow loops), 'ocvec' (float32 forward and dW by the
    output-channel-vectorized loops, dX and other dtypes as 'gemm') or 'gemm' (im2col + GEMM),
    in that order of preference; memoized with the settings."""
    settings = _path_settings()
    entry = _PATHS.get(id(g))
    if (entry is not None and entry[0] is g and entry[1] == image_shape and entry[2] == weight_shape
            and entry[3] == settings):
        return entry[4]
    result = _memoized_path(image_shape, weight_shape, g, settings)
    if len(_PATHS) >= _PLAN_CACHE_SIZE:
        _PATHS.clear()
    _PATHS[id(g)] = (g, image_shape, weight_shape, settings, result)
    return result


def _path_for_dtype(path: str, dtype) -> str:
    """The path a call of ``dtype`` runs for the chosen ``path``: the vectorized loops are float32,
    so 'ocvec' with float64 runs im2col + GEMM ('gemm')."""
    return "gemm" if path == "ocvec" and dtype != np.float32 else path


def _declared_path(shapes, dtype, g: ConvGeometry) -> str:
    """The path a call of these shapes and dtype runs, for the memory declarations."""
    return _path_for_dtype(_memoized_path(shapes[0], shapes[1], g, _path_settings())[0], np.dtype(dtype))


class Conv2dFunction(Function):
    """y = conv2d(x, w) + b; saves x only for dW and w only for dX."""

    @staticmethod
    def forward(ctx, x, weight, bias, geometry: ConvGeometry = None):
        g = geometry
        # contiguity checked inline: three calls of _contiguous cost ~0.15 µs of a batch-1 call
        if not x.flags.c_contiguous:
            x = np.ascontiguousarray(x)
        w2 = (weight if weight.flags.c_contiguous else np.ascontiguousarray(weight)).reshape(weight.shape[0], -1)
        if bias is not None and not bias.flags.c_contiguous:
            bias = np.ascontiguousarray(bias)
        image_shape = x.shape
        out_shape = (image_shape[0], weight.shape[0], g.out_h, g.out_w)
        path, ctx.plan = _conv_path(image_shape, weight.shape, g)
        path = _path_for_dtype(path, x.dtype)
        if path == "winograd":
            y = _winograd_forward_kernel(x, w2.reshape(weight.shape), bias, out_shape, g.ph, g.pw, False)
        elif path == "direct":
            y = _direct_forward_kernel(x, w2, bias, out_shape, g, ctx.plan)
        elif path == "ocvec":
            y = _ocvec_forward_kernel(x, w2, bias, out_shape, g)
        else:
            y = _conv_forward_kernel(x, w2, bias, out_shape, g, path == "small")
        ctx.path = path
        needs = ctx.needs_input_grad
        ctx.save_for_backward(x if needs[1] else None, w2 if needs[0] else None)
        ctx.geometry = g
        ctx.image_shape = image_shape
        ctx.weight_shape = weight.shape
        return y

    @staticmethod
    def saved_bytes(shapes, dtype, needs_input_grad, geometry=None) -> int:
        """x when the weight needs grad, w when the input needs grad."""
        total = 0
        if needs_input_grad[1]:
            total += shape_nbytes(shapes[0], dtype)
        if needs_input_grad[0]:
            total += shape_nbytes(shapes[1], dtype)
        return total

    @staticmethod
    def workspace_bytes(shapes, dtype, geometry=None) -> int:
        """Largest transient buffers of backward: the column buffers (im2col and Wᵀ·dY) (+ the
        per-thread db partials on the shallow path with a bias), on the Winograd path the
        larger of its dX and dW passes, on the implicit-GEMM path its scratch, rotated filter and
        per-thread partials, on the ocvec path the larger of its dX and dW passes."""
        itemsize = np.dtype(dtype).itemsize
        path = _declared_path(shapes, dtype, geometry)
        if path == "winograd":
            return _winograd_backward_workspace(shapes[0], shapes[1][0], geometry, itemsize)
        if path == "direct":
            return _direct_backward_workspace(shapes[0], shapes[1], geometry, itemsize)
        if path == "ocvec":
            return _ocvec_backward_workspace(shapes[0], shapes[1][0], geometry, itemsize)
        total = _backward_workspace(shapes[0], shapes[1][0], geometry, itemsize)
        if len(shapes) > 2 and shapes[2] is not None and path == "small":
            used = _backward_plan(shapes[0], shapes[1][0], geometry).buffers
            if used > 1:  # per-thread bias-gradient partials of the fused db (summed afterwards)
                total += used * shapes[1][0] * itemsize
        return total

    @staticmethod
    def forward_workspace_bytes(shapes, dtype, needs_input_grad, geometry=None) -> int:
        """Transient bytes of forward beyond its output and saved arrays: one column buffer per
        thread of the forward plan, the transformed filter and V/M buffers on the Winograd path,
        the shifted image copies and tail block per thread on the implicit-GEMM path, or the
        repacked weights and padded images of the output-channel-vectorized forward."""
        g, itemsize = geometry, np.dtype(dtype).itemsize
        n, c = shapes[0][0], shapes[0][1]
        k = shapes[1][0]
        path = _declared_path(shapes, dtype, g)
        if path == "winograd":
            return _winograd_pass_bytes(_winograd_plan(n, c, k, g.out_h, g.out_w, itemsize), itemsize)
        if path == "direct":
            plan = _direct_plan(shapes[0], k, g)
            return plan.buffers * plan.forward * itemsize
        if path == "ocvec":
            return itemsize * _direct.ocvec_workspace_elements(
                n, c, k, g.kh, g.kw, g.sh, g.sw, g.dh, g.dw, g.out_h, g.out_w,
                _ocvec_threads(shapes[0], k, g))
        threads, block, parallel, row_elems = _forward_setup(shapes[0], k, g)
        return (threads if parallel else 1) * row_elems * block * itemsize

    @staticmethod
    def macs(shapes, needs_input_grad, geometry=None) -> Tuple[int, int]:
        """Multiply-adds (forward, backward): N·K·OH·OW·(C/groups)·kh·kw per GEMM; backward
        runs that GEMM once for dX and once for dW, each only when needed. These are the direct
        convolution's counts whichever path runs: the Winograd path's GEMMs do 16/36 of them
        (plus O(N·(C + K)·H·W) transform additions), so its MAC rate reads 2.25× the GEMM rate."""
        n, k = shapes[0][0], shapes[1][0]
        g = geometry
        forward = int(n) * int(k) * g.out_h * g.out_w * int(np.prod(shapes[1][1:], dtype=np.int64))
        return forward, forward * (int(needs_input_grad[0]) + int(needs_input_grad[1]))

    @staticmethod
    def backward(ctx, dy):
        x, w2 = ctx.saved_tensors
        need_dx, need_dw, need_db = ctx.needs_input_grad[:3]
        if not dy.flags.c_contiguous:
            dy = np.ascontiguousarray(dy)
        dx = dw = db = None
        path = ctx.path
        if path == "winograd":
            g, ws = ctx.geometry, ctx.weight_shape
            if need_dx:  # a 3×3 stride-1 convolution of dY with the rotated, transposed filter
                dx = _winograd_forward_kernel(dy, w2.reshape(ws), None, ctx.image_shape,
                                              2 - g.ph, 2 - g.pw, True)
            if need_dw:
                dw = _winograd_weight_grad_kernel(x, dy, g.ph, g.pw, ws)
        elif path == "direct":
            if need_dx or need_dw:
                dx, dw, db = _direct_backward_kernel(x, w2, dy, ctx.image_shape, ctx.weight_shape,
                                                     ctx.geometry, need_dx, need_dw, need_db, ctx.plan)
        elif path == "ocvec":  # dX by im2col (Wᵀ·dY, col2im) or as a convolution, dW by the vectorized loops
            ws = ctx.weight_shape
            if need_dx and _ocvec_dx_as_conv(ctx.image_shape, ws[0], ctx.geometry):
                dx = _ocvec_dx_kernel(w2.reshape(ws), dy, ctx.image_shape, ctx.geometry)
            elif need_dx:
                dx = _conv_backward_kernel(None, w2, dy, ctx.image_shape, (ws[0], ws[1] * ws[2] * ws[3]),
                                           ctx.geometry, True, False)[0]
            if need_dw:
                dw = _ocvec_weight_grad_kernel(x, dy, ctx.geometry)
        elif need_dx or need_dw:
            ws = ctx.weight_shape
            dx, dw2, db = _conv_backward_kernel(x, w2, dy, ctx.image_shape,
                                                (ws[0], ws[1] * ws[2] * ws[3]), ctx.geometry,
                                                need_dx, need_dw, small=path == "small",
                                                need_db=need_db)
            if need_dw:
                dw = dw2.reshape(ctx.weight_shape)
        if need_db and db is None:
            db = dy.sum(axis=(0, 2, 3))
        return dx, dw, db


class ConvTranspose2dFunction(Function):
    """y = conv_transpose2d(x, w) + b: conv2d's input gradient with w as (C_in, C_out/g·kh·kw)."""

    @staticmethod
    def forward(ctx, x, weight, bias, geometry: ConvGeometry = None, out_shape=None):
        g = geometry
        x = _contiguous(x)
        w2 = _contiguous(weight).reshape(weight.shape[0], -1)
        if bias is not None:
            bias = _contiguous(bias)
        y, _, _ = _conv_backward_kernel(None, w2, x, out_shape, w2.shape, g, True, False, dx_init=bias)
        needs = ctx.needs_input_grad
        ctx.save_for_backward(x if needs[1] else None, w2 if needs[0] else None)
        ctx.geometry = g
        ctx.out_shape = out_shape
        ctx.input_shape = x.shape
        ctx.weight_shape = weight.shape
        return y

    @staticmethod
    def saved_bytes(shapes, dtype, needs_input_grad, geometry=None, out_shape=None) -> int:
        """x when the weight needs grad, w when the input needs grad."""
        return Conv2dFunction.saved_bytes(shapes, dtype, needs_input_grad)

    @staticmethod
    def workspace_bytes(shapes, dtype, geometry=None, out_shape=None) -> int:
        """Largest transient buffers: the column buffers over the (larger) output image."""
        return _backward_workspace(out_shape, shapes[0][1], geometry, np.dtype(dtype).itemsize)

    @staticmethod
    def forward_workspace_bytes(shapes, dtype, needs_input_grad, geometry=None, out_shape=None) -> int:
        """Transient bytes of forward beyond its output and saved arrays: the column buffers of
        the input-gradient pass."""
        return ConvTranspose2dFunction.workspace_bytes(shapes, dtype, geometry, out_shape) // 2

    @staticmethod
    def macs(shapes, needs_input_grad, geometry=None, out_shape=None) -> Tuple[int, int]:
        """Multiply-adds (forward, backward): N·C_in·H·W·(C_out/groups)·kh·kw per GEMM; backward
        runs it once for dX and once for dW, each only when needed."""
        n, _, h, w = shapes[0]
        forward = int(n) * int(h) * int(w) * int(np.prod(shapes[1], dtype=np.int64))
        return forward, forward * (int(needs_input_grad[0]) + int(needs_input_grad[1]))

    @staticmethod
    def backward(ctx, dy):
        x, w2 = ctx.saved_tensors
        need_dx, need_dw, need_db = ctx.needs_input_grad[:3]
        g = ctx.geometry
        dy = _contiguous(dy)
        dx = dw = db = None
        if need_dx:
            dx = _conv_forward_kernel(dy, w2, None, ctx.input_shape, g)
        if need_dw:
            ws = ctx.weight_shape
            _, dw2, _ = _conv_backward_kernel(dy, None, x, ctx.out_shape, (ws[0], ws[1] * ws[2] * ws[3]),
                                           g, False, True)
            dw = dw2.reshape(ctx.weight_shape)
        if need_db:
            db = dy.sum(axis=(0, 2, 3))
        return dx, dw, db


# ---- validation -------------------------------------------------------------------------------

def _check_operands(op: str, x, weight, bias):
    x = as_float_tensor(x, op, "input")
    weight = as_float_tensor(weight, op, "weight")
    if bias is not None:
        bias = as_float_tensor(bias, op, "bias")
    check_same_dtype(op, weight=weight._array, input=x._array, bias=None if bias is None else bias._array)
    check_ndim(weight._array, 4, op, "weight")
    if 0 in weight.shape:
        raise ValueError(f"{op}: expected a weight with no empty dimension, got weight of shape "
                         f"{tuple(weight.shape)}")
    return x, weight, bias


def _check_groups(op: str, groups, in_channels: int, out_channels: int, weight_shape) -> int:
    if not isinstance(groups, (int, np.integer)) or isinstance(groups, bool):
        raise TypeError(f"{op}: expected groups as an int, got {groups!r}")
    groups = int(groups)
    if groups < 1:
        raise ValueError(f"{op}: expected groups >= 1, got {groups}")
    if in_channels % groups or out_channels % groups:
        raise ValueError(
            f"{op}: expected groups to divide both channel counts, got groups={groups} with "
            f"{in_channels} input and {out_channels} output channels (weight is {tuple(weight_shape)})"
        )
    return groups


def _check_bias(op: str, bias: Optional[Tensor], channels: int) -> None:
    if bias is not None and tuple(bias.shape) != (channels,):
        raise ValueError(f"{op}: expected bias of shape ({channels},), got bias of shape {tuple(bias.shape)}")


def _same_padding(kernel: Tuple[int, int], dilation: Tuple[int, int]):
    """PyTorch's 'same': total d·(k−1) per dimension, the odd extra on the bottom/right."""
    totals = tuple(d * (k - 1) for k, d in zip(kernel, dilation))
    return (totals[0] // 2, totals[1] // 2), totals


def _conv_padding(op: str, padding, kernel, stride, dilation):
    """(top/left padding, total padding per dimension) from an int, a pair, 'same' or 'valid'."""
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0), (0, 0)
        if padding == "same":
            if stride != (1, 1):
                raise ValueError(f"{op}: padding='same' requires stride 1, got stride={stride}")
            return _same_padding(kernel, dilation)
        raise ValueError(f"{op}: expected padding as an int, a pair, 'same' or 'valid', got {padding!r}")
    pad = int_pair(padding, op, "padding", minimum=0)
    return pad, (2 * pad[0], 2 * pad[1])


# Geometries of validated conv2d calls, keyed on everything the validation reads (shapes, dtypes,
# options): a training loop repeats a few calls, and validating one costs ~10 µs of Python, a
# lot next to a batch-1 convolution. Only plain options are keys (see _validated_key), so a bool
# never hits the entry of the int it equals.
_VALIDATED: dict = {}
_VALIDATED_SIZE = 512


def _validated_key(input, weight, bias, options):
    """The _VALIDATED key of a call with Tensor operands and plain options (ints, pairs of ints,
    strings: a bool never hits the entry of the int it equals), else None."""
    if not (isinstance(input, Tensor) and isinstance(weight, Tensor)
            and (bias is None or isinstance(bias, Tensor))):
        return None
    for value in options:
        kind = type(value)
        if kind is not int and kind is not str and not (
                kind is tuple and len(value) == 2 and type(value[0]) is int and type(value[1]) is int):
            return None
    x, w = input._array, weight._array
    return (x.shape, x.dtype, w.shape, w.dtype,
            None if bias is None else (bias._array.shape, bias._array.dtype), options)


def conv2d(input, weight, bias=None, stride: IntPair = 1, padding: Union[IntPair, str] = 0,
           dilation: IntPair = 1, groups: int = 1) -> Tensor:
    """2-D cross-correlation over NCHW input (or unbatched CHW), PyTorch semantics.

    weight is (C_out, C_in/groups, kH, kW); padding is an int, a pair, 'same' or 'valid'.
    """
    key = _validated_key(input, weight, bias, (stride, padding, dilation, groups))
    if key is not None:
        geometry = _VALIDATED.get(key)
        if geometry is not None:
            return Conv2dFunction.apply(input, weight, bias, geometry=geometry)
    geometry = _conv2d_geometry(input, weight, bias, stride, padding, dilation, groups)
    if isinstance(geometry, Tensor):  # unbatched input, computed through the batched call
        return geometry
    if key is not None:
        if len(_VALIDATED) >= _VALIDATED_SIZE:
            _VALIDATED.clear()
        _VALIDATED[key] = geometry
    return Conv2dFunction.apply(input, weight, bias, geometry=geometry)


def _conv2d_geometry(input, weight, bias, stride, padding, dilation, groups):
    """Validate a conv2d call: its ConvGeometry, or for unbatched input the result itself."""
    op = "conv2d"
    x, weight, bias = _check_operands(op, input, weight, bias)
    check_ndim(x._array, (3, 4), op, "input", "(N, C, H, W)")
    if x.ndim == 3:
        return conv2d(x.unsqueeze(0), weight, bias, stride, padding, dilation, groups).squeeze(0)
    k_out, c_per_group, kh, kw = weight.shape
    n, c, h, w = x.shape
    groups = _check_groups(op, groups, c, k_out, weight.shape)
    if c != c_per_group * groups:
        raise ValueError(
            f"{op}: expected input with {c_per_group * groups} channels (weight is {tuple(weight.shape)}"
            f", groups={groups}), got input of shape {tuple(x.shape)}"
        )
    _check_bias(op, bias, k_out)
    stride_ = int_pair(stride, op, "stride", minimum=1)
    dilation_ = int_pair(dilation, op, "dilation", minimum=1)
    (ph, pw), (th, tw) = _conv_padding(op, padding, (kh, kw), stride_, dilation_)
    eff_h, eff_w = dilation_[0] * (kh - 1) + 1, dilation_[1] * (kw - 1) + 1
    if h + th < eff_h or w + tw < eff_w:
        raise ValueError(
            f"{op}: kernel size {(eff_h, eff_w)} (dilated) is larger than the padded input "
            f"{(h + th, w + tw)} (input of shape {tuple(x.shape)}, padding={padding!r})"
        )
    return ConvGeometry(kh, kw, stride_[0], stride_[1], ph, pw, dilation_[0], dilation_[1], groups,
                        (h + th - eff_h) // stride_[0] + 1, (w + tw - eff_w) // stride_[1] + 1)


def conv_transpose2d(input, weight, bias=None, stride: IntPair = 1, padding: IntPair = 0,
                     output_padding: IntPair = 0, groups: int = 1, dilation: IntPair = 1) -> Tensor:
    """2-D transposed convolution (the gradient of conv2d with respect to its input).

    weight is (C_in, C_out/groups, kH, kW); output size per dimension is
    (H − 1)·stride − 2·padding + dilation·(k − 1) + output_padding + 1.
    """
    op = "conv_transpose2d"
    x, weight, bias = _check_operands(op, input, weight, bias)
    check_ndim(x._array, (3, 4), op, "input", "(N, C, H, W)")
    if x.ndim == 3:
        return conv_transpose2d(x.unsqueeze(0), weight, bias, stride, padding, output_padding, groups,
                                dilation).squeeze(0)
    c_in, c_out_per_group, kh, kw = weight.shape
    n, c, h, w = x.shape
    groups = _check_groups(op, groups, c_in, c_out_per_group * groups, weight.shape)
    if c != c_in:
        raise ValueError(
            f"{op}: expected input with {c_in} channels (weight is {tuple(weight.shape)}), "
            f"got input of shape {tuple(x.shape)}"
        )
    c_out = c_out_per_group * groups
    _check_bias(op, bias, c_out)
    stride_ = int_pair(stride, op, "stride", minimum=1)
    dilation_ = int_pair(dilation, op, "dilation", minimum=1)
    if isinstance(padding, str):
        raise ValueError(f"{op}: expected padding as an int or a pair of ints, got {padding!r}")
    pad = int_pair(padding, op, "padding", minimum=0)
    out_pad = int_pair(output_padding, op, "output_padding", minimum=0)
    for d in range(2):
        if out_pad[d] >= max(stride_[d], dilation_[d]):
            raise ValueError(
                f"{op}: expected output_padding smaller than stride or dilation, got "
                f"output_padding={output_padding!r} with stride={stride!r}, dilation={dilation!r}"
            )
    out_hw = tuple((size - 1) * stride_[d] - 2 * pad[d] + dilation_[d] * (k - 1) + out_pad[d] + 1
                   for d, (size, k) in enumerate(((h, kh), (w, kw))))
    if min(out_hw) < 1:
        raise ValueError(
            f"{op}: output size {out_hw} is not positive (input of shape {tuple(x.shape)}, kernel "
            f"{(kh, kw)}, stride={stride!r}, padding={padding!r}, dilation={dilation!r})"
        )
    geometry = ConvGeometry(kh, kw, stride_[0], stride_[1], pad[0], pad[1], dilation_[0], dilation_[1],
                            groups, h, w)
    return ConvTranspose2dFunction.apply(x, weight, bias, geometry=geometry,
                                         out_shape=(n, c_out, out_hw[0], out_hw[1]))
