"""``parameters_to_vector`` / ``vector_to_parameters``: all parameters as one flat vector and back."""
from __future__ import annotations

from typing import Iterable

import numpy as np

from ...tensor import Tensor, cat


def parameters_to_vector(parameters: Iterable[Tensor]) -> Tensor:
    """One 1-D Tensor of every parameter flattened in order (differentiable, like PyTorch's)."""
    items = list(parameters)
    for p in items:
        if not isinstance(p, Tensor):
            raise TypeError(f"parameters_to_vector: expected Tensors, got {type(p).__name__}")
    if not items:
        raise ValueError("parameters_to_vector: expected at least one parameter")
    return cat([p.reshape(-1) for p in items])


def vector_to_parameters(vec: Tensor, parameters: Iterable[Tensor]) -> None:
    """Copy consecutive slices of the 1-D ``vec`` into the parameters, in order, in place.

    PyTorch makes each parameter a view of ``vec``; here the values are copied (the parameters keep
    their own arrays, so optimizers holding them keep working).
    """
    if not isinstance(vec, Tensor):
        raise TypeError(f"vector_to_parameters: expected vec as a Tensor, got {type(vec).__name__}")
    values = vec.numpy()
    if values.ndim != 1:
        raise ValueError(f"vector_to_parameters: expected a 1-D vec, got shape {tuple(values.shape)}")
    items = list(parameters)
    needed = sum(int(np.prod(p.shape, dtype=np.int64)) for p in items)
    if needed != values.size:
        raise ValueError(f"vector_to_parameters: vec has {values.size} elements, the parameters need {needed}")
    start = 0
    for p in items:
        if not isinstance(p, Tensor):
            raise TypeError(f"vector_to_parameters: expected Tensors, got {type(p).__name__}")
        n = int(np.prod(p.shape, dtype=np.int64))
        target = p.numpy()
        target[...] = values[start:start + n].reshape(target.shape).astype(target.dtype, copy=False)
        start += n
