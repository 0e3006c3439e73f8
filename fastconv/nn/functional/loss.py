"""Loss functions (PyTorch semantics), each one Function with a closed-form backward.

Class losses work on rows: logits (N, C, d1, ...) are viewed as (N·d1·..., C) with the class
axis last, so (N, C) classification, (N, C, H, W) dense per-pixel prediction and unbatched (C,)
inputs share one code path.
"""
from __future__ import annotations

import math
import warnings
from typing import Optional, Union

import numpy as np

from ..._validation import check_float, check_same_dtype
from ...autograd.function import Context, Function
from ...tensor import Tensor
from ._args import as_float_tensor
from .activation import LogSoftmax, Sigmoid

_REDUCTIONS = ("none", "mean", "sum")
ArrayLike = Union[Tensor, np.ndarray]


# ---- shared helpers ---------------------------------------------------------------------------
def _untaped(function, *args, **options) -> np.ndarray:
    """Run another Function's forward math on arrays without recording it (reuses its stable formula)."""
    return function.forward(Context(function, (), False), *args, **options)


def _rows(x: np.ndarray) -> np.ndarray:
    """(C,) → (1, C); (N, C, d...) → (N·d..., C) with the class axis last."""
    if x.ndim == 1:
        return x.reshape(1, -1)
    if x.ndim == 2:  # already rows (np.moveaxis alone costs ~2 µs, a batch-1 loss ~20)
        return x
    return np.moveaxis(x, 1, -1).reshape(-1, x.shape[1])


def _unrows(rows: np.ndarray, shape: tuple) -> np.ndarray:
    """Inverse of ``_rows`` for an array of the original ``shape`` (2-D rows come back as they
    are: a reshaped view would not be fresh for the engine, which would copy it into .grad)."""
    if len(shape) <= 2:
        return rows if rows.shape == tuple(shape) else rows.reshape(shape)
    moved = (shape[0],) + tuple(shape[2:]) + (shape[1],)
    return np.moveaxis(rows.reshape(moved), -1, 1)


def _num_rows(shape: tuple) -> int:
    return 1 if len(shape) == 1 else shape[0] * math.prod(shape[2:])


def _quiet_divide(num, den):
    """num / den, where a zero ``den`` gives inf/nan without a warning (as in torch); the errstate
    guard is entered only then (it costs about as much as a small loss's arithmetic)."""
    if den != 0:
        return num / den
    with np.errstate(invalid="ignore", divide="ignore"):
        return num / den


def _reduce(values: np.ndarray, reduction: str, denom: Optional[float] = None) -> np.ndarray:
    """'none' keeps per-element values; 'sum' adds them; 'mean' divides the sum by ``denom`` (default: count)."""
    if reduction == "none":
        return values
    total = values.sum()
    if reduction == "mean":
        total = _quiet_divide(total, values.size if denom is None else denom)
    return np.asarray(total, dtype=values.dtype)


def _upstream(g: np.ndarray, reduction: str, denom: float) -> np.ndarray:
    """The incoming gradient as the per-element factor of each loss term (broadcastable)."""
    if reduction == "mean":
        return _quiet_divide(g, g.dtype.type(denom))
    return g


def _nbytes(array) -> int:
    return 0 if array is None else int(np.asarray(array).nbytes)


def _check_reduction(op: str, reduction: str) -> None:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{op}: expected reduction 'none', 'mean' or 'sum', got {reduction!r}")


def legacy_reduction(size_average: Optional[bool], reduce: Optional[bool], reduction: str, op: str) -> str:
    """``reduction`` from PyTorch's deprecated ``size_average``/``reduce`` pair when either is given
    (with PyTorch's warning and mapping: both true or unset → 'mean', reduce alone → 'sum', reduce
    false → 'none'), else ``reduction`` itself."""
    if size_average is None and reduce is None:
        return reduction
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    result = "mean" if size_average and reduce else ("sum" if reduce else "none")
    warnings.warn(f"{op}: size_average and reduce args will be deprecated, please use reduction='{result}' instead.",
                  UserWarning, stacklevel=3)
    return result


def _target_array(target, op: str) -> np.ndarray:
    if isinstance(target, Tensor):
        return target._array
    try:
        return np.asarray(target)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{op}: expected target as an ndarray or Tensor, got {type(target).__name__}") from exc


