"""conv2d and conv_transpose2d as tape Functions: each pass runs on the path the planner picks."""
from __future__ import annotations

from typing import Tuple

import numpy as np

from ....autograd.function import Function, shape_nbytes
from . import path_gemm, planner, registry
from .common import contiguous
from .geometry import ConvGeometry, problem_from_shapes


def _problem(shapes, dtype, geometry):
    return problem_from_shapes(shapes[0], shapes[1], geometry, dtype)


_PROBLEMS: dict = {}
_PROBLEMS_SIZE = 512


def _call_problem(x: np.ndarray, weight: np.ndarray, geometry: ConvGeometry):
    """The ConvProblem of a call, memoized: a training loop repeats a few geometries."""
    key = (x.shape, weight.shape, geometry, x.dtype.char)
    problem = _PROBLEMS.get(key)
    if problem is None:
        if len(_PROBLEMS) >= _PROBLEMS_SIZE:
            _PROBLEMS.clear()
        problem = _PROBLEMS[key] = problem_from_shapes(x.shape, weight.shape, geometry, x.dtype)
    return problem


class Conv2dFunction(Function):
    """y = conv2d(x, w) + b; saves x only for dW and w only for dX. ``ctx.path``,
    ``ctx.dx_path`` and ``ctx.dw_path`` record the paths the passes took."""

    @staticmethod
    def forward(ctx, x, weight, bias, geometry: ConvGeometry = None):
        # contiguity checked inline: a function call per operand costs at batch 1
        if not x.flags.c_contiguous:
            x = np.ascontiguousarray(x)
        if not weight.flags.c_contiguous:
            weight = np.ascontiguousarray(weight)
        if bias is not None and not bias.flags.c_contiguous:
            bias = np.ascontiguousarray(bias)
        problem = _call_problem(x, weight, geometry)
        ctx.path, y = planner.run(problem, "forward", lambda path: path.forward(x, weight, bias, problem))
        needs = ctx.needs_input_grad
        ctx.save_for_backward(x if needs[1] else None, weight if needs[0] else None)
        ctx.problem = problem
        ctx.geometry = geometry
        return y

    @staticmethod
    def backward(ctx, dy):
        x, weight = ctx.saved_tensors
        need_dx, need_dw, need_db = ctx.needs_input_grad[:3]
        if not dy.flags.c_contiguous:
            dy = np.ascontiguousarray(dy)
        problem = ctx.problem
        dx = dw = db = None
        if need_dx and need_dw:
            dx_name, dx_source = planner.choose(problem, "grad_input")
            dw_name, dw_source = planner.choose(problem, "grad_weight")
            if dx_name == dw_name and "pending" not in (dx_source, dw_source):
                # one path for both gradients: its one kernel call when it has one, on dX's threads
                with planner.planned_threads(problem, "grad_input"):
                    dx, dw, db = registry.get(dx_name).backward(x, weight, dy, problem, True, True, need_db)
                ctx.dx_path = ctx.dw_path = dx_name
                if need_db and db is None:
                    db = dy.sum(axis=(0, 2, 3))
                return dx, dw, db
        if need_dx:
            ctx.dx_path, dx = planner.run(problem, "grad_input", lambda path: path.grad_input(weight, dy, problem))
        if need_dw:
            ctx.dw_path, (dw, db) = planner.run(
                problem, "grad_weight", lambda path: path.grad_weight(x, dy, problem, need_db))
        if need_db and db is None:
            db = dy.sum(axis=(0, 2, 3))
        return dx, dw, db

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
    def workspace_bytes(shapes, dtype, geometry=None, needs_input_grad=(True, True, True)) -> int:
        """Largest transient bytes of backward for the wanted gradients (all by default): its
        dX and dW passes run one after the other, or as one kernel call when both take a path
        with one."""
        problem = _problem(shapes, dtype, geometry)
        need_dx, need_dw = bool(needs_input_grad[0]), bool(needs_input_grad[1])
        need_db = (len(needs_input_grad) > 2 and bool(needs_input_grad[2]) and len(shapes) > 2
                   and shapes[2] is not None)
        dx_name, dx_source = planner.choose(problem, "grad_input")
        dw_name, dw_source = planner.choose(problem, "grad_weight")
        if need_dx and need_dw and dx_name == dw_name and "pending" not in (dx_source, dw_source):
            path = registry.get(dx_name)
            fused = getattr(path, "backward_workspace_bytes", None)
            with planner.planned_threads(problem, "grad_input"):  # backward runs as dX's plan
                if fused is not None:
                    return fused(problem, need_db)
        total = 0
        if need_dx:
            with planner.planned_threads(problem, "grad_input"):
                total = registry.get(dx_name).workspace_bytes(problem, "grad_input")
        if need_dw:
            with planner.planned_threads(problem, "grad_weight"):
                total = max(total, registry.get(dw_name).workspace_bytes(problem, "grad_weight", need_db))
        return total

    @staticmethod
    def forward_workspace_bytes(shapes, dtype, needs_input_grad, geometry=None) -> int:
        """Transient bytes of forward beyond its output and saved arrays."""
        problem = _problem(shapes, dtype, geometry)
        path = registry.get(planner.choose(problem, "forward")[0])
        with planner.planned_threads(problem, "forward"):
            return path.workspace_bytes(problem, "forward")

    @staticmethod
    def macs(shapes, needs_input_grad, geometry=None) -> Tuple[int, int]:
        """Multiply-adds (forward, backward): N·K·OH·OW·(C/groups)·kh·kw per pass; backward
        runs that once for dX and once for dW, each only when needed. These are the direct
        convolution's counts whichever path runs (the Winograd path's GEMMs do 16/36 of them)."""
        n, k = shapes[0][0], shapes[1][0]
        g = geometry
        forward = int(n) * int(k) * g.out_h * g.out_w * int(np.prod(shapes[1][1:], dtype=np.int64))
        return forward, forward * (int(needs_input_grad[0]) + int(needs_input_grad[1]))


