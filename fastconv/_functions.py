"""PyTorch's module-level tensor functions (``torch.max(x, 1)``, ``torch.flatten(x, 1)``, ...):
each takes the tensor first and calls the Tensor method of the same name."""
from __future__ import annotations

import numpy as np

from . import _tensor_ops as ops
from .tensor import Tensor, _binary, cat

__all__ = [
    "flatten", "max", "min", "amax", "amin", "argmax", "argmin", "maximum", "minimum", "exp", "log", "sqrt",
    "abs", "sigmoid", "tanh", "relu", "softmax", "log_softmax", "mean", "sum", "std", "var", "norm", "pow",
    "clamp", "clip", "sort", "argsort", "topk", "gather", "scatter", "scatter_add", "index_select",
    "masked_fill", "squeeze", "unsqueeze", "transpose", "permute", "reshape", "chunk", "split", "unbind",
    "eq", "ne", "lt", "le", "gt", "ge", "equal", "allclose", "isnan", "isinf", "isfinite", "any", "all",
    "add", "sub", "mul", "div", "neg", "square", "t", "clone", "detach", "hstack", "vstack", "bincount", "diag",
]


def _t(x, op: str) -> Tensor:
    if isinstance(x, Tensor):
        return x
    if isinstance(x, np.ndarray):
        return Tensor._wrap(x)
    raise TypeError(f"{op}: expected a Tensor, got {type(x).__name__}")


def flatten(input, start_dim: int = 0, end_dim: int = -1):  # noqa: A002 - PyTorch's argument names
    return _t(input, "flatten").flatten(start_dim, end_dim)


def max(input, dim=None, keepdim: bool = False, *, other=None):  # noqa: A001,A002
    """``max(x)``: the largest element; ``max(x, dim)``: (values, indices); ``max(a, b)``: elementwise."""
    if other is not None:
        return maximum(input, other)
    return _t(input, "max").max(dim, keepdim)


def min(input, dim=None, keepdim: bool = False, *, other=None):  # noqa: A001,A002
    if other is not None:
        return minimum(input, other)
    return _t(input, "min").min(dim, keepdim)


def amax(input, dim=(), keepdim: bool = False):  # noqa: A002
    return _t(input, "amax").amax(dim, keepdim)


def amin(input, dim=(), keepdim: bool = False):  # noqa: A002
    return _t(input, "amin").amin(dim, keepdim)


def argmax(input, dim=None, keepdim: bool = False):  # noqa: A002
    return _t(input, "argmax").argmax(dim, keepdim)


def bincount(input, weights=None, minlength: int = 0):  # noqa: A002
    return _t(input, "bincount").bincount(weights, minlength)


def diag(input, diagonal: int = 0):  # noqa: A002
    return _t(input, "diag").diag(diagonal)


def argmin(input, dim=None, keepdim: bool = False):  # noqa: A002
    return _t(input, "argmin").argmin(dim, keepdim)


def maximum(input, other):  # noqa: A002
    return _binary(ops.Maximum, _t(input, "maximum"), other, "maximum")


def minimum(input, other):  # noqa: A002
    return _binary(ops.Minimum, _t(input, "minimum"), other, "minimum")


def exp(input):  # noqa: A002
    return _t(input, "exp").exp()


def log(input):  # noqa: A002
    return _t(input, "log").log()


def sqrt(input):  # noqa: A002
    return _t(input, "sqrt").sqrt()


def abs(input):  # noqa: A001,A002
    return _t(input, "abs").abs()


def sigmoid(input):  # noqa: A002
    return _t(input, "sigmoid").sigmoid()


def tanh(input):  # noqa: A002
    return _t(input, "tanh").tanh()


def relu(input):  # noqa: A002
    return _t(input, "relu").relu()


def softmax(input, dim, dtype=None):  # noqa: A002
    return _t(input, "softmax").softmax(dim, dtype=dtype)


def log_softmax(input, dim, dtype=None):  # noqa: A002
    return _t(input, "log_softmax").log_softmax(dim, dtype=dtype)


def mean(input, dim=None, keepdim: bool = False, *, dtype=None):  # noqa: A002
    return _t(input, "mean").mean(dim, keepdim, dtype=dtype)


def sum(input, dim=None, keepdim: bool = False, *, dtype=None):  # noqa: A001,A002
    return _t(input, "sum").sum(dim, keepdim, dtype=dtype)


def std(input, dim=None, unbiased=None, keepdim: bool = False, *, correction=None):  # noqa: A002
    return _t(input, "std").std(dim, unbiased, keepdim, correction=correction)


def var(input, dim=None, unbiased=None, keepdim: bool = False, *, correction=None):  # noqa: A002
    return _t(input, "var").var(dim, unbiased, keepdim, correction=correction)


def norm(input, p="fro", dim=None, keepdim: bool = False, dtype=None):  # noqa: A002
    return _t(input, "norm").norm(p, dim, keepdim, dtype=dtype)


