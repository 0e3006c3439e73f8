"""From traced Function calls to the predictor's graph: one lowering per Function class.

``build_graph`` traces the forward at two batch sizes (``fastconv._trace.record``), lowers each
call of both traces to graph nodes, checks that the two traces made the same operations on the
same constants, and fits every size that differs as an affine function of the batch
(``graph.fit``). A Function without a lowering is an error naming it and the module it ran
in: there is no fallback to the eager op.
"""
from __future__ import annotations

import importlib
import inspect
import math
import numbers
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .. import _tensor_ops as T
from .._trace import Call, Trace, record
from ..nn.functional import activation as A
from ..nn.functional import normalization as N
from ..nn.functional import pooling as P
from ..nn.functional.conv import planner
from ..nn.functional.conv.function import Conv2dFunction, ConvTranspose2dFunction
from ..nn.functional.linear import LinearFunction
from ..tensor import Tensor
from .graph import Graph, GraphError, Node, fit

# ---- the builder: traced tensors → graph values ---------------------------------------------------


class _Builder:
    """Lowers one trace: maps traced tensors to values, constants to constant values."""

    def __init__(self, trace: Trace, known_arrays: Dict[int, str]):
        self.graph = Graph({}, [], [], [])
        self.by_tensor: Dict[int, int] = {}
        self.by_array: Dict[int, int] = {}
        self.tensors_of: Dict[int, List[int]] = {}  # id(array) → ids of the tensors bound to it
        self.by_node: Dict[Tuple[int, int], int] = {}  # (id(tape node), output index) → value
        self.arg_nodes: Dict[int, Any] = {}  # id(argument) → its (tape node, index) when the call ran
        self.traced: List[np.ndarray] = []
        self.unusable: Dict[int, str] = {}  # value-like tensors the predictor cannot compute
        self.known = known_arrays           # id(array) → parameter/buffer name
        self.consts: Dict[int, int] = {}    # id(array) → constant value id
        self.call: Optional[Call] = None
        for t in trace.inputs:
            v = self.graph.new_value(t.shape)
            self.graph.inputs.append(v.id)
            self._bind(t, v.id)

    def _bind(self, t, vid: int) -> None:
        arr = t.numpy() if isinstance(t, Tensor) else t
        if id(arr) in self.by_array and self.by_array[id(arr)] != vid:
            # the op wrote into an existing array (in place, e.g. relu(x, inplace=True), x += y):
            # every tensor on that array now holds the new value
            for tid in self.tensors_of.get(id(arr), ()):
                self.by_tensor[tid] = vid
        self.by_tensor[id(t)] = vid
        self.by_array[id(arr)] = vid
        self.tensors_of.setdefault(id(arr), []).append(id(t))
        self.traced.append(arr)

    def where(self) -> str:
        call = self.call
        return f"{call.function.__name__} in '{call.scope}'" if call.scope else call.function.__name__

    def fail(self, message: str) -> GraphError:
        return GraphError(f"inference.compile: {self.where()}: {message}")

    # -- operands
    def lookup(self, t) -> Optional[int]:
        # a computed tensor by its tape node first: an in-place op (x += y, relu(x, inplace=True),
        # x.mul_(2)) leaves x's Tensor object with the op's node (and its array, or a copy into it)
        vid = None
        node = self.arg_nodes.get(id(t))
        if node is not None:
            vid = self.by_node.get((id(node[0]), node[1]))
        if vid is None and isinstance(t, (Tensor, np.ndarray)):
            vid = self.by_array.get(id(t.numpy() if isinstance(t, Tensor) else t))
        if vid is None:
            vid = self.by_tensor.get(id(t))
        if vid is None and id(t) in self.unusable:
            raise self.fail(self.unusable[id(t)])
        return vid

    def value(self, t) -> int:
        """A traced tensor's value, or a constant's (parameters, arrays made outside the trace)."""
        vid = self.lookup(t)
        return vid if vid is not None else self.const(t)

    def const(self, t) -> int:
        vid = self.lookup(t)
        if vid is not None:
            raise self.fail("expected a constant (a parameter or buffer) here, got a tensor computed in the "
                            "forward; the compiled predictor pre-packs these operands once")
        arr = t.numpy() if isinstance(t, Tensor) else t
        if not isinstance(arr, np.ndarray):
            arr = np.asarray(arr)
        vid = self.consts.get(id(arr))
        if vid is not None:
            return vid
        if id(arr) not in self.known:
            for traced in self.traced:
                if np.may_share_memory(arr, traced):
                    raise self.fail("an argument holds the memory of a traced tensor but did not come through a "
                                    "fastconv operation (e.g. .numpy(), .detach() or Tensor(...)); the predictor "
                                    "would bake its current value in as a constant")
        if arr.dtype.kind == "f" and arr.dtype != np.float32:
            if arr.dtype == np.float64 and id(arr) not in self.known:
                arr = arr.astype(np.float32)  # a float64 constant made in forward (e.g. a numpy scalar)
            else:
                raise self.fail(f"the compiled predictor runs float32; got a {arr.dtype} constant "
                                f"{self.known.get(id(arr), '')}".rstrip())
        v = self.graph.const(arr.astype(np.float32) if arr.dtype.kind in "biu" else arr)
        self.consts[id(t.numpy() if isinstance(t, Tensor) else t)] = v.id
        return v.id

    # -- nodes
    def node(self, op: str, inputs: Sequence[int], out, attrs: Optional[dict] = None,
             act: Optional[Tuple[str, float, float]] = None) -> Node:
        """A node computing traced tensor ``out`` (or a fresh value when ``out`` is a shape)."""
        shape = out if isinstance(out, tuple) else tuple(out.shape)
        v = self.graph.new_value(shape)
        node = Node(op, list(inputs), v.id, dict(attrs or {}), self.call.scope if self.call else "", act)
        self.graph.nodes.append(node)
        if not isinstance(out, tuple):
            self._bind(out, v.id)
        return node

    def unusable_output(self, t, message: str) -> None:
        self.unusable[id(t)] = message
        self.unusable[id(t.numpy() if isinstance(t, Tensor) else t)] = message


