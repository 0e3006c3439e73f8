"""Loss layers: Modules over ``fastconv.nn.functional``'s losses, with PyTorch's constructor arguments.

As in PyTorch, class weights (``weight``) and ``pos_weight`` are registered buffers, so they appear
in ``state_dict()`` and follow ``.double()``. The deprecated ``size_average``/``reduce`` pair is
still accepted and mapped onto ``reduction`` with PyTorch's rule and warning.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from ...tensor import Tensor
from .. import functional as F
from ..functional.loss import legacy_reduction
from ..module import Module

_REDUCTIONS = ("none", "mean", "sum")


def _as_buffer(value, layer: str, name: str) -> Optional[Tensor]:
    """A weight argument as a float Tensor buffer (None stays None)."""
    if value is None:
        return None
    arr = value.numpy() if isinstance(value, Tensor) else np.asarray(value)
    if arr.dtype.kind not in "fiu" or arr.dtype == np.float16:
        raise TypeError(f"{layer}: expected {name} as a float32/float64 Tensor or array, got dtype {arr.dtype}")
    if arr.dtype.kind != "f":
        arr = arr.astype(np.float32)
    return value if isinstance(value, Tensor) and value.numpy() is arr else Tensor._wrap(arr)


class _Loss(Module):
    """Holds ``reduction`` (validated, or derived from the legacy size_average/reduce pair)."""

    def __init__(self, size_average=None, reduce=None, reduction: str = "mean") -> None:
        super().__init__()
        name = type(self).__name__
        reduction = legacy_reduction(size_average, reduce, reduction, name)
        if reduction not in _REDUCTIONS:
            raise ValueError(f"{name}: expected reduction 'none', 'mean' or 'sum', got {reduction!r}")
        self.reduction = reduction


class _WeightedLoss(_Loss):
    """A loss with an optional per-class ``weight`` buffer."""

    def __init__(self, weight=None, size_average=None, reduce=None, reduction: str = "mean") -> None:
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", _as_buffer(weight, type(self).__name__, "weight"))


def _ignore_index(value, layer: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{layer}: expected ignore_index as an int, got {value!r}")
    return int(value)


class CrossEntropyLoss(_WeightedLoss):
    """Softmax cross entropy of logits (C,), (N, C) or (N, C, d1, ...) against class indices or probabilities.

    ``weight`` (C,) weighs classes; targets equal to ``ignore_index`` add nothing (and 'mean' divides
    by the summed weights of the others); ``label_smoothing`` mixes the target with the uniform
    distribution. See ``fastconv.nn.functional.cross_entropy``.
    """

    def __init__(self, weight=None, size_average=None, ignore_index: int = -100, reduce=None,
                 reduction: str = "mean", label_smoothing: float = 0.0) -> None:
        super().__init__(weight, size_average, reduce, reduction)
        self.ignore_index = _ignore_index(ignore_index, "CrossEntropyLoss")
        if isinstance(label_smoothing, bool) or not isinstance(label_smoothing, (int, float, np.floating)) \
                or not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"CrossEntropyLoss: expected label_smoothing in [0, 1], got {label_smoothing!r}")
        self.label_smoothing = float(label_smoothing)

    def forward(self, input: Tensor, target) -> Tensor:
        return F.cross_entropy(input, target, weight=self.weight, ignore_index=self.ignore_index,
                               reduction=self.reduction, label_smoothing=self.label_smoothing)


class NLLLoss(_WeightedLoss):
    """Negative log likelihood of log-probabilities (e.g. ``LogSoftmax`` output) at the target classes."""

    def __init__(self, weight=None, size_average=None, ignore_index: int = -100, reduce=None,
                 reduction: str = "mean") -> None:
        super().__init__(weight, size_average, reduce, reduction)
        self.ignore_index = _ignore_index(ignore_index, "NLLLoss")

    def forward(self, input: Tensor, target) -> Tensor:
        return F.nll_loss(input, target, weight=self.weight, ignore_index=self.ignore_index,
                          reduction=self.reduction)


class MSELoss(_Loss):
    """(input − target)², reduced."""

    def forward(self, input: Tensor, target) -> Tensor:
        return F.mse_loss(input, target, reduction=self.reduction)


class L1Loss(_Loss):
    """|input − target|, reduced."""

    def forward(self, input: Tensor, target) -> Tensor:
        return F.l1_loss(input, target, reduction=self.reduction)


def _non_negative(value, layer: str, name: str, strict: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)) \
            or not (value > 0 if strict else value >= 0):
        raise ValueError(f"{layer}: expected {name} {'>' if strict else '>='} 0, got {value!r}")
    return float(value)


class SmoothL1Loss(_Loss):
    """0.5·d²/β where |d| < β, |d| − 0.5·β elsewhere (d = input − target)."""

    def __init__(self, size_average=None, reduce=None, reduction: str = "mean", beta: float = 1.0) -> None:
        super().__init__(size_average, reduce, reduction)
        self.beta = _non_negative(beta, "SmoothL1Loss", "beta")

    def forward(self, input: Tensor, target) -> Tensor:
        return F.smooth_l1_loss(input, target, reduction=self.reduction, beta=self.beta)


class HuberLoss(_Loss):
    """0.5·d² where |d| < δ, δ·(|d| − 0.5·δ) elsewhere (d = input − target)."""

    def __init__(self, reduction: str = "mean", delta: float = 1.0) -> None:
        super().__init__(None, None, reduction)
        self.delta = _non_negative(delta, "HuberLoss", "delta", strict=True)

    def forward(self, input: Tensor, target) -> Tensor:
        return F.huber_loss(input, target, reduction=self.reduction, delta=self.delta)


class BCELoss(_WeightedLoss):
    """Binary cross entropy of probabilities in [0, 1] (logs clamped at −100 as in PyTorch).

    ``weight`` is broadcast to the input's shape. ``BCEWithLogitsLoss`` is the stable choice.
    """

    def forward(self, input: Tensor, target) -> Tensor:
        return F.binary_cross_entropy(input, target, weight=self.weight, reduction=self.reduction)


class BCEWithLogitsLoss(_Loss):
    """Sigmoid + binary cross entropy in one stable step; ``pos_weight`` weighs positives per class."""

    def __init__(self, weight=None, size_average=None, reduce=None, reduction: str = "mean",
                 pos_weight=None) -> None:
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", _as_buffer(weight, "BCEWithLogitsLoss", "weight"))
        self.register_buffer("pos_weight", _as_buffer(pos_weight, "BCEWithLogitsLoss", "pos_weight"))

    def forward(self, input: Tensor, target) -> Tensor:
        return F.binary_cross_entropy_with_logits(input, target, weight=self.weight, reduction=self.reduction,
                                                  pos_weight=self.pos_weight)