def _option_array(value, like: np.ndarray, op: str, name: str) -> Optional[np.ndarray]:
    """A non-differentiable weight argument as an array of the input's dtype (None stays None)."""
    if value is None:
        return None
    arr = value._array if isinstance(value, Tensor) else np.asarray(value)
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"{op}: expected {name} as a numeric array, got dtype {arr.dtype}")
    return arr.astype(like.dtype, copy=False)


def _check_pair(input: Tensor, target, op: str):
    """Float input and target of one dtype and one shape (the elementwise losses)."""
    input = as_float_tensor(input, op)
    target_arr = _target_array(target, op)
    check_float(target_arr, op, "target")
    check_same_dtype(op, input=input._array, target=target_arr)
    if target_arr.shape != input.shape:
        raise ValueError(
            f"{op}: expected target of the input's shape {tuple(input.shape)}, got {tuple(target_arr.shape)}")
    return input, target if isinstance(target, Tensor) else target_arr


def _class_indices(input: np.ndarray, target: np.ndarray, op: str, ignore_index: int) -> None:
    """Integer targets of shape (N, d...) (or () for unbatched input) with values in [0, C) or ignore_index."""
    classes = input.shape[0] if input.ndim == 1 else input.shape[1]
    expected = () if input.ndim == 1 else (input.shape[0],) + tuple(input.shape[2:])
    if target.dtype.kind not in "iu":
        raise TypeError(
            f"{op}: expected integer class indices as target (or class probabilities of the input's shape "
            f"{tuple(input.shape)}), got target of dtype {target.dtype} and shape {tuple(target.shape)}")
    if target.shape != expected:
        raise ValueError(
            f"{op}: expected target of shape {expected} for input of shape {tuple(input.shape)}, "
            f"got {tuple(target.shape)}")
    if target.size == 0 or (target.min() >= 0 and target.max() < classes):
        return
    bad = ((target < 0) | (target >= classes)) & (target != ignore_index)
    if bad.any():
        value = int(target[bad].reshape(-1)[0])
        raise ValueError(
            f"{op}: target value {value} is out of range for {classes} classes "
            f"(expected values in [0, {classes}) or ignore_index={ignore_index})")


def _check_class_args(input: Tensor, weight, ignore_index, op: str) -> Optional[np.ndarray]:
    if input.ndim < 1:
        raise ValueError(f"{op}: expected input of shape (C,), (N, C) or (N, C, d1, ...), got a 0-D input")
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, (int, np.integer)):
        raise TypeError(f"{op}: expected ignore_index as an int, got {ignore_index!r}")
    classes = input.shape[0] if input.ndim == 1 else input.shape[1]
    w = _option_array(weight, input._array, op, "weight")
    if w is not None and w.shape != (classes,):
        raise ValueError(
            f"{op}: expected weight of shape ({classes},) for input of shape {tuple(input.shape)}, "
            f"got {tuple(w.shape)}")
    return w


def _class_weights(t: np.ndarray, weight: Optional[np.ndarray], ignore_index: int, dtype):
    """(safe indices, per-row weight w[y] with 0 for ignored rows, mask of kept rows)."""
    kept = t != ignore_index
    safe = np.where(kept, t, 0)
    w_y = kept.astype(dtype) if weight is None else weight[safe] * kept
    return safe, w_y, kept


