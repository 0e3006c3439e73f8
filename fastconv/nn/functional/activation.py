"""Activations as Functions with closed-form backward; softmax/log_softmax are overflow-free.

ReLU6, SiLU, GELU and Hardswish run Cython kernels (``fastconv/_kernels/activation.pyx``);
the others are numpy expressions.
"""
from __future__ import annotations

import numpy as np

from ..._config import elementwise_threads, get_num_threads
from ..._kernels import activation as _act
from ..._kernels import elementwise as _ew
from ...autograd.function import Function, shape_nbytes
from ._args import as_float_tensor
from ...tensor import Tensor

_NO_MASK = np.empty(0, dtype=np.uint8)


class ReLU(Function):
    """max(x, 0) in one pass of an OpenMP kernel that also writes the mask x > 0 (NaN propagates);
    backward is g where the mask is set."""

    @staticmethod
    def forward(ctx, x, inplace=False):
        # in place the kernel writes y over x element by element; the mask, from y, is the same
        y = x if inplace and x.flags.c_contiguous else np.empty(x.shape, dtype=x.dtype)
        mask = np.empty(x.shape, dtype=np.bool_) if ctx.needs_input_grad[0] else None
        _ew.relu(np.ascontiguousarray(x).reshape(-1), y.reshape(-1),
                 _NO_MASK if mask is None else mask.reshape(-1).view(np.uint8), elementwise_threads(y.size))
        ctx.save_for_backward(mask)  # one byte per element, all backward needs
        if inplace and y is not x:
            x[...] = y
            return x
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


# ---- ReLU6, SiLU, GELU, Hardswish: Cython kernels (fastconv/_kernels/activation.pyx) -------------
# Below this many elements one thread does the whole array (an OpenMP region costs more than the
# memory-bound pass it would split).
PARALLEL_MIN_ELEMENTS = 1 << 15
_NO_MASK = np.empty(0, dtype=np.uint8)


def _kernel_threads(n: int) -> int:
    return get_num_threads() if n >= PARALLEL_MIN_ELEMENTS else 1


def _flat(a: np.ndarray) -> np.ndarray:
    """A 1-D view of a C-contiguous array (the layout the kernels take)."""
    return a.reshape(-1)


def _elements(shapes) -> int:
    return int(np.prod(shapes[0], dtype=np.int64))


class _SavesMask(Function):
    """An activation whose gradient is g where a saved boolean mask is set, 0 elsewhere."""

    @staticmethod
    def saved_bytes(shapes, dtype, needs_input_grad, **options) -> int:
        """The boolean mask: one byte per element."""
        return _elements(shapes) if needs_input_grad[0] else 0

    @staticmethod
    def workspace_bytes(shapes, dtype, **options) -> int:
        """Transient bytes of backward beyond its result: none (g·mask)."""
        return 0

    @staticmethod
    def backward(ctx, g):
        (mask,) = ctx.saved_tensors
        return g * mask


class ReLU6(_SavesMask):
    """min(max(x, 0), 6); saves the mask 0 < x < 6 (one byte per element), as ReLU does."""

    @staticmethod
    def forward(ctx, x):
        x = np.ascontiguousarray(x)
        out = np.empty_like(x)
        mask = np.empty(x.shape, dtype=np.bool_) if ctx.recording else _NO_MASK
        _act.relu6_forward(_flat(x), _flat(out), _flat(mask).view(np.uint8), ctx.recording,
                           _kernel_threads(x.size))
        ctx.save_for_backward(mask)
        return out

    @staticmethod
    def forward_workspace_bytes(shapes, dtype, needs_input_grad, **options) -> int:
        """Transient bytes of forward beyond output and saved arrays: none."""
        return 0


