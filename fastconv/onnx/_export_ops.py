"""One emitter per Function class: the ONNX nodes computing what that call computed.

Emitters read the call's options as the kernels received them (a conv's ConvGeometry, a pool's
window, a norm's statistics layout) and write nodes whose output equals fastconv's, including
PyTorch's edge rules: ceil-mode windows and clipped average-pool divisors are expressed with
explicit end padding instead of ONNX's ``ceil_mode`` (whose last-window rule differs between
runtimes), max-pool indices are made per plane as PyTorch's, and batch-sized reshapes use -1.
"""
from __future__ import annotations

from typing import Callable, Dict, List, Sequence

import numpy as np

from .. import _index_ops as index_ops
from .. import _tensor_ops as ops
from ..nn.functional import activation as act
from ..nn.functional.dropout import Dropout, Dropout2d
from ..nn.functional.linear import LinearFunction
from ..nn.functional import fused, interpolation
from ..nn.functional import normalization as norm
from ..nn.functional import padding
from ..nn.functional import pooling as pool
from ..nn.functional.conv import Conv2dFunction, ConvTranspose2dFunction
from ..tensor import Tensor
from ._functions import Erf
from ._graph import INT64_MAX, INT64_MIN, Emit, array_of

EMITTERS: Dict[type, Callable[[Emit], None]] = {}


def emits(*functions):
    def register(fn):
        for function in functions:
            EMITTERS[function] = fn
        return fn
    return register


def onnx_dtype(onnx, dtype) -> int:
    return onnx.helper.np_dtype_to_tensor_dtype(np.dtype(dtype))


def _operand(e: Emit, i: int) -> str:
    """Argument ``i`` in the output's dtype (numbers and constants converted, traced values cast)."""
    obj = e.call.args[i]
    if obj is None or not isinstance(obj, (Tensor, np.ndarray)):
        return e.value(i)
    name = e.value(i)
    if array_of(obj).dtype != e.dtype:
        name = e.one("Cast", [name], to=onnx_dtype(e.g.onnx, e.dtype))
    return name


# ---- elementwise -----------------------------------------------------------------------------------

_BINARY = {ops.Add: "Add", ops.Sub: "Sub", ops.Mul: "Mul", ops.Div: "Div", ops.Pow: "Pow"}
_UNARY = {ops.Neg: "Neg", ops.Exp: "Exp", ops.Log: "Log", ops.Sqrt: "Sqrt", ops.Abs: "Abs",
          act.ReLU: "Relu", act.Sigmoid: "Sigmoid", act.Tanh: "Tanh", Erf: "Erf"}


@emits(*_BINARY)
def _binary(e: Emit) -> None:
    e.bind(e.one(_BINARY[e.call.function], [_operand(e, 0), _operand(e, 1)]))


@emits(*_UNARY)
def _unary(e: Emit) -> None:
    e.bind(e.one(_UNARY[e.call.function], [e.value(0)]))


@emits(act.LeakyReLU)
def _leaky_relu(e: Emit) -> None:
    e.bind(e.one("LeakyRelu", [e.value(0)], alpha=float(e.kw.get("slope", 0.01))))


@emits(act.ELU)
def _elu(e: Emit) -> None:
    e.bind(e.one("Elu", [e.value(0)], alpha=float(e.kw.get("alpha", 1.0))))


@emits(act.Softmax, act.LogSoftmax)
def _softmax(e: Emit) -> None:
    op = "Softmax" if e.call.function is act.Softmax else "LogSoftmax"
    e.bind(e.one(op, [e.value(0)], axis=int(e.kw.get("axis", -1))))


@emits(ops.Clip)
def _clip(e: Emit) -> None:
    bounds = ["" if e.kw.get(k) is None else e.scalar(e.kw[k]) for k in ("lo", "hi")]
    e.bind(e.one("Clip", [e.value(0)] + bounds))


@emits(ops.Cast)
def _cast(e: Emit) -> None:
    e.bind(e.one("Cast", [e.value(0)], to=onnx_dtype(e.g.onnx, e.dtype)))


@emits(ops.Where)
def _where(e: Emit) -> None:
    cond = e.value(0)
    if array_of(e.call.args[0]).dtype != np.bool_:
        cond = e.one("Cast", [cond], to=onnx_dtype(e.g.onnx, np.bool_))
    e.bind(e.one("Where", [cond, _operand(e, 1), _operand(e, 2)]))


@emits(ops.MatMul)
def _matmul(e: Emit) -> None:
    e.bind(e.one("MatMul", [_operand(e, 0), _operand(e, 1)]))


# ---- reductions ------------------------------------------------------------------------------------

@emits(ops.Sum, ops.Mean, ops.Extremum)
def _reduction(e: Emit) -> None:
    if e.call.function is ops.Extremum:
        op = "ReduceMax" if e.kw.get("largest", True) else "ReduceMin"
    else:
        op = "ReduceSum" if e.call.function is ops.Sum else "ReduceMean"
    axes = e.kw.get("axis")
    e.bind(e.reduce(op, e.value(0), None if axes is None else list(axes), bool(e.kw.get("keepdims", False))))


