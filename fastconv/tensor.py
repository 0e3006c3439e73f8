"""``Tensor``: a numpy array with ``requires_grad``, ``grad`` and ``grad_fn``; creation functions."""
from __future__ import annotations

import math
import numbers
import weakref
from typing import Optional

import numpy as np

from . import _tensor_ops as ops
from ._tensor_ops import reduction_axes
from .autograd.engine import run_backward
from .autograd.grad_mode import is_grad_enabled
from .random import get_generator

float32 = np.float32
float64 = np.float64
int64 = np.int64
int32 = np.int32
bool_ = np.bool_

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
_new_object = object.__new__


def _resolve_dtype(dtype):
    if dtype is None:
        return None
    try:
        return np.dtype(dtype)
    except TypeError as exc:
        raise TypeError(f"tensor: unknown dtype {dtype!r}") from exc


def _to_array(data, dtype=None) -> np.ndarray:
    """Convert user data: Python floats become float32; float32/float64/integer arrays keep dtype."""
    dtype = _resolve_dtype(dtype)
    if isinstance(data, Tensor):
        arr = data.data
    elif isinstance(data, np.ndarray):
        arr = data
    else:
        try:
            arr = np.asarray(data)
        except (ValueError, TypeError) as exc:
            raise TypeError(f"tensor: cannot convert {type(data).__name__} to a numeric array: {exc}") from exc
        if dtype is None and arr.dtype.kind == "f":
            arr = arr.astype(np.float32)
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"tensor: expected numeric data, got dtype {arr.dtype} from {type(data).__name__}")
    if dtype is not None:
        arr = arr.astype(dtype, copy=False)
    elif arr.dtype == np.float16:
        raise TypeError("tensor: float16 is not supported; use dtype=float32 or float64")
    return arr


class _Size(int):
    """Number of elements (numpy's ``.size``) that can also be called like PyTorch's ``size(dim)``."""

    def __new__(cls, n, shape):
        obj = super().__new__(cls, n)
        obj._shape = shape
        return obj

    def __call__(self, dim: Optional[int] = None):
        return self._shape if dim is None else self._shape[dim]


