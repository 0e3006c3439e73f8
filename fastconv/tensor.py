"""``Tensor``: a numpy array with ``requires_grad``, ``grad`` and ``grad_fn``; creation functions.

The array sits in ``_array`` (``numpy()`` returns it); ``data`` is, as in PyTorch, a Tensor sharing
that array outside the tape. In-place ops (``add_``, ``+=``, ``x[i] = v``, ``relu(inplace=True)``)
write into the array; on the tape the tensor takes over the op's history, and a version counter
(shared by views) lets backward refuse arrays that were overwritten after an op saved them.
"""
from __future__ import annotations

import math
import numbers
import weakref
from typing import Optional

import numpy as np

from . import _index_ops as idx_ops
from . import _tensor_ops as ops
from ._dtypes import FLOAT_DTYPES as _FLOATS
from ._dtypes import bool_, float32, float64, int32, int64, resolve_dtype
from ._promotion import DEFAULT_FLOAT, can_cast, result_type, scalar_dtype
from ._tensor_ops import reduction_axes
from .autograd.engine import run_backward
from .autograd.grad_mode import is_grad_enabled
from ._device import CPU, as_cpu, cpu_only_error, cuda_device, device, to_args
from .random import generator_of
from .return_types import max as _max_result
from .return_types import min as _min_result
from .return_types import sort as _sort_result
from .return_types import topk as _topk_result

__all__ = ["Tensor", "float32", "float64", "int32", "int64", "bool_"]

_new_object = object.__new__
_TORCH_TYPE_NAMES = {"float32": "FloatTensor", "float64": "DoubleTensor", "int64": "LongTensor",
                     "int32": "IntTensor", "int16": "ShortTensor", "int8": "CharTensor", "uint8": "ByteTensor",
                     "bool": "BoolTensor"}


def _resolve_dtype(dtype):
    return resolve_dtype(dtype, "tensor")


def _to_array(data, dtype=None) -> np.ndarray:
    """Convert user data: Python floats become float32; float32/float64/integer arrays keep dtype."""
    dtype = _resolve_dtype(dtype)
    if isinstance(data, Tensor):
        arr = data._array
    elif isinstance(data, np.ndarray):
        arr = data
    else:
        try:
            arr = np.asarray(data)
        except (ValueError, TypeError) as exc:
            raise TypeError(f"tensor: cannot convert {type(data).__name__} to a numeric array: {exc}") from exc
        if dtype is None and arr.dtype.kind == "f" and not isinstance(data, np.generic):
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
        if dim is None:
            return self._shape
        if not -max(len(self._shape), 1) <= dim < max(len(self._shape), 1):
            raise IndexError(f"size: dimension {dim} out of range for a tensor with {len(self._shape)} "
                             "dimensions")
        return self._shape[dim]


