"""Output-channel-vectorized direct convolution (docs/design.md §3, _kernels/_ocvec.h): float32
on AVX-512 or AVX2+FMA, groups 1. The forward runs register tiles of 4–12 output pixels × one
block of output channels over the taps with no column buffer; dW the same way over a
transposed dY; dX at stride 1 as the same forward on dY with the rotated, transposed filter."""
from __future__ import annotations

import numpy as np

from ...._kernels import direct as _direct
from .common import threads_for
from .geometry import ConvProblem
from .path_implicit import geometry_eligible
from .registry import ConvPath, register

# Heuristic (forward and dW): K a multiple of the channel block, kh·kw > 1, MIN_TAPS (stride 1:
# MIN_TAPS_STRIDE1; 32-channel blocks: MIN_TAPS_WIDE) ≤ C·kh·kw ≤ MAX_TAPS, and row tiles ≤
# MAX_TILE_WASTE × the row. It loses where a block is partly used, for 1×1 filters (a plain
# GEMM), for few taps (stores of y outweigh the multiply-adds) and for thousands of taps with
# wide K (each block's weights stream from L3).
MIN_TAPS = 64
MIN_TAPS_STRIDE1 = 256
MIN_TAPS_WIDE = 27
MAX_TAPS = 4096
MAX_TILE_WASTE = 1.34


def _threads(problem: ConvProblem) -> int:
    return threads_for(problem.flops)


def dx_as_conv(problem: ConvProblem) -> bool:
    """Whether dX can run as the vectorized forward of dY: dX is such a convolution
    (stride 1, every padding ≤ dilation·(kernel − 1)) and C is a multiple of the channel block
    dX's loops take."""
    block = _direct.ocvec_block(problem.in_channels)
    return (geometry_eligible(problem.image_shape, problem.geometry) and block > 0
            and problem.in_channels % block == 0)


class OcvecPath(ConvPath):
    name = "ocvec"
    priority = 15

    def eligible(self, problem, pass_):
        if problem.dtype != "float32" or problem.geometry.groups != 1 or not _direct.ocvec_available():
            return False
        return pass_ != "grad_input" or dx_as_conv(problem)

    def preferred(self, problem, pass_):
        g, k = problem.geometry, problem.out_channels
        block, tile = _direct.ocvec_block(k), _direct.ocvec_tile(k, g.out_w)
        tiles = -(-g.out_w // tile) * tile
        taps = problem.in_channels * g.kh * g.kw
        if block == 32:  # AVX-512 blocks of 2 vectors, tiles of 8–12 pixels
            min_taps = MIN_TAPS_WIDE
        else:
            min_taps = MIN_TAPS_STRIDE1 if g.sh == 1 and g.sw == 1 else MIN_TAPS
        return (k % block == 0 and g.kh * g.kw > 1 and min_taps <= taps <= MAX_TAPS
                and tiles <= MAX_TILE_WASTE * g.out_w)

    def forward(self, x, weight, bias, problem):
        g = problem.geometry
        return _direct.ocvec_forward(x, weight.reshape(problem.weight_matrix_shape), bias, g.kh, g.kw,
                                     g.sh, g.sw, g.ph, g.pw, g.dh, g.dw, g.out_h, g.out_w,
                                     _threads(problem))

    def grad_input(self, weight, dy, problem):
        """dX of a stride-1 conv2d as the vectorized forward of dY (K channels in, C out) with
        the filter transposed and rotated by 180°, top/left padding d·(k − 1) − p."""
        k, c, kh, kw = weight.shape
        g = problem.geometry
        w_rot = np.ascontiguousarray(weight.transpose(1, 0, 2, 3)[:, :, ::-1, ::-1]).reshape(c, k * kh * kw)
        return _direct.ocvec_forward(dy, w_rot, None, kh, kw, 1, 1, g.dh * (kh - 1) - g.ph,
                                     g.dw * (kw - 1) - g.pw, g.dh, g.dw, problem.image_shape[2],
                                     problem.image_shape[3], _threads(problem))

    def grad_weight(self, x, dy, problem, need_db):
        g = problem.geometry
        return _direct.ocvec_weight_grad(x, dy, g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, g.dh, g.dw,
                                         _threads(problem)), None

    def workspace_bytes(self, problem, pass_, need_db=False):
        n, c, h, w = problem.image_shape
        k, g, itemsize = problem.out_channels, problem.geometry, problem.itemsize
        threads = _threads(problem)
        if pass_ == "forward":
            return itemsize * _direct.ocvec_workspace_elements(
                n, c, k, g.kh, g.kw, g.sh, g.sw, g.dh, g.dw, g.out_h, g.out_w, threads)
        if pass_ == "grad_input":  # the rotated filter and the vectorized forward's scratch
            return itemsize * (c * k * g.kh * g.kw + _direct.ocvec_workspace_elements(
                n, k, c, g.kh, g.kw, 1, 1, g.dh, g.dw, h, w, threads))
        return itemsize * _direct.ocvec_weight_grad_elements(
            n, c, k, g.kh, g.kw, g.sh, g.sw, g.dh, g.dw, g.out_h, g.out_w, threads)


OCVEC = register(OcvecPath())
