"""One handler per ONNX operator: the fastconv operations computing it.

A handler receives the module (for ``training`` and the opset), the node (op type, name,
attributes) and its inputs, each a Tensor (differentiable), an ndarray (a constant or a shape
computed at run time) or None (an omitted optional input), and returns its outputs. Shape
arithmetic on ndarrays stays in numpy, so a graph's Shape/Gather/Concat/Reshape chains cost
nothing on the tape; everything reached from the graph input runs through fastconv's Functions
and is differentiable.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np

from ..nn import functional as F
from ..tensor import Tensor, cat, pad as tensor_pad, where
from ._functions import Erf, erf

HANDLERS: Dict[str, Callable] = {}


def handles(*op_types):
    def register(fn):
        for op in op_types:
            HANDLERS[op] = fn
        return fn
    return register


class Node:
    """A graph node with its attributes decoded to Python values."""

    __slots__ = ("op_type", "name", "inputs", "outputs", "attrs")

    def __init__(self, op_type: str, name: str, inputs: Sequence[str], outputs: Sequence[str], attrs: Dict[str, Any]):
        self.op_type, self.name, self.inputs, self.outputs, self.attrs = op_type, name, list(inputs), list(outputs), attrs

    def fail(self, problem: str) -> ValueError:
        return ValueError(f"onnx.load: node '{self.name}' ({self.op_type}): {problem}")


def _is_const(v) -> bool:
    return isinstance(v, np.ndarray)


def _tensor(v) -> Tensor:
    return v if isinstance(v, Tensor) else Tensor._wrap(np.asarray(v))


def _array(v) -> np.ndarray:
    return v.numpy() if isinstance(v, Tensor) else np.asarray(v)


def _ints(v) -> List[int]:
    return [int(i) for i in np.asarray(_array(v)).reshape(-1)]


def _axes(node: Node, inputs, position: int, ndim: int) -> Optional[List[int]]:
    """Axes from the attribute (older opsets) or the input at ``position`` (newer), normalized."""
    axes = node.attrs.get("axes")
    if axes is None and len(inputs) > position and inputs[position] is not None:
        axes = _ints(inputs[position])
    return None if axes is None else [a % ndim for a in axes]


# ---- elementwise ---------------------------------------------------------------------------------

_NUMPY_BINARY = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": None, "Pow": np.power}


@handles("Add", "Sub", "Mul", "Div", "Pow")
def _binary(m, node, inputs):
    a, b = inputs
    op = node.op_type
    if _is_const(a) and _is_const(b):
        if op == "Div":
            return [a // b if a.dtype.kind in "iu" else np.asarray(a / b, dtype=a.dtype)]
        return [np.asarray(_NUMPY_BINARY[op](a, b), dtype=np.result_type(a, b))]
    a, b = _tensor(a), _tensor(b)
    return [{"Add": a.__add__, "Sub": a.__sub__, "Mul": a.__mul__, "Div": a.__truediv__, "Pow": a.__pow__}[op](b)]


@handles("Sum", "Mean", "Max", "Min")
def _variadic(m, node, inputs):
    out = inputs[0]
    for other in inputs[1:]:
        if node.op_type in ("Sum", "Mean"):
            out = out + other if not (_is_const(out) and _is_const(other)) else np.add(out, other)
        else:
            greater = (_array(out) > _array(other)) if node.op_type == "Max" else (_array(out) < _array(other))
            out = np.where(greater, out, other) if _is_const(out) and _is_const(other) else where(greater, _tensor(out), _tensor(other))
    if node.op_type == "Mean":
        out = out / len(inputs)
    return [out]


_UNARY_NUMPY = {"Neg": np.negative, "Sqrt": np.sqrt, "Exp": np.exp, "Log": np.log, "Abs": np.abs,
                "Reciprocal": np.reciprocal, "Floor": np.floor, "Ceil": np.ceil, "Sign": np.sign,
                "Not": np.logical_not}


@handles(*_UNARY_NUMPY)
def _unary(m, node, inputs):
    (x,) = inputs
    if _is_const(x):
        return [np.asarray(_UNARY_NUMPY[node.op_type](x), dtype=x.dtype)]
    if node.op_type == "Neg":
        return [-x]
    if node.op_type == "Reciprocal":
        return [1.0 / x]
    if node.op_type in ("Sqrt", "Exp", "Log", "Abs"):
        return [getattr(x, node.op_type.lower())()]
    raise node.fail("is not differentiable and its input depends on the graph input")


@handles("Equal", "Greater", "Less", "GreaterOrEqual", "LessOrEqual", "And", "Or", "Mod", "Range")
def _numpy_only(m, node, inputs):
    """Comparisons, index arithmetic and ranges: no gradient, computed in numpy."""
    a = [_array(v) for v in inputs]
    op = node.op_type
    if op == "Range":
        return [np.arange(a[0], a[1], a[2]).astype(a[0].dtype)]
    if op == "Mod":
        return [np.fmod(a[0], a[1]) if node.attrs.get("fmod", 0) else np.mod(a[0], a[1])]
    fn = {"Equal": np.equal, "Greater": np.greater, "Less": np.less, "GreaterOrEqual": np.greater_equal,
          "LessOrEqual": np.less_equal, "And": np.logical_and, "Or": np.logical_or}[op]
    return [fn(a[0], a[1])]


@handles("Relu")
def _relu(m, node, inputs):
    return [F.relu(_tensor(inputs[0]))]


@handles("LeakyRelu")
def _leaky_relu(m, node, inputs):
    return [F.leaky_relu(_tensor(inputs[0]), node.attrs.get("alpha", 0.01))]


@handles("Elu")
def _elu(m, node, inputs):
    return [F.elu(_tensor(inputs[0]), node.attrs.get("alpha", 1.0))]


@handles("Sigmoid")
def _sigmoid(m, node, inputs):
    return [F.sigmoid(_tensor(inputs[0]))]


@handles("Tanh")
def _tanh(m, node, inputs):
    return [F.tanh(_tensor(inputs[0]))]


@handles("Softmax", "LogSoftmax")
def _softmax(m, node, inputs):
    x = _tensor(inputs[0])
    fn = F.softmax if node.op_type == "Softmax" else F.log_softmax
    if m.opset >= 13:
        return [fn(x, dim=node.attrs.get("axis", -1))]
    axis = node.attrs.get("axis", 1) % x.ndim  # before opset 13: over the flattened trailing axes
    flat = x.reshape(int(np.prod(x.shape[:axis])), -1)
    return [fn(flat, dim=1).reshape(x.shape)]


def _bound(node, inputs, position, attr):
    if len(inputs) > position and inputs[position] is not None:
        return float(_array(inputs[position]))
    return node.attrs.get(attr)


@handles("Clip")
def _clip(m, node, inputs):
    lo, hi = _bound(node, inputs, 1, "min"), _bound(node, inputs, 2, "max")
    x = inputs[0]
    if _is_const(x):
        return [np.clip(x, lo, hi)]
    if lo == 0.0 and hi == 6.0:
        return [F.relu6(x)]
    return [x.clip(lo, hi)]


@handles("HardSigmoid", "HardSwish")
def _hard(m, node, inputs):
    x = _tensor(inputs[0])
    if node.op_type == "HardSwish":
        return [F.hardswish(x)]
    alpha, beta = node.attrs.get("alpha", 0.2), node.attrs.get("beta", 0.5)
    if np.float32(alpha) == np.float32(1.0 / 6.0) and beta == 0.5:
        return [F.hardsigmoid(x)]
    return [(x * alpha + beta).clip(0.0, 1.0)]


@handles("Softplus")
def _softplus(m, node, inputs):
    return [F.softplus(_tensor(inputs[0]))]


@handles("Mish")
def _mish(m, node, inputs):
    return [F.mish(_tensor(inputs[0]))]


@handles("PRelu")
def _prelu(m, node, inputs):
    x, slope = _tensor(inputs[0]), _tensor(inputs[1])
    s = tuple(slope.shape)
    channels = x.shape[1] if x.ndim >= 2 else None
    if slope.numel() == 1:
        return [F.prelu(x, slope.reshape(1))]
    if channels is not None and slope.numel() == channels and len(s) == x.ndim - 1 and s[0] == channels:
        return [F.prelu(x, slope.reshape(channels))]  # (C, 1, ..., 1): one slope per channel
    return [F.relu(x) - slope * F.relu(-x)]


@handles("Erf")
def _erf(m, node, inputs):
    x = inputs[0]
    if _is_const(x):
        return [erf(x)]
    return [Erf.apply(x)]


@handles("Gelu")
def _gelu(m, node, inputs):
    return [F.gelu(_tensor(inputs[0]), approximate=node.attrs.get("approximate", "none"))]


# ---- linear algebra --------------------------------------------------------------------------------

@handles("Gemm")
def _gemm(m, node, inputs):
    a, b = _tensor(inputs[0]), _tensor(inputs[1])
    c = inputs[2] if len(inputs) > 2 else None
    attrs = node.attrs
    if attrs.get("transA", 0):
        a = a.transpose(0, 1)
    alpha, beta = attrs.get("alpha", 1.0), attrs.get("beta", 1.0)
    weight = b if attrs.get("transB", 0) else b.transpose(0, 1)  # linear's (out, in) layout
    bias = None
    if c is not None and beta == 1.0 and tuple(_array(c).shape) in ((weight.shape[0],), (1, weight.shape[0])):
        bias = _tensor(c).reshape(weight.shape[0]) if _array(c).ndim == 2 else _tensor(c)
        c = None
    y = F.linear(a, weight, bias)
    if alpha != 1.0:
        y = y * alpha
    if c is not None:
        y = y + _tensor(c) * beta
    return [y]


@handles("MatMul")
def _matmul(m, node, inputs):
    a, b = inputs
    if _is_const(a) and _is_const(b):
        return [np.matmul(a, b)]
    return [_tensor(a) @ _tensor(b)]


# ---- convolution and pooling -------------------------------------------------------------------------

def _spatial(node: Node, x, name: str, default) -> List[int]:
    value = node.attrs.get(name)
    return list(value) if value is not None else [default] * 2


def _require_2d(node: Node, x) -> None:
    if _array(x).ndim != 4:
        raise node.fail(f"only 2-D (N, C, H, W) inputs are supported, got shape {tuple(_array(x).shape)}")


def _auto_pads(node: Node, sizes, kernels, strides, dilations) -> Optional[List[int]]:
    """Explicit [top, left, bottom, right] pads for auto_pad SAME_UPPER/SAME_LOWER/VALID."""
    mode = node.attrs.get("auto_pad", "NOTSET")
    if mode in ("NOTSET", ""):
        return None
    if mode == "VALID":
        return [0, 0, 0, 0]
    begin, end = [], []
    for n, k, s, d in zip(sizes, kernels, strides, dilations):
        out = -(-n // s)
        total = max(0, (out - 1) * s + d * (k - 1) + 1 - n)
        small, large = total // 2, total - total // 2
        begin.append(small if mode == "SAME_UPPER" else large)
        end.append(large if mode == "SAME_UPPER" else small)
    return begin + end


def _pads(node: Node, x, kernels, strides, dilations) -> List[int]:
    pads = _auto_pads(node, _array(x).shape[2:], kernels, strides, dilations)
    return pads if pads is not None else list(node.attrs.get("pads", [0, 0, 0, 0]))


@handles("Conv")
def _conv(m, node, inputs):
    x, w = _tensor(inputs[0]), _tensor(inputs[1])
    b = inputs[2] if len(inputs) > 2 else None
    _require_2d(node, x)
    kernels = list(node.attrs.get("kernel_shape", w.shape[2:]))
    strides, dilations = _spatial(node, x, "strides", 1), _spatial(node, x, "dilations", 1)
    pads = _pads(node, x, kernels, strides, dilations)
    if pads[:2] != pads[2:]:
        x = tensor_pad(x, ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])))
        pads = [0, 0, 0, 0]
    return [F.conv2d(x, w, None if b is None else _tensor(b), stride=tuple(strides), padding=tuple(pads[:2]),
                     dilation=tuple(dilations), groups=node.attrs.get("group", 1))]


@handles("ConvTranspose")
def _conv_transpose(m, node, inputs):
    x, w = _tensor(inputs[0]), _tensor(inputs[1])
    b = inputs[2] if len(inputs) > 2 else None
    _require_2d(node, x)
    kernels = list(node.attrs.get("kernel_shape", w.shape[2:]))
    strides, dilations = _spatial(node, x, "strides", 1), _spatial(node, x, "dilations", 1)
    out_pad = _spatial(node, x, "output_padding", 0)
    full = [s * (n - 1) + op + d * (k - 1) + 1
            for n, s, op, d, k in zip(x.shape[2:], strides, out_pad, dilations, kernels)]
    if "output_shape" in node.attrs:
        wanted = list(node.attrs["output_shape"])[-2:]
        total = [f - o for f, o in zip(full, wanted)]
        upper = node.attrs.get("auto_pad", "NOTSET") == "SAME_UPPER"
        pads = [t // 2 if upper else t - t // 2 for t in total] + [t - t // 2 if upper else t // 2 for t in total]
    else:
        pads = list(node.attrs.get("pads", [0, 0, 0, 0]))
        if node.attrs.get("auto_pad", "NOTSET") in ("SAME_UPPER", "SAME_LOWER"):
            total = [f - n * s for f, n, s in zip(full, x.shape[2:], strides)]
            upper = node.attrs["auto_pad"] == "SAME_UPPER"
            pads = [t // 2 if upper else t - t // 2 for t in total] + [t - t // 2 if upper else t // 2 for t in total]
    group = node.attrs.get("group", 1)
    bias = None if b is None else _tensor(b)
    if any(op >= max(s, d) for op, s, d in zip(out_pad, strides, dilations)):
        raise node.fail(f"output_padding {out_pad} must be smaller than the stride {strides} or dilation {dilations}")
    if any(p < 0 for p in pads):
        raise node.fail(f"negative pads {pads} (an output larger than the full transposed convolution) "
                        "are not supported")
    if pads[:2] == pads[2:]:
        return [F.conv_transpose2d(x, w, bias, stride=tuple(strides), padding=tuple(pads[:2]),
                                   output_padding=tuple(out_pad), groups=group, dilation=tuple(dilations))]
    full_y = F.conv_transpose2d(x, w, bias, stride=tuple(strides), padding=0, output_padding=tuple(out_pad),
                                groups=group, dilation=tuple(dilations))
    return [full_y[:, :, pads[0]:full[0] - pads[2], pads[1]:full[1] - pads[3]]]


def _pool_geometry(node: Node, x):
    kernels = list(node.attrs["kernel_shape"])
    strides, dilations = _spatial(node, x, "strides", 1), _spatial(node, x, "dilations", 1)
    pads = _pads(node, x, kernels, strides, dilations)
    return kernels, strides, dilations, pads


def _onnx_pool_size(n, k, s, d, begin, end, ceil_mode) -> int:
    span = n + begin + end - d * (k - 1) - 1
    if not ceil_mode:
        return span // s + 1
    out = -(-span // s) + 1
    if (out - 1) * s >= n + begin:  # a last window starting in the end padding is dropped
        out -= 1
    return out


def _explicit_end(sizes, kernels, strides, dilations, pads, ceil_mode):
    outs = [_onnx_pool_size(n, k, s, d, pads[i], pads[i + 2], ceil_mode)
            for i, (n, k, s, d) in enumerate(zip(sizes, kernels, strides, dilations))]
    return [max(0, (o - 1) * s + d * (k - 1) + 1 - n - pads[i])
            for i, (o, n, k, s, d) in enumerate(zip(outs, sizes, kernels, strides, dilations))]


@handles("MaxPool")
def _max_pool(m, node, inputs):
    x = _tensor(inputs[0])
    _require_2d(node, x)
    kernels, strides, dilations, pads = _pool_geometry(node, x)
    ceil_mode = bool(node.attrs.get("ceil_mode", 0))
    want_indices = len(node.outputs) > 1 and node.outputs[1]
    direct = pads[:2] == pads[2:] and all(p <= k // 2 for p, k in zip(pads[:2], kernels))
    if direct:
        out = F.max_pool2d(x, tuple(kernels), tuple(strides), tuple(pads[:2]), tuple(dilations), ceil_mode,
                           return_indices=bool(want_indices))
        if not want_indices:
            return [out]
        y, idx = out
        plane = x.shape[2] * x.shape[3]
        offsets = np.arange(x.shape[0] * x.shape[1], dtype=np.int64).reshape(x.shape[0], x.shape[1], 1, 1) * plane
        return [y, _array(idx) + offsets]  # ONNX numbers positions over the whole tensor
    if want_indices:
        raise node.fail("indices of a max pool with asymmetric or large padding are not supported")
    end = _explicit_end(x.shape[2:], kernels, strides, dilations, pads, ceil_mode)
    x = tensor_pad(x, ((0, 0), (0, 0), (pads[0], end[0]), (pads[1], end[1])), value=-np.inf)
    return [F.max_pool2d(x, tuple(kernels), tuple(strides), 0, tuple(dilations))]


@handles("AveragePool")
def _avg_pool(m, node, inputs):
    x = _tensor(inputs[0])
    _require_2d(node, x)
    kernels, strides, dilations, pads = _pool_geometry(node, x)
    if dilations != [1, 1]:
        raise node.fail(f"dilated average pooling is not supported (dilations {dilations})")
    ceil_mode = bool(node.attrs.get("ceil_mode", 0))
    include = bool(node.attrs.get("count_include_pad", 0))
    if pads[:2] == pads[2:] and all(p <= k // 2 for p, k in zip(pads[:2], kernels)):
        return [F.avg_pool2d(x, tuple(kernels), tuple(strides), tuple(pads[:2]), ceil_mode, include)]
    # general padding: window sums over a zero-padded input, divided by each window's count
    end = _explicit_end(x.shape[2:], kernels, strides, [1, 1], pads, ceil_mode)
    widths = ((0, 0), (0, 0), (pads[0], end[0]), (pads[1], end[1]))
    area = float(kernels[0] * kernels[1])
    sums = F.avg_pool2d(tensor_pad(x, widths), tuple(kernels), tuple(strides)) * area
    ones = np.zeros((1, 1) + tuple(x.shape[2:]), dtype=x.numpy().dtype) + 1
    if include:  # the declared padding counts, the extension beyond it does not
        ones = np.pad(ones, ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])), constant_values=1)
        counted = np.pad(ones, ((0, 0), (0, 0), (0, end[0] - pads[2] if end[0] > pads[2] else 0),
                                (0, end[1] - pads[3] if end[1] > pads[3] else 0)))
        counted = counted[:, :, :x.shape[2] + pads[0] + end[0], :x.shape[3] + pads[1] + end[1]]
    else:
        counted = np.pad(ones, widths)
    counts = F.avg_pool2d(Tensor._wrap(counted), tuple(kernels), tuple(strides)).numpy() * area
    return [sums / Tensor._wrap(counts)]


@handles("GlobalAveragePool", "GlobalMaxPool")
def _global_pool(m, node, inputs):
    x = _tensor(inputs[0])
    _require_2d(node, x)
    return [F.adaptive_avg_pool2d(x, 1) if node.op_type == "GlobalAveragePool" else F.adaptive_max_pool2d(x, 1)]


@handles("MaxUnpool")
def _max_unpool(m, node, inputs):
    x = _tensor(inputs[0])
    _require_2d(node, x)
    kernels = list(node.attrs["kernel_shape"])
    strides = _spatial(node, x, "strides", 1)
    pads = list(node.attrs.get("pads", [0, 0, 0, 0]))
    if len(inputs) > 2 and inputs[2] is not None:
        out_hw = tuple(_ints(inputs[2])[-2:])
    else:
        out_hw = tuple((n - 1) * s + k - pads[i] - pads[i + 2]
                       for i, (n, s, k) in enumerate(zip(x.shape[2:], strides, kernels)))
    plane = out_hw[0] * out_hw[1]
    per_plane = np.mod(_array(inputs[1]).astype(np.int64), plane)
    return [F.max_unpool2d(x, per_plane, tuple(kernels), tuple(strides), 0, output_size=out_hw)]


# ---- normalization ---------------------------------------------------------------------------------

@handles("BatchNormalization")
def _batch_norm(m, node, inputs):
    x, scale, bias, mean, var = inputs[:5]
    if len([o for o in node.outputs if o]) > 1:
        raise node.fail("the running-statistics outputs of training-mode BatchNormalization are not supported")
    training = m.training
    return [F.batch_norm(_tensor(x), mean, var, scale, bias, training=training,
                         momentum=1.0 - node.attrs.get("momentum", 0.9), eps=node.attrs.get("epsilon", 1e-5))]


@handles("InstanceNormalization")
def _instance_norm(m, node, inputs):
    x, scale, bias = inputs
    return [F.instance_norm(_tensor(x), weight=scale, bias=bias, eps=node.attrs.get("epsilon", 1e-5))]


@handles("LayerNormalization")
def _layer_norm(m, node, inputs):
    x = _tensor(inputs[0])
    scale = inputs[1]
    bias = inputs[2] if len(inputs) > 2 else None
    if len([o for o in node.outputs if o]) > 1:
        raise node.fail("the Mean and InvStdDev outputs are not supported")
    axis = node.attrs.get("axis", -1) % x.ndim
    shape = tuple(x.shape[axis:])
    exact = tuple(_array(scale).shape) == shape and (bias is None or tuple(_array(bias).shape) == shape)
    eps = node.attrs.get("epsilon", 1e-5)
    if exact:
        return [F.layer_norm(x, shape, scale, bias, eps)]
    y = F.layer_norm(x, shape, None, None, eps) * _tensor(scale)
    return [y if bias is None else y + _tensor(bias)]


@handles("GroupNormalization")
def _group_norm(m, node, inputs):
    x, scale, bias = _tensor(inputs[0]), inputs[1], inputs[2]
    groups = node.attrs["num_groups"]
    eps = node.attrs.get("epsilon", 1e-5)
    channels = x.shape[1]
    if tuple(_array(scale).shape) == (channels,):
        return [F.group_norm(x, groups, scale, bias, eps)]
    # opset 18: one scale and bias per group, repeated over the group's channels
    per = channels // groups
    expand = Tensor._wrap(np.ones((1, per), dtype=x.numpy().dtype))
    view = (1, channels) + (1,) * (x.ndim - 2)
    s = (_tensor(scale).reshape(groups, 1) * expand).reshape(*view)
    b = (_tensor(bias).reshape(groups, 1) * expand).reshape(*view)
    return [F.group_norm(x, groups, None, None, eps) * s + b]


@handles("Dropout")
def _dropout(m, node, inputs):
    x = inputs[0]
    ratio = float(_array(inputs[1])) if len(inputs) > 1 and inputs[1] is not None else node.attrs.get("ratio", 0.5)
    if len([o for o in node.outputs if o]) > 1:
        raise node.fail("the mask output is not supported")
    return [F.dropout(_tensor(x), ratio, training=m.training) if not _is_const(x) else x]


# ---- shapes ----------------------------------------------------------------------------------------

@handles("Identity")
def _identity(m, node, inputs):
    return [inputs[0]]


@handles("Flatten")
def _flatten(m, node, inputs):
    x = inputs[0]
    shape = _array(x).shape
    axis = node.attrs.get("axis", 1) % (len(shape) + 1) if shape else 0
    new = (int(np.prod(shape[:axis])), int(np.prod(shape[axis:])))
    return [x.reshape(new)]


@handles("Reshape")
def _reshape(m, node, inputs):
    x, shape = inputs[0], _ints(inputs[1])
    current = _array(x).shape
    if not node.attrs.get("allowzero", 0):
        shape = [current[i] if s == 0 else s for i, s in enumerate(shape)]
    return [x.reshape(tuple(shape))]


@handles("Transpose")
def _transpose(m, node, inputs):
    x = inputs[0]
    perm = node.attrs.get("perm") or list(range(_array(x).ndim))[::-1]
    return [np.transpose(x, perm) if _is_const(x) else x.permute(*perm)]


@handles("Squeeze", "Unsqueeze")
def _squeeze(m, node, inputs):
    x = inputs[0]
    shape = list(_array(x).shape)
    if node.op_type == "Squeeze":
        axes = _axes(node, inputs, 1, len(shape))
        new = [n for i, n in enumerate(shape) if not (n == 1 and (axes is None or i in axes))]
    else:
        axes = _axes(node, inputs, 1, len(shape) + len(_ints(inputs[1]) if len(inputs) > 1 else node.attrs["axes"]))
        new = list(shape)
        for a in sorted(axes):
            new.insert(a, 1)
    return [x.reshape(tuple(new))]


@handles("Concat")
def _concat(m, node, inputs):
    axis = node.attrs["axis"]
    parts = [v for v in inputs if v is not None]
    if all(_is_const(v) for v in parts):
        return [np.concatenate(parts, axis=axis)]
    return [cat([_tensor(v) for v in parts], dim=axis)]


@handles("Split")
def _split(m, node, inputs):
    x = inputs[0]
    shape = _array(x).shape
    axis = node.attrs.get("axis", 0) % len(shape)
    sizes = node.attrs.get("split")
    if sizes is None and len(inputs) > 1 and inputs[1] is not None:
        sizes = _ints(inputs[1])
    if sizes is None:
        count = node.attrs.get("num_outputs", len(node.outputs))
        step = -(-shape[axis] // count)
        sizes = [min(step, shape[axis] - i * step) for i in range(count)]
    out, start = [], 0
    for size in sizes:
        index = (slice(None),) * axis + (slice(start, start + size),)
        out.append(x[index])
        start += size
    return out


@handles("Slice")
def _slice(m, node, inputs):
    x = inputs[0]
    ndim = _array(x).ndim
    if "starts" in node.attrs:  # opset < 10
        starts, ends = node.attrs["starts"], node.attrs["ends"]
        axes, steps = node.attrs.get("axes", list(range(len(starts)))), [1] * len(starts)
    else:
        starts, ends = _ints(inputs[1]), _ints(inputs[2])
        axes = _ints(inputs[3]) if len(inputs) > 3 and inputs[3] is not None else list(range(len(starts)))
        steps = _ints(inputs[4]) if len(inputs) > 4 and inputs[4] is not None else [1] * len(starts)
    index = [slice(None)] * ndim
    big = np.iinfo(np.int64).max // 2
    for s, e, a, st in zip(starts, ends, axes, steps):
        e = None if (e >= big and st > 0) or (e <= -big and st < 0) else e
        index[a % ndim] = slice(s, e, st)
    return [x[tuple(index)]]


@handles("Gather")
def _gather(m, node, inputs):
    x, idx = inputs
    axis = node.attrs.get("axis", 0)
    idx = _array(idx).astype(np.int64)
    if _is_const(x):
        return [np.take(x, idx, axis=axis)]
    index = (slice(None),) * (axis % x.ndim) + ((int(idx) if idx.ndim == 0 else idx),)
    return [x[index]]


@handles("Shape")
def _shape(m, node, inputs):
    shape = np.array(_array(inputs[0]).shape, dtype=np.int64)
    start, end = node.attrs.get("start", 0), node.attrs.get("end")
    return [shape[start:end]]


@handles("Size")
def _size(m, node, inputs):
    return [np.array(_array(inputs[0]).size, dtype=np.int64)]


@handles("ConstantOfShape")
def _constant_of_shape(m, node, inputs):
    value = node.attrs.get("value")
    value = np.zeros(1, dtype=np.float32) if value is None else value
    return [np.full(_ints(inputs[0]), value.reshape(-1)[0], dtype=value.dtype)]


@handles("Expand")
def _expand(m, node, inputs):
    x, shape = inputs[0], _ints(inputs[1])
    target = np.broadcast_shapes(_array(x).shape, tuple(shape))
    if _is_const(x):
        return [np.array(np.broadcast_to(x, target))]
    return [x + Tensor._wrap(np.zeros(target, dtype=x.numpy().dtype))]


@handles("Where")
def _where(m, node, inputs):
    cond, a, b = inputs
    if _is_const(a) and _is_const(b):
        return [np.where(_array(cond), a, b)]
    return [where(_array(cond), _tensor(a), _tensor(b))]


@handles("Cast")
def _cast(m, node, inputs):
    import onnx

    return [inputs[0].astype(onnx.helper.tensor_dtype_to_np_dtype(node.attrs["to"]))]


@handles("Pad")
def _pad(m, node, inputs):
    x = inputs[0]
    ndim = _array(x).ndim
    mode = node.attrs.get("mode", "constant")
    pads = node.attrs.get("pads") if "pads" in node.attrs else _ints(inputs[1])
    value = node.attrs.get("value", 0.0)
    if len(inputs) > 2 and inputs[2] is not None and np.size(_array(inputs[2])):
        value = float(_array(inputs[2]))
    axes = _ints(inputs[3]) if len(inputs) > 3 and inputs[3] is not None else list(range(ndim))
    widths = [[0, 0] for _ in range(ndim)]
    for i, a in enumerate(axes):
        widths[a % ndim] = [pads[i], pads[i + len(axes)]]
    if any(w < 0 for pair in widths for w in pair):
        raise node.fail(f"negative pads {pads} are not supported")
    if mode == "constant":
        if _is_const(x):
            return [np.pad(x, widths, constant_values=value)]
        return [tensor_pad(x, widths, value=value)]
    modes = {"reflect": "reflect", "edge": "replicate", "wrap": "circular"}
    if mode not in modes:
        raise node.fail(f"Pad mode {mode!r} is not supported")
    if _is_const(x):
        return [np.pad(x, widths, mode={"reflect": "reflect", "edge": "edge", "wrap": "wrap"}[mode])]
    padded = [a for a in range(ndim) if widths[a] != [0, 0]]
    first = padded[0] if padded else ndim
    flat = [w for a in range(ndim - 1, first - 1, -1) for w in widths[a]]  # torch's order: last axis first
    return [F.pad(x, tuple(flat), mode=modes[mode])]


@handles("ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin")
def _reduce(m, node, inputs):
    x = inputs[0]
    ndim = _array(x).ndim
    axes = _axes(node, inputs, 1, ndim)
    keep = bool(node.attrs.get("keepdims", 1))
    if axes is None or axes == []:
        if node.attrs.get("noop_with_empty_axes", 0):
            return [x]
        axes = list(range(ndim))
    name = {"ReduceMean": "mean", "ReduceSum": "sum", "ReduceMax": "max", "ReduceMin": "min"}[node.op_type]
    if _is_const(x):
        return [getattr(np, name if name in ("mean", "sum") else "a" + name)(x, axis=tuple(axes), keepdims=keep)]
    return [getattr(x, name)(tuple(axes), keep)]


# ---- resizing ----------------------------------------------------------------------------------------

def _source_positions(mode: str, out_len: int, in_len: int, scale: float) -> np.ndarray:
    """ONNX Resize's coordinate_transformation_mode: the input coordinate of every output pixel."""
    x = np.arange(out_len, dtype=np.float64)
    if mode == "half_pixel":
        return (x + 0.5) / scale - 0.5
    if mode == "pytorch_half_pixel":
        return (x + 0.5) / scale - 0.5 if out_len > 1 else np.zeros(out_len)
    if mode == "align_corners":
        return x * (in_len - 1) / (out_len - 1) if out_len > 1 else np.zeros(out_len)
    if mode == "asymmetric":
        return x / scale
    if mode == "tf_half_pixel_for_nn":
        return (x + 0.5) / scale
    if mode == "half_pixel_symmetric":
        adjustment = out_len / (in_len * scale)
        center = in_len / 2
        return center * (1 - adjustment) + (x + 0.5) / scale - 0.5
    raise ValueError(mode)


