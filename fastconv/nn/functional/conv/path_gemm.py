"""im2col + GEMM, and its shallow variant: the general paths (any stride, dilation, groups).

A column buffer holds, for one image and a block of output rows, one row per (channel, ky, kx)
and one column per output pixel, so the block's convolution is W·cols per group
(docs/design.md §3). The shallow variant replaces the GEMMs by register-blocked loops when the
depth C·kh·kw is small, where a GEMM's packing and tile edges dominate."""
from __future__ import annotations

from typing import NamedTuple, Optional, Tuple

import numpy as np

from ...._config import run_with_kernel_blas
from ...._kernels import conv as _conv
from ...._kernels.gemm import packed_sgemm_available
from . import common
from .common import dummy, memoized_plan, threads_for, work_buffer
from .geometry import ConvGeometry, ConvProblem
from .registry import ConvPath, register

# Shallow rule: depth C·kh·kw ≤ SMALL_DEPTH; with float32 on BLAS (no packed sgemm on this CPU)
# also depth ≤ SMALL_DEPTH_NARROW with K ≤ SMALL_NARROW_K (OpenBLAS is slow on shallow GEMMs).
SMALL_DEPTH = 9
SMALL_DEPTH_NARROW = 27
SMALL_NARROW_K = 32
# Forward of 3×3 filters (dilation 1, stride ≤ 2) on at most SMALL_PLANE_CHANNELS input channels in
# float32: the shallow path's plane loops, without a column buffer, beat im2col + GEMM (design §3).
SMALL_PLANE_CHANNELS = 4
PACKED_SGEMM = packed_sgemm_available()
# Backward of images with fewer output pixels than this: images side by side in one column buffer
# until it has this many columns, so the dW product is that deep and the dX product that wide
# (a 7×7 output alone gives GEMMs 49 deep or wide); the buffer stays within the larger of
# COLUMN_BLOCK_ELEMENTS and the weight's size, which the gradient holds anyway.
SIDE_BY_SIDE_COLUMNS = 256
# The dW product side by side only for images of at most this many output pixels, or for a
# gradient of at least SIDE_BY_SIDE_DW_FLOATS: otherwise image-by-image products (the gradient
# accumulated P deep each) were as fast or faster than gathering dY and writing the columns
# apart; a gradient that large (8 MiB: 512×512 3×3) is read and written from beyond the caches
# once per image, which side by side does once per 256 columns.
SIDE_BY_SIDE_DW_PIXELS = 8
SIDE_BY_SIDE_DW_FLOATS = 1 << 21