class Tensor:
    """An n-dimensional array that records the operations applied to it for backward."""

    __slots__ = ("_array", "_requires_grad", "grad", "grad_fn", "_output_index", "_hooks",
                 "_post_hooks", "_version_counter", "_view", "__weakref__")
    __array_priority__ = 1000  # ndarray (op) Tensor defers to Tensor's reflected operator
    is_cuda = False
    is_sparse = False

    def __init__(self, data, dtype=None, requires_grad: bool = False):
        self._array = _to_array(data, dtype)
        self.grad = None
        self.grad_fn = None
        self._output_index = 0
        self._hooks = None
        self._post_hooks = None
        self._version_counter = None
        self._view = None
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
        t._array = array if type(array) is np.ndarray or isinstance(array, np.ndarray) else np.asarray(array)
        t.grad = None
        t.grad_fn = grad_fn
        t._output_index = output_index
        t._hooks = None
        t._post_hooks = None
        t._version_counter = None
        t._view = None
        t._requires_grad = grad_fn is not None
        return t

    # ---- the array and its views ---------------------------------------------------------------
    @property
    def data(self) -> "Tensor":
        """A Tensor sharing this one's array, outside the tape (PyTorch's ``.data``): writing into it
        changes this tensor without autograd noticing. Assigning a Tensor or array replaces the array."""
        return Tensor._wrap(self._array)

    @data.setter
    def data(self, value) -> None:
        arr = value._array if isinstance(value, Tensor) else _to_array(value)
        if self._requires_grad and arr.dtype not in _FLOATS:
            raise TypeError(f"data: a tensor that requires grad needs float32/float64 data, got {arr.dtype}")
        self._array = arr

    @property
    def _version(self) -> int:
        """How many in-place changes this tensor's array (and its views) went through on the tape."""
        counter = self._version_counter
        return 0 if counter is None else counter[0]

    @property
    def _base(self):
        """The tensor this one is a view of (None for a tensor owning its memory), as in PyTorch."""
        return None if self._view is None else self._view[0]

    def _counter(self):
        counter = self._version_counter
        if counter is None:
            counter = self._version_counter = [0]
        return counter

    def _as_view_of(self, source: "Tensor", function, options) -> "Tensor":
        """Mark self, made from ``source`` by the view op ``function``, as a view when it shares
        ``source``'s memory: one version counter, and the steps from the root base (so an in-place
        op on either updates the other's history)."""
        arr, src = self._array, source._array
        base = arr.base
        if base is None or not (base is src or base is src.base):
            return self  # numpy had to copy
        counter = source._counter()
        self._version_counter = counter
        parent = source._view
        step = ((function, options),)
        self._view = (source, step, counter[0]) if parent is None else (parent[0], parent[1] + step, counter[0])
        return self

    def _refresh_view(self) -> None:
        """After an in-place change of the base (or a sibling view), take the base's new history."""
        base, steps, version = self._view
        now = base._version_counter[0]
        if now == version:
            return
        if base._requires_grad:
            t = base
            for function, options in steps:
                t = function.apply(t, **options)
            self.grad_fn, self._output_index, self._requires_grad = t.grad_fn, t._output_index, True
        self._view = (base, steps, now)

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
        if requires_grad and self._array.dtype not in _FLOATS:
            raise TypeError(f"requires_grad_: only float32/float64 tensors can require grad, got {self.dtype}")
        self._requires_grad = bool(requires_grad)
        return self

    @property
    def is_leaf(self) -> bool:
        return self.grad_fn is None

    def detach(self) -> "Tensor":
        """A new leaf sharing the same array (and version counter), cut from the tape."""
        t = Tensor._wrap(self._array)
        t._version_counter = self._counter()
        return t

    def detach_(self) -> "Tensor":
        """Cut this tensor from the tape in place: it becomes a leaf that does not require grad."""
        if self._view is not None:
            raise RuntimeError("detach_: cannot detach a view in place; use detach()")
        self.grad_fn = None
        self._requires_grad = False
        return self

    def backward(self, gradient=None, retain_graph: bool = False, create_graph: bool = False, *, grad=None) -> None:
        """Accumulate d(self)/d(leaf) · gradient into every leaf's ``.grad``."""
        if create_graph:
            raise NotImplementedError("backward: create_graph=True (higher-order gradients) is not supported")
        if grad is not None:
            gradient = grad
        if self._view is not None and is_grad_enabled():
            self._refresh_view()
        if not self._requires_grad:
            raise RuntimeError("backward: tensor does not require grad and has no grad_fn")
        data = self._array
        if gradient is None:
            if data.size != 1:
                raise RuntimeError(
                    f"backward: grad can be implicitly created only for scalar outputs, got shape {data.shape}; "
                    "pass grad=")
            g = np.ones(data.shape, dtype=data.dtype)
        else:
            g = gradient._array if isinstance(gradient, Tensor) else np.asarray(gradient, dtype=data.dtype)
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
        return self._array.shape

    @property
    def dtype(self):
        return self._array.dtype

    @property
    def ndim(self) -> int:
        return self._array.ndim

    @property
    def size(self) -> _Size:
        """``size()`` is the shape and ``size(d)`` one dim, as in PyTorch; the bare attribute is the
        element count (numpy's ``.size``)."""
        return _Size(self._array.size, self._array.shape)

    @property
    def device(self) -> device:
        return CPU

    def numel(self) -> int:
        return self._array.size

    nelement = numel

    def dim(self) -> int:
        return self._array.ndim

    ndimension = dim

    def element_size(self) -> int:
        return self._array.itemsize

    def is_floating_point(self) -> bool:
        return self._array.dtype.kind == "f"

    def is_contiguous(self) -> bool:
        return self._array.flags.c_contiguous

    def data_ptr(self) -> int:
        return self._array.__array_interface__["data"][0]

    @property
    def T(self) -> "Tensor":
        return self.permute(*reversed(range(self.ndim)))

    def t(self) -> "Tensor":
        """Transpose of a 2-D tensor (0-D and 1-D tensors are returned as they are)."""
        if self.ndim > 2:
            raise ValueError(f"t: expects a tensor with <= 2 dimensions, got shape {self.shape}; use transpose()")
        return self if self.ndim < 2 else self.transpose(0, 1)

    def numpy(self) -> np.ndarray:
        """The underlying array (no copy)."""
        return self._array

    def item(self):
        if self._array.size != 1:
            raise ValueError(f"item: only one-element tensors can be converted, got shape {self.shape}")
        return self._array.item()

    def tolist(self):
        return self._array.tolist()

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return len(self._array)

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(len(self)))

    def __repr__(self) -> str:
        body = np.array2string(self._array, separator=", ", prefix="tensor(")
        extra = ""
        if self.dtype not in (np.float32, np.int64, np.bool_):
            extra += f", dtype={self.dtype}"
        if self.grad_fn is not None:
            extra += f", grad_fn={self.grad_fn!r}"
        elif self.requires_grad:
            extra += ", requires_grad=True"
        return f"tensor({body}{extra})"

    def __format__(self, spec: str) -> str:
        if self._array.ndim == 0:
            return format(self._array.item(), spec)
        return format(str(self), spec)

    def __array__(self, dtype=None, copy=None):
        return self._array if dtype is None else self._array.astype(dtype)

    def __array_function__(self, func, types, args, kwargs):
        """numpy functions (np.std, np.concatenate, ...) run on the arrays and return arrays: without
        this numpy would call Tensor methods of the same name with numpy's arguments."""
        return func(*_arrays_in(args), **_arrays_in(kwargs))

    def __bool__(self) -> bool:
        return bool(self._array)

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __index__(self) -> int:
        if self._array.dtype.kind not in "iub" or self._array.size != 1:
            raise TypeError(f"only integer tensors of a single element can be converted to an index, got "
                            f"{self.dtype} of shape {self.shape}")
        return int(self._array.item())

    __hash__ = object.__hash__

    def __reduce__(self):
        if self.grad_fn is not None:
            raise RuntimeError("pickle: only leaf tensors can be pickled (use detach())")
        return (_rebuild, (self._array, self._requires_grad))

    def __deepcopy__(self, memo):
        if self.grad_fn is not None:
            raise RuntimeError("deepcopy: only tensors created explicitly by the user (graph leaves) support "
                               "the deepcopy protocol; use detach().clone()")
        out = type(self).__new__(type(self))
        Tensor.__init__(out, self._array.copy(), requires_grad=self._requires_grad)
        if self.grad is not None:
            out.grad = Tensor._wrap(self.grad._array.copy())
        memo[id(self)] = out
        return out

    # ---- conversion ------------------------------------------------------------------------
    def astype(self, dtype) -> "Tensor":
        dtype = _resolve_dtype(dtype)
        if dtype == self.dtype:
            return self
        if dtype == np.float16:
            raise TypeError("to: float16 is not supported; use float32 or float64")
        if self.requires_grad and dtype in _FLOATS:
            return ops.Cast.apply(self, dtype=dtype)
        return Tensor._wrap(self._array.astype(dtype))

    def to(self, *args, **kwargs) -> "Tensor":
        """``to(device)``, ``to(dtype)``, ``to(device, dtype)``, ``to(other)`` (its dtype), keywords
        ``device``, ``dtype``, ``non_blocking``, ``copy``. Only the CPU exists: other devices raise."""
        dtype, copy = to_args(args, kwargs, "Tensor.to", Tensor)
        out = self if dtype is None else self.astype(dtype)
        return out.clone() if copy and out is self else out

    def cpu(self) -> "Tensor":
        return self

    def cuda(self, device=None, non_blocking: bool = False) -> "Tensor":
        raise cpu_only_error(cuda_device(device), "Tensor.cuda")

    def type(self, dtype=None):
        """Without argument, PyTorch's type name ('torch.FloatTensor'); with a dtype, ``to(dtype)``."""
        if dtype is None:
            return "torch." + _TORCH_TYPE_NAMES.get(self.dtype.name, self.dtype.name)
        return self.astype(dtype)

    def type_as(self, other: "Tensor") -> "Tensor":
        return self.astype(other.dtype)

    def float(self) -> "Tensor":
        return self.astype(np.float32)

    def double(self) -> "Tensor":
        return self.astype(np.float64)

    def half(self) -> "Tensor":
        return self.astype(np.float16)

    def long(self) -> "Tensor":
        return self.astype(np.int64)

    def int(self) -> "Tensor":
        return self.astype(np.int32)

    def short(self) -> "Tensor":
        return self.astype(np.int16)

    def byte(self) -> "Tensor":
        return self.astype(np.uint8)

    def bool(self) -> "Tensor":
        return self.astype(np.bool_)

    def clone(self) -> "Tensor":
        """A copy with its own memory; on the tape the gradient passes through."""
        if self._requires_grad and is_grad_enabled():
            return ops.Clone.apply(self)
        return Tensor._wrap(self._array.copy())

    def contiguous(self) -> "Tensor":
        """Self when C-contiguous, else a contiguous copy (on the tape when needed)."""
        if self._array.flags.c_contiguous:
            return self
        return self.clone()

    def new_tensor(self, data, dtype=None, requires_grad: bool = False) -> "Tensor":
        return tensor(data, dtype=dtype or self.dtype, requires_grad=requires_grad)

    def new_zeros(self, *size, dtype=None, device=None, requires_grad: bool = False) -> "Tensor":
        return zeros(*size, dtype=dtype or self.dtype, device=device, requires_grad=requires_grad)

    def new_ones(self, *size, dtype=None, device=None, requires_grad: bool = False) -> "Tensor":
        return ones(*size, dtype=dtype or self.dtype, device=device, requires_grad=requires_grad)

    def new_full(self, size, fill_value, dtype=None, device=None, requires_grad: bool = False) -> "Tensor":
        return full(size, fill_value, dtype=dtype or self.dtype, device=device, requires_grad=requires_grad)

    def new_empty(self, *size, dtype=None, device=None, requires_grad: bool = False) -> "Tensor":
        return self.new_zeros(*size, dtype=dtype, device=device, requires_grad=requires_grad)

    # ---- arithmetic ------------------------------------------------------------------------
    def __add__(self, other):
        return _binary(ops.Add, self, other, "add")

    def __radd__(self, other):
        return _binary(ops.Add, other, self, "add")

    def __sub__(self, other):
        return _binary(ops.Sub, self, other, "sub")

    def __rsub__(self, other):
        return _binary(ops.Sub, other, self, "sub")

    def __mul__(self, other):
        return _binary(ops.Mul, self, other, "mul")

    def __rmul__(self, other):
        return _binary(ops.Mul, other, self, "mul")

    def __truediv__(self, other):
        return _binary(ops.Div, self, other, "div")

    def __rtruediv__(self, other):
        return _binary(ops.Div, other, self, "div")

    def __pow__(self, other):
        return _binary(ops.Pow, self, other, "pow")

    def __rpow__(self, other):
        return _binary(ops.Pow, other, self, "pow")

    def __floordiv__(self, other):
        return Tensor._wrap(np.asarray(np.floor_divide(self._array, _raw(other))))

    def __rfloordiv__(self, other):
        return Tensor._wrap(np.asarray(np.floor_divide(_raw(other), self._array)))

    def __mod__(self, other):
        return Tensor._wrap(np.asarray(np.mod(self._array, _raw(other))))

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

    def __invert__(self):
        if self.dtype.kind not in "iub":
            raise TypeError(f"bitwise_not: expected an integer or bool tensor, got {self.dtype}")
        return Tensor._wrap(np.asarray(~self._array))

    def __and__(self, other):
        return Tensor._wrap(np.asarray(self._array & _raw(other)))

    __rand__ = __and__

    def __or__(self, other):
        return Tensor._wrap(np.asarray(self._array | _raw(other)))

    __ror__ = __or__

    def __xor__(self, other):
        return Tensor._wrap(np.asarray(self._array ^ _raw(other)))

    def add(self, other, *, alpha=1):
        return self + (other if alpha == 1 else other * alpha)

    def sub(self, other, *, alpha=1):
        return self - (other if alpha == 1 else other * alpha)

    def mul(self, other):
        return self * other

    def div(self, other, *, rounding_mode=None):
        if rounding_mode is None:
            return self / other
        if rounding_mode == "floor":
            return self // other
        if rounding_mode == "trunc":
            return Tensor._wrap(np.asarray(np.trunc(self._array / _raw(other))).astype(self.dtype, copy=False))
        raise ValueError(f"div: rounding_mode must be None, 'floor' or 'trunc', got {rounding_mode!r}")

    true_divide = div
    multiply = mul
    subtract = sub

    def pow(self, exponent):
        return self ** exponent

    def square(self):
        return self * self

    def neg(self):
        return -self

    def matmul(self, other):
        return matmul(self, other)

    mm = matmul
    bmm = matmul

    # comparisons give non-differentiable boolean tensors
    def __lt__(self, other):
        return Tensor._wrap(np.asarray(self._array < _raw(other)))

    def __le__(self, other):
        return Tensor._wrap(np.asarray(self._array <= _raw(other)))

    def __gt__(self, other):
        return Tensor._wrap(np.asarray(self._array > _raw(other)))

    def __ge__(self, other):
        return Tensor._wrap(np.asarray(self._array >= _raw(other)))

    def __eq__(self, other):
        return Tensor._wrap(np.asarray(self._array == _raw(other)))

    def __ne__(self, other):
        return Tensor._wrap(np.asarray(self._array != _raw(other)))

    def eq(self, other):
        return self == other

    def ne(self, other):
        return self != other

    def lt(self, other):
        return self < other

    def le(self, other):
        return self <= other

    def gt(self, other):
        return self > other

    def ge(self, other):
        return self >= other

    def equal(self, other) -> bool:
        """True when other has the same shape and elements."""
        other = _raw(other)
        return self.shape == np.shape(other) and bool(np.array_equal(self._array, other))

    def allclose(self, other, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False) -> bool:
        return bool(np.allclose(self._array, _raw(other), rtol=rtol, atol=atol, equal_nan=equal_nan))

    def isnan(self):
        return Tensor._wrap(np.isnan(self._array))

    def isinf(self):
        return Tensor._wrap(np.isinf(self._array))

    def isfinite(self):
        return Tensor._wrap(np.isfinite(self._array))

    def any(self, dim=None, keepdim: bool = False):
        return Tensor._wrap(np.asarray(self._array.any(axis=_dims(dim, self.ndim, "any"), keepdims=keepdim)))

    def all(self, dim=None, keepdim: bool = False):
        return Tensor._wrap(np.asarray(self._array.all(axis=_dims(dim, self.ndim, "all"), keepdims=keepdim)))

    # ---- in-place ----------------------------------------------------------------------------
    def _check_inplace(self, op: str) -> None:
        """Refuse, before anything is written, an in-place op that the tape cannot follow."""
        if not self._array.flags.writeable:
            raise ValueError(f"{op}: the tensor's memory is read-only (an expand() view or a read-only "
                             "array); clone() it first")
        if not is_grad_enabled():
            return
        if self._requires_grad and self.grad_fn is None:
            raise RuntimeError(f"{op}: a leaf Variable that requires grad is being used in an in-place "
                               "operation; modify it under fc.no_grad() or through .data")
        view = self._view
        if view is not None and view[0]._requires_grad and view[0].grad_fn is None:
            raise RuntimeError(f"{op}: a view of a leaf Variable that requires grad is being used in an "
                               "in-place operation; modify it under fc.no_grad()")

    def _commit(self, result: "Tensor", op: str) -> "Tensor":
        """Make self hold ``result`` (computed from self by an op, possibly into self's array) and,
        on the tape, take over its history; bump the version counter."""
        arr, res = self._array, result._array
        if res.shape != arr.shape:
            raise ValueError(f"{op}: output with shape {arr.shape} doesn't match the broadcast shape {res.shape}")
        if res.dtype != arr.dtype:
            if not can_cast(res.dtype, arr.dtype):
                raise TypeError(f"{op}: result type {res.dtype} can't be cast to the desired output type "
                                f"{arr.dtype}")
            result = result.astype(arr.dtype)
            res = result._array
        node = result.grad_fn
        if node is not None and node._saved:
            node.keep_original(arr, self._version_counter)
        if node is None:
            if res is not arr:
                np.copyto(arr, res)
        elif self._view is not None:
            base, steps, _ = self._view
            scattered = idx_ops.ViewScatter.apply(base, result, steps=steps)
            base.grad_fn, base._output_index, base._requires_grad = scattered.grad_fn, 0, True
            replayed = base
            for function, options in steps:
                replayed = function.apply(replayed, **options)
            self.grad_fn, self._output_index, self._requires_grad = replayed.grad_fn, replayed._output_index, True
        else:
            if res is not arr:
                np.copyto(arr, res)
            self.grad_fn, self._output_index, self._requires_grad = node, result._output_index, True
        self._bump_version()
        return self

    def _bump_version(self) -> None:
        """Count an in-place change (shared with the views of the same memory)."""
        counter = self._counter()
        counter[0] += 1
        if self._view is not None:
            self._view = (self._view[0], self._view[1], counter[0])

    def _on_tape(self, other=None) -> bool:
        return is_grad_enabled() and (self._requires_grad or (isinstance(other, Tensor) and other._requires_grad))

    def _arith_(self, function, ufunc, other, op: str) -> "Tensor":
        if self._on_tape(other):
            self._check_inplace(op)
            return self._commit(_binary(function, self, other, op), op)
        self._check_inplace(op)
        arr = self._array
        o = _scalar_or_array(other, op)
        rt = _result_dtype(arr, o, ufunc is np.true_divide)
        if rt != arr.dtype and not can_cast(rt, arr.dtype):
            raise TypeError(f"{op}: result type {rt} can't be cast to the desired output type {arr.dtype}")
        if isinstance(o, np.ndarray) and o.shape != arr.shape:
            try:
                shape = np.broadcast_shapes(arr.shape, o.shape)
            except ValueError:
                shape = None
            if shape != arr.shape:
                raise ValueError(f"{op}: output with shape {arr.shape} doesn't match the broadcast shape "
                                 f"{shape if shape is not None else o.shape}")
        ufunc(arr, o, out=arr, casting="unsafe")
        self._bump_version()
        return self

    def add_(self, other, *, alpha=1):
        return self._arith_(ops.Add, np.add, other if alpha == 1 else other * alpha, "add_")

    def sub_(self, other, *, alpha=1):
        return self._arith_(ops.Sub, np.subtract, other if alpha == 1 else other * alpha, "sub_")

    def mul_(self, other):
        return self._arith_(ops.Mul, np.multiply, other, "mul_")

    def div_(self, other):
        return self._arith_(ops.Div, np.true_divide, other, "div_")

    def pow_(self, exponent):
        return self._arith_(ops.Pow, np.power, exponent, "pow_")

    __iadd__ = add_
    __isub__ = sub_
    __imul__ = mul_
    __itruediv__ = div_
    __ipow__ = pow_

    def clamp_(self, min=None, max=None):  # noqa: A002 - PyTorch's argument names
        if self._on_tape(min) or self._on_tape(max):
            self._check_inplace("clamp_")
            return self._commit(self.clamp(min, max), "clamp_")
        self._check_inplace("clamp_")
        _check_bounds(min, max, "clamp_")
        np.clip(self._array, _raw(min), _raw(max), out=self._array)
        self._bump_version()
        return self

    clip_ = clamp_

    def fill_(self, value):
        """Set every element to ``value`` (a number or a one-element tensor)."""
        if self._on_tape(value):
            self._check_inplace("fill_")
            v = value if isinstance(value, Tensor) else self._array.dtype.type(value)
            if isinstance(v, Tensor):
                if v.numel() != 1:
                    raise ValueError(f"fill_: expected a one-element value tensor, got shape {v.shape}")
                v = v.reshape(()).astype(self.dtype)
            return self._commit(idx_ops.Fill.apply(self, v), "fill_")
        self._check_inplace("fill_")
        self._array[...] = _raw(value)
        self._bump_version()
        return self

    def zero_(self):
        return self.fill_(0)

    def copy_(self, src, non_blocking: bool = False):
        """Copy ``src`` (broadcast, any dtype) into this tensor's memory."""
        src = src if isinstance(src, Tensor) else Tensor(src)
        try:
            np.broadcast_to(src._array, self.shape)
        except ValueError:
            raise ValueError(f"copy_: source of shape {src.shape} does not broadcast to {self.shape}") from None
        self._check_inplace("copy_")
        if self._on_tape(src):
            s = src.astype(self.dtype) if src.dtype != self.dtype and src.dtype.kind == "f" else src
            return self._commit(idx_ops.Copy.apply(self, s), "copy_")
        np.copyto(self._array, src._array, casting="unsafe")
        self._bump_version()
        return self

    def _fill_random(self, values: np.ndarray, op: str) -> "Tensor":
        self._check_inplace(op)
        values = values.astype(self.dtype, copy=False)
        if self._on_tape():
            return self._commit(idx_ops.Fill.apply(self, values), op)
        self._array[...] = values
        self._bump_version()
        return self

    def normal_(self, mean: float = 0.0, std: float = 1.0, *, generator=None):
        """Fill with N(mean, std²) draws (fastconv's generator, or ``generator``)."""
        if std < 0:
            raise ValueError(f"normal_: expected std >= 0, got {std}")
        _check_float_op(self, "normal_")
        return self._fill_random(generator_of(generator).normal(mean, std, size=self.shape), "normal_")

    def uniform_(self, *args, generator=None, **kwargs):
        """Fill with U(from, to) draws; PyTorch's ``uniform_(from=0, to=1)``."""
        lo, hi = _from_to(args, kwargs)
        _check_float_op(self, "uniform_")
        return self._fill_random(generator_of(generator).uniform(lo, hi, size=self.shape), "uniform_")

    def masked_fill_(self, mask, value):
        return self._masked_fill(mask, value, True)

    def scatter_(self, dim, index, src=None, *, value=None, reduce=None):
        return self._scatter(dim, index, src, value, reduce, "scatter_", True)

    def scatter_add_(self, dim, index, src):
        return self._scatter(dim, index, src, None, "add", "scatter_add_", True)

    def relu_(self):
        from .nn.functional import relu

        return relu(self, inplace=True)

    # ---- elementwise -----------------------------------------------------------------------
    def exp(self):
        return ops.Exp.apply(self)

    def log(self):
        return ops.Log.apply(self)

    def sqrt(self):
        return ops.Sqrt.apply(self)

    def abs(self):
        return ops.Abs.apply(self)

    def clip(self, min=None, max=None):  # noqa: A002 - PyTorch's argument names
        """Elementwise clamp into [min, max]; bounds are numbers or tensors (then differentiable too)."""
        _check_bounds(min, max, "clamp")
        if isinstance(min, Tensor) or isinstance(max, Tensor):
            lo = None if min is None else _like(min, self)
            hi = None if max is None else _like(max, self)
            return ops.ClampTensor.apply(self, lo, hi)
        return ops.Clip.apply(self, lo=min, hi=max)

    clamp = clip

    def clamp_min(self, min):  # noqa: A002
        return self.clamp(min=min)

    def clamp_max(self, max):  # noqa: A002
        return self.clamp(max=max)

    def maximum(self, other):
        return _binary(ops.Maximum, self, other, "maximum")

    def minimum(self, other):
        return _binary(ops.Minimum, self, other, "minimum")

    def relu(self):
        from .nn.functional import relu

        return relu(self)

    def sigmoid(self):
        from .nn.functional import sigmoid

        return sigmoid(self)

    def tanh(self):
        from .nn.functional import tanh

        return tanh(self)

    def softmax(self, dim, dtype=None):
        from .nn.functional import softmax

        x = self if dtype is None else self.astype(dtype)
        return softmax(x, dim)

    def log_softmax(self, dim, dtype=None):
        from .nn.functional import log_softmax

        x = self if dtype is None else self.astype(dtype)
        return log_softmax(x, dim)

    # ---- reductions ------------------------------------------------------------------------
    def sum(self, dim=None, keepdim=False, dtype=None, *, axis=None, keepdims=None):
        dim, keepdim = _axis_args(dim, keepdim, axis, keepdims)
        x = self if dtype is None else self.astype(dtype)
        return ops.Sum.apply(x, axis=reduction_axes(dim, x.ndim, "sum"), keepdims=keepdim)

    def mean(self, dim=None, keepdim=False, dtype=None, *, axis=None, keepdims=None):
        dim, keepdim = _axis_args(dim, keepdim, axis, keepdims)
        x = self if dtype is None else self.astype(dtype)
        _check_float_op(x, "mean")
        return ops.Mean.apply(x, axis=reduction_axes(dim, x.ndim, "mean"), keepdims=keepdim)

    def max(self, dim=None, keepdim=False, *, axis=None, keepdims=None):
        """No dim: the largest element (0-d). ``max(dim)``: the named tuple (values, indices) of the
        largest element along dim (the first one on ties). ``max(other)``: elementwise maximum.
        A tuple of dims reduces them all (values only, like ``amax``)."""
        if isinstance(dim, Tensor):
            return self.maximum(dim)
        return self._extremum(dim, keepdim, axis, keepdims, True, "max")

    def min(self, dim=None, keepdim=False, *, axis=None, keepdims=None):
        """Like ``max``, for the smallest elements."""
        if isinstance(dim, Tensor):
            return self.minimum(dim)
        return self._extremum(dim, keepdim, axis, keepdims, False, "min")

    def _extremum(self, dim, keepdim, axis, keepdims, largest: bool, op: str):
        dim, keepdim = _axis_args(dim, keepdim, axis, keepdims)
        _check_nonempty(self, op)
        if dim is None or isinstance(dim, (tuple, list)):
            return ops.Extremum.apply(self, axis=reduction_axes(dim, self.ndim, op), keepdims=keepdim,
                                      largest=largest)
        ax = _dim(dim, self.ndim, op)
        if self.ndim == 0:
            return (_max_result if largest else _min_result)(self, zeros((), dtype=np.int64))
        values, indices = idx_ops.ExtremumDim.apply(self, axis=ax, keepdims=keepdim, largest=largest)
        return (_max_result if largest else _min_result)(values, indices)

    def amax(self, dim=(), keepdim=False):
        dims = None if dim == () or dim is None else dim
        _check_nonempty(self, "amax")
        return ops.Extremum.apply(self, axis=reduction_axes(dims, self.ndim, "amax"), keepdims=keepdim, largest=True)

    def amin(self, dim=(), keepdim=False):
        dims = None if dim == () or dim is None else dim
        _check_nonempty(self, "amin")
        return ops.Extremum.apply(self, axis=reduction_axes(dims, self.ndim, "amin"), keepdims=keepdim,
                                  largest=False)

    def argmax(self, dim=None, keepdim=False, *, axis=None):
        return self._argextremum(dim if axis is None else axis, keepdim, np.argmax, "argmax")

    def argmin(self, dim=None, keepdim=False, *, axis=None):
        return self._argextremum(dim if axis is None else axis, keepdim, np.argmin, "argmin")

    def _argextremum(self, dim, keepdim, find, op: str):
        _check_nonempty(self, op)
        arr = self._array
        if dim is None:
            out = np.asarray(find(arr), dtype=np.int64)
            return Tensor._wrap(out.reshape((1,) * arr.ndim) if keepdim else out)
        ax = _dim(dim, arr.ndim, op)
        if arr.ndim == 0:
            return Tensor._wrap(np.zeros((), np.int64))
        return Tensor._wrap(np.asarray(find(arr, axis=ax, keepdims=keepdim), dtype=np.int64))

    def var(self, dim=None, unbiased=None, keepdim=False, *, correction=None, axis=None, keepdims=None,
            ddof=None):
        """Variance; unbiased (correction 1) by default as in PyTorch. ``unbiased=False`` or
        ``correction=0`` gives the population variance; ``x.var(False)`` is ``unbiased=False``."""
        if isinstance(dim, bool):
            dim, unbiased = None, dim
        dim, keepdim = _axis_args(dim, keepdim, axis, keepdims)
        _check_float_op(self, "var")
        return ops.Var.apply(self, axis=reduction_axes(dim, self.ndim, "var"), keepdims=keepdim,
                             ddof=_correction(unbiased, correction, ddof, "var"))

    def std(self, dim=None, unbiased=None, keepdim=False, *, correction=None, axis=None, keepdims=None,
            ddof=None):
        """Standard deviation (square root of ``var``, same arguments)."""
        if isinstance(dim, bool):
            dim, unbiased = None, dim
        dim, keepdim = _axis_args(dim, keepdim, axis, keepdims)
        _check_float_op(self, "std")
        return ops.Std.apply(self, axis=reduction_axes(dim, self.ndim, "std"), keepdims=keepdim,
                             ddof=_correction(unbiased, correction, ddof, "std"))

    def norm(self, p="fro", dim=None, keepdim=False, dtype=None):
        """The p-norm (default 2, 'fro') of all elements or over ``dim``; p may be inf, -inf, 0, 1."""
        if isinstance(p, str):
            if p != "fro":
                raise ValueError(f"norm: unsupported p={p!r}; expected a number or 'fro'")
            p = 2.0
        if isinstance(p, bool) or not isinstance(p, numbers.Real):
            raise TypeError(f"norm: expected p as a number, got {p!r}")
        x = self if dtype is None else self.astype(dtype)
        _check_float_op(x, "norm")
        return ops.Norm.apply(x, p=float(p), axis=reduction_axes(dim, x.ndim, "norm"), keepdims=keepdim)

    # ---- sorting and selection ---------------------------------------------------------------
    def sort(self, dim=-1, descending=False, stable=False):
        """(values, indices) sorted along dim; equal values keep their order; NaN sorts as largest."""
        if self.ndim == 0:
            return _sort_result(self, zeros((), dtype=np.int64))
        values, indices = idx_ops.Sort.apply(self, axis=_dim(dim, self.ndim, "sort"), descending=bool(descending))
        return _sort_result(values, indices)

    def argsort(self, dim=-1, descending=False, stable=False):
        if self.ndim == 0:
            return zeros((), dtype=np.int64)
        return Tensor._wrap(idx_ops.sort_indices(self._array, _dim(dim, self.ndim, "argsort"),
                                                 bool(descending)).astype(np.int64, copy=False))

    def diag(self, diagonal=0):
        """A 2-D tensor's ``diagonal``-th diagonal (1-D), or the square matrix holding a 1-D tensor on
        that diagonal; differentiable (indexing / masking of existing ops)."""
        if isinstance(diagonal, bool) or not isinstance(diagonal, (int, np.integer)):
            raise ValueError(f"diag: diagonal must be an int, got {diagonal!r}")
        k = int(diagonal)
        if self.ndim == 2:
            rows = np.arange(max(0, -k), max(0, min(self.shape[0], self.shape[1] - k)), dtype=np.int64)
            return self[Tensor._wrap(rows), Tensor._wrap(rows + k)]
        if self.ndim == 1:
            n = self.shape[0]
            square = self.unsqueeze(0) * Tensor._wrap(np.eye(n, dtype=self._array.dtype))
            return pad(square, ((max(0, -k), max(0, k)), (max(0, k), max(0, -k))))
        raise ValueError(f"diag: expected a 1-D or 2-D tensor, got shape {tuple(self.shape)}")

    def bincount(self, weights=None, minlength=0):
        """Occurrences of each value of a 1-D non-negative integer tensor (int64), or the sums of
        ``weights`` per value (in the weights' float dtype, else float64); length max(x)+1 or ``minlength``."""
        if self.ndim != 1 or self._array.dtype.kind not in "iu":
            raise ValueError(f"bincount: expected a 1-D integer tensor, got shape {tuple(self.shape)} of {self.dtype}")
        if self._array.size and int(self._array.min()) < 0:
            raise ValueError(f"bincount: expected non-negative values, got minimum {int(self._array.min())}")
        if isinstance(minlength, bool) or not isinstance(minlength, (int, np.integer)) or minlength < 0:
            raise ValueError(f"bincount: minlength must be a non-negative int, got {minlength!r}")
        if weights is None:
            return Tensor._wrap(np.bincount(self._array, minlength=int(minlength)).astype(np.int64, copy=False))
        w = weights._array if isinstance(weights, Tensor) else np.asarray(weights)
        if w.shape != self._array.shape:
            raise ValueError(f"bincount: weights must have the input's shape {tuple(self.shape)}, got {w.shape}")
        out_dtype = w.dtype if w.dtype.kind == "f" else np.float64
        return Tensor._wrap(np.bincount(self._array, weights=w.astype(np.float64), minlength=int(minlength))
                            .astype(out_dtype, copy=False))

    def topk(self, k, dim=-1, largest=True, sorted=True):  # noqa: A002 - PyTorch's argument name
        """(values, indices) of the k largest (smallest) elements along dim, in order."""
        ax = _dim(dim, self.ndim, "topk")
        n = self.shape[ax] if self.ndim else 1
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 0 <= k <= n:
            raise ValueError(f"topk: k must be an int in [0, {n}] for dim {dim} of shape {self.shape}, got {k!r}")
        x = self if self.ndim else self.reshape(1)
        values, indices = idx_ops.TopK.apply(x, k=int(k), axis=ax, largest=bool(largest))
        if self.ndim == 0:
            values, indices = values.reshape(()), indices.reshape(())
        return _topk_result(values, indices)

    # ---- indexing ops ----------------------------------------------------------------------
    def gather(self, dim, index):
        """out[i][j] = self[index[i][j]][j] for dim 0 (and so on): PyTorch's gather."""
        ax = _dim(dim, self.ndim, "gather")
        ind = _index_array(index, "gather")
        if ind.ndim != self.ndim:
            raise ValueError(f"gather: index must have as many dimensions as input ({self.ndim}), got index of "
                             f"shape {ind.shape}")
        for d, (ni, ns) in enumerate(zip(ind.shape, self.shape)):
            if d != ax and ni > ns:
                raise ValueError(f"gather: index {ind.shape} is larger than input {self.shape} in dimension {d}")
        _check_index_range(ind, self.shape[ax], ax, "gather")
        return idx_ops.Gather.apply(self, index=ind, axis=ax)

    def scatter(self, dim, index, src=None, *, value=None, reduce=None):
        return self._scatter(dim, index, src, value, reduce, "scatter", False)

    def scatter_add(self, dim, index, src):
        return self._scatter(dim, index, src, None, "add", "scatter_add", False)

    def _scatter(self, dim, index, src, value, reduce, op: str, inplace: bool):
        ax = _dim(dim, self.ndim, op)
        ind = _index_array(index, op)
        if src is None:
            src = value
        if src is None:
            raise TypeError(f"{op}: expected src (a tensor) or value (a number)")
        if reduce not in (None, "add"):
            raise ValueError(f"{op}: reduce={reduce!r} is not supported; use None or 'add'")
        if ind.ndim != self.ndim:
            raise ValueError(f"{op}: index must have as many dimensions as self ({self.ndim}), got index of "
                             f"shape {ind.shape}")
        if isinstance(src, (Tensor, np.ndarray)):
            src = _like(src, self)
            if src.ndim != self.ndim:
                raise ValueError(f"{op}: src must have as many dimensions as self ({self.ndim}), got {src.shape}")
            for d in range(self.ndim):
                if ind.shape[d] > src.shape[d] or (d != ax and ind.shape[d] > self.shape[d]):
                    raise ValueError(f"{op}: index of shape {ind.shape} is larger than src {src.shape} or "
                                     f"self {self.shape} in dimension {d}")
        else:
            src = self._array.dtype.type(_raw(src))
        _check_index_range(ind, self.shape[ax], ax, op)
        add = reduce == "add"
        if not inplace:
            return idx_ops.Scatter.apply(self, src, index=ind, axis=ax, add=add)
        self._check_inplace(op)
        result = idx_ops.Scatter.apply(self, src, index=ind, axis=ax, add=add, inplace=True)
        return self._commit(result, op)

    def index_select(self, dim, index):
        ax = _dim(dim, self.ndim, "index_select")
        ind = _index_array(index, "index_select")
        if ind.ndim > 1:
            raise ValueError(f"index_select: index must be 1-D, got shape {ind.shape}")
        _check_index_range(ind, self.shape[ax] if self.ndim else 1, ax, "index_select")
        return idx_ops.IndexSelect.apply(self, index=ind.reshape(-1), axis=ax)

    def masked_fill(self, mask, value):
        return self._masked_fill(mask, value, False)

    def _masked_fill(self, mask, value, inplace: bool):
        op = "masked_fill_" if inplace else "masked_fill"
        m = _raw(mask)
        if not isinstance(m, np.ndarray) or m.dtype != np.bool_:
            raise TypeError(f"{op}: expected a bool mask tensor, got {getattr(m, 'dtype', type(m).__name__)}")
        try:
            shape = np.broadcast_shapes(self.shape, m.shape)
        except ValueError:
            shape = None
        if shape != self.shape:
            raise ValueError(f"{op}: mask of shape {m.shape} does not broadcast to the tensor's shape {self.shape}")
        if isinstance(value, Tensor):
            if value.ndim != 0:
                raise ValueError(f"{op}: expected a 0-d value tensor, got shape {value.shape}")
            v = _like(value, self)
        else:
            v = self._array.dtype.type(value)
        if not inplace:
            return idx_ops.MaskedFill.apply(self, v, mask=m)
        self._check_inplace(op)
        return self._commit(idx_ops.MaskedFill.apply(self, v, mask=m, inplace=True), op)

    def where(self, condition, other):
        return where(condition, self, other)

    # ---- shape -----------------------------------------------------------------------------
    def reshape(self, *shape):
        shape = _shape_args(shape)
        try:
            out = ops.Reshape.apply(self, shape=shape)
        except (ValueError, TypeError):
            raise ValueError(f"reshape: cannot reshape tensor of shape {self.shape} into shape {shape}") from None
        return out._as_view_of(self, ops.Reshape, {"shape": shape})

    def view(self, *shape):
        """A view with another shape sharing this tensor's memory; like PyTorch, an error when the
        memory layout does not allow one (use reshape, which copies then)."""
        if len(shape) == 1 and not isinstance(shape[0], (tuple, list, int, np.integer)):
            raise TypeError(f"view: expected a shape, got {shape[0]!r} (view(dtype) is not supported)")
        out = self.reshape(*shape)
        if out._view is None and out._array.size and out._array is not self._array:
            raise RuntimeError(f"view: size {out.shape} is not compatible with the memory layout of a tensor of "
                               f"shape {self.shape} (not contiguous); use .reshape(...) or .contiguous() first")
        return out

    def view_as(self, other):
        return self.view(other.shape)

    def reshape_as(self, other):
        return self.reshape(other.shape)

    def flatten(self, start_dim: int = 0, end_dim: int = -1):
        """Merge dims start_dim..end_dim (PyTorch semantics; default flattens everything)."""
        if self.ndim == 0:
            return self.reshape(1)
        s = _dim(start_dim, self.ndim, "flatten")
        e = _dim(end_dim, self.ndim, "flatten")
        if s > e:
            raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim} for shape {self.shape}")
        new = self.shape[:s] + (math.prod(self.shape[s:e + 1]),) + self.shape[e + 1:]
        return self.reshape(new)

    def unflatten(self, dim, sizes):
        ax = _dim(dim, self.ndim, "unflatten")
        return self.reshape(self.shape[:ax] + tuple(sizes) + self.shape[ax + 1:])

    def permute(self, *axes):
        axes = _shape_args(axes)
        norm = reduction_axes(axes, self.ndim, "permute") if axes else ()
        if len(axes) != self.ndim or sorted(norm) != list(range(self.ndim)):
            raise ValueError(f"permute: expected a permutation of {self.ndim} axes, got {axes}")
        axes = tuple(a % self.ndim for a in axes) if self.ndim else ()
        return ops.Permute.apply(self, axes=axes)._as_view_of(self, ops.Permute, {"axes": axes})

    def transpose(self, dim0: int = None, dim1: int = None):
        """Swap two dims (PyTorch semantics); with no arguments reverse all dims (numpy's default)."""
        if dim0 is None and dim1 is None:
            return self.T
        if self.ndim == 0:
            return self
        d0, d1 = _dim(dim0, self.ndim, "transpose"), _dim(dim1, self.ndim, "transpose")
        axes = list(range(self.ndim))
        axes[d0], axes[d1] = axes[d1], axes[d0]
        return self.permute(*axes)

    swapaxes = transpose
    swapdims = transpose

    def squeeze(self, dim=None):
        """Drop dims of size 1 (all, or those of ``dim``; a named dim of another size is kept, as in
        PyTorch)."""
        if dim is None:
            new = tuple(n for n in self.shape if n != 1)
        else:
            axes = reduction_axes(dim, self.ndim, "squeeze") if self.ndim else ()
            new = tuple(n for i, n in enumerate(self.shape) if not (i in axes and n == 1))
        return self.reshape(new)

    def unsqueeze(self, dim: int):
        if not -self.ndim - 1 <= dim <= self.ndim:
            raise ValueError(f"unsqueeze: dim {dim} out of range for a tensor with {self.ndim} dimensions")
        dim = dim % (self.ndim + 1)
        return self.reshape(self.shape[:dim] + (1,) + self.shape[dim:])

    def expand(self, *sizes):
        """A read-only broadcast view in a larger shape; -1 keeps a dim, new dims go in front."""
        sizes = _shape_args(sizes)
        if len(sizes) < self.ndim:
            raise ValueError(f"expand: the number of sizes ({len(sizes)}) must be at least the tensor's "
                             f"dimensions ({self.ndim}), shape {self.shape}")
        lead = len(sizes) - self.ndim
        shape = []
        for i, n in enumerate(sizes):
            if i < lead:
                if n < 0:
                    raise ValueError(f"expand: -1 is not allowed for a new leading dimension, got {sizes}")
                shape.append(int(n))
                continue
            own = self.shape[i - lead]
            if n == -1 or n == own:
                shape.append(own)
            elif own == 1 and n >= 0:
                shape.append(int(n))
            else:
                raise ValueError(f"expand: the expanded size {n} must match the existing size {own} at "
                                 f"dimension {i} (shape {self.shape}, sizes {sizes})")
        shape = tuple(shape)
        if shape == self.shape:
            return self
        return ops.Expand.apply(self, shape=shape)._as_view_of(self, ops.Expand, {"shape": shape})

    def expand_as(self, other):
        return self.expand(other.shape)

    def repeat(self, *sizes):
        """Tile the tensor ``sizes`` times per dim (extra leading sizes add dims), a copy."""
        sizes = _shape_args(sizes)
        if len(sizes) < self.ndim:
            raise ValueError(f"repeat: the number of repeats ({len(sizes)}) can not be smaller than the "
                             f"tensor's dimensions ({self.ndim})")
        if any(r < 0 for r in sizes):
            raise ValueError(f"repeat: repeats must be >= 0, got {sizes}")
        return ops.Repeat.apply(self, reps=tuple(int(r) for r in sizes))

    def chunk(self, chunks: int, dim: int = 0):
        """At most ``chunks`` views of ceil(n / chunks) elements along dim (the last may be smaller)."""
        if isinstance(chunks, bool) or not isinstance(chunks, (int, np.integer)) or chunks < 1:
            raise ValueError(f"chunk: expected chunks as an int >= 1, got {chunks!r}")
        ax = _dim(dim, self.ndim, "chunk")
        n = self.shape[ax]
        if n == 0:
            return self._split_sizes([0] * int(chunks), ax)  # PyTorch: chunks empty pieces
        step = -(-n // int(chunks))
        return self._split_sizes([min(step, n - s) for s in range(0, n, step)], ax)

    def split(self, split_size_or_sections, dim: int = 0):
        """Views of ``split_size`` elements along dim (the last may be smaller), or of the given sizes."""
        ax = _dim(dim, self.ndim, "split")
        n = self.shape[ax]
        s = split_size_or_sections
        if isinstance(s, (int, np.integer)) and not isinstance(s, bool):
            if s < 1 and n:
                raise ValueError(f"split: split_size must be >= 1, got {s}")
            sizes = [min(int(s), n - i) for i in range(0, n, int(s))] if n else [0]
        else:
            sizes = [int(v) for v in s]
            if sum(sizes) != n or any(v < 0 for v in sizes):
                raise ValueError(f"split: sizes {list(s)} must be >= 0 and sum to {n} (dimension {dim} of "
                                 f"shape {self.shape})")
        return self._split_sizes(sizes, ax)

    def _split_sizes(self, sizes, ax: int):
        pieces = ops.Split.apply(self, axis=ax, sizes=tuple(sizes))
        start = 0
        for piece, size in zip(pieces, sizes):
            index = (slice(None),) * ax + (slice(start, start + size),)
            piece._as_view_of(self, ops.GetItem, {"index": index})
            start += size
        return pieces

    def unbind(self, dim: int = 0):
        ax = _dim(dim, self.ndim, "unbind")
        return tuple(self.select(ax, i) for i in range(self.shape[ax]))

    def select(self, dim: int, index: int):
        ax = _dim(dim, self.ndim, "select")
        return self[(slice(None),) * ax + (index,)]

    def narrow(self, dim: int, start: int, length: int):
        ax = _dim(dim, self.ndim, "narrow")
        return self[(slice(None),) * ax + (slice(start, start + length),)]

    def __getitem__(self, index):
        index = _raw_index(index)
        try:
            self._array[index]
        except IndexError as exc:
            raise IndexError(f"getitem: {exc} (tensor of shape {self.shape})") from None
        return ops.GetItem.apply(self, index=index)._as_view_of(self, ops.GetItem, {"index": index})

    def __setitem__(self, index, value):
        """``x[index] = value`` in place; on the tape x takes the assignment's history (the gradient
        of the overwritten elements is zero, ``value`` gets theirs)."""
        index = _raw_index(index)
        if self._on_tape(value):
            self._check_inplace("setitem")
            v = _like(value, self) if isinstance(value, (Tensor, np.ndarray)) else self._array.dtype.type(value)
            return self._commit(idx_ops.SetItem.apply(self, v, index=index), "setitem")
        self._check_inplace("setitem")
        self._array[index] = _raw(value)
        self._bump_version()


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


def _rebuild(array, requires_grad):
    return Tensor(array, requires_grad=requires_grad)


# ---- helpers ---------------------------------------------------------------------------------

def _raw(x):
    return x._array if isinstance(x, Tensor) else x


def _arrays_in(value):
    """``value`` with every Tensor inside lists, tuples and dicts replaced by its array."""
    if isinstance(value, Tensor):
        return value._array
    if isinstance(value, (list, tuple)):
        return type(value)(_arrays_in(v) for v in value)
    if isinstance(value, dict):
        return {k: _arrays_in(v) for k, v in value.items()}
    return value


def _raw_index(index):
    if isinstance(index, Tensor):
        return index._array
    if isinstance(index, tuple):
        return tuple(i._array if isinstance(i, Tensor) else i for i in index)
    if isinstance(index, list) and any(isinstance(i, Tensor) for i in index):
        return [i._array if isinstance(i, Tensor) else i for i in index]
    return index


def _like(value, ref: Tensor) -> Tensor:
    """A tensor operand brought to ``ref``'s dtype (on the tape when it needs grad)."""
    t = value if isinstance(value, Tensor) else Tensor._wrap(np.asarray(value))
    return t if t.dtype == ref.dtype else t.astype(ref.dtype)


def _scalar_or_array(other, op: str):
    """The raw operand of an in-place op: a Python scalar or an ndarray."""
    if isinstance(other, Tensor):
        return other._array
    if isinstance(other, np.generic):
        return other.item()
    if isinstance(other, numbers.Number):
        return other
    arr = np.asarray(other)
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"{op}: expected a numeric operand, got {type(other).__name__}")
    return arr


