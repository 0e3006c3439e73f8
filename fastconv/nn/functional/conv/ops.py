"""The public convolution ops: validation (before any kernel runs) and the tape calls."""
from __future__ import annotations

from typing import Optional, Tuple, Union

import numpy as np

from ...._validation import check_ndim, check_same_dtype, int_pair
from ....tensor import Tensor
from .._args import as_float_tensor
from .function import Conv2dFunction, ConvTranspose2dFunction
from .geometry import ConvGeometry

IntPair = Union[int, Tuple[int, int]]


def _check_operands(op: str, x, weight, bias):
    x = as_float_tensor(x, op, "input")
    weight = as_float_tensor(weight, op, "weight")
    if bias is not None:
        bias = as_float_tensor(bias, op, "bias")
    check_same_dtype(op, weight=weight._array, input=x._array, bias=None if bias is None else bias._array)
    check_ndim(weight._array, 4, op, "weight")
    if 0 in weight.shape:
        raise ValueError(f"{op}: expected a weight with no empty dimension, got weight of shape "
                         f"{tuple(weight.shape)}")
    return x, weight, bias


def _check_groups(op: str, groups, in_channels: int, out_channels: int, weight_shape) -> int:
    if not isinstance(groups, (int, np.integer)) or isinstance(groups, bool):
        raise TypeError(f"{op}: expected groups as an int, got {groups!r}")
    groups = int(groups)
    if groups < 1:
        raise ValueError(f"{op}: expected groups >= 1, got {groups}")
    if in_channels % groups or out_channels % groups:
        raise ValueError(
            f"{op}: expected groups to divide both channel counts, got groups={groups} with "
            f"{in_channels} input and {out_channels} output channels (weight is {tuple(weight_shape)})"
        )
    return groups


def _check_bias(op: str, bias: Optional[Tensor], channels: int) -> None:
    if bias is not None and tuple(bias.shape) != (channels,):
        raise ValueError(f"{op}: expected bias of shape ({channels},), got bias of shape {tuple(bias.shape)}")


def _same_padding(kernel: Tuple[int, int], dilation: Tuple[int, int]):
    """PyTorch's 'same': total d·(k−1) per dimension, the odd extra on the bottom/right."""
    totals = tuple(d * (k - 1) for k, d in zip(kernel, dilation))
    return (totals[0] // 2, totals[1] // 2), totals


def _conv_padding(op: str, padding, kernel, stride, dilation):
    """(top/left padding, total padding per dimension) from an int, a pair, 'same' or 'valid'."""
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0), (0, 0)
        if padding == "same":
            if stride != (1, 1):
                raise ValueError(f"{op}: padding='same' requires stride 1, got stride={stride}")
            return _same_padding(kernel, dilation)
        raise ValueError(f"{op}: expected padding as an int, a pair, 'same' or 'valid', got {padding!r}")
    pad = int_pair(padding, op, "padding", minimum=0)
    return pad, (2 * pad[0], 2 * pad[1])


# Geometries of validated conv2d calls, keyed on everything the validation reads (shapes, dtypes,
# options): a training loop repeats a few calls, and validating one costs ~10 µs of Python, a
# lot next to a batch-1 convolution. Only plain options are keys (see _validated_key), so a bool
# never hits the entry of the int it equals.
_VALIDATED: dict = {}
_VALIDATED_SIZE = 512


def _validated_key(input, weight, bias, options):
    """The _VALIDATED key of a call with Tensor operands and plain options (ints, pairs of ints,
    strings: a bool never hits the entry of the int it equals), else None."""
    if not (isinstance(input, Tensor) and isinstance(weight, Tensor)
            and (bias is None or isinstance(bias, Tensor))):
        return None
    for value in options:
        kind = type(value)
        if kind is not int and kind is not str and not (
                kind is tuple and len(value) == 2 and type(value[0]) is int and type(value[1]) is int):
            return None
    x, w = input._array, weight._array
    return (x.shape, x.dtype, w.shape, w.dtype,
            None if bias is None else (bias._array.shape, bias._array.dtype), options)


def conv2d(input, weight, bias=None, stride: IntPair = 1, padding: Union[IntPair, str] = 0,
           dilation: IntPair = 1, groups: int = 1) -> Tensor:
    """2-D cross-correlation over NCHW input (or unbatched CHW), PyTorch semantics.

    weight is (C_out, C_in/groups, kH, kW); padding is an int, a pair, 'same' or 'valid'.
    """
    key = _validated_key(input, weight, bias, (stride, padding, dilation, groups))
    if key is not None:
        geometry = _VALIDATED.get(key)
        if geometry is not None:
            return Conv2dFunction.apply(input, weight, bias, geometry=geometry)
    geometry = _conv2d_geometry(input, weight, bias, stride, padding, dilation, groups)
    if isinstance(geometry, Tensor):  # unbatched input, computed through the batched call
        return geometry
    if key is not None:
        if len(_VALIDATED) >= _VALIDATED_SIZE:
            _VALIDATED.clear()
        _VALIDATED[key] = geometry
    return Conv2dFunction.apply(input, weight, bias, geometry=geometry)