class _SavesInput(Function):
    """A kernel activation whose backward recomputes its derivative from the saved input."""

    @staticmethod
    def saved_bytes(shapes, dtype, needs_input_grad, **options) -> int:
        """The input (a contiguous copy when it was not contiguous)."""
        return shape_nbytes(shapes[0], dtype) if needs_input_grad[0] else 0

    @staticmethod
    def workspace_bytes(shapes, dtype, **options) -> int:
        """Transient bytes of backward beyond its result: none (one kernel pass writes dx)."""
        return 0

    @staticmethod
    def forward_workspace_bytes(shapes, dtype, needs_input_grad, **options) -> int:
        """Transient bytes of forward beyond output and saved arrays: none."""
        return 0

    @staticmethod
    def _run(ctx, x, kernel, *options):
        x = np.ascontiguousarray(x)
        out = np.empty_like(x)
        kernel(_flat(x), _flat(out), *options, _kernel_threads(x.size))
        ctx.save_for_backward(x)
        return out

    @staticmethod
    def _grad(ctx, g, kernel, *options):
        (x,) = ctx.saved_tensors
        g = np.ascontiguousarray(g, dtype=x.dtype)
        dx = np.empty_like(x)
        kernel(_flat(x), _flat(g), _flat(dx), *options, _kernel_threads(x.size))
        return dx


class SiLU(_SavesInput):
    """x·sigmoid(x) (swish)."""

    @staticmethod
    def forward(ctx, x):
        return _SavesInput._run(ctx, x, _act.silu_forward)

    @staticmethod
    def backward(ctx, g):
        return _SavesInput._grad(ctx, g, _act.silu_backward)


class GELU(_SavesInput):
    """x·Φ(x) with Φ the standard normal CDF (erf), or PyTorch's tanh approximation."""

    @staticmethod
    def forward(ctx, x, approximate="none"):
        ctx.tanh = approximate == "tanh"
        return _SavesInput._run(ctx, x, _act.gelu_forward, ctx.tanh)

    @staticmethod
    def backward(ctx, g):
        return _SavesInput._grad(ctx, g, _act.gelu_backward, ctx.tanh)


class Hardswish(_SavesInput):
    """x·min(max(x + 3, 0), 6)/6 (MobileNetV3)."""

    @staticmethod
    def forward(ctx, x):
        return _SavesInput._run(ctx, x, _act.hardswish_forward)

    @staticmethod
    def backward(ctx, g):
        return _SavesInput._grad(ctx, g, _act.hardswish_backward)


