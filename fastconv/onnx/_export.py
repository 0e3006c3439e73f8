"""``export``: trace a model's forward and write it as an ONNX graph.

The model runs in eval mode under no_grad while every Function call is recorded (see
``_trace``); each call becomes ONNX nodes through its emitter (``_export_ops``). Parameters and
buffers become initializers under their state_dict names. With ``dynamic_batch`` the forward is
traced a second time at batch N + 1: the two traces must make the same calls, dimensions that
differ are the batch (reshapes get -1 there, graph inputs and outputs a symbolic 'batch'), a
constant that is the same along a batch-sized first axis is expanded to the runtime batch, and
any other constant that differs — a value computed from the input outside fastconv's operations
— is refused instead of being baked into the file.
"""
from __future__ import annotations

from typing import Any, List, Optional, Sequence, Tuple

import numpy as np

from .._atomic import atomic_write
from ..tensor import Tensor
from ._graph import Emit, ExportError, Graph, array_of
from ._export_ops import EMITTERS, onnx_dtype
from .._trace import Trace, record

MIN_OPSET = 13


def require_onnx():
    """The ``onnx`` package, or an ImportError naming the extra that installs it."""
    try:
        import onnx
    except ImportError:
        raise ImportError('fastconv.onnx needs the onnx package: pip install "fastconv[onnx]"') from None
    return onnx


def _inputs(example_input) -> Tuple[Tensor, ...]:
    items = example_input if isinstance(example_input, (tuple, list)) else (example_input,)
    out = []
    for item in items:
        if isinstance(item, Tensor):
            out.append(Tensor._wrap(item.numpy()))
        elif isinstance(item, np.ndarray):
            out.append(Tensor._wrap(item))
        else:
            raise TypeError(f"onnx.export: expected example_input as a Tensor, an ndarray or a tuple of them, "
                            f"got {type(item).__name__}")
    if not out:
        raise ValueError("onnx.export: expected at least one example input")
    return tuple(out)


def _grown(inputs: Tuple[Tensor, ...]) -> Tuple[Tensor, ...]:
    """The inputs with one more sample (the first one repeated), for the second trace."""
    out = []
    for t in inputs:
        a = t.numpy()
        if a.ndim == 0:
            raise ValueError("onnx.export: dynamic_batch=True needs batched inputs, got a 0-d example input")
        out.append(Tensor._wrap(np.concatenate([a, a[:1]], axis=0)))
    return tuple(out)


def _flat_outputs(output, where: str = "output") -> List[Tensor]:
    if isinstance(output, Tensor):
        return [output]
    if isinstance(output, (tuple, list)):
        return [t for item in output for t in _flat_outputs(item, where)]
    raise ExportError(f"onnx.export: the model returned {type(output).__name__} in its {where}; "
                      "expected a Tensor or a tuple/list of Tensors")


def _flat_keys(keys) -> list:
    return [k for item in keys for k in _flat_keys(item)] if isinstance(keys, list) else [keys]


def _param_names(model) -> dict:
    names = {}
    for prefix, members in (("p", model.named_parameters()), ("b", model.named_buffers())):
        for name, t in members:
            names.setdefault(id(t), name)
            names.setdefault(id(t.numpy()), name)
    return names


def _check_constant(e: Emit, arr: np.ndarray, other: Optional[np.ndarray], i: int) -> str:
    """A constant argument: refused if it aliases a traced value or differs between the traces;
    a batch-sized copy of one sample becomes an Expand to the runtime batch."""
    for traced in e.g.traced_arrays:
        if np.may_share_memory(arr, traced):
            raise e.fail(f"argument {i} holds the memory of a traced tensor but did not come through a fastconv "
                         "operation (e.g. .numpy(), .detach() or Tensor(...)); ONNX would store its current "
                         "value as a constant")
    if other is None or (arr.shape == other.shape and np.array_equal(arr, other, equal_nan=True)):
        return e.const(arr, "const")
    if (arr.ndim >= 1 and arr.shape[1:] == other.shape[1:] and arr.shape[0] != other.shape[0]
            and _same_rows(arr) and _same_rows(other) and np.array_equal(arr[:1], other[:1], equal_nan=True)):
        row = e.const(arr[:1], "const")
        shape = e.one("Concat", [e.g.batch(), e.ints(arr.shape[1:])], axis=0)
        return e.one("Expand", [row, shape])
    raise e.fail(f"argument {i} is a constant that changes with the input (shape {arr.shape} at one batch "
                 f"size, {other.shape} at another); compute it with fastconv operations so it can be exported")


def _same_rows(a: np.ndarray) -> bool:
    return a.shape[0] > 0 and np.array_equal(a, np.broadcast_to(a[:1], a.shape), equal_nan=True)


def _check_traces(first: Trace, second: Trace) -> None:
    if len(first.calls) != len(second.calls) or any(
            a.function is not b.function for a, b in zip(first.calls, second.calls)):
        for a, b in zip(first.calls, second.calls):
            if a.function is not b.function:
                raise ExportError(
                    f"onnx.export: the forward runs {a.function.__name__} in '{a.scope}' at one batch size and "
                    f"{b.function.__name__} in '{b.scope}' at another; export with dynamic_batch=False")
        raise ExportError("onnx.export: the forward makes a different number of operations at different batch "
                          "sizes; export with dynamic_batch=False")


def _value_info(onnx, name: str, array: np.ndarray, batch_dims: Sequence[int]):
    dims = ["batch" if d in batch_dims else int(n) for d, n in enumerate(array.shape)]
    return onnx.helper.make_tensor_value_info(name, onnx_dtype(onnx, array.dtype), dims)


