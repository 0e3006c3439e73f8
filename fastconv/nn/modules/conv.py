"""Convolution layers: ``Conv2d``, ``ConvTranspose2d`` and ``CoordConv2d`` (Liu et al. 2018).

Weights and biases default to He initialization (kaiming_normal_, mode='fan_in',
nonlinearity='relu'; biases zero) — deliberately different from PyTorch's default
(kaiming_uniform_ with a=sqrt(5)), because these layers are nearly always followed by a ReLU.
"""
from __future__ import annotations

from typing import Optional, Tuple, Union

import numpy as np

from ..._validation import int_pair
from ...tensor import Tensor, cat
from .. import functional as F
from ..init import he_init_
from ..module import Module, Parameter
from ._args import cpu_device, float_dtype, positive_int

IntPair = Union[int, Tuple[int, int]]


class _ConvNd(Module):
    """Shared construction of convolution layers (argument checks, weight/bias, repr)."""

    _layer = "Conv"
    _padding_modes: Tuple[str, ...] = ("zeros",)

    def __init__(self, in_channels, out_channels, kernel_size, stride, dilation, groups, bias,
                 padding_mode, weight_shape_of, dtype, device):
        super().__init__()
        name = self._layer
        cpu_device(device, name)
        self.in_channels = positive_int(in_channels, name, "in_channels")
        self.out_channels = positive_int(out_channels, name, "out_channels")
        self.groups = positive_int(groups, name, "groups")
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ValueError(f"{name}: in_channels ({in_channels}) and out_channels ({out_channels}) must both "
                             f"be divisible by groups ({groups})")
        self.kernel_size = int_pair(kernel_size, name, "kernel_size", minimum=1)
        self.stride = int_pair(stride, name, "stride", minimum=1)
        self.dilation = int_pair(dilation, name, "dilation", minimum=1)
        if padding_mode not in self._padding_modes:
            allowed = ", ".join(repr(m) for m in self._padding_modes)
            raise ValueError(f"{name}: expected padding_mode {allowed}, got {padding_mode!r}")
        self.padding_mode = padding_mode
        dt = float_dtype(dtype, name)
        self.weight = Parameter(np.empty(weight_shape_of(self), dtype=dt))
        if bias:
            self.bias = Parameter(np.empty(self.out_channels, dtype=dt))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """He initialization: kaiming_normal_(weight, mode='fan_in', nonlinearity='relu'), bias zero."""
        he_init_(self.weight, self.bias)

    def _repr_tail(self) -> str:
        s = ""
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s