def _scalar(v) -> Optional[float]:
    """A Python/numpy number or a one-element array as a float, else None."""
    if isinstance(v, bool):
        return None
    if isinstance(v, numbers.Real):
        return float(v)
    arr = v.numpy() if isinstance(v, Tensor) else v
    if isinstance(arr, np.ndarray) and arr.size == 1 and arr.ndim == 0:
        return float(arr)
    return None


def _out(call: Call, i: int = 0):
    return call.outputs[i]


_SIGNATURES: Dict[type, inspect.Signature] = {}


def _bound(call: Call) -> Dict[str, Any]:
    """The call's arguments by the names of its Function's forward (defaults filled in)."""
    sig = _SIGNATURES.get(call.function)
    if sig is None:
        sig = _SIGNATURES[call.function] = inspect.signature(call.function.forward)
    bound = sig.bind(None, *call.args, **call.kwargs)
    bound.apply_defaults()
    return dict(list(bound.arguments.items())[1:])


# ---- lowerings ------------------------------------------------------------------------------------
# Each takes (call, builder) and emits the nodes computing the call's outputs.

def _conv2d(call: Call, b: _Builder) -> None:
    a = _bound(call)
    x, w, bias, g = a["x"], a["weight"], a["bias"], a["geometry"]
    inputs = [b.value(x), b.const(w)] + ([b.const(bias)] if bias is not None else [])
    b.node("conv2d", inputs, _out(call), {"geometry": [int(v) for v in g]})


def _conv_transpose2d(call: Call, b: _Builder) -> None:
    a = _bound(call)
    x, w, bias, g, out_shape = a["x"], a["weight"], a["bias"], a["geometry"], a["out_shape"]
    inputs = [b.value(x), b.const(w)] + ([b.const(bias)] if bias is not None else [])
    b.node("conv_transpose2d", inputs, _out(call), {"geometry": [int(v) for v in g],
                                                    "out_shape": [int(v) for v in out_shape]})


def _linear(call: Call, b: _Builder) -> None:
    a = _bound(call)
    x, w, bias = a["x"], a["weight"], a["bias"]
    inputs = [b.value(x), b.const(w)] + ([b.const(bias)] if bias is not None else [])
    b.node("linear", inputs, _out(call))