def _nearest_index(position: np.ndarray, rule: str, in_len: int) -> np.ndarray:
    frac = position - np.floor(position)
    if rule == "floor":
        index = np.floor(position)
    elif rule == "ceil":
        index = np.ceil(position)
    elif rule == "round_prefer_ceil":
        index = np.where(frac == 0.5, np.ceil(position), np.round(position))
    else:  # round_prefer_floor, the default
        index = np.where(frac == 0.5, np.floor(position), np.round(position))
    return np.clip(index, 0, in_len - 1).astype(np.int64)


def _resample_axis(x, axis: int, in_len: int, out_len: int, scale: float, mode: str, transform: str,
                   rule: str):
    """x resampled along ``axis`` by differentiable gathers (and a weighted sum for linear)."""
    lead = (slice(None),) * axis
    position = _source_positions(transform, out_len, in_len, scale)
    if mode == "nearest":
        return x[lead + (_nearest_index(position, rule, in_len),)]
    position = np.clip(position, 0, in_len - 1)
    i0 = np.floor(position).astype(np.int64)
    i1 = np.minimum(i0 + 1, in_len - 1)
    dtype = _array(x).dtype
    w1 = (position - i0).astype(dtype)
    shape = (out_len,) + (1,) * (_array(x).ndim - axis - 1)
    w0 = Tensor._wrap((1 - w1).reshape(shape))
    return x[lead + (i0,)] * w0 + x[lead + (i1,)] * Tensor._wrap(w1.reshape(shape))


