"""Convolution benchmark cases: forward (no grad) and forward+backward of the issue's six configurations."""
from __future__ import annotations

from typing import List

import numpy as np

from _harness import Case

# (N, C, H -> K, F, S, P): batch, input channels, image size, filters, kernel, stride, padding
CONFIGS = [
    (64, 1, 28, 32, 3, 1, 1),
    (64, 32, 28, 64, 3, 1, 1),
    (32, 64, 56, 64, 3, 1, 1),
    (8, 3, 224, 64, 11, 4, 2),
    (32, 128, 14, 256, 3, 1, 1),
    (1, 3, 32, 16, 3, 1, 1),
]


def _flops(n, c, h, k, f, s, p) -> float:
    out = (h + 2 * p - f) // s + 1
    return 2.0 * n * k * c * f * f * out * out


def _fastconv_pair(n, c, h, k, f, s, p, rng):
    import fastconv as fc
    import fastconv.nn.functional as F

    x = fc.tensor(rng.standard_normal((n, c, h, h), dtype=np.float32), requires_grad=True)
    w = fc.tensor(rng.standard_normal((k, c, f, f), dtype=np.float32) * 0.1, requires_grad=True)
    b = fc.tensor(rng.standard_normal(k, dtype=np.float32), requires_grad=True)
    out = (h + 2 * p - f) // s + 1
    grad = rng.standard_normal((n, k, out, out), dtype=np.float32)

    def forward():
        with fc.no_grad():
            return F.conv2d(x, w, b, stride=s, padding=p)

    def forward_backward():
        x.grad = w.grad = b.grad = None
        F.conv2d(x, w, b, stride=s, padding=p).backward(grad)

    return forward, forward_backward


def _torch_pair(torch, n, c, h, k, f, s, p, rng):
    x = torch.tensor(rng.standard_normal((n, c, h, h), dtype=np.float32), requires_grad=True)
    w = torch.tensor(rng.standard_normal((k, c, f, f), dtype=np.float32) * 0.1, requires_grad=True)
    b = torch.tensor(rng.standard_normal(k, dtype=np.float32), requires_grad=True)
    out = (h + 2 * p - f) // s + 1
    grad = torch.tensor(rng.standard_normal((n, k, out, out), dtype=np.float32))
    conv = torch.nn.functional.conv2d

    def forward():
        with torch.no_grad():
            return conv(x, w, b, stride=s, padding=p)

    def forward_backward():
        x.grad = w.grad = b.grad = None
        conv(x, w, b, stride=s, padding=p).backward(grad)

    return forward, forward_backward


def cases(torch, repeats: int) -> List[Case]:
    """Two cases per configuration: forward and forward+backward (input, weight, bias need grad)."""
    rng = np.random.default_rng(0)
    out: List[Case] = []
    for cfg in CONFIGS:
        n, c, h, k, f, s, p = cfg
        label = f"conv {n}x{c}x{h}->{k} f{f} s{s} p{p}"
        fc_fwd, fc_fb = _fastconv_pair(*cfg, rng)
        th_fwd, th_fb = _torch_pair(torch, *cfg, rng) if torch is not None else (None, None)
        flops = _flops(*cfg)
        out.append(Case(f"{label} fwd", fc_fwd, th_fwd, flops))
        out.append(Case(f"{label} fwd+bwd", fc_fb, th_fb, 3 * flops))
    return out