def _per_channel_stats(b: _Builder, layout, x, fixed_stats, weight, bias, eps: float):
    """mean, scale, shift constants of a normalization with fixed statistics when it is per
    channel along axis 1 (batch norm in eval mode, instance norm with running statistics)."""
    shape = tuple(x.shape)
    if layout.cpg != 1 or layout.elementwise or len(shape) < 2 or shape[1] != layout.channels:
        return None
    mean, var = (np.asarray(a, dtype=np.float64).reshape(-1) for a in fixed_stats)
    if mean.size != layout.channels:
        return None
    rstd = 1.0 / np.sqrt(var + eps)
    w = np.ones(layout.channels) if weight is None else np.asarray(_array(weight), np.float64)
    sh = np.zeros(layout.channels) if bias is None else np.asarray(_array(bias), np.float64)
    return (mean.astype(np.float32), (rstd * w).astype(np.float32), sh.astype(np.float32))


def _array(t):
    return t.numpy() if isinstance(t, Tensor) else np.asarray(t)


def _normalize(call: Call, b: _Builder, residual=None, act=None) -> None:
    a = _bound(call)
    x, weight, bias, layout, eps = a["x"], a["weight"], a["bias"], a["layout"], float(a["eps"])
    fixed = a.get("fixed_stats")
    if a.get("running") is not None:
        raise b.fail("updates running statistics (a norm layer in training mode); compile a model in eval mode")
    stats = _per_channel_stats(b, layout, x, fixed, weight, bias, eps) if fixed is not None else None
    if stats is not None:
        consts = [b.const(a) for a in stats]
        node = b.node("channel_affine", [b.value(x)] + consts, _out(call), act=act)
    elif fixed is not None:
        raise b.fail("normalizes with fixed statistics in a layout other than per channel of axis 1")
    else:
        inputs = [b.value(x)] + [b.const(p) for p in (weight, bias) if p is not None]
        node = b.node("normalize", inputs, _out(call), {
            "shape3": [int(v) for v in layout.shape3], "cpg": int(layout.cpg), "channels": int(layout.channels),
            "elementwise": bool(layout.elementwise), "eps": eps, "weight": weight is not None,
            "bias": bias is not None}, act=act)
    if residual is not None:
        node.residual = b.value(residual)


def _batch_norm_activation(call: Call, b: _Builder) -> None:
    a = _bound(call)
    _normalize(call, b, residual=a["residual"], act=("clamp", 0.0, float(a["max_value"])))


def _add_activation(call: Call, b: _Builder) -> None:
    a = _bound(call)
    b.node("binary", [b.value(a["a"]), b.value(a["b"])], _out(call), {"op": "add"},
           act=("clamp", 0.0, float(a["max_value"])))


def _act(name: str, a0: float = 0.0, a1: float = 0.0) -> Callable:
    def lower(call: Call, b: _Builder) -> None:
        b.node("act", [b.value(call.args[0])], _out(call), act=(name, a0, a1))
    return lower


def _relu6_like(call: Call, b: _Builder) -> None:
    b.node("act", [b.value(call.args[0])], _out(call), act=("clamp", 0.0, 6.0))


def _hardtanh(call: Call, b: _Builder) -> None:
    a = _bound(call)
    b.node("act", [b.value(a["x"])], _out(call), act=("clamp", float(a["min_val"]), float(a["max_val"])))


def _leaky_relu(call: Call, b: _Builder) -> None:
    a = _bound(call)
    b.node("act", [b.value(a["x"])], _out(call), act=("leaky", float(a["slope"]), 0.0))


def _elu(call: Call, b: _Builder) -> None:
    a = _bound(call)
    b.node("act", [b.value(a["x"])], _out(call), act=("elu", float(a["alpha"]), 0.0))


def _clip(call: Call, b: _Builder) -> None:
    a = _bound(call)
    lo, hi = a["lo"], a["hi"]
    lo_v, hi_v = (None if v is None else _scalar(v) for v in (lo, hi))
    if (lo is not None and lo_v is None) or (hi is not None and hi_v is None):
        raise b.fail("clamps to tensor bounds; only number bounds are supported")
    b.node("act", [b.value(a["a"])], _out(call),
           act=("clamp", -math.inf if lo_v is None else lo_v, math.inf if hi_v is None else hi_v))


def _softmax(log: bool) -> Callable:
    def lower(call: Call, b: _Builder) -> None:
        a = _bound(call)
        x, axis = a["x"], a["axis"]
        b.node("softmax", [b.value(x)], _out(call), {"axis": int(axis) % len(x.shape), "log": log})
    return lower


_BINARY = {T.Add: "add", T.Sub: "sub", T.Mul: "mul", T.Div: "div", T.Pow: "pow"}