# ---- cross entropy ----------------------------------------------------------------------------
class CrossEntropy(Function):
    """−Σ_c q_c·log softmax(x)_c per row, q the (smoothed, weighted) target; grad = softmax·Σq − q."""

    @staticmethod
    def forward(ctx, input, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
        classes = input.shape[0] if input.ndim == 1 else input.shape[1]
        logp = _untaped(LogSoftmax, _rows(input), axis=1)
        eps = label_smoothing
        plain = False  # class indices, no weight, no smoothing, nothing ignored
        if target.dtype.kind == "f":  # class probabilities
            t = _rows(target)
            q = t * (1 - eps) + eps / classes if eps else t
            if weight is not None:
                q = q * weight
            per_row = -(q * logp).sum(axis=1)
            denom = float(per_row.shape[0])
        else:
            t = target.reshape(-1).astype(np.int64, copy=False)
            plain = weight is None and not eps and not (t == ignore_index).any()
            if plain:  # every row counts with weight 1 (w_y below would be all ones)
                per_row = -logp[np.arange(t.size), t]
                denom = float(t.size)
            else:
                safe, w_y, kept = _class_weights(t, weight, ignore_index, input.dtype)
                per_row = -w_y * logp[np.arange(t.size), safe]
                if eps:
                    smooth = -(logp if weight is None else logp * weight).sum(axis=1) * kept
                    per_row = (1 - eps) * per_row + (eps / classes) * smooth
                denom = float(w_y.sum())
        ctx.save_for_backward(logp, t, weight)
        ctx.plain_indices = plain
        ctx.options = (input.shape, target.shape, ignore_index, reduction, eps, denom)
        out_shape = () if input.ndim == 1 else input.shape[:1] + input.shape[2:]
        return _reduce(per_row.reshape(out_shape), reduction, denom)

    @staticmethod
    def saved_bytes(shapes, dtype, needs_input_grad, weight=None, ignore_index=-100, reduction="mean",
                    label_smoothing=0.0) -> int:
        if not any(needs_input_grad):
            return 0
        input_shape, target_shape = shapes[0], shapes[1]
        rows = _num_rows(input_shape)
        item = np.dtype(dtype).itemsize
        classes = input_shape[0] if len(input_shape) == 1 else input_shape[1]
        logp = rows * classes * item
        target = logp if tuple(target_shape) == tuple(input_shape) else rows * 8  # probabilities or int64 indices
        return logp + target + _nbytes(weight)

    @staticmethod
    def backward(ctx, g):
        logp, t, weight = ctx.saved_tensors
        input_shape, target_shape, ignore_index, reduction, eps, denom = ctx.options
        rows, classes = logp.shape
        # the upstream factor per row: one value for 'mean'/'sum', one per row for 'none'
        s = _upstream(g, reduction, denom).reshape(-1, 1)
        if ctx.plain_indices:
            # the common case, class indices with nothing ignored: softmax − onehot, scaled
            grad_rows = np.exp(logp)
            grad_rows[np.arange(rows), t] -= 1
            grad_rows *= s
            return _unrows(grad_rows, input_shape), None
        kept = None
        if t.dtype.kind == "f":
            q = t * (1 - eps) + eps / classes if eps else t
            if weight is not None:
                q = q * weight
        else:
            safe, w_y, kept = _class_weights(t, weight, ignore_index, logp.dtype)
            if eps:
                q = (eps / classes) * (np.ones(classes, logp.dtype) if weight is None else weight) * kept[:, None]
                q = q.astype(logp.dtype, copy=False)
            else:
                q = np.zeros_like(logp)
            q[np.arange(rows), safe] += (1 - eps) * w_y
        grad_input = grad_target = None
        if ctx.needs_input_grad[0]:
            with np.errstate(invalid="ignore"):  # all targets ignored under 'mean': s is inf, as in torch
                grad_rows = s * (np.exp(logp) * q.sum(axis=1, keepdims=True) - q)
            if kept is not None:  # ignored rows get exactly zero gradient
                grad_rows = np.where(kept[:, None], grad_rows, 0).astype(logp.dtype, copy=False)
            grad_input = _unrows(grad_rows, input_shape)
        if ctx.needs_input_grad[1]:
            scale = (1 - eps) * (1.0 if weight is None else weight)
            grad_target = _unrows(-s * scale * logp, target_shape).astype(logp.dtype, copy=False)
        return grad_input, grad_target


def cross_entropy(input: Tensor, target: ArrayLike, weight: Optional[ArrayLike] = None, ignore_index: int = -100,
                  reduction: str = "mean", label_smoothing: float = 0.0, *, size_average: Optional[bool] = None,
                  reduce: Optional[bool] = None) -> Tensor:
    """Softmax cross entropy of logits ``input`` (C,), (N, C) or (N, C, d1, ...) against class indices
    (shape (), (N,) or (N, d1, ...)) or class probabilities (the input's shape).

    Mean reduction divides by the summed weights of the non-ignored targets, as in PyTorch.
    Stable for any logit magnitude (log-sum-exp on shifted logits).
    """
    op = "cross_entropy"
    reduction = legacy_reduction(size_average, reduce, reduction, op)
    input = as_float_tensor(input, op)
    _check_reduction(op, reduction)
    w = _check_class_args(input, weight, ignore_index, op)
    if not isinstance(label_smoothing, (int, float)) or not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"{op}: expected label_smoothing in [0, 1], got {label_smoothing!r}")
    t = _target_array(target, op)
    if t.dtype.kind == "f" and t.shape == input.shape:
        check_same_dtype(op, input=input._array, target=t)
        target_arg = target if isinstance(target, Tensor) else t
    else:
        _class_indices(input._array, t, op, ignore_index)
        target_arg = t
    return CrossEntropy.apply(input, target_arg, weight=w, ignore_index=int(ignore_index), reduction=reduction,
                              label_smoothing=float(label_smoothing))