def _result_dtype(arr: np.ndarray, other, true_div: bool) -> np.dtype:
    """PyTorch's result dtype of ``arr (op) other`` (other: scalar or array)."""
    dims, zero, scalars = [], [], []
    for x in (arr, other):
        if isinstance(x, np.ndarray):
            (dims if x.ndim else zero).append(x.dtype)
        else:
            scalars.append(scalar_dtype(x))
    rt = result_type(dims, zero, scalars)
    return DEFAULT_FLOAT if true_div and rt.kind != "f" else rt


def _operand(other, op: str):
    """A binary op's non-Tensor operand: Python numbers stay scalars, numpy scalars become Python
    ones (so they count as scalars in promotion), arrays and lists become Tensors."""
    if isinstance(other, np.generic):
        if other.dtype.kind not in "fiub":
            raise TypeError(f"{op}: expected a numeric operand, got {type(other).__name__}")
        return other.item()
    if isinstance(other, (bool, int, float)):
        return other
    if isinstance(other, np.ndarray):
        if other.dtype.kind not in "fiub":
            raise TypeError(f"{op}: expected a numeric operand, got array of dtype {other.dtype}")
        return Tensor._wrap(other)
    if isinstance(other, numbers.Number):
        return other
    try:
        return Tensor(other)
    except TypeError:
        raise TypeError(f"{op}: unsupported operand type {type(other).__name__} for a Tensor") from None


