"""Adagrad (Duchi et al. 2011), PyTorch's rule with lr decay and an initial accumulator value."""
from __future__ import annotations

from typing import Iterable, List

import numpy as np

from .._kernels import optim as _optim
from ..tensor import Tensor
from .optimizer import Optimizer, check_option, compat_options, fused_update, state_array


class Adagrad(Optimizer):
    """Adagrad: per step t, d ← ±grad (+ wd·p); clr = lr / (1 + (t − 1)·lr_decay); s ← s + d·d;
    p ← p − clr · d / (√s + eps).

    As in PyTorch, the state (step 0 and the sum, filled with ``initial_accumulator_value``) is
    created for every parameter at construction, so ``state_dict()`` lists it before the first step.
    """

    def __init__(self, params: Iterable, lr: float = 1e-2, lr_decay: float = 0.0, weight_decay: float = 0.0,
                 initial_accumulator_value: float = 0.0, eps: float = 1e-10, foreach=None, *,
                 maximize: bool = False, differentiable: bool = False, fused=None) -> None:
        defaults = dict(lr=lr, lr_decay=lr_decay, eps=eps, weight_decay=weight_decay,
                        initial_accumulator_value=initial_accumulator_value, maximize=maximize,
                        **compat_options("Adagrad", foreach, differentiable, fused))
        self._validate_group(defaults)
        super().__init__(params, defaults)
        for group in self.param_groups:
            for p in group["params"]:
                self._init_state(p, group)

    def _validate_group(self, group: dict) -> None:
        for key in ("lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps"):
            check_option("Adagrad", key, group[key])

    def _init_state(self, p: Tensor, group: dict) -> dict:
        state = self.state[p]
        if not state:
            state["step"] = 0
            state["sum"] = np.full(p.shape, group["initial_accumulator_value"], dtype=p.dtype)
        return state

    def _update(self, group: dict, params: List[Tensor]) -> None:
        lr, lr_decay = float(group["lr"]), float(group["lr_decay"])
        for p in params:
            state = self._init_state(p, group)
            state["step"] = step = int(state["step"]) + 1
            state_sum = state_array(state, "sum", p.numpy(), "Adagrad")
            fused_update("Adagrad", _optim.adagrad_update, p, (state_sum,), lr / (1 + (step - 1) * lr_decay),
                         float(group["weight_decay"]), float(group["eps"]), bool(group["maximize"]))