# ---- negative log likelihood ------------------------------------------------------------------
class NLLLoss(Function):
    """−w[y]·input[y] per row; grad scatters −w[y] into the target column."""

    @staticmethod
    def forward(ctx, input, target, weight=None, ignore_index=-100, reduction="mean"):
        rows = _rows(input)
        t = target.reshape(-1).astype(np.int64, copy=False)
        safe, w_y, _ = _class_weights(t, weight, ignore_index, input.dtype)
        per_row = -w_y * rows[np.arange(t.size), safe]
        denom = float(w_y.sum())
        ctx.save_for_backward(t, weight)
        ctx.options = (input.shape, ignore_index, reduction, denom)
        return _reduce(per_row.reshape(target.shape), reduction, denom)

    @staticmethod
    def saved_bytes(shapes, dtype, needs_input_grad, weight=None, ignore_index=-100, reduction="mean") -> int:
        if not any(needs_input_grad):
            return 0
        return _num_rows(shapes[0]) * 8 + _nbytes(weight)

    @staticmethod
    def backward(ctx, g):
        t, weight = ctx.saved_tensors
        input_shape, ignore_index, reduction, denom = ctx.options
        classes = input_shape[0] if len(input_shape) == 1 else input_shape[1]
        s = np.broadcast_to(_upstream(g, reduction, denom).reshape(-1), (t.size,))
        grad = np.zeros((t.size, classes), dtype=g.dtype)
        safe, w_y, kept = _class_weights(t, weight, ignore_index, g.dtype)
        with np.errstate(invalid="ignore"):  # all targets ignored under 'mean': s is inf, as in torch
            grad[np.arange(t.size), safe] = np.where(kept, -s * w_y, 0)
        return _unrows(grad, input_shape), None


def nll_loss(input: Tensor, target: ArrayLike, weight: Optional[ArrayLike] = None, ignore_index: int = -100,
             reduction: str = "mean", *, size_average: Optional[bool] = None, reduce: Optional[bool] = None) -> Tensor:
    """Negative log likelihood of log-probabilities ``input`` (e.g. log_softmax output) at class ``target``."""
    op = "nll_loss"
    reduction = legacy_reduction(size_average, reduce, reduction, op)
    input = as_float_tensor(input, op)
    _check_reduction(op, reduction)
    w = _check_class_args(input, weight, ignore_index, op)
    t = _target_array(target, op)
    _class_indices(input._array, t, op, ignore_index)
    return NLLLoss.apply(input, t, weight=w, ignore_index=int(ignore_index), reduction=reduction)


# ---- losses of the difference input − target ----------------------------------------------------
class _DifferenceLoss(Function):
    """reduce(f(input − target)); subclasses give f (``_value``) and f' (``_slope``)."""

    @staticmethod
    def forward(ctx, input, target, reduction="mean", **params):
        diff = input - target
        ctx.save_for_backward(diff)
        ctx.options = (reduction, params)
        return _reduce(ctx.function._value(diff, **params), reduction)

    @staticmethod
    def saved_bytes(shapes, dtype, needs_input_grad, reduction="mean", **params) -> int:
        return math.prod(shapes[0]) * np.dtype(dtype).itemsize if any(needs_input_grad) else 0

    @staticmethod
    def backward(ctx, g):
        (diff,) = ctx.saved_tensors
        reduction, params = ctx.options
        grad = (_upstream(g, reduction, diff.size) * ctx.function._slope(diff, **params)).astype(diff.dtype,
                                                                                                  copy=False)
        return (grad if ctx.needs_input_grad[0] else None), (-grad if ctx.needs_input_grad[1] else None)


class MSELoss(_DifferenceLoss):
    @staticmethod
    def _value(d):
        return d * d

    @staticmethod
    def _slope(d):
        return 2 * d


class L1Loss(_DifferenceLoss):
    @staticmethod
    def _value(d):
        return np.abs(d)

    @staticmethod
    def _slope(d):
        return np.sign(d)


class SmoothL1Loss(_DifferenceLoss):
    """0.5·d²/β where |d| < β, |d| − 0.5·β elsewhere (β = 0 is the L1 loss)."""

    @staticmethod
    def _value(d, beta):
        a = np.abs(d)
        if beta == 0:
            return a
        return np.where(a < beta, 0.5 * d * d / beta, a - 0.5 * beta)

    @staticmethod
    def _slope(d, beta):
        if beta == 0:
            return np.sign(d)
        return np.where(np.abs(d) < beta, d / beta, np.sign(d))