@emits(ops.Var)
def _var(e: Emit) -> None:
    x, axes, ddof = e.value(0), e.kw.get("axis"), e.kw.get("ddof", 0)
    shape = e.shape(0)
    axes = list(range(len(shape))) if axes is None else list(axes)
    mean = e.reduce("ReduceMean", x, axes, True)
    centered = e.one("Sub", [x, mean])
    out = e.reduce("ReduceMean", e.one("Mul", [centered, centered]), axes, bool(e.kw.get("keepdims", False)))
    if ddof:
        if e.other is not None and any(shape[a] != e.other.args[0].shape[a] for a in axes):
            raise e.fail("a variance with ddof over the batch axis cannot be exported with dynamic_batch=True")
        count = int(np.prod([shape[a] for a in axes]))
        out = e.one("Mul", [out, e.scalar(count / max(count - ddof, 0) if count > ddof else np.inf)])
    e.bind(out)


# ---- shapes ----------------------------------------------------------------------------------------

@emits(ops.Reshape)
def _reshape(e: Emit) -> None:
    x, out_shape = e.value(0), e.out_shape()
    axis = _flatten_axis(e)
    if axis is not None:  # (rows, features): ONNX Flatten, free of the batch size by construction
        e.bind(e.one("Flatten", [x], axis=axis))
        return
    varying = e.varying()
    if len(varying) > 1:
        raise e.fail(f"reshape to {out_shape} has several batch-sized dimensions; export with dynamic_batch=False")
    target = list(out_shape)
    if varying:
        target[varying[0]] = -1
    e.bind(e.one("Reshape", [x, e.ints(target)]))


def _flatten_axis(e: Emit):
    """The axis for which the reshape is ONNX's Flatten in every trace, or None."""
    pairs = [(e.shape(0), e.out_shape())]
    if e.other is not None:
        pairs.append((tuple(array_of(e.other.args[0]).shape), tuple(e.other.outputs[0].shape)))
    if len(pairs[0][1]) != 2:
        return None
    for axis in range(1, len(pairs[0][0]) + 1):
        if all((int(np.prod(i[:axis])), int(np.prod(i[axis:]))) == o for i, o in pairs):
            return axis
    return None


@emits(ops.Permute)
def _permute(e: Emit) -> None:
    e.bind(e.one("Transpose", [e.value(0)], perm=[int(a) for a in e.kw["axes"]]))


@emits(ops.Concatenate)
def _concat(e: Emit) -> None:
    e.bind(e.one("Concat", [_operand(e, i) for i in range(len(e.call.args))], axis=int(e.kw.get("axis", 0))))


@emits(ops.Stack)
def _stack(e: Emit) -> None:
    axis = int(e.kw.get("axis", 0))
    parts = [e.one("Unsqueeze", [_operand(e, i), e.ints([axis])]) for i in range(len(e.call.args))]
    e.bind(e.one("Concat", parts, axis=axis))


@emits(ops.Pad)
def _pad(e: Emit) -> None:
    widths = e.kw["pad_width"]
    pads = [int(lo) for lo, _ in widths] + [int(hi) for _, hi in widths]
    e.bind(e.one("Pad", [e.value(0), e.ints(pads), e.scalar(e.kw.get("value", 0.0))], mode="constant"))


@emits(ops.GetItem)
def _getitem(e: Emit) -> None:
    index = e.kw["index"]
    items = list(index) if isinstance(index, tuple) else [index]
    ndim = len(e.shape(0))
    advanced = [i for i, item in enumerate(items) if isinstance(item, (list, np.ndarray))]
    if any(isinstance(item, (bool, np.bool_)) or (isinstance(item, np.ndarray) and item.dtype == np.bool_)
           for item in items):
        raise e.fail("boolean-mask indexing has a data-dependent shape and cannot be exported")
    if Ellipsis in [i for i in items if not isinstance(i, (list, np.ndarray))]:
        at = next(i for i, item in enumerate(items) if item is Ellipsis)
        used = sum(1 for item in items if item is not None and item is not Ellipsis)
        items[at:at + 1] = [slice(None)] * (ndim - used)
    x = e.value(0)
    starts, ends, axes, steps, squeeze, unsqueeze = [], [], [], [], [], []
    axis = out_axis = 0
    gather = None
    for item in items:
        if item is None:
            unsqueeze.append(out_axis)
            out_axis += 1
            continue
        if isinstance(item, (list, np.ndarray)):
            if len(advanced) > 1 or any(isinstance(it, (int, np.integer)) or it is None for it in items):
                raise e.fail(f"index {index!r} mixes an integer array with other integers or None; "
                             "only one integer array with slices can be exported")
            gather = (axis, np.asarray(item, dtype=np.int64))
        elif isinstance(item, (int, np.integer)):
            i = int(item)
            starts.append(i)
            ends.append(i + 1 if i != -1 else INT64_MAX)
            axes.append(axis)
            steps.append(1)
            squeeze.append(axis)
        elif isinstance(item, slice):
            step = 1 if item.step is None else int(item.step)
            if item != slice(None):
                starts.append(int(item.start) if item.start is not None else (0 if step > 0 else INT64_MAX))
                ends.append(int(item.stop) if item.stop is not None else (INT64_MAX if step > 0 else INT64_MIN))
                axes.append(axis)
                steps.append(step)
            out_axis += 1
        else:
            raise e.fail(f"index item {item!r} cannot be exported")
        axis += 1
    if axes:
        x = e.one("Slice", [x, e.ints(starts), e.ints(ends), e.ints(axes), e.ints(steps)])
    if gather is not None:
        x = e.one("Gather", [x, e.const(gather[1], "indices")], axis=gather[0])
    if squeeze:
        x = e.one("Squeeze", [x, e.ints(squeeze)])
    if unsqueeze:
        x = e.one("Unsqueeze", [x, e.ints(unsqueeze)])
    if x == e.value(0):
        x = e.one("Identity", [x])
    e.bind(x)