def _binary(call: Call, b: _Builder) -> None:
    op = _BINARY[call.function]
    x, y = call.args[:2]
    sx, sy = _scalar(x) if b.lookup(x) is None else None, _scalar(y) if b.lookup(y) is None else None
    out = _out(call)
    if sy is not None and b.lookup(x) is not None and tuple(x.shape) == tuple(out.shape):
        act = {"add": ("affine", 1.0, sy), "sub": ("affine", 1.0, -sy), "mul": ("affine", sy, 0.0),
               "div": ("affine", 1.0 / sy, 0.0) if sy != 0 else None, "pow": ("pow", sy, 0.0)}[op]
        if act is not None:
            b.node("act", [b.value(x)], out, act=act)
            return
    if sx is not None and b.lookup(y) is not None and tuple(y.shape) == tuple(out.shape):
        act = {"add": ("affine", 1.0, sx), "sub": ("affine", -1.0, sx), "mul": ("affine", sx, 0.0),
               "div": ("rdiv", sx, 0.0), "pow": ("rpow", sx, 0.0)}[op]
        b.node("act", [b.value(y)], out, act=act)
        return
    b.node("binary", [b.value(x), b.value(y)], out, {"op": op})


def _neg(call: Call, b: _Builder) -> None:
    b.node("act", [b.value(call.args[0])], _out(call), act=("affine", -1.0, 0.0))


def _matmul(call: Call, b: _Builder) -> None:
    x, w = call.args[:2]
    out = _out(call)
    if b.lookup(w) is None and np.ndim(_array(w)) == 2 and np.ndim(_array(x)) >= 1:
        # x @ W with a constant W: a linear layer with weight Wᵀ
        wt = np.ascontiguousarray(_array(w).T)
        b.node("linear", [b.value(x), b.const(wt)], out)
        return
    if np.ndim(_array(x)) < 2 or np.ndim(_array(w)) < 2:
        raise b.fail("matrix products with 1-d operands are not supported (reshape them to 2-d)")
    b.node("matmul", [b.value(x), b.value(w)], out)


def _axes(axis, ndim: int) -> List[int]:
    if axis is None:
        return list(range(ndim))
    axes = axis if isinstance(axis, (tuple, list)) else (axis,)
    return sorted(int(a) % ndim for a in axes)


def _reduce(op: str) -> Callable:
    def lower(call: Call, b: _Builder) -> None:
        a = _bound(call)
        x, axis, keepdims = a["a"], a["axis"], a["keepdims"]
        name = op
        if op == "extremum":
            name = "max" if a["largest"] else "min"
        b.node("reduce", [b.value(x)], _out(call), {"op": name, "axes": _axes(axis, len(x.shape)),
                                                     "keepdims": bool(keepdims)})
    return lower


def _alias(call: Call, b: _Builder) -> None:
    b.node("reshape", [b.value(call.args[0])], _out(call))


def _permute(call: Call, b: _Builder) -> None:
    a = _bound(call)
    x, axes = a["a"], a["axes"]
    axes = list(range(len(x.shape)))[::-1] if axes is None else [int(a) % len(x.shape) for a in axes]
    b.node("transpose", [b.value(x)], _out(call), {"axes": axes})


def _index_item(item, b: _Builder):
    if item is None:
        return {"newaxis": True}
    if item is Ellipsis:
        return {"ellipsis": True}
    if isinstance(item, slice):
        return {"slice": [None if v is None else int(v) for v in (item.start, item.stop, item.step)]}
    if isinstance(item, (int, np.integer)) and not isinstance(item, bool):
        return {"int": int(item)}
    raise b.fail("indexes with arrays, masks or tensors (advanced indexing); only ints, slices, None and ... "
                 "are supported")


def _getitem(call: Call, b: _Builder) -> None:
    a = _bound(call)
    x, index = a["a"], a["index"]
    items = index if isinstance(index, tuple) else (index,)
    b.node("slice", [b.value(x)], _out(call), {"index": [_index_item(i, b) for i in items]})


def _concat(call: Call, b: _Builder) -> None:
    a = _bound(call)
    out = _out(call)
    b.node("concat", [b.value(t) for t in a["arrays"]], out, {"axis": int(a["axis"]) % len(out.shape)})


