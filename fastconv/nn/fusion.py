"""Fusion of normalization, residual add and activation (see docs/design.md, "Fusion").

Placeholder during development: module by module.
"""
from __future__ import annotations


def norm_activation(norm, activation, input, residual=None):
    """``activation(norm(input) [+ residual])``."""
    out = norm(input)
    if residual is not None:
        out = out + residual
    return activation(out)


def add_activation(activation, a, b):
    """``activation(a + b)``."""
    return activation(a + b)
