"""Activations as Functions with closed-form backward; softmax/log_softmax are overflow-free."""
from __future__ import annotations

import numpy as np

from ...autograd.function import Function, shape_nbytes
from ._args import as_float_tensor
from ...tensor import Tensor


class ReLU(Function):
    @staticmethod
    def forward(ctx, x, inplace=False):
        mask = x > 0
        ctx.save_for_backward(mask)  # one byte per element, all backward needs
        return np.multiply(x, mask, out=x) if inplace else x * mask

    @staticmethod
    def saved_bytes(shapes, dtype, needs_input_grad, **options) -> int:
        """The boolean mask x > 0: one byte per element."""
        return int(np.prod(shapes[0], dtype=np.int64)) if needs_input_grad[0] else 0

    @staticmethod
    def workspace_bytes(shapes, dtype, **options) -> int:
        """Transient bytes of backward beyond its result: none (g·mask)."""
        return 0

    @staticmethod
    def forward_workspace_bytes(shapes, dtype, needs_input_grad, **options) -> int:
        """Transient bytes of forward beyond output and saved arrays: the mask when not saved."""
        return 0 if needs_input_grad[0] else int(np.prod(shapes[0], dtype=np.int64))

    @staticmethod
    def backward(ctx, g):
        (mask,) = ctx.saved_tensors
        return g * mask


class LeakyReLU(Function):
    @staticmethod
    def forward(ctx, x, slope=0.01, inplace=False):
        mask = x > 0
        ctx.save_for_backward(mask)
        ctx.slope = slope
        if inplace:
            np.multiply(x, x.dtype.type(slope), out=x, where=~mask)
            return x
        return np.where(mask, x, x * x.dtype.type(slope))

    @staticmethod
    def saved_bytes(shapes, dtype, needs_input_grad, **options) -> int:
        """The boolean mask x > 0: one byte per element."""
        return int(np.prod(shapes[0], dtype=np.int64)) if needs_input_grad[0] else 0

    @staticmethod
    def workspace_bytes(shapes, dtype, **options) -> int:
        """Transient bytes of backward beyond its result: g·slope."""
        return shape_nbytes(shapes[0], dtype)

    @staticmethod
    def forward_workspace_bytes(shapes, dtype, needs_input_grad, **options) -> int:
        """Transient bytes of forward beyond output and saved arrays: x·slope, and the mask when
        not saved."""
        n = int(np.prod(shapes[0], dtype=np.int64))
        return n * np.dtype(dtype).itemsize + (0 if needs_input_grad[0] else n)

    @staticmethod
    def backward(ctx, g):
        (mask,) = ctx.saved_tensors
        return np.where(mask, g, g * g.dtype.type(ctx.slope))


class ELU(Function):
    @staticmethod
    def forward(ctx, x, alpha=1.0):
        mask = x > 0
        neg = x.dtype.type(alpha) * np.expm1(np.minimum(x, 0))
        ctx.save_for_backward(mask, neg)
        ctx.alpha = alpha
        return np.where(mask, x, neg)

    @staticmethod
    def saved_bytes(shapes, dtype, needs_input_grad, **options) -> int:
        """The boolean mask x > 0 (one byte per element) and the negative branch (input dtype)."""
        n = int(np.prod(shapes[0], dtype=np.int64))
        return n * (1 + np.dtype(dtype).itemsize) if needs_input_grad[0] else 0

    @staticmethod
    def workspace_bytes(shapes, dtype, **options) -> int:
        """Transient bytes of backward beyond its result: neg + alpha."""
        return shape_nbytes(shapes[0], dtype)

    @staticmethod
    def forward_workspace_bytes(shapes, dtype, needs_input_grad, **options) -> int:
        """Transient bytes of forward beyond output and saved arrays: mask and neg when not saved."""
        n = int(np.prod(shapes[0], dtype=np.int64))
        return 0 if needs_input_grad[0] else n * (1 + np.dtype(dtype).itemsize)

    @staticmethod
    def backward(ctx, g):
        mask, neg = ctx.saved_tensors
        return np.where(mask, g, g * (neg + g.dtype.type(ctx.alpha)))


class _SavesOutput(Function):
    """An activation whose backward needs only its output (sigmoid, tanh, softmax, log-softmax):
    it saves the output when the input needs a gradient, and backward makes one input-sized
    temporary beyond its result."""

    @staticmethod
    def saved_bytes(shapes, dtype, needs_input_grad, **options) -> int:
        """The output, the input's shape and dtype."""
        return shape_nbytes(shapes[0], dtype) if needs_input_grad[0] else 0

    @staticmethod
    def workspace_bytes(shapes, dtype, **options) -> int:
        """Transient bytes of backward beyond its result: one input-sized temporary."""
        return shape_nbytes(shapes[0], dtype)


