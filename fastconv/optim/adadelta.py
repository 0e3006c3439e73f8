"""Adadelta (Zeiler 2012), PyTorch's rule."""
from __future__ import annotations

from typing import Iterable, List

import numpy as np

from .._kernels import optim as _optim
from ..tensor import Tensor
from .optimizer import Optimizer, check_option, compat_options, fused_update, state_array


class Adadelta(Optimizer):
    """Adadelta: d ← ±grad (+ wd·p); v ← ρ·v + (1−ρ)·d²; u = √(a + eps)/√(v + eps)·d;
    a ← ρ·a + (1−ρ)·u²; p ← p − lr·u. State as PyTorch's: step, square_avg, acc_delta."""

    def __init__(self, params: Iterable, lr: float = 1.0, rho: float = 0.9, eps: float = 1e-6,
                 weight_decay: float = 0.0, foreach=None, *, capturable: bool = False, maximize: bool = False,
                 differentiable: bool = False) -> None:
        defaults = dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize,
                        **compat_options("Adadelta", foreach, differentiable, capturable=capturable))
        defaults.pop("fused")
        self._validate_group(defaults)
        super().__init__(params, defaults)

    def _validate_group(self, group: dict) -> None:
        for key in ("lr", "eps", "weight_decay"):
            check_option("Adadelta", key, group[key])
        check_option("Adadelta", "rho", group["rho"], 0.0, 1.0)

    def _update(self, group: dict, params: List[Tensor]) -> None:
        for p in params:
            state = self.state[p]
            if not state:
                state["step"] = 0
                state["square_avg"] = np.zeros(p.shape, dtype=p.dtype)
                state["acc_delta"] = np.zeros(p.shape, dtype=p.dtype)
            state["step"] = int(state["step"]) + 1
            arrays = (state_array(state, "square_avg", p.numpy(), "Adadelta"),
                      state_array(state, "acc_delta", p.numpy(), "Adadelta"))
            fused_update("Adadelta", _optim.adadelta_update, p, arrays, float(group["lr"]), float(group["rho"]),
                         float(group["eps"]), float(group["weight_decay"]), bool(group["maximize"]))
