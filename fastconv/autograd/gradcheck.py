"""Public gradcheck: analytical vector-Jacobian products against central finite differences.

The outputs are contracted with a fixed random cotangent ``v`` (the quantity backward
computes), so one backward pass gives the analytical gradient of ``L = Σ v·fn(inputs)`` and
two forward passes per input element give its numerical estimate. All arithmetic is float64.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from .function import _Tensor
from .grad_mode import enable_grad


class GradcheckError(AssertionError):
    """Raised when analytical and numerical gradients disagree."""


def _as_outputs(out):
    return out if isinstance(out, (tuple, list)) else (out,)


def _contract(outputs, cotangents):
    """Σ_i Σ v_i * out_i as a float64 scalar (arrays) or a Tensor (when differentiable)."""
    total = None
    for o, v in zip(outputs, cotangents):
        term = (o * v).sum()
        total = term if total is None else total + term
    return total


def gradcheck(
    fn: Callable,
    inputs: Sequence,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    raise_exception: bool = True,
    seed: int = 0,
) -> bool:
    """Check ``fn``'s backward against finite differences for every input that requires grad.

    ``inputs`` are Tensors (float inputs are checked in float64 copies) or other objects passed
    through unchanged. On failure names the input, the worst element and both values.
    """
    Tensor = _Tensor()
    if isinstance(inputs, Tensor) or not isinstance(inputs, (tuple, list)):
        inputs = (inputs,)
    prepared = []
    for x in inputs:
        if isinstance(x, Tensor) and np.issubdtype(x.dtype, np.floating):
            prepared.append(Tensor(x.numpy().astype(np.float64), requires_grad=x.requires_grad))
        else:
            prepared.append(x)
    checked = [i for i, x in enumerate(prepared) if isinstance(x, Tensor) and x.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input requires grad; pass Tensors with requires_grad=True")

    with enable_grad():
        outputs = [o for o in _as_outputs(fn(*prepared)) if isinstance(o, Tensor)
                   and np.issubdtype(o.dtype, np.floating)]
        if not outputs:
            raise ValueError("gradcheck: fn returned no floating-point Tensor output")
        rng = np.random.default_rng(seed)
        cotangents = [rng.standard_normal(o.shape) for o in outputs]
        loss = _contract(outputs, cotangents)
        if loss.requires_grad:
            loss.backward()

    def value_at_perturbation() -> float:
        outs = [o for o in _as_outputs(fn(*prepared)) if isinstance(o, Tensor)
                and np.issubdtype(o.dtype, np.floating)]
        return float(sum(np.sum(o.numpy().astype(np.float64) * v) for o, v in zip(outs, cotangents)))

    from .grad_mode import no_grad

    for i in checked:
        x = prepared[i]
        analytical = np.zeros(x.shape) if x.grad is None else x.grad.numpy().astype(np.float64)
        numerical = np.zeros(x.shape)
        flat = x.numpy().reshape(-1)
        num_flat = numerical.reshape(-1)
        with no_grad():
            for j in range(flat.size):
                orig = flat[j]
                flat[j] = orig + eps
                plus = value_at_perturbation()
                flat[j] = orig - eps
                minus = value_at_perturbation()
                flat[j] = orig
                num_flat[j] = (plus - minus) / (2 * eps)
        err = np.abs(analytical - numerical)
        bound = atol + rtol * np.abs(numerical)
        if np.any(err > bound) or not np.all(np.isfinite(analytical)):
            worst = np.unravel_index(int(np.argmax(err - bound)), x.shape) if x.ndim else ()
            msg = (
                f"gradcheck: gradient mismatch for input {i} (shape {tuple(x.shape)}) at index "
                f"{tuple(int(k) for k in worst)}: analytical {analytical[worst]!r}, numerical "
                f"{numerical[worst]!r} (atol={atol}, rtol={rtol}, max abs error {err.max():.3g})"
            )
            if raise_exception:
                raise GradcheckError(msg)
            return False
    return True
