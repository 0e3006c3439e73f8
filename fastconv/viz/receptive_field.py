"""Receptive fields in input pixels, from the kernel/stride/padding/dilation of a Sequential's layers.

Per axis, walking from the input: ``size += (dilation·(k−1))·jump``, ``start −= padding·jump``,
``jump *= stride``. ``start`` is the input coordinate of the first pixel seen by output unit 0 (it
is negative when the padding reaches outside the image); unit ``i`` sees ``start + i·jump`` onwards.
"""
from __future__ import annotations

from typing import NamedTuple, Optional, Tuple

from .._validation import int_pair
from ..nn.module import Module
from ..nn.modules import (
    ELU, AvgPool2d, BatchNorm2d, Conv2d, CoordConv2d, Dropout, Dropout2d, GroupNorm, Identity, InstanceNorm2d,
    LayerNorm, LeakyReLU, MaxPool2d, ReLU, Sigmoid, Tanh,
)
from .layers import LayerRef, layer_chain

#: Layers that act per position (normalization statistics aside): they leave the geometry unchanged.
POINTWISE = (ReLU, LeakyReLU, ELU, Sigmoid, Tanh, BatchNorm2d, InstanceNorm2d, GroupNorm, LayerNorm,
             Dropout, Dropout2d, Identity)


class ReceptiveField(NamedTuple):
    """Receptive field of one unit of a layer: ``size``, ``jump`` (stride in input pixels), ``start``, per (h, w)."""

    size: Tuple[int, int]
    jump: Tuple[int, int]
    start: Tuple[int, int]

    def box(self, row: int, col: int, input_hw: Optional[Tuple[int, int]] = None) -> Tuple[int, int, int, int]:
        """(top, left, bottom, right) input pixels seen by unit (row, col); bottom/right exclusive.

        With ``input_hw`` the box is clipped to the image (padding lies outside it).
        """
        top = self.start[0] + row * self.jump[0]
        left = self.start[1] + col * self.jump[1]
        bottom, right = top + self.size[0], left + self.size[1]
        if input_hw is not None:
            top, left = max(top, 0), max(left, 0)
            bottom, right = min(bottom, input_hw[0]), min(right, input_hw[1])
        return top, left, bottom, right


def _conv_padding(conv: Conv2d) -> Tuple[int, int]:
    """Top/left padding of a Conv2d ('same' puts the odd extra pixel at the bottom/right)."""
    if conv.padding == "valid":
        return (0, 0)
    if conv.padding == "same":
        return tuple((d * (k - 1)) // 2 for k, d in zip(conv.kernel_size, conv.dilation))
    return conv.padding


def geometry(name: str, layer: Module, op: str):
    """(kernel, stride, top/left padding, dilation) pairs of a layer, or None when it acts per position."""
    if isinstance(layer, CoordConv2d):
        layer = layer.conv
    if isinstance(layer, Conv2d):
        return layer.kernel_size, layer.stride, _conv_padding(layer), layer.dilation
    if isinstance(layer, (MaxPool2d, AvgPool2d)):
        dilation = getattr(layer, "dilation", 1)
        return (int_pair(layer.kernel_size, op, "kernel_size"), int_pair(layer.stride, op, "stride"),
                int_pair(layer.padding, op, "padding"), int_pair(dilation, op, "dilation"))
    if isinstance(layer, POINTWISE):
        return None
    raise ValueError(f"{op}: layer {name!r} ({type(layer).__name__}) has no receptive-field geometry "
                     f"(it mixes all positions or is not a conv/pool/pointwise layer); choose a layer before it")


def receptive_field(model: Module, layer: LayerRef) -> ReceptiveField:
    """The receptive field of one unit of ``layer``'s output, in input pixels (model: a Sequential)."""
    op = "receptive_field"
    size, jump, start = [1, 1], [1, 1], [0, 0]
    for name, mod in layer_chain(model, layer, op):
        geo = geometry(name, mod, op)
        if geo is None:
            continue
        kernel, stride, padding, dilation = geo
        for a in range(2):
            size[a] += dilation[a] * (kernel[a] - 1) * jump[a]
            start[a] -= padding[a] * jump[a]
            jump[a] *= stride[a]
    return ReceptiveField(tuple(size), tuple(jump), tuple(start))
