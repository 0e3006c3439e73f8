"""Measure one real training step (or one inference) with tracemalloc, which sees numpy's arrays.

The peak reported is the arrays' peak during the step plus what existed before it and stays
alive (parameters, buffers, optimizer state, the input and target), so it compares directly
with ``memory_summary``'s peaks. Tape bytes are the sum of ``ctx.saved_nbytes`` at the end of
forward: of the model's own calls, and of the whole graph including the loss.
"""
from __future__ import annotations

import gc
import tracemalloc
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from ..autograd.function import add_observer, remove_observer
from ..autograd.grad_mode import enable_grad, no_grad
from ..nn.functional.conv.planner import heuristic_only
from ..nn.module import Module
from ..tensor import Tensor
from .units import format_bytes


@dataclass
class StepMeasurement:
    """Bytes measured over one step; ``peak_bytes`` includes ``baseline_bytes``."""

    mode: str
    peak_bytes: int
    baseline_bytes: int
    forward_peak_bytes: int
    backward_peak_bytes: int
    step_peak_bytes: int
    model_tape_bytes: int
    tape_bytes: int

    def to_dict(self) -> dict:
        return dict(self.__dict__)

    def __str__(self) -> str:
        lines = [f"Measured {'training step' if self.mode == 'train' else 'inference'} (tracemalloc):",
                 f"  peak held by arrays:     {format_bytes(self.peak_bytes)}"
                 f"  (of which {format_bytes(self.baseline_bytes)} before the step: parameters, buffers, "
                 "optimizer state, input, target)",
                 f"  peak during forward:     {format_bytes(self.forward_peak_bytes)}"]
        if self.mode == "train":
            lines += [f"  peak during backward:    {format_bytes(self.backward_peak_bytes)}",
                      f"  peak during step():      {format_bytes(self.step_peak_bytes)}",
                      f"  tape at end of forward:  {format_bytes(self.tape_bytes)} "
                      f"(model layers {format_bytes(self.model_tape_bytes)}, rest: loss)"]
        return "\n".join(lines)


def _distinct_nbytes(arrays) -> int:
    seen, total = set(), 0
    for a in arrays:
        while isinstance(a.base, np.ndarray):
            a = a.base
        if id(a) not in seen:
            seen.add(id(a))
            total += a.nbytes
    return total


def _existing_arrays(model: Module, optimizer, x: Tensor, target) -> list:
    """Arrays alive before the step that the step needs (for inference: no grads, no optimizer)."""
    arrays = [t.numpy() for t in list(model.parameters()) + list(model.buffers())]
    arrays.append(x.numpy())
    if isinstance(target, Tensor):
        arrays.append(target.numpy())
    elif isinstance(target, np.ndarray):
        arrays.append(target)
    if optimizer is not None:
        for _, state in optimizer.state.items():
            arrays += [v for v in state.values() if isinstance(v, np.ndarray)]
    return arrays


def graph_saved_bytes(root: Tensor) -> int:
    """Sum of ``ctx.saved_nbytes`` over every node reachable from ``root.grad_fn``."""
    total, seen = 0, set()
    stack = [root.grad_fn] if root.grad_fn is not None else []
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        total += node.saved_nbytes
        stack += [e[0] for e in node.next_edges if type(e) is tuple]
    return total


class _Phases:
    """tracemalloc peaks per phase, relative to the traced memory at the start."""

    def __init__(self):
        self.started = not tracemalloc.is_tracing()
        if self.started:
            tracemalloc.start()
        self.start = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()

    def mark(self) -> int:
        peak = tracemalloc.get_traced_memory()[1] - self.start
        tracemalloc.reset_peak()
        return max(peak, 0)

    def stop(self) -> None:
        if self.started:
            tracemalloc.stop()


def measure_step(model: Module, input, target, loss_fn: Optional[Callable], optimizer=None,
                 mode: str = "train") -> StepMeasurement:
    """Run one training step (zero_grad, forward, loss, backward, optimizer.step) or, for
    mode='eval', one forward under no_grad, and report the memory its arrays held."""
    op = "measure_step"
    if not isinstance(model, Module):
        raise TypeError(f"{op}: expected a fastconv.nn.Module, got {type(model).__name__}")
    if mode not in ("train", "eval"):
        raise ValueError(f"{op}: expected mode 'train' or 'eval', got {mode!r}")
    if mode == "train" and not callable(loss_fn):
        raise TypeError(f"{op}: a training step needs a callable loss_fn(output, target), got {loss_fn!r}")
    x = input if isinstance(input, Tensor) else Tensor._wrap(np.asarray(input)) \
        if isinstance(input, np.ndarray) else None
    if x is None:
        raise TypeError(f"{op}: expected input as a Tensor or ndarray, got {type(input).__name__}")
    train = mode == "train"
    was_training = [(m, m.training) for m in model.modules()]
    model.train(train)
    if train:
        (optimizer or model).zero_grad(set_to_none=True)
    gc.collect()
    baseline = _distinct_nbytes(_existing_arrays(model, optimizer if train else None, x, target))
    model_tape = [0]

    def observe(cls, ctx, args, kwargs, outputs):
        model_tape[0] += ctx.saved_nbytes

    # no conv timing runs inside the measured step: only the paths the declarations predict
    with heuristic_only():
        phases = _Phases()
        try:
            add_observer(observe)
            try:
                with enable_grad() if train else no_grad():
                    out = model(x)
            finally:
                remove_observer(observe)
            loss = loss_fn(out, target) if loss_fn is not None else None
            forward_peak = phases.mark()
            backward_peak = step_peak = 0
            tape = 0
            if train:
                tape = graph_saved_bytes(loss)
                loss.backward()
                backward_peak = phases.mark()
                if optimizer is not None:
                    optimizer.step()
                step_peak = phases.mark()
            del out, loss
        finally:
            phases.stop()
            for m, flag in was_training:
                object.__setattr__(m, "training", flag)
    return StepMeasurement(mode=mode, peak_bytes=baseline + max(forward_peak, backward_peak, step_peak),
                           baseline_bytes=baseline, forward_peak_bytes=baseline + forward_peak,
                           backward_peak_bytes=baseline + backward_peak if train else 0,
                           step_peak_bytes=baseline + step_peak if train else 0,
                           model_tape_bytes=model_tape[0] if train else 0, tape_bytes=tape)