# ---- layers ------------------------------------------------------------------------------------------

@emits(LinearFunction)
def _linear(e: Emit) -> None:
    x, w, b = e.value(0), e.value(1), e.value(2)
    if len(e.shape(0)) == 2:
        e.bind(e.one("Gemm", [x, w, b] if b else [x, w], transB=1))
        return
    y = e.one("MatMul", [x, e.one("Transpose", [w], perm=[1, 0])])
    e.bind(e.one("Add", [y, b]) if b else y)


def _end_pads(sizes, kernels, strides, pads, dilations, outs) -> List[int]:
    """Bottom/right padding that makes a floor-mode window count give exactly ``outs``: the last
    window's end minus the input and the top/left padding, never negative."""
    return [max(0, (o - 1) * s + d * (k - 1) + 1 - n - p)
            for n, k, s, p, d, o in zip(sizes, kernels, strides, pads, dilations, outs)]


@emits(Conv2dFunction)
def _conv(e: Emit) -> None:
    g = e.kw["geometry"]
    x, w, b = e.value(0), e.value(1), e.value(2)
    hw = e.shape(0)[-2:]
    begin = [g.ph, g.pw]
    end = _end_pads(hw, (g.kh, g.kw), (g.sh, g.sw), begin, (g.dh, g.dw), (g.out_h, g.out_w))
    e.bind(e.one("Conv", [x, w, b] if b else [x, w], kernel_shape=[g.kh, g.kw], strides=[g.sh, g.sw],
                 pads=begin + end, dilations=[g.dh, g.dw], group=g.groups))


@emits(ConvTranspose2dFunction)
def _conv_transpose(e: Emit) -> None:
    g = e.kw["geometry"]
    x, w, b = e.value(0), e.value(1), e.value(2)
    h, wd = e.shape(0)[-2:]
    out_h, out_w = e.kw["out_shape"][-2:]
    base = [(n - 1) * s - 2 * p + d * (k - 1) + 1 for n, s, p, d, k in
            ((h, g.sh, g.ph, g.dh, g.kh), (wd, g.sw, g.pw, g.dw, g.kw))]
    e.bind(e.one("ConvTranspose", [x, w, b] if b else [x, w], kernel_shape=[g.kh, g.kw], strides=[g.sh, g.sw],
                 pads=[g.ph, g.pw, g.ph, g.pw], dilations=[g.dh, g.dw], group=g.groups,
                 output_padding=[out_h - base[0], out_w - base[1]]))


def _batched(e: Emit, x: str):
    """ONNX pools take (N, C, H, W): an unbatched (C, H, W) input gets a batch axis."""
    return (e.one("Unsqueeze", [x, e.ints([0])]), True) if len(e.shape(0)) == 3 else (x, False)


def _unbatched(e: Emit, names, squeezed: bool):
    return [e.one("Squeeze", [n, e.ints([0])]) for n in names] if squeezed else list(names)


@emits(pool.MaxPool2d)
def _max_pool(e: Emit) -> None:
    k, s, p, d = (list(e.kw[n]) for n in ("kernel_size", "stride", "padding", "dilation"))
    hw, out_hw = e.shape(0)[-2:], e.out_shape()[-2:]
    end = _end_pads(hw, k, s, p, d, out_hw)
    with_indices = bool(e.kw.get("return_indices"))
    x, squeezed = _batched(e, e.value(0))
    pads = p + end
    if any(pad >= kk for pad, kk in zip(pads, k + k)) and not with_indices:
        # ONNX Runtime wants pads smaller than the kernel: pad with -inf explicitly instead
        x = e.one("Pad", [x, e.ints([0, 0, p[0], p[1], 0, 0, end[0], end[1]]), e.scalar(-np.inf)], mode="constant")
        pads = [0, 0, 0, 0]
    outs = e.node("MaxPool", [x], 2 if with_indices else 1, kernel_shape=k, strides=s,
                  pads=pads, dilations=d, ceil_mode=0)
    if with_indices:
        # ONNX numbers positions over the whole tensor; PyTorch within each (H, W) plane
        outs[1] = e.one("Mod", [outs[1], e.const(np.array(hw[0] * hw[1], dtype=np.int64), "plane_size")])
    e.bind(*_unbatched(e, outs, squeezed))