class Conv2d(_ConvNd):
    """2-D convolution over (N, C_in, H, W) inputs, weight (out, in/groups, kh, kw) as in PyTorch.

    ``padding`` is an int, a pair, 'valid' (no padding) or 'same' (output size = input size; stride
    must be 1; an odd total padding puts the extra pixel at the bottom/right, as PyTorch does).
    ``padding_mode`` 'zeros' pads inside the convolution; 'reflect', 'replicate' and 'circular'
    pad the input with ``F.pad`` first and convolve without padding (as PyTorch does; the
    parameters and state_dict are the same in every mode).
    Initialization: He (kaiming_normal_, fan_in, relu) for the weight, zeros for the bias.
    """

    _layer = "Conv2d"
    _padding_modes = ("zeros", "reflect", "replicate", "circular")

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntPair, stride: IntPair = 1,
                 padding: Union[str, IntPair] = 0, dilation: IntPair = 1, groups: int = 1, bias: bool = True,
                 padding_mode: str = "zeros", device=None, dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, dilation, groups, bias,
                         padding_mode,
                         lambda m: (m.out_channels, m.in_channels // m.groups) + m.kernel_size, dtype, device)
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(f"Conv2d: expected padding 'same', 'valid', an int or a pair, got {padding!r}")
            if padding == "same" and self.stride != (1, 1):
                raise ValueError(f"Conv2d: padding='same' needs stride 1, got stride={self.stride}")
            self.padding = padding
        else:
            self.padding = int_pair(padding, "Conv2d", "padding")

    def _pad_amounts(self) -> Tuple[int, int, int, int]:
        """(left, right, top, bottom) of a non-zeros padding_mode, PyTorch's reversed padding."""
        if self.padding == "valid":
            return (0, 0, 0, 0)
        if self.padding == "same":
            (kh, kw), (dh, dw) = self.kernel_size, self.dilation
            th, tw = dh * (kh - 1), dw * (kw - 1)
            return (tw // 2, tw - tw // 2, th // 2, th - th // 2)
        ph, pw = self.padding
        return (pw, pw, ph, ph)

    def forward(self, input: Tensor) -> Tensor:
        if self.padding_mode != "zeros":
            return F.conv2d(F.pad(input, self._pad_amounts(), mode=self.padding_mode), self.weight, self.bias,
                            stride=self.stride, padding=0, dilation=self.dilation, groups=self.groups)
        return F.conv2d(input, self.weight, self.bias, stride=self.stride, padding=self.padding,
                        dilation=self.dilation, groups=self.groups)

    def extra_repr(self) -> str:
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}")
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        return s + self._repr_tail()


class ConvTranspose2d(_ConvNd):
    """Transposed convolution (gradient of Conv2d w.r.t. its input), weight (in, out/groups, kh, kw).

    Output size: (H − 1)·stride − 2·padding + dilation·(k − 1) + output_padding + 1.
    Initialization: He (kaiming_normal_, fan_in, relu) where fan_in follows PyTorch's convention
    for this weight layout (out/groups·kh·kw), bias zero.
    """

    _layer = "ConvTranspose2d"

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntPair, stride: IntPair = 1,
                 padding: IntPair = 0, output_padding: IntPair = 0, groups: int = 1, bias: bool = True,
                 dilation: IntPair = 1, padding_mode: str = "zeros", device=None, dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, dilation, groups, bias,
                         padding_mode,
                         lambda m: (m.in_channels, m.out_channels // m.groups) + m.kernel_size, dtype, device)
        self.padding = int_pair(padding, "ConvTranspose2d", "padding")
        self.output_padding = int_pair(output_padding, "ConvTranspose2d", "output_padding")
        for op, s, d in zip(self.output_padding, self.stride, self.dilation):
            if op >= max(s, d):
                raise ValueError(f"ConvTranspose2d: output_padding {self.output_padding} must be smaller than "
                                 f"stride {self.stride} or dilation {self.dilation}")

    def forward(self, input: Tensor, output_size: Optional[Tuple[int, ...]] = None) -> Tensor:
        output_padding = self.output_padding
        if output_size is not None:
            output_padding = self._output_padding_for(input, output_size)
        return F.conv_transpose2d(input, self.weight, self.bias, stride=self.stride, padding=self.padding,
                                  output_padding=output_padding, groups=self.groups, dilation=self.dilation)

    def _output_padding_for(self, input: Tensor, output_size) -> Tuple[int, int]:
        """The output_padding that yields ``output_size`` ((H, W) or a full shape ending with it)."""
        size = tuple(output_size)[-2:]
        if len(size) != 2 or input.ndim < 2:
            raise ValueError(f"ConvTranspose2d: expected output_size ending with (H, W), got {output_size!r}")
        result = []
        for axis, want in enumerate(size):
            n = input.shape[-2 + axis]
            smallest = ((n - 1) * self.stride[axis] - 2 * self.padding[axis]
                        + self.dilation[axis] * (self.kernel_size[axis] - 1) + 1)
            extra = want - smallest
            if not 0 <= extra < max(self.stride[axis], self.dilation[axis]):
                raise ValueError(
                    f"ConvTranspose2d: requested output size {tuple(size)} is not reachable from input "
                    f"{tuple(input.shape)}: axis {axis} allows sizes {smallest}..."
                    f"{smallest + max(self.stride[axis], self.dilation[axis]) - 1}")
            result.append(extra)
        return tuple(result)

    def extra_repr(self) -> str:
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}")
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if self.output_padding != (0, 0):
            s += f", output_padding={self.output_padding}"
        return s + self._repr_tail()


def coordinate_channels(height: int, width: int, with_r: bool, dtype) -> np.ndarray:
    """(2 or 3, H, W) channels: i (row, varies along height), j (column), optionally r.

    i and j are linear ramps from −1 (first row/column) to +1 (last); a size-1 axis gives 0
    (its only pixel is the centre). r = sqrt(i² + j²)/sqrt(2): 0 at the centre, 1 at the corners.
    """
    def ramp(n):
        return np.zeros(1) if n == 1 else np.linspace(-1.0, 1.0, n)

    i = np.broadcast_to(ramp(height)[:, None], (height, width))
    j = np.broadcast_to(ramp(width)[None, :], (height, width))
    channels = [i, j]
    if with_r:
        channels.append(np.sqrt(i * i + j * j) / np.sqrt(2.0))
    return np.stack(channels).astype(dtype)


class CoordConv2d(Module):
    """CoordConv (Liu et al. 2018, "An intriguing failing of convolutional neural networks...").

    Appends coordinate channels to the input, then applies a Conv2d with in_channels + 2 (+1 with
    ``with_r``) input channels, so filters can learn position-dependent responses. Channel order
    after the input's C channels: C = i (row coordinate, −1 at the top row, +1 at the bottom),
    C+1 = j (column coordinate, −1 left, +1 right), C+2 = r = sqrt(i² + j²)/sqrt(2) ∈ [0, 1]
    (0 at the centre, 1 at the corners). A dimension of size 1 gives coordinate 0. Works for any
    input size (coordinates are built per call). Parameters live in ``conv`` (``conv.weight``,
    ``conv.bias``) and follow Conv2d's He initialization.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntPair, stride: IntPair = 1,
                 padding: Union[str, IntPair] = 0, dilation: IntPair = 1, groups: int = 1, bias: bool = True,
                 with_r: bool = False, padding_mode: str = "zeros", device=None, dtype=None):
        super().__init__()
        self.in_channels = positive_int(in_channels, "CoordConv2d", "in_channels")
        if not isinstance(with_r, bool):
            raise TypeError(f"CoordConv2d: expected with_r as a bool, got {with_r!r}")
        self.with_r = with_r
        extra = 3 if with_r else 2
        self.conv = Conv2d(self.in_channels + extra, out_channels, kernel_size, stride=stride, padding=padding,
                           dilation=dilation, groups=groups, bias=bias, padding_mode=padding_mode,
                           device=device, dtype=dtype)

    def add_coords(self, input: Tensor) -> Tensor:
        """The input with the coordinate channels appended (N, C + 2 (+1), H, W)."""
        if not isinstance(input, Tensor):
            input = Tensor(input)
        if input.ndim != 4:
            raise ValueError(f"CoordConv2d: expected 4-D (N, C, H, W) input, got input of shape {input.shape}")
        if input.shape[1] != self.in_channels:
            raise ValueError(f"CoordConv2d: expected input with {self.in_channels} channels, got input of shape "
                             f"{input.shape}")
        n, _, h, w = input.shape
        coords = coordinate_channels(h, w, self.with_r, input.dtype)
        coords = np.broadcast_to(coords[None], (n,) + coords.shape)
        return cat([input, Tensor._wrap(coords)], dim=1)

    def forward(self, input: Tensor) -> Tensor:
        return self.conv(self.add_coords(input))

    def extra_repr(self) -> str:
        return f"with_r={self.with_r}"
