"""``load``: an ONNX graph as a trainable fastconv Module.

Initializers (not Constant nodes, which are part of the computation) become Parameters when a node uses them as weights (conv/linear weights and
biases, norm scales and shifts, PReLU slopes, a bias added to a MatMul), buffers when they are
running statistics or other tensors, and plain constants when they are integers or scalars;
parameters and buffers are registered under their initializer names (a dotted name such as
``layer1.0.conv1.weight`` becomes nested sub-modules), so ``state_dict`` keys equal the names in
the file. ``forward`` executes the nodes in order with fastconv's operations (``_import_ops``),
so gradients flow to every parameter, batch norm follows ``train()``/``eval()``, and the
module can be saved, fine-tuned and exported again. It is returned in eval mode.
"""
from __future__ import annotations

import os
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np

from ..nn.module import Module, Parameter
from ..tensor import Tensor
from ._export import require_onnx
from ._import_ops import HANDLERS, Node

# (op type) -> input positions holding trainable weights, and running statistics
_WEIGHT_SLOTS = {"Conv": (1, 2), "ConvTranspose": (1, 2), "Gemm": (0, 1, 2), "MatMul": (0, 1),
                 "BatchNormalization": (1, 2), "InstanceNormalization": (1, 2), "LayerNormalization": (1, 2),
                 "GroupNormalization": (1, 2), "PRelu": (1,)}
_STAT_SLOTS = {"BatchNormalization": (3, 4)}
_PRODUCES_LINEAR = {"MatMul", "Gemm", "Conv", "ConvTranspose"}


class _Holder(Module):
    """A container for parameters whose initializer names are dotted paths."""

    def forward(self, *args):
        raise RuntimeError("a parameter container of an ONNX module is not callable")


class OnnxModule(Module):
    """A Module executing an ONNX graph with fastconv operations (see ``fastconv.onnx.load``)."""

    def __init__(self, nodes: List[Node], input_names: List[str], input_shapes: List[Tuple],
                 output_names: List[str], constants: Dict[str, np.ndarray], opset: int, source: str):
        super().__init__()
        self.opset = opset
        self.source = source
        self.input_names = list(input_names)
        self.output_names = list(output_names)
        object.__setattr__(self, "_nodes", nodes)
        object.__setattr__(self, "_input_shapes", input_shapes)
        object.__setattr__(self, "_constants", constants)
        object.__setattr__(self, "_slots", {})

    # ---- parameters under initializer names ------------------------------------------------------
    def _register(self, name: str, value: np.ndarray, kind: str) -> None:
        parts = name.split(".")
        owner: Module = self
        if all(parts) and all(_safe(p) for p in parts):
            for part in parts[:-1]:
                child = owner._modules.get(part)
                if child is None:
                    if part in owner._parameters or part in owner._buffers:
                        owner = None
                        break
                    child = _Holder()
                    owner.add_module(part, child)
                owner = child
        else:
            owner = None
        leaf = parts[-1]
        if owner is None or leaf in owner._modules or leaf in owner._parameters or leaf in owner._buffers:
            owner, leaf = self, _flat_name(self, name)
        if kind == "parameter":
            owner.register_parameter(leaf, Parameter(value))
        else:
            owner.register_buffer(leaf, value)
        self._slots[name] = (owner, leaf)

    # ---- running the graph -----------------------------------------------------------------------------
    def forward(self, *inputs):
        if len(inputs) != len(self.input_names):
            raise TypeError(f"OnnxModule: the graph takes {len(self.input_names)} input(s) "
                            f"({', '.join(self.input_names)}), got {len(inputs)}")
        env: Dict[str, Any] = dict(self._constants)
        for name, (owner, leaf) in self._slots.items():
            env[name] = owner._parameters[leaf] if leaf in owner._parameters else owner._buffers[leaf]
        for name, shape, x in zip(self.input_names, self._input_shapes, inputs):
            env[name] = _checked_input(name, shape, x)
        for node in self._nodes:
            args = []
            for name in node.inputs:
                if not name:
                    args.append(None)
                elif name in env:
                    args.append(env[name])
                else:
                    raise RuntimeError(f"OnnxModule: node '{node.name}' ({node.op_type}) reads '{name}', which "
                                       "no earlier node, input or initializer provides")
            outputs = HANDLERS[node.op_type](self, node, args)
            for name, value in zip(node.outputs, outputs):
                if name:
                    env[name] = value
        results = [_as_tensor(env[name]) for name in self.output_names]
        return results[0] if len(results) == 1 else tuple(results)

    def extra_repr(self) -> str:
        counts: Dict[str, int] = {}
        for node in self._nodes:
            counts[node.op_type] = counts.get(node.op_type, 0) + 1
        ops = ", ".join(f"{op}×{n}" for op, n in sorted(counts.items(), key=lambda kv: -kv[1]))
        return f"source={self.source!r}, opset={self.opset}, inputs={self.input_names}, nodes: {ops}"

    def __repr__(self) -> str:  # the parameter containers would print one line per initializer
        return f"OnnxModule({self.extra_repr()})"