@emits(pool.AvgPool2d)
def _avg_pool(e: Emit) -> None:
    k, s, p = (list(e.kw[n]) for n in ("kernel_size", "stride", "padding"))
    hw, out_hw = e.shape(0)[-2:], e.out_shape()[-2:]
    extent = [(o - 1) * st + kk for o, st, kk in zip(out_hw, s, k)]  # rows/columns the windows span
    beyond = [ext - n - pp for ext, n, pp in zip(extent, hw, p)]  # past the input's end (padding included)
    x, squeezed = _batched(e, e.value(0))
    divisor = e.kw.get("divisor_override")
    if divisor:
        # every window lies inside the (end-extended) padding: mean·k² is the window sum
        y = e.one("AveragePool", [x], kernel_shape=k, strides=s, pads=p + [max(0, r) for r in beyond],
                  count_include_pad=1)
        y = e.one("Mul", [y, e.scalar(k[0] * k[1] / divisor)])
    elif e.kw.get("count_include_pad", True):
        # divisor: the window clipped to the padded input [-p, n + p); zeros outside it are not counted
        if any(p):
            x = e.one("Pad", [x, e.ints([0, 0, p[0], p[1], 0, 0, p[0], p[1]]), e.scalar(0.0)], mode="constant")
        y = e.one("AveragePool", [x], kernel_shape=k, strides=s,
                  pads=[0, 0] + [max(0, r - pp) for r, pp in zip(beyond, p)], count_include_pad=0)
    else:
        y = e.one("AveragePool", [x], kernel_shape=k, strides=s, pads=p + [max(0, r) for r in beyond],
                  count_include_pad=0)
    e.bind(*_unbatched(e, [y], squeezed))


