"""Fully connected layer y = x·Wᵀ + b as one Function; the products run in fastconv's GEMM kernel
(OpenMP panels over single-threaded BLAS, like the convolutions: see fastconv/_kernels/gemm.pyx)."""
from __future__ import annotations

import numpy as np

from ..._config import plan_threads, run_with_kernel_blas
from ..._kernels import gemm as _gemm
from ..._validation import check_ndim, check_same_dtype
from ...autograd.function import Function, shape_nbytes
from ._args import as_float_tensor
from ...tensor import Tensor


def _product(a: np.ndarray, b: np.ndarray, trans_a: bool, trans_b: bool, shape=None) -> np.ndarray:
    """op(a)·op(b) for C-contiguous 2-D arrays of one float dtype, allocated in ``shape`` (same
    size; default (m, n)): a gradient returned as a reshaped view is not fresh for the engine,
    which then copies it into the leaf's .grad."""
    m = a.shape[1] if trans_a else a.shape[0]
    n = b.shape[0] if trans_b else b.shape[1]
    out = np.empty((m, n) if shape is None else shape, dtype=a.dtype)
    run_with_kernel_blas(_gemm.matmul, trans_a, trans_b, a, b, out.reshape(m, n), plan_threads())
    return out


class LinearFunction(Function):
    """y = x·Wᵀ + b over the last axis of x; saves x only for dW and W only for dX."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        rows = np.ascontiguousarray(x.reshape(-1, x.shape[-1]))
        weight = np.ascontiguousarray(weight)
        y = _product(rows, weight, False, True)
        if bias is not None:
            y += bias
        needs = ctx.needs_input_grad
        ctx.save_for_backward(rows if needs[1] else None, weight if needs[0] else None)
        ctx.input_shape = x.shape
        return y.reshape(x.shape[:-1] + (weight.shape[0],))

    @staticmethod
    def saved_bytes(shapes, dtype, needs_input_grad) -> int:
        """x (as rows) when the weight needs grad, W when the input needs grad."""
        return ((shape_nbytes(shapes[0], dtype) if needs_input_grad[1] else 0)
                + (shape_nbytes(shapes[1], dtype) if needs_input_grad[0] else 0))

    @staticmethod
    def macs(shapes, needs_input_grad) -> tuple:
        """Multiply-adds (forward, backward): rows·out·in; backward repeats it for dX and for dW."""
        rows = int(np.prod(shapes[0][:-1], dtype=np.int64))
        forward = rows * int(shapes[1][0]) * int(shapes[1][1])
        return forward, forward * (int(needs_input_grad[0]) + int(needs_input_grad[1]))

    @staticmethod
    def backward(ctx, dy):
        rows, weight = ctx.saved_tensors
        need_dx, need_dw, need_db = ctx.needs_input_grad[:3]
        dy_rows = np.ascontiguousarray(dy.reshape(-1, dy.shape[-1]))
        dx = _product(dy_rows, weight, False, False, ctx.input_shape) if need_dx else None
        dw = None
        if need_dw:
            # also for a single row: the GEMM kernel's K=1 product beats numpy's outer product
            # (batch-1 training, 128x1568 float32: 27 vs 36 µs)
            dw = _product(dy_rows, rows, True, False)
        db = None
        if need_db:  # a single row is its own sum (and a copy costs a fifth of a reduction)
            db = dy_rows[0].copy() if len(dy_rows) == 1 else dy_rows.sum(axis=0)
        return dx, dw, db


def linear(input, weight, bias=None) -> Tensor:
    """y = input·weightᵀ + bias; weight is (out_features, in_features), input is (..., in_features)."""
    op = "linear"
    x = as_float_tensor(input, op, "input")
    weight = as_float_tensor(weight, op, "weight")
    if bias is not None:
        bias = as_float_tensor(bias, op, "bias")
    check_same_dtype(op, weight=weight._array, input=x._array, bias=None if bias is None else bias._array)
    check_ndim(weight._array, 2, op, "weight", "(out_features, in_features)")
    if x.ndim < 1:
        raise ValueError(f"{op}: expected input with at least 1 dimension, got a 0-D input")
    out_features, in_features = weight.shape
    if x.shape[-1] != in_features:
        raise ValueError(
            f"{op}: expected input with {in_features} features in its last dimension (weight is "
            f"{tuple(weight.shape)}), got input of shape {tuple(x.shape)}"
        )
    if bias is not None and tuple(bias.shape) != (out_features,):
        raise ValueError(f"{op}: expected bias of shape ({out_features},), got bias of shape {tuple(bias.shape)}")
    return LinearFunction.apply(x, weight, bias)
