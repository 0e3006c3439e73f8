"""Normalization layers: batch norm (with running statistics), layer, instance and group norm."""
from __future__ import annotations

from typing import Sequence, Tuple, Union

import numpy as np

from ..._validation import check_ndim
from ...tensor import Tensor
from .. import functional as F
from ..init import ones_, zeros_
from ..module import Module, Parameter
from ._args import cpu_device, float_dtype, positive_int


class _NormBase(Module):
    """Per-channel affine parameters (weight=1, bias=0) and running statistics, named as in PyTorch."""

    def __init__(self, num_features, eps, momentum, affine, track_running_stats, dtype, device):
        super().__init__()
        layer = type(self).__name__
        cpu_device(device, layer)
        self.num_features = positive_int(num_features, layer, "num_features")
        if not eps > 0:
            raise ValueError(f"{layer}: expected eps > 0, got {eps!r}")
        if momentum is not None and not 0.0 <= momentum <= 1.0:
            raise ValueError(f"{layer}: expected momentum in [0, 1] or None, got {momentum!r}")
        self.eps = float(eps)
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        dt = float_dtype(dtype, layer)
        if affine:
            self.weight = Parameter(np.ones(self.num_features, dtype=dt))
            self.bias = Parameter(np.zeros(self.num_features, dtype=dt))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", np.zeros(self.num_features, dtype=dt))
            self.register_buffer("running_var", np.ones(self.num_features, dtype=dt))
            self.register_buffer("num_batches_tracked", np.zeros((), dtype=np.int64))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            self.running_mean.numpy()[...] = 0
            self.running_var.numpy()[...] = 1
            self.num_batches_tracked.numpy()[...] = 0

    def reset_parameters(self) -> None:
        self.reset_running_stats()
        if self.affine:
            ones_(self.weight)
            zeros_(self.bias)

    def _update_factor(self) -> float:
        """The running-average momentum for this batch, counting batches as PyTorch does.

        momentum=None gives a cumulative average (factor 1/num_batches_tracked).
        """
        if not (self.training and self.track_running_stats):
            return 0.0 if self.momentum is None else self.momentum
        self.num_batches_tracked.numpy()[...] += 1
        if self.momentum is None:
            return 1.0 / float(self.num_batches_tracked.numpy())
        return self.momentum

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}")


class _BatchNorm(_NormBase):
    _ranks: Tuple[int, ...] = ()
    _layout = ""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1, affine: bool = True,
                 track_running_stats: bool = True, device=None, dtype=None):
        super().__init__(num_features, eps, momentum, affine, track_running_stats, dtype, device)

    def forward(self, input: Tensor) -> Tensor:
        return F.batch_norm(input, *self._functional_args(input))

    def _functional_args(self, input) -> tuple:
        """Check the input, count the batch (running statistics) and return ``F.batch_norm``'s
        arguments after the input (also used by the fused batch norm + ReLU)."""
        layer = type(self).__name__
        data = input.numpy() if isinstance(input, Tensor) else np.asarray(input)
        check_ndim(data, self._ranks, layer, layout=self._layout)
        if data.shape[1] != self.num_features:
            raise ValueError(f"{layer}: expected input with {self.num_features} channels (dim 1), got input "
                             f"of shape {tuple(data.shape)}")
        factor = self._update_factor()
        use_batch_stats = self.training or not self.track_running_stats
        return (self.running_mean, self.running_var, self.weight, self.bias, use_batch_stats, factor, self.eps)


class BatchNorm1d(_BatchNorm):
    """Batch norm over (N, C) or (N, C, L) inputs: per-channel statistics of the batch (training) or the
    running averages (eval). Buffers: running_mean, running_var, num_batches_tracked."""

    _ranks = (2, 3)
    _layout = "(N, C) or (N, C, L)"


class BatchNorm2d(_BatchNorm):
    """Batch norm over (N, C, H, W) (Ioffe & Szegedy 2015): per-channel statistics over N, H, W in training,
    running averages in eval mode. Buffers: running_mean, running_var, num_batches_tracked."""

    _ranks = (4,)
    _layout = "(N, C, H, W)"


class InstanceNorm2d(_NormBase):
    """Per-sample, per-channel normalization over H, W; no affine and no running stats by default (PyTorch)."""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1, affine: bool = False,
                 track_running_stats: bool = False, device=None, dtype=None):
        super().__init__(num_features, eps, momentum, affine, track_running_stats, dtype, device)

    def forward(self, input: Tensor) -> Tensor:
        data = input.numpy() if isinstance(input, Tensor) else np.asarray(input)
        check_ndim(data, (4,), "InstanceNorm2d", layout="(N, C, H, W)")
        if data.shape[1] != self.num_features:
            raise ValueError(f"InstanceNorm2d: expected input with {self.num_features} channels (dim 1), got "
                             f"input of shape {tuple(data.shape)}")
        # as in PyTorch, instance norm never counts batches and momentum=None means no update
        factor = 0.0 if self.momentum is None else self.momentum
        use_input_stats = self.training or not self.track_running_stats
        return F.instance_norm(input, self.running_mean, self.running_var, self.weight, self.bias,
                               use_input_stats=use_input_stats, momentum=factor, eps=self.eps)


class LayerNorm(Module):
    """Normalizes over the trailing ``normalized_shape`` dimensions of each sample (Ba et al. 2016),
    with elementwise weight (1) and bias (0) of that shape."""

    def __init__(self, normalized_shape: Union[int, Sequence[int]], eps: float = 1e-5,
                 elementwise_affine: bool = True, bias: bool = True, device=None, dtype=None):
        super().__init__()
        cpu_device(device, "LayerNorm")
        shape = (normalized_shape,) if isinstance(normalized_shape, (int, np.integer)) else tuple(normalized_shape)
        self.normalized_shape = tuple(positive_int(n, "LayerNorm", "normalized_shape entries") for n in shape)
        if not eps > 0:
            raise ValueError(f"LayerNorm: expected eps > 0, got {eps!r}")
        self.eps = float(eps)
        self.elementwise_affine = elementwise_affine
        dt = float_dtype(dtype, "LayerNorm")
        if elementwise_affine:
            self.weight = Parameter(np.ones(self.normalized_shape, dtype=dt))
            if bias:
                self.bias = Parameter(np.zeros(self.normalized_shape, dtype=dt))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def forward(self, input: Tensor) -> Tensor:
        return F.layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"


class GroupNorm(Module):
    """Normalizes each of ``num_groups`` channel groups per sample (Wu & He 2018); per-channel affine."""

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5, affine: bool = True,
                 device=None, dtype=None):
        super().__init__()
        cpu_device(device, "GroupNorm")
        self.num_groups = positive_int(num_groups, "GroupNorm", "num_groups")
        self.num_channels = positive_int(num_channels, "GroupNorm", "num_channels")
        if self.num_channels % self.num_groups:
            raise ValueError(f"GroupNorm: num_channels ({num_channels}) must be divisible by num_groups "
                             f"({num_groups})")
        if not eps > 0:
            raise ValueError(f"GroupNorm: expected eps > 0, got {eps!r}")
        self.eps = float(eps)
        self.affine = affine
        dt = float_dtype(dtype, "GroupNorm")
        if affine:
            self.weight = Parameter(np.ones(self.num_channels, dtype=dt))
            self.bias = Parameter(np.zeros(self.num_channels, dtype=dt))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def forward(self, input: Tensor) -> Tensor:
        return F.group_norm(input, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}"