def _conv2d_geometry(input, weight, bias, stride, padding, dilation, groups):
    """Validate a conv2d call: its ConvGeometry, or for unbatched input the result itself."""
    op = "conv2d"
    x, weight, bias = _check_operands(op, input, weight, bias)
    check_ndim(x._array, (3, 4), op, "input", "(N, C, H, W)")
    if x.ndim == 3:
        return conv2d(x.unsqueeze(0), weight, bias, stride, padding, dilation, groups).squeeze(0)
    k_out, c_per_group, kh, kw = weight.shape
    n, c, h, w = x.shape
    groups = _check_groups(op, groups, c, k_out, weight.shape)
    if c != c_per_group * groups:
        raise ValueError(
            f"{op}: expected input with {c_per_group * groups} channels (weight is {tuple(weight.shape)}"
            f", groups={groups}), got input of shape {tuple(x.shape)}"
        )
    _check_bias(op, bias, k_out)
    stride_ = int_pair(stride, op, "stride", minimum=1)
    dilation_ = int_pair(dilation, op, "dilation", minimum=1)
    (ph, pw), (th, tw) = _conv_padding(op, padding, (kh, kw), stride_, dilation_)
    eff_h, eff_w = dilation_[0] * (kh - 1) + 1, dilation_[1] * (kw - 1) + 1
    if h + th < eff_h or w + tw < eff_w:
        raise ValueError(
            f"{op}: kernel size {(eff_h, eff_w)} (dilated) is larger than the padded input "
            f"{(h + th, w + tw)} (input of shape {tuple(x.shape)}, padding={padding!r})"
        )
    return ConvGeometry(kh, kw, stride_[0], stride_[1], ph, pw, dilation_[0], dilation_[1], groups,
                        (h + th - eff_h) // stride_[0] + 1, (w + tw - eff_w) // stride_[1] + 1)


def conv_transpose2d(input, weight, bias=None, stride: IntPair = 1, padding: IntPair = 0,
                     output_padding: IntPair = 0, groups: int = 1, dilation: IntPair = 1) -> Tensor:
    """2-D transposed convolution (the gradient of conv2d with respect to its input).

    weight is (C_in, C_out/groups, kH, kW); output size per dimension is
    (H − 1)·stride − 2·padding + dilation·(k − 1) + output_padding + 1.
    """
    op = "conv_transpose2d"
    x, weight, bias = _check_operands(op, input, weight, bias)
    check_ndim(x._array, (3, 4), op, "input", "(N, C, H, W)")
    if x.ndim == 3:
        return conv_transpose2d(x.unsqueeze(0), weight, bias, stride, padding, output_padding, groups,
                                dilation).squeeze(0)
    c_in, c_out_per_group, kh, kw = weight.shape
    n, c, h, w = x.shape
    groups = _check_groups(op, groups, c_in, c_out_per_group * groups, weight.shape)
    if c != c_in:
        raise ValueError(
            f"{op}: expected input with {c_in} channels (weight is {tuple(weight.shape)}), "
            f"got input of shape {tuple(x.shape)}"
        )
    c_out = c_out_per_group * groups
    _check_bias(op, bias, c_out)
    stride_ = int_pair(stride, op, "stride", minimum=1)
    dilation_ = int_pair(dilation, op, "dilation", minimum=1)
    if isinstance(padding, str):
        raise ValueError(f"{op}: expected padding as an int or a pair of ints, got {padding!r}")
    pad = int_pair(padding, op, "padding", minimum=0)
    out_pad = int_pair(output_padding, op, "output_padding", minimum=0)
    for d in range(2):
        if out_pad[d] >= max(stride_[d], dilation_[d]):
            raise ValueError(
                f"{op}: expected output_padding smaller than stride or dilation, got "
                f"output_padding={output_padding!r} with stride={stride!r}, dilation={dilation!r}"
            )
    out_hw = tuple((size - 1) * stride_[d] - 2 * pad[d] + dilation_[d] * (k - 1) + out_pad[d] + 1
                   for d, (size, k) in enumerate(((h, kh), (w, kw))))
    if min(out_hw) < 1:
        raise ValueError(
            f"{op}: output size {out_hw} is not positive (input of shape {tuple(x.shape)}, kernel "
            f"{(kh, kw)}, stride={stride!r}, padding={padding!r}, dilation={dilation!r})"
        )
    geometry = ConvGeometry(kh, kw, stride_[0], stride_[1], pad[0], pad[1], dilation_[0], dilation_[1],
                            groups, h, w)
    return ConvTranspose2dFunction.apply(x, weight, bias, geometry=geometry,
                                         out_shape=(n, c_out, out_hw[0], out_hw[1]))
