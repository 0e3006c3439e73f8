"""Layers the zoo needs beyond ``fastconv.nn``: ReLU6 (MobileNetV2's activation) and
torchvision's ``Conv2dNormActivation`` (conv → norm → activation as one Sequential, so its
state_dict keys are ``0.weight``, ``1.running_mean``, ...)."""
from __future__ import annotations

from typing import Callable, Optional

import numpy as np

from ... import nn
from ...autograd import Function
from ...tensor import Tensor


class _ReLU6Function(Function):
    """min(max(x, 0), 6); the gradient flows where 0 < x < 6 (PyTorch's hardtanh rule)."""

    @staticmethod
    def forward(ctx, x):
        inside = (x > 0) & (x < 6)
        ctx.save_for_backward(inside)  # one byte per element
        return np.clip(x, 0, 6).astype(x.dtype, copy=False)

    @staticmethod
    def saved_bytes(shapes, dtype, needs_input_grad, **options) -> int:
        """The boolean mask 0 < x < 6: one byte per element."""
        return int(np.prod(shapes[0], dtype=np.int64)) if needs_input_grad[0] else 0

    @staticmethod
    def backward(ctx, g):
        (inside,) = ctx.saved_tensors
        return g * inside


class ReLU6(nn.Module):
    """min(max(x, 0), 6). ``inplace`` is accepted for PyTorch compatibility (results are new arrays).

    The fusion of ``fastconv.nn`` recognizes it (``_fused_max_value``): a BatchNorm2d followed by it
    runs as one batch_norm_relu call clamped at 6.
    """

    _fused_max_value = 6.0

    def __init__(self, inplace: bool = False):
        super().__init__()
        self.inplace = inplace

    def forward(self, input):
        data = input.numpy() if isinstance(input, Tensor) else input
        if not isinstance(data, np.ndarray) or data.dtype not in (np.float32, np.float64):
            raise TypeError(f"ReLU6: expected a float32 or float64 Tensor, got "
                            f"{getattr(data, 'dtype', type(data).__name__)}")
        return _ReLU6Function.apply(input)

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""


class Conv2dNormActivation(nn.Sequential):
    """torchvision.ops.Conv2dNormActivation: Conv2d (padding (k - 1) // 2 · dilation by default,
    bias only without a norm layer), then ``norm_layer``, then ``activation_layer``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 padding: Optional[int] = None, groups: int = 1,
                 norm_layer: Optional[Callable[..., nn.Module]] = nn.BatchNorm2d,
                 activation_layer: Optional[Callable[..., nn.Module]] = nn.ReLU,
                 dilation: int = 1, inplace: Optional[bool] = True, bias: Optional[bool] = None):
        if padding is None:
            padding = (kernel_size - 1) // 2 * dilation
        if bias is None:
            bias = norm_layer is None
        layers = [nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, dilation=dilation,
                            groups=groups, bias=bias)]
        if norm_layer is not None:
            layers.append(norm_layer(out_channels))
        if activation_layer is not None:
            layers.append(activation_layer(**({} if inplace is None else {"inplace": inplace})))
        super().__init__(*layers)
        self.out_channels = out_channels