def build(model, example_input, opset_version: int = 17, dynamic_batch: bool = True,
          input_names: Optional[Sequence[str]] = None, output_names: Optional[Sequence[str]] = None):
    """The ONNX ModelProto of ``model`` traced on ``example_input`` (see ``export``)."""
    onnx = require_onnx()
    from .. import __version__

    newest = onnx.defs.onnx_opset_version()
    if isinstance(opset_version, bool) or not isinstance(opset_version, int) or not MIN_OPSET <= opset_version <= newest:
        raise ValueError(f"onnx.export: expected opset_version as an int in [{MIN_OPSET}, {newest}] (the installed "
                         f"onnx supports up to {newest}), got {opset_version!r}")
    inputs = _inputs(example_input)
    was_training = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        first = record(model, inputs)
        second = record(model, _grown(inputs)) if dynamic_batch else None
    finally:
        for module, mode in was_training:
            object.__setattr__(module, "training", mode)
    if second is not None:
        _check_traces(first, second)

    input_names = list(input_names) if input_names else (
        ["input"] if len(inputs) == 1 else [f"input_{i}" for i in range(len(inputs))])
    if len(input_names) != len(inputs):
        raise ValueError(f"onnx.export: {len(input_names)} input_names for {len(inputs)} inputs")
    graph = Graph(onnx, opset_version, _param_names(model))
    batch_dims = [0] if dynamic_batch else []
    for name, t, key in zip(input_names, first.inputs, first.input_keys):
        graph.unique(name)
        graph.bind(key, t.numpy(), name)
    graph.batch_source = input_names[0]

    for k, call in enumerate(first.calls):
        emitter = EMITTERS.get(call.function)
        if emitter is None:
            module = type(call.module).__name__
            raise ExportError(f"onnx.export: {call.function.__module__}.{call.function.__qualname__} (called in "
                              f"module '{call.scope or '<root>'}' ({module})) has no ONNX translation")
        emitter(Emit(graph, call, None if second is None else second.calls[k], _check_constant))

    outputs = _flat_outputs(first.output)
    output_keys = _flat_keys(first.output_keys)
    output_names = list(output_names) if output_names else (
        ["output"] if len(outputs) == 1 else [f"output_{i}" for i in range(len(outputs))])
    if len(output_names) != len(outputs):
        raise ValueError(f"onnx.export: {len(output_names)} output_names for {len(outputs)} outputs")
    other_outputs = _flat_outputs(second.output) if second is not None else None
    infos = []
    for k, (name, t, key) in enumerate(zip(output_names, outputs, output_keys)):
        value = graph.lookup(key)
        if value is None:
            raise ExportError(f"onnx.export: output {k} of the model was not computed by fastconv operations "
                              "from the input, so ONNX would store it as a constant")
        _rename(graph, value, name, [n.name for n in infos] + input_names)
        dims = [] if other_outputs is None else [
            d for d in range(t.ndim) if t.shape[d] != other_outputs[k].shape[d]]
        infos.append(_value_info(onnx, name, t.numpy(), dims))
    h = onnx.helper
    proto = h.make_graph(
        graph.nodes, "fastconv", [_value_info(onnx, n, t.numpy(), batch_dims) for n, t in zip(input_names, first.inputs)],
        infos, initializer=[onnx.numpy_helper.from_array(a, n) for n, a in graph.initializers.items()])
    opsets = [h.make_opsetid("", opset_version)]
    model_proto = h.make_model(proto, opset_imports=opsets, producer_name="fastconv", producer_version=__version__)
    model_proto.ir_version = h.find_min_ir_version_for(opsets)
    onnx.checker.check_model(model_proto, full_check=True)
    return model_proto


def _rename(graph: Graph, value: str, name: str, taken: Sequence[str]) -> None:
    """Make the node output ``value`` the graph output ``name`` (an Identity when ``value`` is a
    graph input or already another output)."""
    if name != value and name in graph._names:
        raise ExportError(f"onnx.export: output name {name!r} is already used in the graph")
    producer = next((n for n in graph.nodes if value in n.output), None)
    if producer is None or value in taken:
        graph.nodes.append(graph.onnx.helper.make_node("Identity", [value], [name], name=graph.unique(f"/Identity_{name}")))
    else:
        for node in graph.nodes:
            for seq in (node.input, node.output):
                for j, v in enumerate(seq):
                    if v == value:
                        seq[j] = name
        for key, v in list(graph.values.items()):
            if v == value:
                graph.values[key] = name
    graph._names.add(name)


def export(model, example_input, path, opset_version: int = 17, dynamic_batch: bool = True,
           input_names: Optional[Sequence[str]] = None, output_names: Optional[Sequence[str]] = None):
    """Write ``model`` as an ONNX file that ONNX Runtime runs with fastconv's outputs.

    The forward is traced on ``example_input`` (a Tensor/ndarray or a tuple of them) in eval mode;
    plain-Python forwards (residual adds, cats, reshapes) are recorded as they run. With
    ``dynamic_batch`` the first dimension of inputs and outputs is symbolic ('batch').
    Parameters keep their state_dict names as initializer names. Returns the ModelProto.
    Needs the ``onnx`` package (``pip install "fastconv[onnx]"``).
    """
    proto = build(model, example_input, opset_version, dynamic_batch, input_names, output_names)
    data = proto.SerializeToString()
    with atomic_write(path) as f:
        f.write(data)
    return proto
