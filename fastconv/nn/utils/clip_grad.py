"""Gradient clipping (PyTorch's ``clip_grad_norm_``/``clip_grad_value_``): rescale or clamp ``.grad`` in place.

Norms are computed in float64 and returned as a 0-d Tensor of the gradients' dtype (float32 for
float32 gradients), so the scale applied to each gradient is PyTorch's
``min(1, max_norm / (total_norm + 1e-6))``, rounded to the gradient's dtype.
"""
from __future__ import annotations

import math
import numbers
from typing import Iterable, List, Union

import numpy as np

from ...tensor import Tensor

Parameters = Union[Tensor, Iterable[Tensor]]


def _as_list(parameters: Parameters, op: str) -> List[Tensor]:
    items = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    for p in items:
        if not isinstance(p, Tensor):
            raise TypeError(f"{op}: expected parameters as Tensors, got {type(p).__name__}")
    return items


def _with_grads(parameters: Parameters, op: str) -> List[Tensor]:
    return [p for p in _as_list(parameters, op) if p.grad is not None]


def _norm_type(norm_type, op: str) -> float:
    try:
        value = float(norm_type)
    except (TypeError, ValueError):
        raise TypeError(f"{op}: expected norm_type as a number or 'inf', got {norm_type!r}") from None
    if math.isnan(value):
        raise ValueError(f"{op}: norm_type must not be NaN")
    return value


def _vector_norm(values: np.ndarray, p: float) -> float:
    """torch.linalg.vector_norm of a flat float64 array (any real order, ±inf and 0 included)."""
    if values.size == 0:
        return 0.0
    return float(np.linalg.norm(values, ord=p))


def get_total_norm(tensors, norm_type: Union[float, str] = 2.0, error_if_nonfinite: bool = False,
                   foreach=None) -> Tensor:
    """The ``norm_type`` norm of all ``tensors`` taken together (the norm of their norms), as a 0-d Tensor."""
    op = "get_total_norm"
    p = _norm_type(norm_type, op)
    items = [t for t in _as_list(tensors, op)]
    if not items:
        return Tensor._wrap(np.asarray(0.0, dtype=np.float32))
    arrays = [t.numpy() for t in items]
    norms = np.array([_vector_norm(a.astype(np.float64, copy=False).reshape(-1), p) for a in arrays])
    total = _vector_norm(norms, p)
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(
            f"The total norm of order {p} for gradients from `parameters` is non-finite, so it cannot be clipped. "
            "To disable this error and scale the gradients by the non-finite norm anyway, set "
            "`error_if_nonfinite=False`")
    dtype = np.result_type(*arrays) if all(a.dtype.kind == "f" for a in arrays) else np.float64
    return Tensor._wrap(np.asarray(total, dtype=dtype))


def _update_grad(param: Tensor, ufunc, *args) -> None:
    """Apply ``ufunc(grad, *args)`` to ``param.grad`` in place (a new gradient if its array is read-only)."""
    g = param.grad.numpy()
    args = tuple(g.dtype.type(a) for a in args)
    if g.flags.writeable:
        ufunc(g, *args, out=g)
    else:
        param.grad = Tensor._wrap(ufunc(g, *args))


def clip_grads_with_norm_(parameters: Parameters, max_norm: float, total_norm, foreach=None) -> None:
    """Scale every ``.grad`` by ``min(1, max_norm / (total_norm + 1e-6))`` in place."""
    op = "clip_grads_with_norm_"
    if isinstance(max_norm, bool) or not isinstance(max_norm, numbers.Real):
        raise TypeError(f"{op}: expected max_norm as a real number, got {max_norm!r}")
    params = _with_grads(parameters, op)
    if not params:
        return
    total = float(total_norm.item() if isinstance(total_norm, Tensor) else total_norm)
    coef = min(float(max_norm) / (total + 1e-6), 1.0) if not math.isnan(total) else math.nan
    for p in params:
        _update_grad(p, np.multiply, coef)


def clip_grad_norm_(parameters: Parameters, max_norm: float, norm_type: Union[float, str] = 2.0,
                    error_if_nonfinite: bool = False, foreach=None) -> Tensor:
    """Rescale the gradients of ``parameters`` in place so that their joint ``norm_type`` norm is at
    most ``max_norm``; returns the norm before clipping (0-d Tensor).

    ``norm_type`` may be ``inf`` (largest absolute value). A non-finite norm raises a RuntimeError
    with ``error_if_nonfinite``; otherwise the gradients are scaled by it anyway (NaN), as in
    PyTorch. ``foreach`` is accepted for compatibility (there is one CPU implementation).
    """
    parameters = _as_list(parameters, "clip_grad_norm_")
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return Tensor._wrap(np.asarray(0.0, dtype=np.float32))
    total = get_total_norm(grads, norm_type, error_if_nonfinite)
    clip_grads_with_norm_(parameters, max_norm, total)
    return total


def clip_grad_norm(parameters: Parameters, max_norm: float, norm_type: Union[float, str] = 2.0,
                   error_if_nonfinite: bool = False, foreach=None) -> Tensor:
    """Deprecated alias of ``clip_grad_norm_`` (as in PyTorch)."""
    return clip_grad_norm_(parameters, max_norm, norm_type, error_if_nonfinite, foreach)


def clip_grad_value_(parameters: Parameters, clip_value: float, foreach=None) -> None:
    """Clamp every gradient of ``parameters`` to [−clip_value, clip_value] in place."""
    op = "clip_grad_value_"
    if isinstance(clip_value, bool) or not isinstance(clip_value, numbers.Real):
        raise TypeError(f"{op}: expected clip_value as a real number, got {clip_value!r}")
    limit = float(clip_value)
    for p in _with_grads(parameters, op):
        _update_grad(p, np.clip, -limit, limit)
