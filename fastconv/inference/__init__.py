"""Compiled inference: ``compile(model, example_input)`` gives a ``Predictor`` that runs the
model's forward as a static program, with no per-operation Python work.

    pred = fc.inference.compile(model, x)      # traces model(x) once (eval mode)
    y = pred(x)                               # any batch size; numpy in, numpy out (Tensor in, Tensor out)
    pred.save("model.fcp"); pred = fc.inference.load("model.fcp")   # no model class needed

Compiling traces the forward on the tape, folds eval batch norms into the preceding
convolution or linear layer, fuses bias, residual adds and activations into their producers,
pre-transforms constant weights for the convolution path the planner chose per layer (frozen
from then on) and plans one arena for every intermediate buffer. The program then runs in
Cython with the GIL released (docs/design.md, "Compiled predictor").
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..tensor import Tensor
from .graph import GraphError
from .lower import build_graph, supported_functions
from .optimize import optimize
from .predictor import Predictor, load

__all__ = ["compile", "load", "Predictor", "GraphError", "supported_functions"]


def _example_arrays(example_input) -> Sequence[np.ndarray]:
    items = example_input if isinstance(example_input, (tuple, list)) else (example_input,)
    if not items:
        raise ValueError("inference.compile: expected at least one example input")
    arrays = []
    for i, item in enumerate(items):
        a = item.numpy() if isinstance(item, Tensor) else item
        if not isinstance(a, np.ndarray):
            raise TypeError(f"inference.compile: expected example_input as a Tensor, an ndarray or a tuple of them, "
                            f"got {type(item).__name__}")
        if a.dtype != np.float32:
            raise TypeError(f"inference.compile: the compiled predictor runs float32; example input {i} is {a.dtype}")
        if a.ndim < 1 or a.shape[0] < 1:
            raise ValueError(f"inference.compile: expected batched example inputs (batch axis first), got shape "
                             f"{a.shape}")
        arrays.append(np.ascontiguousarray(a))
    return arrays


def compile(model, example_input) -> Predictor:  # noqa: A001 - the public name (torch.compile-like)
    """Compile ``model``'s forward on inputs shaped like ``example_input`` (a float32 Tensor or
    ndarray, or a tuple of them; the batch axis first, any batch size works afterwards).

    The model runs twice in eval mode while its Function calls are recorded (its modes are
    restored afterwards); any operation without a compiled form is a GraphError naming it and
    the module it ran in. Later changes to the model's parameters do not reach the predictor:
    compile again."""
    arrays = _example_arrays(example_input)
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        graph = build_graph(model, arrays)
    finally:
        for module, mode in modes:
            object.__setattr__(module, "training", mode)
    counts = optimize(graph)
    predictor = Predictor(graph, {"model": type(model).__name__, **counts})
    predictor.runner(arrays[0].shape[0])  # plan the example's batch now: errors surface here
    return predictor
