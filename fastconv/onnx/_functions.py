"""Differentiable operations ONNX graphs use that fastconv has no public function for."""
from __future__ import annotations

import numpy as np

from ..autograd.function import Function


def erf(x: np.ndarray) -> np.ndarray:
    """scipy's erf in x's dtype (scipy.special is imported here, not with fastconv: it costs ~40 ms)."""
    from scipy import special

    return special.erf(x).astype(x.dtype, copy=False)


class Erf(Function):
    """erf(x); d/dx = 2/sqrt(pi)·exp(−x²) (ONNX's Erf, e.g. in exported GELUs)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return erf(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * (2.0 / np.sqrt(np.pi)) * np.exp(-x * x)