def _stack(call: Call, b: _Builder) -> None:
    a = _bound(call)
    out = _out(call)
    axis = int(a["axis"]) % len(out.shape)
    parts = []
    for t in a["arrays"]:
        shape = tuple(t.shape[:axis]) + (1,) + tuple(t.shape[axis:])
        parts.append(b.node("reshape", [b.value(t)], shape).output)
    b.node("concat", parts, out, {"axis": axis})


def _pad(call: Call, b: _Builder) -> None:
    a = _bound(call)
    x, pad_width, value = a["a"], a["pad_width"], a["value"]
    widths = np.broadcast_to(np.asarray(pad_width, dtype=np.int64), (len(x.shape), 2))
    v = _scalar(value)
    if v is None:
        raise b.fail("pads with a tensor value; only a number is supported")
    b.node("pad", [b.value(x)], _out(call), {"widths": [[max(int(lo), 0), max(int(hi), 0)] for lo, hi in widths],
                                             "crops": [[max(-int(lo), 0), max(-int(hi), 0)] for lo, hi in widths],
                                             "value": v})


def _cast(call: Call, b: _Builder) -> None:
    out = _out(call)
    if out.numpy().dtype != np.float32:
        raise b.fail(f"casts to {out.numpy().dtype}; the compiled predictor runs float32 throughout")
    b.node("reshape", [b.value(call.args[0])], out)


def _max_pool(call: Call, b: _Builder) -> None:
    a = _bound(call)
    b.node("max_pool2d", [b.value(a["x"])], _out(call), {
        "kernel": [int(v) for v in a["kernel_size"]], "stride": [int(v) for v in a["stride"]],
        "padding": [int(v) for v in a["padding"]], "dilation": [int(v) for v in a["dilation"]]})
    if len(call.outputs) > 1:
        b.unusable_output(call.outputs[1], "max-pool indices are not computed by the compiled predictor")


def _adaptive_max_pool(call: Call, b: _Builder) -> None:
    b.node("adaptive_max_pool2d", [b.value(_bound(call)["x"])], _out(call))
    if len(call.outputs) > 1:
        b.unusable_output(call.outputs[1], "max-pool indices are not computed by the compiled predictor")


def _avg_pool(call: Call, b: _Builder) -> None:
    a = _bound(call)
    b.node("avg_pool2d", [b.value(a["x"])], _out(call), {
        "kernel": [int(v) for v in a["kernel_size"]], "stride": [int(v) for v in a["stride"]],
        "padding": [int(v) for v in a["padding"]], "count_include_pad": bool(a["count_include_pad"]),
        "divisor": int(a["divisor_override"] or 0)})


def _adaptive_avg_pool(call: Call, b: _Builder) -> None:
    b.node("adaptive_avg_pool2d", [b.value(_bound(call)["x"])], _out(call))


def _gelu(call: Call, b: _Builder) -> None:
    a = _bound(call)
    b.node("act", [b.value(a["x"])], _out(call), act=("gelu_tanh" if a["approximate"] == "tanh" else "gelu", 0.0, 0.0))


def _softplus(call: Call, b: _Builder) -> None:
    a = _bound(call)
    b.node("act", [b.value(a["x"])], _out(call), act=("softplus", float(a["beta"]), float(a["threshold"])))


def _prelu(call: Call, b: _Builder) -> None:
    """x > 0 ? x : a·x as max(x, 0) + a·min(x, 0), a per channel of axis 1 (or one for all)."""
    a = _bound(call)
    x, weight = a["x"], _array(a["weight"])
    out = _out(call)
    shape = tuple(x.shape)
    slope = weight.reshape(-1)
    if slope.size > 1:
        slope = slope.reshape((slope.size,) + (1,) * (len(shape) - 2))
    xv = b.value(x)
    pos = b.node("act", [xv], shape, act=("clamp", 0.0, math.inf)).output
    neg = b.node("act", [xv], shape, act=("clamp", -math.inf, 0.0)).output
    scaled = b.node("binary", [neg, b.const(np.ascontiguousarray(slope, dtype=np.float32))], shape, {"op": "mul"})
    b.node("binary", [pos, scaled.output], out, {"op": "add"})


