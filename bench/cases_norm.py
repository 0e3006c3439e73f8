"""Normalization benchmark cases: batch (training, batch statistics + running update), layer,
instance and group norm on (64, 64, 56, 56) float32, forward (no grad) and forward+backward
(input, weight and bias need grad)."""
from __future__ import annotations

from typing import Callable, List, Optional, Tuple

import numpy as np

from _harness import Case

SHAPE = (64, 64, 56, 56)
GROUPS = 32

# name -> (fastconv call, torch call), each f(F, x, weight, bias, running_mean, running_var)
OPS = {
    "batch_norm": (
        lambda F, x, w, b, rm, rv: F.batch_norm(x, rm, rv, w, b, training=True),
        lambda F, x, w, b, rm, rv: F.batch_norm(x, rm, rv, w, b, training=True),
    ),
    "layer_norm": (
        lambda F, x, w, b, rm, rv: F.layer_norm(x, SHAPE[1:], w, b),
        lambda F, x, w, b, rm, rv: F.layer_norm(x, SHAPE[1:], w, b),
    ),
    "instance_norm": (
        lambda F, x, w, b, rm, rv: F.instance_norm(x, weight=w, bias=b),
        lambda F, x, w, b, rm, rv: F.instance_norm(x, weight=w, bias=b),
    ),
    "group_norm": (
        lambda F, x, w, b, rm, rv: F.group_norm(x, GROUPS, w, b),
        lambda F, x, w, b, rm, rv: F.group_norm(x, GROUPS, w, b),
    ),
}


def _arrays(name: str, rng) -> Tuple[np.ndarray, ...]:
    """Input, affine parameters (per channel, or shaped like normalized_shape), running stats, grad."""
    x = rng.standard_normal(SHAPE, dtype=np.float32)
    affine_shape = SHAPE[1:] if name == "layer_norm" else SHAPE[1:2]
    w = rng.standard_normal(affine_shape, dtype=np.float32)
    b = rng.standard_normal(affine_shape, dtype=np.float32)
    rm = np.zeros(SHAPE[1], dtype=np.float32)
    rv = np.ones(SHAPE[1], dtype=np.float32)
    grad = rng.standard_normal(SHAPE, dtype=np.float32)
    return x, w, b, rm, rv, grad


def _fastconv_pair(name: str, arrays) -> Tuple[Callable, Callable]:
    import fastconv as fc
    import fastconv.nn.functional as F

    x_np, w_np, b_np, rm_np, rv_np, grad = arrays
    x, w, b = (fc.tensor(a, requires_grad=True) for a in (x_np, w_np, b_np))
    rm, rv = fc.tensor(rm_np.copy()), fc.tensor(rv_np.copy())
    call = OPS[name][0]

    def forward():
        with fc.no_grad():
            return call(F, x, w, b, rm, rv)

    def forward_backward():
        x.grad = w.grad = b.grad = None
        call(F, x, w, b, rm, rv).backward(grad)

    return forward, forward_backward


def _torch_pair(torch, name: str, arrays) -> Tuple[Callable, Callable]:
    x_np, w_np, b_np, rm_np, rv_np, grad_np = arrays
    x, w, b = (torch.tensor(a, requires_grad=True) for a in (x_np, w_np, b_np))
    rm, rv = torch.tensor(rm_np), torch.tensor(rv_np)
    grad = torch.tensor(grad_np)
    call = OPS[name][1]
    F = torch.nn.functional

    def forward():
        with torch.no_grad():
            return call(F, x, w, b, rm, rv)

    def forward_backward():
        x.grad = w.grad = b.grad = None
        call(F, x, w, b, rm, rv).backward(grad)

    return forward, forward_backward


def cases(torch, repeats: int) -> List[Case]:
    """Two cases per op: forward and forward+backward on (64, 64, 56, 56) float32."""
    rng = np.random.default_rng(0)
    out: List[Case] = []
    label = "x".join(str(d) for d in SHAPE)
    for name in OPS:
        arrays = _arrays(name, rng)
        fc_fwd, fc_fb = _fastconv_pair(name, arrays)
        th: Tuple[Optional[Callable], Optional[Callable]] = (
            _torch_pair(torch, name, arrays) if torch is not None else (None, None))
        note = f"G={GROUPS}" if name == "group_norm" else ""
        out.append(Case(f"{name} {label} fwd", fc_fwd, th[0], note=note))
        out.append(Case(f"{name} {label} fwd+bwd", fc_fb, th[1], note=note))
    return out
