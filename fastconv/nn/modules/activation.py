"""Activation layers: thin Modules over ``fastconv.nn.functional``'s activations."""
from __future__ import annotations

import math
import warnings
from typing import Optional

import numpy as np

from ...tensor import Tensor
from .. import functional as F
from ..module import Module, Parameter
from ._args import cpu_device, float_dtype, positive_int


class ReLU(Module):
    """max(x, 0); ``inplace=True`` overwrites the input (as in PyTorch) and returns it.

    After a BatchNorm in a ``Sequential`` (or a block using ``fastconv.nn.fusion``) it runs fused
    into the batch norm's pass (``_fused_max_value``: the clamp the fused kernel applies; the fused
    call writes a new array, the batch norm's output being invisible anyway)."""

    _fused_max_value = math.inf

    def __init__(self, inplace: bool = False):
        super().__init__()
        self.inplace = inplace

    def forward(self, input: Tensor) -> Tensor:
        return F.relu(input, inplace=self.inplace)

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""


class LeakyReLU(Module):
    """x for x > 0, negative_slope·x otherwise; ``inplace=True`` overwrites the input."""

    def __init__(self, negative_slope: float = 0.01, inplace: bool = False):
        super().__init__()
        self.negative_slope = float(negative_slope)
        self.inplace = inplace

    def forward(self, input: Tensor) -> Tensor:
        return F.leaky_relu(input, self.negative_slope, inplace=self.inplace)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}" + (", inplace=True" if self.inplace else "")


class ELU(Module):
    """x for x > 0, alpha·(exp(x) − 1) otherwise."""

    def __init__(self, alpha: float = 1.0, inplace: bool = False):
        super().__init__()
        self.alpha = float(alpha)
        self.inplace = inplace

    def forward(self, input: Tensor) -> Tensor:
        return F.elu(input, self.alpha, inplace=self.inplace)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}" + (", inplace=True" if self.inplace else "")


class Sigmoid(Module):
    """1 / (1 + exp(−x))."""

    def forward(self, input: Tensor) -> Tensor:
        return F.sigmoid(input)


class Tanh(Module):
    def forward(self, input: Tensor) -> Tensor:
        return F.tanh(input)


def _implicit_dim(ndim: int, layer: str) -> int:
    """PyTorch's legacy choice when ``dim`` is omitted: 0 for 0-, 1- and 3-D inputs, else 1."""
    warnings.warn(f"{layer}: implicit dimension choice is deprecated; pass dim explicitly "
                  f"(using dim={0 if ndim in (0, 1, 3) else 1} as PyTorch does)", UserWarning, stacklevel=3)
    return 0 if ndim in (0, 1, 3) else 1


class Softmax(Module):
    """exp(x) / Σ exp(x) along ``dim`` (pass it; omitted, PyTorch's legacy rule applies with a warning)."""

    def __init__(self, dim: Optional[int] = None):
        super().__init__()
        self.dim = dim

    def forward(self, input: Tensor) -> Tensor:
        dim = self.dim if self.dim is not None else _implicit_dim(input.ndim, "Softmax")
        return F.softmax(input, dim=dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class LogSoftmax(Module):
    """x − logsumexp(x) along ``dim``."""

    def __init__(self, dim: Optional[int] = None):
        super().__init__()
        self.dim = dim

    def forward(self, input: Tensor) -> Tensor:
        dim = self.dim if self.dim is not None else _implicit_dim(input.ndim, "LogSoftmax")
        return F.log_softmax(input, dim=dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class _InplaceFlag(Module):
    """An activation with PyTorch's ``inplace`` flag (accepted; the result is always a new tensor)."""

    _function = None

    def __init__(self, inplace: bool = False):
        super().__init__()
        self.inplace = inplace

    def forward(self, input: Tensor) -> Tensor:
        return type(self)._function(input)

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""


class ReLU6(_InplaceFlag):
    """min(max(x, 0), 6). After a BatchNorm it runs fused into the batch norm's pass, as ReLU does."""

    _function = staticmethod(F.relu6)
    _fused_max_value = 6.0


class Hardtanh(Module):
    """min(max(x, min_val), max_val) (``inplace`` accepted; the result is always a new tensor)."""

    def __init__(self, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False):
        super().__init__()
        if min_val > max_val:
            raise ValueError(f"Hardtanh: expected min_val <= max_val, got min_val {min_val} and max_val {max_val}")
        self.min_val, self.max_val, self.inplace = min_val, max_val, inplace

    def forward(self, input: Tensor) -> Tensor:
        return F.hardtanh(input, self.min_val, self.max_val)

    def extra_repr(self) -> str:
        return f"min_val={self.min_val}, max_val={self.max_val}" + (", inplace=True" if self.inplace else "")


class SiLU(_InplaceFlag):
    """x·sigmoid(x) (swish)."""

    _function = staticmethod(F.silu)


class Hardswish(_InplaceFlag):
    """x·min(max(x + 3, 0), 6)/6."""

    _function = staticmethod(F.hardswish)


class Hardsigmoid(_InplaceFlag):
    """min(max(x + 3, 0), 6)/6."""

    _function = staticmethod(F.hardsigmoid)


class Mish(_InplaceFlag):
    """x·tanh(softplus(x))."""

    _function = staticmethod(F.mish)


class GELU(Module):
    """x·Φ(x) (``approximate='none'``) or its tanh approximation (``'tanh'``)."""

    def __init__(self, approximate: str = "none"):
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: expected approximate 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, input: Tensor) -> Tensor:
        return F.gelu(input, approximate=self.approximate)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


class Softplus(Module):
    """log(1 + exp(β·x))/β, linear where β·x > threshold."""

    def __init__(self, beta: float = 1.0, threshold: float = 20.0):
        super().__init__()
        for name, value in (("beta", beta), ("threshold", threshold)):
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
                raise TypeError(f"Softplus: expected {name} as a real number, got {value!r}")
        if beta == 0:
            raise ValueError("Softplus: expected a non-zero beta, got 0")
        self.beta = beta
        self.threshold = threshold

    def forward(self, input: Tensor) -> Tensor:
        return F.softplus(input, self.beta, self.threshold)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, threshold={self.threshold}"


class PReLU(Module):
    """x where x > 0, a·x elsewhere, ``a`` learnable: one slope (``num_parameters=1``) or one per
    channel (axis 1), initialised to ``init``. state_dict key ``weight`` as in PyTorch."""

    def __init__(self, num_parameters: int = 1, init: float = 0.25, device=None, dtype=None):
        super().__init__()
        cpu_device(device, "PReLU")
        self.num_parameters = positive_int(num_parameters, "PReLU", "num_parameters")
        if isinstance(init, bool) or not isinstance(init, (int, float, np.integer, np.floating)):
            raise TypeError(f"PReLU: expected init as a real number, got {init!r}")
        self.init = float(init)
        self.weight = Parameter(np.full(self.num_parameters, self.init, dtype=float_dtype(dtype, "PReLU")))

    def reset_parameters(self) -> None:
        self.weight.numpy()[...] = self.init

    def forward(self, input: Tensor) -> Tensor:
        return F.prelu(input, self.weight)

    def extra_repr(self) -> str:
        return f"num_parameters={self.num_parameters}"
