"""The ONNX graph under construction: nodes, initializers, value names, and what each emitter
needs to turn one traced Function call into nodes (``Emit``)."""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from ..tensor import Tensor

INT64_MAX = np.iinfo(np.int64).max
INT64_MIN = np.iinfo(np.int64).min


class ExportError(RuntimeError):
    """The model cannot be written as ONNX (the message names the operation and the module)."""


def array_of(obj) -> np.ndarray:
    """The ndarray behind a Tensor argument (or the array itself)."""
    return obj.numpy() if isinstance(obj, Tensor) else np.asarray(obj)


class Graph:
    """Nodes and initializers in the order they are made; ``values`` maps traced Tensors
    (by identity) to the ONNX value holding them."""

    def __init__(self, onnx, opset: int, params: Dict[int, str]):
        self.onnx = onnx
        self.opset = opset
        self.nodes: List[Any] = []
        self.initializers: "OrderedDict[str, np.ndarray]" = OrderedDict()
        self.values: Dict[tuple, str] = {}  # Graph.key of a traced Tensor, or ("array", id) -> value name
        self.traced_arrays: List[np.ndarray] = []
        self.params = params  # id(Parameter/buffer Tensor or its array) -> state_dict name
        self._param_values: Dict[str, str] = {}
        self._names = set()
        self._ints: Dict[tuple, str] = {}
        self.batch_source: Optional[str] = None
        self._batch: Optional[str] = None

    # ---- names -------------------------------------------------------------------------------
    def unique(self, base: str) -> str:
        name, n = base, 1
        while name in self._names:
            name = f"{base}_{n}"
            n += 1
        self._names.add(name)
        return name

    def lookup(self, key):
        """The ONNX value of a traced value key (``_trace.value_key``, or ("array", id) for an
        array passed on unwrapped), else None."""
        return self.values.get(key)

    def bind(self, key, array: np.ndarray, name: str) -> None:
        """The traced value ``key`` (and its array, which some ops pass on unwrapped) is ``name``."""
        self.values[key] = name
        self.values.setdefault(("array", id(array)), name)
        self.traced_arrays.append(array)

    # ---- nodes and constants -------------------------------------------------------------------
    def node(self, op: str, inputs: Sequence[str], n_out: int = 1, scope: str = "", **attrs) -> List[str]:
        prefix = "/" + scope.replace(".", "/") + "/" if scope else "/"
        name = self.unique(f"{prefix}{op}")
        outputs = [self.unique(f"{name}_output_{i}") for i in range(n_out)]
        attrs = {k: v for k, v in attrs.items() if v is not None}
        self.nodes.append(self.onnx.helper.make_node(op, list(inputs), outputs, name=name, **attrs))
        return outputs

    def constant(self, array: np.ndarray, base: str) -> str:
        name = self.unique(base)
        self.initializers[name] = np.ascontiguousarray(array)
        return name

    def parameter(self, name: str, array: np.ndarray) -> str:
        """The initializer of a parameter or buffer, under its state_dict name (added once)."""
        if name not in self._param_values:
            self._param_values[name] = self.constant(array, name)
        return self._param_values[name]

    def int64s(self, values: Sequence[int]) -> str:
        """A 1-D int64 constant (shared between nodes asking for the same values)."""
        key = tuple(int(v) for v in values)
        if key not in self._ints:
            self._ints[key] = self.constant(np.array(key, dtype=np.int64), "const_ints")
        return self._ints[key]

    def batch(self) -> str:
        """A 1-D int64 value [N]: the batch size of the first graph input, for batch-sized shapes."""
        if self._batch is None:
            (shape,) = self.node("Shape", [self.batch_source])
            (self._batch,) = self.node("Slice", [shape, self.int64s([0]), self.int64s([1])])
        return self._batch

    # ---- opset-dependent forms ---------------------------------------------------------------------
    def reduce(self, op: str, x: str, axes: Optional[Sequence[int]], keepdims: bool, scope: str = "") -> str:
        """ReduceMean/Max/Min/Sum over ``axes`` (None: all): axes are an input from opset 18
        (ReduceSum from 13), an attribute before."""
        as_input = self.opset >= 18 or op == "ReduceSum"
        if axes is None:
            return self.node(op, [x], scope=scope, keepdims=int(keepdims))[0]
        if as_input:
            return self.node(op, [x, self.int64s(axes)], scope=scope, keepdims=int(keepdims))[0]
        return self.node(op, [x], scope=scope, axes=list(axes), keepdims=int(keepdims))[0]