class HuberLoss(_DifferenceLoss):
    """0.5·d² where |d| < δ, δ·(|d| − 0.5·δ) elsewhere."""

    @staticmethod
    def _value(d, delta):
        a = np.abs(d)
        return np.where(a < delta, 0.5 * d * d, delta * (a - 0.5 * delta))

    @staticmethod
    def _slope(d, delta):
        return np.where(np.abs(d) < delta, d, delta * np.sign(d))


def mse_loss(input: Tensor, target: ArrayLike, reduction: str = "mean", *, size_average: Optional[bool] = None,
             reduce: Optional[bool] = None) -> Tensor:
    """(input − target)², reduced."""
    reduction = legacy_reduction(size_average, reduce, reduction, "mse_loss")
    _check_reduction("mse_loss", reduction)
    return MSELoss.apply(*_check_pair(input, target, "mse_loss"), reduction=reduction)


def l1_loss(input: Tensor, target: ArrayLike, reduction: str = "mean", *, size_average: Optional[bool] = None,
            reduce: Optional[bool] = None) -> Tensor:
    """|input − target|, reduced."""
    reduction = legacy_reduction(size_average, reduce, reduction, "l1_loss")
    _check_reduction("l1_loss", reduction)
    return L1Loss.apply(*_check_pair(input, target, "l1_loss"), reduction=reduction)


def smooth_l1_loss(input: Tensor, target: ArrayLike, reduction: str = "mean", beta: float = 1.0, *,
                   size_average: Optional[bool] = None, reduce: Optional[bool] = None) -> Tensor:
    """Quadratic below ``beta``, linear above: robust to outliers (Fast R-CNN's box loss)."""
    reduction = legacy_reduction(size_average, reduce, reduction, "smooth_l1_loss")
    _check_reduction("smooth_l1_loss", reduction)
    if not isinstance(beta, (int, float)) or beta < 0:
        raise ValueError(f"smooth_l1_loss: expected beta >= 0, got {beta!r}")
    return SmoothL1Loss.apply(*_check_pair(input, target, "smooth_l1_loss"), reduction=reduction,
                              beta=float(beta))


def huber_loss(input: Tensor, target: ArrayLike, reduction: str = "mean", delta: float = 1.0) -> Tensor:
    """Quadratic below ``delta``, linear with slope ``delta`` above."""
    _check_reduction("huber_loss", reduction)
    if not isinstance(delta, (int, float)) or delta <= 0:
        raise ValueError(f"huber_loss: expected delta > 0, got {delta!r}")
    return HuberLoss.apply(*_check_pair(input, target, "huber_loss"), reduction=reduction, delta=float(delta))


# ---- binary cross entropy -----------------------------------------------------------------------
def _softplus(x: np.ndarray) -> np.ndarray:
    """log(1 + exp(x)) without overflow."""
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


class BinaryCrossEntropyWithLogits(Function):
    """w·[p·t·softplus(−x) + (1 − t)·softplus(x)]; grad_x = w·[σ(x)(p·t + 1 − t) − p·t]."""

    @staticmethod
    def forward(ctx, input, target, weight=None, pos_weight=None, reduction="mean"):
        sp = _softplus(input)
        if pos_weight is None:
            loss = sp - target * input
        else:
            loss = pos_weight * target * (sp - input) + (1 - target) * sp
        if weight is not None:
            loss = loss * weight
        ctx.save_for_backward(input, target, weight, pos_weight)
        ctx.reduction = reduction
        return _reduce(loss.astype(input.dtype, copy=False), reduction)

    @staticmethod
    def saved_bytes(shapes, dtype, needs_input_grad, weight=None, pos_weight=None, reduction="mean") -> int:
        if not any(needs_input_grad):
            return 0
        item = np.dtype(dtype).itemsize
        return 2 * math.prod(shapes[0]) * item + _nbytes(weight) + _nbytes(pos_weight)

    @staticmethod
    def backward(ctx, g):
        x, t, weight, pos_weight = ctx.saved_tensors
        up = _upstream(g, ctx.reduction, x.size)
        if weight is not None:
            up = up * weight
        grad_input = grad_target = None
        if ctx.needs_input_grad[0]:
            sig = _untaped(Sigmoid, x)
            d = sig - t if pos_weight is None else sig * (pos_weight * t + 1 - t) - pos_weight * t
            grad_input = (up * d).astype(x.dtype, copy=False)
        if ctx.needs_input_grad[1]:
            d = -x if pos_weight is None else pos_weight * (_softplus(x) - x) - _softplus(x)
            grad_target = (up * d).astype(x.dtype, copy=False)
        return grad_input, grad_target