class ConvTranspose2dFunction(Function):
    """y = conv_transpose2d(x, w) + b: conv2d's input gradient with w as (C_in, C_out/g·kh·kw),
    on the im2col kernels."""

    @staticmethod
    def forward(ctx, x, weight, bias, geometry: ConvGeometry = None, out_shape=None):
        g = geometry
        x = contiguous(x)
        w2 = contiguous(weight).reshape(weight.shape[0], -1)
        if bias is not None:
            bias = contiguous(bias)
        y, _, _ = path_gemm.backward_kernel(None, w2, x, out_shape, w2.shape, g, True, False, dx_init=bias)
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
        return path_gemm.backward_workspace(out_shape, shapes[0][1], geometry, np.dtype(dtype).itemsize)

    @staticmethod
    def forward_workspace_bytes(shapes, dtype, needs_input_grad, geometry=None, out_shape=None) -> int:
        """Transient bytes of forward beyond its output and saved arrays: the column buffers of
        the input-gradient pass."""
        return path_gemm.backward_workspace(out_shape, shapes[0][1], geometry, np.dtype(dtype).itemsize,
                                            need_dx=True, need_dw=False)

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
        dy = contiguous(dy)
        dx = dw = db = None
        if need_dx:
            dx = path_gemm.forward_kernel(dy, w2, None, ctx.input_shape, g)
        if need_dw:
            ws = ctx.weight_shape
            _, dw2, _ = path_gemm.backward_kernel(dy, None, x, ctx.out_shape, (ws[0], ws[1] * ws[2] * ws[3]),
                                                  g, False, True)
            dw = dw2.reshape(ctx.weight_shape)
        if need_db:
            db = dy.sum(axis=(0, 2, 3))
        return dx, dw, db