def _row_block(rows_total: int, elements_per_row: int) -> int:
    """Output rows per column buffer: all of them unless that exceeds the element budget."""
    return max(1, min(rows_total, common.COLUMN_BLOCK_ELEMENTS // max(1, elements_per_row)))


def _forward_plan(n: int, out_h: int, elements_per_row: int, threads: int) -> Tuple[int, bool]:
    """(rows per block, parallel over items?) for the forward GEMM pass.

    Items are (image, row block) pairs. With fewer images than threads, rows are split further
    so every thread gets an item; a single thread runs the items serially."""
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


@memoized_plan
def forward_setup(image_shape, out_channels: int, g: ConvGeometry):
    """(threads, rows per block, parallel over items?, column elements per output row)."""
    n, c = image_shape[0], image_shape[1]
    row_elems = c * g.kh * g.kw * g.out_w
    threads = threads_for(2.0 * n * out_channels * row_elems * g.out_h / g.groups)
    block, parallel = _forward_plan(n, g.out_h, row_elems, threads)
    return threads, block, parallel, row_elems


class BackwardPlan(NamedTuple):
    threads: int          # OpenMP threads for the call
    parallel: bool        # images in a prange (else serially, im2col/col2im over channels)
    buffers: int          # column buffers (one per thread when parallel)
    block_rows: int       # output rows per column buffer
    row_elements: int     # column-buffer elements per output row
    images: int = 1       # images side by side in one column buffer (1: image by image)


@memoized_plan
def backward_plan(image_shape, out_channels: int, g: ConvGeometry, small: bool = False) -> BackwardPlan:
    n, c = image_shape[0], image_shape[1]
    row_elems = c * g.kh * g.kw * g.out_w
    threads = threads_for(2.0 * n * out_channels * row_elems * g.out_h / g.groups)
    parallel = threads > 1 and n >= threads
    block = _row_block(g.out_h, row_elems)
    images = 1
    pixels = g.out_h * g.out_w
    if g.groups == 1 and not small and block == g.out_h and 0 < pixels < SIDE_BY_SIDE_COLUMNS:
        per_buffer = -(-n // threads) if parallel else n
        budget = max(common.COLUMN_BLOCK_ELEMENTS, out_channels * c * g.kh * g.kw)
        images = max(1, min(per_buffer, -(-SIDE_BY_SIDE_COLUMNS // pixels), budget // (row_elems * g.out_h)))
    return BackwardPlan(threads, parallel, threads if parallel else 1, block, row_elems, images)


def forward_kernel(x: np.ndarray, w2: np.ndarray, bias: Optional[np.ndarray],
                   out_shape: Tuple[int, int, int, int], g: ConvGeometry,
                   small: bool = False) -> np.ndarray:
    """y = conv2d(x, w2) (+ bias) with w2 the weight as a (K, C/groups·kh·kw) matrix
    (``small``: groups 1, shallow GEMM loops instead of BLAS)."""
    y = np.empty(out_shape, dtype=x.dtype)
    threads, block, parallel, row_elems = forward_setup(x.shape, out_shape[1], g)
    work = work_buffer(threads if parallel else 1, row_elems * block, x.dtype)
    has_bias = bias is not None
    run_with_kernel_blas(_conv.conv_forward, x, w2, bias if has_bias else dummy(x.dtype, 1), has_bias,
                         y, work, g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, g.dh, g.dw, g.groups, block,
                         parallel, threads, small)
    return y


def backward_kernel(x: Optional[np.ndarray], w2: Optional[np.ndarray], dy: np.ndarray,
                    image_shape: Tuple[int, int, int, int], weight_matrix_shape: Tuple[int, int],
                    g: ConvGeometry, need_dx: bool, need_dw: bool,
                    dx_init: Optional[np.ndarray] = None, small: bool = False,
                    need_db: bool = False):
    """(dx, dw2, db) of y = conv2d(x, w2) given dY, w2 being the (K, C/groups·kh·kw) weight matrix.

    Either gradient may be skipped (returned as None): x is read only for dw2, w2 only for dx.
    ``dx_init`` (per channel of dx) is added to dx: conv_transpose2d's bias. db (dY summed per
    channel) is fused into the dW pass when ``small``, ``need_dw`` and ``need_db``; else None."""
    dtype = dy.dtype
    n, c, h, w = image_shape
    plan = backward_plan(image_shape, dy.shape[1], g, small)
    threads, parallel, used, block = plan.threads, plan.parallel, plan.buffers, plan.block_rows
    images, dw_columns, dx_columns, gathered = backward_buffers(plan, g, dy.shape[1], need_dx, need_dw)
    dx = np.empty(image_shape, dtype=dtype) if need_dx else dummy(dtype, 4)
    dw_parts = (np.zeros((used, weight_matrix_shape[0] * weight_matrix_shape[1]), dtype=dtype)
                if need_dw else dummy(dtype, 2))
    work = work_buffer(used, dw_columns, dtype) if need_dw else dummy(dtype, 2)
    dwork = work_buffer(used, dx_columns, dtype) if need_dx else dummy(dtype, 2)
    gather = work_buffer(used, gathered, dtype) if gathered else dummy(dtype, 2)
    fuse_db = small and need_dw and need_db
    db_parts = np.zeros((used, dy.shape[1]), dtype=dtype) if fuse_db else dummy(dtype, 2)
    has_init = dx_init is not None
    run_with_kernel_blas(_conv.conv_backward, x if need_dw else dummy(dtype, 4),
                         w2 if need_dx else dummy(dtype, 2), dy, dx, dw_parts, db_parts, fuse_db,
                         dx_init if has_init else dummy(dtype, 1), has_init, work, dwork, gather,
                         need_dx, need_dw, c, h, w, g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, g.dh, g.dw,
                         g.groups, block, parallel, threads, small, images,
                         side_by_side_dw(g, dy.shape[1], weight_matrix_shape[1]))
    dw2 = None
    if need_dw:
        dw2 = (dw_parts[0] if used == 1 else dw_parts.sum(axis=0)).reshape(weight_matrix_shape)
    db = (db_parts[0] if used == 1 else db_parts.sum(axis=0)) if fuse_db else None
    return (dx if need_dx else None), dw2, db


def side_by_side_dw(g: ConvGeometry, out_channels: int, depth: int) -> bool:
    """Whether images side by side share one dW product too (``depth``: C/groups·kh·kw)."""
    return g.out_h * g.out_w <= SIDE_BY_SIDE_DW_PIXELS or out_channels * depth >= SIDE_BY_SIDE_DW_FLOATS


def backward_buffers(plan: BackwardPlan, g: ConvGeometry, out_channels: int, need_dx: bool,
                     need_dw: bool) -> Tuple[int, int, int, int]:
    """(images side by side, dW column elements, dX column elements, gathered dY elements) of a
    backward call, per buffer: the plan's images when it computes dX or its dW product runs side
    by side (``side_by_side_dw``), else 1."""
    pixels = g.out_h * g.out_w
    side_dw = side_by_side_dw(g, out_channels, plan.row_elements // max(1, g.out_w))
    images = plan.images if need_dx or side_dw else 1
    per_image = plan.row_elements * plan.block_rows
    dw_columns = per_image * (images if side_dw else 1) if need_dw else 0
    dx_columns = per_image * images if need_dx else 0
    gathered = out_channels * images * pixels if images > 1 else 0
    return images, dw_columns, dx_columns, gathered


def backward_workspace(image_shape, out_channels: int, g: ConvGeometry, itemsize: int,
                       need_dx: bool = True, need_dw: bool = True, small: bool = False) -> int:
    """Bytes of the column buffers (im2col for dW, Wᵀ·dY for dX) of one backward kernel call, and
    of the gathered dY of images side by side."""
    plan = backward_plan(image_shape, out_channels, g, small)
    _, dw_columns, dx_columns, gathered = backward_buffers(plan, g, out_channels, need_dx, need_dw)
    # with several partitions, dW's partial sums too (one partition's row is the gradient itself)
    partials = out_channels * (image_shape[1] // g.groups) * g.kh * g.kw if need_dw and plan.buffers > 1 else 0
    return (dw_columns + dx_columns + gathered + partials) * plan.buffers * itemsize


def forward_workspace(image_shape, out_channels: int, g: ConvGeometry, itemsize: int) -> int:
    threads, block, parallel, row_elems = forward_setup(image_shape, out_channels, g)
    return (threads if parallel else 1) * row_elems * block * itemsize


class GemmPath(ConvPath):
    """im2col + GEMM: every convolution; the fallback of every other path."""

    name = "gemm"
    priority = 0
    small = False

    def eligible(self, problem, pass_):
        return True

    def preferred(self, problem, pass_):
        return True

    def forward(self, x, weight, bias, problem):
        return forward_kernel(x, weight.reshape(problem.weight_matrix_shape), bias, problem.out_shape,
                              problem.geometry, self.small)

    def grad_input(self, weight, dy, problem):
        return backward_kernel(None, weight.reshape(problem.weight_matrix_shape), dy, problem.image_shape,
                               problem.weight_matrix_shape, problem.geometry, True, False,
                               small=self.small)[0]

    def grad_weight(self, x, dy, problem, need_db):
        _, dw2, db = backward_kernel(x, None, dy, problem.image_shape, problem.weight_matrix_shape,
                                     problem.geometry, False, True, small=self.small, need_db=need_db)
        return dw2.reshape(problem.weight_shape), db

    def backward(self, x, weight, dy, problem, need_dx, need_dw, need_db):
        dx, dw2, db = backward_kernel(x, weight.reshape(problem.weight_matrix_shape), dy,
                                      problem.image_shape, problem.weight_matrix_shape,
                                      problem.geometry, need_dx, need_dw, small=self.small,
                                      need_db=need_db)
        return dx, (dw2.reshape(problem.weight_shape) if need_dw else None), db

    def workspace_bytes(self, problem, pass_, need_db=False):
        if pass_ == "forward":
            return forward_workspace(problem.image_shape, problem.out_channels, problem.geometry,
                                     problem.itemsize)
        return self._backward_bytes(problem, pass_ == "grad_input", pass_ == "grad_weight", need_db)

    def backward_workspace_bytes(self, problem, need_db=False):
        """dX and dW in one kernel call: both column buffers (and one gathered dY) at once."""
        return self._backward_bytes(problem, True, True, need_db)

    def _backward_bytes(self, problem, need_dx, need_dw, need_db):
        total = backward_workspace(problem.image_shape, problem.out_channels, problem.geometry,
                                   problem.itemsize, need_dx, need_dw, self.small)
        if need_dw and self.small and need_db:
            used = backward_plan(problem.image_shape, problem.out_channels, problem.geometry, True).buffers
            if used > 1:  # per-thread bias-gradient partials of the fused db (summed afterwards)
                total += used * problem.out_channels * problem.itemsize
        return total


class ShallowPath(GemmPath):
    """im2col with the register-blocked shallow loops in place of the GEMMs (groups 1)."""

    name = "shallow"
    priority = 10
    small = True

    def eligible(self, problem, pass_):
        return problem.geometry.groups == 1

    def worth_measuring(self, problem, pass_):
        # register-blocked loops for depths of a few dozen: far deeper, a GEMM always wins
        return problem.in_channels * problem.geometry.kh * problem.geometry.kw <= 4 * SMALL_DEPTH_NARROW

    def preferred(self, problem, pass_):
        g = problem.geometry
        depth = problem.in_channels * g.kh * g.kw
        if (pass_ == "forward" and problem.dtype == "float32" and (g.kh, g.kw, g.dh, g.dw) == (3, 3, 1, 1)
                and max(g.sh, g.sw) <= 2 and problem.in_channels <= SMALL_PLANE_CHANNELS):
            return True
        return (depth <= SMALL_DEPTH or (not PACKED_SGEMM and depth <= SMALL_DEPTH_NARROW
                                         and problem.out_channels <= SMALL_NARROW_K))


GEMM = register(GemmPath())
SHALLOW = register(ShallowPath())
