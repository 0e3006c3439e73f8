"""Depthwise and channel-multiplier convolution (groups == C, K = m·C): direct loops, no GEMM
(_kernels/depthwise.pyx). Two paths:

* ``depthwise``: float32, K = C, on AVX-512 or AVX2+FMA: each image copied channel-minor so
  every tap is a run of whole vectors over channels (any image size, stride, dilation);
* ``depthwise_planes``: any dtype and multiplier: per-plane loops vectorized along rows."""
from __future__ import annotations

import numpy as np

from ...._kernels import depthwise as _dw
from .common import dummy, threads_for
from .geometry import ConvProblem
from .registry import ConvPath, register


def _is_depthwise(problem: ConvProblem) -> bool:
    """Every output channel reads exactly one input channel: C/groups == 1."""
    return problem.weight_shape[1] == 1 and problem.geometry.groups == problem.in_channels


def _threads(problem: ConvProblem) -> int:
    return threads_for(problem.flops)


class DepthwisePlanesPath(ConvPath):
    name = "depthwise_planes"
    priority = 40

    def eligible(self, problem, pass_):
        return _is_depthwise(problem)

    def preferred(self, problem, pass_):
        return problem.geometry.groups > 1

    def forward(self, x, weight, bias, problem):
        g = problem.geometry
        y = np.empty(problem.out_shape, dtype=x.dtype)
        has_bias = bias is not None
        _dw.depthwise_forward(x, weight.reshape(weight.shape[0], -1), bias if has_bias else dummy(x.dtype, 1),
                              has_bias, y, g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, g.dh, g.dw, _threads(problem))
        return y

    def grad_input(self, weight, dy, problem):
        g = problem.geometry
        dx = np.empty(problem.image_shape, dtype=dy.dtype)
        _dw.depthwise_grad_input(dy, weight.reshape(weight.shape[0], -1), dx, g.kh, g.kw, g.sh, g.sw,
                                 g.ph, g.pw, g.dh, g.dw, _threads(problem))
        return dx

    def grad_weight(self, x, dy, problem, need_db):
        g = problem.geometry
        k = problem.out_channels
        threads = _threads(problem)
        dw = np.empty(problem.weight_shape, dtype=dy.dtype)
        db = np.empty(k, dtype=dy.dtype) if need_db else dummy(dy.dtype, 1)
        work = np.empty((threads, _dw.grad_weight_work_elements(g.kh, g.kw, g.out_w)), dtype=dy.dtype)
        _dw.depthwise_grad_weight(x, dy, dw.reshape(k, -1), db, need_db, work, g.kh, g.kw, g.sh, g.sw,
                                  g.ph, g.pw, g.dh, g.dw, threads)
        return dw, (db if need_db else None)

    def workspace_bytes(self, problem, pass_, need_db=False):
        if pass_ != "grad_weight":
            return 0
        g = problem.geometry
        return _threads(problem) * _dw.grad_weight_work_elements(g.kh, g.kw, g.out_w) * problem.itemsize


