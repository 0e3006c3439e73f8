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
        # per-image products are narrow below ~64 pixels: the batched twin takes those
        g = problem.geometry
        return problem.batch == 1 or g.out_h * g.out_w >= 64

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


def _channel_major(a: np.ndarray) -> np.ndarray:
    """(N, C, P) → (C, N·P): the whole batch as one matrix (a copy)."""
    n, c, p = a.shape
    return np.ascontiguousarray(a.transpose(1, 0, 2)).reshape(c, n * p)


def _batch_major(a: np.ndarray, n: int, out: np.ndarray) -> None:
    """out (N, K, P) = a (K, N·P) split back into images."""
    k = a.shape[0]
    out[...] = a.reshape(k, n, -1).transpose(1, 0, 2)


class PointwiseBatchedPath(ConvPath):
    """1×1 convolution as one GEMM over the whole batch: the images' pixels side by side
    (C × N·P, a copy), so small images (P of a few dozen pixels, where per-image GEMMs are
    narrow) still make one wide product; dW is one product of depth N·P."""

    name = "pointwise_batched"
    priority = 44

    def eligible(self, problem, pass_):
        return POINTWISE.eligible(problem, pass_)

    def preferred(self, problem, pass_):
        g = problem.geometry
        return problem.batch > 1 and g.out_h * g.out_w < 64

    def forward(self, x, weight, bias, problem):
        from ...._kernels import gemm as _gemm
        n, k = problem.batch, problem.out_channels
        xc = _channel_major(_pixels(x, problem))
        yc = np.empty((k, xc.shape[1]), dtype=x.dtype)
        run_with_kernel_blas(_gemm.matmul, False, False, weight.reshape(k, -1), xc, yc, threads_for(problem.flops))
        if bias is not None:
            yc += bias[:, None]
        y = np.empty(problem.out_shape, dtype=x.dtype)
        _batch_major(yc, n, y.reshape(n, k, -1))
        return y

    def grad_input(self, weight, dy, problem):
        from ...._kernels import gemm as _gemm
        n, c = problem.batch, problem.in_channels
        k = problem.out_channels
        g = problem.geometry
        dyc = _channel_major(dy.reshape(n, k, -1))
        dxc = np.empty((c, dyc.shape[1]), dtype=dy.dtype)
        run_with_kernel_blas(_gemm.matmul, True, False, weight.reshape(k, -1), dyc, dxc, threads_for(problem.flops))
        if not _strided(problem):
            dx = np.empty(problem.image_shape, dtype=dy.dtype)
            _batch_major(dxc, n, dx.reshape(n, c, -1))
            return dx
        dx = np.zeros(problem.image_shape, dtype=dy.dtype)
        dx[:, :, ::g.sh, ::g.sw][:, :, :g.out_h, :g.out_w] = dxc.reshape(c, n, g.out_h, g.out_w).transpose(1, 0, 2, 3)
        return dx

    def grad_weight(self, x, dy, problem, need_db):
        from ...._kernels import gemm as _gemm
        n, k = problem.batch, problem.out_channels
        xc = _channel_major(_pixels(x, problem))
        dyc = _channel_major(dy.reshape(n, k, -1))
        dw = np.empty(problem.weight_shape, dtype=dy.dtype)
        run_with_kernel_blas(_gemm.matmul, False, True, dyc, xc, dw.reshape(k, -1), threads_for(problem.flops))
        db = dyc.sum(axis=1) if need_db else None
        return dw, db

    def workspace_bytes(self, problem, pass_, need_db=False):
        g = problem.geometry
        pixels = problem.batch * g.out_h * g.out_w
        c, k, itemsize = problem.in_channels, problem.out_channels, problem.itemsize
        # the strided copy lives only until its channel-major copy is made
        copies = max(2 * c * pixels if _strided(problem) else 0, c * pixels + k * pixels)
        if pass_ == "grad_input":
            return itemsize * (k * pixels + c * pixels)
        return itemsize * (copies + (k if pass_ == "grad_weight" and need_db else 0))


POINTWISE_BATCHED = register(PointwiseBatchedPath())
