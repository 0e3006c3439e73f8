"""RMSprop (Hinton's lecture 6e; centered form of Graves 2013), PyTorch's rule."""
from __future__ import annotations

from typing import Iterable, List

import numpy as np

from .._kernels import optim as _optim
from ..tensor import Tensor
from .optimizer import Optimizer, check_option, compat_options, fused_update, placeholder, state_array


class RMSprop(Optimizer):
    """RMSprop: d ← ±grad (+ wd·p); v ← α·v + (1−α)·d²; r = √v + eps, or with ``centered``
    a ← a + (1−α)(d − a), r = √(v − a²) + eps; with ``momentum`` μ: b ← μ·b + d/r, p ← p − lr·b,
    else p ← p − lr·d/r. State as PyTorch's: step, square_avg, momentum_buffer (μ > 0),
    grad_avg (centered)."""

    def __init__(self, params: Iterable, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False, capturable: bool = False,
                 foreach=None, maximize: bool = False, differentiable: bool = False) -> None:
        defaults = dict(lr=lr, momentum=momentum, alpha=alpha, eps=eps, centered=centered,
                        weight_decay=weight_decay, maximize=maximize,
                        **compat_options("RMSprop", foreach, differentiable, capturable=capturable))
        defaults.pop("fused")
        self._validate_group(defaults)
        super().__init__(params, defaults)

    def _validate_group(self, group: dict) -> None:
        for key in ("lr", "eps", "momentum", "weight_decay", "alpha"):
            check_option("RMSprop", key, group[key])

    def _update(self, group: dict, params: List[Tensor]) -> None:
        momentum, centered = float(group["momentum"]), bool(group["centered"])
        for p in params:
            state = self.state[p]
            if not state:
                state["step"] = 0
                state["square_avg"] = np.zeros(p.shape, dtype=p.dtype)
            if momentum > 0 and "momentum_buffer" not in state:
                state["momentum_buffer"] = np.zeros(p.shape, dtype=p.dtype)
            if centered and "grad_avg" not in state:
                state["grad_avg"] = np.zeros(p.shape, dtype=p.dtype)
            state["step"] = int(state["step"]) + 1
            arrays = (state_array(state, "square_avg", p.numpy(), "RMSprop"),
                      state_array(state, "grad_avg", p.numpy(), "RMSprop") if centered else placeholder(p.dtype),
                      state_array(state, "momentum_buffer", p.numpy(), "RMSprop") if momentum > 0
                      else placeholder(p.dtype))
            fused_update("RMSprop", _optim.rmsprop_update, p, arrays, float(group["lr"]), float(group["alpha"]),
                         float(group["eps"]), float(group["weight_decay"]), momentum, centered,
                         bool(group["maximize"]))
