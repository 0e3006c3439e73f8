"""Creation functions beyond tensor.py's core ones, with PyTorch's names, defaults and keywords
(``dtype``, ``device``, ``requires_grad``, ``generator``)."""
from __future__ import annotations

import numpy as np

from ._dtypes import resolve_dtype
from ._promotion import DEFAULT_FLOAT
from ._device import as_cpu
from .random import generator_of
from .tensor import Tensor, _raw, _shape_args, _to_array

__all__ = ["empty", "empty_like", "full_like", "rand_like", "randn_like", "randint", "randint_like",
           "randperm", "linspace", "logspace", "eye", "from_numpy", "as_tensor", "is_tensor", "numel"]


def _float_dtype(dtype, op: str):
    dt = DEFAULT_FLOAT if dtype is None else resolve_dtype(dtype, op)
    if dt.kind != "f":
        raise TypeError(f"{op}: expected a float dtype, got {dt}")
    return dt


def empty(*size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A new tensor (zero-filled here: reading uninitialized memory is never useful on purpose)."""
    as_cpu(device, "empty")
    dt = DEFAULT_FLOAT if dtype is None else resolve_dtype(dtype, "empty")
    return Tensor(np.zeros(_shape_args(size), dtype=dt), requires_grad=requires_grad)


def _like(input, dtype, device, op):  # noqa: A002 - PyTorch's argument name
    as_cpu(device, op)
    arr = _raw(input)
    return np.shape(arr), (resolve_dtype(dtype, op) if dtype is not None else np.asarray(arr).dtype)


def empty_like(input, dtype=None, device=None, requires_grad: bool = False) -> Tensor:  # noqa: A002
    shape, dt = _like(input, dtype, device, "empty_like")
    return Tensor(np.zeros(shape, dtype=dt), requires_grad=requires_grad)


def full_like(input, fill_value, dtype=None, device=None, requires_grad: bool = False) -> Tensor:  # noqa: A002
    shape, dt = _like(input, dtype, device, "full_like")
    return Tensor(np.full(shape, _raw(fill_value), dtype=dt), requires_grad=requires_grad)


def rand_like(input, dtype=None, device=None, requires_grad: bool = False, generator=None) -> Tensor:  # noqa: A002
    shape, dt = _like(input, dtype, device, "rand_like")
    dt = _float_dtype(dt, "rand_like")
    return Tensor(generator_of(generator).random(shape).astype(dt), requires_grad=requires_grad)


def randn_like(input, dtype=None, device=None, requires_grad: bool = False, generator=None) -> Tensor:  # noqa: A002
    shape, dt = _like(input, dtype, device, "randn_like")
    dt = _float_dtype(dt, "randn_like")
    return Tensor(generator_of(generator).standard_normal(shape).astype(dt), requires_grad=requires_grad)


def _check_int(value, op: str, name: str) -> int:
    value = _raw(value)
    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{op}: expected {name} as an int, got {value!r}")
    return int(value)


def randint(*args, size=None, generator=None, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Integers drawn uniformly from [low, high): ``randint(high, size)`` or ``randint(low, high, size)``
    (int64 unless ``dtype``)."""
    args = list(args)
    if size is None and args and isinstance(args[-1], (tuple, list)):
        size = args.pop()
    if size is None:
        raise TypeError("randint: expected a size tuple, e.g. randint(0, 10, (3,))")
    if len(args) == 1:
        low, high = 0, _check_int(args[0], "randint", "high")
    elif len(args) == 2:
        low, high = _check_int(args[0], "randint", "low"), _check_int(args[1], "randint", "high")
    else:
        raise TypeError(f"randint: expected randint(high, size) or randint(low, high, size), got {len(args)} "
                        "bounds")
    if low >= high:
        raise ValueError(f"randint: expected low < high, got low={low}, high={high}")
    as_cpu(device, "randint")
    dt = np.dtype(np.int64) if dtype is None else resolve_dtype(dtype, "randint")
    values = generator_of(generator).integers(low, high, size=tuple(size), dtype=np.int64)
    return Tensor(values.astype(dt, copy=False), requires_grad=requires_grad)


def randint_like(input, low=0, high=None, dtype=None, device=None, generator=None) -> Tensor:  # noqa: A002
    if high is None:
        low, high = 0, low
    shape, dt = _like(input, dtype, device, "randint_like")
    return randint(low, high, tuple(shape), generator=generator, dtype=dt)


def randperm(n, generator=None, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A random permutation of 0..n-1 (int64 unless ``dtype``)."""
    n = _check_int(n, "randperm", "n")
    if n < 0:
        raise ValueError(f"randperm: expected n >= 0, got {n}")
    as_cpu(device, "randperm")
    dt = np.dtype(np.int64) if dtype is None else resolve_dtype(dtype, "randperm")
    return Tensor(generator_of(generator).permutation(n).astype(dt), requires_grad=requires_grad)


def linspace(start, end, steps: int, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """``steps`` evenly spaced values from start to end inclusive (float32 unless ``dtype``)."""
    steps = _check_int(steps, "linspace", "steps")
    if steps < 0:
        raise ValueError(f"linspace: expected steps >= 0, got {steps}")
    as_cpu(device, "linspace")
    dt = DEFAULT_FLOAT if dtype is None else resolve_dtype(dtype, "linspace")
    return Tensor(np.linspace(float(_raw(start)), float(_raw(end)), steps).astype(dt),
                  requires_grad=requires_grad)


def logspace(start, end, steps: int, base: float = 10.0, dtype=None, device=None,
             requires_grad: bool = False) -> Tensor:
    steps = _check_int(steps, "logspace", "steps")
    as_cpu(device, "logspace")
    dt = DEFAULT_FLOAT if dtype is None else resolve_dtype(dtype, "logspace")
    return Tensor(np.logspace(float(_raw(start)), float(_raw(end)), steps, base=base).astype(dt),
                  requires_grad=requires_grad)


def eye(n: int, m=None, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """The n×m (n×n) identity matrix."""
    n = _check_int(n, "eye", "n")
    m = n if m is None else _check_int(m, "eye", "m")
    if n < 0 or m < 0:
        raise ValueError(f"eye: expected n, m >= 0, got {n}, {m}")
    as_cpu(device, "eye")
    dt = DEFAULT_FLOAT if dtype is None else resolve_dtype(dtype, "eye")
    return Tensor(np.eye(n, m, dtype=dt), requires_grad=requires_grad)


def from_numpy(ndarray: np.ndarray) -> Tensor:
    """A Tensor sharing the array's memory (changes show on both sides); the dtype is kept."""
    if not isinstance(ndarray, np.ndarray):
        raise TypeError(f"from_numpy: expected an np.ndarray, got {type(ndarray).__name__}")
    return Tensor._wrap(_to_array(ndarray))


def as_tensor(data, dtype=None, device=None) -> Tensor:
    """``data`` as a Tensor, sharing memory when it already is an array or Tensor of that dtype."""
    as_cpu(device, "as_tensor")
    if isinstance(data, Tensor):
        return data if dtype is None or resolve_dtype(dtype, "as_tensor") == data.dtype else data.to(dtype)
    return Tensor._wrap(_to_array(data, dtype))


def is_tensor(obj) -> bool:
    return isinstance(obj, Tensor)


def numel(input: Tensor) -> int:  # noqa: A002
    return input.numel()