def _promote(a, b, op: str, true_div: bool):
    """Cast the tensor operands of a binary op to PyTorch's result dtype (scalars stay scalars)."""
    ta, tb = isinstance(a, Tensor), isinstance(b, Tensor)
    if not ta:
        a = _operand(a, op)
        ta = isinstance(a, Tensor)
    if not tb:
        b = _operand(b, op)
        tb = isinstance(b, Tensor)
    if ta and tb:
        da, db = a._array.dtype, b._array.dtype
        if da == db and (da.kind == "f" or not true_div):
            return a, b
    else:
        t, s = (a, b) if ta else (b, a)
        kind = t._array.dtype.kind
        if kind == "f" or (not true_div and kind == "i" and type(s) is int):
            return a, b
    dims, zero, scalars = [], [], []
    for x in (a, b):
        if isinstance(x, Tensor):
            (dims if x._array.ndim else zero).append(x._array.dtype)
        else:
            scalars.append(scalar_dtype(x))
    rt = result_type(dims, zero, scalars)
    if true_div and rt.kind != "f":
        rt = DEFAULT_FLOAT
    if ta and a._array.dtype != rt:
        a = a.astype(rt)
    if tb and b._array.dtype != rt:
        b = b.astype(rt)
    return a, b


def _binary(function, a, b, op: str) -> Tensor:
    """An elementwise binary op with PyTorch's type promotion; a broadcasting mismatch is reported
    with the op and both shapes."""
    a, b = _promote(a, b, op, function is ops.Div)
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


