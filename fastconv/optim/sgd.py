"""Stochastic gradient descent with momentum, dampening, Nesterov and L2 weight decay (PyTorch's rule)."""
from __future__ import annotations

from typing import Iterable, List

import numpy as np

from .._kernels import optim as _optim
from ..tensor import Tensor
from .optimizer import Optimizer, check_option, compat_options, fused_update, placeholder, state_array


class SGD(Optimizer):
    """SGD: g ← ±grad + wd·p; b ← g (first step) or μ·b + (1−τ)·g; p ← p − lr·(g + μ·b if nesterov else b).

    Matches ``torch.optim.SGD`` exactly, including the momentum buffer starting at the first
    gradient (no dampening on the first step).
    """

    def __init__(self, params: Iterable, lr: float = 1e-3, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False, *, maximize: bool = False, foreach=None,
                 differentiable: bool = False, fused=None) -> None:
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                        nesterov=nesterov, maximize=maximize,
                        **compat_options("SGD", foreach, differentiable, fused))
        self._validate_group(defaults)
        super().__init__(params, defaults)

    def _validate_group(self, group: dict) -> None:
        check_option("SGD", "lr", group["lr"])
        check_option("SGD", "momentum", group["momentum"])
        check_option("SGD", "dampening", group["dampening"])
        check_option("SGD", "weight_decay", group["weight_decay"])
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError(
                f"SGD: nesterov momentum requires momentum > 0 and zero dampening, got "
                f"momentum={group['momentum']!r}, dampening={group['dampening']!r}")

    def _update(self, group: dict, params: List[Tensor]) -> None:
        lr = float(group["lr"])
        momentum = float(group["momentum"])
        dampening = float(group["dampening"])
        weight_decay = float(group["weight_decay"])
        nesterov, maximize = bool(group["nesterov"]), bool(group["maximize"])
        for p in params:
            first = False
            if momentum != 0:
                state = self.state[p]
                if state.get("momentum_buffer") is None:
                    # the kernel sets it to the first gradient
                    state["momentum_buffer"] = buf = np.empty(p.shape, dtype=p.dtype)
                    first = True
                else:
                    buf = state_array(state, "momentum_buffer", p.numpy(), "SGD")
            else:
                buf = placeholder(p.dtype)
            fused_update("SGD", _optim.sgd_update, p, (buf,), lr, momentum, dampening, weight_decay,
                         nesterov, maximize, first)
