"""Adam (Kingma & Ba 2015) and AdamW (Loshchilov & Hutter 2019), PyTorch's exact rules."""
from __future__ import annotations

import math
from typing import Iterable, List, Tuple

import numpy as np

from .._kernels import optim as _optim
from ..tensor import Tensor
from .optimizer import Optimizer, check_option, compat_options, fused_update, placeholder, state_array


class Adam(Optimizer):
    """Adam with bias correction, optional AMSGrad and L2 (or, when decoupled, AdamW) weight decay.

    Per step t: g ← ±grad (+ wd·p unless decoupled; if decoupled p ← p·(1 − lr·wd));
    m ← m + (1−β1)(g − m); v ← β2·v + (1−β2)·g²; v̂ ← max(v̂, v) with amsgrad;
    p ← p − lr/(1−β1^t) · m / (√v(or v̂) / √(1−β2^t) + eps).
    """

    _name = "Adam"

    def __init__(self, params: Iterable, lr: float = 1e-3, betas: Tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, amsgrad: bool = False, *, foreach=None,
                 maximize: bool = False, capturable: bool = False, differentiable: bool = False, fused=None,
                 decoupled_weight_decay: bool = False) -> None:
        defaults = dict(lr=lr, betas=tuple(betas) if isinstance(betas, list) else betas, eps=eps,
                        weight_decay=weight_decay, amsgrad=amsgrad, maximize=maximize,
                        **compat_options(self._name, foreach, differentiable, fused, capturable),
                        decoupled_weight_decay=decoupled_weight_decay)
        self._validate_group(defaults)
        super().__init__(params, defaults)

    def _validate_group(self, group: dict) -> None:
        name = self._name
        check_option(name, "lr", group["lr"])
        check_option(name, "eps", group["eps"])
        check_option(name, "weight_decay", group["weight_decay"])
        betas = group["betas"]
        if isinstance(betas, list):
            betas = group["betas"] = tuple(betas)
        if not isinstance(betas, tuple) or len(betas) != 2:
            raise TypeError(f"{name}: expected betas as a pair of floats, got {betas!r}")
        check_option(name, "betas[0]", betas[0], 0.0, 1.0, open_max=True)
        check_option(name, "betas[1]", betas[1], 0.0, 1.0, open_max=True)

    def _update(self, group: dict, params: List[Tensor]) -> None:
        lr = float(group["lr"])
        beta1, beta2 = (float(b) for b in group["betas"])
        eps = float(group["eps"])
        weight_decay = float(group["weight_decay"])
        amsgrad, maximize = bool(group["amsgrad"]), bool(group["maximize"])
        decoupled = bool(group["decoupled_weight_decay"])
        name = self._name
        for p in params:
            state = self.state[p]
            if not state:
                state["step"] = 0
                state["exp_avg"] = np.zeros(p.shape, dtype=p.dtype)
                state["exp_avg_sq"] = np.zeros(p.shape, dtype=p.dtype)
            if amsgrad and "max_exp_avg_sq" not in state:
                state["max_exp_avg_sq"] = np.zeros(p.shape, dtype=p.dtype)
            state["step"] = step = int(state["step"]) + 1
            exp_avg = state_array(state, "exp_avg", p.numpy(), name)
            exp_avg_sq = state_array(state, "exp_avg_sq", p.numpy(), name)
            max_sq = state_array(state, "max_exp_avg_sq", p.numpy(), name) if amsgrad else placeholder(p.dtype)
            fused_update(name, _optim.adam_update, p, (exp_avg, exp_avg_sq, max_sq), lr, beta1, beta2, eps,
                         weight_decay, decoupled, amsgrad, maximize, lr / (1 - beta1 ** step),
                         math.sqrt(1 - beta2 ** step))


class AdamW(Adam):
    """Adam with decoupled weight decay: p ← p·(1 − lr·wd) before the Adam step (default wd 1e-2)."""

    _name = "AdamW"

    def __init__(self, params: Iterable, lr: float = 1e-3, betas: Tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, amsgrad: bool = False, *,
                 maximize: bool = False, foreach=None, capturable: bool = False, differentiable: bool = False,
                 fused=None) -> None:
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                         foreach=foreach, maximize=maximize, capturable=capturable, differentiable=differentiable,
                         fused=fused, decoupled_weight_decay=True)