def _axis_args(dim, keepdim, axis, keepdims):
    """PyTorch's dim/keepdim, with numpy's axis/keepdims accepted as aliases."""
    if axis is not None:
        dim = axis
    if keepdims is not None:
        keepdim = keepdims
    return dim, keepdim


def _dim(dim, ndim: int, op: str) -> int:
    """One dim, checked and made non-negative (a 0-d tensor accepts 0 and -1)."""
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)):
        raise TypeError(f"{op}: expected dim as an int, got {dim!r}")
    if not -max(ndim, 1) <= dim < max(ndim, 1):
        raise IndexError(f"{op}: dimension {dim} out of range for a tensor with {ndim} dimensions")
    return int(dim) % max(ndim, 1)


def _dims(dim, ndim: int, op: str):
    return None if dim is None else reduction_axes(dim, ndim, op)


def _correction(unbiased, correction, ddof, op: str):
    if correction is not None:
        return correction
    if unbiased is not None:
        return 1 if unbiased else 0
    if ddof is not None:
        return ddof
    return 1


def _check_float_op(t: Tensor, op: str) -> None:
    if t.dtype.kind != "f":
        raise TypeError(f"{op}: expected a float32 or float64 tensor, got {t.dtype}")


def _check_nonempty(t: Tensor, op: str) -> None:
    if t._array.size == 0:
        raise ValueError(f"{op}: reduction over an empty tensor of shape {t.shape}")


