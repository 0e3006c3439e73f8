"""Deconvnet reconstruction (Zeiler & Fergus 2014): one unit's activation projected back to pixels.

Forward through the Sequential's layers up to ``layer``, recording the max-pool switches; keep one
unit (the channel's strongest position), then walk back: max_unpool2d with the recorded switches,
ReLU on the signal at each ReLU, and conv_transpose2d with each convolution's own weights.
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from .._validation import int_pair
from ..autograd import no_grad
from ..nn import functional as F
from ..nn.module import Module
from ..nn.modules import ELU, Conv2d, CoordConv2d, LeakyReLU, MaxPool2d, ReLU
from ..tensor import Tensor
from .layers import LayerRef, as_image, check_index, evaluating, layer_chain, model_dtype
from .plotting import display_image, draw_box, new_figure, show
from .receptive_field import POINTWISE, _conv_padding, receptive_field

_RECTIFIERS = (ReLU, LeakyReLU, ELU)


def _forward(chain, image: np.ndarray):
    """Run the chain, recording (layer, input shape, max-pool switches or None) per layer."""
    x = Tensor._wrap(image)
    records = []
    for name, mod in chain:
        switches = None
        if isinstance(mod, MaxPool2d):
            out, switches = F.max_pool2d(x, mod.kernel_size, mod.stride, mod.padding, mod.dilation,
                                         ceil_mode=mod.ceil_mode, return_indices=True)
        elif isinstance(mod, (Conv2d, CoordConv2d, POINTWISE)):
            out = mod(x)
        else:
            raise ValueError(f"deconv_reconstruction: layer {name!r} ({type(mod).__name__}) cannot be inverted "
                             f"(supported: Conv2d, MaxPool2d, ReLU and pointwise layers)")
        records.append((mod, x.shape, switches))
        x = out
    return x.numpy(), records


def _conv_back(signal: np.ndarray, conv: Conv2d, input_shape) -> np.ndarray:
    """Transposed convolution with ``conv``'s weights (no bias), cropped to the conv's input size."""
    full = F.conv_transpose2d(Tensor._wrap(signal), conv.weight.detach(), None, stride=conv.stride,
                              padding=0, groups=conv.groups, dilation=conv.dilation).numpy()
    top, left = _conv_padding(conv)
    h, w = input_shape[-2:]
    out = np.zeros((signal.shape[0], full.shape[1], h, w), dtype=signal.dtype)
    rows = full[:, :, top:top + h, left:left + w]  # the padded border falls away
    out[:, :, :rows.shape[2], :rows.shape[3]] = rows
    return out


def _backward(signal: np.ndarray, records) -> np.ndarray:
    for mod, input_shape, switches in reversed(records):
        if isinstance(mod, _RECTIFIERS):
            signal = np.maximum(signal, 0)
        elif isinstance(mod, MaxPool2d):
            k = int_pair(mod.kernel_size, "deconv_reconstruction", "kernel_size")
            d = int_pair(mod.dilation, "deconv_reconstruction", "dilation")
            signal = F.max_unpool2d(Tensor._wrap(signal), switches, tuple(di * (ki - 1) + 1 for ki, di in zip(k, d)),
                                    mod.stride, mod.padding, output_size=input_shape[-2:]).numpy()
        elif isinstance(mod, CoordConv2d):
            signal = _conv_back(signal, mod.conv, input_shape)[:, :mod.in_channels]
        elif isinstance(mod, Conv2d):
            signal = _conv_back(signal, mod, input_shape)
    return signal


def deconv_reconstruction(model: Module, x, layer: LayerRef, channel: int,
                          position: Optional[Tuple[int, int]] = None) -> np.ndarray:
    """(C, H, W) pixel-space projection of unit (``channel``, ``position``) of ``layer`` for one image.

    ``position`` defaults to the channel's strongest response; all other activations are zeroed.
    """
    op = "deconv_reconstruction"
    chain = layer_chain(model, layer, op)
    image = as_image(x, op, model_dtype(model))
    with evaluating(model), no_grad():
        top, records = _forward(chain, image)
        if top.ndim != 4:
            raise ValueError(f"{op}: expected a layer with (N, C, H, W) output, got shape {top.shape}")
        check_index(channel, top.shape[1], op, "channel", f"layer {layer!r} output {top.shape[1:]}")
        row, col = unit_position(top, channel, position, op)
        signal = np.zeros_like(top)
        signal[0, channel, row, col] = top[0, channel, row, col]
        return _backward(signal, records)[0]


def unit_position(top: np.ndarray, channel: int, position, op: str) -> Tuple[int, int]:
    """The given (row, col), checked against the map, or the position of the channel's maximum."""
    h, w = top.shape[-2:]
    if position is None:
        return tuple(int(v) for v in np.unravel_index(np.argmax(top[0, channel]), (h, w)))
    if len(tuple(position)) != 2:
        raise ValueError(f"{op}: expected position as (row, col), got {position!r}")
    return (check_index(position[0], h, op, "row", f"the {h}x{w} map"),
            check_index(position[1], w, op, "col", f"the {h}x{w} map"))


def plot_deconv(model: Module, x, layer: LayerRef, channel: int, position: Optional[Tuple[int, int]] = None):
    """The image with the unit's receptive field, and the unit's deconvnet reconstruction."""
    op = "plot_deconv"
    recon = deconv_reconstruction(model, x, layer, channel, position)
    image = as_image(x, op, model_dtype(model))
    with evaluating(model), no_grad():
        top, _ = _forward(layer_chain(model, layer, op), image)
    row, col = unit_position(top, channel, position, op)
    box = receptive_field(model, layer).box(row, col, image.shape[-2:])
    fig = new_figure(op, 6.5, 3.4)
    left, right = fig.subplots(1, 2)
    value = float(top[0, channel, row, col])
    state = f"= {value:.3g}" if value > 0 else "inactive: nothing to project"
    show(left, display_image(image[0]), f"input, unit ({row}, {col}) {state}")
    draw_box(left, box)
    show(right, display_image(recon), f"deconv of channel {channel}, layer {layer!r}")
    draw_box(right, box)
    return fig