class DepthwisePath(ConvPath):
    name = "depthwise"
    priority = 50

    def eligible(self, problem, pass_):
        return (_is_depthwise(problem) and problem.out_channels == problem.in_channels
                and problem.dtype == "float32" and _dw.channel_width() > 0)

    def preferred(self, problem, pass_):
        # whole vectors of channels pay off once a vector is mostly used
        return problem.in_channels >= _dw.channel_width()

    @staticmethod
    def _layout(problem: ConvProblem):
        """(Cp, copies of the channel-minor buffers, threads)."""
        threads = _threads(problem)
        n = problem.batch
        copies = threads if _dw.channel_images_per_thread(n, threads) else n
        return _dw.channel_padded(problem.in_channels), copies, threads

    @staticmethod
    def _filter(weight: np.ndarray, cp: int) -> np.ndarray:
        """The weight as (taps, Cp), zeros past C: one vector row of channels per tap."""
        c = weight.shape[0]
        wt = np.zeros((weight.shape[2] * weight.shape[3], cp), dtype=np.float32)
        wt[:, :c] = weight.reshape(c, -1).T
        return wt

    def forward(self, x, weight, bias, problem):
        g = problem.geometry
        n, c, h, w = problem.image_shape
        cp, copies, threads = self._layout(problem)
        bias_p = np.zeros(cp, dtype=np.float32)
        if bias is not None:
            bias_p[:c] = bias
        y = np.empty(problem.out_shape, dtype=np.float32)
        xt = np.empty((copies, h * w, cp), dtype=np.float32)
        yt = np.empty((copies, g.out_h * g.out_w, cp), dtype=np.float32)
        scratch = np.empty((threads, c * _dw.channel_width()), dtype=np.float32)
        rows = _dw.channel_rows_per_item(n, g.out_h, g.out_w * cp, threads)
        _dw.channel_forward(x.reshape(n, c, h * w), self._filter(weight, cp), bias_p,
                            y.reshape(n, c, -1), xt, yt, scratch, h, w, g.out_h, g.out_w, g.kh, g.kw,
                            g.sh, g.sw, g.ph, g.pw, g.dh, g.dw, rows, threads)
        return y

    def backward(self, x, weight, dy, problem, need_dx, need_dw, need_db):
        if not (need_dx or need_dw):
            return None, None, None
        g = problem.geometry
        n, c, h, w = problem.image_shape
        cp, copies, threads = self._layout(problem)
        po, taps = g.out_h * g.out_w, g.kh * g.kw
        f32 = np.float32
        dx = np.empty(problem.image_shape, dtype=f32) if need_dx else dummy(f32, 4)
        dw_rows = _dw.channel_dw_rows_per_item(n, g.out_h, g.out_w * cp)
        parts = (np.empty((n * -(-g.out_h // dw_rows), taps + 1, cp), dtype=f32) if need_dw
                 else dummy(f32, 3))
        _dw.channel_backward(
            x.reshape(n, c, h * w) if need_dw else dummy(f32, 3), dy.reshape(n, c, po),
            self._filter(weight, cp) if need_dx else np.zeros((taps, cp), f32), dx.reshape(n, c, h * w) if need_dx else dummy(f32, 3), parts,
            need_dx, need_dw, need_db and need_dw,
            np.empty((copies, h * w, cp), f32) if need_dw else dummy(f32, 3),
            np.empty((copies, po, cp), f32),
            np.empty((copies, h * w, cp), f32) if need_dx else dummy(f32, 3),
            np.empty((threads, c * _dw.channel_width()), f32), h, w, g.out_h, g.out_w, g.kh, g.kw,
            g.sh, g.sw, g.ph, g.pw, g.dh, g.dw,
            _dw.channel_rows_per_item(n, h, w * cp, threads), dw_rows, threads)
        dw = db = None
        if need_dw:
            total = parts.sum(axis=0)  # item order: the same at any thread count
            dw = np.empty(problem.weight_shape, dtype=f32)  # its own array: kept as .grad, no copy
            dw.reshape(c, taps)[...] = total[:taps, :c].T
            db = total[taps, :c].copy() if need_db else None
        return (dx if need_dx else None), dw, db

    def grad_input(self, weight, dy, problem):
        return self.backward(None, weight, dy, problem, True, False, False)[0]

    def grad_weight(self, x, dy, problem, need_db):
        _, dw, db = self.backward(x, None, dy, problem, False, True, need_db)
        return dw, db

    def workspace_bytes(self, problem, pass_, need_db=False):
        g = problem.geometry
        n, c, h, w = problem.image_shape
        cp, copies, threads = self._layout(problem)
        po, taps = g.out_h * g.out_w, g.kh * g.kw
        scratch = threads * c * _dw.channel_width() + taps * cp
        if pass_ == "forward":
            return 4 * (copies * (h * w + po) * cp + scratch + cp)
        if pass_ == "grad_input":
            return 4 * (copies * (po + h * w) * cp + scratch)
        return 4 * (copies * (po + h * w) * cp + scratch + self._parts(problem, cp) + (taps + 1) * cp)

    @staticmethod
    def _parts(problem: ConvProblem, cp: int) -> int:
        """Elements of the dW/db partial sums: one (taps + 1) × Cp block per row-block item."""
        g = problem.geometry
        dw_rows = _dw.channel_dw_rows_per_item(problem.batch, g.out_h, g.out_w * cp)
        return problem.batch * -(-g.out_h // dw_rows) * (g.kh * g.kw + 1) * cp

    def backward_workspace_bytes(self, problem, need_db=False):
        """Bytes of the one call computing dX and dW: channel-minor dY, x and dX, the filter,
        scratch, the partials and their sum."""
        g = problem.geometry
        n, c, h, w = problem.image_shape
        cp, copies, threads = self._layout(problem)
        po, taps = g.out_h * g.out_w, g.kh * g.kw
        scratch = threads * c * _dw.channel_width() + taps * cp
        return 4 * (copies * (po + 2 * h * w) * cp + scratch + self._parts(problem, cp) + (taps + 1) * cp)


DEPTHWISE_PLANES = register(DepthwisePlanesPath())
DEPTHWISE = register(DepthwisePath())