# ---- Hardsigmoid, Softplus, Mish, PReLU: numpy ----------------------------------------------------
class Hardsigmoid(Function):
    """min(max(x + 3, 0), 6)/6; saves the mask −3 < x < 3 (where the slope is 1/6)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward((x > -3) & (x < 3))
        return np.clip(x + 3, 0, 6) / x.dtype.type(6)

    @staticmethod
    def saved_bytes(shapes, dtype, needs_input_grad, **options) -> int:
        """The boolean mask −3 < x < 3: one byte per element."""
        return _elements(shapes) if needs_input_grad[0] else 0

    @staticmethod
    def workspace_bytes(shapes, dtype, **options) -> int:
        """Transient bytes of backward beyond its result: g/6."""
        return shape_nbytes(shapes[0], dtype)

    @staticmethod
    def forward_workspace_bytes(shapes, dtype, needs_input_grad, **options) -> int:
        """Transient bytes of forward beyond output and saved arrays: x + 3, its clip, two compares."""
        n = _elements(shapes)
        return 2 * shape_nbytes(shapes[0], dtype) + 2 * n + (0 if needs_input_grad[0] else n)

    @staticmethod
    def backward(ctx, g):
        (mask,) = ctx.saved_tensors
        return g * g.dtype.type(1 / 6) * mask


class Hardtanh(_SavesMask):
    """min(max(x, min_val), max_val) with PyTorch's gradient: 0 at and beyond the bounds, 1 elsewhere
    (NaN included; ReLU6 is the kernel-backed case 0, 6); saves that mask, one byte per element."""

    @staticmethod
    def forward(ctx, x, min_val=-1.0, max_val=1.0):
        lo, hi = x.dtype.type(min_val), x.dtype.type(max_val)
        ctx.save_for_backward(~((x <= lo) | (x >= hi)))  # NaN passes its gradient, as PyTorch's
        return np.clip(x, lo, hi)

    @staticmethod
    def forward_workspace_bytes(shapes, dtype, needs_input_grad, **options) -> int:
        """Transient bytes of forward beyond output and saved arrays: the two compares and their or."""
        n = _elements(shapes)
        return 3 * n + (0 if needs_input_grad[0] else n)


def _softplus_of(z: np.ndarray) -> np.ndarray:
    """log(1 + exp(z)) without overflow."""
    return np.maximum(z, 0) + np.log1p(np.exp(-np.abs(z)))


class Softplus(Function):
    """log(1 + exp(β·x))/β, or x where β·x > threshold (PyTorch's switch to the linear branch)."""

    @staticmethod
    def forward(ctx, x, beta=1.0, threshold=20.0):
        z = x * x.dtype.type(beta)
        ctx.save_for_backward(x)
        ctx.options = (beta, threshold)
        soft = _softplus_of(z)
        if beta != 1:
            soft /= x.dtype.type(beta)
        return np.where(z > threshold, x, soft)

    @staticmethod
    def saved_bytes(shapes, dtype, needs_input_grad, **options) -> int:
        """The input."""
        return shape_nbytes(shapes[0], dtype) if needs_input_grad[0] else 0

    @staticmethod
    def workspace_bytes(shapes, dtype, **options) -> int:
        """Transient bytes of backward beyond its result: β·x, the sigmoid's temporaries, g·σ."""
        return 4 * shape_nbytes(shapes[0], dtype) + _elements(shapes)

    @staticmethod
    def forward_workspace_bytes(shapes, dtype, needs_input_grad, **options) -> int:
        """Transient bytes of forward beyond output and saved arrays: β·x, softplus and its temporaries."""
        return 4 * shape_nbytes(shapes[0], dtype) + _elements(shapes)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        beta, threshold = ctx.options
        z = x * x.dtype.type(beta)
        return np.where(z > threshold, g, g * _sigmoid_of(z))


class Mish(Function):
    """x·tanh(softplus(x)); backward recomputes from the saved input."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * np.tanh(_softplus_of(x))

    @staticmethod
    def saved_bytes(shapes, dtype, needs_input_grad, **options) -> int:
        """The input."""
        return shape_nbytes(shapes[0], dtype) if needs_input_grad[0] else 0

    @staticmethod
    def workspace_bytes(shapes, dtype, **options) -> int:
        """Transient bytes of backward beyond its result: softplus, tanh, sigmoid and products."""
        return 5 * shape_nbytes(shapes[0], dtype) + _elements(shapes)

    @staticmethod
    def forward_workspace_bytes(shapes, dtype, needs_input_grad, **options) -> int:
        """Transient bytes of forward beyond output and saved arrays: softplus and its temporaries."""
        return 3 * shape_nbytes(shapes[0], dtype)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        t = np.tanh(_softplus_of(x))
        return g * (t + x * _sigmoid_of(x) * (1 - t * t))


class PReLU(Function):
    """x where x > 0, a·x elsewhere, with a learnable slope per channel (axis 1) or one for all."""

    @staticmethod
    def forward(ctx, x, weight):
        a = _channel_view(weight, x.ndim)
        positive = x > 0
        ctx.save_for_backward(x, a, positive)
        ctx.weight_shape = weight.shape
        return np.where(positive, x, a * x)

    @staticmethod
    def saved_bytes(shapes, dtype, needs_input_grad, **options) -> int:
        """The input, the weight (a view) and the mask x > 0."""
        if not any(needs_input_grad):
            return 0
        return shape_nbytes(shapes[0], dtype) + shape_nbytes(shapes[1], dtype) + _elements(shapes)

    @staticmethod
    def workspace_bytes(shapes, dtype, **options) -> int:
        """Transient bytes of backward beyond its results: a·g and x·g."""
        return 2 * shape_nbytes(shapes[0], dtype)

    @staticmethod
    def backward(ctx, g):
        x, a, positive = ctx.saved_tensors
        dx = np.where(positive, g, a * g) if ctx.needs_input_grad[0] else None
        dw = None
        if ctx.needs_input_grad[1]:
            contrib = np.where(positive, 0, x * g)
            if int(np.prod(ctx.weight_shape, dtype=np.int64)) == 1 or x.ndim < 2:
                dw = np.asarray(contrib.sum(), dtype=g.dtype).reshape(ctx.weight_shape)
            else:
                axes = (0,) + tuple(range(2, x.ndim))
                dw = contrib.sum(axis=axes).astype(g.dtype, copy=False).reshape(ctx.weight_shape)
        return dx, dw


def _channel_view(weight: np.ndarray, ndim: int) -> np.ndarray:
    """The PReLU weight shaped to broadcast along axis 1 of an ``ndim``-D input."""
    if weight.size == 1 or ndim < 2:
        return weight.reshape(())
    return weight.reshape((1, -1) + (1,) * (ndim - 2))


def _sigmoid_of(z: np.ndarray) -> np.ndarray:
    """Sigmoid on arrays without recording (exp of −|z| never overflows)."""
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e)).astype(z.dtype, copy=False)


def relu6(x, inplace: bool = False) -> Tensor:
    """min(max(x, 0), 6). ``inplace`` is accepted for PyTorch compatibility (the result is a new tensor)."""
    return ReLU6.apply(as_float_tensor(x, "relu6"))


def hardtanh(x, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False) -> Tensor:
    """min(max(x, min_val), max_val), gradient 0 at the bounds as PyTorch's. ``inplace`` is accepted
    for PyTorch compatibility (the result is a new tensor)."""
    x = as_float_tensor(x, "hardtanh")
    for name, v in (("min_val", min_val), ("max_val", max_val)):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise TypeError(f"hardtanh: expected {name} as a number, got {type(v).__name__}")
    if min_val > max_val:
        raise ValueError(f"hardtanh: expected min_val <= max_val, got min_val {min_val} and max_val {max_val}")
    return Hardtanh.apply(x, min_val=float(min_val), max_val=float(max_val))


def silu(x, inplace: bool = False) -> Tensor:
    """x·sigmoid(x). ``inplace`` is accepted for PyTorch compatibility (the result is a new tensor)."""
    return SiLU.apply(as_float_tensor(x, "silu"))


def gelu(x, approximate: str = "none") -> Tensor:
    """x·Φ(x) (``approximate='none'``, erf) or 0.5·x·(1 + tanh(√(2/π)(x + 0.044715x³))) ('tanh')."""
    x = as_float_tensor(x, "gelu")
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: expected approximate 'none' or 'tanh', got {approximate!r}")
    return GELU.apply(x, approximate=approximate)


def hardswish(x, inplace: bool = False) -> Tensor:
    """x·min(max(x + 3, 0), 6)/6. ``inplace`` is accepted for PyTorch compatibility."""
    return Hardswish.apply(as_float_tensor(x, "hardswish"))


def hardsigmoid(x, inplace: bool = False) -> Tensor:
    """min(max(x + 3, 0), 6)/6. ``inplace`` is accepted for PyTorch compatibility."""
    return Hardsigmoid.apply(as_float_tensor(x, "hardsigmoid"))


def mish(x, inplace: bool = False) -> Tensor:
    """x·tanh(softplus(x)). ``inplace`` is accepted for PyTorch compatibility."""
    return Mish.apply(as_float_tensor(x, "mish"))


def _real(value, op: str, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{op}: expected {name} as a real number, got {value!r}")
    return float(value)


def softplus(x, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """log(1 + exp(β·x))/β, linear (x) where β·x > threshold; never overflows."""
    x = as_float_tensor(x, "softplus")
    beta = _real(beta, "softplus", "beta")
    threshold = _real(threshold, "softplus", "threshold")
    if beta == 0:
        raise ValueError("softplus: expected a non-zero beta, got 0")
    return Softplus.apply(x, beta=beta, threshold=threshold)


def prelu(x, weight) -> Tensor:
    """x where x > 0, weight·x elsewhere; ``weight`` has one element or one per channel (axis 1)."""
    x = as_float_tensor(x, "prelu")
    weight = as_float_tensor(weight, "prelu", "weight")
    if weight.dtype != x.dtype:
        raise TypeError(f"prelu: expected weight of the input's dtype {x.dtype}, got {weight.dtype}")
    if weight.ndim > 1:
        raise ValueError(f"prelu: expected weight as a scalar or 1-D tensor, got shape {tuple(weight.shape)}")
    if weight.size != 1:
        if x.ndim == 0:
            raise ValueError(f"prelu: a 0-D input needs a one-element weight, got weight of shape {tuple(weight.shape)}")
        channels = x.shape[1] if x.ndim > 1 else 1
        if weight.size != channels:
            raise ValueError(f"prelu: expected weight with 1 or {channels} elements (the channels, axis 1, of "
                             f"input of shape {tuple(x.shape)}), got {weight.size}")
    return PReLU.apply(x, weight)
