"""Activations as Functions with closed-form backward; softmax/log_softmax are overflow-free."""
from __future__ import annotations

import numpy as np

from ..._config import elementwise_threads
from ..._kernels import elementwise as _ew
from ...autograd.function import Function, shape_nbytes
from ._args import as_float_tensor
from ...tensor import Tensor

_NO_MASK = np.empty(0, dtype=np.uint8)


class ReLU(Function):
    """max(x, 0) in one pass of an OpenMP kernel that also writes the mask x > 0 (NaN propagates);
    backward is g where the mask is set."""

    @staticmethod
    def forward(ctx, x):
        xc = np.ascontiguousarray(x)
        y = np.empty(x.shape, dtype=x.dtype)
        mask = np.empty(x.shape, dtype=np.bool_) if ctx.needs_input_grad[0] else None
        _ew.relu(xc.reshape(-1), y.reshape(-1), _NO_MASK if mask is None else mask.reshape(-1).view(np.uint8),
                 elementwise_threads(y.size))
        ctx.save_for_backward(mask)  # one byte per element, all backward needs
        return y

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
        """Transient bytes of forward beyond output and saved arrays: none (the kernel writes the
        output and, when saved, the mask)."""
        return 0

    @staticmethod
    def backward(ctx, g):
        (mask,) = ctx.saved_tensors
        dx = np.empty(mask.shape, dtype=g.dtype)
        _ew.mask_grad(np.ascontiguousarray(g).reshape(-1), mask.reshape(-1).view(np.uint8), dx.reshape(-1),
                      elementwise_threads(dx.size))
        return dx


class LeakyReLU(Function):
    @staticmethod
    def forward(ctx, x, slope=0.01):
        mask = x > 0
        ctx.save_for_backward(mask)
        ctx.slope = slope
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


def relu(x, inplace: bool = False) -> Tensor:
    """max(x, 0)."""
    return ReLU.apply(as_float_tensor(x, "relu"))


def leaky_relu(x, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    """x for x > 0, negative_slope·x otherwise."""
    return LeakyReLU.apply(as_float_tensor(x, "leaky_relu"), slope=negative_slope)


def elu(x, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    """x for x > 0, alpha·(exp(x) − 1) otherwise."""
    return ELU.apply(as_float_tensor(x, "elu"), alpha=alpha)


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
