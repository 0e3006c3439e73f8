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


# A depthwise flop takes about this many dense-GEMM flops' time (one multiply-add per loaded
# value, plus the channel-minor transposes): its calls are worth splitting at fewer flops.
FLOP_COST = 6.0


def _threads(problem: ConvProblem) -> int:
    return threads_for(problem.flops, FLOP_COST)


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


def _group_size(problem: ConvProblem) -> int:
    """Channels per group when input and output groups are equal (C/groups == K/groups), else 0."""
    groups = problem.geometry.groups
    cg = problem.weight_shape[1]
    return cg if problem.out_channels // groups == cg and cg * groups == problem.in_channels else 0


class DepthwisePath(ConvPath):
    """Channel-vectorized loops on channel-minor copies (float32, AVX-512 or AVX2+FMA) for
    groups of G = C/groups = K/groups channels: G = 1 here (depthwise, K = C); the ``grouped``
    twin takes G = 2, 4, ... up to the vector width."""

    name = "depthwise"
    priority = 50

    def _eligible_group(self, g: int) -> bool:
        return g == 1

    def eligible(self, problem, pass_):
        g = _group_size(problem)
        return (problem.dtype == "float32" and _dw.channel_width() > 0 and g > 0
                and problem.geometry.groups > 1 and self._eligible_group(g))

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
        """The forward's weight rows: row tap·G + j holds w[k, j, tap] in lane k (zeros past K)."""
        k, g = weight.shape[0], weight.shape[1]
        taps = weight.shape[2] * weight.shape[3]
        wt = np.zeros((taps * g, cp), dtype=np.float32)
        wt.reshape(taps, g, cp)[:, :, :k] = weight.reshape(k, g, taps).transpose(2, 1, 0)  # no temporary
        return wt

    @staticmethod
    def _filter_dx(weight: np.ndarray, cp: int) -> np.ndarray:
        """dX's weight rows: row tap·G + i holds w[base(c) + i, c mod G, tap] in lane c."""
        k, g = weight.shape[0], weight.shape[1]
        taps = weight.shape[2] * weight.shape[3]
        if g == 1:
            return DepthwisePath._filter(weight, cp)
        w3 = weight.reshape(k, g, taps)
        lanes = np.arange(k)
        base, within = lanes - lanes % g, lanes % g
        wt = np.zeros((taps, g, cp), dtype=np.float32)
        for i in range(g):
            wt[:, i, :k] = w3[base + i, within, :].T
        return wt.reshape(taps * g, cp)

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
                            g.sh, g.sw, g.ph, g.pw, g.dh, g.dw, rows, threads, _group_size(problem))
        return y

    def backward(self, x, weight, dy, problem, need_dx, need_dw, need_db):
        if not (need_dx or need_dw):
            return None, None, None
        g = problem.geometry
        n, c, h, w = problem.image_shape
        group = _group_size(problem)
        cp, copies, threads = self._layout(problem)
        po, taps = g.out_h * g.out_w, g.kh * g.kw
        f32 = np.float32
        dx = np.empty(problem.image_shape, dtype=f32) if need_dx else dummy(f32, 4)
        dw_rows = _dw.channel_dw_rows_per_item(n, g.out_h, g.out_w * cp)
        parts = (np.empty((n * -(-g.out_h // dw_rows), taps * group + 1, cp), dtype=f32) if need_dw
                 else dummy(f32, 3))
        _dw.channel_backward(
            x.reshape(n, c, h * w) if need_dw else dummy(f32, 3), dy.reshape(n, c, po),
            self._filter_dx(weight, cp) if need_dx else np.zeros((taps * group, cp), f32),
            dx.reshape(n, c, h * w) if need_dx else dummy(f32, 3), parts,
            need_dx, need_dw, need_db and need_dw,
            np.empty((copies, h * w, cp), f32) if need_dw else dummy(f32, 3),
            np.empty((copies, po, cp), f32),
            np.empty((copies, h * w, cp), f32) if need_dx else dummy(f32, 3),
            np.empty((threads, c * _dw.channel_width()), f32), h, w, g.out_h, g.out_w, g.kh, g.kw,
            g.sh, g.sw, g.ph, g.pw, g.dh, g.dw,
            _dw.channel_rows_per_item(n, h, w * cp, threads), dw_rows, threads, group)
        dw = db = None
        if need_dw:
            # item order: the same at any thread count; db's row is written only when wanted
            total = parts[:, :taps * group + int(bool(need_db))].sum(axis=0)
            dw = np.empty(problem.weight_shape, dtype=f32)  # its own array: kept as .grad, no copy
            k = problem.out_channels
            dw.reshape(k, group, taps)[...] = total[:taps * group, :k].reshape(taps, group, k).transpose(2, 1, 0)
            db = total[taps * group, :k].copy() if need_db else None
        return (dx if need_dx else None), dw, db

    def grad_input(self, weight, dy, problem):
        return self.backward(None, weight, dy, problem, True, False, False)[0]

    def grad_weight(self, x, dy, problem, need_db):
        _, dw, db = self.backward(x, None, dy, problem, False, True, need_db)
        return dw, db

    @staticmethod
    def _parts(problem: ConvProblem, cp: int) -> int:
        """Elements of the dW/db partial sums: one (taps·G + 1) × Cp block per row-block item."""
        g = problem.geometry
        dw_rows = _dw.channel_dw_rows_per_item(problem.batch, g.out_h, g.out_w * cp)
        return problem.batch * -(-g.out_h // dw_rows) * (g.kh * g.kw * _group_size(problem) + 1) * cp

    def _buffers(self, problem: ConvProblem, images: int) -> int:
        """Bytes of ``images`` channel-minor image copies (input-sized), dY's copy, the filter
        and the transposes' scratch."""
        g = problem.geometry
        _, c, h, w = problem.image_shape
        cp, copies, threads = self._layout(problem)
        taps_g = g.kh * g.kw * _group_size(problem)
        return 4 * (copies * (images * h * w + g.out_h * g.out_w) * cp
                    + threads * c * _dw.channel_width() + taps_g * cp)

    def workspace_bytes(self, problem, pass_, need_db=False):
        cp = self._layout(problem)[0]
        g = problem.geometry
        taps_g = g.kh * g.kw * _group_size(problem)
        if pass_ == "forward":
            return self._buffers(problem, 1) + 4 * cp
        if pass_ == "grad_input":
            return self._buffers(problem, 1)
        return self._buffers(problem, 1) + 4 * (self._parts(problem, cp) + (taps_g + 1) * cp)

    def backward_workspace_bytes(self, problem, need_db=False):
        """Bytes of the one call computing dX and dW: channel-minor dY, x and dX, the filter,
        scratch, the partials and their sum."""
        cp = self._layout(problem)[0]
        g = problem.geometry
        taps_g = g.kh * g.kw * _group_size(problem)
        return self._buffers(problem, 2) + 4 * (self._parts(problem, cp) + (taps_g + 1) * cp)


class GroupedPath(DepthwisePath):
    """Grouped convolution (ResNeXt, ShuffleNet) with G = C/groups = K/groups a power of two
    from 2 up to the vector width, on the channel-vectorized loops with in-register permutes."""

    name = "grouped"
    priority = 48

    def _eligible_group(self, g: int) -> bool:
        return 1 < g <= _dw.channel_width() and g & (g - 1) == 0

    def preferred(self, problem, pass_):
        return True


DEPTHWISE_PLANES = register(DepthwisePlanesPath())
DEPTHWISE = register(DepthwisePath())
GROUPED = register(GroupedPath())