def _safe(part: str) -> bool:
    """A name component that cannot clobber Module's own attributes."""
    return not part.startswith("_") and not hasattr(Module, part) and part not in ("training",)


def _flat_name(module: Module, name: str) -> str:
    base = "".join(c if c.isalnum() else "_" for c in name).lstrip("_") or "initializer"
    if not _safe(base):
        base = f"onnx_{base}"
    candidate, n = base, 1
    while candidate in module._parameters or candidate in module._buffers or candidate in module._modules:
        candidate = f"{base}_{n}"
        n += 1
    return candidate


def _as_tensor(value) -> Tensor:
    return value if isinstance(value, Tensor) else Tensor._wrap(np.asarray(value))


def _checked_input(name: str, shape: Tuple, x) -> Tensor:
    t = x if isinstance(x, Tensor) else Tensor._wrap(np.asarray(x)) if isinstance(x, np.ndarray) else None
    if t is None:
        raise TypeError(f"OnnxModule: expected input '{name}' as a Tensor or ndarray, got {type(x).__name__}")
    if shape is not None:
        ok = len(shape) == t.ndim and all(d is None or d == n for d, n in zip(shape, t.shape))
        if not ok:
            want = "(" + ", ".join("?" if d is None else str(d) for d in shape) + ")"
            raise ValueError(f"OnnxModule: expected input '{name}' of shape {want}, got {tuple(t.shape)}")
    return t


# ---- reading the file ----------------------------------------------------------------------------------

def _attributes(onnx, node) -> Dict[str, Any]:
    out = {}
    for attr in node.attribute:
        value = onnx.helper.get_attribute_value(attr)
        if isinstance(value, bytes):
            value = value.decode("utf-8")
        elif isinstance(value, onnx.TensorProto):
            value = onnx.numpy_helper.to_array(value)
        elif isinstance(value, (list, tuple)) and value and isinstance(value[0], bytes):
            value = [v.decode("utf-8") for v in value]
        elif isinstance(value, onnx.GraphProto):
            raise ValueError(f"onnx.load: node '{node.name}' ({node.op_type}) has a subgraph (control flow), "
                             "which is not supported")
        out[attr.name] = list(value) if isinstance(value, (list, tuple)) else value
    return out


def _constant_value(node: Node) -> np.ndarray:
    attrs = node.attrs
    for key, dtype in (("value", None), ("value_float", np.float32), ("value_floats", np.float32),
                       ("value_int", np.int64), ("value_ints", np.int64)):
        if key in attrs:
            return np.asarray(attrs[key]) if dtype is None else np.asarray(attrs[key], dtype=dtype)
    raise node.fail(f"unsupported Constant attributes {sorted(attrs)}")


def _shape_of(value_info) -> Tuple:
    dims = value_info.type.tensor_type.shape.dim
    if not value_info.type.tensor_type.HasField("shape"):
        return None
    return tuple(d.dim_value if d.HasField("dim_value") else None for d in dims)