def _padding(call: Call, b: _Builder) -> None:
    """F.pad: crop, then pad (constant: a pad node; reflect/replicate/circular on the last two
    axes: a gather by per-axis source indices)."""
    a = _bound(call)
    x, widths, crops, mode = a["x"], a["widths"], a["crops"], a["mode"]
    shape = tuple(x.shape)
    widths = [[int(lo), int(hi)] for lo, hi in widths] or [[0, 0]] * len(shape)
    crops = [[int(lo), int(hi)] for lo, hi in crops] or [[0, 0]] * len(shape)
    if mode == "constant":
        v = _scalar(a["value"])
        b.node("pad", [b.value(x)], _out(call), {"widths": widths, "crops": crops, "value": v})
        return
    if any(w != [0, 0] or c != [0, 0] for w, c in list(zip(widths, crops))[:-2]) or len(shape) < 2:
        raise b.fail(f"pads in mode {mode!r} outside the last two axes; only constant padding is supported there")
    numpy_mode = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}[mode]
    tables = []
    for n, (plo, phi), (clo, chi) in zip(shape[-2:], widths[-2:], crops[-2:]):
        tables.append([int(i) for i in np.pad(np.arange(n)[clo:n - chi], (plo, phi), mode=numpy_mode)])
    b.node("interpolate", [b.value(x)], _out(call), {"mode": "nearest", "rows": tables[0], "cols": tables[1]})


def _nearest2d(call: Call, b: _Builder) -> None:
    a = _bound(call)
    x = a["x"]
    rows = [0] if len(x.shape) == 3 else [int(i) for i in np.asarray(a["rows"])]
    b.node("interpolate", [b.value(x)], _out(call), {"mode": "nearest", "rows": rows,
                                                     "cols": [int(i) for i in np.asarray(a["cols"])]})


def _linear2d(call: Call, b: _Builder) -> None:
    a = _bound(call)
    x, rows, cols = a["x"], a["rows"], a["cols"]
    if len(x.shape) == 3:  # 1-d: one row of weight 1
        rows = (np.zeros(1, np.int64), np.zeros(1, np.int64), np.ones(1, np.float32), np.zeros(1, np.float32))
    axis = lambda t: {"i0": [int(i) for i in t[0]], "i1": [int(i) for i in t[1]],
                      "l0": [float(v) for v in np.asarray(t[2], np.float32)],
                      "l1": [float(v) for v in np.asarray(t[3], np.float32)]}
    b.node("interpolate", [b.value(x)], _out(call), {"mode": "linear", "rows": axis(rows), "cols": axis(cols)})


def _expand(call: Call, b: _Builder) -> None:
    b.node("expand", [b.value(call.args[0])], _out(call))


def _split(call: Call, b: _Builder) -> None:
    a = _bound(call)
    x, axis = a["a"], int(a["axis"]) % len(a["a"].shape)
    start = 0
    for out in call.outputs:
        n = out.shape[axis]
        index = [{"slice": [None, None, None]}] * axis + [{"slice": [start, start + n, 1]}]
        b.node("slice", [b.value(x)], out, {"index": index})
        start += n


def _extremum_dim(call: Call, b: _Builder) -> None:
    a = _bound(call)
    x = a["a"]
    b.node("reduce", [b.value(x)], _out(call), {"op": "max" if a["largest"] else "min",
                                                "axes": _axes(a["axis"], len(x.shape)),
                                                "keepdims": bool(a["keepdims"])})
    b.unusable_output(call.outputs[1], "the indices of max/min along a dimension are not computed by the "
                                       "compiled predictor")


def _maximum(op: str) -> Callable:
    def lower(call: Call, b: _Builder) -> None:
        b.node("binary", [b.value(call.args[0]), b.value(call.args[1])], _out(call), {"op": op})
    return lower


def _clamp_tensor(call: Call, b: _Builder) -> None:
    a = _bound(call)
    x, lo, hi = a["a"], a["lo"], a["hi"]
    out = _out(call)
    v = b.value(x)
    if lo is not None:
        node = b.node("binary", [v, b.value(lo)], out if hi is None else tuple(out.shape), {"op": "max"})
        v = node.output
    if hi is not None:
        b.node("binary", [v, b.value(hi)], out, {"op": "min"})
    elif lo is None:
        b.node("reshape", [v], out)


