"""Pooling benchmark cases: max-pool 2/2 and 3/2 and avg-pool 2/2 on (64, 64, 56, 56) float32,
forward (no grad) and forward+backward (input needs grad, a fixed upstream gradient)."""
from __future__ import annotations

from typing import Callable, List, Optional, Tuple

import numpy as np

from _harness import Case

SHAPE = (64, 64, 56, 56)

# name -> (function name in both F namespaces, kernel_size, stride)
OPS = {
    "max_pool2d 2/2": ("max_pool2d", 2, 2),
    "max_pool2d 3/2": ("max_pool2d", 3, 2),
    "avg_pool2d 2/2": ("avg_pool2d", 2, 2),
}


def _pooled(size: int, kernel: int, stride: int) -> int:
    return (size - kernel) // stride + 1


def _arrays(kernel: int, stride: int, rng) -> Tuple[np.ndarray, np.ndarray]:
    """Input and the upstream gradient for the pooled output."""
    x = rng.standard_normal(SHAPE, dtype=np.float32)
    out_hw = _pooled(SHAPE[2], kernel, stride), _pooled(SHAPE[3], kernel, stride)
    grad = rng.standard_normal(SHAPE[:2] + out_hw, dtype=np.float32)
    return x, grad


def _fastconv_pair(fn_name: str, kernel: int, stride: int, arrays) -> Tuple[Callable, Callable]:
    import fastconv as fc
    import fastconv.nn.functional as F

    x_np, grad = arrays
    x = fc.tensor(x_np, requires_grad=True)
    fn = getattr(F, fn_name)

    def forward():
        with fc.no_grad():
            return fn(x, kernel, stride)

    def forward_backward():
        x.grad = None
        fn(x, kernel, stride).backward(grad)

    return forward, forward_backward


def _torch_pair(torch, fn_name: str, kernel: int, stride: int, arrays) -> Tuple[Callable, Callable]:
    x_np, grad_np = arrays
    x = torch.tensor(x_np, requires_grad=True)
    grad = torch.tensor(grad_np)
    fn = getattr(torch.nn.functional, fn_name)

    def forward():
        with torch.no_grad():
            return fn(x, kernel, stride)

    def forward_backward():
        x.grad = None
        fn(x, kernel, stride).backward(grad)

    return forward, forward_backward


def cases(torch, repeats: int) -> List[Case]:
    """Two cases per pooling op: forward and forward+backward; torch counterparts when torch is given."""
    rng = np.random.default_rng(0)
    out: List[Case] = []
    label = "x".join(str(d) for d in SHAPE)
    for name, (fn_name, kernel, stride) in OPS.items():
        arrays = _arrays(kernel, stride, rng)
        fc_fwd, fc_fb = _fastconv_pair(fn_name, kernel, stride, arrays)
        th: Tuple[Optional[Callable], Optional[Callable]] = (
            _torch_pair(torch, fn_name, kernel, stride, arrays) if torch is not None else (None, None))
        out.append(Case(f"{name} {label} fwd", fc_fwd, th[0]))
        out.append(Case(f"{name} {label} fwd+bwd", fc_fb, th[1]))
    return out
