"""Record a model's forward as the Function calls it makes (ONNX export, the compiled predictor).

Every differentiable operation in fastconv runs through ``Function.apply``, which reports each
call (class, arguments, keyword options, outputs) to the observers of
``fastconv.autograd.function.add_observer`` — the hook the memory profiler also uses, and which
costs nothing when no observer is registered. A trace therefore sees forwards written in plain
Python (residual adds, concatenations, reshapes) exactly as they ran, with every option
(stride, padding, eps, ...) the kernels received. Forward pre/post hooks on every sub-module
add the dotted name of the module each call happened in (``Call.scope``), which names ONNX nodes
and constants and the predictor's steps.

The trace runs with gradients enabled and float inputs requiring grad: Tensor methods that skip
the tape for tensors needing no gradient (``reshape``, ``astype``, ``clone``) then run as
Functions too. The hooks are ordinary ones, so fusions that skip hooked modules (the model
zoo's batch norm + ReLU) record their unfused operations.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Tuple

from .autograd.function import add_observer, remove_observer
from .autograd.grad_mode import enable_grad
from .tensor import Tensor


def value_key(tensor: Tensor):
    """What identifies a traced value: the tape node and output that produced it — a Tensor updated
    in place (``x += y``, ``relu(x, inplace=True)``) takes over the node of the op's result, so
    its later uses name that result — or the Tensor itself for inputs and values off the tape."""
    node = tensor.grad_fn
    return ("node", id(node), tensor._output_index) if node is not None else ("tensor", id(tensor))


@dataclass
class Call:
    """One Function call: its class, positional arguments as passed (Tensors, arrays, numbers,
    None), keyword options, output Tensors, the module it ran in, and what identified its Tensor
    arguments and outputs at the time of the call."""

    function: type
    args: Tuple[Any, ...]
    kwargs: Dict[str, Any]
    outputs: Tuple[Tensor, ...]
    scope: str
    module: Any
    ctx: Any = None  # the call's tape node: its outputs' grad_fn
    # per positional argument, (tape node, output index) of the Tensor when the call ran, else None:
    # in-place ops later rebind a Tensor object to another node (x += y; relu(x, inplace=True))
    arg_nodes: Tuple[Any, ...] = ()
    arg_keys: Tuple[Any, ...] = ()     # value_key of each Tensor argument (None for others)
    output_keys: Tuple[Any, ...] = ()  # value_key of each output


@dataclass
class Trace:
    inputs: Tuple[Tensor, ...]
    calls: List[Call]
    output: Any  # the forward's return value (a Tensor or a tuple/list of Tensors)
    keep: List[Any] = field(default_factory=list)  # keeps every traced object alive (ids stay unique)
    output_keys: Any = None  # value keys of the output, in its structure
    input_keys: Tuple[Any, ...] = ()


def record(model, inputs: Tuple[Tensor, ...]) -> Trace:
    """Run ``model(*inputs)``, recording every Function call with its module scope."""
    inputs = tuple(Tensor._wrap(t.numpy()).requires_grad_(True) if t.numpy().dtype.kind == "f"
                   else Tensor._wrap(t.numpy()) for t in inputs)
    calls: List[Call] = []
    stack: List[Tuple[str, Any]] = [("", model)]
    handles = []
    for name, module in model.named_modules():
        handles.append(module.register_forward_pre_hook(_enter(stack, name)))
        handles.append(module.register_forward_hook(_leave(stack)))

    def observe(function, ctx, args, kwargs, results):
        outputs = results if isinstance(results, tuple) else (results,)
        scope, module = stack[-1]
        nodes = tuple((a.grad_fn, a._output_index) if isinstance(a, Tensor) and a.grad_fn is not None else None
                      for a in args)
        calls.append(Call(function, tuple(args), dict(kwargs), outputs, scope, module, ctx, nodes,
                          tuple(value_key(a) if isinstance(a, Tensor) else None for a in args),
                          tuple(value_key(o) for o in outputs)))

    add_observer(observe)
    try:
        with enable_grad():
            output = model(*inputs)
    finally:
        remove_observer(observe)
        for handle in handles:
            handle.remove()
    return Trace(tuple(inputs), calls, output, keep=[calls, output, inputs],
                 output_keys=_keys_of(output), input_keys=tuple(value_key(t) for t in inputs))


def _keys_of(output):
    if isinstance(output, Tensor):
        return value_key(output)
    if isinstance(output, (tuple, list)):
        return [_keys_of(o) for o in output]
    return None


def _enter(stack, name):
    def hook(module, args):
        stack.append((name, module))
    return hook


def _leave(stack):
    def hook(module, args, output):
        if len(stack) > 1:
            stack.pop()
    return hook