_LOWERINGS: Dict[type, Callable[[Call, _Builder], None]] = {
    Conv2dFunction: _conv2d, ConvTranspose2dFunction: _conv_transpose2d, LinearFunction: _linear,
    N.Normalize: _normalize,
    A.ReLU: _act("clamp", 0.0, math.inf), A.LeakyReLU: _leaky_relu, A.ELU: _elu, A.Sigmoid: _act("sigmoid"),
    A.Tanh: _act("tanh"), A.Softmax: _softmax(False), A.LogSoftmax: _softmax(True),
    P.MaxPool2d: _max_pool, P.AdaptiveMaxPool2d: _adaptive_max_pool, P.AvgPool2d: _avg_pool,
    P.AdaptiveAvgPool2d: _adaptive_avg_pool,
    T.Add: _binary, T.Sub: _binary, T.Mul: _binary, T.Div: _binary, T.Pow: _binary, T.Neg: _neg,
    T.MatMul: _matmul, T.Exp: _act("exp"), T.Log: _act("log"), T.Sqrt: _act("sqrt"), T.Abs: _act("abs"),
    T.Clip: _clip, T.Sum: _reduce("sum"), T.Mean: _reduce("mean"), T.Extremum: _reduce("extremum"),
    T.Reshape: _alias, T.Permute: _permute, T.GetItem: _getitem, T.Concatenate: _concat, T.Stack: _stack,
    T.Pad: _pad, T.Cast: _cast,
}

# Functions defined in modules the core does not import (model zoo layers, fused kernels):
# "module:Class" → lowering, registered when the module is importable.
_OPTIONAL = {
    "fastconv._tensor_ops:Clone": _alias,
    "fastconv._tensor_ops:Expand": _expand,
    "fastconv._tensor_ops:Maximum": _maximum("max"),
    "fastconv._tensor_ops:Minimum": _maximum("min"),
    "fastconv._tensor_ops:ClampTensor": _clamp_tensor,
    "fastconv._tensor_ops:Split": _split,
    "fastconv._index_ops:ExtremumDim": _extremum_dim,
    "fastconv.nn.functional.activation:ReLU6": _act("clamp", 0.0, 6.0),
    "fastconv.nn.functional.activation:SiLU": _act("silu"),
    "fastconv.nn.functional.activation:GELU": _gelu,
    "fastconv.nn.functional.activation:Hardswish": _act("hardswish"),
    "fastconv.nn.functional.activation:Hardsigmoid": _act("hardsigmoid"),
    "fastconv.nn.functional.activation:Hardtanh": _hardtanh,
    "fastconv.nn.functional.activation:Softplus": _softplus,
    "fastconv.nn.functional.activation:Mish": _act("mish"),
    "fastconv.nn.functional.activation:PReLU": _prelu,
    "fastconv.nn.functional.padding:Pad": _padding,
    "fastconv.nn.functional.interpolation:Nearest2d": _nearest2d,
    "fastconv.nn.functional.interpolation:Linear2d": _linear2d,
    "fastconv.nn.functional.fused:BatchNormActivation": _batch_norm_activation,
    "fastconv.nn.functional.fused:AddActivation": _add_activation,
    "fastconv.vision.models._layers:_ReLU6Function": _relu6_like,
}


def lowerings() -> Dict[type, Callable[[Call, _Builder], None]]:
    """Every Function class the predictor handles, with its lowering."""
    table = dict(_LOWERINGS)
    for spec, lower in _OPTIONAL.items():
        module, name = spec.split(":")
        try:
            cls = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            continue
        table[cls] = lower
    return table


def supported_functions() -> List[str]:
    return sorted(cls.__name__ for cls in lowerings())


# ---- building the graph ----------------------------------------------------------------------------

def _flat_outputs(output, b: _Builder) -> Tuple[List[Any], Any]:
    """(output tensors in order, their structure: "tensor" or nested lists of positions)."""
    flat: List[Any] = []

    def walk(o):
        if isinstance(o, Tensor):
            flat.append(o)
            return len(flat) - 1
        if isinstance(o, (tuple, list)):
            return [walk(item) for item in o]
        raise GraphError(f"inference.compile: the model returned {type(o).__name__}; expected a Tensor or a "
                         "tuple/list of Tensors")

    structure = walk(output)
    return flat, ("tensor" if isinstance(output, Tensor) else structure)


