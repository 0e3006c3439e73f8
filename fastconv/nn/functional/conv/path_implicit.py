"""Implicit GEMM ("direct"): stride 1, groups 1, shallow depth (docs/design.md §3,
_kernels/direct.pyx). The shallow loops read rows of shifted or zero-padded copies of the
image in place: no column buffer, no col2im; dX is a direct convolution of padded dY, and one
kernel call computes dX, dW and db together."""
from __future__ import annotations

from typing import NamedTuple

from ...._kernels import direct as _direct
from .common import memoized_plan, threads_for
from .geometry import ConvGeometry
from .registry import ConvPath, register

# Heuristic: C ≥ MIN_CHANNELS (C = 1 loses to the shallow im2col path: dX reads each vector of
# dY for one multiply-add per input channel), depth C·kh·kw ≤ MAX_DEPTH, K ≤ MAX_K, and at
# least as many images as threads when the call runs parallel (images are its only parallel axis).
MIN_CHANNELS = 2
MAX_DEPTH = 72
MAX_K = 32


def geometry_eligible(image_shape, g: ConvGeometry) -> bool:
    """Stride 1, groups 1, and every padding ≤ dilation·(kernel − 1) (so dX is a convolution of
    dY padded by the complement)."""
    if (g.sh, g.sw, g.groups) != (1, 1, 1):
        return False
    reach_h, reach_w = g.dh * (g.kh - 1), g.dw * (g.kw - 1)
    bottom = g.out_h + reach_h - image_shape[2] - g.ph
    right = g.out_w + reach_w - image_shape[3] - g.pw
    return max(g.ph, bottom) <= reach_h and max(g.pw, right) <= reach_w


class DirectPlan(NamedTuple):
    weight_size: int      # elements of the weight (K·C·kh·kw)
    threads: int          # OpenMP threads for the call
    parallel: bool        # images in a prange (else one after another)
    buffers: int          # scratch rows and dW/db partials (one per thread when parallel)
    forward: int          # forward scratch elements per buffer
    backward: int         # backward scratch elements per buffer
    filter: int           # elements of the dX pass's rotated filter
    forward_buffers: int  # forward scratch rows: one per thread also when the threads split
                          # each image's columns or output channels (fewer images than threads)
    backward_buffers: int  # backward scratch rows: one per thread also when the threads split
                           # each image's channels (fewer images than threads)


@memoized_plan
def direct_plan(image_shape, out_channels: int, g: ConvGeometry, need_dx: bool = True,
                need_dw: bool = True) -> DirectPlan:
    n, c, h, w = image_shape
    threads = threads_for(2.0 * n * out_channels * c * g.kh * g.kw * g.out_h * g.out_w)
    parallel = threads > 1 and n >= threads
    fwd, bwd, filt = _direct.workspace_elements(c, h, w, out_channels, g.kh, g.kw, g.dh, g.dw,
                                                g.out_h, g.out_w, need_dx, need_dw)
    return DirectPlan(out_channels * c * g.kh * g.kw, threads, parallel, threads if parallel else 1,
                      fwd, bwd, filt, _direct.forward_buffers(out_channels, g.out_h, g.out_w, threads, parallel),
                      _direct.backward_buffers(c, threads, parallel))


class ImplicitPath(ConvPath):
    name = "implicit"
    priority = 20

    def eligible(self, problem, pass_):
        return geometry_eligible(problem.image_shape, problem.geometry)

    def worth_measuring(self, problem, pass_):
        # shallow loops over the depth: within a few times the rule's bounds
        g = problem.geometry
        return (problem.in_channels * g.kh * g.kw <= 4 * MAX_DEPTH
                and problem.out_channels <= 4 * MAX_K)

    def preferred(self, problem, pass_):
        g = problem.geometry
        channels, k = problem.in_channels, problem.out_channels
        if channels < MIN_CHANNELS or k > MAX_K or channels * g.kh * g.kw > MAX_DEPTH:
            return False
        threads = direct_plan(problem.image_shape, k, g).threads
        return threads == 1 or problem.batch >= threads

    def forward(self, x, weight, bias, problem):
        g = problem.geometry
        plan = direct_plan(problem.image_shape, problem.out_channels, g)
        return _direct.direct_forward(x, weight.reshape(problem.weight_matrix_shape), bias, g.kh, g.kw,
                                      g.ph, g.pw, g.dh, g.dw, g.out_h, g.out_w, plan.parallel,
                                      plan.threads)

    def backward(self, x, weight, dy, problem, need_dx, need_dw, need_db):
        """dX, dW and db in one kernel call (db only with dW); x is read only for dW, the
        weight only for dX."""
        if not (need_dx or need_dw):
            return None, None, None
        g = problem.geometry
        plan = direct_plan(problem.image_shape, problem.out_channels, g, need_dx, need_dw)
        _, c, h, w = problem.image_shape
        w2 = weight.reshape(problem.weight_matrix_shape) if need_dx else None
        dx, dw, db = _direct.direct_backward(x if need_dw else None, w2, dy, c, h, w, g.kh, g.kw,
                                             g.ph, g.pw, g.dh, g.dw, need_dx, need_dw, need_db,
                                             plan.parallel, plan.threads)
        return dx, (None if dw is None else dw.reshape(problem.weight_shape)), db

    def grad_input(self, weight, dy, problem):
        return self.backward(None, weight, dy, problem, True, False, False)[0]

    def grad_weight(self, x, dy, problem, need_db):
        _, dw, db = self.backward(x, None, dy, problem, False, True, need_db)
        return dw, db

    def workspace_bytes(self, problem, pass_, need_db=False):
        k, g, itemsize = problem.out_channels, problem.geometry, problem.itemsize
        if pass_ == "forward":
            plan = direct_plan(problem.image_shape, k, g)
            return plan.forward_buffers * plan.forward * itemsize
        need_dx = pass_ == "grad_input"
        plan = direct_plan(problem.image_shape, k, g, need_dx, not need_dx)
        partials = (plan.buffers * (plan.weight_size + (k if need_db else 0))
                    if plan.buffers > 1 and not need_dx else 0)
        return (plan.backward_buffers * plan.backward + (plan.filter if need_dx else 0) + partials) * itemsize

    def backward_workspace_bytes(self, problem, need_db=False):
        """Bytes of the fused call computing dX and dW together."""
        k, g, itemsize = problem.out_channels, problem.geometry, problem.itemsize
        plan = direct_plan(problem.image_shape, k, g)
        partials = plan.buffers * (plan.weight_size + (k if need_db else 0)) if plan.buffers > 1 else 0
        return (plan.backward_buffers * plan.backward + plan.filter + partials) * itemsize


IMPLICIT = register(ImplicitPath())
