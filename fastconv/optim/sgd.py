"""Stochastic gradient descent with momentum, dampening, Nesterov and L2 weight decay (PyTorch's rule)."""
from __future__ import annotations

from typing import Iterable, List

import numpy as np

from ..tensor import Tensor
from .optimizer import Optimizer, check_option


class SGD(Optimizer):
    """SGD: g ← ±grad + wd·p; b ← g (first step) or μ·b + (1−τ)·g; p ← p − lr·(g + μ·b if nesterov else b).

    Matches ``torch.optim.SGD`` exactly, including the momentum buffer starting at the first
    gradient (no dampening on the first step).
    """

    def __init__(self, params: Iterable, lr: float = 1e-3, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False, *, maximize: bool = False) -> None:
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                        nesterov=nesterov, maximize=maximize)
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
        for p in params:
            grad = p.grad.data
            if group["maximize"]:
                grad = -grad
            if weight_decay != 0:
                grad = grad + weight_decay * p.data
            if momentum != 0:
                state = self.state[p]
                buf = state.get("momentum_buffer")
                if buf is None:
                    buf = np.array(grad, dtype=p.dtype, copy=True)
                    state["momentum_buffer"] = buf
                else:
                    buf *= momentum
                    if dampening == 0:
                        buf += grad  # no temporary in the common case
                    else:
                        buf += (1 - dampening) * grad
                grad = grad + momentum * buf if group["nesterov"] else buf
            p.data -= lr * grad