def _lower_trace(trace: Trace, known: Dict[int, str], table) -> Graph:
    b = _Builder(trace, known)
    for call in trace.calls:
        b.call = call
        b.arg_nodes = {id(a): n for a, n in zip(call.args, call.arg_nodes) if n is not None}
        lower = table.get(call.function)
        if lower is None:
            raise GraphError(f"inference.compile: {b.where()} is not supported by the compiled predictor "
                             f"(supported operations: {', '.join(supported_functions())})")
        lower(call, b)
        if call.ctx is not None:
            for i, out in enumerate(call.outputs):
                vid = b.by_tensor.get(id(out))
                if vid is not None:
                    b.by_node[(id(call.ctx), i)] = vid
    b.call = None
    outputs, structure = _flat_outputs(trace.output, b)
    for t in outputs:
        vid = b.lookup(t)
        if vid is None:
            vid = b.const(t)
        b.graph.outputs.append(vid)
    b.graph.output_structure = structure
    return b.graph


def _known_arrays(model) -> Dict[int, str]:
    known = {}
    for name, t in list(model.named_parameters()) + list(model.named_buffers()):
        known[id(t.numpy())] = name
    return known


def _merge(g1: Graph, g2: Graph, b1: int, b2: int) -> Graph:
    """g1 with every size fitted against g2 (the same forward at another batch)."""
    if len(g1.nodes) != len(g2.nodes) or any(n1.op != n2.op for n1, n2 in zip(g1.nodes, g2.nodes)):
        for n1, n2 in zip(g1.nodes, g2.nodes):
            if n1.op != n2.op:
                raise GraphError(f"inference.compile: the forward runs {n1.where()} at batch {b1} and {n2.where()} at "
                                 f"batch {b2}; the compiled predictor needs one graph for every batch size")
        raise GraphError(f"inference.compile: the forward makes {len(g1.nodes)} operations at batch {b1} and "
                         f"{len(g2.nodes)} at batch {b2}; the compiled predictor needs one graph for every batch size")
    if g1.values.keys() != g2.values.keys() or g1.outputs != g2.outputs or g1.inputs != g2.inputs:
        raise GraphError("inference.compile: the forward's data flow differs between batch sizes")
    for vid, v1 in g1.values.items():
        v2 = g2.values[vid]
        what = f"the shape of a value in {_producer_where(g1, vid)}"
        if v1.is_const:
            same = v2.is_const and v1.data.shape == v2.data.shape and np.array_equal(v1.data, v2.data, equal_nan=True)
            if not same:
                raise GraphError(f"inference.compile: a constant used by {_user_where(g1, vid)} changes with the batch "
                                 "size; compute it with fastconv operations so it can be compiled")
            continue
        if len(v1.shape) != len(v2.shape):
            raise GraphError(f"inference.compile: {what} has {len(v1.shape)} dimensions at batch {b1} and "
                             f"{len(v2.shape)} at {b2}")
        v1.shape = tuple(fit(int(a), int(b), b1, b2, what) for a, b in zip(v1.shape, v2.shape))
    for n1, n2 in zip(g1.nodes, g2.nodes):
        n1.attrs = fit(n1.attrs, n2.attrs, b1, b2, f"an option of {n1.where()}")
        if n1.act != n2.act or n1.residual != n2.residual or n1.inputs != n2.inputs:
            raise GraphError(f"inference.compile: {n1.where()} differs between batch sizes")
    return g1


def _producer_where(g: Graph, vid: int) -> str:
    node = g.producer().get(vid)
    return node.where() if node else "the inputs"


def _user_where(g: Graph, vid: int) -> str:
    users = g.consumers().get(vid)
    return users[0].where() if users else "the outputs"


def trace_batches(inputs: Sequence[np.ndarray]) -> Tuple[int, int]:
    return 1, 2


def _at_batch(inputs: Sequence[np.ndarray], n: int) -> Tuple[Tensor, ...]:
    """The example inputs cut or repeated to batch n."""
    out = []
    for a in inputs:
        reps = -(-n // a.shape[0])
        out.append(Tensor._wrap(np.ascontiguousarray(np.concatenate([a] * reps, axis=0)[:n])))
    return tuple(out)


def build_graph(model, inputs: Sequence[np.ndarray]) -> Graph:
    """The model's forward as a graph valid at every batch size (traced at batches 1 and 2)."""
    table = lowerings()
    known = _known_arrays(model)
    b1, b2 = trace_batches(inputs)
    graphs = []
    for batch in (b1, b2):
        # no convolution is measured while tracing: the plans measure each path as the
        # executor runs it (the eager op's per-call allocations would bias the choice)
        with planner.heuristic_only():
            trace = record(model, _at_batch(inputs, batch))
        graphs.append(_lower_trace(trace, known, table))
        del trace
    return _merge(graphs[0], graphs[1], b1, b2)