class Emit:
    """What an emitter sees of one call: its arguments as ONNX values, its options, its outputs'
    shapes (and the other trace's, to tell batch-sized dimensions), and node/constant makers."""

    def __init__(self, graph: Graph, call, other, check_constant):
        self.g = graph
        self.call = call
        self.other = other
        self.kw = call.kwargs
        self._check_constant = check_constant

    # ---- what the call received and made ----------------------------------------------------------
    @property
    def where(self) -> str:
        module = type(self.call.module).__name__
        return f"{self.call.function.__name__} in module '{self.call.scope or '<root>'}' ({module})"

    def array(self, i: int) -> np.ndarray:
        return array_of(self.call.args[i])

    def shape(self, i: int):
        return tuple(self.array(i).shape)

    def out_shape(self, i: int = 0):
        return tuple(self.call.outputs[i].shape)

    @property
    def dtype(self) -> np.dtype:
        return self.call.outputs[0].numpy().dtype

    def varying(self, i: int = 0) -> List[int]:
        """Output dimensions that differ between the two traces (batch-sized ones)."""
        if self.other is None:
            return []
        a, b = self.out_shape(i), tuple(self.other.outputs[i].shape)
        if len(a) != len(b):
            raise ExportError(f"onnx.export: {self.where} gives outputs of different rank for different batch "
                              "sizes; export with dynamic_batch=False")
        return [d for d in range(len(a)) if a[d] != b[d]]

    def value(self, i: int, dtype=None) -> str:
        """The ONNX value of positional argument ``i`` ("" for None); numbers become constants of
        ``dtype`` (default: the output's dtype)."""
        obj = self.call.args[i]
        if obj is None:
            return ""
        key = self.call.arg_keys[i] if isinstance(obj, Tensor) else ("array", id(obj)) \
            if isinstance(obj, np.ndarray) else None
        traced = None if key is None else self.g.lookup(key)
        if traced is not None:
            return traced
        name = self.g.params.get(id(obj)) or (self.g.params.get(id(obj.numpy())) if isinstance(obj, Tensor) else None)
        if name is not None:
            return self.g.parameter(name, array_of(obj))
        if not isinstance(obj, (Tensor, np.ndarray)):
            return self.scalar(obj, dtype)
        other = None if self.other is None else self.other.args[i]
        return self._check_constant(self, array_of(obj), None if other is None else array_of(other), i)

    def scalar(self, value, dtype=None) -> str:
        dtype = self.dtype if dtype is None else dtype
        return self.const(np.asarray(value, dtype=dtype), "const")

    # ---- making nodes ----------------------------------------------------------------------------
    def node(self, op: str, inputs: Sequence[str], n_out: int = 1, **attrs) -> List[str]:
        return self.g.node(op, inputs, n_out, scope=self.call.scope, **attrs)

    def one(self, op: str, inputs: Sequence[str], **attrs) -> str:
        return self.node(op, inputs, 1, **attrs)[0]

    def const(self, array: np.ndarray, suffix: str) -> str:
        base = f"{self.call.scope}.{suffix}" if self.call.scope else suffix
        return self.g.constant(np.asarray(array), base)

    def fixed(self, array: np.ndarray, suffix: str) -> str:
        """A Constant node: part of the computation, not a weight (importers keep it out of the
        parameters, as for the ones and zeros standing in for an absent affine)."""
        tensor = self.g.onnx.numpy_helper.from_array(np.ascontiguousarray(array), suffix)
        return self.one("Constant", [], value=tensor)

    def ints(self, values: Sequence[int]) -> str:
        return self.g.int64s(values)

    def reduce(self, op: str, x: str, axes, keepdims: bool) -> str:
        return self.g.reduce(op, x, axes, keepdims, scope=self.call.scope)

    def bind(self, *names: str) -> None:
        for tensor, key, name in zip(self.call.outputs, self.call.output_keys, names):
            self.g.bind(key, tensor.numpy(), name)

    def fail(self, problem: str) -> ExportError:
        return ExportError(f"onnx.export: {self.where}: {problem}")