class Tensor:
    """An n-dimensional array that records the operations applied to it for backward."""

    __slots__ = ("data", "_requires_grad", "grad", "grad_fn", "_output_index", "_hooks",
                 "_post_hooks", "__weakref__")
    __array_priority__ = 1000  # ndarray (op) Tensor defers to Tensor's reflected operator

    def __init__(self, data, dtype=None, requires_grad: bool = False):
        self.data = _to_array(data, dtype)
        self.grad = None
        self.grad_fn = None
        self._output_index = 0
        self._hooks = None
        self._post_hooks = None
        self._requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    @staticmethod
    def _wrap(array, grad_fn=None, output_index=0) -> "Tensor":
        """Fast construction of a Tensor around an existing array (no conversion). Every op's
        outputs and every gradient pass here: a static method with object.__new__ and an
        exact-type test costs ~80 ns less than a classmethod with cls.__new__ and isinstance
        (a batch-1 conv's forward+backward wraps four arrays)."""
        t = _new_object(Tensor)
        t.data = array if type(array) is np.ndarray or isinstance(array, np.ndarray) else np.asarray(array)
        t.grad = None
        t.grad_fn = grad_fn
        t._output_index = output_index
        t._hooks = None
        t._post_hooks = None
        t._requires_grad = grad_fn is not None
        return t

    # ---- grad bookkeeping --------------------------------------------------------------------
    @property
    def requires_grad(self) -> bool:
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value: bool) -> None:
        self.requires_grad_(value)

    def requires_grad_(self, requires_grad: bool = True) -> "Tensor":
        if self.grad_fn is not None and not requires_grad:
            raise RuntimeError("requires_grad_: can only change requires_grad of leaf tensors; use detach()")
        if requires_grad and self.data.dtype not in _FLOATS:
            raise TypeError(f"requires_grad_: only float32/float64 tensors can require grad, got {self.dtype}")
        self._requires_grad = bool(requires_grad)
        return self

    @property
    def is_leaf(self) -> bool:
        return self.grad_fn is None

    def detach(self) -> "Tensor":
        """A new leaf sharing the same array, cut from the tape."""
        return Tensor._wrap(self.data)

    def backward(self, grad=None, retain_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) · grad into every leaf's ``.grad``."""
        if not self._requires_grad:
            raise RuntimeError("backward: tensor does not require grad and has no grad_fn")
        data = self.data
        if grad is None:
            if data.size != 1:
                raise RuntimeError(
                    f"backward: grad can be implicitly created only for scalar outputs, got shape {data.shape}; "
                    "pass grad=")
            g = np.ones(data.shape, dtype=data.dtype)
        else:
            g = grad.data if isinstance(grad, Tensor) else np.asarray(grad, dtype=data.dtype)
            if g.shape != data.shape:
                raise ValueError(f"backward: grad of shape {g.shape} does not match tensor of shape {data.shape}")
            if g.dtype != data.dtype:
                g = g.astype(data.dtype)
        run_backward([self], [g], retain_graph=retain_graph)

    def register_hook(self, hook):
        """Call ``hook(grad)`` when this tensor's gradient is computed; it may return a replacement."""
        if not self.requires_grad:
            raise RuntimeError("register_hook: tensor does not require grad")
        if self.grad_fn is None:
            self._hooks = (self._hooks or []) + [hook]
            holder, key = self, "_hooks"
        else:
            node = self.grad_fn
            if node.tensor_hooks is None:
                node.tensor_hooks = {}
            node.tensor_hooks.setdefault(self._output_index, []).append(hook)
            holder, key = None, None
        return _RemovableHandle(self, hook, holder, key)

    def register_post_accumulate_grad_hook(self, hook):
        """Call ``hook(tensor)`` after a leaf's ``.grad`` has been accumulated (used by data parallelism)."""
        if self.grad_fn is not None:
            raise RuntimeError("register_post_accumulate_grad_hook: only leaf tensors accumulate grad")
        self._post_hooks = (self._post_hooks or []) + [hook]
        return _RemovableHandle(self, hook, self, "_post_hooks")

    def retain_grad(self) -> None:
        """Keep ``.grad`` for a non-leaf tensor too."""
        if self.grad_fn is None:
            return
        node = self.grad_fn
        if node.retained is None:
            node.retained = {}
        node.retained[self._output_index] = weakref.ref(self)

    # ---- array-like attributes ------------------------------------------------------------
    @property
    def shape(self):
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def size(self) -> _Size:
        return _Size(self.data.size, self.data.shape)

    def numel(self) -> int:
        return self.data.size

    def dim(self) -> int:
        return self.data.ndim

    @property
    def T(self) -> "Tensor":
        return self.permute(*reversed(range(self.ndim)))

    def numpy(self) -> np.ndarray:
        """The underlying array (no copy)."""
        return self.data

    def item(self):
        if self.data.size != 1:
            raise ValueError(f"item: only one-element tensors can be converted, got shape {self.shape}")
        return self.data.item()

    def tolist(self):
        return self.data.tolist()

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return len(self.data)

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def __repr__(self) -> str:
        body = np.array2string(self.data, separator=", ", prefix="tensor(")
        extra = ""
        if self.dtype != np.float32:
            extra += f", dtype={self.dtype}"
        if self.grad_fn is not None:
            extra += f", grad_fn={self.grad_fn!r}"
        elif self.requires_grad:
            extra += ", requires_grad=True"
        return f"tensor({body}{extra})"

    def __array__(self, dtype=None, copy=None):
        return self.data if dtype is None else self.data.astype(dtype)

    def __bool__(self) -> bool:
        return bool(self.data)

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    __hash__ = object.__hash__

    # ---- conversion ------------------------------------------------------------------------
    def astype(self, dtype) -> "Tensor":
        dtype = _resolve_dtype(dtype)
        if dtype == self.dtype:
            return self
        if self.requires_grad and dtype in _FLOATS:
            return ops.Cast.apply(self, dtype=dtype)
        return Tensor._wrap(self.data.astype(dtype))

    to = astype

    def float(self) -> "Tensor":
        return self.astype(np.float32)

    def double(self) -> "Tensor":
        return self.astype(np.float64)

    def long(self) -> "Tensor":
        return self.astype(np.int64)

    def clone(self) -> "Tensor":
        return self * 1 if self.requires_grad else Tensor._wrap(self.data.copy())

    def contiguous(self) -> "Tensor":
        return self

    # ---- arithmetic ------------------------------------------------------------------------
    def __add__(self, other):
        return _binary(ops.Add, self, _operand(other, self, "add"), "add")

    def __radd__(self, other):
        return _binary(ops.Add, _operand(other, self, "add"), self, "add")

    def __sub__(self, other):
        return _binary(ops.Sub, self, _operand(other, self, "sub"), "sub")

    def __rsub__(self, other):
        return _binary(ops.Sub, _operand(other, self, "sub"), self, "sub")

    def __mul__(self, other):
        return _binary(ops.Mul, self, _operand(other, self, "mul"), "mul")

    def __rmul__(self, other):
        return _binary(ops.Mul, _operand(other, self, "mul"), self, "mul")

    def __truediv__(self, other):
        return _binary(ops.Div, self, _operand(other, self, "div"), "div")

    def __rtruediv__(self, other):
        return _binary(ops.Div, _operand(other, self, "div"), self, "div")

    def __pow__(self, other):
        return _binary(ops.Pow, self, _operand(other, self, "pow"), "pow")

    def __rpow__(self, other):
        return _binary(ops.Pow, _operand(other, self, "pow"), self, "pow")

    def __matmul__(self, other):
        return matmul(self, other)

    def __rmatmul__(self, other):
        return matmul(other, self)

    def __neg__(self):
        return ops.Neg.apply(self)

    def __pos__(self):
        return self

    def __abs__(self):
        return self.abs()

    # comparisons give non-differentiable boolean tensors
    def __lt__(self, other):
        return Tensor._wrap(self.data < _raw(other))

    def __le__(self, other):
        return Tensor._wrap(self.data <= _raw(other))

    def __gt__(self, other):
        return Tensor._wrap(self.data > _raw(other))

    def __ge__(self, other):
        return Tensor._wrap(self.data >= _raw(other))

    def __eq__(self, other):
        return Tensor._wrap(np.asarray(self.data == _raw(other)))

    def __ne__(self, other):
        return Tensor._wrap(np.asarray(self.data != _raw(other)))

    # ---- elementwise -----------------------------------------------------------------------
    def exp(self):
        return ops.Exp.apply(self)

    def log(self):
        return ops.Log.apply(self)

    def sqrt(self):
        return ops.Sqrt.apply(self)

    def abs(self):
        return ops.Abs.apply(self)

    def clip(self, min=None, max=None):
        if min is None and max is None:
            raise ValueError("clip: at least one of min and max must be given")
        return ops.Clip.apply(self, lo=min, hi=max)

    clamp = clip

    def relu(self):
        from .nn.functional import relu

        return relu(self)

    def sigmoid(self):
        from .nn.functional import sigmoid

        return sigmoid(self)

    def tanh(self):
        from .nn.functional import tanh

        return tanh(self)

    # ---- reductions ------------------------------------------------------------------------
    def sum(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        axis, keepdims = _axis_args(axis, keepdims, dim, keepdim)
        return ops.Sum.apply(self, axis=reduction_axes(axis, self.ndim, "sum"), keepdims=keepdims)

    def mean(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        axis, keepdims = _axis_args(axis, keepdims, dim, keepdim)
        _check_float_op(self, "mean")
        return ops.Mean.apply(self, axis=reduction_axes(axis, self.ndim, "mean"), keepdims=keepdims)

    def max(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        axis, keepdims = _axis_args(axis, keepdims, dim, keepdim)
        _check_nonempty(self, "max")
        return ops.Extremum.apply(self, axis=reduction_axes(axis, self.ndim, "max"), keepdims=keepdims,
                                  largest=True)

    def min(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        axis, keepdims = _axis_args(axis, keepdims, dim, keepdim)
        _check_nonempty(self, "min")
        return ops.Extremum.apply(self, axis=reduction_axes(axis, self.ndim, "min"), keepdims=keepdims,
                                  largest=False)

    def var(self, axis=None, keepdims=False, ddof=0, *, dim=None, keepdim=None):
        """Variance with numpy's ``ddof`` (0: population variance, 1: unbiased)."""
        axis, keepdims = _axis_args(axis, keepdims, dim, keepdim)
        _check_float_op(self, "var")
        return ops.Var.apply(self, axis=reduction_axes(axis, self.ndim, "var"), keepdims=keepdims, ddof=ddof)

    def argmax(self, axis=None):
        return Tensor._wrap(np.asarray(self.data.argmax(axis=axis)))

    def argmin(self, axis=None):
        return Tensor._wrap(np.asarray(self.data.argmin(axis=axis)))

    # ---- shape -----------------------------------------------------------------------------
    def reshape(self, *shape):
        shape = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
        try:
            return ops.Reshape.apply(self, shape=shape)
        except (ValueError, TypeError):
            raise ValueError(f"reshape: cannot reshape tensor of shape {self.shape} into shape {shape}") from None

    view = reshape

    def flatten(self, start_dim: int = 0, end_dim: int = -1):
        """Merge dims start_dim..end_dim (PyTorch semantics; default flattens everything)."""
        if self.ndim == 0:
            return self.reshape(1)
        s = start_dim % self.ndim
        e = end_dim % self.ndim
        if s > e:
            raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim} for shape {self.shape}")
        new = self.shape[:s] + (math.prod(self.shape[s:e + 1]),) + self.shape[e + 1:]
        return self.reshape(new)

    def permute(self, *axes):
        axes = tuple(axes[0]) if len(axes) == 1 and isinstance(axes[0], (tuple, list)) else axes
        norm = reduction_axes(axes, self.ndim, "permute") if axes else ()
        if len(axes) != self.ndim or sorted(norm) != list(range(self.ndim)):
            raise ValueError(f"permute: expected a permutation of {self.ndim} axes, got {axes}")
        return ops.Permute.apply(self, axes=tuple(a % self.ndim for a in axes))

    def transpose(self, dim0: int = None, dim1: int = None):
        """Swap two dims (PyTorch semantics); with no arguments reverse all dims (numpy's default)."""
        if dim0 is None and dim1 is None:
            return self.T
        d0, d1 = reduction_axes((dim0,), self.ndim, "transpose")[0], reduction_axes((dim1,), self.ndim, "transpose")[0]
        axes = list(range(self.ndim))
        axes[d0], axes[d1] = axes[d1], axes[d0]
        return ops.Permute.apply(self, axes=tuple(axes))

    def squeeze(self, axis=None):
        if axis is None:
            new = tuple(n for n in self.shape if n != 1)
        else:
            axes = reduction_axes(axis, self.ndim, "squeeze")
            for a in axes:
                if self.shape[a] != 1:
                    raise ValueError(f"squeeze: dimension {a} has size {self.shape[a]}, not 1 (shape {self.shape})")
            new = tuple(n for i, n in enumerate(self.shape) if i not in axes)
        return ops.Reshape.apply(self, shape=new)

    def unsqueeze(self, axis: int):
        if not -self.ndim - 1 <= axis <= self.ndim:
            raise ValueError(f"unsqueeze: axis {axis} out of range for a tensor with {self.ndim} dimensions")
        axis = axis % (self.ndim + 1)
        return ops.Reshape.apply(self, shape=self.shape[:axis] + (1,) + self.shape[axis:])

    def __getitem__(self, index):
        index = _raw_index(index)
        try:
            self.data[index]
        except IndexError as exc:
            raise IndexError(f"getitem: {exc} (tensor of shape {self.shape})") from None
        return ops.GetItem.apply(self, index=index)

    def __setitem__(self, index, value):
        if self.requires_grad and is_grad_enabled():
            raise RuntimeError("setitem: in-place assignment to a tensor that requires grad; use no_grad() or .data")
        self.data[_raw_index(index)] = _raw(value)


class _RemovableHandle:
    """Returned by hook registration; ``remove()`` unregisters the hook."""

    def __init__(self, tensor, hook, holder, key):
        self._tensor, self._hook, self._holder, self._key = tensor, hook, holder, key

    def remove(self) -> None:
        if self._holder is not None:
            hooks = getattr(self._holder, self._key) or []
            setattr(self._holder, self._key, [h for h in hooks if h is not self._hook] or None)
        elif self._tensor.grad_fn is not None and self._tensor.grad_fn.tensor_hooks:
            hooks = self._tensor.grad_fn.tensor_hooks.get(self._tensor._output_index, [])
            if self._hook in hooks:
                hooks.remove(self._hook)


# ---- helpers ---------------------------------------------------------------------------------

def _raw(x):
    return x.data if isinstance(x, Tensor) else x


def _raw_index(index):
    if isinstance(index, Tensor):
        return index.data
    if isinstance(index, tuple):
        return tuple(i.data if isinstance(i, Tensor) else i for i in index)
    return index


def _operand(other, like: Tensor, op: str):
    """Tensors pass through; Python numbers stay scalars (keeping the tensor's dtype); arrays wrap."""
    if isinstance(other, Tensor):
        return other
    if isinstance(other, numbers.Number) and not isinstance(other, bool):
        return other
    if isinstance(other, np.ndarray):
        if other.dtype.kind not in "fiub":
            raise TypeError(f"{op}: expected a numeric operand, got array of dtype {other.dtype}")
        return Tensor._wrap(other)
    if isinstance(other, (bool, np.bool_)):
        return other
    if isinstance(other, np.generic):
        return other
    try:
        return Tensor(other, dtype=like.dtype if like.dtype.kind == "f" else None)
    except TypeError:
        raise TypeError(f"{op}: unsupported operand type {type(other).__name__} for a Tensor") from None


def _binary(function, a, b, op: str) -> Tensor:
    """An elementwise binary op; a broadcasting mismatch is reported with the op and both shapes."""
    try:
        return function.apply(a, b)
    except ValueError:
        sa, sb = np.shape(_raw(a)), np.shape(_raw(b))
        try:
            np.broadcast_shapes(sa, sb)
        except ValueError:
            raise ValueError(f"{op}: shapes {sa} and {sb} do not broadcast (trailing dimensions must be "
                             "equal or 1)") from None
        raise


def _axis_args(axis, keepdims, dim, keepdim):
    if dim is not None:
        axis = dim
    if keepdim is not None:
        keepdims = keepdim
    return axis, keepdims


def _check_float_op(t: Tensor, op: str) -> None:
    if t.dtype.kind != "f":
        raise TypeError(f"{op}: expected a float32 or float64 tensor, got {t.dtype}")


def _check_nonempty(t: Tensor, op: str) -> None:
    if t.data.size == 0:
        raise ValueError(f"{op}: reduction over an empty tensor of shape {t.shape}")


def matmul(a, b) -> Tensor:
    """Matrix product with numpy's rules (vectors, batched stacks), gradients for both operands."""
    a = a if isinstance(a, Tensor) else Tensor(a)
    b = b if isinstance(b, Tensor) else Tensor(b)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: both operands need at least 1 dimension, got shapes {a.shape} and {b.shape}")
    ka = a.shape[-1]
    kb = b.shape[0] if b.ndim == 1 else b.shape[-2]
    if ka != kb:
        raise ValueError(
            f"matmul: shapes {a.shape} and {b.shape} are not aligned: {ka} (last dim of the first) != "
            f"{kb} ({'dim 0' if b.ndim == 1 else 'second-to-last dim'} of the second)")
    try:
        np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    except ValueError:
        raise ValueError(f"matmul: batch dimensions of shapes {a.shape} and {b.shape} do not broadcast") from None
    return ops.MatMul.apply(a, b)


# ---- creation --------------------------------------------------------------------------------

def tensor(data, dtype=None, requires_grad: bool = False) -> Tensor:
    """A new Tensor from a list, scalar or array (float32 for Python floats; arrays keep dtype)."""
    arr = _to_array(data, dtype)
    if isinstance(data, (np.ndarray, Tensor)) and arr is (data.data if isinstance(data, Tensor) else data):
        arr = arr.copy()
    return Tensor._wrap(arr).requires_grad_(requires_grad)


def _shape_args(shape):
    return tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else tuple(shape)


def zeros(*shape, dtype=np.float32, requires_grad: bool = False) -> Tensor:
    return Tensor(np.zeros(_shape_args(shape), dtype=_resolve_dtype(dtype)), requires_grad=requires_grad)


def ones(*shape, dtype=np.float32, requires_grad: bool = False) -> Tensor:
    return Tensor(np.ones(_shape_args(shape), dtype=_resolve_dtype(dtype)), requires_grad=requires_grad)


def full(shape, fill_value, dtype=np.float32, requires_grad: bool = False) -> Tensor:
    return Tensor(np.full(tuple(shape), fill_value, dtype=_resolve_dtype(dtype)), requires_grad=requires_grad)


def zeros_like(t, dtype=None, requires_grad: bool = False) -> Tensor:
    arr = _raw(t)
    return Tensor(np.zeros(np.shape(arr), dtype=_resolve_dtype(dtype) or np.asarray(arr).dtype),
                  requires_grad=requires_grad)


def ones_like(t, dtype=None, requires_grad: bool = False) -> Tensor:
    arr = _raw(t)
    return Tensor(np.ones(np.shape(arr), dtype=_resolve_dtype(dtype) or np.asarray(arr).dtype),
                  requires_grad=requires_grad)


def randn(*shape, dtype=np.float32, requires_grad: bool = False) -> Tensor:
    """Standard normal samples from fastconv's seeded generator (``manual_seed``)."""
    arr = get_generator().standard_normal(_shape_args(shape)).astype(_resolve_dtype(dtype))
    return Tensor(arr, requires_grad=requires_grad)


def rand(*shape, dtype=np.float32, requires_grad: bool = False) -> Tensor:
    """Uniform [0, 1) samples from fastconv's seeded generator."""
    arr = get_generator().random(_shape_args(shape)).astype(_resolve_dtype(dtype))
    return Tensor(arr, requires_grad=requires_grad)


def arange(start, stop=None, step=1, dtype=None, requires_grad: bool = False) -> Tensor:
    arr = np.arange(start, stop, step) if stop is not None else np.arange(start)
    if dtype is None and arr.dtype.kind == "f":
        arr = arr.astype(np.float32)
    return Tensor(arr, dtype=dtype, requires_grad=requires_grad)


def _as_tensors(tensors, op: str):
    tensors = list(tensors)
    if not tensors:
        raise ValueError(f"{op}: expected a non-empty sequence of tensors")
    return [t if isinstance(t, Tensor) else Tensor(t) for t in tensors]


def cat(tensors, axis: int = 0, *, dim=None) -> Tensor:
    """Concatenate along an existing axis."""
    axis = dim if dim is not None else axis
    ts = _as_tensors(tensors, "cat")
    ref = ts[0].shape
    ax = reduction_axes((axis,), len(ref), "cat")[0]
    for i, t in enumerate(ts):
        if t.ndim != len(ref) or t.shape[:ax] + t.shape[ax + 1:] != ref[:ax] + ref[ax + 1:]:
            raise ValueError(f"cat: tensor {i} has shape {t.shape}, incompatible with {ref} along axis {axis}")
    return ops.Concatenate.apply(*ts, axis=ax)


def stack(tensors, axis: int = 0, *, dim=None) -> Tensor:
    """Stack along a new axis."""
    axis = dim if dim is not None else axis
    ts = _as_tensors(tensors, "stack")
    for i, t in enumerate(ts):
        if t.shape != ts[0].shape:
            raise ValueError(f"stack: tensor {i} has shape {t.shape}, expected {ts[0].shape} like tensor 0")
    if not -ts[0].ndim - 1 <= axis <= ts[0].ndim:
        raise ValueError(f"stack: axis {axis} out of range for tensors with {ts[0].ndim} dimensions")
    return ops.Stack.apply(*ts, axis=axis % (ts[0].ndim + 1))


def pad(x: Tensor, pad_width, value: float = 0.0) -> Tensor:
    """Constant padding with numpy's ``pad_width`` (per axis, (before, after) or one int)."""
    x = x if isinstance(x, Tensor) else Tensor(x)
    try:
        widths = np.broadcast_to(np.asarray(pad_width, dtype=np.int64), (x.ndim, 2))
    except ValueError:
        raise ValueError(f"pad: pad_width {pad_width!r} does not fit a tensor with {x.ndim} dimensions") from None
    if (widths < 0).any():
        raise ValueError(f"pad: negative padding {pad_width!r}")
    return ops.Pad.apply(x, pad_width=tuple(map(tuple, widths.tolist())), value=value)


def where(condition, a, b) -> Tensor:
    """Elementwise ``a`` where condition else ``b``, differentiable in a and b."""
    cond = np.asarray(_raw(condition), dtype=bool)
    a = a if isinstance(a, Tensor) else a
    b = b if isinstance(b, Tensor) else b
    return ops.Where.apply(cond, a, b)
