"""``Linear`` (fully connected), ``Flatten``, ``Unflatten`` and ``Identity``."""
from __future__ import annotations

from typing import Tuple

import numpy as np

from ...tensor import Tensor
from .. import functional as F
from ..init import he_init_
from ..module import Module, Parameter
from ._args import cpu_device, float_dtype, positive_int


class Linear(Module):
    """y = x Wᵀ + b over the last dimension; weight (out_features, in_features) as in PyTorch.

    Initialization: He (kaiming_normal_, mode='fan_in', nonlinearity='relu') for the weight and zeros
    for the bias — deliberately not PyTorch's kaiming_uniform_(a=sqrt(5)) default.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, device=None, dtype=None):
        super().__init__()
        cpu_device(device, "Linear")
        self.in_features = positive_int(in_features, "Linear", "in_features")
        self.out_features = positive_int(out_features, "Linear", "out_features")
        dt = float_dtype(dtype, "Linear")
        self.weight = Parameter(np.empty((self.out_features, self.in_features), dtype=dt))
        if bias:
            self.bias = Parameter(np.empty(self.out_features, dtype=dt))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """He initialization of the weight, zero bias."""
        he_init_(self.weight, self.bias)

    def forward(self, input: Tensor) -> Tensor:
        return F.linear(input, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Flatten(Module):
    """Merge dimensions start_dim..end_dim (default: everything but the batch dimension)."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        super().__init__()
        for name, v in (("start_dim", start_dim), ("end_dim", end_dim)):
            if not isinstance(v, int) or isinstance(v, bool):
                raise TypeError(f"Flatten: expected {name} as an int, got {v!r}")
        self.start_dim = start_dim
        self.end_dim = end_dim

    def forward(self, input: Tensor) -> Tensor:
        if not isinstance(input, Tensor):
            input = Tensor(input)
        n = max(input.ndim, 1)
        if not (-n <= self.start_dim < n and -n <= self.end_dim < n):
            for name, v in (("start_dim", self.start_dim), ("end_dim", self.end_dim)):
                if not -n <= v < n:
                    raise ValueError(f"Flatten: {name}={v} is out of range for input of shape {input.shape}")
        return input.flatten(self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Unflatten(Module):
    """Split dimension ``dim`` into ``unflattened_size`` (the inverse of Flatten)."""

    def __init__(self, dim: int, unflattened_size: Tuple[int, ...]):
        super().__init__()
        self.dim = dim
        self.unflattened_size = tuple(int(n) for n in unflattened_size)

    def forward(self, input: Tensor) -> Tensor:
        shape = input.shape
        d = self.dim % input.ndim
        if int(np.prod(self.unflattened_size)) != shape[d] and -1 not in self.unflattened_size:
            raise ValueError(f"Unflatten: cannot split dimension {self.dim} of size {shape[d]} into "
                             f"{self.unflattened_size} (input of shape {shape})")
        return input.reshape(shape[:d] + self.unflattened_size + shape[d + 1:])

    def extra_repr(self) -> str:
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"


class Identity(Module):
    """Returns its input unchanged (a placeholder, e.g. to remove a head); ignores constructor arguments."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, input):
        return input