def _check_bounds(lo, hi, op: str) -> None:
    if lo is None and hi is None:
        raise ValueError(f"{op}: at least one of min and max must be given")


def _from_to(args, kwargs):
    """PyTorch's ``uniform_(from=0, to=1)`` bounds (``from`` is a Python keyword)."""
    values = list(args) + [None] * (2 - len(args))
    lo = kwargs.pop("from", values[0])
    hi = kwargs.pop("to", values[1])
    if kwargs or len(args) > 2:
        raise TypeError(f"uniform_: unexpected arguments {args!r} {kwargs!r}")
    lo = 0.0 if lo is None else float(lo)
    hi = 1.0 if hi is None else float(hi)
    if lo > hi:
        raise ValueError(f"uniform_: expected from <= to, got from={lo}, to={hi}")
    return lo, hi


def _index_array(index, op: str) -> np.ndarray:
    arr = _raw(index)
    arr = np.asarray(arr)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{op}: expected an integer index tensor, got dtype {arr.dtype}")
    return arr.astype(np.int64, copy=False)


def _check_index_range(index: np.ndarray, n: int, dim: int, op: str) -> None:
    if index.size and (index.min() < 0 or index.max() >= n):
        bad = index.min() if index.min() < 0 else index.max()
        raise IndexError(f"{op}: index {int(bad)} is out of bounds for dimension {dim} with size {n}")


