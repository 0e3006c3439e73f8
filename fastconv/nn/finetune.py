"""Freezing parameters for fine-tuning / transfer learning.

A frozen parameter has ``requires_grad=False``: an op whose inputs all need no gradient is not
recorded on the tape, so the frozen part of a network keeps no activations for backward and
does no backward work (its ``.grad`` stays None). Freezing a whole module is
``module.requires_grad_(False)``; ``freeze(model, "0.", "3.")`` selects parameters by name prefix.
"""
from __future__ import annotations

from typing import List

from .module import Module


def _set_requires_grad(model: Module, prefixes, requires_grad: bool, op: str) -> List[str]:
    if not isinstance(model, Module):
        raise TypeError(f"{op}: expected a Module, got {type(model).__name__}")
    for p in prefixes:
        if not isinstance(p, str):
            raise TypeError(f"{op}: expected name prefixes as str, got {p!r}")
    names = []
    for name, param in model.named_parameters():
        if not prefixes or any(name.startswith(p) for p in prefixes):
            param.requires_grad_(requires_grad)
            names.append(name)
    if prefixes and not names:
        available = ", ".join(n for n, _ in model.named_parameters()) or "none"
        raise ValueError(f"{op}: no parameter name starts with {', '.join(map(repr, prefixes))} "
                         f"(parameters: {available})")
    return names


def freeze(model: Module, *prefixes: str) -> List[str]:
    """Set ``requires_grad=False`` on the parameters whose dotted name starts with one of ``prefixes``
    (all parameters when none is given); returns the frozen names. Use a trailing dot ('1.') so
    that '1' does not also match '10'."""
    return _set_requires_grad(model, prefixes, False, "freeze")


def unfreeze(model: Module, *prefixes: str) -> List[str]:
    """The inverse of ``freeze``: ``requires_grad=True`` for the selected parameters; returns their names."""
    return _set_requires_grad(model, prefixes, True, "unfreeze")