def _adaptive_bounds(n: int, out: int):
    return [((i * n) // out, -((-(i + 1) * n) // out)) for i in range(out)]


@emits(pool.AdaptiveAvgPool2d, pool.AdaptiveMaxPool2d)
def _adaptive_pool(e: Emit) -> None:
    is_max = e.call.function is pool.AdaptiveMaxPool2d
    hw, out_hw = e.shape(0)[-2:], tuple(e.kw["output_size"])
    x, squeezed = _batched(e, e.value(0))
    with_indices = is_max and bool(e.kw.get("return_indices"))
    if out_hw == (1, 1) and not with_indices:
        outs = [e.one("GlobalMaxPool" if is_max else "GlobalAveragePool", [x])]
    elif hw[0] % out_hw[0] == 0 and hw[1] % out_hw[1] == 0:  # equal windows: an ordinary pool
        kernel = [hw[0] // out_hw[0], hw[1] // out_hw[1]]
        if is_max:
            outs = e.node("MaxPool", [x], 2 if with_indices else 1, kernel_shape=kernel, strides=kernel)
            if with_indices:
                outs[1] = e.one("Mod", [outs[1], e.const(np.array(hw[0] * hw[1], dtype=np.int64), "plane_size")])
        else:
            outs = [e.one("AveragePool", [x], kernel_shape=kernel, strides=kernel)]
    elif with_indices:
        raise e.fail(f"adaptive max pooling with return_indices from {hw} to {out_hw} (unequal windows) "
                     "has no ONNX form")
    else:
        # unequal windows: pool rows, then columns (a window is a rectangle, so the two steps compose)
        reduce = "ReduceMax" if is_max else "ReduceMean"
        for axis, (n, out) in enumerate(zip(hw, out_hw)):
            full = 2 + axis
            parts = [e.reduce(reduce, e.one("Slice", [x, e.ints([a]), e.ints([b]), e.ints([full])]), [full], True)
                     for a, b in _adaptive_bounds(n, out)]
            x = e.one("Concat", parts, axis=full) if len(parts) > 1 else parts[0]
        outs = [x]
    e.bind(*_unbatched(e, outs, squeezed))


@emits(pool.MaxUnpool2d)
def _max_unpool(e: Emit) -> None:
    x, indices = e.value(0), e.value(1)
    out_hw = tuple(e.kw["output_hw"])
    shape = e.shape(0)
    plane = out_hw[0] * out_hw[1]
    channels = shape[-3]
    # per-plane switches -> positions in the whole output tensor, as ONNX MaxUnpool reads them
    offsets = (np.arange(channels, dtype=np.int64) * plane).reshape(channels, 1, 1)
    if len(shape) == 4:
        n = e.one("Squeeze", [e.g.batch(), e.ints([0])])
        rows = e.one("Range", [e.const(np.array(0, np.int64), "zero"), n, e.const(np.array(1, np.int64), "one")])
        rows = e.one("Mul", [e.one("Reshape", [rows, e.ints([-1, 1, 1, 1])]),
                             e.const(np.array(channels * plane, np.int64), "sample_size")])
        offsets_value = e.one("Add", [rows, e.const(offsets[None], "plane_offsets")])
        out_shape = e.one("Concat", [e.g.batch(), e.ints([channels, *out_hw])], axis=0)
    else:
        offsets_value = e.const(offsets, "plane_offsets")
        out_shape = e.ints([1, channels, *out_hw])
        x = e.one("Unsqueeze", [x, e.ints([0])])
        indices = e.one("Unsqueeze", [indices, e.ints([0])])
    if array_of(e.call.args[1]).dtype != np.int64:
        indices = e.one("Cast", [indices], to=onnx_dtype(e.g.onnx, np.int64))
    y = e.one("MaxUnpool", [x, e.one("Add", [indices, offsets_value]), out_shape],
              kernel_shape=[1, 1], strides=[1, 1])
    if len(shape) == 3:
        y = e.one("Squeeze", [y, e.ints([0])])
    e.bind(y)


# ---- normalization ---------------------------------------------------------------------------------

def _affine_or(e: Emit, i: int, fill: float, shape, suffix: str) -> str:
    """The weight (i=1) or bias (i=2) argument, or a constant of ``fill`` when it is None."""
    if e.call.args[i] is not None:
        return e.value(i)
    return e.fixed(np.full(shape, fill, dtype=e.dtype), suffix)


def _buffer_name(e: Emit, buffer: str, fallback: str) -> str:
    """The state_dict name of the calling module's buffer (running_mean, ...) for a constant."""
    module = e.call.module
    if module is not None and buffer in getattr(module, "_buffers", {}):
        return f"{e.call.scope}.{buffer}" if e.call.scope else buffer
    return f"{e.call.scope}.{fallback}" if e.call.scope else fallback


def _channel_view(e: Emit, value: str, ndim: int) -> str:
    """A per-channel (C,) value as (C, 1, ..., 1), to broadcast over an (N, C, *) input."""
    return e.one("Unsqueeze", [value, e.ints(list(range(1, ndim - 1)))]) if ndim > 2 else value


@emits(norm.Normalize)
def _normalize(e: Emit) -> None:
    layout, eps = e.kw["layout"], float(e.kw["eps"])
    shape = e.shape(0)
    x = e.value(0)
    channels = shape[1] if len(shape) > 1 else 1
    if e.kw.get("fixed_stats") is not None:  # batch norm (or instance norm) with running statistics
        mean, var = (np.asarray(a, dtype=e.dtype) for a in e.kw["fixed_stats"])
        names = (e.g.parameter(_buffer_name(e, "running_mean", "mean"), mean),
                 e.g.parameter(_buffer_name(e, "running_var", "var"), var))
        scale = _affine_or(e, 1, 1.0, (channels,), "scale")
        bias = _affine_or(e, 2, 0.0, (channels,), "bias")
        e.bind(e.one("BatchNormalization", [x, scale, bias, *names], epsilon=eps))
        return
    if layout.elementwise:  # layer norm over the trailing dimensions
        _layer_norm(e, x, shape, eps)
        return
    batch_stats = layout.shape3[0] > 1 or (e.other is not None and
                                           e.other.kwargs["layout"].shape3[0] != layout.shape3[0])
    if batch_stats:  # batch norm with batch statistics (no running statistics)
        axes = [0] + list(range(2, len(shape)))
        y = _standardize(e, x, axes, eps)
    elif layout.cpg == 1:  # instance norm (and group norm with one channel per group)
        scale = _affine_or(e, 1, 1.0, (channels,), "scale")
        bias = _affine_or(e, 2, 0.0, (channels,), "bias")
        e.bind(e.one("InstanceNormalization", [x, scale, bias], epsilon=eps))
        return
    else:  # group norm: instance norm over (N, groups, C/groups·spatial), then per-channel affine
        groups = channels // layout.cpg
        grouped = e.one("Reshape", [x, e.ints([0, groups, -1])])
        ones = e.fixed(np.ones(groups, dtype=e.dtype), "group_scale")
        zeros = e.fixed(np.zeros(groups, dtype=e.dtype), "group_bias")
        normed = e.one("InstanceNormalization", [grouped, ones, zeros], epsilon=eps)
        y = e.one("Reshape", [normed, e.one("Shape", [x])])
    if e.call.args[1] is not None:
        y = e.one("Mul", [y, _channel_view(e, e.value(1), len(shape))])
    if e.call.args[2] is not None:
        y = e.one("Add", [y, _channel_view(e, e.value(2), len(shape))])
    e.bind(y)


def _standardize(e: Emit, x: str, axes: Sequence[int], eps: float) -> str:
    """(x − mean) / sqrt(var + eps) over ``axes`` (population variance)."""
    mean = e.reduce("ReduceMean", x, list(axes), True)
    centered = e.one("Sub", [x, mean])
    var = e.reduce("ReduceMean", e.one("Mul", [centered, centered]), list(axes), True)
    return e.one("Div", [centered, e.one("Sqrt", [e.one("Add", [var, e.scalar(eps)])])])


def _layer_norm(e: Emit, x: str, shape, eps: float) -> None:
    m = e.kw["layout"].shape3[2]
    weight = e.call.args[1]
    k = array_of(weight).ndim if weight is not None else next(
        k for k in range(1, len(shape) + 1) if int(np.prod(shape[len(shape) - k:])) == m)
    normalized = shape[len(shape) - k:]
    if e.g.opset >= 17:
        scale = _affine_or(e, 1, 1.0, normalized, "scale")
        inputs = [x, scale] + ([e.value(2)] if e.call.args[2] is not None else [])
        e.bind(e.one("LayerNormalization", inputs, axis=-k, epsilon=eps))
        return
    y = _standardize(e, x, list(range(len(shape) - k, len(shape))), eps)
    if weight is not None:
        y = e.one("Mul", [y, e.value(1)])
    if e.call.args[2] is not None:
        y = e.one("Add", [y, e.value(2)])
    e.bind(y)


@emits(Dropout, Dropout2d)
def _dropout(e: Emit) -> None:
    raise e.fail("dropout ran in training mode (training=True passed explicitly); ONNX export records "
                 "inference, where dropout is the identity")


# ---- activations, padding and resampling of fastconv.nn.functional (PyTorch drop-in) ----------------

@emits(act.ReLU6)
def _relu6(e: Emit) -> None:
    e.bind(e.one("Clip", [e.value(0), e.scalar(0.0), e.scalar(6.0)]))


@emits(act.Hardtanh)
def _hardtanh(e: Emit) -> None:
    e.bind(e.one("Clip", [e.value(0), e.scalar(float(e.kw.get("min_val", -1.0))),
                          e.scalar(float(e.kw.get("max_val", 1.0)))]))


@emits(act.SiLU)
def _silu(e: Emit) -> None:
    x = e.value(0)
    e.bind(e.one("Mul", [x, e.one("Sigmoid", [x])]))


@emits(act.Hardswish)
def _hardswish(e: Emit) -> None:
    e.bind(e.one("HardSwish", [e.value(0)]))


@emits(act.Hardsigmoid)
def _hardsigmoid(e: Emit) -> None:
    e.bind(e.one("HardSigmoid", [e.value(0)], alpha=1.0 / 6.0, beta=0.5))


@emits(act.GELU)
def _gelu(e: Emit) -> None:
    x = e.value(0)
    approximate = e.kw.get("approximate", "none")
    if e.g.opset >= 20:
        e.bind(e.one("Gelu", [x], approximate=approximate))
        return
    if approximate == "tanh":  # 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))
        cube = e.one("Mul", [e.one("Mul", [x, x]), x])
        inner = e.one("Mul", [e.one("Add", [x, e.one("Mul", [cube, e.scalar(0.044715)])]),
                              e.scalar(np.sqrt(2.0 / np.pi))])
        gate = e.one("Add", [e.one("Tanh", [inner]), e.scalar(1.0)])
    else:  # 0.5·x·(1 + erf(x/√2))
        gate = e.one("Add", [e.one("Erf", [e.one("Div", [x, e.scalar(np.sqrt(2.0))])]), e.scalar(1.0)])
    e.bind(e.one("Mul", [e.one("Mul", [x, gate]), e.scalar(0.5)]))


@emits(act.Softplus)
def _softplus(e: Emit) -> None:
    x = e.value(0)
    beta, threshold = float(e.kw.get("beta", 1.0)), float(e.kw.get("threshold", 20.0))
    scaled = x if beta == 1.0 else e.one("Mul", [x, e.scalar(beta)])
    soft = e.one("Softplus", [scaled])
    if beta != 1.0:
        soft = e.one("Div", [soft, e.scalar(beta)])
    linear = e.one("Greater", [scaled, e.scalar(threshold)])
    e.bind(e.one("Where", [linear, x, soft]))


@emits(act.Mish)
def _mish(e: Emit) -> None:
    x = e.value(0)
    if e.g.opset >= 18:
        e.bind(e.one("Mish", [x]))
        return
    e.bind(e.one("Mul", [x, e.one("Tanh", [e.one("Softplus", [x])])]))


@emits(act.PReLU)
def _prelu(e: Emit) -> None:
    x, slope = e.value(0), e.value(1)
    ndim, weight = len(e.shape(0)), e.array(1)
    if weight.size == 1 or ndim < 2:
        slope = e.one("Reshape", [slope, e.ints([1])]) if weight.ndim != 1 else slope
    else:  # one slope per channel (axis 1): (C, 1, ..., 1) broadcasts against (N, C, *)
        slope = e.one("Reshape", [slope, e.ints([-1] + [1] * (ndim - 2))])
    e.bind(e.one("PRelu", [x, slope]))


@emits(padding.Pad)
def _pad_modes(e: Emit) -> None:
    x = e.value(0)
    crops, widths = e.kw.get("crops", ()), e.kw.get("widths", ())
    mode = e.kw.get("mode", "constant")
    if any(lo or hi for lo, hi in crops):  # negative amounts crop first
        axes = [a for a, (lo, hi) in enumerate(crops) if lo or hi]
        x = e.one("Slice", [x, e.ints([crops[a][0] for a in axes]),
                            e.ints([-crops[a][1] if crops[a][1] else INT64_MAX for a in axes]), e.ints(axes)])
    if not any(lo or hi for lo, hi in widths):
        e.bind(x if x != e.value(0) else e.one("Identity", [x]))
        return
    pads = [int(lo) for lo, _ in widths] + [int(hi) for _, hi in widths]
    if mode == "constant":
        e.bind(e.one("Pad", [x, e.ints(pads), e.scalar(e.kw.get("value", 0.0))], mode="constant"))
    elif mode in ("reflect", "replicate"):
        e.bind(e.one("Pad", [x, e.ints(pads)], mode="reflect" if mode == "reflect" else "edge"))
    elif e.g.opset >= 19:
        e.bind(e.one("Pad", [x, e.ints(pads)], mode="wrap"))
    else:  # circular before opset 19: the wrapped borders sliced off and concatenated
        for axis, (lo, hi) in enumerate(widths):
            if lo or hi:
                parts = ([e.one("Slice", [x, e.ints([-lo]), e.ints([INT64_MAX]), e.ints([axis])])] if lo else []) \
                    + [x] + ([e.one("Slice", [x, e.ints([0]), e.ints([hi]), e.ints([axis])])] if hi else [])
                x = e.one("Concat", parts, axis=axis)
        e.bind(x)


def _resample(e: Emit, x: str, axis: int, table, in_len: int) -> str:
    """One axis of Nearest2d/Linear2d as gathers (and a weighted sum): exactly fastconv's tables."""
    if isinstance(table, np.ndarray):  # nearest: source index per output position
        if len(table) == in_len and np.array_equal(table, np.arange(in_len)):
            return x
        return e.one("Gather", [x, e.const(table.astype(np.int64), "indices")], axis=axis)
    i0, i1, l0, l1 = table
    if len(i0) == in_len and np.array_equal(i0, np.arange(in_len)) and not np.any(l1):
        return x
    shape = (len(i0),) + (1,) * (len(e.shape(0)) - 1 - axis)
    low = e.one("Gather", [x, e.const(np.asarray(i0, np.int64), "indices")], axis=axis)
    high = e.one("Gather", [x, e.const(np.asarray(i1, np.int64), "indices")], axis=axis)
    return e.one("Add", [e.one("Mul", [low, e.const(np.asarray(l0, e.dtype).reshape(shape), "weights")]),
                         e.one("Mul", [high, e.const(np.asarray(l1, e.dtype).reshape(shape), "weights")])])


@emits(interpolation.Nearest2d, interpolation.Linear2d)
def _interpolate(e: Emit) -> None:
    x = e.value(0)
    shape = e.shape(0)
    rows, cols = e.kw["rows"], e.kw["cols"]
    if len(shape) == 4:
        x = _resample(e, x, 2, rows, shape[2])
    y = _resample(e, x, len(shape) - 1, cols, shape[-1])
    e.bind(y if y != e.value(0) else e.one("Identity", [y]))


# ---- tensor operations of the PyTorch-style Tensor ---------------------------------------------------

@emits(ops.Maximum, ops.Minimum)
def _max_min(e: Emit) -> None:
    e.bind(e.one("Max" if e.call.function is ops.Maximum else "Min", [_operand(e, 0), _operand(e, 1)]))


@emits(ops.ClampTensor)
def _clamp_tensor(e: Emit) -> None:
    y = _operand(e, 0)
    if e.call.args[1] is not None:
        y = e.one("Max", [y, _operand(e, 1)])
    if e.call.args[2] is not None:
        y = e.one("Min", [y, _operand(e, 2)])
    e.bind(y if y != e.value(0) else e.one("Identity", [y]))


@emits(ops.Clone)
def _clone(e: Emit) -> None:
    e.bind(e.one("Identity", [e.value(0)]))


@emits(ops.Std)
def _std(e: Emit) -> None:
    _var(e)  # binds the variance; the standard deviation is its square root
    variance = e.g.lookup(e.call.output_keys[0])
    e.bind(e.one("Sqrt", [variance]))


@emits(ops.Norm)
def _norm(e: Emit) -> None:
    x, p = e.value(0), e.kw.get("p", 2.0)
    axes = e.kw.get("axis")
    axes = list(range(len(e.shape(0)))) if axes is None else list(axes)
    keep = bool(e.kw.get("keepdims", False))
    if p == 2:
        y = e.one("Sqrt", [e.reduce("ReduceSum", e.one("Mul", [x, x]), axes, keep)])
    elif p == 1:
        y = e.reduce("ReduceSum", e.one("Abs", [x]), axes, keep)
    elif p in (np.inf, -np.inf):
        y = e.reduce("ReduceMax" if p > 0 else "ReduceMin", e.one("Abs", [x]), axes, keep)
    elif p == 0:
        nonzero = e.one("Cast", [e.one("Not", [e.one("Equal", [x, e.scalar(0.0)])])], to=onnx_dtype(e.g.onnx, e.dtype))
        y = e.reduce("ReduceSum", nonzero, axes, keep)
    else:
        powered = e.one("Pow", [e.one("Abs", [x]), e.scalar(p)])
        y = e.one("Pow", [e.reduce("ReduceSum", powered, axes, keep), e.scalar(1.0 / p)])
    e.bind(y)


@emits(ops.Expand)
def _expand(e: Emit) -> None:
    shape = list(e.out_shape())
    for d in e.varying():
        shape[d] = 1  # Expand broadcasts: 1 keeps the input's (batch-sized) dimension
    e.bind(e.one("Expand", [e.value(0), e.ints(shape)]))


@emits(ops.Repeat)
def _repeat(e: Emit) -> None:
    reps = [int(r) for r in e.kw["reps"]]
    x = e.value(0)
    extra = len(reps) - len(e.shape(0))
    if extra > 0:
        x = e.one("Unsqueeze", [x, e.ints(list(range(extra)))])
    e.bind(e.one("Tile", [x, e.ints(reps)]))


@emits(ops.Split)
def _split(e: Emit) -> None:
    sizes = [int(s) for s in e.kw["sizes"]]
    e.bind(*e.node("Split", [e.value(0), e.ints(sizes)], len(sizes), axis=int(e.kw.get("axis", 0))))


@emits(index_ops.ExtremumDim)
def _extremum_dim(e: Emit) -> None:
    x, axis, keep = e.value(0), int(e.kw.get("axis", 0)), int(bool(e.kw.get("keepdims", False)))
    largest = e.kw.get("largest", True)
    values = e.reduce("ReduceMax" if largest else "ReduceMin", x, [axis], bool(keep))
    indices = e.one("ArgMax" if largest else "ArgMin", [x], axis=axis, keepdims=keep, select_last_index=0)
    e.bind(values, indices)


@emits(index_ops.TopK, index_ops.Sort)
def _topk(e: Emit) -> None:
    x = e.value(0)
    axis = int(e.kw.get("axis", -1))
    if e.call.function is index_ops.TopK:
        k, largest = int(e.kw.get("k", 1)), int(bool(e.kw.get("largest", True)))
    else:
        k, largest = e.shape(0)[axis], int(bool(e.kw.get("descending", False)))
    values, indices = e.node("TopK", [x, e.ints([k])], 2, axis=axis, largest=largest, sorted=1)
    e.bind(values, indices)


@emits(index_ops.Gather)
def _gather_elements(e: Emit) -> None:
    index = np.asarray(e.kw["index"], dtype=np.int64)
    e.bind(e.one("GatherElements", [e.value(0), e.const(index, "index")], axis=int(e.kw.get("axis", 0))))


@emits(index_ops.IndexSelect)
def _index_select(e: Emit) -> None:
    index = np.asarray(e.kw["index"], dtype=np.int64)
    e.bind(e.one("Gather", [e.value(0), e.const(index, "index")], axis=int(e.kw.get("axis", 0))))


@emits(index_ops.MaskedFill)
def _masked_fill(e: Emit) -> None:
    mask = np.asarray(e.kw["mask"], dtype=bool)
    e.bind(e.one("Where", [e.const(mask, "mask"), _operand(e, 1), e.value(0)]))


# ---- fused Functions of the model zoo (batch norm [+ residual] + ReLU/ReLU6, add + ReLU) ------------

def _clamp_activation(e: Emit, y: str, max_value: float) -> str:
    """ReLU (max_value inf) or Clip(0, max_value) (ReLU6)."""
    if np.isinf(max_value):
        return e.one("Relu", [y])
    return e.one("Clip", [y, e.scalar(0.0), e.scalar(float(max_value))])


@emits(fused.BatchNormActivation)
def _batch_norm_activation(e: Emit) -> None:
    shape = e.shape(0)
    x, eps = e.value(0), float(e.kw["eps"])
    channels = shape[1]
    if e.kw.get("fixed_stats") is not None:
        mean, var = (np.asarray(a, dtype=e.dtype) for a in e.kw["fixed_stats"])
        names = (e.g.parameter(_buffer_name(e, "running_mean", "mean"), mean),
                 e.g.parameter(_buffer_name(e, "running_var", "var"), var))
        y = e.one("BatchNormalization", [x, _affine_or(e, 1, 1.0, (channels,), "scale"),
                                         _affine_or(e, 2, 0.0, (channels,), "bias"), *names], epsilon=eps)
    else:  # batch statistics
        y = _standardize(e, x, [0] + list(range(2, len(shape))), eps)
        if e.call.args[1] is not None:
            y = e.one("Mul", [y, _channel_view(e, e.value(1), len(shape))])
        if e.call.args[2] is not None:
            y = e.one("Add", [y, _channel_view(e, e.value(2), len(shape))])
    if e.call.args[3] is not None:
        y = e.one("Add", [y, e.value(3)])
    e.bind(_clamp_activation(e, y, float(e.kw["max_value"])))


@emits(fused.AddActivation)
def _add_activation(e: Emit) -> None:
    e.bind(_clamp_activation(e, e.one("Add", [_operand(e, 0), _operand(e, 1)]), float(e.kw["max_value"])))