def _shape_args(shape):
    return tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else tuple(shape)


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

def tensor(data, dtype=None, device=None, requires_grad: bool = False, pin_memory: bool = False) -> Tensor:
    """A new Tensor from a list, scalar or array (float32 for Python floats; arrays keep dtype)."""
    as_cpu(device, "tensor")
    arr = _to_array(data, dtype)
    if isinstance(data, (np.ndarray, Tensor)) and arr is (data._array if isinstance(data, Tensor) else data):
        arr = arr.copy()
    return Tensor._wrap(arr).requires_grad_(requires_grad)


def _dtype_or_default(dtype):
    return DEFAULT_FLOAT if dtype is None else _resolve_dtype(dtype)


def zeros(*size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    as_cpu(device, "zeros")
    return Tensor(np.zeros(_shape_args(size), dtype=_dtype_or_default(dtype)), requires_grad=requires_grad)


def ones(*size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    as_cpu(device, "ones")
    return Tensor(np.ones(_shape_args(size), dtype=_dtype_or_default(dtype)), requires_grad=requires_grad)


def full(size, fill_value, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A tensor filled with ``fill_value``; without dtype, bool → bool, int → int64, float → float32
    (PyTorch's inference)."""
    as_cpu(device, "full")
    if dtype is None:
        dtype = scalar_dtype(_raw(fill_value)) if not isinstance(fill_value, Tensor) else fill_value.dtype
    size = (size,) if isinstance(size, (int, np.integer)) else tuple(size)
    return Tensor(np.full(size, _raw(fill_value), dtype=_resolve_dtype(dtype)), requires_grad=requires_grad)


def zeros_like(input, dtype=None, device=None, requires_grad: bool = False) -> Tensor:  # noqa: A002
    as_cpu(device, "zeros_like")
    arr = _raw(input)
    return Tensor(np.zeros(np.shape(arr), dtype=_resolve_dtype(dtype) or np.asarray(arr).dtype),
                  requires_grad=requires_grad)


def ones_like(input, dtype=None, device=None, requires_grad: bool = False) -> Tensor:  # noqa: A002
    as_cpu(device, "ones_like")
    arr = _raw(input)
    return Tensor(np.ones(np.shape(arr), dtype=_resolve_dtype(dtype) or np.asarray(arr).dtype),
                  requires_grad=requires_grad)


def randn(*size, generator=None, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Standard normal samples from fastconv's seeded generator (``manual_seed``) or ``generator``."""
    as_cpu(device, "randn")
    dt = _dtype_or_default(dtype)
    if dt.kind != "f":
        raise TypeError(f"randn: expected a float dtype, got {dt}")
    arr = generator_of(generator).standard_normal(_shape_args(size)).astype(dt)
    return Tensor(arr, requires_grad=requires_grad)


def rand(*size, generator=None, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Uniform [0, 1) samples from fastconv's seeded generator or ``generator``."""
    as_cpu(device, "rand")
    dt = _dtype_or_default(dtype)
    if dt.kind != "f":
        raise TypeError(f"rand: expected a float dtype, got {dt}")
    arr = generator_of(generator).random(_shape_args(size)).astype(dt)
    return Tensor(arr, requires_grad=requires_grad)


def arange(start, end=None, step=1, dtype=None, device=None, requires_grad: bool = False, *, stop=None) -> Tensor:
    as_cpu(device, "arange")
    end = stop if end is None else end
    start, end, step = _raw(start), _raw(end), _raw(step)
    arr = np.arange(start, end, step) if end is not None else np.arange(start)
    if dtype is None and arr.dtype.kind == "f":
        arr = arr.astype(np.float32)
    return Tensor(arr, dtype=dtype, requires_grad=requires_grad)


def _as_tensors(tensors, op: str):
    tensors = list(tensors)
    if not tensors:
        raise ValueError(f"{op}: expected a non-empty sequence of tensors")
    return [t if isinstance(t, Tensor) else Tensor(t) for t in tensors]


def cat(tensors, dim: int = 0, *, axis=None) -> Tensor:
    """Concatenate along an existing dim (PyTorch's promotion of mixed dtypes)."""
    dim = axis if axis is not None else dim
    ts = _as_tensors(tensors, "cat")
    ref = ts[0].shape
    ax = reduction_axes((dim,), len(ref), "cat")[0]
    for i, t in enumerate(ts):
        if t.ndim != len(ref) or t.shape[:ax] + t.shape[ax + 1:] != ref[:ax] + ref[ax + 1:]:
            raise ValueError(f"cat: tensor {i} has shape {t.shape}, incompatible with {ref} along axis {dim}")
    ts = _common_dtype(ts)
    return ops.Concatenate.apply(*ts, axis=ax)


concat = cat
concatenate = cat


def _common_dtype(ts):
    dtypes = {t.dtype for t in ts}
    if len(dtypes) == 1:
        return ts
    rt = result_type([t.dtype for t in ts], [], [])
    return [t if t.dtype == rt else t.astype(rt) for t in ts]


def stack(tensors, dim: int = 0, *, axis=None) -> Tensor:
    """Stack along a new dim."""
    dim = axis if axis is not None else dim
    ts = _as_tensors(tensors, "stack")
    for i, t in enumerate(ts):
        if t.shape != ts[0].shape:
            raise ValueError(f"stack: tensor {i} has shape {t.shape}, expected {ts[0].shape} like tensor 0")
    if not -ts[0].ndim - 1 <= dim <= ts[0].ndim:
        raise ValueError(f"stack: axis {dim} out of range for tensors with {ts[0].ndim} dimensions")
    ts = _common_dtype(ts)
    return ops.Stack.apply(*ts, axis=dim % (ts[0].ndim + 1))


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


def where(condition, input=None, other=None) -> Tensor:  # noqa: A002 - PyTorch's argument names
    """Elementwise ``input`` where condition else ``other``, differentiable in both; with only a
    condition, the tuple of index tensors of its True elements."""
    cond = np.asarray(_raw(condition), dtype=bool)
    if input is None and other is None:
        return tuple(Tensor._wrap(i.astype(np.int64, copy=False)) for i in np.nonzero(cond))
    a, b = input, other
    if isinstance(a, Tensor) and isinstance(b, Tensor) and a.dtype != b.dtype:
        a, b = _promote(a, b, "where", False)
    return ops.Where.apply(cond, a, b)