@handles("Resize", "Upsample")
def _resize(m, node, inputs):
    x = _tensor(inputs[0])
    shape = x.shape
    attrs = node.attrs
    mode = attrs.get("mode", "nearest")
    if mode not in ("nearest", "linear", "bilinear"):
        raise node.fail(f"mode {mode!r} is not supported (nearest and linear are)")
    mode = "linear" if mode == "bilinear" else mode
    if attrs.get("antialias", 0):
        raise node.fail("antialias=1 is not supported")
    if node.op_type == "Upsample":
        scales = attrs.get("scales") or _array(inputs[1]).astype(np.float64).tolist()
        sizes = None
        transform, rule = "asymmetric", "floor"
    else:
        transform = attrs.get("coordinate_transformation_mode", "half_pixel")
        rule = attrs.get("nearest_mode", "round_prefer_floor")
        if transform == "tf_crop_and_resize":
            raise node.fail("coordinate_transformation_mode 'tf_crop_and_resize' is not supported")
        if attrs.get("axes") is not None or attrs.get("keep_aspect_ratio_policy", "stretch") != "stretch":
            raise node.fail("the axes and keep_aspect_ratio_policy attributes are not supported")
        scales = _array(inputs[2]).astype(np.float64).tolist() if len(inputs) > 2 and inputs[2] is not None \
            and np.size(_array(inputs[2])) else None
        sizes = _ints(inputs[3]) if len(inputs) > 3 and inputs[3] is not None and np.size(_array(inputs[3])) else None
    if scales is None and sizes is None:
        raise node.fail("neither scales nor sizes is given")
    if sizes is None:
        sizes = [int(np.floor(n * s)) for n, s in zip(shape, scales)]
    else:
        scales = [o / n for o, n in zip(sizes, shape)]
    y = x
    for axis in range(len(shape)):
        if sizes[axis] == shape[axis] and scales[axis] == 1.0:
            continue
        if axis < len(shape) - 2:
            raise node.fail(f"resizing axis {axis} (batch or channels) is not supported")
        y = _resample_axis(y, axis, shape[axis], sizes[axis], scales[axis], mode, transform, rule)
    return [y]
