"""Winograd F(2×2, 3×3): 3×3, stride 1, dilation 1, groups 1 (docs/design.md §3).

The forward and dX (the forward of dY with the filter transposed and rotated) run 16 GEMMs on
transformed tiles; dW runs the adjoint of those GEMMs and transforms."""
from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np

from ...._config import run_with_kernel_blas
from ...._kernels import winograd as _winograd
from . import common
from .common import dummy, memoized_plan, threads_for
from .geometry import ConvProblem
from .registry import ConvPath, register

# Heuristic: Winograd when both channel counts are at least MIN_CHANNELS, the call has at least
# MIN_TILES 2×2 tiles in all (the filter transforms and per-call buffers cost ∝ C·K and need
# enough tiles to pay off), and C·K ≥ NARROW_CHANNELS unless Ho·Wo ≥ NARROW_MIN_PIXELS (with 16
# channels the GEMMs are too shallow to repay the transforms except on large images).
MIN_CHANNELS = 16
MIN_TILES = 64
NARROW_CHANNELS = 1024
NARROW_MIN_PIXELS = 3000


class WinogradPlan(NamedTuple):
    threads: int          # OpenMP threads for the call
    parallel: bool        # tile blocks in a prange (else one after another)
    buffers: int          # V/M buffer pairs (one per thread when parallel)
    block_tiles: int      # tiles per block
    panels: bool          # sgemm panel layouts (float32 on AVX-512 or AVX2+FMA)
    u_elements: int       # elements of the transformed filter
    v_elements: int       # elements of one V buffer (with its scratch)
    m_elements: int       # elements of one M buffer (with its scratch)
    channel_parts: int = 1  # >1: threads split the output channels, not the blocks (forward)