def _broadcast_option(arr: Optional[np.ndarray], input: Tensor, op: str, name: str) -> None:
    if arr is None:
        return
    try:
        shape = np.broadcast_shapes(arr.shape, input.shape)
    except ValueError:
        shape = None
    if shape != tuple(input.shape):
        raise ValueError(f"{op}: expected {name} broadcastable to the input's shape {tuple(input.shape)}, "
                         f"got {tuple(arr.shape)}")


def binary_cross_entropy_with_logits(input: Tensor, target: ArrayLike, weight: Optional[ArrayLike] = None,
                                     reduction: str = "mean", pos_weight: Optional[ArrayLike] = None, *,
                                     size_average: Optional[bool] = None, reduce: Optional[bool] = None) -> Tensor:
    """Sigmoid + binary cross entropy in one stable step (softplus form, no overflow at large |x|).

    ``pos_weight`` (per class, broadcast along the last axis) weighs positive targets.
    """
    op = "binary_cross_entropy_with_logits"
    reduction = legacy_reduction(size_average, reduce, reduction, op)
    _check_reduction(op, reduction)
    input, target = _check_pair(input, target, op)
    w = _option_array(weight, input._array, op, "weight")
    pw = _option_array(pos_weight, input._array, op, "pos_weight")
    _broadcast_option(w, input, op, "weight")
    _broadcast_option(pw, input, op, "pos_weight")
    return BinaryCrossEntropyWithLogits.apply(input, target, weight=w, pos_weight=pw, reduction=reduction)


class BinaryCrossEntropy(Function):
    """−w·[t·log x + (1 − t)·log(1 − x)] with logs clamped at −100 like PyTorch."""

    @staticmethod
    def forward(ctx, input, target, weight=None, reduction="mean"):
        with np.errstate(divide="ignore"):
            log_x = np.maximum(np.log(input), -100)
            log_1mx = np.maximum(np.log1p(-input), -100)
        loss = -(target * log_x + (1 - target) * log_1mx)
        if weight is not None:
            loss = loss * weight
        ctx.save_for_backward(input, target, weight)
        ctx.reduction = reduction
        return _reduce(loss.astype(input.dtype, copy=False), reduction)

    @staticmethod
    def saved_bytes(shapes, dtype, needs_input_grad, weight=None, reduction="mean") -> int:
        if not any(needs_input_grad):
            return 0
        return 2 * math.prod(shapes[0]) * np.dtype(dtype).itemsize + _nbytes(weight)

    @staticmethod
    def backward(ctx, g):
        x, t, weight = ctx.saved_tensors
        up = _upstream(g, ctx.reduction, x.size)
        if weight is not None:
            up = up * weight
        grad_input = grad_target = None
        if ctx.needs_input_grad[0]:
            grad_input = (up * (x - t) / np.maximum(x * (1 - x), 1e-12)).astype(x.dtype, copy=False)
        if ctx.needs_input_grad[1]:
            with np.errstate(divide="ignore"):
                d = np.maximum(np.log1p(-x), -100) - np.maximum(np.log(x), -100)
            grad_target = (up * d).astype(x.dtype, copy=False)
        return grad_input, grad_target


def binary_cross_entropy(input: Tensor, target: ArrayLike, weight: Optional[ArrayLike] = None,
                         reduction: str = "mean", *, size_average: Optional[bool] = None,
                         reduce: Optional[bool] = None) -> Tensor:
    """Binary cross entropy of probabilities ``input`` in [0, 1] (prefer the with_logits form)."""
    op = "binary_cross_entropy"
    reduction = legacy_reduction(size_average, reduce, reduction, op)
    _check_reduction(op, reduction)
    input, target = _check_pair(input, target, op)
    x = input._array
    if x.size and (np.nanmin(x) < 0 or np.nanmax(x) > 1 or np.isnan(x).any()):
        bad = x[(x < 0) | (x > 1) | np.isnan(x)].reshape(-1)[0]
        raise ValueError(f"{op}: expected input values in [0, 1] (probabilities), got {bad!r}")
    w = _option_array(weight, input._array, op, "weight")
    _broadcast_option(w, input, op, "weight")
    return BinaryCrossEntropy.apply(input, target, weight=w, reduction=reduction)


__all__ = ["cross_entropy", "nll_loss", "mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss",
           "binary_cross_entropy_with_logits", "binary_cross_entropy"]