class Sigmoid(_SavesOutput):
    @staticmethod
    def forward(ctx, x):
        # exp of -|x| never overflows
        e = np.exp(-np.abs(x))
        out = np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def forward_workspace_bytes(shapes, dtype, needs_input_grad, **options) -> int:
        """Transient bytes of forward beyond output and saved arrays: exp(-|x|), 1 + e, the
        other branch, and the sign mask."""
        return int(np.prod(shapes[0], dtype=np.int64)) * (3 * np.dtype(dtype).itemsize + 1)

    @staticmethod
    def backward(ctx, g):
        (out,) = ctx.saved_tensors
        return g * out * (1 - out)


class Tanh(_SavesOutput):
    @staticmethod
    def forward(ctx, x):
        out = np.tanh(x)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def forward_workspace_bytes(shapes, dtype, needs_input_grad, **options) -> int:
        """Transient bytes of forward beyond output and saved arrays: none."""
        return 0

    @staticmethod
    def backward(ctx, g):
        (out,) = ctx.saved_tensors
        return g * (1 - out * out)


class Softmax(_SavesOutput):
    @staticmethod
    def forward(ctx, x, axis=-1):
        shifted = x - x.max(axis=axis, keepdims=True)
        e = np.exp(shifted)
        out = e / e.sum(axis=axis, keepdims=True)
        ctx.save_for_backward(out)
        ctx.axis = axis
        return out

    @staticmethod
    def forward_workspace_bytes(shapes, dtype, needs_input_grad, **options) -> int:
        """Transient bytes of forward beyond output and saved arrays: x - max and its exp."""
        return 2 * shape_nbytes(shapes[0], dtype)

    @staticmethod
    def backward(ctx, g):
        (out,) = ctx.saved_tensors
        return out * (g - (g * out).sum(axis=ctx.axis, keepdims=True))


class LogSoftmax(_SavesOutput):
    @staticmethod
    def forward(ctx, x, axis=-1):
        shifted = x - x.max(axis=axis, keepdims=True)
        out = shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))
        ctx.save_for_backward(out)
        ctx.axis = axis
        return out

    @staticmethod
    def forward_workspace_bytes(shapes, dtype, needs_input_grad, **options) -> int:
        """Transient bytes of forward beyond output and saved arrays: x - max while its exp is taken."""
        return shape_nbytes(shapes[0], dtype)

    @staticmethod
    def backward(ctx, g):
        (out,) = ctx.saved_tensors
        return g - np.exp(out) * g.sum(axis=ctx.axis, keepdims=True)


def _check_dim(x: Tensor, dim: int, op: str) -> int:
    if not -max(x.ndim, 1) <= dim < max(x.ndim, 1):
        raise ValueError(f"{op}: dim {dim} out of range for input of shape {x.shape}")
    return dim


def _inplace(x: Tensor, function, op: str, **options) -> Tensor:
    """``function`` written into x's array; x takes over its history (PyTorch's inplace=True)."""
    x._check_inplace(op)
    return x._commit(function.apply(x, inplace=True, **options), op)


def relu(x, inplace: bool = False) -> Tensor:
    """max(x, 0); ``inplace`` overwrites x and returns it."""
    x = as_float_tensor(x, "relu")
    return _inplace(x, ReLU, "relu") if inplace else ReLU.apply(x)


def relu_(x) -> Tensor:
    return relu(x, inplace=True)


def leaky_relu(x, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    """x for x > 0, negative_slope·x otherwise; ``inplace`` overwrites x and returns it."""
    x = as_float_tensor(x, "leaky_relu")
    if inplace:
        return _inplace(x, LeakyReLU, "leaky_relu", slope=negative_slope)
    return LeakyReLU.apply(x, slope=negative_slope)


def leaky_relu_(x, negative_slope: float = 0.01) -> Tensor:
    return leaky_relu(x, negative_slope, inplace=True)


def elu(x, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    """x for x > 0, alpha·(exp(x) − 1) otherwise; ``inplace`` overwrites x and returns it."""
    x = as_float_tensor(x, "elu")
    out = ELU.apply(x, alpha=alpha)
    if not inplace:
        return out
    x._check_inplace("elu")
    return x._commit(out, "elu")


def sigmoid(x) -> Tensor:
    """1 / (1 + exp(−x)), stable for large |x|."""
    return Sigmoid.apply(as_float_tensor(x, "sigmoid"))


def tanh(x) -> Tensor:
    return Tanh.apply(as_float_tensor(x, "tanh"))


def softmax(x, dim: int = -1) -> Tensor:
    """exp(x) / Σ exp(x) along ``dim``, computed on x − max(x) so it never overflows."""
    x = as_float_tensor(x, "softmax")
    return Softmax.apply(x, axis=_check_dim(x, dim, "softmax"))


def log_softmax(x, dim: int = -1) -> Tensor:
    """x − logsumexp(x) along ``dim``, stable at logits of ±1e4."""
    x = as_float_tensor(x, "log_softmax")
    return LogSoftmax.apply(x, axis=_check_dim(x, dim, "log_softmax"))