@memoized_plan
def winograd_plan(n: int, c_in: int, c_out: int, out_h: int, out_w: int, itemsize: int,
                  weight_grad: bool = False) -> WinogradPlan:
    """Plan of one Winograd pass over n images: c_in channels in, c_out × out_h × out_w out.

    Blocks hold at most WINOGRAD_BLOCK_ELEMENTS transformed elements (16·(c_in + c_out) per
    tile): whole tile rows when a row fits, as many as fit or fewer when that fills the 32-tile
    sgemm panels better; else a multiple of 32 tiles. Calls with few tiles get at least 4 blocks
    per thread (of at least 32 tiles); with several threads there are at least as many blocks
    as threads and, when there are few, a multiple of them."""
    tiles_w, tiles_h = (out_w + 1) // 2, (out_h + 1) // 2
    tiles, rows_total = n * tiles_h * tiles_w, n * tiles_h
    threads = threads_for(2.0 * n * c_out * c_in * 9 * out_h * out_w)
    parallel = threads > 1 and tiles > 1
    max_tiles = max(1, common.WINOGRAD_BLOCK_ELEMENTS // (16 * (c_in + c_out)))
    # small calls get small, reused buffers (a fresh ~1 MB buffer per call costs page faults)
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
                        _winograd.filter_elements(c_in, c_out, panels), v, m,
                        channel_parts(threads, parallel, panels, c_out, -(-tiles // block)))


def channel_parts(threads: int, parallel: bool, panels: bool, c_out: int, blocks: int) -> int:
    """Parts of the output channels a parallel forward splits into (1: it splits the blocks)."""
    panel_rows = _winograd.PANEL_ROWS
    if not (parallel and panels and common.WINOGRAD_SPLIT_CHANNELS) or c_out < 2 * panel_rows * threads:
        return 1
    return threads if blocks < 4 * threads else 1



def pass_bytes(plan: WinogradPlan, itemsize: int) -> int:
    """Transient bytes of a forward pass: the transformed filter and the V/M buffers."""
    return (plan.u_elements + plan.buffers * (plan.v_elements + plan.m_elements)) * itemsize


def forward_kernel(x: np.ndarray, weight: np.ndarray, bias: Optional[np.ndarray],
                   out_shape, ph: int, pw: int, flip: bool) -> np.ndarray:
    """y = conv2d(x, weight) + bias for a (K, C, 3, 3) weight, stride 1, top/left padding (ph, pw).

    With ``flip`` x has K channels and the filter is the weight transposed and rotated by 180°:
    the input-gradient convolution (out_shape has C channels)."""
    n, c_in = x.shape[0], x.shape[1]
    c_out = out_shape[1]
    plan = winograd_plan(n, c_in, c_out, out_shape[2], out_shape[3], x.dtype.itemsize)
    u = np.empty(plan.u_elements, dtype=x.dtype)
    _winograd.winograd_filter(weight, u, flip, _winograd.PANEL_ROWS if plan.panels else 1, plan.threads)
    y = np.empty(out_shape, dtype=x.dtype)
    vwork = np.empty((plan.buffers, plan.v_elements), dtype=x.dtype)
    mwork = np.empty((plan.buffers, plan.m_elements), dtype=x.dtype)
    has_bias = bias is not None
    run_with_kernel_blas(_winograd.winograd_forward, x, u, bias if has_bias else dummy(x.dtype, 1),
                         has_bias, y, vwork, mwork, ph, pw, plan.block_tiles, plan.panels,
                         plan.parallel, plan.threads, plan.channel_parts)
    return y


def weight_grad_kernel(x: np.ndarray, dy: np.ndarray, ph: int, pw: int, weight_shape) -> np.ndarray:
    """dW of y = conv2d(x, w) on the Winograd path: the adjoint of its 16 GEMMs and transforms."""
    n, c = x.shape[0], x.shape[1]
    k = dy.shape[1]
    plan = winograd_plan(n, c, k, dy.shape[2], dy.shape[3], dy.dtype.itemsize, weight_grad=True)
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


class WinogradPath(ConvPath):
    name = "winograd"
    priority = 30

    def eligible(self, problem, pass_):
        g = problem.geometry
        if (g.kh, g.kw, g.sh, g.sw, g.dh, g.dw, g.groups) != (3, 3, 1, 1, 1, 1, 1):
            return False
        # dX is the forward of dY padded by 2 − p: needs p ≤ 2
        return pass_ != "grad_input" or max(g.ph, g.pw) <= 2

    def preferred(self, problem, pass_):
        g = problem.geometry
        channels, kernels = problem.in_channels, problem.out_channels
        tiles = problem.batch * ((g.out_h + 1) // 2) * ((g.out_w + 1) // 2)
        return (min(channels, kernels) >= MIN_CHANNELS and tiles >= MIN_TILES
                and (channels * kernels >= NARROW_CHANNELS or g.out_h * g.out_w >= NARROW_MIN_PIXELS))

    def forward(self, x, weight, bias, problem):
        g = problem.geometry
        return forward_kernel(x, weight, bias, problem.out_shape, g.ph, g.pw, False)

    def grad_input(self, weight, dy, problem):
        g = problem.geometry
        return forward_kernel(dy, weight, None, problem.image_shape, 2 - g.ph, 2 - g.pw, True)

    def grad_weight(self, x, dy, problem, need_db):
        g = problem.geometry
        return weight_grad_kernel(x, dy, g.ph, g.pw, problem.weight_shape), None

    def workspace_bytes(self, problem, pass_, need_db=False):
        n, c, h, w = problem.image_shape
        k, g, itemsize = problem.out_channels, problem.geometry, problem.itemsize
        if pass_ == "forward":
            return pass_bytes(winograd_plan(n, c, k, g.out_h, g.out_w, itemsize), itemsize)
        if pass_ == "grad_input":
            return pass_bytes(winograd_plan(n, k, c, h, w, itemsize), itemsize)
        # the per-thread dU parts with the V/M buffers, then the parts with their sum
        plan = winograd_plan(n, c, k, g.out_h, g.out_w, itemsize, weight_grad=True)
        parts = plan.buffers * 16 * c * k * itemsize
        du_sum = 16 * c * k * itemsize if plan.buffers > 1 else 0
        return parts + max(plan.buffers * (plan.v_elements + plan.m_elements) * itemsize, du_sum)


WINOGRAD = register(WinogradPath())
