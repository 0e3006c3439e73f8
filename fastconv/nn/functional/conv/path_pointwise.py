"""Pointwise 1×1 convolution (groups 1, no padding, any stride) as plain GEMMs on NCHW: no
column buffer in any pass (_kernels/pointwise.pyx). A strided call first takes the strided
pixels (a copy the size of the output's input channels), and its dX scatters back."""
from __future__ import annotations

import numpy as np

from ...._config import run_with_kernel_blas
from ...._kernels import pointwise as _pw
from .common import dummy, threads_for
from .geometry import ConvProblem
from .registry import ConvPath, register


def _strided(problem: ConvProblem) -> bool:
    g = problem.geometry
    return g.sh != 1 or g.sw != 1


def _pixels(x: np.ndarray, problem: ConvProblem) -> np.ndarray:
    """x as (N, C, Ho·Wo): the pixels a 1×1 filter reads (a copy when strided)."""
    g = problem.geometry
    n, c = x.shape[0], x.shape[1]
    if _strided(problem):
        x = np.ascontiguousarray(x[:, :, ::g.sh, ::g.sw][:, :, :g.out_h, :g.out_w])
    return x.reshape(n, c, g.out_h * g.out_w)


class PointwisePath(ConvPath):
    name = "pointwise"
    priority = 45

    def eligible(self, problem, pass_):
        g = problem.geometry
        return (g.kh, g.kw, g.groups, g.ph, g.pw) == (1, 1, 1, 0, 0)

    def preferred(self, problem, pass_):
        return True

    def forward(self, x, weight, bias, problem):
        n, k = problem.batch, problem.out_channels
        y = np.empty(problem.out_shape, dtype=x.dtype)
        has_bias = bias is not None
        run_with_kernel_blas(_pw.pointwise_forward, weight.reshape(k, -1), _pixels(x, problem),
                             bias if has_bias else dummy(x.dtype, 1), has_bias, y.reshape(n, k, -1),
                             threads_for(problem.flops))
        return y

    def grad_input(self, weight, dy, problem):
        n, c, h, w = problem.image_shape
        k = problem.out_channels
        g = problem.geometry
        # allocated in its final shape (not a view), so the tape keeps it as .grad without a copy
        dxs = np.empty(problem.image_shape if not _strided(problem) else (n, c, g.out_h, g.out_w),
                       dtype=dy.dtype)
        run_with_kernel_blas(_pw.pointwise_grad_input, weight.reshape(k, -1), dy.reshape(n, k, -1),
                             dxs.reshape(n, c, -1), threads_for(problem.flops))
        if not _strided(problem):
            return dxs
        dx = np.zeros(problem.image_shape, dtype=dy.dtype)
        dx[:, :, ::g.sh, ::g.sw][:, :, :g.out_h, :g.out_w] = dxs
        return dx

    def grad_weight(self, x, dy, problem, need_db):
        n, k = problem.batch, problem.out_channels
        dw = np.empty(problem.weight_shape, dtype=dy.dtype)
        run_with_kernel_blas(_pw.pointwise_grad_weight, _pixels(x, problem), dy.reshape(n, k, -1),
                             dw.reshape(k, -1), threads_for(problem.flops))
        return dw, None

    def workspace_bytes(self, problem, pass_, need_db=False):
        if not _strided(problem):
            return 0
        g = problem.geometry
        return problem.batch * problem.in_channels * g.out_h * g.out_w * problem.itemsize


POINTWISE = register(PointwisePath())