def _roles(nodes: Sequence[Node], names: Dict[str, np.ndarray]) -> Dict[str, str]:
    """'parameter', 'buffer' or 'constant' for every initializer, from how nodes use it."""
    alias = {}
    producer = {}
    for node in nodes:
        for out in node.outputs:
            producer[out] = node
        if node.op_type == "Identity" and node.inputs and node.inputs[0] in names:
            alias[node.outputs[0]] = node.inputs[0]
    role: Dict[str, str] = {}

    def mark(name, kind):
        name = alias.get(name, name)
        if name in names and role.get(name) != "parameter":
            role[name] = kind

    for node in nodes:
        for pos in _WEIGHT_SLOTS.get(node.op_type, ()):
            if pos < len(node.inputs):
                mark(node.inputs[pos], "parameter")
        for pos in _STAT_SLOTS.get(node.op_type, ()):
            if pos < len(node.inputs):
                mark(node.inputs[pos], "buffer")
        if node.op_type in ("Add", "Mul") and len(node.inputs) == 2:  # a bias/scale after a linear op
            a, b = node.inputs
            for mine, other in ((a, b), (b, a)):
                src = producer.get(other)
                if src is not None and src.op_type in _PRODUCES_LINEAR and alias.get(mine, mine) in names \
                        and names[alias.get(mine, mine)].size > 1:
                    mark(mine, "parameter")
    for name, value in names.items():
        if name not in role:
            role[name] = "buffer" if value.dtype.kind == "f" and value.size > 1 else "constant"
        if role[name] == "parameter" and value.dtype.kind != "f":
            role[name] = "buffer"
    return role


def load(path) -> OnnxModule:
    """A trainable fastconv Module running the ONNX graph at ``path`` (or an onnx.ModelProto).

    Unsupported operators raise a ValueError naming the operator and the node. Needs the
    ``onnx`` package (``pip install "fastconv[onnx]"``).
    """
    onnx = require_onnx()
    if isinstance(path, onnx.ModelProto):
        proto, source = path, "<ModelProto>"
    else:
        source = os.fspath(path)
        if not os.path.exists(source):
            raise FileNotFoundError(f"onnx.load: no such file: {source}")
        try:
            proto = onnx.load(source)
        except Exception as exc:  # noqa: BLE001 - protobuf raises several types for a bad file
            raise ValueError(f"onnx.load: {source} is not a readable ONNX model: {type(exc).__name__}: {exc}") from None
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is None:
        raise ValueError(f"onnx.load: {source} imports no version of the default ONNX operator set")
    graph = proto.graph
    values: Dict[str, np.ndarray] = {i.name: onnx.numpy_helper.to_array(i) for i in graph.initializer}
    fixed: Dict[str, np.ndarray] = {}  # Constant nodes: part of the computation, never weights
    outputs = {o.name for o in graph.output}
    nodes: List[Node] = []
    for raw in graph.node:
        name = raw.name or f"{raw.op_type}_{len(nodes)}"
        if raw.domain not in ("", "ai.onnx") or raw.op_type not in HANDLERS and raw.op_type != "Constant":
            where = f" in domain '{raw.domain}'" if raw.domain not in ("", "ai.onnx") else ""
            raise ValueError(f"onnx.load: {source}: operator {raw.op_type}{where} (node '{name}') is not supported "
                             f"by fastconv; supported: {', '.join(sorted(HANDLERS))}")
        node = Node(raw.op_type, name, raw.input, raw.output, _attributes(onnx, raw))
        if node.op_type == "Constant":
            fixed[node.outputs[0]] = _constant_value(node)
        elif node.op_type == "Identity" and node.inputs[0] in values and node.outputs[0] not in outputs:
            # torch.onnx.export stores equal initializers once and names each copy by an Identity
            # (layer2.bias = Identity(layer1.bias)): each becomes its own, untied tensor again
            values[node.outputs[0]] = values[node.inputs[0]].copy()
        else:
            nodes.append(node)
    inputs = [i for i in graph.input if i.name not in values]
    used = {name for node in nodes for name in node.inputs} | outputs
    values = {name: v for name, v in values.items() if name in used}
    roles = _roles(nodes, values)
    constants = {name: v for name, v in values.items() if roles[name] == "constant"}
    constants.update(fixed)
    module = OnnxModule(nodes, [i.name for i in inputs], [_shape_of(i) for i in inputs],
                        [o.name for o in graph.output], constants, opset, source)
    for name, value in values.items():
        if roles[name] == "parameter":
            value = value.astype(np.float32) if value.dtype not in (np.float32, np.float64) else value
            module._register(name, np.array(value), "parameter")
        elif roles[name] == "buffer":
            module._register(name, np.array(value), "buffer")
    return module.eval()