def pow(input, exponent):  # noqa: A001,A002
    """input ** exponent; either may be a number."""
    if isinstance(input, Tensor):
        return input ** exponent
    return _binary(ops.Pow, input, _t(exponent, "pow"), "pow")


def clamp(input, min=None, max=None):  # noqa: A002
    return _t(input, "clamp").clamp(min, max)


clip = clamp


def sort(input, dim: int = -1, descending: bool = False, stable: bool = False):  # noqa: A002
    return _t(input, "sort").sort(dim, descending, stable)


def argsort(input, dim: int = -1, descending: bool = False, stable: bool = False):  # noqa: A002
    return _t(input, "argsort").argsort(dim, descending, stable)


def topk(input, k: int, dim: int = -1, largest: bool = True, sorted: bool = True):  # noqa: A002
    return _t(input, "topk").topk(k, dim, largest, sorted)


def gather(input, dim: int, index):  # noqa: A002
    return _t(input, "gather").gather(dim, index)


def scatter(input, dim: int, index, src=None, *, value=None, reduce=None):  # noqa: A002
    return _t(input, "scatter").scatter(dim, index, src, value=value, reduce=reduce)


def scatter_add(input, dim: int, index, src):  # noqa: A002
    return _t(input, "scatter_add").scatter_add(dim, index, src)


def index_select(input, dim: int, index):  # noqa: A002
    return _t(input, "index_select").index_select(dim, index)


def masked_fill(input, mask, value):  # noqa: A002
    return _t(input, "masked_fill").masked_fill(mask, value)


def squeeze(input, dim=None):  # noqa: A002
    return _t(input, "squeeze").squeeze(dim)


def unsqueeze(input, dim: int):  # noqa: A002
    return _t(input, "unsqueeze").unsqueeze(dim)


def transpose(input, dim0: int, dim1: int):  # noqa: A002
    return _t(input, "transpose").transpose(dim0, dim1)


def t(input):  # noqa: A002
    return _t(input, "t").t()


def permute(input, dims):  # noqa: A002
    return _t(input, "permute").permute(*dims)


def reshape(input, shape):  # noqa: A002
    return _t(input, "reshape").reshape(shape)


def chunk(input, chunks: int, dim: int = 0):  # noqa: A002
    return _t(input, "chunk").chunk(chunks, dim)


def split(tensor, split_size_or_sections, dim: int = 0):
    return _t(tensor, "split").split(split_size_or_sections, dim)


def unbind(input, dim: int = 0):  # noqa: A002
    return _t(input, "unbind").unbind(dim)


def eq(input, other):  # noqa: A002
    return _t(input, "eq") == other


def ne(input, other):  # noqa: A002
    return _t(input, "ne") != other


def lt(input, other):  # noqa: A002
    return _t(input, "lt") < other


def le(input, other):  # noqa: A002
    return _t(input, "le") <= other


def gt(input, other):  # noqa: A002
    return _t(input, "gt") > other


def ge(input, other):  # noqa: A002
    return _t(input, "ge") >= other


def equal(input, other) -> bool:  # noqa: A002
    return _t(input, "equal").equal(other)


def allclose(input, other, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False) -> bool:  # noqa: A002
    return _t(input, "allclose").allclose(other, rtol, atol, equal_nan)


def isnan(input):  # noqa: A002
    return _t(input, "isnan").isnan()


def isinf(input):  # noqa: A002
    return _t(input, "isinf").isinf()


def isfinite(input):  # noqa: A002
    return _t(input, "isfinite").isfinite()


def any(input, dim=None, keepdim: bool = False):  # noqa: A001,A002
    return _t(input, "any").any(dim, keepdim)


def all(input, dim=None, keepdim: bool = False):  # noqa: A001,A002
    return _t(input, "all").all(dim, keepdim)


def add(input, other, *, alpha=1):  # noqa: A002
    return _binary(ops.Add, input, other if alpha == 1 else other * alpha, "add")


def sub(input, other, *, alpha=1):  # noqa: A002
    return _binary(ops.Sub, input, other if alpha == 1 else other * alpha, "sub")


def mul(input, other):  # noqa: A002
    return _binary(ops.Mul, input, other, "mul")


def div(input, other, *, rounding_mode=None):  # noqa: A002
    return _t(input, "div").div(other, rounding_mode=rounding_mode) if rounding_mode else \
        _binary(ops.Div, input, other, "div")


def neg(input):  # noqa: A002
    return -_t(input, "neg")


def square(input):  # noqa: A002
    return _t(input, "square").square()


def clone(input):  # noqa: A002
    return _t(input, "clone").clone()


def detach(input):  # noqa: A002
    return _t(input, "detach").detach()


def hstack(tensors):
    ts = [_t(x, "hstack") for x in tensors]
    return cat(ts, 0 if ts and ts[0].ndim == 1 else 1)


def vstack(tensors):
    return cat([x if x.ndim > 1 else x.reshape(1, -1) for x in (_t(y, "vstack") for y in tensors)], 0)

