"""Fusion without rewriting the model (see docs/design.md, "Fusion").

``Sequential`` runs a batch norm directly followed by a ReLU (or another activation class that
declares ``_fused_max_value``, e.g. ReLU6) as one ``F.batch_norm_relu`` call, and model blocks
(the model zoo's ResNet blocks) call ``norm_activation`` / ``add_activation`` for their
norm → [residual add →] activation tails. A pair is fused only when both modules are exactly the
library's classes (their ``forward`` not overridden) and carry no hooks, so a hook always sees
the module's own output; observer hooks (marked ``_fastconv_observer``, the memory profiler's)
do not prevent fusion and are called around the fused call as if each module had run.
Anything else runs module by module, with the same results.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

from .. import functional as F
from .normalization import _BatchNorm


def _hooks(module):
    return list(module._forward_pre_hooks.values()) + list(module._forward_hooks.values())


def _observed_only(module) -> bool:
    """No hooks but observers (hooks flagged ``_fastconv_observer``)."""
    if not module._forward_pre_hooks and not module._forward_hooks:
        return True
    return all(getattr(h, "_fastconv_observer", False) for h in _hooks(module))


def activation_max_value(module) -> Optional[float]:
    """The clamp of a fusable activation module (inf for ReLU, 6 for ReLU6), else None."""
    value = type(module).__dict__.get("_fused_max_value")
    return value if value is not None and _observed_only(module) else None


def _fusable_norm(module) -> bool:
    return (isinstance(module, _BatchNorm) and type(module).forward is _BatchNorm.forward
            and _observed_only(module))


def _announce(module, args, output):
    """Call a fused module's observer hooks as its own call would: pre-hooks, then post-hooks."""
    for hook in list(module._forward_pre_hooks.values()):
        hook(module, args)
    for hook in list(module._forward_hooks.values()):
        hook(module, args, output)


def _fused_norm_activation(norm, activation, max_value: float, input, residual):
    observed = bool(norm._forward_pre_hooks or activation._forward_pre_hooks)
    if observed:
        for hook in list(norm._forward_pre_hooks.values()):
            hook(norm, (input,))
    out = F.batch_norm_relu(input, *norm._functional_args(input), residual=residual,
                            max_value=None if math.isinf(max_value) else max_value)
    if observed or norm._forward_hooks or activation._forward_hooks:
        for hook in list(norm._forward_hooks.values()):
            hook(norm, (input,), out)
        _announce(activation, (out,), out)
    return out


def norm_activation(norm, activation, input, residual=None):
    """``activation(norm(input) [+ residual])``: one fused call when ``norm`` is a batch norm and
    ``activation`` a ReLU/ReLU6 (no hooks, same shapes), else module by module."""
    max_value = activation_max_value(activation)
    if (max_value is not None and _fusable_norm(norm)
            and (residual is None or (residual.shape == input.shape and residual.dtype == input.dtype))):
        return _fused_norm_activation(norm, activation, max_value, input, residual)
    out = norm(input)
    if residual is not None:
        return add_activation(activation, out, residual)
    return activation(out)


def add_activation(activation, a, b):
    """``activation(a + b)``: one fused call for a ReLU/ReLU6 without hooks and same-shape
    operands, else the add and the module."""
    max_value = activation_max_value(activation)
    if max_value is not None and a.shape == b.shape and a.dtype == b.dtype:
        out = F.add_relu(a, b, max_value=None if math.isinf(max_value) else max_value)
        if activation._forward_pre_hooks or activation._forward_hooks:
            _announce(activation, (out,), out)
        return out
    return activation(a + b)


def run_sequence(modules: Sequence, input):
    """Apply ``modules`` in order, fusing each batch norm directly followed by a fusable activation."""
    i, n = 0, len(modules)
    while i < n:
        module = modules[i]
        if i + 1 < n and isinstance(module, _BatchNorm):
            following = modules[i + 1]
            max_value = activation_max_value(following)
            if max_value is not None and _fusable_norm(module):
                input = _fused_norm_activation(module, following, max_value, input, None)
                i += 2
                continue
        input = module(input)
        i += 1
    return input
